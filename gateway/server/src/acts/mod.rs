//! The acts contracts take, in the commit of the entry that triggered
//! them (docs/contracts.md): [`run`] evaluates the contracts on an entry's
//! events and carries out those that fire, each through [`take`], and
//! returns the act entries that follow the entry in the log.
//!
//! The live commit runs it in the committer's step after the envelope is
//! applied; `xgate audit replay` runs it again over the same state and
//! compares what it computes with the acts the log holds. [`explain`]
//! tells, from the log and the state alone, which contracts fired for an
//! entry and why (`GET /v1/contracts/explain/{index}`).

pub mod deadlines;
pub mod explain;
pub mod run;
pub mod take;

pub use run::{Act, Cause, MAX_ACTS, MAX_CHAIN, MAX_ENTRY_COST, Setting, on_entry, run};
pub use take::Scope;
