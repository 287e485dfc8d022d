//! `xgate audit verify-receipt` and `xgate audit monitor` against real
//! gateways' public tlog-tiles listeners over loopback TLS: receipts
//! checked against a quorum-cosigned checkpoint with consistency and
//! inclusion recomputed from tiles, receipts upgraded and verified offline,
//! a quorum that is not met, tiles and bundles tampered with on the way (by
//! a test proxy in front of the real listener), and a forked log (two
//! copies of one data directory extended differently under the same key)
//! caught by the monitor, which writes the evidence.

mod federation;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use xgate::tiles::{Fetcher, LogClient};
use xgate_ledger::cosign::{CosignatureAlg, Cosigner, attach};
use xgate_ledger::{NoteVerifier, verify_checkpoint};
use xgate_tests::{Gateway, Run};

use federation::{body, id, make_pki, runtime, start_gateway, xgate};

/// 2025-01-01T00:00:00Z.
const T0: u64 = 1_735_689_600;

/// A PKI and a data directory under one root, and the gateway on them.
struct Site {
    root: tempfile::TempDir,
    gateway: Option<Gateway>,
}

impl Site {
    fn start() -> Site {
        let root = tempfile::tempdir().expect("tempdir");
        make_pki(&root.path().join("pki"), &["state", "treasury"]);
        let gateway = Some(start_gateway(root.path(), &[], &[]));
        Site { root, gateway }
    }

    fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().expect("running")
    }

    fn ca(&self) -> String {
        self.root
            .path()
            .join("pki")
            .join("ca.crt")
            .display()
            .to_string()
    }

    fn public(&self) -> String {
        self.gateway().public_url().to_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Sends `count` record.send envelopes from state to treasury; their
    /// receipts, after the public checkpoint covers them all.
    fn send(&self, count: usize, text: &str) -> Vec<Value> {
        let pki = self.root.path().join("pki");
        let receipts = runtime().block_on(async {
            let mut client = xgate::client::Client::for_agency(
                &pki,
                &id("state"),
                self.gateway().url(),
                xgate::client::Protocol::Auto,
            )
            .expect("client");
            let signer =
                xgate::client::EnvelopeSigner::for_agency(&pki, &id("state")).expect("signer");
            let mut receipts = Vec::new();
            for i in 0..count {
                let jws = signer
                    .sign(
                        &id("treasury"),
                        "record.send",
                        body(&format!("{text} {i}")),
                        60,
                        None,
                    )
                    .expect("sign");
                let reply = client.submit(jws).await.expect("a response");
                assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
                receipts.push(serde_json::from_slice::<Value>(&reply.body).expect("json"));
            }
            receipts
        });
        let last = receipts
            .last()
            .map_or(0, |r| r["log_index"].as_u64().expect("index") + 1);
        self.public_checkpoint(last);
        receipts
    }

    /// The public checkpoint once it covers `size` entries.
    fn public_checkpoint(&self, size: u64) -> String {
        let key = self.key();
        let (url, ca) = (self.public(), self.ca());
        runtime().block_on(async {
            let mut client =
                LogClient::new(Fetcher::new(&url, Some(Path::new(&ca))).expect("fetcher"));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(note) = client.checkpoint().await {
                    let checkpoint = verify_checkpoint(&note, &key).expect("signed by the log");
                    if checkpoint.size >= size {
                        return note;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "no public checkpoint of size {size}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    fn vkey(&self) -> String {
        let data = self.path("data").display().to_string();
        xgate()
            .run(&["log", "key", "--data-dir", &data], b"")
            .expect_ok()
            .trim()
            .to_owned()
    }

    fn key(&self) -> NoteVerifier {
        NoteVerifier::parse(&self.vkey()).expect("vkey")
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write");
        path.display().to_string()
    }
}

/// A witness of the test: a fixed Ed25519 cosigner.
fn witness(n: u8) -> Cosigner {
    Cosigner::from_seed(&format!("w{n}.example"), CosignatureAlg::Ed25519, [n; 32])
        .expect("cosigner")
}

/// `note` with a cosignature by each of `witnesses`, the i-th at `T0 + 10 i`.
fn cosign(note: &str, witnesses: &[&Cosigner]) -> String {
    let text = &note[..=note.rfind("\n\n").expect("a signed note")];
    let lines: String = witnesses
        .iter()
        .enumerate()
        .map(|(i, w)| w.cosign(text, T0 + 10 * i as u64).expect("cosign"))
        .collect();
    attach(note, &lines).expect("attach")
}

fn run(args: &[&str]) -> Run {
    xgate().run(args, b"")
}

fn stdout(run: &Run) -> String {
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn a_receipt_verifies_against_a_cosigned_checkpoint_and_upgrades_offline() {
    let site = Site::start();
    let receipts = site.send(3, "early");
    let receipt = site.write("receipt.json", &receipts[1].to_string());
    // The log grows past the receipt: the cosigned checkpoint is larger.
    site.send(300, "later");
    let note = site.public_checkpoint(303);
    let (w1, w2, w3) = (witness(1), witness(2), witness(3));
    let cosigned = site.write("cosigned", &cosign(&note, &[&w1, &w2]));
    let vkey = site.vkey();
    let (v1, v2, v3) = (
        w1.verifier().to_string(),
        w2.verifier().to_string(),
        w3.verifier().to_string(),
    );
    let public = site.public();
    let ca = site.ca();
    let base = [
        "audit",
        "verify-receipt",
        "--receipt",
        &receipt,
        "--key",
        &vkey,
    ];

    // Today's check, unchanged.
    let plain = run(&base).expect_ok();
    assert_eq!(plain.lines().count(), 1);
    assert!(plain.starts_with("ok: envelope "), "{plain}");

    // Two of three witnesses, the checkpoint from a file, tiles from the log.
    let mut args = base.to_vec();
    args.extend([
        "--witness",
        &v1,
        "--witness",
        &v2,
        "--witness",
        &v3,
        "--quorum",
        "2",
    ]);
    args.extend(["--checkpoint", &cosigned, "--log", &public, "--ca", &ca]);
    let upgraded = site.path("upgraded.json").display().to_string();
    args.extend(["--upgrade", &upgraded]);
    let out = run(&args).expect_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], plain.trim_end());
    assert!(
        lines[1].starts_with("ok: entry 1 is in the checkpoint of tree size 303, cosigned by 2 of the 3 witnesses listed (w1.example, w2.example), 2 required; consistent with the receipt's"),
        "{out}"
    );
    assert_eq!(
        lines[2],
        format!(
            "trusted time: entry 1 was logged by 2025-01-01T00:00:00Z (POSIX {T0}), the earliest cosignature (by w1.example) on the checkpoint of size 303; all 2 of the quorum vouch for 2025-01-01T00:00:10Z (POSIX {})",
            T0 + 10
        )
    );
    assert!(lines[3].starts_with("upgraded: "), "{out}");

    // A quorum that is not met: three required, two cosigned.
    let mut strict = args[..args.len() - 2].to_vec();
    let at = strict.iter().position(|a| *a == "2").expect("quorum");
    strict[at] = "3";
    let message = run(&strict).expect_error(1);
    assert!(
        message.contains("2 of the 3 cosignatures needed") && message.contains("w3.example"),
        "{message}"
    );

    // The log's own /checkpoint carries no cosignature yet: refused.
    let message = run(&[
        &base[..],
        &["--witness", &v1, "--log", &public, "--ca", &ca],
    ]
    .concat())
    .expect_error(1);
    assert!(
        message.contains("0 of the 1 cosignatures needed"),
        "{message}"
    );
    // Without witnesses it is the log-signed checkpoint, checked from tiles.
    let out = run(&[&base[..], &["--log", &public, "--ca", &ca]].concat()).expect_ok();
    assert!(
        out.contains("signed by the log (no witnesses required)"),
        "{out}"
    );
    // A cosigned checkpoint of another size needs the tiles.
    let message =
        run(&[&base[..], &["--witness", &v1, "--checkpoint", &cosigned]].concat()).expect_error(1);
    assert!(message.contains("give --log URL"), "{message}");
    // HTTPS without a CA is refused before anything is fetched.
    let message = run(&[&base[..], &["--log", &public]].concat()).expect_error(1);
    assert!(message.contains("--ca"), "{message}");

    // The upgraded receipt: the receipt's fields, the cosigned checkpoint,
    // a proof for its size; it verifies with no server at all.
    let up: Value =
        serde_json::from_str(&std::fs::read_to_string(&upgraded).expect("read")).expect("json");
    assert_eq!(up["tree_size"], 303);
    assert_eq!(up["id"], receipts[1]["id"]);
    assert_eq!(up["entry"], receipts[1]["entry"]);
    assert_eq!(
        up["checkpoint"].as_str(),
        Some(std::fs::read_to_string(&cosigned).expect("read").as_str())
    );
    // The log grows past the next full tile: the partial tiles of size
    // 303 are pruned once full ones replace them, and the client falls
    // back on the full tiles (the spec's rule).
    site.send(300, "much later");
    let (url, ca_path) = (site.public(), site.ca());
    let pruned = runtime().block_on(async {
        let mut fetcher = Fetcher::new(&url, Some(Path::new(&ca_path))).expect("fetcher");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let partial = fetcher.get("tile/0/001.p/47").await.expect("get");
            let full = fetcher.get("tile/0/001").await.expect("get");
            if partial.is_none() && full.is_some() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(pruned, "the log keeps the partial tile of size 303");
    let out = run(&args[..args.len() - 2]).expect_ok();
    assert!(out.contains("tree size 303, cosigned by 2"), "{out}");

    let mut site = site;
    if let Some(g) = site.gateway.take() {
        g.stop();
    }
    let offline = [
        "audit",
        "verify-receipt",
        "--receipt",
        &upgraded,
        "--key",
        &vkey,
    ];
    let out = run(&[
        &offline[..],
        &["--witness", &v1, "--witness", &v2, "--quorum", "2"],
    ]
    .concat())
    .expect_ok();
    assert!(
        out.contains("tree size 303, cosigned by 2 of the 2 witnesses listed"),
        "{out}"
    );
    assert!(
        out.contains("trusted time: entry 1 was logged by 2025-01-01T00:00:00Z"),
        "{out}"
    );
    run(&offline).expect_ok();
    let message = run(&[&offline[..], &["--witness", &v3]].concat()).expect_error(1);
    assert!(message.contains("0 of the 1"), "{message}");
}

/// A test proxy: plain HTTP in front of a real public listener, passing
/// every response through but flipping one byte of those whose path
/// starts with `tamper` (a log that lies about its tiles or bundles).
fn tampering_proxy(upstream: String, ca: String, tamper: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let shared = Arc::new((upstream, ca));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let shared = Arc::clone(&shared);
                            async move {
                                let path = req.uri().path().trim_start_matches('/').to_owned();
                                let mut fetcher =
                                    Fetcher::new(&shared.0, Some(Path::new(&shared.1)))
                                        .expect("fetcher");
                                let (status, mut bytes) = match fetcher.get(&path).await {
                                    Ok(Some(b)) => (200, b.to_vec()),
                                    Ok(None) => (404, Vec::new()),
                                    Err(_) => (502, Vec::new()),
                                };
                                if status == 200 && path.starts_with(tamper) && bytes.len() > 40 {
                                    bytes[40] ^= 0x01;
                                }
                                http::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    format!("http://{addr}")
}

#[test]
fn tampered_tiles_and_bundles_fail_and_the_monitor_keeps_evidence() {
    let site = Site::start();
    let receipts = site.send(5, "tamper");
    let receipt = site.write("receipt.json", &receipts[0].to_string());
    site.send(2, "more");
    let note = site.public_checkpoint(7);
    let cosigned = site.write("cosigned", &cosign(&note, &[&witness(1)]));
    let vkey = site.vkey();
    let v1 = witness(1).verifier().to_string();
    let honest = tampering_proxy(site.public(), site.ca(), "nothing");
    let tiles = tampering_proxy(site.public(), site.ca(), "tile/0/");
    let bundles = tampering_proxy(site.public(), site.ca(), "tile/entries/");
    let verify = |log: &str| {
        run(&[
            "audit",
            "verify-receipt",
            "--receipt",
            &receipt,
            "--key",
            &vkey,
            "--witness",
            &v1,
            "--checkpoint",
            &cosigned,
            "--log",
            log,
        ])
    };
    // Through an honest proxy (plain http: integrity is the signatures').
    verify(&honest).expect_ok();
    let message = verify(&tiles).expect_error(1);
    assert!(
        message.contains("do not hash to the root of its checkpoint of size 7"),
        "{message}"
    );

    // The monitor: through the bundle-tampering proxy it stops, with the
    // evidence next to its state, and no state is saved.
    let state = site.path("monitor.json");
    let state_arg = state.display().to_string();
    let monitor = |log: &str| {
        run(&[
            "audit", "monitor", "--log", log, "--key", &vkey, "--state", &state_arg, "--once",
        ])
    };
    let failed = monitor(&bundles);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("does not hash to its leaf hash in tile/0"),
        "{}",
        failed.stderr
    );
    assert!(!state.exists());
    let evidence = evidence_files(&site.path(""));
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert!(failed.stderr.contains(&evidence[0].display().to_string()));
    let text = std::fs::read_to_string(&evidence[0]).expect("evidence");
    assert!(
        text.contains("(none: nothing verified yet)") && text.contains(&note),
        "{text}"
    );
    std::fs::remove_file(&evidence[0]).expect("rm");

    // Tampered level-0 tiles: the honest bundles no longer match them.
    let failed = monitor(&tiles);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("does not hash to its leaf hash in tile/0"),
        "{}",
        failed.stderr
    );
    std::fs::remove_file(&evidence_files(&site.path(""))[0]).expect("rm");

    // Honest: one line, state saved; a quorum the log's checkpoint lacks
    // is an inconsistency like any other.
    let out = stdout(&monitor(&honest));
    assert!(out.starts_with("size 7: 7 new entries, verified "), "{out}");
    assert!(state.exists());
    let failed = run(&[
        "audit",
        "monitor",
        "--log",
        &honest,
        "--key",
        &vkey,
        "--witness",
        &v1,
        "--state",
        &state_arg,
        "--once",
    ]);
    assert_eq!(failed.code, Some(1));
    assert!(
        failed.stderr.contains("0 of the 1 cosignatures needed"),
        "{}",
        failed.stderr
    );
}

fn evidence_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains(".evidence-"))
        .collect();
    found.sort();
    found
}

#[test]
fn a_forked_log_is_caught_by_the_monitor_and_refused_by_a_quorum_client() {
    // One log, three entries, then two copies of its data directory each
    // extended with different envelopes, under the same key.
    let mut a = Site::start();
    a.send(3, "common");
    if let Some(g) = a.gateway.take() {
        g.stop();
    }
    let b = Site {
        root: tempfile::tempdir().expect("tempdir"),
        gateway: None,
    };
    xgate_ledger::fsutil::copy_tree(a.root.path(), b.root.path()).expect("copy");
    a.gateway = Some(start_gateway(a.root.path(), &[], &[]));
    let mut b = b;
    b.gateway = Some(start_gateway(b.root.path(), &[], &[]));
    assert_eq!(a.vkey(), b.vkey(), "one key, two histories");
    a.send(2, "history a");
    let b_receipts = b.send(4, "history b");

    let vkey = a.vkey();
    let state = a.path("monitor.json").display().to_string();
    let monitor = |site: &Site, replay: bool| {
        let (public, ca) = (site.public(), site.ca());
        let mut args = vec![
            "audit", "monitor", "--log", &public, "--ca", &ca, "--key", &vkey, "--state", &state,
            "--once",
        ];
        if replay {
            args.push("--replay");
        }
        run(&args)
    };
    let out = monitor(&a, true).expect_ok();
    assert!(out.starts_with("size 5: 5 new entries, verified "), "{out}");
    assert!(
        out.contains("replay: 5 entries, 0 assets, 0 medical requests, 0 findings"),
        "{out}"
    );
    let again = monitor(&a, true).expect_ok();
    assert_eq!(again.trim(), "size 5: no new entries");

    // Pointed at the other copy: size 7, not consistent with size 5.
    let forked = monitor(&b, true);
    assert_eq!(forked.code, Some(1), "{}", stdout(&forked));
    assert!(
        forked.stderr.contains(
            "the log is inconsistent: the checkpoints of sizes 5 and 7 are not consistent"
        ),
        "{}",
        forked.stderr
    );
    let evidence = evidence_files(a.root.path());
    assert_eq!(evidence.len(), 1);
    let text = std::fs::read_to_string(&evidence[0]).expect("evidence");
    let note_a = a.public_checkpoint(5);
    let note_b = b.public_checkpoint(7);
    assert!(text.contains(&note_a) && text.contains(&note_b), "{text}");
    for note in [&note_a, &note_b] {
        assert!(
            verify_checkpoint(note, &a.key()).is_ok(),
            "both signed by the one key"
        );
    }
    // The state still holds history a.
    assert_eq!(
        monitor(&a, true).expect_ok().trim(),
        "size 5: no new entries"
    );

    // A client requiring a quorum: a witness cosigned history a; a receipt
    // of history b is never accepted against it.
    let w = witness(1);
    let cosigned_a = a.write("cosigned-a", &cosign(&note_a, &[&w]));
    let receipt_b = b.write("receipt-b.json", &b_receipts[0].to_string());
    let (public_b, ca_b, v) = (b.public(), b.ca(), w.verifier().to_string());
    let message = run(&[
        "audit",
        "verify-receipt",
        "--receipt",
        &receipt_b,
        "--key",
        &vkey,
        "--witness",
        &v,
        "--checkpoint",
        &cosigned_a,
        "--log",
        &public_b,
        "--ca",
        &ca_b,
    ])
    .expect_error(1);
    // History b's tiles cannot show history a's checkpoint: b never had
    // a tree of size 5 with that root (whichever way the sizes fall, the
    // proof fails, the tiles do not hash to a's root, or b never served
    // them).
    assert!(
        [
            "not consistent",
            "do not hash to the root",
            "does not serve"
        ]
        .iter()
        .any(|m| message.contains(m)),
        "{message}"
    );
}

#[test]
fn the_monitor_follows_until_sigterm_and_resumes_from_its_state() {
    use std::io::BufRead as _;
    let site = Site::start();
    site.send(4, "first");
    let vkey = site.vkey();
    let state = site.path("follow.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xgate"))
        .args([
            "audit",
            "monitor",
            "--log",
            &site.public(),
            "--ca",
            &site.ca(),
            "--key",
            &vkey,
        ])
        .arg("--state")
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(30)).expect("a line");
    let first = next();
    assert!(first.starts_with("size 4: 4 new entries"), "{first}");
    site.send(3, "second");
    let second = next();
    assert!(second.starts_with("size 7: 3 new entries"), "{second}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(next(), "stopped");
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0));
    // Resumed: only what is new since size 7.
    site.send(2, "third");
    let out = run(&[
        "audit",
        "monitor",
        "--log",
        &site.public(),
        "--ca",
        &site.ca(),
        "--key",
        &vkey,
        "--state",
        &state.display().to_string(),
        "--once",
    ])
    .expect_ok();
    assert!(out.starts_with("size 9: 2 new entries"), "{out}");
}
