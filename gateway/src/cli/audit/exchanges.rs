//! `xgate audit replay --log`: the cross-gateway exchanges of a
//! federation's logs, matched by sender and `jti`, and the order in which
//! the entries of all the logs are folded into one state.
//!
//! An entry is *cross-gateway* when the registry's gateway of its `iss`
//! differs from the gateway of its `aud`. The sending gateway logs it
//! (its *sender side*), forwards it, and the receiving gateway logs it
//! again with the same `iss`, `aud`, `jti`, `kind` and envelope hash (its
//! *recipient side*), exactly once by `iss` and `jti`, at its own time,
//! which cannot be earlier than the sender's but for the clocks' skew.
//! Each side must have the other: an entry whose other side is in a log
//! that was not given is *unchecked*, not one-sided. An entry logged by a
//! gateway that serves neither its `iss` nor its `aud` is a finding, as is
//! an entry naming an agency the registry does not list.
//!
//! The fold sees each envelope once, through its sender side when that log
//! was given (the sending gateway decided first), and in an order that
//! keeps every log's own order: an envelope logged on both sides is taken
//! when it heads both logs' remaining entries. Envelopes in flight when
//! the two gateways logged others the other way round leave no such order
//! (the sender logs A then B, the recipient B then A); then the earliest
//! sender side heading a log is taken first. Every custody or medical
//! event is logged by the gateway of the agency its predecessor involved,
//! so the events of one asset or one request are never taken out of order.

use std::collections::BTreeMap;

use xgate_server::acts::deadlines::Tick;
use xgate_server::contracts::act::ActEntry;
use xgate_server::entry::Logged;
use xgate_server::registry::{AgencyId, GatewayId, Registry};

/// How far apart two gateways' clocks may be, in seconds (the gateway's
/// default `clock_skew_secs`).
pub const SKEW: i64 = 60;

/// One log's entries as the matching reads them.
#[derive(Debug)]
pub struct LogEntries {
    /// The gateway whose log it is.
    pub gateway: GatewayId,
    /// Its entries in log order, or why one is not a gateway entry.
    pub entries: Vec<Result<Logged, String>>,
    /// The contracts' entries among them (acts and ticks), by index: no
    /// envelope, so their place in `entries` says so.
    pub acts: BTreeMap<u64, Contractual>,
}

/// A log entry of the contracts, not of an envelope.
#[derive(Debug)]
pub enum Contractual {
    /// An act a contract took.
    Act(Box<ActEntry>),
    /// A `clock.tick`, at which deadlines fired.
    Tick(Tick),
}

impl Contractual {
    /// Parses `bytes` as an act or a tick entry, if it is one.
    pub fn parse(bytes: &[u8]) -> Option<Contractual> {
        if let Ok(act) = ActEntry::parse(bytes) {
            return Some(Contractual::Act(Box::new(act)));
        }
        Tick::parse(bytes).ok().map(Contractual::Tick)
    }
}

/// An entry's place: which log (by position in the list given) and index.
pub type Place = (usize, u64);

/// What the matching found.
#[derive(Debug, Default)]
pub struct Exchanges {
    /// Cross-gateway envelopes found on both sides, alike.
    pub matched: u64,
    /// Cross-gateway envelopes whose other side's log was not given.
    pub unchecked: u64,
    /// Findings, by the place of the entry they are about, in log order.
    pub findings: Vec<(Place, String)>,
    /// The entries to fold, each envelope once, in an order that keeps
    /// every log's.
    pub order: Vec<Place>,
}

/// Which side of an exchange an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Sender and recipient share the gateway that logged it.
    Local,
    /// Logged by the sender's gateway.
    Sender,
    /// Logged by the recipient's gateway.
    Recipient,
}

/// The sides found of one cross-gateway envelope (by `iss` and `jti`).
#[derive(Debug, Default)]
struct Sides {
    senders: Vec<Place>,
    recipients: Vec<Place>,
}

/// An envelope to fold: where it is logged (in the logs given), and the
/// entry that stands for it.
#[derive(Debug)]
struct Node {
    places: Vec<Place>,
    stands: Place,
}

/// Matches the cross-gateway entries of `logs` (each a different
/// gateway's) and orders every entry to fold.
pub fn match_logs(logs: &[LogEntries], registry: &Registry) -> Exchanges {
    let mut out = Exchanges::default();
    let given: BTreeMap<&GatewayId, usize> = logs
        .iter()
        .enumerate()
        .map(|(n, l)| (&l.gateway, n))
        .collect();
    let mut nodes = Vec::new();
    let mut sides: BTreeMap<(&str, &str), Sides> = BTreeMap::new();
    for (n, log) in logs.iter().enumerate() {
        for (index, entry) in log.entries.iter().enumerate() {
            let place = (n, index as u64);
            if log.acts.contains_key(&place.1) {
                // Folded in its log's order, never matched across logs.
                nodes.push(Node {
                    places: vec![place],
                    stands: place,
                });
                continue;
            }
            let entry = match entry {
                Ok(e) => e,
                Err(why) => {
                    let text = format!("malformed: {}: {why}", at(logs, place));
                    out.findings.push((place, text));
                    continue;
                }
            };
            match side(entry, &log.gateway, registry) {
                Ok(Side::Local) => nodes.push(Node {
                    places: vec![place],
                    stands: place,
                }),
                Ok(found) => {
                    let of = sides
                        .entry((entry.iss.as_str(), entry.jti.as_str()))
                        .or_default();
                    match found {
                        Side::Sender => of.senders.push(place),
                        _ => of.recipients.push(place),
                    }
                }
                Err((label, why)) => out.findings.push((
                    place,
                    format!("{label}: {}: {}: {why}", at(logs, place), about(entry)),
                )),
            }
        }
    }
    for of in sides.values() {
        if let Some(node) = pair(logs, registry, &given, of, &mut out) {
            nodes.push(node);
        }
    }
    out.findings.sort_by_key(|(place, _)| *place);
    out.order = merge(logs, &nodes);
    out
}

/// Which side `entry`, logged by `gateway`, is; or why no gateway that
/// follows the rules logs it (a label and a reason).
fn side(
    entry: &Logged,
    gateway: &GatewayId,
    registry: &Registry,
) -> Result<Side, (&'static str, String)> {
    let served_by = |agency: &str, field: &str| {
        let unknown = |why: String| ("unknown", why);
        match agency.parse::<AgencyId>() {
            Ok(a) => registry.gateway_of(&a).map(|g| &g.id).ok_or_else(|| {
                unknown(format!(
                    "its {field} {agency} is not an agency of the registry"
                ))
            }),
            Err(_) => Err(unknown(format!("its {field} is not an agency id"))),
        }
    };
    let (of_iss, of_aud) = (served_by(&entry.iss, "iss")?, served_by(&entry.aud, "aud")?);
    match (of_iss == gateway, of_aud == gateway) {
        (true, true) => Ok(Side::Local),
        (true, false) => Ok(Side::Sender),
        (false, true) => Ok(Side::Recipient),
        (false, false) => Err((
            "stray",
            format!(
                "logged by gateway {gateway}, which serves neither {} (gateway {of_iss}) nor {} (gateway {of_aud})",
                entry.iss, entry.aud
            ),
        )),
    }
}

/// Checks the sides of one cross-gateway envelope against each other and
/// counts it; the envelope to fold, if it has a side.
fn pair(
    logs: &[LogEntries],
    registry: &Registry,
    given: &BTreeMap<&GatewayId, usize>,
    of: &Sides,
    out: &mut Exchanges,
) -> Option<Node> {
    let described = |place: Place| entry(logs, place).map(about).unwrap_or_default();
    for (list, side) in [(&of.senders, "sender's"), (&of.recipients, "recipient's")] {
        for &extra in list.iter().skip(1) {
            let text = format!(
                "duplicate: {}: {}: logged again on the {side} side (first as {})",
                at(logs, extra),
                described(extra),
                at(logs, list[0])
            );
            out.findings.push((extra, text));
        }
    }
    // The gateway of `agency`, if its log was given.
    let given_gateway = |agency: &str| {
        agency
            .parse::<AgencyId>()
            .ok()
            .and_then(|a| registry.gateway_of(&a))
            .filter(|g| given.contains_key(&g.id))
            .map(|g| g.id.clone())
    };
    let only = |place: Place| Node {
        places: vec![place],
        stands: place,
    };
    match (of.senders.first(), of.recipients.first()) {
        (Some(&s), Some(&r)) => {
            let (sent, received) = (entry(logs, s)?, entry(logs, r)?);
            let differ: Vec<&str> = [
                (sent.envelope != received.envelope, "envelope hash"),
                (sent.aud != received.aud, "aud"),
                (sent.kind != received.kind, "kind"),
            ]
            .into_iter()
            .filter_map(|(differs, what)| differs.then_some(what))
            .collect();
            if !differ.is_empty() {
                let text = format!(
                    "mismatch: {} and {}: iss {} jti {}: the same iss and jti with another {}",
                    at(logs, s),
                    at(logs, r),
                    sent.iss,
                    sent.jti,
                    differ.join(", ")
                );
                out.findings.push((s, text));
                // Two envelopes: only the sender's side is folded.
                return Some(only(s));
            }
            if received.time < sent.time.saturating_sub(SKEW) {
                let text = format!(
                    "early: {}: {}: logged at {}, more than {SKEW} s before {} logged it at {}",
                    at(logs, r),
                    about(received),
                    received.time,
                    at(logs, s),
                    sent.time
                );
                out.findings.push((r, text));
            } else {
                out.matched += 1;
            }
            Some(Node {
                places: vec![s, r],
                stands: s,
            })
        }
        (Some(&s), None) => {
            let sent = entry(logs, s)?;
            match given_gateway(&sent.aud) {
                Some(gateway) => {
                    let text = format!(
                        "one-sided: {}: {}: missing on the recipient's side, gateway {gateway}'s log",
                        at(logs, s),
                        about(sent)
                    );
                    out.findings.push((s, text));
                }
                None => out.unchecked += 1,
            }
            Some(only(s))
        }
        (None, Some(&r)) => {
            let received = entry(logs, r)?;
            match given_gateway(&received.iss) {
                Some(gateway) => {
                    let text = format!(
                        "one-sided: {}: {}: missing on the sender's side, gateway {gateway}'s log",
                        at(logs, r),
                        about(received)
                    );
                    out.findings.push((r, text));
                }
                None => out.unchecked += 1,
            }
            Some(only(r))
        }
        (None, None) => None,
    }
}

/// Orders `nodes` so that each log's order is kept: repeatedly take an
/// envelope that heads every log it is in; when none does (envelopes that
/// crossed in flight), the earliest sender side heading a log.
fn merge(logs: &[LogEntries], nodes: &[Node]) -> Vec<Place> {
    // Each log's envelopes to fold, in its order.
    let mut queues: Vec<Vec<(u64, usize)>> = vec![Vec::new(); logs.len()];
    for (n, node) in nodes.iter().enumerate() {
        for &(log, index) in &node.places {
            queues[log].push((index, n));
        }
    }
    for queue in &mut queues {
        queue.sort_unstable();
    }
    let mut heads = vec![0usize; logs.len()];
    let mut taken = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    loop {
        for (queue, head) in queues.iter().zip(heads.iter_mut()) {
            while queue.get(*head).is_some_and(|&(_, n)| taken[n]) {
                *head += 1;
            }
        }
        let heading = |(log, index): Place| {
            queues[log]
                .get(heads[log])
                .is_some_and(|&(i, _)| i == index)
        };
        let candidates: Vec<usize> = queues
            .iter()
            .zip(&heads)
            .filter_map(|(queue, &head)| queue.get(head).map(|&(_, n)| n))
            .collect();
        if candidates.is_empty() {
            return order;
        }
        let ready = candidates
            .iter()
            .copied()
            .find(|&n| nodes[n].places.iter().all(|&p| heading(p)));
        let time = |n: usize| entry(logs, nodes[n].stands).map_or(i64::MIN, |e| e.time);
        let earliest = |only_senders: bool| {
            candidates
                .iter()
                .copied()
                .filter(|&n| !only_senders || heading(nodes[n].stands))
                .min_by_key(|&n| (time(n), nodes[n].stands))
        };
        let Some(next) = ready.or_else(|| earliest(true)).or_else(|| earliest(false)) else {
            return order;
        };
        taken[next] = true;
        order.push(nodes[next].stands);
    }
}

/// The entry at `place`, if it parsed.
fn entry(logs: &[LogEntries], (log, index): Place) -> Option<&Logged> {
    logs.get(log)?
        .entries
        .get(usize::try_from(index).ok()?)?
        .as_ref()
        .ok()
}

/// `gateway G entry I`.
pub fn at(logs: &[LogEntries], (log, index): Place) -> String {
    match logs.get(log) {
        Some(l) => format!("gateway {} entry {index}", l.gateway),
        None => format!("entry {index}"),
    }
}

/// `iss A jti J kind K`: what names an envelope, never what it holds.
fn about(entry: &Logged) -> String {
    format!("iss {} jti {} kind {}", entry.iss, entry.jti, entry.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_server::registry::{Agency, CertificateBinding, Gateway};

    fn registry() -> Registry {
        let gateway = |id: &str| Gateway {
            id: id.parse().expect("id"),
            url: format!("https://{id}.example"),
            log_key: xgate_ledger::NoteSigner::from_seed(&format!("xgate/{id}"), [1; 32])
                .expect("signer")
                .verifier()
                .to_string(),
            witness_key: None,
            certificate: CertificateBinding {
                uri: format!("urn:xgate:gateway:{id}"),
                sha256: None,
            },
        };
        let key = |use_: &str| {
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AA", "kid": "k", "use": use_})
                .as_object()
                .cloned()
                .expect("object")
        };
        let agency = |id: &str, gateway: &str| Agency {
            id: id.parse().expect("id"),
            name: id.into(),
            gateway: Some(gateway.parse().expect("gateway")),
            certificate: CertificateBinding {
                uri: format!("urn:xgate:agency:{id}"),
                sha256: None,
            },
            signing_key: key("sig"),
            encryption_key: key("enc"),
            roles: Vec::new(),
        };
        Registry::federation(
            vec![agency("a", "s"), agency("b", "r")],
            vec![gateway("s"), gateway("r")],
        )
        .expect("registry")
    }

    fn entry(iss: &str, aud: &str, jti: &str, time: i64) -> Result<Logged, String> {
        Logged::parse(
            format!(
                r#"{{"aud":"{aud}","decision":"allow","envelope":"{jti}","iss":"{iss}","jti":"{jti}","kind":"record.send","policy":"00","time":{time},"v":1}}"#
            )
            .as_bytes(),
        )
        .map_err(|e| e.to_string())
    }

    fn log(id: &str, entries: Vec<Result<Logged, String>>) -> LogEntries {
        LogEntries {
            gateway: id.parse().expect("id"),
            entries,
            acts: BTreeMap::new(),
        }
    }

    #[test]
    fn envelopes_that_crossed_in_flight_are_each_folded_once_earliest_sender_first() {
        // S logs x (from a) then y (to a); R logs y (from b) then x.
        let logs = [
            log(
                "s",
                vec![entry("a", "b", "x", 10), entry("b", "a", "y", 12)],
            ),
            log(
                "r",
                vec![entry("b", "a", "y", 11), entry("a", "b", "x", 13)],
            ),
        ];
        let found = match_logs(&logs, &registry());
        assert_eq!(found.findings, []);
        assert_eq!((found.matched, found.unchecked), (2, 0));
        assert_eq!(found.order, [(0, 0), (1, 0)]);
    }

    #[test]
    fn each_log_keeps_its_order_and_local_entries_wait_their_turn() {
        // R's local entry comes after x's copy, which waits for S's x.
        let logs = [
            log("s", vec![entry("a", "a", "l1", 1), entry("a", "b", "x", 5)]),
            log("r", vec![entry("a", "b", "x", 6), entry("b", "b", "l2", 0)]),
        ];
        let found = match_logs(&logs, &registry());
        assert_eq!(found.order, [(0, 0), (0, 1), (1, 1)]);
        assert_eq!(found.matched, 1);
    }

    #[test]
    fn duplicates_and_one_sided_entries_and_unknown_agencies_are_findings() {
        let logs = [
            log(
                "s",
                vec![
                    entry("a", "b", "x", 1),
                    entry("a", "b", "y", 2),
                    entry("a", "z", "w", 3),
                    Err("not a gateway entry".into()),
                ],
            ),
            log("r", vec![entry("a", "b", "x", 1), entry("a", "b", "x", 2)]),
        ];
        let found = match_logs(&logs, &registry());
        let texts: Vec<&str> = found.findings.iter().map(|(_, f)| f.as_str()).collect();
        assert_eq!(
            texts,
            [
                "one-sided: gateway s entry 1: iss a jti y kind record.send: missing on the recipient's side, gateway r's log",
                "unknown: gateway s entry 2: iss a jti w kind record.send: its aud z is not an agency of the registry",
                "malformed: gateway s entry 3: not a gateway entry",
                "duplicate: gateway r entry 1: iss a jti x kind record.send: logged again on the recipient's side (first as gateway r entry 0)",
            ]
        );
        assert_eq!(found.matched, 1);
        assert_eq!(found.order, [(0, 0), (0, 1)]);
    }
}
