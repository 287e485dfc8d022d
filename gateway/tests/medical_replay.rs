//! The medical state is a fold over the log: after a random sequence of
//! medical operations submitted concurrently to a real gateway (real
//! signatures, sled and committer; grants capped at two seconds, so some
//! lapse mid-run), replaying the log recomputes exactly the stored state,
//! and every case keeps the break-the-glass invariants: a grant never
//! covers more responses than its uses, and a case is in the review queue
//! exactly while it broke the glass and is not yet reviewed.
//!
//! A request that reuses its requester's `jti` for another holder, as
//! gateways before issue 17 accepted, is refused by the replay too.
//!
//! `PROPTEST_CASES` sets how many random sequences run (default 1 here).

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use xgate::client::EnvelopeSigner;
use xgate_ledger::StoreRead;
use xgate_ledger::{Log, OpenOptions};
use xgate_server::envelope::Limits;
use xgate_server::http::error::ApiError;
use xgate_server::medical::jwe;
use xgate_server::medical::state::{self, Case};
use xgate_server::pipeline::{Gateway, Medical};
use xgate_server::policy::{DEFAULT_POLICY, Policy};
use xgate_server::recompute::replay;
use xgate_server::registry::{AgencyId, Registry};

const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];
/// Request names: few, so that some collide.
const REQUESTS: u8 = 40;
/// Concurrent submissions per wave.
const WAVE: usize = 16;

/// Routine treatment allowed between everyone, on top of the default.
fn policy_text() -> String {
    format!(
        "{DEFAULT_POLICY}\n[[rule]]\nname = \"routine\"\nkinds = [\"medical.request\"]\n\
         from = [\"*\"]\nto = [\"*\"]\neffect = \"allow\"\npurposes = [\"TREAT\"]\n"
    )
}

#[derive(Clone, Debug)]
enum Step {
    Request {
        by: usize,
        to: usize,
        q: u8,
        emergency: bool,
        officer: bool,
    },
    Approve {
        q: u8,
        uses: u32,
    },
    Respond {
        q: u8,
        rogue: bool,
    },
    Review {
        q: u8,
        appropriate: bool,
        misaddressed: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let agency = 0..AGENCIES.len();
    prop_oneof![
        4 => (agency.clone(), agency, 0..REQUESTS, proptest::bool::weighted(0.6), proptest::bool::weighted(0.9))
            .prop_map(|(by, to, q, emergency, officer)| Step::Request { by, to, q, emergency, officer }),
        2 => (0..REQUESTS, 1..3u32).prop_map(|(q, uses)| Step::Approve { q, uses }),
        5 => (0..REQUESTS, proptest::bool::weighted(0.1)).prop_map(|(q, rogue)| Step::Respond { q, rogue }),
        2 => (0..REQUESTS, any::<bool>(), proptest::bool::weighted(0.1))
            .prop_map(|(q, appropriate, misaddressed)| Step::Review { q, appropriate, misaddressed }),
    ]
}

/// A federation on disk, a gateway over it in this process, and one
/// pre-encrypted payload per agency (to its registered key).
struct World {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    signers: Vec<EnvelopeSigner>,
    ids: Vec<AgencyId>,
    payloads: Vec<String>,
    log: Arc<Log<xgate_ledger::DiskStore>>,
    gateway: Arc<Gateway>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
        let registry = Arc::new(xgate_server::pki::init(&pki, &ids, &[], false).expect("pki"));
        let signers = ids
            .iter()
            .map(|id| EnvelopeSigner::for_agency(&pki, id).expect("signer"))
            .collect();
        let payloads = ids
            .iter()
            .map(|id| {
                let key = &registry.get(id).expect("agency").encryption_key;
                jwe::encrypt(br#"{"resourceType":"Bundle"}"#, key).expect("encrypt")
            })
            .collect();
        let log = Arc::new(
            Log::create_or_open(&dir.path().join("data"), &OpenOptions::default()).expect("log"),
        );
        let policy = Policy::parse(&policy_text(), "test", &registry).expect("policy");
        let gateway = Arc::new(
            Gateway::new(
                Arc::clone(&log) as Arc<dyn xgate_ledger::Ledger>,
                Arc::clone(&registry),
                policy,
                Limits::default(),
            )
            .expect("gateway")
            .with_medical_times(Medical {
                max_grant: 2,
                review_due: 3600,
            }),
        );
        World {
            _dir: dir,
            registry,
            signers,
            ids,
            payloads,
            log,
            gateway,
        }
    }

    fn kid(&self, agency: usize) -> Value {
        let agency = self.registry.get(&self.ids[agency]).expect("agency");
        agency.encryption_key.get("kid").cloned().expect("kid")
    }

    /// The signed envelope for `step`, its sender, and the request it opens.
    fn envelope(
        &self,
        aim: &[Option<(usize, usize)>],
        step: &Step,
    ) -> (usize, String, Option<(u8, usize, usize)>) {
        let mut jti = xgate::client::random_jti().expect("jti");
        let aimed = |q: u8| aim[usize::from(q)].unwrap_or((0, 1));
        let (by, aud, kind, body, opens) = match step {
            Step::Request {
                by,
                to,
                q,
                emergency,
                officer,
            } => {
                jti = format!("q{q}");
                let body = json!({"subject": format!("mrn-{q}"),
                    "purpose": if *emergency { "ETREAT" } else { "TREAT" },
                    "incident": "INC-1",
                    "responder": {"name": "Dr. Example", "role": if *officer { "medical-officer" } else { "consular-officer" }},
                    "sections": ["allergies"], "reply_key": self.kid(*by)});
                (*by, *to, "medical.request", body, Some((*q, *by, *to)))
            }
            Step::Approve { q, uses } => {
                let (requester, holder) = aimed(*q);
                let body = json!({"request": format!("q{q}"), "uses": uses});
                (holder, requester, "medical.approve", body, None)
            }
            Step::Respond { q, rogue } => {
                let (requester, holder) = aimed(*q);
                let by = if *rogue {
                    (holder + 1) % AGENCIES.len()
                } else {
                    holder
                };
                let body = json!({"request": format!("q{q}"), "payload": self.payloads[requester]});
                (by, requester, "medical.response", body, None)
            }
            Step::Review {
                q,
                appropriate,
                misaddressed,
            } => {
                let (requester, holder) = aimed(*q);
                let body = json!({"request": format!("q{q}"),
                    "outcome": if *appropriate { "appropriate" } else { "inappropriate" }, "note": "n"});
                let aud = if *misaddressed { requester } else { holder };
                (holder, aud, "review.decision", body, None)
            }
        };
        let Value::Object(body) = body else {
            unreachable!("bodies are objects")
        };
        let body: Map<String, Value> = body;
        let jws = self.signers[by]
            .sign(&self.ids[aud], kind, body, 300, Some(jti))
            .expect("sign");
        (by, jws, opens)
    }

    /// Submits `steps` in concurrent waves; how many were accepted, and
    /// the refusals by code.
    fn run(&self, steps: &[Step]) -> (u64, BTreeMap<&'static str, u64>) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut aim = vec![None; usize::from(REQUESTS)];
        let mut accepted = 0;
        let mut refused = BTreeMap::new();
        for (n, wave) in steps.chunks(WAVE).enumerate() {
            let envelopes: Vec<_> = wave.iter().map(|s| self.envelope(&aim, s)).collect();
            let outcomes = runtime.block_on(async {
                let tasks: Vec<_> = envelopes
                    .iter()
                    .map(|(by, jws, _)| {
                        let (gateway, sender, jws) = (
                            Arc::clone(&self.gateway),
                            self.ids[*by].clone(),
                            jws.clone(),
                        );
                        tokio::spawn(async move {
                            gateway
                                .submit(&sender, jws.as_bytes())
                                .await
                                .map_err(ApiError::from)
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.expect("task"));
                }
                out
            });
            for ((_, _, opens), outcome) in envelopes.iter().zip(outcomes) {
                match &outcome {
                    Ok(_) => accepted += 1,
                    Err(e) => *refused.entry(e.code.as_str()).or_default() += 1,
                }
                if let (Ok(_), Some((q, requester, holder))) = (&outcome, opens) {
                    aim[usize::from(*q)] = Some((*requester, *holder));
                }
            }
            // Let every grant made so far lapse (they last `max_grant`, 2 s):
            // longer than a grant, so that `grant_expired` comes from the
            // steps after, however fast the waves before ran.
            if n % 40 == 39 {
                std::thread::sleep(std::time::Duration::from_millis(2100));
            }
        }
        (accepted, refused)
    }

    fn cases(&self) -> Vec<Case> {
        self.log
            .store()
            .scan_prefix(b"Gm")
            .map(|kv| serde_json::from_slice(kv.expect("read").1.as_ref()).expect("case"))
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1),
        .. ProptestConfig::default()
    })]

    #[test]
    fn replaying_the_log_recomputes_the_medical_state(steps in proptest::collection::vec(step(), 1500)) {
        let world = World::new();
        let (accepted, refused) = world.run(&steps);
        // The sequence exercised every rule, not only the happy path.
        for code in ["no_grant", "grant_used", "grant_expired", "policy_denied", "already_reviewed", "wrong_audience"] {
            prop_assert!(refused.contains_key(code), "no {code} among {refused:?}");
        }
        prop_assert!(accepted > 300, "too few operations were accepted to mean much: {accepted}");
        let outcome = replay(&*world.log, Some(&world.registry), &[]).expect("replay");
        prop_assert!(outcome.is_clean(), "{:?}", outcome.differences);
        prop_assert_eq!(outcome.applied, accepted);
        let cases = world.cases();
        prop_assert!(cases.iter().any(|c| c.break_glass) && cases.iter().any(|c| !c.break_glass));
        prop_assert!(cases.iter().any(|c| !c.responses.is_empty()));
        for case in &cases {
            if let Some(grant) = &case.grant {
                prop_assert!(grant.used <= grant.uses, "{case:?}");
            }
            let queued = world
                .log
                .store()
                .get(&state::queue_key(&case.holder, case.log_index))
                .expect("read")
                .is_some();
            prop_assert_eq!(queued, case.break_glass && case.review.is_none(), "{:?}", case);
        }
    }
}

/// Issue 17, item 5, the fold's half: a log in which a requester reused a
/// request's `jti` for a second holder (what gateways before the fix
/// accepted once the first request's replay window was over, overwriting
/// its case and leaving the first holder's review queue pointing at it) no
/// longer replays clean: `xgate audit replay` names the entry its rules
/// refuse, as the gateway now refuses it (`request_exists`).
#[test]
fn replay_refuses_a_request_reusing_its_requesters_jti() {
    use xgate_ledger::WriteBatch;
    use xgate_server::apply::state::Stored;
    use xgate_server::entry::{existing_salt, person_hash};
    use xgate_server::medical::state::{Basis, Grant};

    let World {
        _dir: dir,
        registry,
        signers,
        ids,
        log,
        gateway,
        ..
    } = World::new();
    let (state_, gsa, hhs) = (0, 2, 3);
    let jti = "q-reused";
    let kid = registry
        .get(&ids[state_])
        .and_then(|a| a.encryption_key.get("kid").cloned())
        .expect("kid");
    let Value::Object(body) = json!({"subject": "mrn-1", "purpose": "ETREAT", "incident": "INC-1",
        "responder": {"name": "Dr. Example", "role": "medical-officer"},
        "sections": ["allergies"], "reply_key": kid})
    else {
        unreachable!("an object")
    };
    let sign = |to: usize| {
        signers[state_]
            .sign(
                &ids[to],
                "medical.request",
                body.clone(),
                300,
                Some(jti.into()),
            )
            .expect("sign")
    };
    // The first request, through the gateway's pipeline.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(gateway.submit(&ids[state_], sign(hhs).as_bytes()))
        .expect("the first request is accepted");
    drop(gateway);

    // The second, to gsa, committed as the gateway did before the fix.
    let now = xgate_server::pipeline::unix_now();
    let verifiers = xgate_server::envelope::Verifiers::from_registry(&registry).expect("verifiers");
    let second = sign(gsa);
    let envelope = xgate_server::envelope::open(
        second.as_bytes(),
        &ids[state_],
        &verifiers,
        &registry,
        Limits::default(),
        now,
    )
    .expect("the second request opens");
    let store = log.store();
    let salt = existing_salt(store).expect("read").expect("a salt");
    let policy = Policy::parse(&policy_text(), "test", &registry)
        .expect("policy")
        .hash_hex();
    let expires = now + 2;
    let entry = xgate_server::entry::Entry::of(&envelope, &policy, "break-glass", now)
        .about(None, Some(person_hash(&salt, "mrn-1")), Some(expires))
        .medical(Some("ETREAT"), None, Some(1), None)
        .encode()
        .expect("an entry encodes");
    let index = log.size();
    let mut case = state::case(&Stored(store), &ids[state_], jti)
        .expect("read")
        .expect("the first case");
    assert_eq!(case.holder, ids[hhs]);
    case.holder = ids[gsa].clone();
    case.log_index = index;
    case.time = now;
    case.envelope = envelope.id();
    case.grant = Some(Grant {
        basis: Basis::BreakGlass,
        log_index: index,
        time: now,
        expires,
        uses: 1,
        used: 0,
    });
    let mut batch = WriteBatch::new();
    xgate_server::inbox::keep(&envelope, index, &mut batch);
    xgate_server::inbox::put(&envelope, index, true, &mut batch).expect("an inbox record encodes");
    batch.put(state::holder_key(&ids[gsa], jti), b"state".to_vec());
    batch.put(
        state::queue_key(&ids[gsa], index),
        state::queue_value(&ids[state_], jti),
    );
    state::put_case(&mut batch, &case).expect("a case encodes");
    log.append_batch_with(&[entry], move |_| batch)
        .expect("append");
    drop(log);

    let data = dir.path().join("data").display().to_string();
    let registry = dir.path().join("pki/registry.toml").display().to_string();
    let run = xgate_tests::Xgate::new(env!("CARGO_BIN_EXE_xgate")).run(
        &[
            "audit",
            "replay",
            "--data-dir",
            &data,
            "--registry",
            &registry,
        ],
        b"",
    );
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.code, Some(1), "{out}{}", run.stderr);
    assert!(
        out.contains(&format!(
            "difference: entry {index}: the rules refuse it on replay: state already made a medical request with this jti"
        )),
        "{out}"
    );
}
