//! An asset's dossier: what the holder's gateway sends with a transfer
//! offer to an agency another gateway serves, so that the receiving
//! gateway can hold the asset's state too (docs/federation.md, "Assets").
//!
//! ```json
//! {"asset":{"tag","serial","category","description","holder":{"agency","person"},"location"},
//!  "chain":[{<custody event>,"receipt":{<its receipt, from the log that logged it>}}]}
//! ```
//!
//! The card is the holder's gateway's word (it holds the asset's state:
//! the federation trusts each gateway with its own agencies'); the chain
//! is not: every event carries a receipt from the log that logged it,
//! checked here against that gateway's `log_key` in the registry, and its
//! entry must be the event's (same sender, `jti`, tag and kind). The chain
//! is the events before the offer, so a custody chain shown at the
//! receiving gateway carries a receipt from each log involved.

use serde::{Deserialize, Serialize};
use xgate_ledger::NoteVerifier;

use super::custody::{Event, EventKind};
use super::model::Holder;
use crate::contracts::act::ActEntry;
use crate::entry::Logged;
use crate::receipt::Receipt;
use crate::registry::{AgencyId, Registry};

/// Most events a dossier carries.
pub const MAX_EVENTS: usize = 4096;

/// The asset as its holder's gateway records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// The tag.
    pub tag: String,
    /// Manufacturer serial number.
    pub serial: String,
    /// Kind of asset.
    pub category: String,
    /// Free text.
    pub description: String,
    /// Who holds it.
    pub holder: Holder,
    /// Where it is kept.
    pub location: String,
}

/// A custody event with the receipt of its envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// The event; its `log_index` is in the log its receipt is from.
    #[serde(flatten)]
    pub event: Event,
    /// Its receipt.
    pub receipt: Receipt,
    /// For an envelope another gateway forwarded to the log `receipt` is
    /// from, that gateway's receipt: the same envelope in the sender's
    /// gateway's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_receipt: Option<Receipt>,
}

/// What an offer to another gateway's agency carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dossier {
    /// The asset.
    pub asset: Card,
    /// Its custody events before the offer, oldest first.
    pub chain: Vec<Imported>,
}

/// Why a dossier is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the asset's dossier: {0}")]
pub struct DossierError(String);

impl Dossier {
    /// Checks the dossier sent with `offerer`'s offer of `tag`: the card is
    /// that asset, held by the offerer; every event's receipt verifies with
    /// the `log_key` the registry lists for the log it names and logs that
    /// event.
    ///
    /// # Errors
    /// The first thing that does not check out.
    pub fn check(
        &self,
        tag: &str,
        offerer: &AgencyId,
        registry: &Registry,
    ) -> Result<(), DossierError> {
        let bad = |m: String| Err(DossierError(m));
        if self.asset.tag != tag {
            return bad("it is another asset's".into());
        }
        if self.asset.holder.agency != *offerer {
            return bad(format!("it does not say that {offerer} holds the asset"));
        }
        if self.chain.len() > MAX_EVENTS {
            return bad(format!("more than {MAX_EVENTS} events"));
        }
        for (i, imported) in self.chain.iter().enumerate() {
            check_event(imported, tag, registry)
                .map_err(|m| DossierError(format!("event {i}: {m}")))?;
        }
        Ok(())
    }
}

/// Checks `receipt` against the `log_key` the registry lists for the log
/// it names (the key whose name is its checkpoint's origin).
fn verify(receipt: &Receipt, registry: &Registry) -> Result<(), String> {
    let origin = receipt
        .checkpoint
        .lines()
        .next()
        .ok_or("its receipt has no checkpoint")?;
    let key = registry
        .gateways()
        .find_map(|g| {
            NoteVerifier::parse(&g.log_key)
                .ok()
                .filter(|k| k.name() == origin)
        })
        .ok_or_else(|| "its receipt is from a log no registered gateway keeps".to_owned())?;
    receipt.verify(&key).map(|_| ()).map_err(|e| e.to_string())
}

/// Checks one event's receipt and that its entry is the event's.
fn check_event(imported: &Imported, tag: &str, registry: &Registry) -> Result<(), String> {
    let receipt = &imported.receipt;
    let event = &imported.event;
    verify(receipt, registry)?;
    if receipt.id != event.envelope || receipt.log_index != event.log_index {
        return Err("its receipt is for another envelope".into());
    }
    if let Some(sender) = &imported.sender_receipt {
        verify(sender, registry).map_err(|m| format!("its sender's receipt: {m}"))?;
        if sender.id != event.envelope {
            return Err("its sender's receipt is for another envelope".into());
        }
    }
    let entry = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &receipt.entry)
        .map_err(|_| "its receipt's entry is not base64".to_owned())?;
    if let Ok(act) = ActEntry::parse(&entry) {
        // An offer answered by a contract on its recipient's behalf.
        let act_kind = match event.kind {
            EventKind::Accepted => "accept_offer",
            EventKind::Rejected => "reject_offer",
            EventKind::Registered
            | EventKind::Offered
            | EventKind::Approved
            | EventKind::Denied => "",
        };
        if act.act != act_kind || act.is_failed() || act.tag.as_deref() != Some(tag) {
            return Err("its entry is not this event".into());
        }
        return Ok(());
    }
    let logged = Logged::parse(&entry).map_err(|_| "its receipt's entry is not a gateway entry")?;
    let kind = match event.kind {
        EventKind::Registered => "asset.register",
        EventKind::Offered => "asset.transfer.offer",
        EventKind::Accepted => "asset.transfer.accept",
        EventKind::Rejected => "asset.transfer.reject",
        EventKind::Approved => "contract.approve",
        EventKind::Denied => "contract.deny",
    };
    if logged.iss != event.by.as_str()
        || logged.jti != event.jti
        || logged.tag.as_deref() != Some(tag)
        || logged.kind != kind
    {
        return Err("its entry is not this event".into());
    }
    Ok(())
}
