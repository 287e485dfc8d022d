//! The custody rules as a pure function: given an asset's record (or none)
//! and one envelope's body, sender, recipient and acceptance time, the new
//! record or the rule it breaks.
//!
//! Nothing here reads a clock or a store, so the gateway (deciding in log
//! order, in the committer) and an auditor replaying the log get the same
//! answer from the same inputs. Times are the seconds-since-epoch the
//! gateway recorded in each log entry.
//!
//! Rules:
//! - `asset.register`: addressed to the sender itself; only the holder's
//!   agency may register; a tag is registered once, federation-wide.
//! - `asset.transfer.offer`: only the current holder's agency may offer,
//!   addressed to the receiving agency (itself, within one agency); one open
//!   offer per asset; an offer expires after the configured time.
//! - `asset.transfer.accept` / `reject`: sent by the receiving agency back to
//!   the offering one, naming the open offer's `jti`; custody changes only
//!   on accept; an offer a contract holds for a second approval
//!   (`require_second_approval`, docs/contracts.md) cannot be answered yet.
//! - `contract.approve` / `contract.deny`: sent by the offering agency to
//!   itself, naming the held offer's asset and the act that holds it; an
//!   approval names another person than the holder who offered it (the
//!   two-person rule) and lets the offer be answered; a denial withdraws
//!   the offer.

use serde::{Deserialize, Serialize};

use super::model::{Answer, Approval, Holder, Offer, Register};
use crate::apply::facts::Facts;
use crate::registry::AgencyId;

/// Default time an offer stays open: 72 hours.
pub const DEFAULT_OFFER_TTL: i64 = 72 * 3600;

/// One asset's current state. Its custody chain is kept beside it, one
/// [`Event`] per accepted envelope, so a record's size does not grow with
/// its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// The tag.
    pub tag: String,
    /// Manufacturer serial number.
    pub serial: String,
    /// Kind of asset.
    pub category: String,
    /// Free text.
    pub description: String,
    /// Who holds it now.
    pub holder: Holder,
    /// Where it is kept: inventory reports expect it there.
    pub location: String,
    /// The open offer, if any (it may have expired; see [`Asset::open_offer`]).
    pub offer: Option<OpenOffer>,
    /// Log index of the registration.
    pub registered: u64,
    /// Log index of the last custody event.
    pub updated: u64,
}

/// An offer waiting for an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOffer {
    /// The offer envelope's `jti`.
    pub jti: String,
    /// The proposed holder.
    pub to: Holder,
    /// When it lapses, seconds since the epoch (recorded in the offer's log
    /// entry, so a replay uses the expiry in force when it was made).
    pub expires: i64,
    /// A contract's hold: the offer cannot be answered until a second
    /// person of the offering agency approves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// A hold a contract put on an offer (the two-person rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The log index of the act that put it.
    pub act: u64,
    /// The person who held the asset when it was offered: the one who may
    /// not approve it.
    pub actor: String,
}

/// What happened to an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// It entered custody.
    Registered,
    /// A transfer was offered.
    Offered,
    /// The offer was accepted: custody moved.
    Accepted,
    /// The offer was rejected.
    Rejected,
    /// A held offer was approved by a second person.
    Approved,
    /// A held offer was denied, and withdrawn.
    Denied,
}

/// One custody event, with where its envelope is in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The log index of the envelope's entry (its receipt).
    pub log_index: u64,
    /// The envelope id (hex SHA-256 of the JWS), for its receipt.
    pub envelope: String,
    /// When the gateway accepted it.
    pub time: i64,
    /// The agency that sent it.
    pub by: AgencyId,
    /// The envelope's `jti`.
    pub jti: String,
    /// The holder it names: the first holder, the proposed one, or the new
    /// one; none for a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// A broken custody rule. Each maps to an API error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// 409 `asset_exists`.
    #[error("asset {0} is already registered")]
    AssetExists(String),
    /// 404 `not_found`.
    #[error("no asset {0} is registered")]
    UnknownAsset(String),
    /// 403 `not_holder`.
    #[error("{0}")]
    NotHolder(String),
    /// 409 `offer_pending`.
    #[error("asset {0} already has an open offer")]
    OfferPending(String),
    /// 409 `no_open_offer`.
    #[error("asset {0} has no open offer with that jti (never made, answered or expired)")]
    NoOpenOffer(String),
    /// 422 `wrong_audience`.
    #[error("{0}")]
    WrongAudience(String),
    /// 409 `awaiting_approval`.
    #[error(
        "the offer of asset {0} awaits a second approval (contract.approve) before it can be answered"
    )]
    AwaitingApproval(String),
    /// 409 `no_hold`.
    #[error("asset {0} has no open offer held by that act")]
    NoHold(String),
    /// 403 `same_person`.
    #[error(
        "the second approval of asset {0} names the person who offered it: another person of the agency must approve"
    )]
    SamePerson(String),
}

/// The custody event of the envelope `facts` describes.
fn event(facts: &Facts<'_>, kind: EventKind, holder: Option<Holder>) -> Event {
    Event {
        kind,
        log_index: facts.log_index,
        envelope: facts.envelope.to_owned(),
        time: facts.time,
        by: facts.sender.clone(),
        jti: facts.jti.to_owned(),
        holder,
    }
}

impl Asset {
    /// The open offer, if there is one that has not expired at `time`.
    pub fn open_offer(&self, time: i64) -> Option<&OpenOffer> {
        self.offer.as_ref().filter(|o| time < o.expires)
    }
}

/// An accepted custody change: the asset's new record and the event that
/// joins its chain.
pub type Change = (Asset, Event);

/// `asset.register` against the existing record for its tag, if any.
///
/// # Errors
/// The rule broken.
pub fn register(
    existing: Option<&Asset>,
    body: &Register,
    facts: &Facts<'_>,
) -> Result<Change, Refusal> {
    if facts.recipient != facts.sender {
        return Err(Refusal::WrongAudience(
            "asset.register is addressed to the sender's own agency".into(),
        ));
    }
    if body.holder.agency != *facts.sender {
        return Err(Refusal::NotHolder(
            "only the holder's agency may register an asset".into(),
        ));
    }
    if existing.is_some() {
        return Err(Refusal::AssetExists(body.tag.clone()));
    }
    let asset = Asset {
        tag: body.tag.clone(),
        serial: body.serial.clone(),
        category: body.category.clone(),
        description: body.description.clone(),
        holder: body.holder.clone(),
        location: body.location.clone(),
        offer: None,
        registered: facts.log_index,
        updated: facts.log_index,
    };
    Ok((
        asset,
        event(facts, EventKind::Registered, Some(body.holder.clone())),
    ))
}

/// `asset.transfer.offer`, open until `expires`.
///
/// # Errors
/// The rule broken.
pub fn offer(
    existing: Option<&Asset>,
    body: &Offer,
    expires: i64,
    facts: &Facts<'_>,
) -> Result<Change, Refusal> {
    let asset = existing.ok_or_else(|| Refusal::UnknownAsset(body.tag.clone()))?;
    if asset.holder.agency != *facts.sender {
        return Err(Refusal::NotHolder(format!(
            "only the holder's agency may offer asset {}",
            body.tag
        )));
    }
    if body.to.agency != *facts.recipient {
        return Err(Refusal::WrongAudience(
            "an offer is addressed to the receiving agency (to.agency)".into(),
        ));
    }
    if asset.open_offer(facts.time).is_some() {
        return Err(Refusal::OfferPending(body.tag.clone()));
    }
    let mut next = asset.clone();
    next.offer = Some(OpenOffer {
        jti: facts.jti.to_owned(),
        to: body.to.clone(),
        expires,
        hold: None,
    });
    next.updated = facts.log_index;
    Ok((
        next,
        event(facts, EventKind::Offered, Some(body.to.clone())),
    ))
}

/// `asset.transfer.accept` (`accept` true) or `reject`.
///
/// # Errors
/// The rule broken.
pub fn answer(
    existing: Option<&Asset>,
    body: &Answer,
    accept: bool,
    facts: &Facts<'_>,
) -> Result<Change, Refusal> {
    let asset = existing.ok_or_else(|| Refusal::UnknownAsset(body.tag.clone()))?;
    let open = asset
        .open_offer(facts.time)
        .filter(|o| o.jti == body.offer)
        .ok_or_else(|| Refusal::NoOpenOffer(body.tag.clone()))?;
    if open.hold.is_some() {
        return Err(Refusal::AwaitingApproval(body.tag.clone()));
    }
    if open.to.agency != *facts.sender {
        return Err(Refusal::NotHolder(format!(
            "only the agency offered asset {} may answer the offer",
            body.tag
        )));
    }
    if asset.holder.agency != *facts.recipient {
        return Err(Refusal::WrongAudience(
            "an answer is addressed to the offering agency".into(),
        ));
    }
    let mut next = asset.clone();
    let event = if accept {
        next.holder = open.to.clone();
        if let Some(location) = &body.location {
            next.location = location.clone();
        }
        event(facts, EventKind::Accepted, Some(open.to.clone()))
    } else {
        event(facts, EventKind::Rejected, None)
    };
    next.offer = None;
    next.updated = facts.log_index;
    Ok((next, event))
}

/// A contract's hold on the open offer `jti` of `asset`, put by the act at
/// `act`: the asset's record with the offer held.
///
/// # Errors
/// No such open offer, or one held already.
pub fn hold(asset: &Asset, jti: &str, act: u64, time: i64) -> Result<Asset, Refusal> {
    let mut next = asset.clone();
    let open = next
        .offer
        .as_mut()
        .filter(|o| time < o.expires && o.jti == jti)
        .ok_or_else(|| Refusal::NoOpenOffer(asset.tag.clone()))?;
    if open.hold.is_some() {
        return Err(Refusal::AwaitingApproval(asset.tag.clone()));
    }
    open.hold = Some(Hold {
        act,
        actor: asset.holder.person.clone(),
    });
    Ok(next)
}

/// `contract.approve` (`approve` true) or `contract.deny` of the held
/// offer of `body.tag`.
///
/// # Errors
/// The rule broken.
pub fn settle_hold(
    existing: Option<&Asset>,
    body: &Approval,
    approve: bool,
    facts: &Facts<'_>,
) -> Result<Change, Refusal> {
    let asset = existing.ok_or_else(|| Refusal::UnknownAsset(body.tag.clone()))?;
    if facts.recipient != facts.sender {
        return Err(Refusal::WrongAudience(
            "an approval or denial is addressed to the sender's own agency".into(),
        ));
    }
    if asset.holder.agency != *facts.sender {
        return Err(Refusal::NotHolder(format!(
            "only the holder's agency may approve or deny the offer of asset {}",
            body.tag
        )));
    }
    let open = asset
        .open_offer(facts.time)
        .filter(|o| o.hold.as_ref().is_some_and(|h| h.act == body.act))
        .ok_or_else(|| Refusal::NoHold(body.tag.clone()))?;
    let mut next = asset.clone();
    let event = if approve {
        if open.hold.as_ref().is_some_and(|h| h.actor == body.approver) {
            return Err(Refusal::SamePerson(body.tag.clone()));
        }
        if let Some(offer) = next.offer.as_mut() {
            offer.hold = None;
        }
        event(facts, EventKind::Approved, None)
    } else {
        next.offer = None;
        event(facts, EventKind::Denied, None)
    };
    next.updated = facts.log_index;
    Ok((next, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Stamp;

    fn id(s: &str) -> AgencyId {
        s.parse().expect("id")
    }

    fn holder(agency: &str, person: &str) -> Holder {
        Holder {
            agency: id(agency),
            person: person.into(),
        }
    }

    struct At {
        sender: AgencyId,
        recipient: AgencyId,
        jti: String,
        envelope: String,
        time: i64,
        index: u64,
    }

    impl At {
        fn new(sender: &str, recipient: &str, jti: &str, time: i64, index: u64) -> At {
            At {
                sender: id(sender),
                recipient: id(recipient),
                jti: jti.into(),
                envelope: format!("e-{jti}"),
                time,
                index,
            }
        }

        fn ctx(&self) -> Facts<'_> {
            let stamp = Stamp {
                time: self.time,
                ..Stamp::default()
            };
            Facts::new(
                &self.sender,
                &self.recipient,
                &self.jti,
                &self.envelope,
                stamp,
                self.index,
            )
        }
    }

    fn laptop() -> Register {
        Register {
            tag: "LAP-1".into(),
            serial: "SN1".into(),
            category: "laptop".into(),
            description: "x".into(),
            holder: holder("treasury", "p-1"),
            location: "HQ".into(),
        }
    }

    #[test]
    fn register_offer_accept_moves_custody_and_records_each_event() {
        let (a, registered) = register(
            None,
            &laptop(),
            &At::new("treasury", "treasury", "r1", 100, 0).ctx(),
        )
        .expect("register");
        let offer_body = Offer {
            tag: "LAP-1".into(),
            to: holder("gsa", "p-9"),
            reason: "loan".into(),
        };
        let (a, offered) = offer(
            Some(&a),
            &offer_body,
            200 + DEFAULT_OFFER_TTL,
            &At::new("treasury", "gsa", "o1", 200, 1).ctx(),
        )
        .expect("offer");
        assert_eq!(
            a.open_offer(200).map(|o| o.expires),
            Some(200 + DEFAULT_OFFER_TTL)
        );
        let accept = Answer {
            tag: "LAP-1".into(),
            offer: "o1".into(),
            location: Some("Annex".into()),
        };
        let (a, accepted) = answer(
            Some(&a),
            &accept,
            true,
            &At::new("gsa", "treasury", "a1", 300, 2).ctx(),
        )
        .expect("accept");
        assert_eq!(a.holder, holder("gsa", "p-9"));
        assert_eq!(a.location, "Annex");
        assert_eq!(a.offer, None);
        assert_eq!((a.registered, a.updated), (0, 2));
        let events = [registered, offered, accepted];
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [
                EventKind::Registered,
                EventKind::Offered,
                EventKind::Accepted
            ]
        );
        assert_eq!(
            events.iter().map(|e| e.log_index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(events[2].envelope, "e-a1");
        assert_eq!(events[2].holder, Some(holder("gsa", "p-9")));
    }

    #[test]
    fn every_rule_is_enforced() {
        let (reg, _) = register(
            None,
            &laptop(),
            &At::new("treasury", "treasury", "r1", 100, 0).ctx(),
        )
        .expect("register");
        // Register: duplicate, wrong holder agency, wrong audience.
        let dup = register(
            Some(&reg),
            &laptop(),
            &At::new("treasury", "treasury", "r2", 101, 1).ctx(),
        );
        assert!(matches!(dup, Err(Refusal::AssetExists(_))));
        let foreign = register(None, &laptop(), &At::new("gsa", "gsa", "r3", 101, 1).ctx());
        assert!(matches!(foreign, Err(Refusal::NotHolder(_))));
        let aimed = register(
            None,
            &laptop(),
            &At::new("treasury", "gsa", "r4", 101, 1).ctx(),
        );
        assert!(matches!(aimed, Err(Refusal::WrongAudience(_))));

        // Offer: not the holder, wrong audience, unknown asset, pending.
        let to_gsa = Offer {
            tag: "LAP-1".into(),
            to: holder("gsa", "p"),
            reason: "r".into(),
        };
        let ttl = 1000;
        let by_gsa = offer(
            Some(&reg),
            &to_gsa,
            ttl,
            &At::new("gsa", "gsa", "o0", 150, 1).ctx(),
        );
        assert!(matches!(by_gsa, Err(Refusal::NotHolder(_))));
        let misaddressed = offer(
            Some(&reg),
            &to_gsa,
            ttl,
            &At::new("treasury", "hhs", "o0", 150, 1).ctx(),
        );
        assert!(matches!(misaddressed, Err(Refusal::WrongAudience(_))));
        assert!(matches!(
            offer(
                None,
                &to_gsa,
                ttl,
                &At::new("treasury", "gsa", "o0", 150, 1).ctx()
            ),
            Err(Refusal::UnknownAsset(_))
        ));
        let (offered, _) = offer(
            Some(&reg),
            &to_gsa,
            200 + ttl,
            &At::new("treasury", "gsa", "o1", 200, 1).ctx(),
        )
        .expect("offer");
        let again = offer(
            Some(&offered),
            &to_gsa,
            ttl,
            &At::new("treasury", "gsa", "o2", 300, 2).ctx(),
        );
        assert!(matches!(again, Err(Refusal::OfferPending(_))));

        // Answers: wrong jti, wrong agency, wrong audience, expired.
        let answer_o1 = Answer {
            tag: "LAP-1".into(),
            offer: "o1".into(),
            location: None,
        };
        let wrong_jti = Answer {
            tag: "LAP-1".into(),
            offer: "nope".into(),
            location: None,
        };
        assert!(matches!(
            answer(
                Some(&offered),
                &wrong_jti,
                true,
                &At::new("gsa", "treasury", "a", 300, 2).ctx()
            ),
            Err(Refusal::NoOpenOffer(_))
        ));
        assert!(matches!(
            answer(
                Some(&offered),
                &answer_o1,
                true,
                &At::new("hhs", "treasury", "a", 300, 2).ctx()
            ),
            Err(Refusal::NotHolder(_))
        ));
        assert!(matches!(
            answer(
                Some(&offered),
                &answer_o1,
                true,
                &At::new("gsa", "hhs", "a", 300, 2).ctx()
            ),
            Err(Refusal::WrongAudience(_))
        ));
        assert!(matches!(
            answer(
                Some(&offered),
                &answer_o1,
                true,
                &At::new("gsa", "treasury", "a", 1200, 2).ctx()
            ),
            Err(Refusal::NoOpenOffer(_))
        ));
        // An expired offer no longer blocks a new one.
        offer(
            Some(&offered),
            &to_gsa,
            ttl,
            &At::new("treasury", "gsa", "o3", 1200, 2).ctx(),
        )
        .expect("a new offer after expiry");

        // Reject keeps custody and closes the offer.
        let (rejected, event) = answer(
            Some(&offered),
            &answer_o1,
            false,
            &At::new("gsa", "treasury", "a", 300, 2).ctx(),
        )
        .expect("reject");
        assert_eq!(rejected.holder, reg.holder);
        assert_eq!(rejected.offer, None);
        assert_eq!((event.kind, event.holder), (EventKind::Rejected, None));
    }
}

#[cfg(test)]
mod properties {
    //! Random sequences of custody operations against a reference model
    //! written separately from the rules: each operation is accepted or
    //! refused exactly when the model says, and the record agrees with it.

    use super::*;
    use crate::entry::Stamp;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const AGENCIES: [&str; 3] = ["state", "treasury", "gsa"];
    const TTL: i64 = 50;

    #[derive(Clone, Debug)]
    enum Op {
        Register {
            tag: u8,
            by: usize,
        },
        Offer {
            tag: u8,
            by: usize,
            to: usize,
        },
        Answer {
            tag: u8,
            by: usize,
            accept: bool,
            stale: bool,
        },
    }

    fn op() -> impl Strategy<Value = (Op, i64)> {
        let a = 0..AGENCIES.len();
        (
            prop_oneof![
                (0..4u8, a.clone()).prop_map(|(tag, by)| Op::Register { tag, by }),
                (0..4u8, a.clone(), a.clone()).prop_map(|(tag, by, to)| Op::Offer { tag, by, to }),
                (0..4u8, a, any::<bool>(), any::<bool>()).prop_map(|(tag, by, accept, stale)| {
                    Op::Answer {
                        tag,
                        by,
                        accept,
                        stale,
                    }
                }),
            ],
            0..30i64,
        )
    }

    /// An open offer in the model: jti, receiving agency, expiry.
    type ModelOffer = (String, usize, i64);

    /// The model: per tag, the holder agency and the open offer.
    #[derive(Default)]
    struct Model {
        assets: HashMap<u8, (usize, Option<ModelOffer>)>,
    }

    proptest! {
        #[test]
        fn rules_agree_with_the_reference_model(ops in proptest::collection::vec(op(), 1..200)) {
            let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
            let mut records: HashMap<u8, Asset> = HashMap::new();
            let mut chains: HashMap<u8, Vec<Event>> = HashMap::new();
            let mut model = Model::default();
            let (mut time, mut index) = (0i64, 0u64);
            for (n, (op, dt)) in ops.into_iter().enumerate() {
                time += dt;
                let jti = format!("j{n}");
                match op {
                    Op::Register { tag, by } => {
                        let body = Register {
                            tag: format!("T{tag}"), serial: "s".into(), category: "c".into(),
                            description: "d".into(),
                            holder: Holder { agency: ids[by].clone(), person: "p".into() },
                            location: "l".into(),
                        };
                        let ctx = Facts::new(&ids[by], &ids[by], &jti, &jti, Stamp { time, ..Stamp::default() }, index);
                        let got = register(records.get(&tag), &body, &ctx);
                        let expect = !model.assets.contains_key(&tag);
                        prop_assert_eq!(got.is_ok(), expect);
                        if let Ok((asset, event)) = got {
                            model.assets.insert(tag, (by, None));
                            records.insert(tag, asset);
                            chains.entry(tag).or_default().push(event);
                            index += 1;
                        }
                    }
                    Op::Offer { tag, by, to } => {
                        let body = Offer {
                            tag: format!("T{tag}"),
                            to: Holder { agency: ids[to].clone(), person: "q".into() },
                            reason: "r".into(),
                        };
                        let ctx = Facts::new(&ids[by], &ids[to], &jti, &jti, Stamp { time, ..Stamp::default() }, index);
                        let got = offer(records.get(&tag), &body, time + TTL, &ctx);
                        let expect = model.assets.get(&tag).is_some_and(|(holder, open)| {
                            *holder == by && open.as_ref().is_none_or(|(_, _, exp)| time >= *exp)
                        });
                        prop_assert_eq!(got.is_ok(), expect);
                        if let Ok((asset, event)) = got {
                            if let Some(entry) = model.assets.get_mut(&tag) {
                                entry.1 = Some((jti.clone(), to, time + TTL));
                            }
                            records.insert(tag, asset);
                            chains.entry(tag).or_default().push(event);
                            index += 1;
                        }
                    }
                    Op::Answer { tag, by, accept, stale } => {
                        let named = match model.assets.get(&tag).and_then(|(_, o)| o.as_ref()) {
                            Some((j, _, _)) if !stale => j.clone(),
                            _ => "not-an-offer".to_owned(),
                        };
                        let holder = model.assets.get(&tag).map_or(0, |(h, _)| *h);
                        let body = Answer { tag: format!("T{tag}"), offer: named.clone(), location: None };
                        let ctx = Facts::new(&ids[by], &ids[holder], &jti, &jti, Stamp { time, ..Stamp::default() }, index);
                        let got = answer(records.get(&tag), &body, accept, &ctx);
                        let expect = model.assets.get(&tag).is_some_and(|(_, open)| {
                            open.as_ref().is_some_and(|(j, to, exp)| *j == named && *to == by && time < *exp)
                        });
                        prop_assert_eq!(got.is_ok(), expect);
                        if let Ok((asset, event)) = got {
                            chains.entry(tag).or_default().push(event);
                            if let Some(entry) = model.assets.get_mut(&tag) {
                                if accept {
                                    entry.0 = by;
                                }
                                entry.1 = None;
                            }
                            records.insert(tag, asset);
                            index += 1;
                        }
                    }
                }
            }
            // The records agree with the model, and every accepted
            // operation left exactly one event, in index order.
            let mut events = 0;
            for (tag, asset) in &records {
                let (holder, open) = &model.assets[tag];
                prop_assert_eq!(&asset.holder.agency, &ids[*holder]);
                prop_assert_eq!(asset.offer.as_ref().map(|o| o.jti.clone()), open.as_ref().map(|o| o.0.clone()));
                let chain = &chains[tag];
                prop_assert!(chain.windows(2).all(|w| w[0].log_index < w[1].log_index));
                prop_assert_eq!(chain.last().map(|e| e.log_index), Some(asset.updated));
                events += chain.len() as u64;
            }
            prop_assert_eq!(events, index);
        }
    }
}
