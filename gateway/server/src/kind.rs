//! Envelope kinds: what an envelope asks the gateway to do. The `kind` claim
//! names one; policy rules name them too.

use std::fmt;
use std::str::FromStr;

/// Every envelope kind of the federation (docs/architecture.md, "Envelope
/// kinds").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A record delivered to the recipient verbatim.
    RecordSend,
    /// A new asset enters custody.
    AssetRegister,
    /// The holder offers an asset to another holder.
    AssetTransferOffer,
    /// The receiver accepts an offer; custody moves.
    AssetTransferAccept,
    /// The receiver rejects an offer.
    AssetTransferReject,
    /// A physical count or scan of assets at a location.
    InventoryReport,
    /// A responder asks a holding agency for medical data.
    MedicalRequest,
    /// The holding agency approves a request that did not break the glass.
    MedicalApprove,
    /// The holding agency answers with an encrypted payload.
    MedicalResponse,
    /// A reviewer closes a break-the-glass grant.
    ReviewDecision,
    /// A second person approves an offer a contract held (issue 25).
    ContractApprove,
    /// The offer a contract held is denied, and withdrawn.
    ContractDeny,
}

impl Kind {
    /// Every kind, in the order docs/architecture.md lists them ("Envelope
    /// kinds"; `medical.approve` added by issue 5, `contract.approve` and
    /// `contract.deny` by issue 25).
    pub const ALL: [Kind; 12] = [
        Kind::RecordSend,
        Kind::AssetRegister,
        Kind::AssetTransferOffer,
        Kind::AssetTransferAccept,
        Kind::AssetTransferReject,
        Kind::InventoryReport,
        Kind::MedicalRequest,
        Kind::MedicalApprove,
        Kind::MedicalResponse,
        Kind::ReviewDecision,
        Kind::ContractApprove,
        Kind::ContractDeny,
    ];

    /// The kind's name, as in the `kind` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RecordSend => "record.send",
            Kind::AssetRegister => "asset.register",
            Kind::AssetTransferOffer => "asset.transfer.offer",
            Kind::AssetTransferAccept => "asset.transfer.accept",
            Kind::AssetTransferReject => "asset.transfer.reject",
            Kind::InventoryReport => "inventory.report",
            Kind::MedicalRequest => "medical.request",
            Kind::MedicalApprove => "medical.approve",
            Kind::MedicalResponse => "medical.response",
            Kind::ReviewDecision => "review.decision",
            Kind::ContractApprove => "contract.approve",
            Kind::ContractDeny => "contract.deny",
        }
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// A name that is none of [`Kind::ALL`]'s.
///
/// The name is quoted back: this error reaches operators (a policy file, a
/// `xgate bench --mix`), who wrote it. Where the name comes from a peer, as
/// in an envelope's `kind` claim, callers replace the message with one that
/// quotes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}")]
pub struct UnknownKind(pub String);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        assert!("record.Send".parse::<Kind>().is_err());
    }
}
