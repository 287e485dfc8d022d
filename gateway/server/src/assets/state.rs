//! Where the asset state lives in the store, and how its records are read.
//!
//! Every key is under a prefix of [`crate::store_keys`], with the parts
//! after it separated by NUL:
//!
//! | key | value | what |
//! |---|---|---|
//! | `Ga` tag | [`Asset`] JSON | current state |
//! | `Gv` tag `0` index (u64 BE) | [`Event`] JSON | the custody chain |
//! | `Gg` tag `0` seq (u32 BE) | [`Imported`] JSON | events other gateways logged, with their receipts (from a forwarded offer's dossier) |
//! | `Gh` agency `0` tag | empty | the agency holds or has held it |
//! | `Gl` agency `0` location `0` tag | empty | where its holder keeps it |
//! | `Go` agency `0` tag | empty | an offer to the agency was made (it may have lapsed since) |
//! | `Gq` tag | [`Discrepancy`] list, JSON | its open discrepancies |
//! | `Gc` index (u64 BE) | [`Report`] JSON | a reconciliation report |
//! | `Gn` index (u64 BE) seq (u32 BE) | [`Notice`] JSON | discrepancy feed |
//!
//! The records of reconciliation (the last three) are read in
//! [`super::reconcile`], which writes them.
//!
//! [`Discrepancy`]: super::reconcile::Discrepancy
//! [`Report`]: super::reconcile::Report
//! [`Notice`]: super::reconcile::Notice
//!
//! All of it is state that `xgate audit replay` recomputes from the log and
//! the stored envelopes (kept under `Ge`, [`crate::inbox::kept_key`]).

use xgate_ledger::{StoreError, StoreRead};

use super::custody::{Asset, Event};
use super::dossier::Imported;
use crate::apply::state::{StateRead, corrupt, read};
use crate::registry::AgencyId;
use crate::store_keys::Prefix;

/// The record of `tag`.
pub fn asset_key(tag: &str) -> Vec<u8> {
    Prefix::Asset.key(&[tag.as_bytes()])
}

/// The chain of `tag`: every key of its events starts with this.
pub fn events_prefix(tag: &str) -> Vec<u8> {
    Prefix::CustodyEvent.key(&[tag.as_bytes(), b""])
}

/// The key of an event of `tag` at `index`.
pub fn event_key(tag: &str, index: u64) -> Vec<u8> {
    Prefix::CustodyEvent.key(&[tag.as_bytes(), &index.to_be_bytes()])
}

/// The imported events of `tag`: every key starts with this.
pub fn imported_prefix(tag: &str) -> Vec<u8> {
    Prefix::ImportedEvent.key(&[tag.as_bytes(), b""])
}

/// The key of the `seq`th imported event of `tag`.
pub fn imported_key(tag: &str, seq: u32) -> Vec<u8> {
    Prefix::ImportedEvent.key(&[tag.as_bytes(), &seq.to_be_bytes()])
}

/// The dossier of the offer forwarded here and logged at `index`.
pub fn dossier_key(index: u64) -> Vec<u8> {
    Prefix::KeptDossier.at(index)
}

/// The forwarding gateway's receipt of the envelope forwarded here and
/// logged at `index`.
pub fn sender_receipt_key(index: u64) -> Vec<u8> {
    Prefix::SenderReceipt.at(index)
}

/// The assets `agency` holds or has held: every key starts with this.
pub fn held_prefix(agency: &AgencyId) -> Vec<u8> {
    Prefix::HeldIndex.key(&[agency.as_str().as_bytes(), b""])
}

/// `agency` holds or has held `tag`.
pub fn held_key(agency: &AgencyId, tag: &str) -> Vec<u8> {
    Prefix::HeldIndex.key(&[agency.as_str().as_bytes(), tag.as_bytes()])
}

/// The assets offered to `agency`: every key starts with this.
pub fn offered_prefix(agency: &AgencyId) -> Vec<u8> {
    Prefix::OfferIndex.key(&[agency.as_str().as_bytes(), b""])
}

/// `tag` was offered to `agency` (the offer may have lapsed since).
pub fn offered_key(agency: &AgencyId, tag: &str) -> Vec<u8> {
    Prefix::OfferIndex.key(&[agency.as_str().as_bytes(), tag.as_bytes()])
}

/// The assets `agency` keeps at `location`: every key starts with this.
pub fn located_prefix(agency: &AgencyId, location: &str) -> Vec<u8> {
    Prefix::LocationIndex.key(&[agency.as_str().as_bytes(), location.as_bytes(), b""])
}

/// `agency` keeps `tag` at `location`.
pub fn located_key(agency: &AgencyId, location: &str, tag: &str) -> Vec<u8> {
    Prefix::LocationIndex.key(&[
        agency.as_str().as_bytes(),
        location.as_bytes(),
        tag.as_bytes(),
    ])
}

/// The open discrepancies of `tag`.
pub fn open_key(tag: &str) -> Vec<u8> {
    Prefix::OpenDiscrepancies.key(&[tag.as_bytes()])
}

/// The report of the inventory report logged at `index`.
pub fn report_key(index: u64) -> Vec<u8> {
    Prefix::Reconciliation.at(index)
}

/// Every notice key starts with this.
pub const NOTICE_PREFIX: &[u8] = Prefix::FeedNotice.bytes();

/// The `seq`th notice of the envelope logged at `index`.
pub fn notice_key(index: u64, seq: u32) -> Vec<u8> {
    let mut k = Prefix::FeedNotice.at(index);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// An asset's record.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn asset(state: &impl StateRead, tag: &str) -> Result<Option<Asset>, StoreError> {
    read(state, &asset_key(tag))
}

/// An asset's custody chain, oldest first.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn chain(store: &dyn StoreRead, tag: &str) -> Result<Vec<Event>, StoreError> {
    store
        .scan_prefix(&events_prefix(tag))
        .map(|kv| {
            let (k, v) = kv?;
            serde_json::from_slice(v.as_ref()).map_err(|_| corrupt(&k))
        })
        .collect()
}

/// The events of `tag` other gateways logged, oldest first.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn imported(store: &dyn StoreRead, tag: &str) -> Result<Vec<Imported>, StoreError> {
    store
        .scan_prefix(&imported_prefix(tag))
        .map(|kv| {
            let (k, v) = kv?;
            serde_json::from_slice(v.as_ref()).map_err(|_| corrupt(&k))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store_keys::last_part;

    #[test]
    fn keys_sort_by_their_parts_and_prefixes_are_exact() {
        let a: AgencyId = "gsa".parse().expect("id");
        assert!(event_key("T1", 2) < event_key("T1", 10));
        assert!(event_key("T1", u64::MAX) < event_key("T10", 0));
        assert!(event_key("T1", 5).starts_with(&events_prefix("T1")));
        assert!(!event_key("T10", 5).starts_with(&events_prefix("T1")));
        assert!(located_key(&a, "HQ", "T1").starts_with(&located_prefix(&a, "HQ")));
        assert!(!located_key(&a, "HQ-2", "T1").starts_with(&located_prefix(&a, "HQ")));
        assert_eq!(
            last_part(&located_key(&a, "HQ", "T-9")).as_deref(),
            Some("T-9")
        );
        assert_eq!(last_part(&asset_key("T-9")).as_deref(), Some("T-9"));
        assert!(notice_key(1, u32::MAX) < notice_key(2, 0));
    }
}
