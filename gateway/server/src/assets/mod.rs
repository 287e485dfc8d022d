//! Asset custody and real-time reconciliation (docs/assets.md).
//!
//! The asset state is a deterministic fold over the logged envelopes: each
//! accepted asset envelope is applied ([`crate::apply::asset`]) by the
//! gateway's committer in log order, in the same atomic batch as its log
//! entry, and `xgate audit replay` ([`crate::recompute`]) applies the same
//! step to the logged envelopes to recompute the state and compare.
//!
//! - [`model`]: the bodies of the asset kinds, checked field by field;
//! - [`custody`]: the custody rules, a pure function of a record and one
//!   envelope;
//! - [`reconcile`]: inventory reports against the register, and the
//!   discrepancies they open and close;
//! - [`state`]: where it all lives in the store;
//! - [`query`]: what an agency may read of it.

pub mod custody;
pub mod dossier;
pub mod model;
pub mod query;
pub mod reconcile;
pub mod state;
