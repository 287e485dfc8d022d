//! Crash safety under `kill -9`: a child process appends from several threads
//! and prints every entry it has been told is durable; the parent kills it at
//! random instants and checks, after each restart, that every acknowledged
//! entry is in the log at its index with its hash, that every checkpoint the
//! child published still holds, and that the whole log verifies.
//!
//! Rounds: 20 by default; set `XGATE_LEDGER_CRASH_ROUNDS` for a long run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use xgate_ledger::{Log, OpenOptions, leaf_hash, verify_consistency};

const CHILD_ENV: &str = "XGATE_CRASH_CHILD_DIR";

/// What the child printed before it died.
#[derive(Default)]
struct Acks {
    entries: Vec<(u64, Vec<u8>)>,
    checkpoints: Vec<(u64, String)>,
}

#[test]
fn survives_kill_9_during_appends() {
    let rounds: u32 = std::env::var("XGATE_LEDGER_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut all = Acks::default();
    let mut total_acked = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("XGATE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let acks = Arc::new(Mutex::new(Acks::default()));
        let reader = {
            let acks = Arc::clone(&acks);
            std::thread::spawn(move || read_acks(stdout, &acks))
        };
        std::thread::sleep(Duration::from_millis(fastrand::u64(150..700)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        let acks = Arc::try_unwrap(acks)
            .ok()
            .expect("sole owner")
            .into_inner()
            .expect("lock");
        total_acked += acks.entries.len();
        all.entries.extend(acks.entries);
        all.checkpoints.extend(acks.checkpoints);
        check_after_restart(dir.path(), &all, round);
    }
    eprintln!("{rounds} kills, {total_acked} acknowledged entries, all present");
    assert!(
        total_acked > rounds as usize,
        "children acknowledged almost nothing: {total_acked}"
    );
}

fn read_acks(stdout: impl std::io::Read, acks: &Mutex<Acks>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("ACK"), Some(i), Some(e)) => {
                if let (Ok(i), Ok(e)) = (i.parse(), B64.decode(e)) {
                    acks.lock().expect("lock").entries.push((i, e));
                }
            }
            (Some("CKPT"), Some(size), Some(root)) => {
                if let Ok(size) = size.parse() {
                    acks.lock()
                        .expect("lock")
                        .checkpoints
                        .push((size, root.to_owned()));
                }
            }
            _ => {}
        }
    }
}

fn check_after_restart(dir: &std::path::Path, acks: &Acks, round: u32) {
    let log = Log::create_or_open(dir, &OpenOptions::default()).expect("reopen after kill");
    let size = log.size();
    for (index, entry) in &acks.entries {
        assert!(
            *index < size,
            "round {round}: acknowledged entry {index} lost (size {size})"
        );
        assert_eq!(
            &log.entry(*index).expect("entry"),
            entry,
            "round {round}: entry {index}"
        );
        assert_eq!(
            log.leaf_hash(*index).expect("leaf"),
            leaf_hash(entry),
            "round {round}: leaf {index}"
        );
    }
    let root = log.root_at(size).expect("root");
    for (old, old_root) in &acks.checkpoints {
        let old_root =
            xgate_ledger::Hash::from_slice(&B64.decode(old_root).expect("b64")).expect("hash");
        assert!(
            *old <= size,
            "round {round}: checkpoint {old} is ahead of the log"
        );
        if *old > 0 {
            let proof = log.consistency(*old, size).expect("consistency");
            verify_consistency(&proof, &old_root, &root)
                .expect("published checkpoint still consistent");
        }
    }
    let report = log.verify().expect("log verifies after kill");
    assert_eq!(report.size, size);
}

/// The child: appends until killed. Runs only when the parent sets the env.
#[test]
#[ignore = "spawned by survives_kill_9_during_appends"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round = std::env::var("XGATE_CRASH_ROUND").unwrap_or_default();
    let log = Arc::new(Log::create_or_open(dir.as_ref(), &OpenOptions::default()).expect("open"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (log, out, round) = (Arc::clone(&log), Arc::clone(&out), round.clone());
            std::thread::spawn(move || {
                for n in 0u64.. {
                    let batch: Vec<Vec<u8>> = (0..fastrand::usize(1..40))
                        .map(|k| {
                            format!("round {round} thread {t} batch {n} item {k}").into_bytes()
                        })
                        .collect();
                    let range = log.append_batch(&batch).expect("append");
                    let mut text = String::new();
                    for (i, e) in range.zip(&batch) {
                        text.push_str(&format!("ACK {i} {}\n", B64.encode(e)));
                    }
                    if t == 0 && n % 5 == 0 {
                        let c = log.checkpoint().expect("checkpoint");
                        text.push_str(&format!(
                            "CKPT {} {}\n",
                            c.checkpoint.size,
                            B64.encode(c.checkpoint.root.as_bytes())
                        ));
                    }
                    let mut out = out.lock().expect("stdout");
                    out.write_all(text.as_bytes()).expect("write");
                    out.flush().expect("flush");
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
