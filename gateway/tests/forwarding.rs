//! Store-and-forward between the gateways of a federation (issue 21), end
//! to end with real gateways on loopback: a record to an agency another
//! gateway serves is logged by the sender's gateway, forwarded over mutual
//! TLS, logged by the recipient's, delivered to its inbox sealed end to
//! end, and its delivery receipt (verified against the recipient gateway's
//! registered log key) comes back to the sender's outbox; in order, once,
//! across a peer that is down for a while.

use std::path::Path;

use serde_json::Value;
use xgate_server::registry::Registry;
use xgate_tests::federation::Federation;
use xgate_tests::{Run, Xgate};

/// `hub` serves state and gsa; `g-hhs` serves hhs.
const LAYOUT: &[(&str, &[&str])] = &[("hub", &["state", "gsa"]), ("g-hhs", &["hhs"])];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xgate"))
}

fn xgate() -> Xgate {
    Xgate::new(bin())
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// `xgate send` of `record` (sealed end to end) from `from` to `to` at
/// `gateway`.
fn send(pki: &Path, from: &str, to: &str, gateway: &str, record: &Path) -> Run {
    xgate().run(
        &[
            "send",
            "--pki",
            &arg(pki),
            "--as",
            from,
            "--to",
            to,
            "--gateway",
            gateway,
            &arg(record),
        ],
        b"",
    )
}

/// `xgate inbox --ack` of `agency` at `gateway`: the JSON lines.
fn inbox(pki: &Path, agency: &str, gateway: &str) -> Vec<Value> {
    lines(
        &xgate()
            .run(
                &[
                    "inbox",
                    "--pki",
                    &arg(pki),
                    "--as",
                    agency,
                    "--gateway",
                    gateway,
                    "--ack",
                ],
                b"",
            )
            .expect_ok(),
    )
}

/// `xgate outbox` of `agency` at `gateway`, waiting up to `wait` seconds
/// for nothing to be queued.
fn outbox(pki: &Path, agency: &str, gateway: &str, wait: u32) -> Run {
    xgate().run(
        &[
            "outbox",
            "--pki",
            &arg(pki),
            "--as",
            agency,
            "--gateway",
            gateway,
            "--wait",
            &wait.to_string(),
        ],
        b"",
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `xgate audit verify-receipt` of `receipt` against `key`.
fn verifies(dir: &Path, receipt: &Value, key: &str) -> bool {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("receipt-{n}.json"));
    std::fs::write(&file, receipt.to_string()).expect("write receipt");
    xgate()
        .run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &arg(&file),
                "--key",
                key,
            ],
            b"",
        )
        .code
        == Some(0)
}

fn record(dir: &Path, n: usize) -> std::path::PathBuf {
    let file = dir.join(format!("record-{n}.json"));
    std::fs::write(&file, format!(r#"{{"subject":"case {n}","n":{n}}}"#)).expect("write");
    file
}

#[test]
fn a_record_crosses_gateways_and_comes_back_with_both_receipts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let federation = Federation::start(bin(), tmp.path(), LAYOUT, &[("XGATE_LOG", "warn")]);
    let pki = federation.pki();
    let registry = Registry::load(&pki.join("registry.toml")).expect("registry");
    let key = |g: &str| {
        registry
            .gateway(&g.parse().expect("id"))
            .expect("listed")
            .log_key
            .clone()
    };
    let (hub, g_hhs) = (federation.url("hub"), federation.url("g-hhs"));

    // state (on hub) sends to hhs (on g-hhs): hub's receipt proves submission.
    let sent: Value =
        serde_json::from_str(&send(&pki, "state", "hhs", &hub, &record(tmp.path(), 1)).expect_ok())
            .expect("receipt");
    assert!(verifies(tmp.path(), &sent, &key("hub")), "hub's receipt");
    assert!(!verifies(tmp.path(), &sent, &key("g-hhs")));

    // The outbox says it was delivered, with g-hhs's receipt, which the CLI
    // checked against the registry's key for g-hhs.
    let out = lines(&outbox(&pki, "state", &hub, 30).expect_ok());
    assert_eq!(out.len(), 1, "{out:?}");
    let forward = &out[0];
    assert_eq!(forward["state"], "delivered", "{forward}");
    assert_eq!(forward["to"], "hhs");
    assert_eq!(forward["gateway"], "g-hhs");
    assert_eq!(forward["id"], sent["id"]);
    assert_eq!(forward["log_index"], sent["log_index"]);
    assert!(forward.get("refused").is_none(), "{forward}");
    let delivered = &forward["receipt"];
    assert_eq!(
        delivered["id"], sent["id"],
        "the same envelope in both logs"
    );
    assert!(
        verifies(tmp.path(), delivered, &key("g-hhs")),
        "g-hhs's receipt"
    );

    // hhs reads it at its own gateway, opened and checked end to end.
    let items = inbox(&pki, "hhs", &g_hhs);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["from"], "state");
    assert_eq!(items[0]["sealed"], true);
    assert_eq!(items[0]["body"]["subject"], "case 1");
    assert_eq!(items[0]["id"], sent["id"]);
    // Not in any inbox at hub.
    assert!(inbox(&pki, "gsa", &hub).is_empty());

    // Both logs hold the same envelope: the recipient's entry names when
    // the sender's gateway logged it.
    let entry = |receipt: &Value| -> Value {
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            receipt["entry"].as_str().expect("entry"),
        )
        .expect("base64");
        serde_json::from_slice(&bytes).expect("entry JSON")
    };
    let (there, here) = (entry(delivered), entry(&sent));
    for field in ["iss", "aud", "jti", "kind", "envelope"] {
        assert_eq!(there[field], here[field], "{field}");
    }
    assert_eq!(there["sent"], here["time"]);
    assert!(here.get("sent").is_none());
}

#[test]
fn forwarding_keeps_order_waits_out_a_stopped_peer_and_delivers_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut federation = Federation::start(bin(), tmp.path(), LAYOUT, &[("XGATE_LOG", "warn")]);
    let pki = federation.pki();
    let hub = federation.url("hub");

    // The peer is down: everything waits at hub, and says why.
    federation.stop("g-hhs");
    let mut sent = Vec::new();
    for n in 0..12 {
        let receipt: Value = serde_json::from_str(
            &send(&pki, "state", "hhs", &hub, &record(tmp.path(), n)).expect_ok(),
        )
        .expect("receipt");
        sent.push(receipt["id"].as_str().expect("id").to_owned());
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // --wait gives up, prints them all queued, and fails (as `inbox`
    // does with a refused envelope).
    let waited = outbox(&pki, "state", &hub, 1);
    assert_eq!(waited.code, Some(1));
    assert!(
        waited.stderr.contains("12 envelope(s) still queued"),
        "{}",
        waited.stderr
    );
    let queued = lines(&String::from_utf8_lossy(&waited.stdout));
    assert_eq!(queued.len(), 12);
    assert!(queued.iter().all(|f| f["state"] == "queued"), "{queued:?}");
    assert!(
        queued[0]["attempts"].as_u64().unwrap_or(0) >= 1 && queued[0]["last_error"].is_string(),
        "the head of the queue says why it waits: {}",
        queued[0]
    );

    // Back up: everything is delivered, once, in the order it was sent.
    federation.restart("g-hhs");
    let out = lines(&outbox(&pki, "state", &hub, 60).expect_ok());
    assert!(out.iter().all(|f| f["state"] == "delivered"), "{out:?}");
    let g_hhs = federation.url("g-hhs");
    let items = inbox(&pki, "hhs", &g_hhs);
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, sent.iter().map(String::as_str).collect::<Vec<_>>());
    let numbers: Vec<u64> = items
        .iter()
        .map(|i| i["body"]["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(numbers, (0..12).collect::<Vec<u64>>());
    // Their log indices at g-hhs follow the same order.
    let indices: Vec<u64> = out
        .iter()
        .map(|f| f["receipt"]["log_index"].as_u64().expect("index"))
        .collect();
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
}
