//! The envelopes a bench run sends, signed before the run so that signing
//! is not measured: shared out by the mix and the sending agencies, each
//! already the whole request the lean loop writes ([`Prepared`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value, json};

use super::error::BenchError;
use super::plan::Plan;
use super::wire::Prepared;
use crate::client::{EnvelopeSigner, random_jti};
use xgate_server::kind::Kind;
use xgate_server::pki::REGISTRY;
use xgate_server::registry::Registry;

/// How long a pre-signed envelope is valid: the gateway's longest.
const LIFETIME_SECS: i64 = 300;

/// Pre-signed envelopes by kind and sending agency.
#[derive(Default)]
pub struct Queues(BTreeMap<(Kind, usize), Queue>);

/// The envelopes of one kind and sender, taken in order by whichever of
/// the sender's connections is next: an atomic cursor, not a lock.
struct Queue {
    items: Vec<Prepared>,
    next: AtomicUsize,
}

impl Queues {
    /// The next envelope of `kind` from sender `sender`, if any is left.
    pub fn take(&self, kind: Kind, sender: usize) -> Option<&Prepared> {
        let queue = self.0.get(&(kind, sender))?;
        queue.items.get(queue.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Signs `plan.envelopes` envelopes, shared out by the mix and the
/// senders, on two threads, each prepared as a request to the gateway at
/// `authority` (`host:port`).
///
/// # Errors
/// Keys or the registry that cannot be loaded.
pub fn presign(plan: &Plan, authority: &str) -> Result<Arc<Queues>, BenchError> {
    let registry = Registry::load(&plan.pki.join(REGISTRY))?;
    let signers = plan
        .agencies
        .iter()
        .map(|a| EnvelopeSigner::for_agency(&plan.pki, a))
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
                            let items = (0..n)
                                .map(|i| {
                                    let jws = sign(plan, signers, registry, run, kind, sender, i)?;
                                    Ok(Prepared::envelope(authority, &jws))
                                })
                                .collect::<Result<Vec<_>, BenchError>>()?;
                            let next = AtomicUsize::new(0);
                            Ok(((kind, sender), Queue { items, next }))
                        })
                        .collect::<Result<Vec<_>, BenchError>>()
                })
            })
            .into_iter()
            .collect();
        halves
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| BenchError::Panicked("signing thread"))?
            })
            .collect::<Result<Vec<_>, BenchError>>()
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
) -> Result<String, BenchError> {
    let me = &plan.agencies[sender];
    let next = plan.recipient(sender);
    let (aud, body) = match kind {
        Kind::MedicalRequest => {
            let kid = registry
                .get(me)
                .and_then(|a| a.encryption_key.get("kid"))
                .cloned()
                .ok_or_else(|| BenchError::NoEncryptionKey(me.clone()))?;
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
        unreachable!("every body above is a JSON object literal")
    };
    let body: Map<String, Value> = body;
    Ok(signers[sender].sign(aud, kind.as_str(), body, LIFETIME_SECS, None)?)
}
