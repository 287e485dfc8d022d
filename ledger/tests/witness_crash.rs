//! A witness under `kill -9`: a child process submits checkpoints from
//! several threads and prints every size it got a cosignature for; the
//! parent kills it at random instants and checks, after each restart, that
//! the witness remembers a cosigned size at least as large as every one it
//! answered (it never forgets a cosignature it gave, so a log can never
//! roll it back), and that what it remembers is a log-signed checkpoint
//! carrying the witness's own valid cosignature.
//!
//! Rounds: 6 by default; set `XGATE_WITNESS_CRASH_ROUNDS` for a long run.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xgate_ledger::checkpoint::{Checkpoint, NoteSigner};
use xgate_ledger::cosign::CosignatureAlg;
use xgate_ledger::hash::root_of;
use xgate_ledger::proof::{MemoryLeaves, prove_consistency};
use xgate_ledger::witness::{Outcome, Witness, format_body, init};
use xgate_ledger::{Hash, leaf_hash};

const CHILD_ENV: &str = "XGATE_WITNESS_CRASH_DIR";
const ORIGIN: &str = "example.com/crash-log";
/// The log's size never exceeds this (the child idles once there).
const MAX_SIZE: u64 = 1 << 13;

fn log_key() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [42; 32]).expect("log key")
}

fn leaves() -> Vec<Hash> {
    (0..MAX_SIZE)
        .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
        .collect()
}

#[test]
fn never_forgets_a_cosigned_size_across_kill_9() {
    let rounds: u32 = std::env::var("XGATE_WITNESS_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("witness");
    let cosigner = init(&dir, "witness.example/crash", CosignatureAlg::Ed25519).expect("init");
    let exe = std::env::current_exe().expect("test binary");
    let mut highest = 0u64;
    let mut total = 0usize;
    for _ in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "witness_crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let acked = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(size) = line.strip_prefix("ACK ") {
                        let size: u64 = size.parse().expect("size");
                        acked.lock().expect("lock").push(size);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(fastrand::u64(200..600)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        let acked = acked.lock().expect("lock").clone();
        total += acked.len();
        highest = highest.max(acked.iter().copied().max().unwrap_or(0));
        check_after_restart(&dir, highest, &cosigner.verifier().to_string());
    }
    eprintln!("{rounds} kills, {total} acknowledged cosignatures, highest size {highest}");
    assert!(
        total > rounds as usize,
        "children got almost nothing cosigned: {total}"
    );
}

fn check_after_restart(dir: &Path, highest: u64, vkey: &str) {
    let log = log_key();
    let witness = Witness::open(dir, &[log.verifier()]).expect("reopens after kill");
    let Some(latest) = witness.latest(ORIGIN) else {
        assert_eq!(highest, 0, "forgot everything");
        return;
    };
    assert!(
        latest.size >= highest,
        "remembers size {} but answered a cosignature for {highest}",
        latest.size
    );
    let checkpoint =
        xgate_ledger::verify_checkpoint(&latest.note, &log.verifier()).expect("log-signed");
    assert_eq!(checkpoint.size, latest.size);
    let text = Checkpoint {
        origin: ORIGIN.into(),
        size: latest.size,
        root: latest.root,
    }
    .body();
    let verifier = xgate_ledger::cosign::CosignerVerifier::parse(vkey).expect("vkey");
    let line = latest.note.lines().next_back().expect("a cosignature line");
    verifier.verify_line(&text, line).expect("own cosignature");
}

/// The child: submits until killed. Runs only when the parent sets the env.
#[test]
#[ignore = "spawned by never_forgets_a_cosigned_size_across_kill_9"]
fn witness_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = Arc::new(log_key());
    let leaves = Arc::new(leaves());
    let witness = Arc::new(Witness::open(dir.as_ref(), &[log.verifier()]).expect("open"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (log, leaves, witness, out) = (
                Arc::clone(&log),
                Arc::clone(&leaves),
                Arc::clone(&witness),
                Arc::clone(&out),
            );
            std::thread::spawn(move || {
                loop {
                    let old = witness.latest(ORIGIN).map_or(0, |l| l.size);
                    let new = (old + fastrand::u64(1..5)).min(MAX_SIZE);
                    if new == old {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    let text = Checkpoint {
                        origin: ORIGIN.into(),
                        size: new,
                        root: root_of(&leaves[..new as usize]),
                    }
                    .body();
                    let proof = if old == 0 {
                        Vec::new()
                    } else {
                        prove_consistency(&MemoryLeaves(leaves[..new as usize].to_vec()), old, new)
                            .expect("infallible")
                            .hashes
                    };
                    let body = format_body(old, &proof, &log.sign_note(&text));
                    match witness
                        .add_checkpoint(body.as_bytes())
                        .expect("no I/O error")
                    {
                        Outcome::Cosigned { checkpoint, .. } => {
                            let mut out = out.lock().expect("stdout");
                            writeln!(out, "ACK {}", checkpoint.size).expect("write");
                            out.flush().expect("flush");
                        }
                        // Another thread got there first.
                        Outcome::Conflict { .. } => {}
                        other => panic!("unexpected outcome {other:?}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
