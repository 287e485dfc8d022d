//! Support for the contracts' end-to-end tests (`contracts_acts`,
//! `contracts_explain`): a policy file of the repository's default rules
//! and contracts, a gateway run with it, and the log entries read back.

#![allow(dead_code)] // each test file uses a different subset

use base64::Engine as _;
use http::StatusCode;
use serde_json::Value;
use xgate::client::Client;

use super::Federation;
use super::assets::federation;
use super::get_json;

/// Contracts both tests run: an offer accepted or rejected on the
/// recipient's behalf, a rejection flagged and escalated (and at HQ-CLEAR
/// cleared again), a condition that divides by zero, and a deadline due
/// at once.
pub const CONTRACTS: &str = r#"
[[contract]]
name = "treasury-to-gsa-laptops"
on = "envelope:asset.transfer.offer"
when = 'offer.from == "treasury" && offer.to == "gsa" && asset.category == "laptop"'
do = "accept_offer"

[[contract]]
name = "no-phones-to-hhs"
on = "offer.opened"
when = 'offer.to == "hhs" && asset.category == "phone"'
do = "reject_offer"

[[contract]]
name = "flag-rejections"
on = "envelope:asset.transfer.reject"
when = 'asset.holder == "treasury"'
do = "open_discrepancy"

[[contract]]
name = "escalate-flags"
on = "discrepancy.opened"
when = 'discrepancy.type == "flagged"'
do = "escalate"

[[contract]]
name = "clear-flags-at-hq"
on = "discrepancy.opened"
when = 'discrepancy.type == "flagged" && discrepancy.location == "HQ-CLEAR"'
do = "close_discrepancy"

[[contract]]
name = "broken-arithmetic"
on = "envelope:asset.register"
when = 'asset.tag == "BAD-1" && entry.time / (size(asset.tag) - 5) > 0'
do = "escalate"

[[contract]]
name = "recount-at-once"
on = "envelope:asset.register"
when = 'asset.location == "SOON"'
do = "set_deadline"
deadline = "recount-now"
after_hours = 0
"#;

/// The repository's default policy, [`CONTRACTS`], then `more`.
pub fn policy(more: &str) -> String {
    let rules = include_str!("../../../policies/default.toml");
    format!("{rules}{CONTRACTS}{more}")
}

/// A gateway (of the asset tests' agencies and auditor) run with
/// [`policy`]`(more)` as its policy file: the federation, the directory
/// holding the file, and the file.
pub fn start(more: &str) -> (Federation, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy(more)).expect("policy");
    let arg = path.display().to_string();
    (federation(&[("XGATE_POLICY", &arg)]), dir, path)
}

/// The log entry at `index`, as JSON.
pub async fn entry(client: &mut Client, index: u64) -> Value {
    let view = get_json(client, &format!("/v1/log/entries/{index}"), StatusCode::OK).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(view["entry"].as_str().expect("entry"))
        .expect("base64");
    serde_json::from_slice(&bytes).expect("entry JSON")
}

/// The log index a receipt is for.
pub fn index(receipt: &Value) -> u64 {
    receipt["log_index"].as_u64().expect("log_index")
}
