//! `xgate audit monitor --replay`: the asset and medical state as far as
//! the log's entries alone allow.
//!
//! An entry holds metadata only (docs/ledger.md, "Gateway entries"): who
//! sent what kind to whom, when, an asset's tag, a salted person hash, the
//! medical request an envelope is about. The bodies the gateway's state is
//! folded from (`xgate audit replay`, which needs the data directory) are
//! not in the public log. So this replay keeps, per asset tag, its custody
//! events (count, the last one's kind, parties and index) and, per medical
//! request, what followed it; and it reports as *findings* what no
//! gateway that follows its rules can log:
//! - an entry that is not a version-1 gateway entry, or of an unknown kind;
//! - an asset envelope without a tag, a custody event for a tag never
//!   registered, a second registration of a tag;
//! - an approval, response or review naming a medical request never logged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xgate_server::entry::Logged;
use xgate_server::kind::Kind;

/// Findings described; the rest are counted.
const DESCRIBED: usize = 50;

/// The last custody event of an asset, as logged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// The entry that registered it.
    pub registered_at: u64,
    /// Custody events logged, registration included.
    pub events: u64,
    /// The last event's kind.
    pub last_kind: String,
    /// The last event's sender and recipient agencies.
    pub last_parties: (String, String),
    /// The last event's entry.
    pub last_index: u64,
}

/// A medical request and what followed it, as logged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The entry of the request.
    pub index: u64,
    /// The requesting agency.
    pub from: String,
    /// The agency asked.
    pub to: String,
    /// The policy's decision on the request (`break-glass`, ...).
    pub decision: String,
    /// Approvals, responses and review decisions logged about it.
    pub approvals: u64,
    /// Responses.
    pub responses: u64,
    /// Review outcomes, in log order.
    pub reviews: Vec<String>,
}

/// The state the entries give, persisted with the monitor's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryState {
    /// Entries replayed.
    pub entries: u64,
    /// Entries per kind.
    pub kinds: BTreeMap<String, u64>,
    /// Assets by tag.
    pub assets: BTreeMap<String, Asset>,
    /// Medical requests by `jti`.
    pub requests: BTreeMap<String, Request>,
    /// Findings so far.
    pub findings: u64,
}

impl EntryState {
    /// Applies entry `index`; returns a finding if it is one.
    pub fn apply(&mut self, index: u64, bytes: &[u8]) -> Option<String> {
        self.entries += 1;
        let finding = self.fold(index, bytes).err();
        if finding.is_some() {
            self.findings += 1;
        }
        finding.map(|f| format!("entry {index}: {f}"))
    }

    fn fold(&mut self, index: u64, bytes: &[u8]) -> Result<(), String> {
        let entry = Logged::parse(bytes).map_err(|e| e.to_string())?;
        let kind: Kind = entry
            .kind
            .parse()
            .map_err(|_| format!("unknown kind {:?}", entry.kind))?;
        *self.kinds.entry(entry.kind.clone()).or_default() += 1;
        match kind {
            Kind::AssetRegister
            | Kind::AssetTransferOffer
            | Kind::AssetTransferAccept
            | Kind::AssetTransferReject => self.custody(index, kind, &entry),
            Kind::MedicalRequest => {
                self.requests.insert(
                    entry.jti.clone(),
                    Request {
                        index,
                        from: entry.iss.clone(),
                        to: entry.aud.clone(),
                        decision: entry.decision.clone(),
                        ..Request::default()
                    },
                );
                Ok(())
            }
            Kind::MedicalApprove | Kind::MedicalResponse | Kind::ReviewDecision => {
                let about = entry
                    .request
                    .as_deref()
                    .ok_or(format!("{} names no request", entry.kind))?;
                let request = self
                    .requests
                    .get_mut(about)
                    .ok_or(format!("{} about a request never logged", entry.kind))?;
                match kind {
                    Kind::MedicalApprove => request.approvals += 1,
                    Kind::MedicalResponse => request.responses += 1,
                    _ => request
                        .reviews
                        .push(entry.outcome.clone().unwrap_or_default()),
                }
                Ok(())
            }
            Kind::RecordSend | Kind::InventoryReport => Ok(()),
        }
    }

    fn custody(&mut self, index: u64, kind: Kind, entry: &Logged) -> Result<(), String> {
        let tag = entry
            .tag
            .as_deref()
            .ok_or(format!("{} without a tag", entry.kind))?;
        let known = self.assets.contains_key(tag);
        if kind == Kind::AssetRegister && known {
            return Err("a second registration of a tag".into());
        }
        if kind != Kind::AssetRegister && !known {
            return Err(format!("{} of a tag never registered", entry.kind));
        }
        let asset = self.assets.entry(tag.to_owned()).or_insert_with(|| Asset {
            registered_at: index,
            ..Asset::default()
        });
        asset.events += 1;
        asset.last_kind = entry.kind.clone();
        asset.last_parties = (entry.iss.clone(), entry.aud.clone());
        asset.last_index = index;
        Ok(())
    }

    /// One line: what the entries gave so far.
    pub fn summary(&self) -> String {
        format!(
            "replay: {} entries, {} assets, {} medical requests, {} findings",
            self.entries,
            self.assets.len(),
            self.requests.len(),
            self.findings
        )
    }
}

/// Whether another finding should be printed (the first [`DESCRIBED`] of
/// one checkpoint are).
pub fn describe(printed: usize) -> bool {
    printed < DESCRIBED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"aud":"b","decision":"allow","envelope":"00","iss":"a","jti":"j{kind}","kind":"{kind}","policy":"00"{extra},"time":1,"v":1}}"#
        )
        .into_bytes()
    }

    #[test]
    fn custody_and_requests_fold_and_impossible_entries_are_findings() {
        let mut state = EntryState::default();
        assert_eq!(
            state.apply(0, &entry("asset.register", r#","tag":"T1""#)),
            None
        );
        assert_eq!(
            state.apply(1, &entry("asset.transfer.offer", r#","tag":"T1""#)),
            None
        );
        assert_eq!(state.assets["T1"].events, 2);
        assert_eq!(state.assets["T1"].last_kind, "asset.transfer.offer");
        assert!(
            state
                .apply(2, &entry("asset.transfer.accept", r#","tag":"T2""#))
                .is_some_and(|f| f.contains("never registered"))
        );
        assert!(
            state
                .apply(3, &entry("asset.register", r#","tag":"T1""#))
                .is_some_and(|f| f.contains("second registration"))
        );
        assert_eq!(state.apply(4, &entry("medical.request", "")), None);
        assert_eq!(
            state.apply(
                5,
                &entry("medical.approve", r#","request":"jmedical.request""#)
            ),
            None
        );
        assert_eq!(state.requests["jmedical.request"].approvals, 1);
        assert!(
            state
                .apply(6, &entry("review.decision", r#","request":"nope""#))
                .is_some()
        );
        assert!(state.apply(7, b"not json").is_some());
        assert!(state.apply(8, &entry("no.such", "")).is_some());
        assert_eq!(state.findings, 5);
        assert_eq!(state.entries, 9);
    }
}
