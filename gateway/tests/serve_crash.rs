//! `kill -9` during load, then restart: every envelope the gateway
//! acknowledged is in the log at its receipt's index with its leaf hash,
//! waits in its recipient's inbox, and is covered by a checkpoint consistent
//! with every checkpoint handed out before the crash; no envelope was
//! acknowledged twice, and the log verifies.
//!
//! Right after each kill, before the restart, `xgate log verify` passes on
//! the data directory as the crash left it; at the end no `(iss, jti)`
//! appears twice in the log.
//!
//! CI runs 25 rounds (about half a minute); `XGATE_CRASH_ROUNDS=N` runs
//! more (`XGATE_GATEWAY_CRASH_ROUNDS` is the older name).

mod federation;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use federation::{body, consistency_proof, get_json, id, make_pki, xgate};
use http::StatusCode;
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate::receipt::Receipt;
use xgate_ledger::{verify_checkpoint, verify_consistency};
use xgate_tests::Gateway;

const AGENCIES: [&str; 3] = ["state", "treasury", "gsa"];

#[test]
fn acknowledged_envelopes_survive_kill_9() {
    let rounds: usize = ["XGATE_CRASH_ROUNDS", "XGATE_GATEWAY_CRASH_ROUNDS"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    make_pki(&pki, &AGENCIES);
    let pki_arg = pki.display().to_string();
    let data = root.path().join("data");
    // Receipts by envelope id, with the recipient of each.
    let acked: Arc<Mutex<BTreeMap<String, (Receipt, String)>>> = Arc::default();
    let mut seed = 0x5eed_u64;
    let mut checked: BTreeSet<String> = BTreeSet::new();
    for round in 0..rounds {
        let gateway = Gateway::start(
            env!("CARGO_BIN_EXE_xgate"),
            &data,
            &["--pki", &pki_arg],
            &[],
        );
        {
            let acked = acked.lock().expect("acked");
            let fresh = acked
                .keys()
                .filter(|k| !checked.contains(*k))
                .cloned()
                .collect();
            check(&gateway, &pki, &data, &acked, &fresh, round);
            checked.extend(fresh);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        for sender in 0..8 {
            let from = AGENCIES[sender % 3];
            let to = AGENCIES[(sender + 1) % 3];
            let mut client = Client::for_agency(&pki, &id(from), gateway.url(), Protocol::Http1)
                .expect("client");
            let signer = EnvelopeSigner::for_agency(&pki, &id(from)).expect("signer");
            let acked = Arc::clone(&acked);
            rt.spawn(async move {
                loop {
                    let jws = signer
                        .sign(&id(to), "record.send", body("crash"), 120, None)
                        .expect("sign");
                    let reply = client.submit(jws).await;
                    let Ok(reply) = reply else {
                        // The gateway was killed: this sender is done.
                        break;
                    };
                    if reply.status != StatusCode::CREATED {
                        continue;
                    }
                    let receipt: Receipt = serde_json::from_slice(&reply.body).expect("receipt");
                    let previous = acked
                        .lock()
                        .expect("acked")
                        .insert(receipt.id.clone(), (receipt, to.to_owned()));
                    assert!(previous.is_none(), "an envelope acknowledged twice");
                }
            });
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 500));
        gateway.kill();
        // Clients now fail to connect; stop them.
        rt.shutdown_timeout(Duration::from_secs(5));
        // The log as the crash left it verifies, before any recovery.
        let out = xgate()
            .run(
                &["log", "verify", "--data-dir", &data.display().to_string()],
                b"",
            )
            .expect_ok();
        assert!(out.starts_with("ok: "), "after kill {round}: {out}");
    }
    let gateway = Gateway::start(
        env!("CARGO_BIN_EXE_xgate"),
        &data,
        &["--pki", &pki_arg],
        &[],
    );
    let acked = acked.lock().expect("acked").clone();
    let all = acked.keys().cloned().collect();
    check(&gateway, &pki, &data, &acked, &all, rounds);
    assert!(!acked.is_empty(), "the load ran");
    no_jti_twice(&gateway, &pki);
    assert_eq!(gateway.stop(), Some(0));
    let out = xgate()
        .run(
            &["log", "verify", "--data-dir", &data.display().to_string()],
            b"",
        )
        .expect_ok();
    assert!(out.starts_with("ok: "), "{out}");
    eprintln!(
        "{} acknowledged envelopes checked after {rounds} kills",
        acked.len()
    );
}

/// Reads every entry of the log and checks that no sender's `jti` was
/// accepted twice.
fn no_jti_twice(gateway: &Gateway, pki: &std::path::Path) {
    let mut client =
        Client::for_agency(pki, &id("state"), gateway.url(), Protocol::Http1).expect("client");
    let rt = federation::runtime();
    let size = rt.block_on(federation::log_size(&mut client));
    let mut seen = BTreeSet::new();
    for i in 0..size {
        let view = rt.block_on(get_json(
            &mut client,
            &format!("/v1/log/entries/{i}"),
            StatusCode::OK,
        ));
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            view["entry"].as_str().expect("entry"),
        )
        .expect("base64");
        let entry: serde_json::Value = serde_json::from_slice(&bytes).expect("entry JSON");
        let key = (entry["iss"].to_string(), entry["jti"].to_string());
        assert!(seen.insert(key), "entry {i} repeats a jti");
    }
}

/// Checks the acknowledged envelopes against the restarted gateway: every
/// one keeps a distinct index inside the log; those in `fresh` (acked since
/// the last check, or all of them at the end) are also read back: leaf
/// hash, inbox, and a consistency proof from their receipt's checkpoint.
fn check(
    gateway: &Gateway,
    pki: &std::path::Path,
    data: &std::path::Path,
    acked: &BTreeMap<String, (Receipt, String)>,
    fresh: &BTreeSet<String>,
    round: usize,
) {
    let rt = federation::runtime();
    let mut reader =
        Client::for_agency(pki, &id("state"), gateway.url(), Protocol::Http1).expect("client");
    let key = xgate_ledger::verifier_of(data).expect("key");
    let checkpoint = rt
        .block_on(reader.request(http::Method::GET, "/v1/log/checkpoint", None, Vec::new()))
        .expect("checkpoint");
    if acked.is_empty() {
        return;
    }
    let note = String::from_utf8(checkpoint.body.to_vec()).expect("utf-8");
    let now = verify_checkpoint(&note, &key).expect("current checkpoint");
    let mut indices = BTreeSet::new();
    let mut inboxes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for agency in AGENCIES {
        let mut client =
            Client::for_agency(pki, &id(agency), gateway.url(), Protocol::Http1).expect("client");
        let mut path = "/v1/inbox".to_owned();
        loop {
            let page = rt.block_on(get_json(&mut client, &path, StatusCode::OK));
            for item in page["envelopes"].as_array().expect("envelopes") {
                inboxes
                    .entry(agency.to_owned())
                    .or_default()
                    .insert(item["id"].as_str().expect("id").to_owned());
            }
            match page["next"].as_u64() {
                Some(after) => path = format!("/v1/inbox?after={after}"),
                None => break,
            }
        }
    }
    let mut consistent = BTreeSet::new();
    for (envelope, (receipt, to)) in acked {
        assert!(
            indices.insert(receipt.log_index),
            "round {round}: index reused"
        );
        assert!(
            receipt.log_index < now.size,
            "round {round}: entry {} lost",
            receipt.log_index
        );
        if !fresh.contains(envelope) {
            continue;
        }
        let entry = rt.block_on(get_json(
            &mut reader,
            &format!("/v1/log/entries/{}", receipt.log_index),
            StatusCode::OK,
        ));
        assert_eq!(
            entry["leaf_hash"],
            receipt.leaf_hash.as_str(),
            "round {round}"
        );
        assert!(
            inboxes.get(to).is_some_and(|ids| ids.contains(envelope)),
            "round {round}: envelope {envelope} is not deliverable"
        );
        // The checkpoint handed out with the receipt is consistent with now.
        let old = verify_checkpoint(&receipt.checkpoint, &key).expect("receipt checkpoint");
        // Receipts of one commit share a checkpoint: prove it once.
        if old.size < now.size && consistent.insert(old.size) {
            let proof = rt.block_on(consistency_proof(&mut reader, old.size, now.size));
            verify_consistency(&proof, &old.root, &now.root)
                .unwrap_or_else(|e| panic!("round {round}: checkpoint {} forked: {e}", old.size));
        }
    }
}
