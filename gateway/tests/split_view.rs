//! A split view, end to end: an operator forks its log (two copies of one
//! data directory, each extended with different envelopes and signed with
//! the one key) and shows one history to some and another to others.
//!
//! The witnesses, real `xgate witness serve` processes, cosign the first
//! history and refuse the other, keeping evidence of the fork; the second
//! gateway, even with its quorum set to 0 by a compromised operator so
//! that it serves its fork anyway, gets no cosignature; a client requiring
//! the quorum (`xgate audit verify-receipt --witness ... --quorum 2`) never
//! accepts the fork; and `xgate audit monitor`, having followed the first,
//! stops at the second with both signed checkpoints written as evidence.

mod federation;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xgate::client::{Client, Protocol};
use xgate_ledger::NoteVerifier;
use xgate_ledger::cosign::{CosignerVerifier, verify_quorum};
use xgate_tests::{Gateway, WitnessServer};

use federation::witnesses::{init_witness, send_records, served_checkpoint, witness_config};
use federation::{id, log_vkey, make_pki, metric, runtime, start_gateway, xgate};

const BIN: &str = env!("CARGO_BIN_EXE_xgate");

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// Waits until `ready` holds for the served checkpoint.
fn wait_served(gateway: &Gateway, ca: &Path, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(note) = served_checkpoint(gateway, ca).filter(|n| ready(n)) {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoint awaited was not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The files under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                files(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[test]
fn a_forked_log_is_refused_by_witnesses_quorum_clients_and_the_monitor() {
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    let ca = pki.join("ca.crt");
    make_pki(&pki, &["state", "treasury", "gsa"]);
    let data_a = root.path().join("data");
    let data_b = root.path().join("fork");
    // The log, then its copy: one key, two futures.
    let first = start_gateway(root.path(), &[], &[]);
    let vkey = log_vkey(&data_a);
    assert_eq!(first.stop(), Some(0));
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&data_a)
        .arg(&data_b)
        .status()
        .expect("cp");
    assert!(status.success());
    let log = NoteVerifier::parse(&vkey).expect("log key");

    let mut servers = Vec::new();
    let mut keys = Vec::new();
    let mut listed = Vec::new();
    let mut witness_args = Vec::new();
    for (i, alg) in ["ed25519", "ed25519", "ml-dsa-44"].iter().enumerate() {
        let dir = root.path().join(format!("w{i}"));
        let wkey = init_witness(&dir, &format!("w{i}.witness.example"), alg);
        let server = WitnessServer::start(BIN, &dir, "127.0.0.1:0", &[&vkey], &[]);
        listed.push((server.url().to_owned(), wkey.clone()));
        keys.push(CosignerVerifier::parse(&wkey).expect("witness key"));
        witness_args.extend(["--witness".to_owned(), wkey]);
        servers.push(server);
    }

    // History A, cosigned by all three.
    let cfg_a = witness_config(&root.path().join("a.toml"), &listed, 2);
    let a = start_gateway(root.path(), &["--config", &cfg_a], &[]);
    let receipt_a = root.path().join("receipt-a.json");
    std::fs::write(&receipt_a, send_records(&a, &pki, "a", 3)).expect("receipt");
    let note_a = wait_served(&a, &ca, |n| {
        verify_quorum(n, &log, &keys, 3).is_ok_and(|c| c.checkpoint.checkpoint.size >= 3)
    });

    // A monitor follows A, requiring two of the three.
    let state = root.path().join("monitor.state");
    let monitor = |log_url: &str| {
        let mut args: Vec<String> = ["audit", "monitor", "--log", log_url, "--key", &vkey]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(witness_args.iter().cloned());
        args.extend(
            [
                "--quorum",
                "2",
                "--state",
                &text(&state),
                "--once",
                "--ca",
                &text(&ca),
            ]
            .iter()
            .map(|s| (*s).to_owned()),
        );
        xgate().run(&args, b"")
    };
    monitor(a.public_url()).expect_ok();

    // History B, from the copy, with the operator's quorum set to 0 so
    // that it serves its fork without the witnesses.
    let cfg_b = witness_config(&root.path().join("b.toml"), &listed, 0);
    let b = Gateway::start(
        BIN,
        &data_b,
        &["--pki", &text(&pki), "--config", &cfg_b],
        &[("XGATE_LOG", "info")],
    );
    let receipt_b = root.path().join("receipt-b.json");
    std::fs::write(&receipt_b, send_records(&b, &pki, "b", 5)).expect("receipt");
    let note_b = wait_served(&b, &ca, |n| {
        xgate_ledger::verify_checkpoint(n, &log).is_ok_and(|c| c.size >= 5)
    });
    assert!(
        verify_quorum(&note_b, &log, &keys, 1).is_err(),
        "no witness cosigned B"
    );

    // Every witness refuses B, and keeps the pair that proves the fork.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3 {
        let series = format!(
            "xgate_witness_submissions_total{{witness=\"w{i}.witness.example\",outcome=\"refused\"}}"
        );
        loop {
            let refused = runtime().block_on(async {
                let mut client = Client::for_agency(&pki, &id("state"), b.url(), Protocol::Auto)
                    .expect("client");
                metric(&mut client, &series).await.unwrap_or(0.0)
            });
            if refused > 0.0 {
                break;
            }
            assert!(Instant::now() < deadline, "w{i} did not refuse B");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Each refusal: the note it had cosigned and the one refused,
        // both signed by the log, not the same tree.
        let refusals: Vec<PathBuf> = files(&root.path().join(format!("w{i}/evidence")))
            .into_iter()
            .filter(|p| p.ends_with("refused"))
            .collect();
        assert!(!refusals.is_empty(), "w{i} kept evidence");
        for refused in refusals {
            let cosigned = refused.with_file_name("cosigned");
            let signed = |p: &Path| {
                let note = std::fs::read_to_string(p).expect("evidence note");
                xgate_ledger::verify_checkpoint(&note, &log).expect("signed by the log")
            };
            let (theirs, ours) = (signed(&refused), signed(&cosigned));
            assert_ne!((theirs.size, theirs.root), (ours.size, ours.root));
        }
    }
    assert!(
        b.log_output().contains("refused with 422"),
        "the witnesses answered 422 to B's inconsistent proof"
    );

    // Clients that require two cosignatures never accept B.
    let verify = |receipt: &Path, log_url: &str| {
        let mut args: Vec<String> = [
            "audit",
            "verify-receipt",
            "--receipt",
            &text(receipt),
            "--key",
            &vkey,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(witness_args.iter().cloned());
        args.extend(
            ["--quorum", "2", "--log", log_url, "--ca", &text(&ca)]
                .iter()
                .map(|s| (*s).to_owned()),
        );
        xgate().run(&args, b"")
    };
    verify(&receipt_a, a.public_url()).expect_ok();
    verify(&receipt_b, b.public_url()).expect_error(1);
    verify(&receipt_b, a.public_url()).expect_error(1);

    // The monitor, pointed at B, stops with both signed checkpoints.
    let run = monitor(b.public_url());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stdout = String::from_utf8(run.stdout.clone()).expect("utf-8");
    let evidence = stdout
        .lines()
        .find_map(|l| l.strip_prefix("evidence: "))
        .expect("an evidence line")
        .to_owned();
    let written = std::fs::read_to_string(&evidence).expect("evidence file");
    let body = |note: &str| note.split("\n\n").next().expect("text").to_owned();
    assert!(
        written.contains(&body(&note_a)),
        "A's checkpoint in the evidence"
    );
    let served_b = served_checkpoint(&b, &ca).expect("B's checkpoint");
    assert!(
        written.contains(&body(&served_b)) || written.contains(&body(&note_b)),
        "B's checkpoint in the evidence"
    );
    drop(servers);
}
