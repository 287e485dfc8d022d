//! The asset and medical state as far as the log's entries alone allow:
//! `xgate audit monitor --replay` folds one log's entries, `xgate audit
//! replay --log` the entries of a federation's logs merged.
//!
//! An entry holds metadata only (docs/ledger.md, "Gateway entries"): who
//! sent what kind to whom, when, an asset's tag, a salted person hash, the
//! medical request an envelope is about. The bodies the gateway's state is
//! folded from (`xgate audit replay --data-dir`, which needs the data
//! directory) are not in the public log. So this replay keeps, per asset
//! tag, its custody events, its chain of holder agencies and its open
//! offer; per medical request (by requester and `jti`), its parties, its
//! grant and what followed it. It applies the gateway's own rules as far as
//! the entries show them (`assets/custody.rs`, `apply/medical.rs`) and
//! reports as *findings* what no gateway that follows them can log:
//! - an entry that is not a version-1 gateway entry, or of an unknown kind;
//! - an asset envelope without a tag; a registration addressed to another
//!   agency, or of a tag already registered; a custody event for a tag
//!   never registered; an offer by an agency that does not hold the asset,
//!   or while another offer is open; an accept or reject by an agency the
//!   open offer was not made to, not addressed to the holder, or with no
//!   offer open;
//! - a medical request addressed to its own sender, or whose `jti` its
//!   requester (or its holder) already had; an approval, response or
//!   review naming a request never logged (for the holder that sends it);
//!   an approval while a grant is live; a response without a grant, after
//!   it expired, or past its uses; a review of a request that did not
//!   break the glass, or a second review.
//!
//! A finding changes nothing: the gateway would have refused the envelope.
//! Times are compared with a tolerance (`skew`): 0 within one log, whose
//! times are one clock's, and the clock skew across logs, where an offer's
//! expiry was set by one gateway's clock and its answer timed by another's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xgate_server::acts::deadlines::Tick;
use xgate_server::contracts::act::ActEntry;
use xgate_server::entry::Logged;
use xgate_server::kind::Kind;

/// Findings described; the rest are counted.
const DESCRIBED: usize = 50;

/// The rules a state is folded with. A monitor's state saved under other
/// rules (before requests were keyed by requester) is not resumed.
pub const RULES: u32 = 2;

/// An asset as its logged custody events leave it.
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
    /// The holder agencies in order: who registered it, then each agency
    /// an accepted transfer moved it to. The last is the holder.
    #[serde(default)]
    pub holders: Vec<String>,
    /// The offer last made and not answered (it may have lapsed).
    #[serde(default)]
    pub offer: Option<Offered>,
}

impl Asset {
    /// The agency holding it.
    pub fn holder(&self) -> &str {
        self.holders.last().map_or("", String::as_str)
    }
}

/// An offer as logged: to whom, and until when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offered {
    /// The offer's `jti`.
    pub jti: String,
    /// The agency offered the asset.
    pub to: String,
    /// When it lapses, as the logging gateway set it.
    pub expires: Option<i64>,
    /// Held by a contract's `require_second_approval` act until a
    /// `contract.approve`.
    #[serde(default)]
    pub held: bool,
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
    /// Approvals logged about it.
    pub approvals: u64,
    /// Responses.
    pub responses: u64,
    /// Review outcomes, in log order.
    pub reviews: Vec<String>,
    /// The grant in force: the break-the-glass one, or the last approval's.
    #[serde(default)]
    pub grant: Option<Grant>,
}

impl Request {
    /// Whether the policy broke the glass for it (so it must be reviewed).
    pub fn broke_glass(&self) -> bool {
        self.decision == "break-glass"
    }
}

/// A grant's terms as logged, and the responses made under it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// When it lapses.
    pub expires: Option<i64>,
    /// How many responses it covers.
    pub uses: Option<u32>,
    /// Responses made under it.
    pub used: u32,
}

/// The state the entries give, persisted with the monitor's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryState {
    /// [`RULES`] for a state made now; 0 for one saved before requests
    /// were keyed by requester.
    #[serde(default)]
    pub rules: u32,
    /// Entries replayed.
    pub entries: u64,
    /// Entries per kind.
    pub kinds: BTreeMap<String, u64>,
    /// Assets by tag.
    pub assets: BTreeMap<String, Asset>,
    /// Medical requests by requester and `jti` ([`case`]).
    pub requests: BTreeMap<String, Request>,
    /// For each holder and `jti` it was asked with ([`case`]), the
    /// requester: approvals, responses and reviews name a request by the
    /// holder's side.
    #[serde(default)]
    pub asked: BTreeMap<String, String>,
    /// Findings so far.
    pub findings: u64,
}

impl Default for EntryState {
    fn default() -> EntryState {
        EntryState {
            rules: RULES,
            entries: 0,
            kinds: BTreeMap::new(),
            assets: BTreeMap::new(),
            requests: BTreeMap::new(),
            asked: BTreeMap::new(),
            findings: 0,
        }
    }
}

/// The key of `agency`'s request `jti`: `agency/jti` (neither an agency id
/// nor a `jti` holds a `/`).
pub fn case(agency: &str, jti: &str) -> String {
    format!("{agency}/{jti}")
}

/// Whether a deadline has surely not passed at `time`, whatever the clocks'
/// skew.
fn surely_before(time: i64, deadline: Option<i64>, skew: i64) -> bool {
    deadline.is_none_or(|d| time < d.saturating_sub(skew))
}

/// Whether a deadline may not have passed at `time`, given the skew.
fn maybe_before(time: i64, deadline: Option<i64>, skew: i64) -> bool {
    deadline.is_none_or(|d| time < d.saturating_add(skew))
}

impl EntryState {
    /// Applies entry `index` of one log; returns a finding if it is one.
    pub fn apply(&mut self, index: u64, bytes: &[u8]) -> Option<String> {
        if let Ok(act) = ActEntry::parse(bytes) {
            return self.apply_act(&format!("entry {index}"), index, &act, 0);
        }
        if let Ok(tick) = Tick::parse(bytes) {
            return self.apply_tick(&tick);
        }
        let finding = match Logged::parse(bytes) {
            Ok(entry) => return self.apply_logged(&format!("entry {index}"), index, &entry, 0),
            Err(e) => e.to_string(),
        };
        self.entries += 1;
        self.findings += 1;
        Some(format!("entry {index}: {finding}"))
    }

    /// Applies `entry`, entry `index` of its log, described as `place` in
    /// a finding, comparing times with a tolerance of `skew` seconds;
    /// returns a finding if it is one.
    pub fn apply_logged(
        &mut self,
        place: &str,
        index: u64,
        entry: &Logged,
        skew: i64,
    ) -> Option<String> {
        self.entries += 1;
        let finding = self.fold(index, entry, skew).err();
        if finding.is_some() {
            self.findings += 1;
        }
        finding.map(|f| format!("{place}: {f}"))
    }

    /// Applies a contract's act, entry `index` of its log, described as
    /// `place`: an offer answered on its recipient's behalf moves the
    /// asset as an answer from it would; the other acts change nothing
    /// entries show. Returns a finding if the act could not have been
    /// taken.
    pub fn apply_act(
        &mut self,
        place: &str,
        index: u64,
        act: &ActEntry,
        skew: i64,
    ) -> Option<String> {
        self.entries += 1;
        *self.kinds.entry(act.kind.clone()).or_default() += 1;
        if act.is_failed() {
            return None;
        }
        if act.act == "require_second_approval" {
            let held = act
                .tag
                .as_deref()
                .and_then(|t| self.assets.get_mut(t)?.offer.as_mut());
            return match held {
                Some(offer) => {
                    offer.held = true;
                    None
                }
                None => {
                    self.findings += 1;
                    Some(format!("{place}: a hold on an offer that is not open"))
                }
            };
        }
        if !matches!(act.act.as_str(), "accept_offer" | "reject_offer") {
            return None;
        }
        let finding = self.answered(index, act, skew).err()?;
        self.findings += 1;
        Some(format!("{place}: {finding}"))
    }

    /// Applies a `clock.tick` entry: the deadlines it fired are in the
    /// state, not in entries, so it changes nothing here.
    pub fn apply_tick(&mut self, tick: &Tick) -> Option<String> {
        self.entries += 1;
        *self.kinds.entry(tick.kind.clone()).or_default() += 1;
        None
    }

    /// An offer accepted or rejected by a contract's act.
    fn answered(&mut self, index: u64, act: &ActEntry, skew: i64) -> Result<(), String> {
        let tag = act
            .tag
            .as_deref()
            .ok_or("an answer by a contract without a tag")?;
        let asset = self
            .assets
            .get_mut(tag)
            .ok_or(format!("{} of tag {tag}, a tag never registered", act.act))?;
        let open = asset
            .offer
            .take()
            .filter(|o| maybe_before(act.time, o.expires, skew))
            .ok_or(format!("{} of tag {tag} with no open offer", act.act))?;
        let holder = asset.holder().to_owned();
        if act.act == "accept_offer" {
            asset.holders.push(open.to.clone());
        }
        asset.events += 1;
        asset.last_kind = act.kind.clone();
        asset.last_parties = (open.to, holder);
        asset.last_index = index;
        Ok(())
    }

    fn fold(&mut self, index: u64, entry: &Logged, skew: i64) -> Result<(), String> {
        let kind: Kind = entry
            .kind
            .parse()
            .map_err(|_| format!("unknown kind {:?}", entry.kind))?;
        *self.kinds.entry(entry.kind.clone()).or_default() += 1;
        match kind {
            Kind::AssetRegister
            | Kind::AssetTransferOffer
            | Kind::AssetTransferAccept
            | Kind::AssetTransferReject => self.custody(index, kind, entry, skew),
            Kind::ContractApprove | Kind::ContractDeny => {
                self.decide_hold(index, kind, entry, skew)
            }
            Kind::MedicalRequest => self.request(index, entry),
            Kind::MedicalApprove | Kind::MedicalResponse | Kind::ReviewDecision => {
                self.about_request(kind, entry, skew)
            }
            Kind::RecordSend | Kind::InventoryReport => Ok(()),
        }
    }

    /// The custody rules of `assets/custody.rs`, as far as entries show
    /// them (an entry names the tag and the parties, not the offer an
    /// answer names: the open offer is the one it answers).
    fn custody(&mut self, index: u64, kind: Kind, entry: &Logged, skew: i64) -> Result<(), String> {
        let tag = entry
            .tag
            .as_deref()
            .ok_or(format!("{} without a tag", entry.kind))?;
        let (iss, aud, time) = (entry.iss.as_str(), entry.aud.as_str(), entry.time);
        let Some(asset) = self.assets.get(tag) else {
            if kind != Kind::AssetRegister {
                return Err(format!(
                    "{} of tag {tag}, a tag never registered",
                    entry.kind
                ));
            }
            if iss != aud {
                return Err(format!(
                    "asset.register of tag {tag} by {iss} addressed to {aud}, not to itself"
                ));
            }
            self.assets.insert(
                tag.to_owned(),
                Asset {
                    registered_at: index,
                    events: 1,
                    last_kind: entry.kind.clone(),
                    last_parties: (iss.to_owned(), aud.to_owned()),
                    last_index: index,
                    holders: vec![iss.to_owned()],
                    offer: None,
                },
            );
            return Ok(());
        };
        let mut next = asset.clone();
        let holder = asset.holder();
        match kind {
            Kind::AssetRegister => {
                return Err(format!(
                    "a second registration of tag {tag}, by {iss} (first by {})",
                    asset.holders.first().map_or("", String::as_str)
                ));
            }
            Kind::AssetTransferOffer => {
                if iss != holder {
                    return Err(format!(
                        "an offer of tag {tag} by {iss}, which does not hold it ({holder} does)"
                    ));
                }
                if let Some(open) = &asset.offer
                    && surely_before(time, open.expires, skew)
                {
                    return Err(format!(
                        "an offer of tag {tag} while its offer {} to {} is open",
                        open.jti, open.to
                    ));
                }
                next.offer = Some(Offered {
                    jti: entry.jti.clone(),
                    to: aud.to_owned(),
                    expires: entry.expires,
                    held: false,
                });
            }
            _ => {
                let open = asset
                    .offer
                    .as_ref()
                    .filter(|o| maybe_before(time, o.expires, skew))
                    .ok_or(format!("{} of tag {tag} with no open offer", entry.kind))?;
                if open.to != iss {
                    return Err(format!(
                        "{} of tag {tag} by {iss}, which was not offered it (the open offer is to {})",
                        entry.kind, open.to
                    ));
                }
                if open.held {
                    return Err(format!(
                        "{} of tag {tag} while its offer awaits a second approval",
                        entry.kind
                    ));
                }
                if aud != holder {
                    return Err(format!(
                        "{} of tag {tag} addressed to {aud}, not to its holder {holder}",
                        entry.kind
                    ));
                }
                if kind == Kind::AssetTransferAccept {
                    next.holders.push(iss.to_owned());
                }
                next.offer = None;
            }
        }
        next.events += 1;
        next.last_kind = entry.kind.clone();
        next.last_parties = (iss.to_owned(), aud.to_owned());
        next.last_index = index;
        self.assets.insert(tag.to_owned(), next);
        Ok(())
    }

    /// `contract.approve` or `contract.deny` of a held offer, by its
    /// holder's agency to itself: an approval lets the offer be answered, a
    /// denial withdraws it.
    fn decide_hold(
        &mut self,
        index: u64,
        kind: Kind,
        entry: &Logged,
        skew: i64,
    ) -> Result<(), String> {
        let tag = entry
            .tag
            .as_deref()
            .ok_or(format!("{} without a tag", entry.kind))?;
        let (iss, aud) = (entry.iss.as_str(), entry.aud.as_str());
        let asset = self.assets.get_mut(tag).ok_or(format!(
            "{} of tag {tag}, a tag never registered",
            entry.kind
        ))?;
        if iss != aud || iss != asset.holder() {
            return Err(format!(
                "{} of tag {tag} by {iss} to {aud}: only its holder decides, addressed to itself",
                entry.kind
            ));
        }
        let open = asset
            .offer
            .as_mut()
            .filter(|o| o.held && maybe_before(entry.time, o.expires, skew))
            .ok_or(format!("{} of tag {tag} with no held offer", entry.kind))?;
        if kind == Kind::ContractApprove {
            open.held = false;
        } else {
            asset.offer = None;
        }
        asset.events += 1;
        asset.last_kind = entry.kind.clone();
        asset.last_parties = (iss.to_owned(), aud.to_owned());
        asset.last_index = index;
        Ok(())
    }

    /// A medical request opens a case, named by its requester and `jti`
    /// and by its holder and `jti` (`apply/medical.rs`).
    fn request(&mut self, index: u64, entry: &Logged) -> Result<(), String> {
        let (iss, aud, jti) = (entry.iss.as_str(), entry.aud.as_str(), entry.jti.as_str());
        if iss == aud {
            return Err(format!(
                "a medical request {jti} by {iss} addressed to itself"
            ));
        }
        let key = case(iss, jti);
        if self.requests.contains_key(&key) {
            return Err(format!("a second medical request {jti} by {iss}"));
        }
        let asked = case(aud, jti);
        if self.asked.contains_key(&asked) {
            return Err(format!("{aud} was already sent a medical request {jti}"));
        }
        let grant = (entry.decision == "break-glass").then_some(Grant {
            expires: entry.expires,
            uses: entry.uses,
            used: 0,
        });
        self.asked.insert(asked, iss.to_owned());
        self.requests.insert(
            key,
            Request {
                index,
                from: iss.to_owned(),
                to: aud.to_owned(),
                decision: entry.decision.clone(),
                grant,
                ..Request::default()
            },
        );
        Ok(())
    }

    /// An approval, response or review: sent by the holder about the
    /// request it was asked with that `jti`.
    fn about_request(&mut self, kind: Kind, entry: &Logged, skew: i64) -> Result<(), String> {
        let (iss, aud, time) = (entry.iss.as_str(), entry.aud.as_str(), entry.time);
        let about = entry
            .request
            .as_deref()
            .ok_or(format!("{} names no request", entry.kind))?;
        let never = || {
            format!(
                "{} by {iss} about request {about}, a request never logged (for {iss})",
                entry.kind
            )
        };
        let requester = self.asked.get(&case(iss, about)).ok_or_else(never)?;
        let key = case(requester, about);
        let request = self.requests.get_mut(&key).ok_or_else(never)?;
        match kind {
            Kind::MedicalApprove => {
                if aud != request.from {
                    return Err(format!(
                        "medical.approve of request {about} addressed to {aud}, not to its requester {}",
                        request.from
                    ));
                }
                // Live as `medical::state::Grant::is_live` has it: not
                // expired, not used up.
                if request.grant.is_some_and(|g| {
                    surely_before(time, g.expires, skew) && g.uses.is_none_or(|u| g.used < u)
                }) {
                    return Err(format!(
                        "medical.approve of request {about} while its grant is live"
                    ));
                }
                request.approvals += 1;
                request.grant = Some(Grant {
                    expires: entry.expires,
                    uses: entry.uses,
                    used: 0,
                });
            }
            Kind::MedicalResponse => {
                if aud != request.from {
                    return Err(format!(
                        "medical.response to request {about} addressed to {aud}, not to its requester {}",
                        request.from
                    ));
                }
                let grant = request.grant.as_mut().ok_or(format!(
                    "medical.response to request {about}, never granted"
                ))?;
                if !maybe_before(time, grant.expires, skew) {
                    return Err(format!(
                        "medical.response to request {about} after its grant expired"
                    ));
                }
                if grant.uses.is_some_and(|uses| grant.used >= uses) {
                    return Err(format!(
                        "medical.response to request {about} past the uses of its grant"
                    ));
                }
                grant.used += 1;
                request.responses += 1;
            }
            _ => {
                if aud != iss {
                    return Err(format!(
                        "review.decision of request {about} by {iss} addressed to {aud}, not to itself"
                    ));
                }
                if !request.broke_glass() {
                    return Err(format!(
                        "review.decision of request {about}, which did not break the glass"
                    ));
                }
                if !request.reviews.is_empty() {
                    return Err(format!("a second review.decision of request {about}"));
                }
                request
                    .reviews
                    .push(entry.outcome.clone().unwrap_or_default());
            }
        }
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

    /// An entry of `kind` from `iss` to `aud` at `time`, with `extra`
    /// fields (sorted into place by hand).
    fn entry(kind: &str, iss: &str, aud: &str, jti: &str, time: i64, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"aud":"{aud}","decision":"allow","envelope":"00","iss":"{iss}","jti":"{jti}","kind":"{kind}","policy":"00"{extra},"time":{time},"v":1}}"#
        )
        .into_bytes()
    }

    fn finding(state: &mut EntryState, index: u64, bytes: &[u8], wanted: &str) {
        let got = state.apply(index, bytes);
        assert!(
            got.as_deref().is_some_and(|f| f.contains(wanted)),
            "entry {index}: {got:?}, wanted {wanted:?}"
        );
    }

    #[test]
    fn custody_follows_the_holders_and_impossible_entries_are_findings() {
        let mut state = EntryState::default();
        let t = |tag: &str| format!(r#","tag":"{tag}""#);
        let offer = |tag: &str, expires: i64| format!(r#","expires":{expires},"tag":"{tag}""#);
        assert_eq!(
            state.apply(0, &entry("asset.register", "a", "a", "r1", 1, &t("T1"))),
            None
        );
        assert_eq!(
            state.apply(
                1,
                &entry("asset.transfer.offer", "a", "b", "o1", 2, &offer("T1", 100))
            ),
            None
        );
        assert_eq!(state.assets["T1"].events, 2);
        assert_eq!(state.assets["T1"].last_kind, "asset.transfer.offer");
        finding(
            &mut state,
            2,
            &entry("asset.transfer.accept", "c", "a", "x1", 3, &t("T1")),
            "which was not offered it",
        );
        finding(
            &mut state,
            3,
            &entry("asset.transfer.offer", "a", "c", "o2", 3, &offer("T1", 100)),
            "is open",
        );
        assert_eq!(
            state.apply(
                4,
                &entry("asset.transfer.accept", "b", "a", "a1", 4, &t("T1"))
            ),
            None
        );
        assert_eq!(state.assets["T1"].holders, ["a", "b"]);
        assert_eq!(state.assets["T1"].holder(), "b");
        finding(
            &mut state,
            5,
            &entry("asset.transfer.offer", "a", "c", "o3", 5, &offer("T1", 100)),
            "which does not hold it (b does)",
        );
        finding(
            &mut state,
            6,
            &entry("asset.transfer.accept", "b", "a", "a2", 6, &t("T1")),
            "with no open offer",
        );
        finding(
            &mut state,
            7,
            &entry("asset.transfer.accept", "a", "a", "a3", 7, &t("T2")),
            "never registered",
        );
        finding(
            &mut state,
            8,
            &entry("asset.register", "c", "c", "r2", 8, &t("T1")),
            "second registration",
        );
        finding(
            &mut state,
            9,
            &entry("asset.register", "c", "d", "r3", 9, &t("T3")),
            "not to itself",
        );
        // An offer that lapsed cannot be accepted; a new one can be made.
        assert_eq!(
            state.apply(
                10,
                &entry("asset.transfer.offer", "b", "c", "o4", 10, &offer("T1", 20))
            ),
            None
        );
        finding(
            &mut state,
            11,
            &entry("asset.transfer.accept", "c", "b", "a4", 20, &t("T1")),
            "with no open offer",
        );
        // Within the skew of another clock, it is not a finding.
        let late = Logged::parse(&entry(
            "asset.transfer.reject",
            "c",
            "b",
            "j5",
            20,
            &t("T1"),
        ))
        .expect("entry");
        assert_eq!(state.apply_logged("here", 12, &late, 60), None);
        assert_eq!(state.assets["T1"].offer, None);
        assert_eq!(state.assets["T1"].holders, ["a", "b"]);
        state.apply(13, b"not json").expect("a finding");
        state
            .apply(14, &entry("no.such", "a", "b", "j", 1, ""))
            .expect("a finding");
        assert_eq!(state.findings, 10);
        assert_eq!(state.entries, 15);
    }

    #[test]
    fn medical_requests_are_keyed_by_requester_and_follow_their_grant() {
        let mut state = EntryState::default();
        let glass = r#","expires":100,"uses":1"#;
        let about = |request: &str| format!(r#","request":"{request}""#);
        let request = String::from_utf8(entry("medical.request", "a", "h", "q", 1, glass))
            .expect("utf-8")
            .replace("\"allow\"", "\"break-glass\"");
        assert_eq!(state.apply(0, request.as_bytes()), None);
        // Another requester may use the same jti with another holder.
        assert_eq!(
            state.apply(1, &entry("medical.request", "b", "k", "q", 1, "")),
            None
        );
        finding(
            &mut state,
            2,
            &entry("medical.request", "c", "h", "q", 1, ""),
            "h was already sent a medical request q",
        );
        assert_eq!(
            state.apply(
                3,
                &entry("medical.response", "h", "a", "s1", 2, &about("q"))
            ),
            None
        );
        finding(
            &mut state,
            4,
            &entry("medical.response", "h", "a", "s2", 3, &about("q")),
            "past the uses",
        );
        finding(
            &mut state,
            5,
            &entry("medical.response", "k", "b", "s3", 3, &about("q")),
            "never granted",
        );
        // h's grant is used up: a new approval is not a finding, one while
        // it is live is.
        let approve = r#","expires":100,"request":"q","uses":1"#;
        assert_eq!(
            state.apply(20, &entry("medical.approve", "h", "a", "p0", 3, approve)),
            None
        );
        finding(
            &mut state,
            21,
            &entry("medical.approve", "h", "a", "p9", 3, approve),
            "while its grant is live",
        );
        finding(
            &mut state,
            6,
            &entry("medical.response", "h", "a", "s4", 3, &about("nope")),
            "never logged",
        );
        assert_eq!(
            state.apply(
                7,
                &entry(
                    "medical.approve",
                    "k",
                    "b",
                    "p1",
                    4,
                    r#","expires":50,"request":"q","uses":2"#
                )
            ),
            None
        );
        assert_eq!(
            state.apply(
                8,
                &entry("medical.response", "k", "b", "s5", 5, &about("q"))
            ),
            None
        );
        finding(
            &mut state,
            9,
            &entry("medical.response", "k", "b", "s6", 50, &about("q")),
            "after its grant expired",
        );
        finding(
            &mut state,
            10,
            &entry("review.decision", "k", "k", "v1", 6, &about("q")),
            "did not break the glass",
        );
        let review = r#","outcome":"appropriate","request":"q""#;
        assert_eq!(
            state.apply(11, &entry("review.decision", "h", "h", "v2", 6, review)),
            None
        );
        finding(
            &mut state,
            12,
            &entry("review.decision", "h", "h", "v3", 7, review),
            "a second review",
        );
        let (a, b) = (&state.requests["a/q"], &state.requests["b/q"]);
        assert!(a.grant.is_some() && a.broke_glass() && a.responses == 1);
        assert_eq!(a.reviews, ["appropriate"]);
        assert_eq!((b.approvals, b.responses, b.grant.is_some()), (1, 1, true));
        assert_eq!(state.requests.len(), 2);
        assert_eq!(state.findings, 8);
    }
}
