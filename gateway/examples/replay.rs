//! How long `xgate audit replay` takes over a large log: builds (once) a
//! data directory holding N logged asset operations through an in-process
//! gateway (real signatures, real sled, the real committer), then times the
//! replay with and without signature checks, next to a baseline measured in
//! the same run: reading every entry and its stored envelope, which any
//! replay must do.
//!
//! ```text
//! cargo run --release -p xgate --example replay -- [DIR] [N]
//! ```
//!
//! DIR defaults to `target/bench-replay`, N to 1,000,000. The operations
//! are, per asset, a registration, an offer and its acceptance, and per 256
//! assets one inventory report of 64 tags. Prints one JSON line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use xgate::client::EnvelopeSigner;
use xgate_ledger::StoreRead;
use xgate_ledger::{DiskStore, Log, OpenOptions};
use xgate_server::envelope::Limits;
use xgate_server::pipeline::Gateway;
use xgate_server::policy::{DEFAULT_POLICY, Policy};
use xgate_server::recompute::replay;
use xgate_server::registry::{AgencyId, Registry};

const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];
/// Assets per wave: each wave registers, offers and accepts this many.
const CHUNK: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("target/bench-replay", String::as_str));
    let n: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let data = dir.join(format!("{n}"));
    let pki = data.join("pki");
    let registry = if data.join("complete").is_file() {
        Registry::load(&pki.join("registry.toml")).expect("registry")
    } else {
        build(&data, &pki, n)
    };
    let log = Log::open_existing(&data.join("data"), &OpenOptions::default()).expect("log");
    let size = log.size();

    // Baseline: read every entry and, for asset entries, the stored envelope.
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 0..size {
        bytes += log.entry(i).expect("entry").len();
        if let Some(e) = log
            .store()
            .get(&xgate_server::inbox::kept_key(i))
            .expect("read")
        {
            bytes += e.len();
        }
    }
    let read_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let unsigned = replay(&log, None, &[]).expect("replay");
    let unsigned_secs = started.elapsed().as_secs_f64();
    assert!(unsigned.is_clean(), "{:?}", unsigned.differences);

    let started = Instant::now();
    let signed = replay(&log, Some(&registry), &[]).expect("replay");
    let signed_secs = started.elapsed().as_secs_f64();
    assert!(signed.is_clean(), "{:?}", signed.differences);

    println!(
        "{}",
        json!({
            "entries": size,
            "applied": signed.applied,
            "state_keys": signed.keys,
            "read_baseline_secs": round(read_secs),
            "read_baseline_bytes": bytes,
            "replay_secs": round(unsigned_secs),
            "replay_with_signatures_secs": round(signed_secs),
            "replay_ops_per_sec": (signed.applied as f64 / unsigned_secs).round(),
            "replay_with_signatures_ops_per_sec": (signed.applied as f64 / signed_secs).round(),
            "ratio_replay_to_read": round(unsigned_secs / read_secs),
        })
    );
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Logs about `n` operations through an in-process gateway.
fn build(data: &Path, pki: &Path, n: u64) -> Registry {
    let _ = std::fs::remove_dir_all(data);
    let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
    let registry = xgate_server::pki::init(pki, &ids, &[], false).expect("pki");
    let signers: Arc<Vec<EnvelopeSigner>> = Arc::new(
        ids.iter()
            .map(|id| EnvelopeSigner::for_agency(pki, id).expect("signer"))
            .collect(),
    );
    let log: Arc<Log<DiskStore>> =
        Arc::new(Log::create_or_open(&data.join("data"), &OpenOptions::default()).expect("log"));
    let policy = Policy::parse(DEFAULT_POLICY, "default", &registry).expect("policy");
    let gateway = Arc::new(
        Gateway::new(
            Arc::clone(&log) as Arc<dyn xgate_ledger::Ledger>,
            Arc::new(registry.clone()),
            policy,
            Limits::default(),
        )
        .expect("gateway"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let mut next_tag = 0usize;
    while log.size() < n {
        let tags: Vec<usize> = (next_tag..next_tag + CHUNK).collect();
        next_tag += CHUNK;
        let holder = |t: usize| t % AGENCIES.len();
        let taker = |t: usize| (t + 1) % AGENCIES.len();
        let wave = |make: &dyn Fn(usize) -> (usize, usize, &'static str, Value, String)| {
            let jobs: Vec<_> = tags.iter().map(|t| make(*t)).collect();
            runtime.block_on(submit_all(&gateway, &signers, &ids, jobs));
        };
        wave(&|t| {
            (
                holder(t),
                holder(t),
                "asset.register",
                json!({"tag": format!("T-{t}"), "serial": format!("SN-{t}"), "category": "laptop",
                    "description": "replay bench", "location": format!("L-{}", t % 50),
                    "holder": {"agency": AGENCIES[holder(t)], "person": format!("p-{}", t % 1000)}}),
                format!("r-{t}"),
            )
        });
        wave(&|t| {
            (
                holder(t),
                taker(t),
                "asset.transfer.offer",
                json!({"tag": format!("T-{t}"), "to": {"agency": AGENCIES[taker(t)], "person": "q"}, "reason": "rotation"}),
                format!("o-{t}"),
            )
        });
        wave(&|t| {
            (
                taker(t),
                holder(t),
                "asset.transfer.accept",
                json!({"tag": format!("T-{t}"), "offer": format!("o-{t}")}),
                format!("a-{t}"),
            )
        });
        let observed: Vec<Value> = tags
            .iter()
            .step_by(4)
            .map(|t| json!({"tag": format!("T-{t}")}))
            .collect();
        runtime.block_on(submit_all(
            &gateway,
            &signers,
            &ids,
            vec![(
                1,
                1,
                "inventory.report",
                json!({"location": "L-1", "reported_by": "counter", "observed": observed}),
                format!("c-{next_tag}"),
            )],
        ));
        if next_tag.is_multiple_of(CHUNK * 400) {
            eprintln!(
                "{} entries, {:.0}/s",
                log.size(),
                log.size() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    drop(gateway);
    eprintln!(
        "built {} entries in {:.1} s",
        log.size(),
        started.elapsed().as_secs_f64()
    );
    std::fs::write(data.join("complete"), b"").expect("marker");
    registry
}

async fn submit_all(
    gateway: &Arc<Gateway>,
    signers: &Arc<Vec<EnvelopeSigner>>,
    ids: &[AgencyId],
    jobs: Vec<(usize, usize, &'static str, Value, String)>,
) {
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(by, to, kind, body, jti)| {
            let (gateway, signers) = (Arc::clone(gateway), Arc::clone(signers));
            let (sender, aud) = (ids[by].clone(), ids[to].clone());
            tokio::spawn(async move {
                let body: Map<String, Value> = match body {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                let jws = signers[by]
                    .sign(&aud, kind, body, 300, Some(jti))
                    .expect("sign");
                gateway.submit(&sender, jws.as_bytes()).await
            })
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await.expect("task") {
            panic!("refused: {e}");
        }
    }
}
