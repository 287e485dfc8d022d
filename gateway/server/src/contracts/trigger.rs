//! What a contract reacts to, and what its condition can read there.
//!
//! ```text
//! envelope:<kind>        an envelope of that kind accepted (entry; asset
//!                        kinds: asset; an offer: offer; inventory.report:
//!                        report)
//! offer.opened           an asset offered (entry, asset, offer)
//! discrepancy.opened     a count found an asset missing, unexpected, held
//!                        by another, or unknown (entry, discrepancy)
//! discrepancy.resolved   one of those resolved (entry, discrepancy)
//! grant.made             medical data granted, by break-the-glass or by an
//!                        approval (entry, grant)
//! deadline:<name>        a deadline a contract set came due, at the
//!                        logged tick that passed it (entry, deadline)
//! ```

use std::fmt;

use super::schema::{ASSET, DEADLINE, DISCREPANCY, ENTRY, GRANT, OFFER, REPORT, Type};
use crate::kind::Kind;

/// What a contract reacts to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    /// An envelope of this kind accepted.
    Envelope(Kind),
    /// An asset offered.
    OfferOpened,
    /// A discrepancy opened by a count.
    DiscrepancyOpened,
    /// A discrepancy resolved.
    DiscrepancyResolved,
    /// A medical grant made.
    GrantMade,
    /// The deadline of this name came due.
    Deadline(String),
}

/// Why a trigger is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown trigger {0:?}: use envelope:<kind>, offer.opened, discrepancy.opened, \
     discrepancy.resolved, grant.made or deadline:<name>"
)]
pub struct UnknownTrigger(pub String);

impl std::str::FromStr for Trigger {
    type Err = UnknownTrigger;

    fn from_str(text: &str) -> Result<Trigger, UnknownTrigger> {
        let unknown = || UnknownTrigger(text.chars().take(64).collect());
        if let Some(kind) = text.strip_prefix("envelope:") {
            return kind.parse().map(Trigger::Envelope).map_err(|_| unknown());
        }
        if let Some(name) = text.strip_prefix("deadline:") {
            return if super::schema::is_name(name) {
                Ok(Trigger::Deadline(name.to_owned()))
            } else {
                Err(unknown())
            };
        }
        match text {
            "offer.opened" => Ok(Trigger::OfferOpened),
            "discrepancy.opened" => Ok(Trigger::DiscrepancyOpened),
            "discrepancy.resolved" => Ok(Trigger::DiscrepancyResolved),
            "grant.made" => Ok(Trigger::GrantMade),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Envelope(kind) => write!(f, "envelope:{kind}"),
            Trigger::OfferOpened => f.write_str("offer.opened"),
            Trigger::DiscrepancyOpened => f.write_str("discrepancy.opened"),
            Trigger::DiscrepancyResolved => f.write_str("discrepancy.resolved"),
            Trigger::GrantMade => f.write_str("grant.made"),
            Trigger::Deadline(name) => write!(f, "deadline:{name}"),
        }
    }
}

impl Trigger {
    /// The names a condition on this trigger can read, and their types.
    pub fn scope(&self) -> Vec<(&'static str, Type)> {
        let mut scope = vec![("entry", Type::Record(&ENTRY))];
        let mut bind = |r: &'static super::schema::Record| scope.push((r.name, Type::Record(r)));
        match self {
            Trigger::Envelope(kind) => match kind {
                Kind::AssetRegister
                | Kind::AssetTransferAccept
                | Kind::AssetTransferReject
                | Kind::ContractApprove
                | Kind::ContractDeny => {
                    bind(&ASSET);
                }
                Kind::AssetTransferOffer => {
                    bind(&ASSET);
                    bind(&OFFER);
                }
                Kind::InventoryReport => bind(&REPORT),
                // A grant is made by some requests and approvals only:
                // `grant.made` binds it.
                Kind::RecordSend
                | Kind::MedicalRequest
                | Kind::MedicalApprove
                | Kind::MedicalResponse
                | Kind::ReviewDecision => {}
            },
            Trigger::OfferOpened => {
                bind(&ASSET);
                bind(&OFFER);
            }
            Trigger::DiscrepancyOpened | Trigger::DiscrepancyResolved => bind(&DISCREPANCY),
            Trigger::GrantMade => bind(&GRANT),
            Trigger::Deadline(_) => bind(&DEADLINE),
        }
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_read_back_as_written() {
        for text in [
            "envelope:asset.transfer.offer",
            "envelope:record.send",
            "offer.opened",
            "discrepancy.opened",
            "discrepancy.resolved",
            "grant.made",
            "deadline:count-overdue",
        ] {
            let trigger: Trigger = text.parse().expect(text);
            assert_eq!(trigger.to_string(), text);
        }
        for bad in [
            "envelope:nope",
            "deadline:",
            "deadline:Bad Name",
            "offer",
            "",
        ] {
            assert!(bad.parse::<Trigger>().is_err(), "{bad}");
        }
    }
}
