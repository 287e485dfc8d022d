//! `kill -9` under load from the generator, then restart. Each round runs
//! `xgate bench` (eight connections, records, medical requests and asset
//! registrations mixed 6:1:1, every receipt written to a file) against a
//! real `xgate serve`, and SIGKILLs the gateway at a pseudo-random instant
//! once receipts are flowing.
//!
//! Right after each kill, before the restart, `xgate log verify` passes on
//! the data directory as the crash left it. After the restart, every
//! receipt any client got so far still verifies offline; its entry is in
//! the log at its index with its leaf hash; a record or medical request
//! waits in its recipient's inbox; a registered asset and a granted case
//! are in the state; and the receipt's checkpoint is consistent with the
//! new one (RFC 9162 consistency proof). Indices are never reused, the
//! generator saw no error but lost connections, and at the end no
//! `(iss, jti)` appears twice in the log.
//!
//! CI runs 25 rounds (about a minute); `XGATE_CRASH_ROUNDS=N` runs more
//! (`XGATE_GATEWAY_CRASH_ROUNDS` is the older name).

mod federation;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use federation::{consistency_proof, get_json, id, make_pki, xgate};
use http::StatusCode;
use serde_json::Value;
use xgate::client::{Client, Protocol};
use xgate_ledger::{verify_checkpoint, verify_consistency};
use xgate_server::entry::Logged;
use xgate_server::pki::SAMPLE_AGENCIES;
use xgate_server::receipt::Receipt;
use xgate_tests::Gateway;

/// The generator's mix: every kind it can send without set-up.
const MIX: &str = "record.send=6,medical.request=1,asset.register=1";

/// An acknowledged envelope: its receipt and what its entry logged.
struct Acked {
    receipt: Receipt,
    logged: Logged,
}

#[test]
fn acknowledged_envelopes_survive_kill_9() {
    let rounds: usize = ["XGATE_CRASH_ROUNDS", "XGATE_GATEWAY_CRASH_ROUNDS"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    make_pki(&pki, &SAMPLE_AGENCIES);
    let data = root.path().join("data");
    // Acknowledged envelopes by envelope id.
    let mut acked: BTreeMap<String, Acked> = BTreeMap::new();
    let mut fresh: BTreeSet<String> = BTreeSet::new();
    let mut seed = 0x5eed_u64;
    for round in 0..rounds {
        let gateway = start(&pki, &data);
        check(&gateway, &pki, &data, &acked, &fresh, round);
        fresh.clear();

        let receipts = root.path().join(format!("receipts-{round}.jsonl"));
        let bench = Command::new(env!("CARGO_BIN_EXE_xgate"))
            .args(["bench", "--pki"])
            .arg(&pki)
            .args(["--gateway", gateway.url(), "--connections", "8"])
            .args(["--duration", "20", "--envelopes", "4000", "--json"])
            .args(["--mix", MIX, "--receipts"])
            .arg(&receipts)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xgate bench");
        // Kill once receipts flow (the generator signs its envelopes
        // first), at a pseudo-random instant after.
        wait_for_receipts(&receipts, &gateway);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 400));
        gateway.kill();
        let out = bench.wait_with_output().expect("xgate bench");
        assert!(out.status.success(), "round {round}: xgate bench failed");
        let report: Value = serde_json::from_slice(&out.stdout).expect("bench report");
        // Killed mid-exchange, a client sees a lost connection, nothing else.
        let errors = report["errors"].as_object().expect("errors");
        assert!(
            errors.keys().all(|k| k == "transport"),
            "round {round}: {report}"
        );

        // The log as the crash left it verifies, before any recovery.
        let dir = data.display().to_string();
        let verified = xgate()
            .run(&["log", "verify", "--data-dir", &dir], b"")
            .expect_ok();
        assert!(
            verified.starts_with("ok: "),
            "after kill {round}: {verified}"
        );

        let text = std::fs::read_to_string(&receipts).expect("receipts");
        let mut lines = 0;
        for line in text.lines() {
            let receipt: Receipt = serde_json::from_str(line).expect("a receipt per line");
            let entry = base64::engine::general_purpose::STANDARD
                .decode(&receipt.entry)
                .expect("entry");
            let logged = Logged::parse(&entry).expect("a gateway entry");
            let id = receipt.id.clone();
            let previous = acked.insert(id.clone(), Acked { receipt, logged });
            assert!(previous.is_none(), "envelope {id} acknowledged twice");
            fresh.insert(id);
            lines += 1;
        }
        assert_eq!(
            Some(lines),
            report["ok"].as_u64(),
            "round {round}: a receipt per exchange"
        );
    }
    let gateway = start(&pki, &data);
    let all = acked.keys().cloned().collect();
    check(&gateway, &pki, &data, &acked, &all, rounds);
    let kinds: BTreeSet<&str> = acked.values().map(|a| a.logged.kind.as_str()).collect();
    assert_eq!(kinds.len(), 3, "every kind was acknowledged: {kinds:?}");
    no_jti_twice(&gateway, &pki);
    assert_eq!(gateway.stop(), Some(0));
    let dir = data.display().to_string();
    let out = xgate()
        .run(&["log", "verify", "--data-dir", &dir], b"")
        .expect_ok();
    assert!(out.starts_with("ok: "), "{out}");
    eprintln!(
        "{} acknowledged envelopes checked after {rounds} kills",
        acked.len()
    );
}

fn start(pki: &Path, data: &Path) -> Gateway {
    let pki = pki.display().to_string();
    Gateway::start(env!("CARGO_BIN_EXE_xgate"), data, &["--pki", &pki], &[])
}

/// Waits until the generator has written its first receipts.
fn wait_for_receipts(file: &Path, gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(file).map_or(0, |m| m.len()) == 0 {
        assert!(
            Instant::now() < deadline,
            "no receipts after a minute: {}",
            gateway.log_output()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads every entry of the log and checks that no sender's `jti` was
/// accepted twice.
fn no_jti_twice(gateway: &Gateway, pki: &Path) {
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
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(view["entry"].as_str().expect("entry"))
            .expect("base64");
        let entry = Logged::parse(&bytes).expect("entry");
        assert!(
            seen.insert((entry.iss, entry.jti)),
            "entry {i} repeats a jti"
        );
    }
}

/// Every envelope id in each agency's inbox.
fn inboxes(gateway: &Gateway, pki: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let rt = federation::runtime();
    let mut inboxes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for agency in SAMPLE_AGENCIES {
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
    inboxes
}

/// Checks the acknowledged envelopes against the restarted gateway: every
/// one keeps a distinct index inside the log; those in `fresh` (acked since
/// the last check, or all of them at the end) are also read back.
fn check(
    gateway: &Gateway,
    pki: &Path,
    data: &Path,
    acked: &BTreeMap<String, Acked>,
    fresh: &BTreeSet<String>,
    round: usize,
) {
    if acked.is_empty() {
        return;
    }
    let rt = federation::runtime();
    let mut clients: BTreeMap<&str, Client> = SAMPLE_AGENCIES
        .iter()
        .map(|a| {
            let client = Client::for_agency(pki, &id(a), gateway.url(), Protocol::Http1);
            (*a, client.expect("client"))
        })
        .collect();
    let key = xgate_ledger::verifier_of(data).expect("key");
    let reader = clients.get_mut("state").expect("state");
    let note = rt.block_on(federation::checkpoint_note(reader));
    let now = verify_checkpoint(&note, &key).expect("current checkpoint");
    let inboxes = inboxes(gateway, pki);
    let mut indices = BTreeSet::new();
    let mut consistent = BTreeSet::new();
    for (envelope, Acked { receipt, logged }) in acked {
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
        receipt
            .verify(&key)
            .unwrap_or_else(|e| panic!("round {round}: receipt {envelope}: {e}"));
        let reader = clients.get_mut("state").expect("state");
        let entry = rt.block_on(get_json(
            reader,
            &format!("/v1/log/entries/{}", receipt.log_index),
            StatusCode::OK,
        ));
        assert_eq!(
            entry["leaf_hash"],
            receipt.leaf_hash.as_str(),
            "round {round}"
        );
        if logged.aud != logged.iss {
            assert!(
                inboxes
                    .get(&logged.aud)
                    .is_some_and(|ids| ids.contains(envelope)),
                "round {round}: envelope {envelope} is not deliverable"
            );
        }
        check_state(&rt, &mut clients, logged, round);
        // Receipts of one commit share a checkpoint: prove it once.
        let old = verify_checkpoint(&receipt.checkpoint, &key).expect("receipt checkpoint");
        if old.size < now.size && consistent.insert(old.size) {
            let reader = clients.get_mut("state").expect("state");
            let proof = rt.block_on(consistency_proof(reader, old.size, now.size));
            verify_consistency(&proof, &old.root, &now.root)
                .unwrap_or_else(|e| panic!("round {round}: checkpoint {} forked: {e}", old.size));
        }
    }
}

/// The state an acknowledged envelope made: a registered asset, a case.
fn check_state(
    rt: &tokio::runtime::Runtime,
    clients: &mut BTreeMap<&str, Client>,
    logged: &Logged,
    round: usize,
) {
    let (agency, path) = match logged.kind.as_str() {
        "asset.register" => (
            logged.iss.as_str(),
            format!("/v1/assets/{}", logged.tag.as_deref().expect("tag")),
        ),
        "medical.request" => (
            logged.aud.as_str(),
            format!(
                "/v1/medical/requests/{}?requester={}",
                logged.jti, logged.iss
            ),
        ),
        _ => return,
    };
    let client = clients.get_mut(agency).expect("a sample agency");
    let view = rt.block_on(get_json(client, &path, StatusCode::OK));
    assert!(view.is_object(), "round {round}: {path}");
}
