//! Asset custody (issue 4, in progress): the bodies of the asset kinds and
//! the custody rules as a pure function of a record and one envelope.
//!
//! What is here is decided without a clock or a store, so the gateway's
//! committer (in log order) and an auditor replaying the log reach the same
//! state. Storage, the pipeline wiring, reconciliation and the API are the
//! next steps of the issue; until they land, the asset kinds are still
//! refused with `unsupported_kind`.

pub mod custody;
pub mod model;
