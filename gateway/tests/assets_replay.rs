//! The asset state is a fold over the log: after a random sequence of
//! 10,000 asset operations submitted to a real gateway (real signatures,
//! real sled, the real committer; concurrent, so the committer decides in
//! its own order), replaying the log recomputes exactly the stored state.
//! And a state changed behind the log's back is caught, by the library and
//! by `xgate audit replay`'s exit code.
//!
//! `PROPTEST_CASES` sets how many random sequences run (default 1 here;
//! each is 10,000 operations).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use xgate::client::EnvelopeSigner;
use xgate_ledger::StoreRead;
use xgate_ledger::{DiskStore, Log, OpenOptions, Store, WriteBatch};
use xgate_server::assets::state;
use xgate_server::envelope::Limits;
use xgate_server::pipeline::Gateway;
use xgate_server::policy::{DEFAULT_POLICY, Policy};
use xgate_server::recompute::replay;
use xgate_server::registry::{AgencyId, Registry};

const AGENCIES: [&str; 3] = ["state", "treasury", "gsa"];
const LOCATIONS: [&str; 3] = ["HQ", "Annex", "Depot"];
const TAGS: u16 = 400;
/// Concurrent submissions per wave.
const WAVE: usize = 32;

#[derive(Clone, Debug)]
enum Step {
    Register {
        tag: u16,
        by: usize,
        loc: usize,
        person: u8,
    },
    Offer {
        tag: u16,
        to: usize,
        person: u8,
        rogue: bool,
    },
    Answer {
        tag: u16,
        accept: bool,
        stale: bool,
        location: Option<usize>,
    },
    Report {
        by: usize,
        loc: usize,
        seen: Vec<(u16, Option<u8>)>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let agency = 0..AGENCIES.len();
    let loc = 0..LOCATIONS.len();
    prop_oneof![
        3 => (0..TAGS, agency.clone(), loc.clone(), 0..4u8)
            .prop_map(|(tag, by, loc, person)| Step::Register { tag, by, loc, person }),
        4 => (0..TAGS, agency.clone(), 0..4u8, proptest::bool::weighted(0.1))
            .prop_map(|(tag, to, person, rogue)| Step::Offer { tag, to, person, rogue }),
        4 => (0..TAGS, any::<bool>(), proptest::bool::weighted(0.1), proptest::option::of(loc.clone()))
            .prop_map(|(tag, accept, stale, location)| Step::Answer { tag, accept, stale, location }),
        1 => (agency, loc, proptest::collection::vec((0..TAGS + 20, proptest::option::of(0..4u8)), 0..30))
            .prop_map(|(by, loc, seen)| Step::Report { by, loc, seen }),
    ]
}

/// A federation on disk and a gateway over it, in this process.
struct Bench {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    pki: std::path::PathBuf,
    registry: Arc<Registry>,
    signers: Vec<EnvelopeSigner>,
    ids: Vec<AgencyId>,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
        let registry = xgate_server::pki::init(&pki, &ids, &[], false).expect("pki");
        let signers = ids
            .iter()
            .map(|id| EnvelopeSigner::for_agency(&pki, id).expect("signer"))
            .collect();
        Bench {
            data: dir.path().join("data"),
            _dir: dir,
            pki,
            registry: Arc::new(registry),
            signers,
            ids,
        }
    }

    fn log(&self) -> Arc<Log<DiskStore>> {
        Arc::new(Log::create_or_open(&self.data, &OpenOptions::default()).expect("log"))
    }

    fn gateway(&self, log: &Arc<Log<DiskStore>>) -> Arc<Gateway> {
        let policy = Policy::parse(DEFAULT_POLICY, "default", &self.registry).expect("policy");
        Arc::new(
            Gateway::new(
                Arc::clone(log) as Arc<dyn xgate_ledger::Ledger>,
                Arc::clone(&self.registry),
                policy,
                Limits::default(),
            )
            .expect("gateway")
            .with_offer_ttl(2),
        )
    }
}

/// What the test knows of each tag from the gateway's answers: the holder
/// agency and the last offer's jti. Only used to aim operations, so that
/// most are accepted; the gateway decides.
#[derive(Default)]
struct Aim {
    holder: HashMap<u16, usize>,
    offer: HashMap<u16, (String, usize)>,
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// One signed envelope for `step`, with who sends it and what it changes in
/// [`Aim`] if accepted.
fn envelope(bench: &Bench, aim: &Aim, step: &Step) -> (usize, String, Option<Aimed>) {
    let jti = xgate::client::random_jti().expect("jti");
    let tag = |t: u16| format!("T-{t}");
    let (by, aud, kind, body, aimed) = match step {
        Step::Register {
            tag: t,
            by,
            loc,
            person,
        } => (
            *by,
            *by,
            "asset.register",
            json!({"tag": tag(*t), "serial": format!("SN{t}"), "category": "laptop",
                "description": "test asset", "location": LOCATIONS[*loc],
                "holder": {"agency": AGENCIES[*by], "person": format!("person-{person}")}}),
            Some(Aimed::Holder(*t, *by)),
        ),
        Step::Offer {
            tag: t,
            to,
            person,
            rogue,
        } => {
            let holder = aim.holder.get(t).copied().unwrap_or(0);
            let by = if *rogue {
                (holder + 1) % AGENCIES.len()
            } else {
                holder
            };
            (
                by,
                *to,
                "asset.transfer.offer",
                json!({"tag": tag(*t), "to": {"agency": AGENCIES[*to], "person": format!("person-{person}")},
                    "reason": "rotation"}),
                Some(Aimed::Offer(*t, jti.clone(), *to)),
            )
        }
        Step::Answer {
            tag: t,
            accept,
            stale,
            location,
        } => {
            let (offer, to) = aim
                .offer
                .get(t)
                .cloned()
                .unwrap_or_else(|| ("none".into(), 0));
            let offer = if *stale { "stale".to_owned() } else { offer };
            let holder = aim.holder.get(t).copied().unwrap_or(0);
            let mut body = json!({"tag": tag(*t), "offer": offer});
            if let (true, Some(l)) = (*accept, location) {
                body["location"] = json!(LOCATIONS[*l]);
            }
            (
                to,
                holder,
                if *accept {
                    "asset.transfer.accept"
                } else {
                    "asset.transfer.reject"
                },
                body,
                accept.then_some(Aimed::Holder(*t, to)),
            )
        }
        Step::Report { by, loc, seen } => {
            let observed: Vec<Value> = seen
                .iter()
                .map(|(t, p)| match p {
                    Some(p) => json!({"tag": tag(*t), "person": format!("person-{p}")}),
                    None => json!({"tag": tag(*t)}),
                })
                .collect();
            (
                *by,
                *by,
                "inventory.report",
                json!({"location": LOCATIONS[*loc], "reported_by": "counter-1", "observed": observed}),
                None,
            )
        }
    };
    let jws = bench.signers[by]
        .sign(&bench.ids[aud], kind, object(body), 300, Some(jti))
        .expect("sign");
    (by, jws, aimed)
}

enum Aimed {
    Holder(u16, usize),
    Offer(u16, String, usize),
}

/// Submits `steps` in concurrent waves; returns how many were accepted.
fn run(bench: &Bench, gateway: &Arc<Gateway>, steps: &[Step]) -> u64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut aim = Aim::default();
    let mut accepted = 0;
    for wave in steps.chunks(WAVE) {
        let envelopes: Vec<_> = wave.iter().map(|s| envelope(bench, &aim, s)).collect();
        let outcomes = runtime.block_on(async {
            // All in flight at once: the committer takes them in whatever
            // order they arrive, as under real load.
            let tasks: Vec<_> = envelopes
                .iter()
                .map(|(by, jws, _)| {
                    let (gateway, sender, jws) =
                        (Arc::clone(gateway), bench.ids[*by].clone(), jws.clone());
                    tokio::spawn(async move { gateway.submit(&sender, jws.as_bytes()).await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.expect("task"));
            }
            out
        });
        for ((_, _, aimed), outcome) in envelopes.into_iter().zip(outcomes) {
            let Ok(_) = outcome else { continue };
            accepted += 1;
            match aimed {
                Some(Aimed::Holder(t, a)) => {
                    aim.holder.insert(t, a);
                }
                Some(Aimed::Offer(t, jti, to)) => {
                    aim.offer.insert(t, (jti, to));
                }
                None => {}
            }
        }
    }
    accepted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1)
    ))]

    #[test]
    fn replaying_the_log_recomputes_the_stored_state(
        steps in proptest::collection::vec(step(), 10_000)
    ) {
        let bench = Bench::new();
        let log = bench.log();
        let gateway = bench.gateway(&log);
        let accepted = run(&bench, &gateway, &steps);
        drop(gateway);
        eprintln!("{accepted} of 10,000 operations accepted");
        prop_assert_eq!(log.size(), accepted);
        prop_assert!(accepted > 2_000, "only {} of 10,000 operations were accepted", accepted);
        let outcome = replay(&*log, Some(&bench.registry), &[]).expect("replay");
        prop_assert!(outcome.is_clean(), "differences: {:?}", outcome.differences);
        prop_assert_eq!(outcome.applied, accepted);
        prop_assert!(outcome.keys > accepted);
    }
}

#[test]
fn a_state_changed_behind_the_logs_back_is_caught() {
    let bench = Bench::new();
    let log = bench.log();
    let gateway = bench.gateway(&log);
    let steps: Vec<Step> = (0..20u16)
        .map(|t| Step::Register {
            tag: t,
            by: 1,
            loc: 0,
            person: 1,
        })
        .chain([Step::Report {
            by: 1,
            loc: 0,
            seen: vec![(1, None), (500, None)],
        }])
        .collect();
    assert_eq!(run(&bench, &gateway, &steps), 21);
    drop(gateway);
    let clean = replay(&*log, Some(&bench.registry), &[]).expect("replay");
    assert!(clean.is_clean(), "{:?}", clean.differences);
    assert_eq!(clean.applied, 21);

    // Move an asset to another holder, and drop a location index key.
    let store = log.store();
    let key = state::asset_key("T-3");
    let record = store.get(&key).expect("read").expect("stored");
    let forged = String::from_utf8(record.to_vec())
        .expect("utf-8")
        .replace("\"treasury\"", "\"gsa\"");
    let mut batch = WriteBatch::new();
    batch.put(key, forged.into_bytes());
    let treasury: AgencyId = "treasury".parse().expect("id");
    batch.delete(state::located_key(&treasury, "HQ", "T-7"));
    store.apply(batch).expect("apply");
    store.sync().expect("sync");

    let caught = replay(&*log, Some(&bench.registry), &[]).expect("replay");
    assert_eq!(caught.difference_count, 2, "{:?}", caught.differences);
    let text = caught.differences.join("\n");
    assert!(
        text.contains("asset record of T-3: the stored value differs"),
        "{text}"
    );
    assert!(
        text.contains("location index of T-7: recomputed, but not stored"),
        "{text}"
    );
    assert!(
        !text.contains("person-1"),
        "a difference names a person: {text}"
    );
    drop(log);

    // The command says so with its exit code.
    let out = xgate_audit_replay(&bench.data, &bench.pki);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("difference: asset record of T-3"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("differs from the replay of 21 entries in 2 places"),
        "{out:?}"
    );
}

#[test]
fn xgate_audit_replay_passes_on_an_untouched_log() {
    let bench = Bench::new();
    let log = bench.log();
    let gateway = bench.gateway(&log);
    let steps = [
        Step::Register {
            tag: 1,
            by: 0,
            loc: 1,
            person: 2,
        },
        Step::Offer {
            tag: 1,
            to: 2,
            person: 3,
            rogue: false,
        },
        Step::Answer {
            tag: 1,
            accept: true,
            stale: false,
            location: Some(2),
        },
    ];
    assert_eq!(run(&bench, &gateway, &steps[..1]), 1);
    assert_eq!(run(&bench, &gateway, &steps[1..2]), 1);
    drop(gateway);
    drop(log);
    let out = xgate_audit_replay(&bench.data, &bench.pki);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(
            "ok: replayed 2 entries (2 asset and medical envelopes, signatures checked"
        ),
        "{stdout}"
    );
}

fn xgate_audit_replay(data: &Path, pki: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xgate"))
        .args(["audit", "replay", "--data-dir"])
        .arg(data)
        .arg("--registry")
        .arg(pki.join("registry.toml"))
        .output()
        .expect("run xgate")
}

#[test]
fn a_stored_envelope_that_is_not_the_logged_one_is_caught() {
    let bench = Bench::new();
    let log = bench.log();
    let gateway = bench.gateway(&log);
    let steps = [
        Step::Register {
            tag: 1,
            by: 0,
            loc: 0,
            person: 1,
        },
        Step::Register {
            tag: 2,
            by: 0,
            loc: 0,
            person: 1,
        },
    ];
    assert_eq!(run(&bench, &gateway, &steps), 2);
    drop(gateway);
    // Swap the two stored envelopes: each is a valid, signed envelope, but
    // not the one its entry logged.
    let (k0, k1) = (
        xgate_server::inbox::kept_key(0),
        xgate_server::inbox::kept_key(1),
    );
    let e0 = log.body(&k0).expect("read").expect("stored");
    let e1 = log.body(&k1).expect("read").expect("stored");
    let mut batch = WriteBatch::new();
    batch.put_kept(k0, e1);
    batch.put_kept(k1, e0);
    log.commit_writes(batch).expect("commit");
    let caught = replay(&*log, Some(&bench.registry), &[]).expect("replay");
    let text = caught.differences.join("\n");
    assert!(
        text.contains("entry 0: the stored envelope is not the one logged"),
        "{text}"
    );
    assert!(
        text.contains("entry 1: the stored envelope is not the one logged"),
        "{text}"
    );
    assert_eq!(caught.applied, 0);
}
