//! The apply stage: an accepted envelope applied to the gateway's state
//! (asset custody and reconciliation, medical grants, responses and
//! reviews; a record changes no state).
//!
//! The state is a fold over the log: [`apply`] is its one step, and the
//! one entry point of this stage. The live commit runs it in the commit
//! thread, in log order, against the store as the jobs before it in the
//! batch leave it, and commits its writes with the envelope's log entry;
//! `xgate audit replay` ([`crate::recompute`]) runs it over the logged
//! envelopes against the state it rebuilds in memory. Both give it the
//! [`Facts`] of the envelope, built by [`Facts::new`] from what the log
//! entry records, so they reach the same state, and any difference means
//! the stored state was changed behind the log's back.
//!
//! An inventory report's step reads the state of every tag it lists, so the
//! live commit does that part, [`survey`], off the commit thread, and the
//! committer runs the rest, [`apply_surveyed`], at the report's turn if
//! nothing the survey read has changed since ([`reads`]); [`apply`] is the
//! two in one.
//!
//! - [`body`]: why a body is not one this stage can take;
//! - [`facts`]: what the rules read besides the body;
//! - [`state`]: the state as the rules read it, and its JSON records;
//! - [`reads`]: the reads of a step made ahead of its turn, and how the
//!   committer checks they still hold;
//! - [`record`], [`asset`], [`medical`]: the operations of each kind (the
//!   medical ones include `review.decision`);
//! - [`triggers`]: what an applied envelope triggers, as contracts see it.
//!
//! Where each record lives is in [`crate::assets::state`] and
//! [`crate::medical::state`], under the prefixes of [`crate::store_keys`].

pub mod asset;
pub mod body;
pub mod facts;
pub mod medical;
pub mod reads;
pub mod record;
pub mod state;
pub mod triggers;

use serde_json::{Map, Value};
use xgate_ledger::WriteBatch;

pub use crate::assets::reconcile::Survey;
pub use body::BodyError;
pub use facts::Facts;

use crate::kind::Kind;
use crate::registry::AgencyId;
use asset::AssetError;
use medical::MedicalError;
use record::Record;
use state::StateRead;

/// An envelope's body, parsed for its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `record.send`: carried as is.
    Record(Record),
    /// An asset kind.
    Asset(asset::Op),
    /// A medical kind, or `review.decision`.
    Medical(medical::Op),
}

/// What a log entry names of an envelope's body (docs/ledger.md, "Gateway
/// entries"), so that an auditor can follow an asset or a request through
/// the log without the state store. The gateway logs them; a replay
/// recomputes them from the stored envelope and compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Named<'a> {
    /// The asset's tag.
    pub tag: Option<&'a str>,
    /// The person it names (logged as a salted hash, never as is).
    pub person: Option<&'a str>,
    /// A medical request's purpose of use.
    pub purpose: Option<&'a str>,
    /// The medical request an approval, response or review is about.
    pub request: Option<&'a str>,
    /// A review's outcome.
    pub outcome: Option<&'a str>,
}

/// Why an envelope could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An asset rule refuses it, or the state failed.
    #[error(transparent)]
    Asset(#[from] AssetError),
    /// A medical rule refuses it, or the state failed.
    #[error(transparent)]
    Medical(#[from] MedicalError),
}

impl Op {
    /// Parses `body` as the body of `kind`.
    ///
    /// # Errors
    /// The field at fault, or a kind the gateway does not apply.
    pub fn parse(kind: Kind, body: &Map<String, Value>) -> Result<Op, BodyError> {
        if kind == Kind::RecordSend {
            return Record::parse(body).map(Op::Record);
        }
        if let Some(op) = asset::Op::parse(kind, body)? {
            return Ok(Op::Asset(op));
        }
        if let Some(op) = medical::Op::parse(kind, body)? {
            return Ok(Op::Medical(op));
        }
        Err(BodyError::Unsupported(kind))
    }

    /// The sealed part of `body`, the body it was parsed from: a sealed
    /// record's, or a sealed medical request's.
    pub fn sealed_part<'b>(&'b self, body: &'b Map<String, Value>) -> Option<&'b str> {
        match self {
            Op::Record(r) => r.sealed_part(body),
            Op::Medical(medical::Op::Request(r)) => r.sealed.as_deref(),
            Op::Asset(_) | Op::Medical(_) => None,
        }
    }

    /// Whether it carries in clear what a sealed body would hide: a record
    /// in clear, or a medical request with its subject, incident and
    /// responder's name in clear.
    pub fn in_clear(&self) -> bool {
        match self {
            Op::Record(r) => !r.sealed,
            Op::Medical(medical::Op::Request(r)) => r.sealed.is_none(),
            Op::Asset(_) | Op::Medical(_) => false,
        }
    }

    /// Whether its step reads much of the state, in a part that does not
    /// depend on its place in the log: an inventory report, which
    /// [`survey`]s every tag it lists.
    pub fn surveys(&self) -> bool {
        matches!(self, Op::Asset(asset::Op::Report(_)))
    }

    /// What its log entry names of it.
    pub fn named(&self) -> Named<'_> {
        match self {
            Op::Record(_) => Named::default(),
            Op::Asset(op) => Named {
                tag: op.tag(),
                person: op.person(),
                ..Named::default()
            },
            Op::Medical(op) => {
                let (purpose, outcome) = match op {
                    medical::Op::Request(r) => (Some(r.purpose.as_str()), None),
                    medical::Op::Review(r) => (None, Some(r.outcome.as_str())),
                    medical::Op::Approve(_) | medical::Op::Response(_) => (None, None),
                };
                Named {
                    tag: None,
                    person: op.subject(),
                    purpose,
                    request: op.request(),
                    outcome,
                }
            }
        }
    }
}

/// Applies `op`, the body of the envelope `facts` describes, to `state`,
/// adding its writes to `batch`: the one step of the fold, for the live
/// commit and for a replay.
///
/// # Errors
/// The rule broken (then `batch` may hold partial writes and must be
/// dropped), or a state that cannot be read or written.
pub fn apply(
    op: &Op,
    facts: &Facts<'_>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<(), ApplyError> {
    apply_surveyed(op, facts, state, None, batch)
}

/// The part of `op`'s step that reads much of the state and does not
/// depend on the envelope's place in the log, made ahead by `sender`'s
/// envelope ([`Op::surveys`]): `None` for a kind that has none.
///
/// # Errors
/// A state that cannot be read.
pub fn survey(
    op: &Op,
    sender: &AgencyId,
    state: &impl StateRead,
) -> Result<Option<Survey>, ApplyError> {
    match op {
        Op::Asset(op) => Ok(asset::survey(op, sender, state)?),
        Op::Record(_) | Op::Medical(_) => Ok(None),
    }
}

/// [`apply`], with `survey` made already by [`survey`] of the same `op`
/// and sender, against the state as `state` is now (the committer checks
/// that nothing it read has changed): then the state is not read again.
///
/// # Errors
/// As [`apply`].
pub fn apply_surveyed(
    op: &Op,
    facts: &Facts<'_>,
    state: &impl StateRead,
    survey: Option<&Survey>,
    batch: &mut WriteBatch,
) -> Result<(), ApplyError> {
    match op {
        Op::Record(_) => {}
        Op::Asset(op) => {
            asset::apply_surveyed(op, facts, state, survey, batch)?;
        }
        Op::Medical(op) => medical::apply(op, facts, state, batch)?,
    }
    Ok(())
}
