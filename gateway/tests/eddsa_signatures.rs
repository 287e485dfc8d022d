//! Agencies that sign with Ed25519 (`xgate certs init --signing-alg
//! EdDSA`), end to end with real gateways on loopback: their exchanges are
//! served as ES256 agencies' are (submitted, sealed, forwarded to another
//! gateway), their signatures checked in batches, and one bad signature
//! among many concurrent good ones is refused alone, with its own code.

mod federation;

use std::net::TcpListener;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use xgate_server::registry::Registry;
use xgate_tests::Gateway;

use federation::{body, error_code, id, log_size, metric, runtime, start_gateway, xgate};

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// A client of `agency` at `url`.
fn client(pki: &Path, agency: &str, url: &str) -> xgate::client::Client {
    xgate::client::Client::for_agency(pki, &id(agency), url, xgate::client::Protocol::Auto)
        .expect("client")
}

/// `xgate certs init --signing-alg EdDSA` with `extra` arguments into
/// `dir`; returns its report line.
fn eddsa_pki(dir: &Path, extra: &[String]) -> String {
    let mut args = vec![
        "certs".to_owned(),
        "init".into(),
        "--dir".into(),
        arg(dir),
        "--signing-alg".into(),
        "EdDSA".into(),
    ];
    args.extend_from_slice(extra);
    xgate().run(&args, b"").expect_ok()
}

/// `jws` with one bit of its signature flipped.
fn flipped(jws: &str) -> String {
    let (input, sig64) = jws.rsplit_once('.').expect("three parts");
    let mut sig = URL_SAFE_NO_PAD.decode(sig64).expect("b64");
    sig[10] ^= 0x04;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A sealed record file for `xgate send`.
fn record(dir: &Path, n: usize) -> std::path::PathBuf {
    let file = dir.join(format!("record-{n}.json"));
    std::fs::write(&file, format!(r#"{{"subject":"case {n}","n":{n}}}"#)).expect("write");
    file
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn a_bad_signature_among_concurrent_good_ones_is_refused_alone() {
    const CLIENTS: usize = 12;
    const EACH: usize = 8;
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    let agencies = ["state", "treasury", "gsa"];
    let extra: Vec<String> = agencies
        .iter()
        .flat_map(|a| ["--agency".to_owned(), (*a).to_owned()])
        .collect();
    let report = eddsa_pki(&pki, &extra);
    assert!(
        report.ends_with("; envelopes signed with EdDSA (Ed25519)\n"),
        "{report}"
    );
    let registry = Registry::load(&pki.join("registry.toml")).expect("registry");
    for agency in registry.agencies() {
        let text = |k: &str| agency.signing_key.get(k).and_then(Value::as_str);
        assert_eq!((text("kty"), text("crv")), (Some("OKP"), Some("Ed25519")));
        assert_eq!(text("alg"), Some("EdDSA"));
    }
    let gateway = start_gateway(root.path(), &[], &[]);
    let url = gateway.url().to_owned();

    // Twelve connections send eight records each at once; one record of
    // the fifth has its signature spoiled.
    let bad = (4, 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let replies = rt.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (pki, url) = (pki.clone(), url.clone());
                let from = agencies[c % 3];
                let to = agencies[(c + 1) % 3];
                tokio::spawn(async move {
                    let signer =
                        xgate::client::EnvelopeSigner::for_agency(&pki, &id(from)).expect("signer");
                    let mut client = client(&pki, from, &url);
                    let mut replies = Vec::new();
                    for n in 0..EACH {
                        let mut jws = signer
                            .sign(&id(to), "record.send", body(&format!("{c}-{n}")), 60, None)
                            .expect("sign");
                        if (c, n) == bad {
                            jws = flipped(&jws);
                        }
                        let reply = client.submit(jws).await.expect("a reply");
                        replies.push(((c, n), reply));
                    }
                    replies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("task"));
        }
        all
    });
    assert_eq!(replies.len(), CLIENTS * EACH);
    for (at, reply) in &replies {
        if *at == bad {
            assert_eq!(reply.status, http::StatusCode::UNAUTHORIZED, "{at:?}");
            assert_eq!(error_code(reply), "bad_signature");
        } else {
            assert!(
                reply.status.is_success(),
                "{at:?}: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
            let receipt: Value = serde_json::from_slice(&reply.body).expect("receipt");
            assert!(receipt["log_index"].is_u64(), "{receipt}");
        }
    }

    let mut state = client(&pki, "state", &url);
    let accepted = (CLIENTS * EACH - 1) as u64;
    rt.block_on(async {
        assert_eq!(log_size(&mut state).await, accepted);
        // Every signature went through the batch verifier, the bad one too.
        let checked = metric(&mut state, "xgate_signature_batch_size_sum").await;
        assert_eq!(checked, Some((CLIENTS * EACH) as f64));
        let batches = metric(&mut state, "xgate_signature_batch_size_count")
            .await
            .expect("batches");
        assert!((1.0..=(CLIENTS * EACH) as f64).contains(&batches));
    });

    // The command line signs and seals with the Ed25519 keys too.
    let sent = xgate()
        .run(
            &[
                "send",
                "--pki",
                &arg(&pki),
                "--as",
                "gsa",
                "--to",
                "state",
                "--gateway",
                &url,
                &arg(&record(root.path(), 1)),
            ],
            b"",
        )
        .expect_ok();
    let sent: Value = serde_json::from_str(&sent).expect("receipt");
    let inbox = xgate()
        .run(
            &[
                "inbox",
                "--pki",
                &arg(&pki),
                "--as",
                "state",
                "--gateway",
                &url,
                "--ack",
            ],
            b"",
        )
        .expect_ok();
    let items: Vec<Value> = lines(&inbox)
        .into_iter()
        .filter(|i| i["id"] == sent["id"])
        .collect();
    assert_eq!(items.len(), 1, "{inbox}");
    assert_eq!(items[0]["sealed"], true);
    assert_eq!(items[0]["body"]["subject"], "case 1");
    drop(gateway);
}

/// Loopback ports free now.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

#[test]
fn forwarded_eddsa_envelopes_are_checked_by_the_recipients_gateway() {
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    let ports = free_ports(2);
    let extra: Vec<String> = [
        "--gateway",
        &format!("hub=https://127.0.0.1:{}", ports[0]),
        "--gateway",
        &format!("g-b=https://127.0.0.1:{}", ports[1]),
        "--agency",
        "state@hub",
        "--agency",
        "gsa@g-b",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    eddsa_pki(&pki, &extra);
    let start = |gateway: &str, port: u16| {
        let listen = format!("127.0.0.1:{port}");
        Gateway::start(
            env!("CARGO_BIN_EXE_xgate"),
            &root.path().join(gateway),
            &[
                "--pki",
                &arg(&pki),
                "--gateway-id",
                gateway,
                "--listen",
                &listen,
                "--public-listen",
                "127.0.0.1:0",
            ],
            &[("XGATE_LOG", "warn")],
        )
    };
    let (hub, g_b) = (start("hub", ports[0]), start("g-b", ports[1]));
    let (hub_url, g_b_url) = (hub.url().to_owned(), g_b.url().to_owned());

    // state (on hub) sends to gsa (on g-b): g-b checks each envelope's
    // Ed25519 signature itself, against state's key in the registry.
    let records = 4;
    let rt = runtime();
    let mut state = client(&pki, "state", &hub_url);
    let signer = xgate::client::EnvelopeSigner::for_agency(&pki, &id("state")).expect("signer");
    rt.block_on(async {
        for n in 0..records {
            let jws = signer
                .sign(&id("gsa"), "record.send", body(&format!("r{n}")), 60, None)
                .expect("sign");
            let reply = state.submit(jws).await.expect("a reply");
            assert!(
                reply.status.is_success(),
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    });
    let out = xgate()
        .run(
            &[
                "outbox",
                "--pki",
                &arg(&pki),
                "--as",
                "state",
                "--gateway",
                &hub_url,
                "--wait",
                "30",
            ],
            b"",
        )
        .expect_ok();
    let out = lines(&out);
    assert_eq!(out.len(), records, "{out:?}");
    assert!(out.iter().all(|f| f["state"] == "delivered"), "{out:?}");
    let inbox = xgate()
        .run(
            &[
                "inbox",
                "--pki",
                &arg(&pki),
                "--as",
                "gsa",
                "--gateway",
                &g_b_url,
                "--ack",
            ],
            b"",
        )
        .expect_ok();
    assert_eq!(lines(&inbox).len(), records, "{inbox}");
    let mut gsa = client(&pki, "gsa", &g_b_url);
    rt.block_on(async {
        let checked = metric(&mut gsa, "xgate_signature_batch_size_sum").await;
        assert_eq!(checked, Some(records as f64), "every forwarded signature");
        assert_eq!(
            metric(&mut gsa, "xgate_signature_batches_failed_total").await,
            Some(0.0)
        );
    });
}
