//! The gateway gathers real witnesses' cosignatures (`xgate witness serve`
//! over loopback) and serves, on its public tlog-tiles listener, only
//! checkpoints that reached `witness_quorum`, with every cosignature
//! gathered; receipts never wait for them. A witness that is down costs
//! nothing while the quorum holds, stops what is served when it does not,
//! and catches up when it returns; a gateway restarted (which no longer
//! knows what each witness cosigned) learns it from their 409s.

mod federation;

use std::time::Duration;

use xgate::client::{Client, Protocol};
use xgate_ledger::NoteVerifier;
use xgate_ledger::cosign::{CosignerVerifier, verify_quorum};
use xgate_tests::WitnessServer;

use federation::witnesses::{
    init_witness, send_records, served_at_least, served_checkpoint, witness_config,
};
use federation::{id, log_vkey, make_pki, metric, runtime, start_gateway, xgate};

const BIN: &str = env!("CARGO_BIN_EXE_xgate");

/// Waits until the served checkpoint is for `size` entries or more.
#[test]
fn checkpoints_are_served_once_a_quorum_of_real_witnesses_cosigned_them() {
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    let ca = pki.join("ca.crt");
    make_pki(&pki, &["state", "treasury", "gsa"]);
    // A first start creates the log and its key.
    let first = start_gateway(root.path(), &[], &[]);
    let vkey = log_vkey(&root.path().join("data"));
    assert_eq!(first.stop(), Some(0));
    let log = NoteVerifier::parse(&vkey).expect("log key");

    // Three witnesses: two Ed25519, one ML-DSA-44.
    let mut servers = Vec::new();
    let mut keys = Vec::new();
    let mut listed = Vec::new();
    for (i, alg) in ["ed25519", "ed25519", "ml-dsa-44"].iter().enumerate() {
        let dir = root.path().join(format!("w{i}"));
        let wkey = init_witness(&dir, &format!("w{i}.witness.example"), alg);
        let server = WitnessServer::start(BIN, &dir, "127.0.0.1:0", &[&vkey], &[]);
        listed.push((server.url().to_owned(), wkey.clone()));
        keys.push(CosignerVerifier::parse(&wkey).expect("witness key"));
        servers.push(Some(server));
    }
    let cfg = witness_config(&root.path().join("gateway.toml"), &listed, 2);
    let gateway = start_gateway(root.path(), &["--config", &cfg], &[]);

    // All three cosign; what is served carries the log's signature and a
    // cosignature from each, the earliest time within a minute of now.
    send_records(&gateway, &pki, "r", 5);
    let note = served_at_least(&gateway, &ca, 5, &log);
    let cosigned = verify_quorum(&note, &log, &keys, 2).expect("quorum of 2");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let earliest = cosigned.earliest_time().expect("a time");
    assert!(earliest.abs_diff(now) < 60, "{earliest} vs {now}");
    let note = served_at_least(&gateway, &ca, 5, &log);
    verify_quorum(&note, &log, &keys, 3).expect("eventually all three cosign");

    // One witness down: the quorum of 2 still holds.
    let gone = servers[2].take().expect("w2").stop();
    assert_eq!(gone, Some(0));
    send_records(&gateway, &pki, "r", 3);
    let note = served_at_least(&gateway, &ca, 8, &log);
    verify_quorum(&note, &log, &keys, 2).expect("quorum of 2");
    assert!(
        verify_quorum(&note, &log, &keys, 3).is_err(),
        "w2 cannot have cosigned"
    );

    // Two down: the log grows and receipts come back, but nothing new is
    // served.
    let w1_url = listed[1].0.clone();
    servers[1].take().expect("w1").stop();
    send_records(&gateway, &pki, "r", 3);
    std::thread::sleep(Duration::from_millis(1500));
    let stuck = served_checkpoint(&gateway, &ca).expect("the last cosigned one");
    let size = |note: &str| {
        xgate_ledger::verify_checkpoint(note, &log)
            .expect("signed")
            .size
    };
    assert!(
        size(&stuck) < 11,
        "served {} without a quorum",
        size(&stuck)
    );
    runtime().block_on(async {
        let mut client = Client::for_agency(&pki, &id("state"), gateway.url(), Protocol::Auto)
            .expect("client");
        let unreachable = metric(
            &mut client,
            "xgate_witness_submissions_total{witness=\"w1.witness.example\",outcome=\"unreachable\"}",
        )
        .await
        .unwrap_or(0.0);
        assert!(unreachable > 0.0, "unreachable submissions counted");
    });

    // w1 back on its port, its state kept: the quorum is met again.
    let w1 = WitnessServer::start(
        BIN,
        &root.path().join("w1"),
        w1_url.trim_start_matches("http://"),
        &[&vkey],
        &[],
    );
    let note = served_at_least(&gateway, &ca, 11, &log);
    verify_quorum(&note, &log, &keys, 2).expect("quorum of 2");

    // A restarted gateway asks from size 0; the witnesses answer 409 with
    // what they cosigned, and it goes on from there.
    assert_eq!(gateway.stop(), Some(0));
    let gateway = start_gateway(root.path(), &["--config", &cfg], &[]);
    send_records(&gateway, &pki, "r", 2);
    let note = served_at_least(&gateway, &ca, 13, &log);
    verify_quorum(&note, &log, &keys, 2).expect("quorum of 2 after a restart");
    drop(w1);
}

#[test]
fn a_quorum_above_the_witnesses_listed_or_a_bad_vkey_stops_the_start() {
    let root = tempfile::tempdir().expect("tempdir");
    make_pki(&root.path().join("pki"), &["state"]);
    let data = root.path().join("data").display().to_string();
    let pki = root.path().join("pki").display().to_string();
    for (text, expect) in [
        ("witness_quorum = 1\n", "witness_quorum is 1 but 0"),
        (
            "witness_quorum = 1\n[[witnesses]]\nurl = \"http://127.0.0.1:1\"\nvkey = \"nope\"\n",
            "bad vkey",
        ),
        (
            "[[witnesses]]\nurl = \"ftp://127.0.0.1:1\"\nvkey = \"w.example+00000000+BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n",
            "witness 1",
        ),
    ] {
        let cfg = root.path().join("bad.toml");
        std::fs::write(&cfg, text).expect("write");
        let err = xgate()
            .run(
                &[
                    "serve",
                    "--data-dir",
                    &data,
                    "--pki",
                    &pki,
                    "--config",
                    &cfg.display().to_string(),
                    "--listen",
                    "127.0.0.1:0",
                    "--public-listen",
                    "127.0.0.1:0",
                ],
                b"",
            )
            .expect_error(1);
        assert!(err.contains(expect), "{text:?}: {err}");
    }
}
