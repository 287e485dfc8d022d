//! A large inventory report is surveyed off the commit thread, and still
//! decided at its place in the log: an in-process gateway (real signatures,
//! real sled, the real committer) takes a report of 3,000 tags while other
//! agencies commit, and while the reported tags themselves change hands;
//! the report committed is the one the state at its index gives, which
//! `audit replay` recomputes, and the commit thread never surveys unless
//! the report keeps losing the race. Timings are in
//! `gateway/benches/report_contention.rs`, not here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Map, Value, json};
use xgate::client::{EnvelopeSigner, random_jti};
use xgate_ledger::{DiskStore, Log, OpenOptions};
use xgate_server::assets::custody::EventKind;
use xgate_server::assets::{reconcile, state};
use xgate_server::envelope::Limits;
use xgate_server::pipeline::{AheadCounts, Gateway};
use xgate_server::policy::{DEFAULT_POLICY, Policy};
use xgate_server::recompute::replay;
use xgate_server::registry::{AgencyId, Registry};

const AGENCIES: [&str; 3] = ["treasury", "gsa", "hhs"];
const TREASURY: usize = 0;
const GSA: usize = 1;
const HHS: usize = 2;
/// Assets treasury keeps at `HQ` and reports.
const REPORTED: usize = 3_000;

struct Federation {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    ids: Vec<AgencyId>,
    signers: Vec<EnvelopeSigner>,
    log: Arc<Log<DiskStore>>,
    gateway: Arc<Gateway>,
}

impl Federation {
    fn new() -> Federation {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
        let registry = Arc::new(xgate_server::pki::init(&pki, &ids, &[], false).expect("pki"));
        let signers = ids
            .iter()
            .map(|id| EnvelopeSigner::for_agency(&pki, id).expect("signer"))
            .collect();
        let log = Arc::new(
            Log::create_or_open(&dir.path().join("data"), &OpenOptions::default()).expect("log"),
        );
        let policy = Policy::parse(DEFAULT_POLICY, "default", &registry).expect("policy");
        let gateway = Arc::new(
            Gateway::new(
                Arc::clone(&log) as Arc<dyn xgate_ledger::Ledger>,
                Arc::clone(&registry),
                policy,
                Limits::default(),
            )
            .expect("gateway"),
        );
        Federation {
            _dir: dir,
            registry,
            ids,
            signers,
            log,
            gateway,
        }
    }

    /// Signs and submits `kind` from `by` to `to`; the log index, or the
    /// refusal.
    async fn send(
        &self,
        by: usize,
        to: usize,
        kind: &str,
        body: Value,
        jti: Option<String>,
    ) -> Result<u64, String> {
        let Value::Object(body) = body else {
            return Err("a body is an object".into());
        };
        send(
            &self.gateway,
            &self.signers[by],
            &self.ids[to],
            kind,
            body,
            jti,
        )
        .await
    }

    /// `by` registers `tags` at `location`, 64 at a time.
    async fn register(self: &Arc<Self>, by: usize, tags: &[String], location: &str) {
        for chunk in tags.chunks(64) {
            let mut sends = tokio::task::JoinSet::new();
            for tag in chunk {
                let fed = Arc::clone(self);
                let body = json!({"tag": tag, "serial": "s", "category": "laptop",
                    "description": "d", "location": location,
                    "holder": {"agency": AGENCIES[by], "person": "keeper"}});
                sends.spawn(async move { fed.send(by, by, "asset.register", body, None).await });
            }
            while let Some(r) = sends.join_next().await {
                r.expect("task").expect("registered");
            }
        }
    }

    /// Treasury's report of `HQ`, observing `tags`.
    async fn report(&self, tags: &[String]) -> u64 {
        let observed: Vec<Value> = tags.iter().map(|t| json!({"tag": t})).collect();
        self.send(
            TREASURY,
            TREASURY,
            "inventory.report",
            json!({"location": "HQ", "reported_by": "counter", "observed": observed}),
            None,
        )
        .await
        .expect("report accepted")
    }

    /// `xgate audit replay` finds the stored state exactly what the log
    /// gives.
    fn replays_clean(&self) {
        let outcome = replay(&*self.log, Some(&self.registry), &[]).expect("replay");
        assert!(outcome.is_clean(), "{:?}", outcome.differences);
        assert_eq!(outcome.entries, self.log.size());
    }
}

async fn send(
    gateway: &Gateway,
    signer: &EnvelopeSigner,
    to: &AgencyId,
    kind: &str,
    body: Map<String, Value>,
    jti: Option<String>,
) -> Result<u64, String> {
    let jws = signer
        .sign(to, kind, body, 300, jti)
        .map_err(|e| e.to_string())?;
    gateway
        .submit(signer.iss(), jws.as_bytes())
        .await
        .map(|accepted| accepted.receipt.log_index)
        .map_err(|e| e.to_string())
}

fn tags(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_large_report_is_surveyed_off_the_commit_thread_while_others_commit() {
    let fed = Arc::new(Federation::new());
    let reported = tags("T", REPORTED);
    runtime().block_on(async {
        fed.register(TREASURY, &reported, "HQ").await;
        // Others commit meanwhile: records, and gsa's own assets at its own
        // HQ (the same location name, another agency's index).
        let busy = Arc::new(AtomicBool::new(true));
        let others = {
            let (fed, busy) = (Arc::clone(&fed), Arc::clone(&busy));
            tokio::spawn(async move {
                let mut n = 0;
                while busy.load(Ordering::Acquire) || n < 20 {
                    let record = json!({"record": format!("r{n}")});
                    fed.send(GSA, HHS, "record.send", record, None)
                        .await
                        .expect("record");
                    fed.register(GSA, &[format!("G-{n:05}")], "HQ").await;
                    n += 1;
                }
                n
            })
        };
        let index = fed.report(&reported[100..]).await;
        busy.store(false, Ordering::Release);
        let others = others.await.expect("others");
        assert!(others >= 20);

        let report = reconcile::report(fed.log.store(), index)
            .expect("read")
            .expect("stored");
        assert_eq!(report.observed, REPORTED - 100);
        assert_eq!(report.missing, reported[..100]);
        assert!(report.unexpected.is_empty() && report.unknown_tag.is_empty());
    });
    // Surveyed once, off the commit thread, and still current at its turn:
    // the commit thread never read the report's tags.
    assert_eq!(
        fed.gateway.ahead_counts(),
        AheadCounts {
            current: 1,
            stale: 0,
            fallbacks: 0
        }
    );
    fed.replays_clean();
}

#[test]
fn a_report_racing_transfers_of_its_tags_is_decided_at_its_place_in_the_log() {
    let fed = Arc::new(Federation::new());
    let reported = tags("T", REPORTED);
    let moving: Vec<String> = reported[..8].to_vec();
    let transfers = Arc::new(AtomicU64::new(0));
    runtime().block_on(async {
        fed.register(TREASURY, &reported, "HQ").await;
        // Treasury lends its first 8 assets to gsa and gsa gives them back,
        // over and over, each move an offer and its acceptance, until the
        // report is in.
        let busy = Arc::new(AtomicBool::new(true));
        let lending = {
            let (fed, busy, moving) = (Arc::clone(&fed), Arc::clone(&busy), moving.clone());
            let transfers = Arc::clone(&transfers);
            tokio::spawn(async move {
                let mut holder = TREASURY;
                while busy.load(Ordering::Acquire) {
                    let other = if holder == TREASURY { GSA } else { TREASURY };
                    for tag in &moving {
                        let offer = random_jti().expect("jti");
                        let body = json!({"tag": tag, "to": {"agency": AGENCIES[other], "person": "keeper"}, "reason": "loan"});
                        fed.send(holder, other, "asset.transfer.offer", body, Some(offer.clone()))
                            .await
                            .expect("offer");
                        let body = json!({"tag": tag, "offer": offer});
                        fed.send(other, holder, "asset.transfer.accept", body, None)
                            .await
                            .expect("accept");
                        transfers.fetch_add(1, Ordering::AcqRel);
                    }
                    holder = other;
                }
            })
        };
        while transfers.load(Ordering::Acquire) < 4 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let index = fed.report(&reported).await;
        busy.store(false, Ordering::Release);
        lending.await.expect("lending");

        // Each lent tag is `unexpected` exactly if gsa held it at the
        // report's index, as its custody chain says.
        let report = reconcile::report(fed.log.store(), index)
            .expect("read")
            .expect("stored");
        let unexpected: BTreeSet<&String> = report.unexpected.iter().collect();
        for tag in &moving {
            let chain = state::chain(fed.log.store(), tag).expect("chain");
            let holder = chain
                .iter()
                .rfind(|e| e.log_index < index && e.kind == EventKind::Accepted)
                .map_or(AGENCIES[TREASURY], |e| e.by.as_str());
            let lent = holder == AGENCIES[GSA];
            assert_eq!(unexpected.contains(tag), lent, "{tag} at {index}: {chain:?}");
        }
        assert!(
            report.missing.is_empty() && report.unknown_tag.is_empty(),
            "{report:?}"
        );
    });
    let counts = fed.gateway.ahead_counts();
    assert!(
        counts.stale >= 1,
        "the transfers never raced the report: {counts:?}; {} transfers",
        transfers.load(Ordering::Acquire)
    );
    assert_eq!(counts.current + counts.fallbacks, 1, "{counts:?}");
    fed.replays_clean();
}
