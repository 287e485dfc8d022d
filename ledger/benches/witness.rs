//! What a witness's `add-checkpoint` costs (C2SP tlog-witness): verify the
//! log's signature, verify the consistency proof, persist the new state
//! durably (temporary file, fsync, rename, fsync of the directory), and
//! cosign, for an Ed25519 and an ML-DSA-44 witness; with, in the same run,
//! each part alone, so the ratios say where the time goes.
//!
//! ```text
//! cargo bench -p xgate-ledger --bench witness
//! ```
//!
//! - `witness/log_signature`: the Ed25519 verification of the log's
//!   signature on a checkpoint note, alone: the baseline.
//! - `witness/consistency`: verifying a consistency proof from size S to
//!   S + 1 in a tree of 131,072 entries.
//! - `witness/persist`: `fsutil::write_atomic` of an Ed25519 witness's
//!   state file (what the durable write costs on this disk; fsync times on
//!   a shared disk vary from run to run, so compare within one run).
//! - `witness/cosign/{ed25519,ml-dsa-44}`, `witness/verify/{...}`: making
//!   and checking one cosignature.
//! - `witness/add_checkpoint/{ed25519,ml-dsa-44}`: the whole request, each
//!   iteration a checkpoint one entry larger than the last, from a real
//!   log's roots and proofs, in a witness directory under `target/`.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use xgate_ledger::checkpoint::{Checkpoint, NoteSigner};
use xgate_ledger::cosign::{CosignatureAlg, Cosigner};
use xgate_ledger::witness::{Outcome, Witness, format_body, init};
use xgate_ledger::{DiskStore, Log, verify_consistency};

use common::Results;

/// Entries in the log whose checkpoints are submitted.
const LOG_SIZE: u64 = 1 << 17;
/// The first size submitted; every iteration adds one.
const START: u64 = 1 << 10;

fn main() {
    let results = Results::start();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    let root = common::bench_root().join("witness");
    let _ = std::fs::remove_dir_all(&root);
    let log = common::open(&root.join("log"));
    let mut next = 0;
    while next < LOG_SIZE {
        let batch: Vec<Vec<u8>> = (next..(next + 4096).min(LOG_SIZE))
            .map(common::entry)
            .collect();
        log.append_batch(&batch).expect("append");
        next += batch.len() as u64;
    }
    let signer = NoteSigner::from_seed(log.origin(), [1; 32]).expect("key");
    let text = |size: u64| {
        Checkpoint {
            origin: log.origin().to_owned(),
            size,
            root: log.root_at(size).expect("root"),
        }
        .body()
    };

    let mut g = c.benchmark_group("witness");
    let note = signer.sign_note(&text(START));
    let verifier = signer.verifier();
    g.bench_function("log_signature", |b| {
        b.iter(|| verifier.open(&note).expect("verifies"));
    });
    let proof = log.consistency(START, START + 1).expect("proof");
    let (old_root, new_root) = (
        log.root_at(START).expect("root"),
        log.root_at(START + 1).expect("root"),
    );
    g.bench_function("consistency", |b| {
        b.iter(|| verify_consistency(&proof, &old_root, &new_root).expect("consistent"));
    });
    let persisted = root.join("persist");
    std::fs::create_dir_all(&persisted).expect("dir");
    // An Ed25519 witness's state: the note and one cosignature line.
    let state = format!("{note}\u{2014} witness.example/w {}\n", "A".repeat(104));
    g.bench_function("persist", |b| {
        b.iter(|| {
            xgate_ledger::fsutil::write_atomic(&persisted.join("state"), state.as_bytes(), 0o600)
                .expect("write")
        });
    });
    for alg in [CosignatureAlg::Ed25519, CosignatureAlg::MlDsa44] {
        let cosigner = Cosigner::from_seed("witness.example/w", alg, [2; 32]).expect("key");
        let body = text(START);
        g.bench_function(BenchmarkId::new("cosign", alg), |b| {
            b.iter(|| cosigner.cosign(&body, 1_750_000_000).expect("cosigns"));
        });
        let line = cosigner.cosign(&body, 1_750_000_000).expect("cosigns");
        g.bench_function(BenchmarkId::new("verify", alg), |b| {
            b.iter(|| {
                cosigner
                    .verifier()
                    .verify_line(&body, &line)
                    .expect("verifies")
            });
        });
    }
    for alg in [CosignatureAlg::Ed25519, CosignatureAlg::MlDsa44] {
        let dir = root.join(format!("witness-{alg}"));
        init(&dir, "witness.example/w", alg).expect("init");
        let witness = Witness::open(&dir, &[signer.verifier()]).expect("open");
        let mut size = START;
        let first = format_body(0, &[], &signer.sign_note(&text(size)));
        assert!(matches!(
            witness.add_checkpoint(first.as_bytes()).expect("ok"),
            Outcome::Cosigned { .. }
        ));
        g.bench_function(BenchmarkId::new("add_checkpoint", alg), |b| {
            b.iter_custom(|iters| {
                let bodies = requests(&log, &signer, &text, size, iters);
                size += iters;
                let start = Instant::now();
                for body in &bodies {
                    let outcome = witness.add_checkpoint(body.as_bytes()).expect("no error");
                    assert_eq!(outcome.status(), 200, "{outcome:?}");
                }
                start.elapsed()
            });
        });
    }
    g.finish();
    c.final_summary();
    summary(&results);
}

/// `iters` request bodies, each one entry past the one before, from
/// `from`.
fn requests(
    log: &Log<DiskStore>,
    signer: &NoteSigner,
    text: &dyn Fn(u64) -> String,
    from: u64,
    iters: u64,
) -> Vec<String> {
    assert!(
        from + iters < LOG_SIZE,
        "the bench ran past the log's {LOG_SIZE} entries"
    );
    (from..from + iters)
        .map(|old| {
            let proof = log.consistency(old, old + 1).expect("proof");
            format_body(old, &proof.hashes, &signer.sign_note(&text(old + 1)))
        })
        .collect()
}

fn summary(results: &Results) {
    let Some(base) = results.median_s("witness/log_signature") else {
        return;
    };
    println!(
        "\nwitness: medians, and ratios to the log signature's verification ({:.1} µs)",
        base * 1e6
    );
    for id in [
        "consistency",
        "persist",
        "cosign/ed25519",
        "verify/ed25519",
        "cosign/ml-dsa-44",
        "verify/ml-dsa-44",
        "add_checkpoint/ed25519",
        "add_checkpoint/ml-dsa-44",
    ] {
        if let Some(t) = results.median_s(&format!("witness/{id}")) {
            println!("  {id:<26} {:>10.1} µs  {:>8.1}x", t * 1e6, t / base);
        }
    }
    if let (Some(ed), Some(pq)) = (
        results.median_s("witness/add_checkpoint/ed25519"),
        results.median_s("witness/add_checkpoint/ml-dsa-44"),
    ) {
        println!("  add_checkpoint ml-dsa-44 / ed25519: {:.2}x", pq / ed);
        println!(
            "  add_checkpoint rate: {} /s (ed25519), {} /s (ml-dsa-44), per log",
            common::thousands(1.0 / ed),
            common::thousands(1.0 / pq)
        );
    }
}
