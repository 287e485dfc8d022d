//! The asset operations: an accepted asset envelope applied to the state
//! (custody rules, the holder, location and offer indexes, and
//! reconciliation), one step of the fold [`crate::apply::apply`] runs for
//! the live commit and for `xgate audit replay` alike.

use serde_json::{Map, Value};
use xgate_ledger::{StoreError, WriteBatch};

use super::body::BodyError;
use super::facts::Facts;
use super::state::{EncodeError, StateError, StateRead, read, write};
use crate::assets::custody::{self, Asset, Event, Refusal};
use crate::assets::dossier::{Dossier, Imported};
use crate::assets::model::{Answer, Approval, AssetBody as _, Offer, Register, Report};
use crate::assets::reconcile::{self, DiscrepancyKind, Notices, Survey};
use crate::assets::state;
use crate::kind::Kind;
use crate::registry::AgencyId;

/// An asset envelope's body, parsed for its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `asset.register`.
    Register(Register),
    /// `asset.transfer.offer`.
    Offer(Offer),
    /// `asset.transfer.offer` forwarded by the holder's gateway, with the
    /// asset's dossier (checked already: [`Dossier::check`]).
    OfferIn(Box<Incoming>),
    /// `asset.transfer.accept`.
    Accept(Answer),
    /// `asset.transfer.reject`.
    Reject(Answer),
    /// `inventory.report`.
    Report(Report),
    /// `contract.approve`.
    Approve(Approval),
    /// `contract.deny`.
    Deny(Approval),
}

impl Op {
    /// Parses `body` as the body of `kind`: `Ok(None)` if `kind` is not an
    /// asset kind.
    ///
    /// # Errors
    /// The field at fault.
    pub fn parse(kind: Kind, body: &Map<String, Value>) -> Result<Option<Op>, BodyError> {
        let op = match kind {
            Kind::AssetRegister => Register::parse(body).map(Op::Register),
            Kind::AssetTransferOffer => Offer::parse(body).map(Op::Offer),
            Kind::AssetTransferAccept => Answer::parse(body).map(Op::Accept),
            Kind::AssetTransferReject => Answer::parse_reject(body).map(Op::Reject),
            Kind::InventoryReport => Report::parse(body).map(Op::Report),
            Kind::ContractApprove => Approval::parse(body).map(Op::Approve),
            Kind::ContractDeny => Approval::parse(body).map(Op::Deny),
            _ => return Ok(None),
        };
        op.map(Some).map_err(BodyError::invalid)
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
                | Kind::ContractApprove
                | Kind::ContractDeny
        )
    }

    /// Its envelope kind.
    pub fn kind(&self) -> Kind {
        match self {
            Op::Register(_) => Kind::AssetRegister,
            Op::Offer(_) | Op::OfferIn(_) => Kind::AssetTransferOffer,
            Op::Accept(_) => Kind::AssetTransferAccept,
            Op::Reject(_) => Kind::AssetTransferReject,
            Op::Report(_) => Kind::InventoryReport,
            Op::Approve(_) => Kind::ContractApprove,
            Op::Deny(_) => Kind::ContractDeny,
        }
    }

    /// The asset it is about, for the log entry; none for a report.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Op::Register(r) => Some(&r.tag),
            Op::Offer(o) => Some(&o.tag),
            Op::OfferIn(i) => Some(&i.offer.tag),
            Op::Accept(a) | Op::Reject(a) => Some(&a.tag),
            Op::Approve(a) | Op::Deny(a) => Some(&a.tag),
            Op::Report(_) => None,
        }
    }

    /// The person it names, whose salted hash goes into the log entry: the
    /// first holder, the proposed holder, or whoever made the count.
    pub fn person(&self) -> Option<&str> {
        match self {
            Op::Register(r) => Some(&r.holder.person),
            Op::Offer(o) => Some(&o.to.person),
            Op::OfferIn(i) => Some(&i.offer.to.person),
            Op::Accept(_) | Op::Reject(_) => None,
            Op::Approve(a) | Op::Deny(a) => Some(&a.approver),
            Op::Report(r) => Some(&r.reported_by),
        }
    }
}

/// A forwarded offer and the dossier it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The offer.
    pub offer: Offer,
    /// The asset as its holder's gateway records it, and its chain.
    pub dossier: Dossier,
}

impl Op {
    /// This offer, forwarded with `dossier`; any other body as it is.
    #[must_use]
    pub fn with_dossier(self, dossier: Dossier) -> Op {
        match self {
            Op::Offer(offer) => Op::OfferIn(Box::new(Incoming { offer, dossier })),
            other => other,
        }
    }

    /// The offer's dossier, for a forwarded offer.
    pub fn dossier(&self) -> Option<&Dossier> {
        match self {
            Op::OfferIn(incoming) => Some(&incoming.dossier),
            _ => None,
        }
    }
}

/// Why an asset envelope could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// A custody rule refuses it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The state could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An offer whose entry records no expiry (a bug: the gateway sets one
    /// on every offer it accepts).
    #[error("an offer's entry records no expiry")]
    OfferWithoutExpiry,
}

impl From<StateError> for AssetError {
    fn from(e: StateError) -> AssetError {
        match e {
            StateError::Store(e) => AssetError::Store(e),
            StateError::Encode(e) => AssetError::Encode(e),
        }
    }
}

/// The survey of an inventory report by `sender` ([`reconcile::survey`]):
/// all its step reads of the state. `None` for the other asset kinds.
///
/// # Errors
/// A storage failure.
pub fn survey(
    op: &Op,
    sender: &AgencyId,
    state: &impl StateRead,
) -> Result<Option<Survey>, AssetError> {
    match op {
        Op::Report(report) => Ok(Some(reconcile::survey(report, sender, state)?)),
        _ => Ok(None),
    }
}

/// Applies `op`, the body of the envelope `facts` describes, to `state`,
/// adding its writes to `batch`. Returns the reconciliation report of an
/// inventory report.
///
/// # Errors
/// The custody rule broken (then `batch` may hold partial writes and must
/// be dropped), or a storage failure.
pub fn apply(
    op: &Op,
    facts: &Facts<'_>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<Option<reconcile::Report>, AssetError> {
    apply_surveyed(op, facts, state, None, batch)
}

/// [`apply`], with an inventory report's `survey` made already, by
/// [`survey`] of the same `op` and sender against the state as `state` is
/// now: the report is then settled without reading the state again.
///
/// # Errors
/// As [`apply`].
pub fn apply_surveyed(
    op: &Op,
    facts: &Facts<'_>,
    state: &impl StateRead,
    survey: Option<&Survey>,
    batch: &mut WriteBatch,
) -> Result<Option<reconcile::Report>, AssetError> {
    let kind = op.kind().as_str();
    let mut notices = Notices::new(facts, kind);
    if let Op::Report(report) = op {
        // A count is the agency's own business: it goes to nobody's inbox.
        if facts.recipient != facts.sender {
            return Err(Refusal::WrongAudience(
                "inventory.report is addressed to the sender's own agency".into(),
            )
            .into());
        }
        let settled = match survey {
            Some(survey) => reconcile::settle(survey, report, facts, batch)?,
            None => reconcile::reconcile(report, facts, state, batch)?,
        };
        return Ok(Some(settled));
    }
    let tag = op.tag().unwrap_or_default();
    let mut existing = state::asset(state, tag)?;
    if let Op::OfferIn(incoming) = op {
        let installed = import(existing.as_ref(), &incoming.dossier, facts, state, batch)?;
        index(existing.as_ref(), &installed, batch);
        existing = Some(installed);
    }
    let (next, event) = match op {
        Op::Register(r) => custody::register(existing.as_ref(), r, facts)?,
        Op::Offer(o) => {
            let expires = facts.expires.ok_or(AssetError::OfferWithoutExpiry)?;
            custody::offer(existing.as_ref(), o, expires, facts)?
        }
        Op::OfferIn(incoming) => {
            let expires = facts.expires.ok_or(AssetError::OfferWithoutExpiry)?;
            custody::offer(existing.as_ref(), &incoming.offer, expires, facts)?
        }
        Op::Accept(a) => custody::answer(existing.as_ref(), a, true, facts)?,
        Op::Reject(a) => custody::answer(existing.as_ref(), a, false, facts)?,
        Op::Approve(a) => custody::settle_hold(existing.as_ref(), a, true, facts)?,
        Op::Deny(a) => custody::settle_hold(existing.as_ref(), a, false, facts)?,
        // Handled above.
        Op::Report(_) => return Ok(None),
    };
    index(existing.as_ref(), &next, batch);
    // The offered-to index follows the offer: the last one made replaces
    // any lapsed one, an answer closes it.
    if let Some(offer) = existing.as_ref().and_then(|a| a.offer.as_ref()) {
        batch.delete(state::offered_key(&offer.to.agency, tag));
    }
    if let Some(offer) = &next.offer {
        batch.put(state::offered_key(&offer.to.agency, tag), Vec::new());
    }
    match op {
        Op::Register(_) => {
            reconcile::resolve(
                state,
                tag,
                |k| k == DiscrepancyKind::UnknownTag,
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
    write(batch, state::event_key(tag, facts.log_index), &event)?;
    write(batch, state::asset_key(tag), &next)?;
    Ok(None)
}

/// The record a forwarded offer's `dossier` makes of its asset here: the
/// holder's gateway's card over what this gateway knew (if it knew the
/// asset, it must agree on who holds it: else two gateways claim it), and
/// the dossier's events this gateway had not recorded yet, imported with
/// their receipts.
fn import(
    existing: Option<&Asset>,
    dossier: &Dossier,
    facts: &Facts<'_>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<Asset, AssetError> {
    let card = &dossier.asset;
    if let Some(known) = existing
        && known.holder.agency != card.holder.agency
    {
        return Err(Refusal::AssetExists(card.tag.clone()).into());
    }
    let mut known_envelopes = std::collections::HashSet::new();
    for key in state.keys(&state::events_prefix(&card.tag))? {
        if let Some(event) = read::<Event>(state, &key)? {
            known_envelopes.insert(event.envelope);
        }
    }
    let imported_keys = state.keys(&state::imported_prefix(&card.tag))?;
    for key in &imported_keys {
        if let Some(imported) = read::<Imported>(state, key)? {
            known_envelopes.insert(imported.event.envelope);
        }
    }
    let mut seq = u32::try_from(imported_keys.len()).unwrap_or(u32::MAX);
    for imported in &dossier.chain {
        if known_envelopes.insert(imported.event.envelope.clone()) {
            write(batch, state::imported_key(&card.tag, seq), imported)?;
            seq = seq.saturating_add(1);
        }
    }
    Ok(Asset {
        tag: card.tag.clone(),
        serial: card.serial.clone(),
        category: card.category.clone(),
        description: card.description.clone(),
        holder: card.holder.clone(),
        location: card.location.clone(),
        offer: None,
        registered: existing.map_or(facts.log_index, |k| k.registered),
        updated: facts.log_index,
    })
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

#[cfg(test)]
mod tests {
    //! The fold over a small in-memory state: each discrepancy type, no
    //! duplicate notices, and resolutions by a later count and by a transfer.

    use serde_json::json;

    use super::*;
    use crate::apply::state::Memory;
    use crate::assets::reconcile::{Notice, NoticeEvent, Report as Reconciliation};
    use crate::entry::Stamp;
    use crate::registry::AgencyId;

    struct World {
        state: Memory,
        index: u64,
        notices: Vec<Notice>,
    }

    impl World {
        fn new() -> World {
            World {
                state: Memory::default(),
                index: 0,
                notices: Vec::new(),
            }
        }

        /// Applies `kind`/`body` from `by` to `to`; returns the report, if any.
        fn send(
            &mut self,
            by: &str,
            to: &str,
            kind: Kind,
            body: serde_json::Value,
        ) -> Result<Option<Reconciliation>, AssetError> {
            let map = match body {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let op = Op::parse(kind, &map)
                .expect("valid body")
                .expect("asset kind");
            let (sender, recipient): (AgencyId, AgencyId) =
                (by.parse().expect("id"), to.parse().expect("id"));
            let jti = format!("j{}", self.index);
            let stamp = Stamp {
                time: 1000 + self.index as i64,
                expires: Some(10_000),
                uses: None,
                sent: None,
            };
            let facts = Facts::new(&sender, &recipient, &jti, "e", stamp, self.index);
            let mut batch = WriteBatch::new();
            let report = apply(&op, &facts, &self.state, &mut batch)?;
            for (_, v) in batch.pending_with_prefix(state::NOTICE_PREFIX) {
                if let Some(v) = v {
                    self.notices
                        .push(serde_json::from_slice(v).expect("notice"));
                }
            }
            self.state.apply(batch);
            self.index += 1;
            Ok(report)
        }

        fn register(&mut self, agency: &str, tag: &str, location: &str, person: &str) {
            self.send(
                agency,
                agency,
                Kind::AssetRegister,
                json!({"tag": tag, "serial": "s", "category": "laptop", "description": "d",
                    "holder": {"agency": agency, "person": person}, "location": location}),
            )
            .expect("register");
        }

        fn count(
            &mut self,
            agency: &str,
            location: &str,
            observed: serde_json::Value,
        ) -> Reconciliation {
            self.send(
                agency,
                agency,
                Kind::InventoryReport,
                json!({"location": location, "reported_by": "counter", "observed": observed}),
            )
            .expect("report")
            .expect("a reconciliation")
        }

        fn drain(&mut self) -> Vec<(NoticeEvent, String, DiscrepancyKind)> {
            self.notices
                .drain(..)
                .map(|n| (n.event, n.tag, n.kind))
                .collect()
        }
    }

    #[test]
    fn a_count_finds_each_discrepancy_type_once() {
        let mut w = World::new();
        w.register("treasury", "A", "HQ", "p1");
        w.register("treasury", "B", "HQ", "p2");
        w.register("treasury", "C", "Annex", "p3");
        w.register("gsa", "D", "HQ", "p4");
        w.register("treasury", "E", "HQ", "p5");
        let r = w.count(
            "treasury",
            "HQ",
            json!([{"tag": "A", "person": "p1"}, {"tag": "C"}, {"tag": "D"},
                   {"tag": "E", "person": "someone-else"}, {"tag": "Z"}, {"tag": "A"}]),
        );
        assert_eq!(r.missing, ["B"]);
        assert_eq!(r.unexpected, ["C", "D"]);
        assert_eq!(r.holder_mismatch, ["E"]);
        assert_eq!(r.unknown_tag, ["Z"]);
        assert_eq!((r.observed, r.counts.unexpected), (5, 2));
        assert_eq!(r.reconciliation_id, "5");
        let opened = w.drain();
        assert_eq!(opened.len(), 5);
        assert!(
            opened
                .iter()
                .all(|(e, _, _)| *e == NoticeEvent::Discrepancy)
        );
        // D is gsa's: gsa is told too.
        let d = reconcile::open_discrepancies(&w.state, "D").expect("read");
        assert_eq!(
            d[0].agencies
                .iter()
                .map(AgencyId::as_str)
                .collect::<Vec<_>>(),
            ["gsa", "treasury"]
        );

        // The same count again: the same report, no new notices.
        let again = w.count(
            "treasury",
            "HQ",
            json!([{"tag": "A"}, {"tag": "C"}, {"tag": "D"}, {"tag": "E", "person": "someone-else"}, {"tag": "Z"}]),
        );
        assert_eq!(again.missing, ["B"]);
        assert!(w.drain().is_empty());
    }

    #[test]
    fn counts_transfers_and_registrations_resolve_discrepancies() {
        let mut w = World::new();
        w.register("treasury", "A", "HQ", "p1");
        w.register("treasury", "B", "HQ", "p2");
        w.count("treasury", "HQ", json!([{"tag": "Z"}]));
        assert_eq!(w.drain().len(), 3);

        // A found where expected: its `missing` is resolved.
        let r = w.count("treasury", "HQ", json!([{"tag": "A"}, {"tag": "Z"}]));
        assert_eq!(r.resolved, ["A"]);
        assert_eq!(
            w.drain(),
            [(
                NoticeEvent::Resolved,
                "A".to_owned(),
                DiscrepancyKind::Missing
            )]
        );

        // Z registered: its `unknown_tag` is resolved.
        w.register("treasury", "Z", "HQ", "p9");
        assert_eq!(
            w.drain(),
            [(
                NoticeEvent::Resolved,
                "Z".to_owned(),
                DiscrepancyKind::UnknownTag
            )]
        );

        // B transferred to gsa: both parties confirm custody.
        w.send(
            "treasury",
            "gsa",
            Kind::AssetTransferOffer,
            json!({"tag": "B", "to": {"agency": "gsa", "person": "q"}, "reason": "loan"}),
        )
        .expect("offer");
        let offer = format!("j{}", w.index - 1);
        w.send(
            "gsa",
            "treasury",
            Kind::AssetTransferAccept,
            json!({"tag": "B", "offer": offer, "location": "Depot"}),
        )
        .expect("accept");
        assert_eq!(
            w.drain(),
            [(
                NoticeEvent::Resolved,
                "B".to_owned(),
                DiscrepancyKind::Missing
            )]
        );
        // The location index moved with it: HQ no longer expects B.
        let r = w.count("treasury", "HQ", json!([{"tag": "A"}, {"tag": "Z"}]));
        assert!(r.missing.is_empty(), "{:?}", r.missing);
        let gsa: AgencyId = "gsa".parse().expect("id");
        assert!(
            w.state
                .0
                .contains_key(&state::located_key(&gsa, "Depot", "B"))
        );
    }

    #[test]
    fn a_refused_envelope_writes_nothing() {
        let mut w = World::new();
        w.register("treasury", "A", "HQ", "p1");
        let before = w.state.0.clone();
        let err = w
            .send(
                "gsa",
                "treasury",
                Kind::AssetTransferOffer,
                json!({"tag": "A", "to": {"agency": "treasury", "person": "q"}, "reason": "r"}),
            )
            .expect_err("not the holder");
        assert!(matches!(err, AssetError::Refused(Refusal::NotHolder(_))));
        assert_eq!(w.state.0, before);
    }
}
