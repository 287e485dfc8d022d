//! The kinds a bench run sends, by ratio (`record.send=8,medical.request=1`),
//! and the envelopes signed for them before the run.
//!
//! Kinds that need no state set up first can be benchmarked: `record.send`
//! (to the next agency), `medical.request` (purpose ETREAT, role
//! `medical-officer`, which the default policy grants at once as
//! break-the-glass) and `asset.register` (a fresh tag each, to oneself).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::Plan;
use crate::client::{EnvelopeSigner, random_jti};
use crate::kind::Kind;
use crate::pki::REGISTRY;
use crate::registry::Registry;

/// How long a pre-signed envelope is valid: the gateway's longest.
const LIFETIME_SECS: i64 = 300;

/// Kinds and their integer shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix(Vec<(Kind, u32)>);

impl Mix {
    /// Parses `kind=share,...` (a kind alone means share 1).
    ///
    /// # Errors
    /// An unknown kind, one that cannot be benchmarked, or a zero share.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut out = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, share) = part.split_once('=').unwrap_or((part, "1"));
            let kind: Kind = name.trim().parse::<Kind>().map_err(|e| e.to_string())?;
            if !matches!(
                kind,
                Kind::RecordSend | Kind::MedicalRequest | Kind::AssetRegister
            ) {
                return Err(format!(
                    "{kind} cannot be benchmarked on its own (it needs state set up first); \
                     use record.send, medical.request or asset.register"
                ));
            }
            let share: u32 = share
                .trim()
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("the share of {kind} must be a positive integer"))?;
            out.push((kind, share));
        }
        if out.is_empty() {
            return Err("the mix names no kind".into());
        }
        Ok(Mix(out))
    }

    /// One cycle of kinds, interleaved: each kind as often as its share.
    pub fn schedule(&self) -> Vec<Kind> {
        let total: u32 = self.0.iter().map(|(_, s)| s).sum();
        let mut credit: Vec<i64> = vec![0; self.0.len()];
        (0..total)
            .map(|_| {
                // Smooth weighted round-robin: each turn goes to the kind
                // furthest behind its share.
                for (c, (_, share)) in credit.iter_mut().zip(&self.0) {
                    *c += i64::from(*share);
                }
                let (best, _) = credit
                    .iter()
                    .enumerate()
                    .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
                    .unwrap_or((0, &0));
                credit[best] -= i64::from(total);
                self.0[best].0
            })
            .collect()
    }

    /// The kinds and shares.
    pub fn kinds(&self) -> &[(Kind, u32)] {
        &self.0
    }
}

/// Pre-signed envelopes by kind and sending agency.
#[derive(Default)]
pub struct Queues(BTreeMap<(Kind, usize), Mutex<Vec<String>>>);

impl Queues {
    /// The next envelope of `kind` from sender `sender`, if any is left.
    pub fn take(&self, kind: Kind, sender: usize) -> Option<String> {
        self.0.get(&(kind, sender))?.lock().ok()?.pop()
    }
}

/// Signs `plan.envelopes` envelopes, shared out by the mix and the
/// senders, on two threads.
///
/// # Errors
/// Keys or the registry that cannot be loaded.
pub fn presign(plan: &Plan) -> Result<Arc<Queues>, String> {
    let registry = Registry::load(&plan.pki.join(REGISTRY)).map_err(|e| e.to_string())?;
    let signers = plan
        .agencies
        .iter()
        .map(|a| EnvelopeSigner::for_agency(&plan.pki, a).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let total_share: u32 = plan.mix.0.iter().map(|(_, s)| s).sum();
    let run = random_jti()?.chars().take(6).collect::<String>();
    let mut jobs = Vec::new();
    for &(kind, share) in &plan.mix.0 {
        let per_sender =
            (plan.envelopes * share as usize / total_share as usize / plan.agencies.len()).max(1);
        for sender in 0..plan.agencies.len() {
            jobs.push((kind, sender, per_sender));
        }
    }
    let signed = std::thread::scope(|scope| {
        let halves: Vec<_> = [0, 1]
            .map(|half| {
                let jobs = &jobs;
                let (signers, registry, run) = (&signers, &registry, &run);
                scope.spawn(move || {
                    jobs.iter()
                        .enumerate()
                        .filter(|(i, _)| i % 2 == half)
                        .map(|(_, &(kind, sender, n))| {
                            let list = (0..n)
                                .map(|i| sign(plan, signers, registry, run, kind, sender, i))
                                .collect::<Result<Vec<_>, String>>()?;
                            Ok(((kind, sender), Mutex::new(list)))
                        })
                        .collect::<Result<Vec<_>, String>>()
                })
            })
            .into_iter()
            .collect();
        halves
            .into_iter()
            .map(|h| h.join().map_err(|_| "a signing thread failed".to_owned())?)
            .collect::<Result<Vec<_>, String>>()
    })?;
    Ok(Arc::new(Queues(signed.into_iter().flatten().collect())))
}

/// One envelope of `kind` from agency `sender`, the `i`th of its queue.
fn sign(
    plan: &Plan,
    signers: &[EnvelopeSigner],
    registry: &Registry,
    run: &str,
    kind: Kind,
    sender: usize,
    i: usize,
) -> Result<String, String> {
    let me = &plan.agencies[sender];
    let next = &plan.agencies[(sender + 1) % plan.agencies.len()];
    let (aud, body) = match kind {
        Kind::MedicalRequest => {
            let kid = registry
                .get(me)
                .and_then(|a| a.encryption_key.get("kid"))
                .cloned()
                .ok_or_else(|| format!("{me} has no registered encryption key"))?;
            let body = json!({"subject": format!("bench-{run}-{i}"), "purpose": "ETREAT",
                "incident": format!("BENCH-{run}"),
                "responder": {"name": "Bench Responder", "role": "medical-officer"},
                "sections": ["allergies", "medications"], "reply_key": kid});
            (next, body)
        }
        Kind::AssetRegister => {
            let body = json!({"tag": format!("B{run}-{sender}-{i}"), "serial": format!("SN{i}"),
                "category": "laptop", "description": "bench asset",
                "holder": {"agency": me.as_str(), "person": "bench-holder"}, "location": "BENCH"});
            (me, body)
        }
        _ => (next, json!({"record": "bench", "pages": 1})),
    };
    let Value::Object(body) = body else {
        return Err("a body is not an object".into());
    };
    let body: Map<String, Value> = body;
    signers[sender].sign(aud, kind.as_str(), body, LIFETIME_SECS, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_interleave_by_share() {
        let mix = Mix::parse("record.send=3,medical.request").expect("mix");
        let schedule = mix.schedule();
        assert_eq!(schedule.len(), 4);
        assert_eq!(
            schedule.iter().filter(|k| **k == Kind::RecordSend).count(),
            3
        );
        let even = Mix::parse("record.send,asset.register")
            .expect("mix")
            .schedule();
        assert_eq!(even, vec![Kind::RecordSend, Kind::AssetRegister]);
        assert!(Mix::parse("asset.transfer.accept").is_err());
        assert!(Mix::parse("record.send=0").is_err());
        assert!(Mix::parse("teleport").is_err());
        assert!(Mix::parse("").is_err());
    }
}
