//! The federation witnesses itself (issue 21), with real gateways on
//! loopback: every gateway runs a C2SP tlog-witness of its peers' logs at
//! `<url>/witness`, and serves its own checkpoints only once a quorum of
//! its peers cosigned them.
//!
//! - Three gateways, the default quorum (a majority of the peers: 2 of 2):
//!   each one's public `GET /checkpoint` carries both peers' cosignatures,
//!   verified with the registry's `witness_key`s (and by `xgate audit
//!   verify-receipt --witness ... --quorum 2`), never its own witness's; a
//!   peer stopped stops its peers from serving new checkpoints, and its
//!   restart lets them resume.
//! - Only the other gateways are answered on `/witness/add-checkpoint`: an
//!   agency's certificate and the gateway's own get 403 `wrong_gateway`;
//!   its own log is an unknown origin to its witness (404); the answers are
//!   the spec's.
//! - With `federation_quorum = 1`, a stopped peer does not stop serving;
//!   and a gateway that shows its peers a second history (a fork of its
//!   data directory, as `split_view.rs` makes one) gets no cosignature:
//!   each peer refuses it and keeps both log-signed checkpoints as
//!   evidence, while the first history goes on being cosigned.

mod federation;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use xgate::client::{Client, EnvelopeSigner, Protocol, Reply};
use xgate_ledger::NoteVerifier;
use xgate_ledger::cosign::{CosignerVerifier, verify_quorum};
use xgate_ledger::witness::{SIZE_CONTENT_TYPE, format_body, origin_hash};
use xgate_server::registry::Registry;
use xgate_tests::Gateway;
use xgate_tests::federation::Federation as Gateways;

use federation::witnesses::served_checkpoint;
use federation::{body, checkpoint_note, error_code, id, log_size, metric, runtime, submit, xgate};

const BIN: &str = env!("CARGO_BIN_EXE_xgate");

/// g-a serves state and treasury, g-b gsa, g-c hhs.
const LAYOUT: &[(&str, &[&str])] = &[
    ("g-a", &["state", "treasury"]),
    ("g-b", &["gsa"]),
    ("g-c", &["hhs"]),
];

/// An agency each gateway serves, to read its metrics and log with.
fn agency_of(gateway: &str) -> &'static str {
    match gateway {
        "g-a" => "state",
        "g-b" => "gsa",
        _ => "hhs",
    }
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// Three gateways, checkpoints sent to the peers every 100 ms, with
/// `env` besides.
fn start(dir: &Path, env: &[(&str, &str)]) -> Gateways {
    let mut all = vec![("XGATE_LOG", "info"), ("XGATE_WITNESS_INTERVAL_MS", "100")];
    all.extend_from_slice(env);
    Gateways::start(Path::new(BIN), dir, LAYOUT, &all)
}

/// What the registry says of one gateway: its log's key and its witness's.
struct Keys {
    log: NoteVerifier,
    witness: CosignerVerifier,
}

fn keys(pki: &Path, gateway: &str) -> Keys {
    let registry = Registry::load(&pki.join("registry.toml")).expect("registry");
    let entry = registry
        .gateway(&gateway.parse().expect("id"))
        .expect("listed");
    Keys {
        log: NoteVerifier::parse(&entry.log_key).expect("log key"),
        witness: CosignerVerifier::parse(entry.witness_key.as_deref().expect("a witness_key"))
            .expect("witness key"),
    }
}

/// A client of `agency` at `url`.
fn agency_client(pki: &Path, agency: &str, url: &str) -> Client {
    Client::for_agency(pki, &id(agency), url, Protocol::Auto).expect("client")
}

/// A client presenting gateway `gateway`'s certificate, at `url`.
fn gateway_client(pki: &Path, gateway: &str, url: &str) -> Client {
    let home = pki.join("gateways").join(gateway);
    Client::new(
        &pki.join("ca.crt"),
        &home.join("tls.crt"),
        &home.join("tls.key"),
        url,
        Protocol::Auto,
    )
    .expect("client")
}

/// Sends `n` records from `from` to `to` at `url` (bodies `TAG-i`);
/// returns the last receipt.
fn send(pki: &Path, url: &str, from: &str, to: &str, tag: &str, n: usize) -> Vec<u8> {
    runtime().block_on(async {
        let mut client = agency_client(pki, from, url);
        let signer = EnvelopeSigner::for_agency(pki, &id(from)).expect("signer");
        let mut receipt = Vec::new();
        for i in 0..n {
            let jws = signer
                .sign(
                    &id(to),
                    "record.send",
                    body(&format!("{tag}-{i}")),
                    60,
                    None,
                )
                .expect("sign");
            let reply = submit(&mut client, &jws).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
            receipt = reply.body.to_vec();
        }
        receipt
    })
}

/// The size of the log of the gateway at `url`, read as `agency`.
fn size_at(pki: &Path, url: &str, agency: &str) -> u64 {
    runtime().block_on(async { log_size(&mut agency_client(pki, agency, url)).await })
}

/// The value of `series` in the metrics of the gateway at `url`.
fn metric_at(pki: &Path, url: &str, agency: &str, series: &str) -> f64 {
    runtime().block_on(async {
        metric(&mut agency_client(pki, agency, url), series)
            .await
            .unwrap_or(0.0)
    })
}

/// Waits until `gateway` serves a checkpoint of at least `size` that
/// `quorum` of `witnesses` cosigned; returns it.
fn wait_cosigned(
    gateway: &Gateway,
    ca: &Path,
    log: &NoteVerifier,
    witnesses: &[CosignerVerifier],
    quorum: usize,
    size: u64,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(note) = served_checkpoint(gateway, ca).filter(|n| {
            verify_quorum(n, log, witnesses, quorum)
                .is_ok_and(|c| c.checkpoint.checkpoint.size >= size)
        }) {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} cosigned by {quorum} was served; log:\n{}",
            gateway.log_output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Adds a record to g-a's log (at `url`) every half second until
/// `gateway` (g-a) serves a checkpoint of its newest size that all of
/// `witnesses` cosigned; returns that size. With a quorum below the peers,
/// a checkpoint is served with the cosignatures gathered when the quorum
/// was reached, and a peer waiting out its back-off is asked again at the
/// next size: so the log grows until one size has them all.
fn grow_until_cosigned_by_all(
    pki: &Path,
    url: &str,
    gateway: &Gateway,
    ca: &Path,
    log: &NoteVerifier,
    witnesses: &[CosignerVerifier],
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    for round in 0.. {
        send(pki, url, "state", "treasury", &format!("grow-{round}"), 1);
        let size = size_at(pki, url, "state");
        let wait = Instant::now() + Duration::from_millis(500);
        while Instant::now() < wait {
            let all = served_checkpoint(gateway, ca).is_some_and(|n| {
                verify_quorum(&n, log, witnesses, witnesses.len())
                    .is_ok_and(|c| c.checkpoint.checkpoint.size >= size)
            });
            if all {
                return size;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            Instant::now() < deadline,
            "no size was cosigned by every peer; log:\n{}",
            gateway.log_output()
        );
    }
    unreachable!("the loop returns or fails")
}

/// The size of the checkpoint `gateway` serves (0 if none).
fn served_size(gateway: &Gateway, ca: &Path) -> u64 {
    served_checkpoint(gateway, ca)
        .and_then(|n| n.lines().nth(1).and_then(|l| l.parse().ok()))
        .unwrap_or(0)
}

/// POSTs `body` to `/witness/add-checkpoint` with `client`.
fn add_checkpoint(client: &mut Client, body: String) -> Reply {
    runtime().block_on(async {
        client
            .request(
                Method::POST,
                "/witness/add-checkpoint",
                Some("text/plain; charset=utf-8"),
                body.into_bytes(),
            )
            .await
            .expect("a response")
    })
}

/// The files under `dir` named `name`, recursively.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_named(&path, name)
            } else if path.ends_with(name) {
                vec![path]
            } else {
                Vec::new()
            }
        })
        .collect()
}

#[test]
fn each_gateway_serves_what_its_peers_cosigned_and_waits_for_a_stopped_peer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut gateways = start(tmp.path(), &[]);
    let pki = gateways.pki();
    let ca = pki.join("ca.crt");
    let all = ["g-a", "g-b", "g-c"];
    let peers_of = |g: &str| -> Vec<CosignerVerifier> {
        all.iter()
            .filter(|p| **p != g)
            .map(|p| keys(&pki, p).witness)
            .collect()
    };

    // Every log grows: g-a's and g-b's by a record crossing between them,
    // g-b's and g-c's by another; g-a's by a local one too.
    let receipt = send(&pki, &gateways.url("g-a"), "state", "treasury", "a", 2);
    send(&pki, &gateways.url("g-a"), "state", "gsa", "ab", 1);
    send(&pki, &gateways.url("g-b"), "gsa", "hhs", "bc", 1);
    for gateway in all {
        // Forwarded envelopes land in the peer's log a moment later.
        let deadline = Instant::now() + Duration::from_secs(60);
        while size_at(&pki, &gateways.url(gateway), agency_of(gateway)) == 0 {
            assert!(Instant::now() < deadline, "{gateway}'s log stays empty");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Each serves a checkpoint of its whole log, cosigned by both peers
    // (the default quorum, 2 of 2), checked with the registry's keys; its
    // own witness never signs it.
    for gateway in all {
        let own = keys(&pki, gateway);
        let size = size_at(&pki, &gateways.url(gateway), agency_of(gateway));
        let note = wait_cosigned(
            gateways.process(gateway),
            &ca,
            &own.log,
            &peers_of(gateway),
            2,
            size,
        );
        assert!(
            verify_quorum(&note, &own.log, std::slice::from_ref(&own.witness), 1).is_err(),
            "{gateway}'s own witness cosigned its log: {note}"
        );
        assert!(note.starts_with(&format!("xgate/{gateway}\n")), "{note}");
    }

    // An auditor checks a receipt of g-a against the cosigned checkpoint,
    // requiring both peers.
    let receipt_file = tmp.path().join("receipt.json");
    std::fs::write(&receipt_file, &receipt).expect("write receipt");
    let (a, b, c) = (keys(&pki, "g-a"), keys(&pki, "g-b"), keys(&pki, "g-c"));
    let verified = xgate()
        .run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &text(&receipt_file),
                "--key",
                &a.log.to_string(),
                "--witness",
                &b.witness.to_string(),
                "--witness",
                &c.witness.to_string(),
                "--quorum",
                "2",
                "--log",
                gateways.public_url("g-a"),
                "--ca",
                &text(&ca),
            ],
            b"",
        )
        .expect_ok();
    assert!(verified.contains("cosigned by"), "{verified}");

    // Who may submit to g-a's witness, and what it answers.
    let a_url = gateways.url("g-a");
    let a_note = runtime()
        .block_on(async { checkpoint_note(&mut agency_client(&pki, "state", &a_url)).await });
    let b_note = runtime().block_on(async {
        checkpoint_note(&mut agency_client(&pki, "gsa", &gateways.url("g-b"))).await
    });
    // An agency: 403 wrong_gateway, as JSON.
    let reply = add_checkpoint(
        &mut agency_client(&pki, "state", &a_url),
        format_body(0, &[], &b_note),
    );
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&reply), "wrong_gateway");
    // The gateway itself: 403 too.
    let reply = add_checkpoint(
        &mut gateway_client(&pki, "g-a", &a_url),
        format_body(0, &[], &a_note),
    );
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&reply), "wrong_gateway");
    // A peer handing g-a its own log's checkpoint: not a log it witnesses.
    let mut from_b = gateway_client(&pki, "g-b", &a_url);
    let reply = add_checkpoint(&mut from_b, format_body(0, &[], &a_note));
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(&reply.body[..], b"unknown log origin\n");
    // g-b's own checkpoint from size 0: g-a cosigned more, so 409 with the
    // size it has, as tlog-witness says.
    let reply = add_checkpoint(&mut from_b, format_body(0, &[], &b_note));
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    assert_eq!(
        reply.headers[http::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii"),
        SIZE_CONTENT_TYPE
    );
    let cosigned: u64 = std::str::from_utf8(&reply.body)
        .expect("utf-8")
        .trim_end()
        .parse()
        .expect("a size");
    assert!(cosigned > 0);
    // Another method: 405.
    let reply = runtime().block_on(async {
        from_b
            .request(Method::GET, "/witness/add-checkpoint", None, Vec::new())
            .await
            .expect("a response")
    });
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let answers = |outcome: &str| {
        metric_at(
            &pki,
            &a_url,
            "state",
            &format!("xgate_peer_witness_answers_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert!(
        answers("cosigned") >= 2.0,
        "g-a cosigned g-b's and g-c's logs"
    );
    assert!(answers("unknown_origin") >= 1.0);
    assert!(answers("conflict") >= 1.0);

    // g-c stops: with 2 of 2 needed, g-a serves no new checkpoint.
    gateways.stop("g-c");
    let before = served_size(gateways.process("g-a"), &ca);
    send(&pki, &a_url, "state", "treasury", "while-c-is-down", 2);
    let grown = size_at(&pki, &a_url, "state");
    assert!(grown > before);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert_eq!(
            served_size(gateways.process("g-a"), &ca),
            before,
            "g-a served a checkpoint without g-c's cosignature"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        metric_at(
            &pki,
            &a_url,
            "state",
            "xgate_witness_submissions_total{witness=\"xgate/g-c/witness\",outcome=\"unreachable\"}"
        ) > 0.0
    );
    // g-b still cosigned it: only the quorum is missing.
    assert!(
        metric_at(
            &pki,
            &a_url,
            "state",
            "xgate_witness_submissions_total{witness=\"xgate/g-b/witness\",outcome=\"cosigned\"}"
        ) > 0.0
    );

    // g-c is back: g-a serves its whole log again, cosigned by both.
    gateways.restart("g-c");
    wait_cosigned(
        gateways.process("g-a"),
        &ca,
        &a.log,
        &[b.witness.clone(), c.witness.clone()],
        2,
        grown,
    );
}

#[test]
fn with_a_quorum_of_one_a_stopped_peer_is_waited_for_by_nobody_and_a_fork_is_caught() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut gateways = start(tmp.path(), &[("XGATE_FEDERATION_QUORUM", "1")]);
    let pki = gateways.pki();
    let ca = pki.join("ca.crt");
    let (a, b, c) = (keys(&pki, "g-a"), keys(&pki, "g-b"), keys(&pki, "g-c"));
    let peers = [b.witness.clone(), c.witness.clone()];

    // History 1, seen and cosigned by both peers.
    let a_url = gateways.url("g-a");
    send(&pki, &a_url, "state", "treasury", "one", 2);
    grow_until_cosigned_by_all(&pki, &a_url, gateways.process("g-a"), &ca, &a.log, &peers);

    // g-c stops: one peer is enough, so g-a goes on serving.
    gateways.stop("g-c");
    send(&pki, &a_url, "state", "treasury", "two", 1);
    let second = size_at(&pki, &a_url, "state");
    let note = wait_cosigned(
        gateways.process("g-a"),
        &ca,
        &a.log,
        std::slice::from_ref(&b.witness),
        1,
        second,
    );
    assert!(verify_quorum(&note, &a.log, std::slice::from_ref(&c.witness), 1).is_err());
    gateways.restart("g-c");
    grow_until_cosigned_by_all(&pki, &a_url, gateways.process("g-a"), &ca, &a.log, &peers);

    // g-a's operator forks its log: a copy of its data directory, then
    // more on the original, which both peers cosign.
    gateways.stop("g-a");
    let fork_dir = tmp.path().join("g-a-fork");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(gateways.data_dir("g-a"))
        .arg(&fork_dir)
        .status()
        .expect("cp");
    assert!(status.success());
    let copied = size_at_rest(&fork_dir);
    gateways.restart("g-a");
    send(&pki, &a_url, "state", "treasury", "honest", 2);
    let honest =
        grow_until_cosigned_by_all(&pki, &a_url, gateways.process("g-a"), &ca, &a.log, &peers);
    assert!(honest > copied);

    // The copy, run as g-a on another port, extends it otherwise and
    // shows that to the peers.
    let pki_arg = text(&pki);
    let fork = Gateway::start(
        BIN,
        &fork_dir,
        &["--pki", &pki_arg, "--gateway-id", "g-a"],
        &[
            ("XGATE_LOG", "info"),
            ("XGATE_WITNESS_INTERVAL_MS", "100"),
            ("XGATE_FEDERATION_QUORUM", "1"),
        ],
    );
    let served_before = served_size(&fork, &ca);
    let more = usize::try_from(honest - copied).expect("small") + 2;
    send(&pki, fork.url(), "state", "treasury", "forked", more);
    let forked = size_at(&pki, fork.url(), "state");
    assert!(forked > honest, "the fork outgrows the cosigned history");

    // Each peer refuses it and keeps both log-signed checkpoints.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (peer, agency) in [("g-b", "gsa"), ("g-c", "hhs")] {
        let evidence = gateways
            .data_dir(peer)
            .join("witness/evidence")
            .join(origin_hash("xgate/g-a"));
        let refusals = loop {
            let found = files_named(&evidence, "refused");
            if !found.is_empty() {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "{peer} kept no evidence of the fork; the fork's log:\n{}",
                fork.log_output()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        for refused in refusals {
            let signed = |p: &Path| {
                let note = std::fs::read_to_string(p).expect("evidence note");
                xgate_ledger::verify_checkpoint(&note, &a.log).expect("signed by g-a's log")
            };
            let (theirs, ours) = (
                signed(&refused),
                signed(&refused.with_file_name("cosigned")),
            );
            assert_ne!((theirs.size, theirs.root), (ours.size, ours.root));
        }
        assert!(
            metric_at(
                &pki,
                &gateways.url(peer),
                agency,
                "xgate_peer_witness_evidence_total"
            ) >= 1.0,
            "{peer} counts the evidence"
        );
        assert!(
            gateways
                .process(peer)
                .log_output()
                .contains("evidence kept"),
            "{peer} warns"
        );
    }
    // The fork's gatherer saw the refusals, and serves nothing new.
    for peer in ["g-b", "g-c"] {
        let series = format!(
            "xgate_witness_submissions_total{{witness=\"xgate/{peer}/witness\",outcome=\"refused\"}}"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while metric_at(&pki, fork.url(), "state", &series) == 0.0 {
            assert!(Instant::now() < deadline, "{peer}'s refusal not counted");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(served_size(&fork, &ca), served_before);

    // History 1 goes on being cosigned by both.
    let after =
        grow_until_cosigned_by_all(&pki, &a_url, gateways.process("g-a"), &ca, &a.log, &peers);
    assert!(after > honest);
}

/// The size of the log in the stopped gateway's data directory `data`, as
/// `xgate log checkpoint` reads it.
fn size_at_rest(data: &Path) -> u64 {
    let note = xgate()
        .run(&["log", "checkpoint", "--data-dir", &text(data)], b"")
        .expect_ok();
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a size line")
}

/// `xgate serve --pki PKI --data-dir DATA ARGS` with `env`, expected to
/// refuse to start (under `timeout`, so one that starts fails the test
/// rather than hanging it); returns the one error line.
fn serve_refused(pki: &Path, data: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut argv: Vec<String> = vec!["60".into(), "env".into(), "XGATE_LOG=off".into()];
    argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push(BIN.into());
    argv.extend(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-listen",
            "127.0.0.1:0",
            "--pki",
            &text(pki),
            "--data-dir",
            &text(data),
        ]
        .map(String::from),
    );
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    xgate_tests::Xgate::new("timeout")
        .run(&argv, b"")
        .expect_error(1)
}

#[test]
fn a_witness_key_or_a_quorum_that_does_not_fit_the_registry_stops_the_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = tmp.path().join("pki");
    let mut args: Vec<String> = vec!["certs".into(), "init".into(), "--dir".into(), text(&pki)];
    for (i, (gateway, agencies)) in LAYOUT.iter().enumerate() {
        args.push("--gateway".into());
        args.push(format!("{gateway}=https://127.0.0.1:{}", 9 + i));
        for agency in *agencies {
            args.push("--agency".into());
            args.push(format!("{agency}@{gateway}"));
        }
    }
    xgate().run(&args, b"").expect_ok();
    let data = tmp.path().join("data");
    let as_a = ["--gateway-id", "g-a"];
    let (a, b) = (keys(&pki, "g-a"), keys(&pki, "g-b"));
    let label = |k: &CosignerVerifier| format!("{}+{}", k.name(), hex::encode(k.key_id()));

    // Another gateway's witness key, named or in place of the default.
    let b_key = pki.join("gateways/g-b/witness.key");
    let msg = serve_refused(&pki, &data, &[("XGATE_WITNESS_KEY", &text(&b_key))], &as_a);
    assert!(
        msg.contains(&format!("holds witness key {}", label(&b.witness)))
            && msg.contains(&format!("lists {}", label(&a.witness)))
            && msg.contains("gateway g-a"),
        "{msg}"
    );
    let private = std::fs::read_to_string(&b_key).expect("key");
    assert!(!msg.contains(private.trim()), "never the key itself");
    let missing = tmp.path().join("nowhere.key");
    let msg = serve_refused(
        &pki,
        &data,
        &[("XGATE_WITNESS_KEY", &text(&missing))],
        &as_a,
    );
    assert!(
        msg.contains("nowhere.key") && msg.contains("cannot read"),
        "{msg}"
    );
    let default = pki.join("gateways/g-a/witness.key");
    let kept = tmp.path().join("g-a.witness.key");
    std::fs::rename(&default, &kept).expect("move");
    std::fs::copy(&b_key, &default).expect("copy");
    let msg = serve_refused(&pki, &data, &[], &as_a);
    assert!(
        msg.contains("gateways/g-a/witness.key holds witness key"),
        "{msg}"
    );
    std::fs::rename(&kept, &default).expect("move back");

    // More peers than there are, counting only the others.
    let msg = serve_refused(&pki, &data, &[("XGATE_FEDERATION_QUORUM", "3")], &as_a);
    assert!(
        msg.contains("federation_quorum is 3 but 2 peer gateways"),
        "{msg}"
    );

    // Outside a federation, neither setting has a meaning.
    let single = tmp.path().join("single");
    xgate()
        .run(
            &[
                "certs",
                "init",
                "--dir",
                &text(&single),
                "--agency",
                "state",
            ],
            b"",
        )
        .expect_ok();
    let msg = serve_refused(
        &single,
        &tmp.path().join("single-data"),
        &[("XGATE_FEDERATION_QUORUM", "1")],
        &[],
    );
    assert!(msg.contains("not in a federation"), "{msg}");
    let msg = serve_refused(
        &single,
        &tmp.path().join("single-data"),
        &[("XGATE_WITNESS_KEY", &text(&default))],
        &[],
    );
    assert!(msg.contains("witness_key is set"), "{msg}");
}
