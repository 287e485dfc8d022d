//! One step of the fold: an accepted asset envelope applied to the state.
//!
//! The gateway's committer runs [`apply`] for each asset envelope in log
//! order, against the state as the envelopes before it left it, and commits
//! the writes with the log entry; `xgate audit replay` runs the very same
//! function over the logged envelopes. Both therefore reach the same state,
//! and any difference means the stored state was changed behind the log's
//! back.

use serde_json::{Map, Value};
use xgate_ledger::{StoreError, WriteBatch};

use super::custody::{self, Asset, Context, Refusal};
use super::model::{Answer, Body, Offer, Register, Report};
use super::reconcile::{self, Notices};
use super::state::{self, StateRead};
use crate::kind::Kind;

/// An asset envelope's body, parsed for its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `asset.register`.
    Register(Register),
    /// `asset.transfer.offer`.
    Offer(Offer),
    /// `asset.transfer.accept`.
    Accept(Answer),
    /// `asset.transfer.reject`.
    Reject(Answer),
    /// `inventory.report`.
    Report(Report),
}

impl Op {
    /// Parses `body` as the body of `kind`: `Ok(None)` if `kind` is not an
    /// asset kind.
    ///
    /// # Errors
    /// A message naming the field at fault.
    pub fn parse(kind: Kind, body: &Map<String, Value>) -> Result<Option<Op>, String> {
        Ok(Some(match kind {
            Kind::AssetRegister => Op::Register(Register::parse(body)?),
            Kind::AssetTransferOffer => Op::Offer(Offer::parse(body)?),
            Kind::AssetTransferAccept => Op::Accept(Answer::parse(body)?),
            Kind::AssetTransferReject => Op::Reject(Answer::parse(body)?),
            Kind::InventoryReport => Op::Report(Report::parse(body)?),
            _ => return Ok(None),
        }))
    }

    /// Whether `kind` is an asset kind.
    pub fn handles(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::AssetRegister
                | Kind::AssetTransferOffer
                | Kind::AssetTransferAccept
                | Kind::AssetTransferReject
                | Kind::InventoryReport
        )
    }

    /// Its envelope kind.
    pub fn kind(&self) -> Kind {
        match self {
            Op::Register(_) => Kind::AssetRegister,
            Op::Offer(_) => Kind::AssetTransferOffer,
            Op::Accept(_) => Kind::AssetTransferAccept,
            Op::Reject(_) => Kind::AssetTransferReject,
            Op::Report(_) => Kind::InventoryReport,
        }
    }

    /// The asset it is about, for the log entry; none for a report.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Op::Register(r) => Some(&r.tag),
            Op::Offer(o) => Some(&o.tag),
            Op::Accept(a) | Op::Reject(a) => Some(&a.tag),
            Op::Report(_) => None,
        }
    }

    /// The person it names, whose salted hash goes into the log entry: the
    /// first holder, the proposed holder, or whoever made the count.
    pub fn person(&self) -> Option<&str> {
        match self {
            Op::Register(r) => Some(&r.holder.person),
            Op::Offer(o) => Some(&o.to.person),
            Op::Accept(_) | Op::Reject(_) => None,
            Op::Report(r) => Some(&r.reported_by),
        }
    }
}

/// Why an envelope could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A custody rule refuses it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The state could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `op`, the body of the envelope `ctx` describes, to `state`,
/// adding its writes to `batch`. `expires` is an offer's expiry, as logged.
/// Returns the reconciliation report of an inventory report.
///
/// # Errors
/// The custody rule broken (then `batch` may hold partial writes and must
/// be dropped), or a storage failure.
pub fn apply(
    op: &Op,
    ctx: &Context<'_>,
    expires: Option<i64>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<Option<reconcile::Report>, ApplyError> {
    let kind = op.kind().as_str();
    let mut notices = Notices::new(ctx, kind);
    if let Op::Report(report) = op {
        return Ok(Some(reconcile::reconcile(report, ctx, state, batch)?));
    }
    let tag = op.tag().unwrap_or_default();
    let existing = state::asset(state, tag)?;
    let (next, event) = match op {
        Op::Register(r) => custody::register(existing.as_ref(), r, ctx)?,
        Op::Offer(o) => {
            let expires = expires.ok_or_else(|| StoreError("an offer without an expiry".into()))?;
            custody::offer(existing.as_ref(), o, expires, ctx)?
        }
        Op::Accept(a) => custody::answer(existing.as_ref(), a, true, ctx)?,
        Op::Reject(a) => custody::answer(existing.as_ref(), a, false, ctx)?,
        // Handled above.
        Op::Report(_) => return Ok(None),
    };
    index(existing.as_ref(), &next, batch);
    match op {
        Op::Register(_) => {
            reconcile::resolve(
                state,
                tag,
                |k| k == reconcile::Kind::UnknownTag,
                &mut notices,
                batch,
            )?;
        }
        // Both parties have confirmed who holds it.
        Op::Accept(_) => {
            reconcile::resolve(state, tag, |_| true, &mut notices, batch)?;
        }
        _ => {}
    }
    state::write(batch, state::event_key(tag, ctx.log_index), &event);
    state::write(batch, state::asset_key(tag), &next);
    Ok(None)
}

/// Keeps the holder and location indexes in step with a record's change.
fn index(before: Option<&Asset>, after: &Asset, batch: &mut WriteBatch) {
    let moved = before
        .is_none_or(|b| b.holder.agency != after.holder.agency || b.location != after.location);
    if !moved {
        return;
    }
    if let Some(b) = before {
        batch.delete(state::located_key(&b.holder.agency, &b.location, &b.tag));
    }
    batch.put(
        state::located_key(&after.holder.agency, &after.location, &after.tag),
        Vec::new(),
    );
    batch.put(
        state::held_key(&after.holder.agency, &after.tag),
        Vec::new(),
    );
}
