//! The forwarding protocol between gateways, on the wire (exact; docs/api.md
//! "Forwarding between gateways"): `POST /v1/forward` over mutual TLS with
//! the forwarding gateway's certificate, `Content-Type: application/json`:
//!
//! ```json
//! {"forwards":[{"envelope":"<compact JWS, as the sender signed it>",
//!               "receipt":{<the forwarding gateway's receipt for it>},
//!               "dossier":{<an offer's asset dossier: assets::dossier>}}]}
//! ```
//!
//! answered `200` with one result per forward, in order:
//!
//! ```json
//! {"results":[{"receipt":{<the receiving gateway's receipt>}},
//!             {"error":{"code":"policy_denied","message":"..."}}]}
//! ```
//!
//! A refusal of the whole request (not a gateway, too large, not JSON) is
//! the API's usual error body with its status.

use serde::{Deserialize, Serialize};

use crate::assets::dossier::Dossier;
use crate::receipt::Receipt;

/// The request body of `POST /v1/forward`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    /// The envelopes, oldest first: the receiving gateway logs them in
    /// this order.
    pub forwards: Vec<ForwardItem>,
}

/// One envelope forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardItem {
    /// The compact JWS exactly as its sender signed it.
    pub envelope: String,
    /// The forwarding gateway's receipt for it: its entry, proven in that
    /// gateway's log, is the proof of submission and the time it was
    /// accepted.
    pub receipt: Receipt,
    /// For an `asset.transfer.offer`, the asset's dossier from the holder's
    /// gateway (its card and its custody chain with receipts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dossier: Option<Dossier>,
}

/// The answer to `POST /v1/forward`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAnswer {
    /// One per forward, in the request's order.
    pub results: Vec<ForwardResult>,
}

/// What the receiving gateway did with one forward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ForwardResult {
    /// Logged (now or by an earlier copy): its receipt.
    Receipt(Receipt),
    /// Refused, or not taken now.
    Error(ForwardError),
}

/// A refusal by the receiving gateway: its error code and message, as its
/// API gives them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardError {
    /// The error code (docs/api.md).
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl ForwardError {
    /// Whether sending the envelope again later may succeed: the receiving
    /// gateway could not take it now (storage, shutdown, load, a stale
    /// CRL, a fault of its own), as opposed to refusing it for good.
    pub fn is_transient(&self) -> bool {
        TRANSIENT.contains(&self.code.as_str())
    }
}

/// The codes that say "not now" rather than "no".
const TRANSIENT: &[&str] = &[
    "storage_unavailable",
    "unavailable",
    "rate_limited",
    "too_many_connections",
    "crl_stale",
    "body_timeout",
    "internal",
];
