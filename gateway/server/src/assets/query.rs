//! What an agency may read of the asset state, and how it reads it.
//!
//! An agency sees an asset it holds or has held, and one it has been
//! offered while the offer is open (in listings too, so a receiving agency
//! finds what awaits its answer); an auditor (a registry role) sees every
//! asset. Anything else answers as if it did not exist, so tags held
//! elsewhere are not revealed. A reconciliation report is seen by the
//! agency that made the count and by auditors; it names no agency but the
//! reporter. A notice of the feed is seen by the agencies it concerns, each
//! named alone in it ([`notice`]), and by auditors whole.

use serde::Serialize;
use xgate_ledger::{Ledger, SignedCheckpoint, StoreError, StoreRead};

use super::custody::{Asset, OpenOffer};
use super::dossier::Imported;
use super::model::Holder;
use super::reconcile::{self, Discrepancy, DiscrepancyKind, Notice, Report};
use super::state;
use crate::apply::state::Stored;
use crate::receipt::Receipt;
use crate::registry::{AgencyId, Registry};
use crate::store_keys::last_part;

/// Where an asset stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Held, no offer open, not reported missing.
    Held,
    /// An offer is open.
    Offered,
    /// An offer is open, held by a contract until a second person of the
    /// holder's agency approves it (`contract.approve`).
    AwaitingApproval,
    /// An inventory count expected it and did not find it, and nothing
    /// since has shown where it is.
    Missing,
}

impl Status {
    /// Parses a `status` query value.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "held" => Some(Status::Held),
            "offered" => Some(Status::Offered),
            "awaiting_approval" => Some(Status::AwaitingApproval),
            "missing" => Some(Status::Missing),
            _ => None,
        }
    }
}

/// One asset as `GET /v1/assets/{tag}` shows it, with a receipt for each
/// custody event.
#[derive(Clone, Debug, Serialize)]
pub struct AssetView {
    /// The tag.
    pub tag: String,
    /// Serial number.
    pub serial: String,
    /// Kind of asset.
    pub category: String,
    /// Free text.
    pub description: String,
    /// Who holds it.
    pub holder: Holder,
    /// Where it is kept.
    pub location: String,
    /// Where it stands now.
    pub status: Status,
    /// The open offer, if any.
    pub offer: Option<OpenOffer>,
    /// Its open discrepancies.
    pub discrepancies: Vec<Discrepancy>,
    /// Every custody event, oldest first, each with its receipt.
    pub chain: Vec<Link>,
}

/// One custody event and the receipt of its envelope: against the latest
/// checkpoint of this log, or, for an event another gateway logged, the
/// receipt that came with the asset's dossier.
pub type Link = Imported;

/// One asset in a listing.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The tag.
    pub tag: String,
    /// Kind of asset.
    pub category: String,
    /// Who holds it.
    pub holder: Holder,
    /// Where it is kept.
    pub location: String,
    /// Where it stands now.
    pub status: Status,
}

/// Filters of `GET /v1/assets`; every one given must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The holder's agency.
    pub holder_agency: Option<AgencyId>,
    /// The holder.
    pub person: Option<String>,
    /// Where it is kept.
    pub location: Option<String>,
    /// Where it stands.
    pub status: Option<Status>,
}

/// Whether `caller` may see `asset` at `now`.
///
/// # Errors
/// A storage failure.
pub fn visible(
    store: &dyn StoreRead,
    registry: &Registry,
    caller: &AgencyId,
    asset: &Asset,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(registry.is_auditor(caller)
        || asset
            .open_offer(now)
            .is_some_and(|o| o.to.agency == *caller)
        || store.get(&state::held_key(caller, &asset.tag))?.is_some())
}

/// `tag` as `caller` may see it at `now`, with a receipt for each event:
/// `None` if it does not exist or is not the caller's to see.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn show(
    log: &dyn Ledger,
    registry: &Registry,
    caller: &AgencyId,
    tag: &str,
    now: i64,
) -> Result<Option<AssetView>, xgate_ledger::Error> {
    let store = log.store();
    let Some(asset) = state::asset(&Stored(store), tag)? else {
        return Ok(None);
    };
    if !visible(store, registry, caller, &asset, now)? {
        return Ok(None);
    }
    let discrepancies = reconcile::open_discrepancies(&Stored(store), tag)?;
    // Every commit signs a checkpoint, so the latest covers every event.
    let checkpoint = log
        .latest_checkpoint()
        .ok_or_else(|| StoreError("an asset is stored but the log has no checkpoint".into()))?;
    let chain = chain(log, tag, &checkpoint, None)?;
    Ok(Some(AssetView {
        status: status(&asset, &discrepancies, now),
        offer: asset.open_offer(now).cloned(),
        tag: asset.tag,
        serial: asset.serial,
        category: asset.category,
        description: asset.description,
        holder: asset.holder,
        location: asset.location,
        discrepancies,
        chain,
    }))
}

/// `tag`'s custody chain, each event with its receipt, oldest first: the
/// events other gateways logged (imported with their receipts) and this
/// log's (proven against `checkpoint`), in time order; with `before`,
/// only this log's events logged before that index.
///
/// # Errors
/// A storage failure, a corrupt record or a proof that cannot be read.
pub fn chain(
    log: &dyn Ledger,
    tag: &str,
    checkpoint: &SignedCheckpoint,
    before: Option<u64>,
) -> Result<Vec<Link>, xgate_ledger::Error> {
    let store = log.store();
    let mut links = state::imported(store, tag)?;
    for event in state::chain(store, tag)? {
        if before.is_some_and(|b| event.log_index >= b) {
            continue;
        }
        let receipt = Receipt::build(log, event.envelope.clone(), event.log_index, checkpoint)?;
        let sender_receipt = log
            .body(&state::sender_receipt_key(event.log_index))?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|_| StoreError("a stored sender gateway's receipt is corrupt".into()))
            })
            .transpose()?;
        links.push(Link {
            event,
            receipt,
            sender_receipt,
        });
    }
    // Stable: events of one time keep imported-first, then log order.
    links.sort_by_key(|l| l.event.time);
    Ok(links)
}

/// Up to `limit` assets `caller` may see that match `filter`, in tag order
/// after `after`, and whether more follow.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn list(
    store: &dyn StoreRead,
    registry: &Registry,
    caller: &AgencyId,
    filter: &Filter,
    after: Option<&str>,
    limit: usize,
    now: i64,
) -> Result<(Vec<Summary>, bool), StoreError> {
    // An auditor walks the whole register; anyone else the assets it holds
    // or has held, and those offered to it, merged in tag order.
    let tags: Box<dyn Iterator<Item = Result<String, StoreError>> + '_> =
        if registry.is_auditor(caller) {
            tags_after(store, state::asset_key(""), after)
        } else {
            Box::new(Merged {
                a: tags_after(store, state::held_prefix(caller), after).peekable(),
                b: tags_after(store, state::offered_prefix(caller), after).peekable(),
            })
        };
    let mut items = Vec::new();
    for tag in tags {
        let tag = tag?;
        let Some(asset) = state::asset(&Stored(store), &tag)? else {
            continue;
        };
        if !visible(store, registry, caller, &asset, now)? || !matches(&asset, filter) {
            continue;
        }
        let s = status(
            &asset,
            &reconcile::open_discrepancies(&Stored(store), &tag)?,
            now,
        );
        if filter.status.is_some_and(|want| want != s) {
            continue;
        }
        if items.len() == limit {
            return Ok((items, true));
        }
        items.push(Summary {
            tag: asset.tag,
            category: asset.category,
            holder: asset.holder,
            location: asset.location,
            status: s,
        });
    }
    Ok((items, false))
}

/// Report `index` as `caller` may see it.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn report(
    store: &dyn StoreRead,
    registry: &Registry,
    caller: &AgencyId,
    index: u64,
) -> Result<Option<Report>, StoreError> {
    Ok(reconcile::report(store, index)?
        .filter(|r| r.agency == caller.as_str() || registry.is_auditor(caller)))
}

/// `notice` as `caller` may see it, for the feed (live, resumed or from
/// the start): whole for an auditor; for an agency it concerns, with
/// `agencies` narrowed to that agency alone; for anyone else, `None`.
///
/// The notice is stored with every agency concerned (the feed is routed by
/// them, and `xgate audit replay` recomputes them), so it is redacted here,
/// as it is read: an `unexpected` count of a tag another agency holds
/// concerns both, and naming the holder to the counter would tell it who
/// holds what (issue 17, item 6). The holder learns who counted its asset
/// from the asset's `discrepancies`, which only the agencies that may see
/// the asset do.
pub fn notice(registry: &Registry, caller: &AgencyId, notice: &Notice) -> Option<Notice> {
    if registry.is_auditor(caller) {
        return Some(notice.clone());
    }
    if !notice.agencies.contains(caller) {
        return None;
    }
    Some(Notice {
        agencies: vec![caller.clone()],
        ..notice.clone()
    })
}

/// The tags under `prefix` (keys ending in a tag) after `after`.
fn tags_after<'a>(
    store: &'a dyn StoreRead,
    prefix: Vec<u8>,
    after: Option<&str>,
) -> Box<dyn Iterator<Item = Result<String, StoreError>> + 'a> {
    let mut from = prefix.clone();
    if let Some(tag) = after {
        from.extend_from_slice(tag.as_bytes());
        // The first key after `tag`.
        from.push(0);
    }
    Box::new(
        store
            .scan_prefix_from(&prefix, &from)
            .map(|kv| kv.map(|(key, _)| last_part(&key).unwrap_or_default())),
    )
}

/// Two ascending tag streams as one, without repeats.
struct Merged<I: Iterator<Item = Result<String, StoreError>>> {
    a: std::iter::Peekable<I>,
    b: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = Result<String, StoreError>>> Iterator for Merged<I> {
    type Item = Result<String, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => Ordering::Less,
            (None, Some(_)) | (_, Some(Err(_))) => Ordering::Greater,
            (Some(Ok(a)), Some(Ok(b))) => a.cmp(b),
        };
        match order {
            Ordering::Less => self.a.next(),
            Ordering::Greater => self.b.next(),
            Ordering::Equal => {
                self.b.next();
                self.a.next()
            }
        }
    }
}

fn matches(asset: &Asset, filter: &Filter) -> bool {
    filter
        .holder_agency
        .as_ref()
        .is_none_or(|a| *a == asset.holder.agency)
        && filter
            .person
            .as_ref()
            .is_none_or(|p| *p == asset.holder.person)
        && filter
            .location
            .as_ref()
            .is_none_or(|l| *l == asset.location)
}

fn status(asset: &Asset, open: &[Discrepancy], now: i64) -> Status {
    if open.iter().any(|d| d.kind == DiscrepancyKind::Missing) {
        Status::Missing
    } else if let Some(offer) = asset.open_offer(now) {
        match offer.hold {
            Some(_) => Status::AwaitingApproval,
            None => Status::Offered,
        }
    } else {
        Status::Held
    }
}
