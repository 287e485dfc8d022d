//! The medical exchange end to end over real TLS, through the `xgate
//! medical` commands a responder's and a holder's systems run: an
//! emergency (ETREAT) request breaks the glass, the holder answers with an
//! IPS bundle encrypted to the requester, the requester opens it, and the
//! holder's reviewer closes the grant from the review queue. Then the same
//! flow with distinctive markers in every personal field, searched for in
//! the ledger, the gateway's log output, its metrics and every file of its
//! data directory.

mod federation;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use http::StatusCode;
use serde_json::Value;

use federation::assets::{Desk, desks, federation};
use federation::{Federation, files_under, get_json, runtime, xgate};

/// The synthetic IPS bundles of `tests/fixtures/ips`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ips")
        .join(name)
}

/// Runs `xgate medical ARGS` as `agency`; the lines it printed.
fn medical(fed: &Federation, agency: &str, args: &[&str]) -> Vec<String> {
    let pki = fed.pki().display().to_string();
    let mut all = vec!["medical", args[0], "--pki", &pki, "--as", agency];
    all.extend(["--gateway", fed.gateway.url()]);
    all.extend_from_slice(&args[1..]);
    let out = xgate().run(&all, b"").expect_ok();
    out.lines().map(str::to_owned).collect()
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).expect("one line of JSON")
}

/// The request a State Department medical officer sends to HHS.
fn request_args<'a>(subject: &'a str, incident: &'a str, name: &'a str) -> Vec<&'a str> {
    vec![
        "request",
        "--to",
        "hhs",
        "--subject",
        subject,
        "--purpose",
        "ETREAT",
        "--incident",
        incident,
        "--responder",
        name,
        "--role",
        "medical-officer",
        "--section",
        "allergies",
        "--section",
        "medications",
        "--section",
        "problems",
        "--section",
        "immunizations",
    ]
}

/// The review gauges, as `/metrics` shows them.
fn review_gauges(fed: &Federation) -> (String, String) {
    let metrics = metrics_text(fed);
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("missing")
            .to_owned()
    };
    (
        value("xgate_reviews_pending "),
        value("xgate_reviews_overdue "),
    )
}

fn metrics_text(fed: &Federation) -> String {
    let mut desk = desks(fed).into_iter().next().expect("a desk");
    runtime().block_on(async {
        let reply = desk
            .client
            .request(http::Method::GET, "/metrics", None, Vec::new())
            .await
            .expect("metrics");
        String::from_utf8(reply.body.to_vec()).expect("text")
    })
}

#[test]
fn an_emergency_request_is_granted_answered_opened_and_reviewed() {
    let fed = federation(&[]);
    let out = medical(
        &fed,
        "state",
        &request_args("hhs-mrn-000123", "INC-2026-0042", "Dr. Casey Example"),
    );
    let request = json(&out[0]);
    let jti = request["jti"].as_str().expect("jti").to_owned();
    assert_eq!(request["kind"], "medical.request");
    assert_eq!(request["request"], jti);

    // HHS sees a live break-the-glass grant, single-use, 24 hours.
    let case = json(&medical(&fed, "hhs", &["show", &jti])[0]);
    assert_eq!(case["status"], "granted", "{case}");
    assert_eq!(case["break_glass"], true);
    assert_eq!(case["grant"]["basis"], "break-glass");
    assert_eq!(case["grant"]["uses"], 1);
    let granted = case["grant"]["time"].as_i64().expect("time");
    assert_eq!(case["grant"]["expires"].as_i64(), Some(granted + 24 * 3600));
    assert!(
        case["reply_key"]["x"].is_string(),
        "the registry key, resolved: {case}"
    );
    assert_eq!(review_gauges(&fed), ("1".into(), "0".into()));

    // HHS answers with the bundle; State opens it.
    let bundle = fixture("ips-avery.json");
    let bundle_arg = bundle.display().to_string();
    let answered = json(
        &medical(
            &fed,
            "hhs",
            &["respond", "--request", &jti, "--bundle", &bundle_arg],
        )[0],
    );
    assert_eq!(answered["kind"], "medical.response");
    let response = answered["response"]
        .as_u64()
        .expect("response id")
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let opened_file = dir.path().join("bundle.json");
    let out_arg = opened_file.display().to_string();
    let opened = json(
        &medical(
            &fed,
            "state",
            &["open", "--response", &response, "--out", &out_arg],
        )[0],
    );
    assert_eq!(opened["request"], jti.as_str());
    assert_eq!(opened["from"], "hhs");
    assert_eq!(
        std::fs::read(&opened_file).expect("written"),
        std::fs::read(&bundle).expect("fixture"),
        "the bundle arrives byte for byte"
    );
    let sections = opened["summary"]["sections"].as_array().expect("sections");
    assert!(sections.len() >= 4, "{opened}");

    // The response reached state's inbox too, whole (its JWS is kept once,
    // under Ge, and the inbox record points there).
    let pki = fed.pki().display().to_string();
    let inbox = xgate()
        .run(
            &[
                "inbox",
                "--pki",
                &pki,
                "--as",
                "state",
                "--gateway",
                fed.gateway.url(),
            ],
            b"",
        )
        .expect_ok();
    let delivered: Vec<Value> = inbox.lines().map(json).collect();
    let answer = delivered
        .iter()
        .find(|d| d["kind"] == "medical.response")
        .expect("the response is delivered");
    assert_eq!(answer["body"]["request"], jti.as_str());
    assert!(
        answer["body"]["payload"]
            .as_str()
            .is_some_and(|p| p.split('.').count() == 5)
    );

    // Without --out, the bundle is the second line.
    let lines = medical(&fed, "state", &["open", "--response", &response]);
    assert_eq!(lines.len(), 2);
    assert_eq!(json(&lines[1])["resourceType"], "Bundle");

    // The receipts verify offline.
    let data = fed.data().display().to_string();
    let key = xgate()
        .run(&["log", "key", "--data-dir", &data], b"")
        .expect_ok();
    for receipt in [&request["receipt"], &answered["receipt"]] {
        let file = dir.path().join("receipt.json");
        std::fs::write(&file, receipt.to_string()).expect("write");
        let file_arg = file.display().to_string();
        let out = xgate()
            .run(
                &[
                    "audit",
                    "verify-receipt",
                    "--receipt",
                    &file_arg,
                    "--key",
                    key.trim(),
                ],
                b"",
            )
            .expect_ok();
        assert!(out.starts_with("ok: envelope "), "{out}");
    }

    // HHS's reviewer finds it in the queue and closes it.
    let queue = json(&medical(&fed, "hhs", &["reviews"])[0]);
    let items = queue["reviews"].as_array().expect("reviews");
    assert_eq!(items.len(), 1, "{queue}");
    assert_eq!(items[0]["request"], jti.as_str());
    assert_eq!(items[0]["overdue"], false);
    assert_eq!(items[0]["responses"], 1);
    let none = json(&medical(&fed, "state", &["reviews"])[0]);
    assert_eq!(
        none["reviews"].as_array().map(Vec::len),
        Some(0),
        "not the requester's queue"
    );
    let audited = json(&medical(&fed, "gao", &["reviews"])[0]);
    assert_eq!(
        audited["reviews"].as_array().map(Vec::len),
        Some(1),
        "auditors see all"
    );
    medical(
        &fed,
        "hhs",
        &[
            "review",
            "--request",
            &jti,
            "--outcome",
            "appropriate",
            "--note",
            "cardiac arrest abroad",
        ],
    );
    let queue = json(&medical(&fed, "hhs", &["reviews"])[0]);
    assert_eq!(queue["reviews"].as_array().map(Vec::len), Some(0));
    assert_eq!(review_gauges(&fed), ("0".into(), "0".into()));
    let case = json(&medical(&fed, "gao", &["show", &jti, "--requester", "state"])[0]);
    assert_eq!(case["status"], "used");
    assert_eq!(case["review"]["outcome"], "appropriate");
    assert_eq!(case["responses"].as_array().map(Vec::len), Some(1));
    federation::replays_clean(fed);
}

#[test]
fn a_bundle_without_a_section_asked_for_is_refused_before_anything_is_sent() {
    let fed = federation(&[]);
    let mut args = request_args("hhs-mrn-7", "INC-7", "Dr. Example");
    args.extend(["--section", "results"]);
    let jti = json(&medical(&fed, "state", &args)[0])["jti"]
        .as_str()
        .expect("jti")
        .to_owned();
    let mut auditor = desks(&fed).into_iter().nth(4).expect("gao");
    let mut size = || runtime().block_on(federation::log_size(&mut auditor.client));
    let before = size();
    // ips-avery has no results section: refused locally, nothing sent.
    let pki = fed.pki().display().to_string();
    let bundle = fixture("ips-avery.json").display().to_string();
    let message = xgate()
        .run(
            &[
                "medical",
                "respond",
                "--pki",
                &pki,
                "--as",
                "hhs",
                "--gateway",
                fed.gateway.url(),
                "--request",
                &jti,
                "--bundle",
                &bundle,
            ],
            b"",
        )
        .expect_error(1);
    assert!(
        message.contains("Diagnostic Results") && message.contains("not the bundle asked for"),
        "{message}"
    );
    assert_eq!(size(), before);
    // ips-jordan carries empty sections with an emptyReason, and no
    // results either; a request for what it has is answered.
    let args = [
        "request",
        "--to",
        "hhs",
        "--subject",
        "hhs-mrn-8",
        "--purpose",
        "ETREAT",
        "--incident",
        "INC-8",
        "--responder",
        "Dr. Example",
        "--role",
        "medical-officer",
        "--section",
        "allergies",
        "--section",
        "immunizations",
    ];
    let jti = json(&medical(&fed, "state", &args)[0])["jti"]
        .as_str()
        .expect("jti")
        .to_owned();
    let bundle = fixture("ips-jordan.json").display().to_string();
    let answered = json(
        &medical(
            &fed,
            "hhs",
            &["respond", "--request", &jti, "--bundle", &bundle],
        )[0],
    );
    let response = answered["response"].as_u64().expect("id").to_string();
    let out = fed.root.path().join("bundle.json").display().to_string();
    let opened = json(
        &medical(
            &fed,
            "state",
            &["open", "--response", &response, "--out", &out],
        )[0],
    );
    // --out replaces a file by a rename: a device is refused, not replaced
    // (a test once turned the machine's /dev/null into a private file).
    let pki = fed.pki().display().to_string();
    let refused = xgate().run(
        &[
            "medical",
            "open",
            "--pki",
            &pki,
            "--as",
            "state",
            "--gateway",
            fed.gateway.url(),
            "--response",
            &response,
            "--out",
            "/dev/null",
        ],
        b"",
    );
    assert!(refused.expect_error(1).contains("not a regular file"));
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(
            &std::fs::metadata("/dev/null")
                .expect("/dev/null")
                .file_type()
        ),
        "/dev/null is still the device"
    );
    let sections = opened["summary"]["sections"].as_array().expect("sections");
    assert!(
        sections
            .iter()
            .any(|s| s["section"] == "allergies" && s["empty_reason"] == true),
        "{opened}"
    );
}

#[test]
fn overdue_reviews_show_in_the_queue_and_the_metrics() {
    let fed = federation(&[("XGATE_REVIEW_DUE_SECS", "1")]);
    let out = medical(
        &fed,
        "state",
        &request_args("hhs-mrn-9", "INC-9", "Dr. Example"),
    );
    let jti = json(&out[0])["jti"].as_str().expect("jti").to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let queue = json(&medical(&fed, "hhs", &["reviews"])[0]);
    assert_eq!(queue["reviews"][0]["request"], jti.as_str());
    assert_eq!(queue["reviews"][0]["overdue"], true);
    assert_eq!(review_gauges(&fed), ("1".into(), "1".into()));
}

/// Markers that must never appear in clear outside the signed envelopes and
/// the encrypted payload.
const MARKERS: [&str; 5] = [
    "ZQX-SUBJECT-7781",
    "ZQX-INCIDENT-3390",
    "ZQX-RESPONDER-5512",
    "ZQX-PATIENT-2046",
    "ZQX-REVIEWNOTE-6604",
];

#[test]
fn no_personal_data_reaches_the_ledger_the_logs_the_metrics_or_the_data_dir() {
    let fed = federation(&[("XGATE_LOG", "debug")]);
    let [subject, incident, name, patient, note] = MARKERS;
    // The holder's bundle names the patient with a marker too.
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("marked.json");
    let text = std::fs::read_to_string(fixture("ips-avery.json")).expect("fixture");
    let marked = text.replacen("\"family\": \"", &format!("\"family\": \"{patient} "), 1);
    assert_ne!(marked, text, "the fixture has a family name to mark");
    std::fs::write(&bundle, marked).expect("write");

    let out = medical(&fed, "state", &request_args(subject, incident, name));
    let jti = json(&out[0])["jti"].as_str().expect("jti").to_owned();
    let bundle_arg = bundle.display().to_string();
    let answered = json(
        &medical(
            &fed,
            "hhs",
            &["respond", "--request", &jti, "--bundle", &bundle_arg],
        )[0],
    );
    let response = answered["response"].as_u64().expect("id").to_string();
    let lines = medical(&fed, "state", &["open", "--response", &response]);
    assert!(
        lines[1].contains(patient),
        "the requester reads the bundle in clear"
    );
    medical(
        &fed,
        "hhs",
        &[
            "review",
            "--request",
            &jti,
            "--outcome",
            "appropriate",
            "--note",
            note,
        ],
    );

    // A refused request carrying markers: its error names no value.
    let refused = xgate().run(
        &[
            "medical",
            "request",
            "--pki",
            &fed.pki().display().to_string(),
            "--as",
            "state",
            "--gateway",
            fed.gateway.url(),
            "--to",
            "hhs",
            "--subject",
            subject,
            "--purpose",
            "ETREAT",
            "--incident",
            incident,
            "--responder",
            name,
            "--role",
            "consular-officer",
            "--section",
            "allergies",
        ],
        b"",
    );
    let message = refused.expect_error(1);
    assert!(message.contains("policy_denied"), "{message}");
    let mut desks = desks(&fed);
    let [state, .., gao] = &mut desks;
    let bad = serde_json::json!({"subject": format!("{subject}\u{1}"), "purpose": "ETREAT",
        "incident": incident, "responder": {"name": name, "role": "medical-officer"},
        "sections": ["allergies"], "reply_key": {"kty": "EC", "d": subject}});
    let error = runtime().block_on(refused_message(state, bad));

    // Everything the gateway keeps or says, searched in clear.
    let entries = runtime().block_on(all_entries(gao));
    let haystacks = [
        ("the ledger entries", entries),
        ("the gateway's log output", fed.gateway.log_output()),
        ("the metrics", metrics_text(&fed)),
        ("a refusal", error + &message),
    ];
    for (what, text) in &haystacks {
        for marker in MARKERS {
            assert!(!text.contains(marker), "{marker} appears in {what}");
        }
    }
    // Every file of the data dir, byte for byte, and on PostgreSQL (the pg
    // suite, where the data dir holds only the log's key) the whole
    // database. The requester's signed request (in HHS's inbox and under Ge
    // for replay) holds the subject, incident and name sealed to HHS, and
    // the response holds the encrypted bundle: both are encrypted (JWE), so
    // none of the markers can appear, in clear or encoded (sealed.rs
    // searches the encodings too); the review's note is in its signed
    // envelope, base64url-encoded.
    let mut files = 0;
    for file in files_under(&fed.data()) {
        let bytes = std::fs::read(&file).expect("read");
        files += 1;
        for marker in MARKERS {
            assert!(
                !holds(&bytes, marker),
                "{marker} appears in clear in {}",
                file.display()
            );
        }
    }
    match xgate_tests::postgres::suite_store(&fed.data()) {
        Some(url) => {
            assert!(files >= 1, "the data dir was searched ({files} files)");
            let dump = database_dump(&url);
            for marker in MARKERS {
                assert!(
                    !holds(&dump, marker),
                    "{marker} appears in clear in the database"
                );
            }
            // The search is not vacuous: the dump holds the log's entries
            // and the envelopes, decoded.
            for expected in [
                "\"purpose\":\"ETREAT\"",
                "\"decision\":\"break-glass\"",
                "medical.request",
            ] {
                assert!(
                    holds(&dump, expected),
                    "{expected} is not in the database dump"
                );
            }
        }
        None => assert!(files > 3, "the data dir was searched ({files} files)"),
    }
}

/// Whether `marker` is in `bytes`.
fn holds(bytes: &[u8], marker: &str) -> bool {
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// A plain-text `pg_dump` of the database at `url` (the pg suite's server),
/// followed by every `bytea` value of it decoded (the dump writes them in
/// hex, where nothing would be found in clear).
fn database_dump(url: &str) -> Vec<u8> {
    let server = xgate_tests::postgres::available().expect("the pg suite's server");
    let pg_dump = server.psql_program().with_file_name("pg_dump");
    let out = std::process::Command::new(&pg_dump)
        .args(["--no-owner", "--no-privileges", "--dbname", url])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", pg_dump.display()));
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = out.stdout;
    let mut all = dump.clone();
    let mut rest = dump.as_slice();
    while let Some(at) = rest.windows(2).position(|w| w == b"\\x") {
        let hex: Vec<u8> = rest[at + 2..]
            .iter()
            .copied()
            .take_while(u8::is_ascii_hexdigit)
            .collect();
        rest = &rest[at + 2 + hex.len()..];
        let decoded: Option<Vec<u8>> = hex
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect();
        if let Some(bytes) = decoded.filter(|_| hex.len().is_multiple_of(2)) {
            all.push(b'\n');
            all.extend(bytes);
        }
    }
    all
}

async fn refused_message(desk: &mut Desk, body: Value) -> String {
    let (jws, _) = desk.sign("hhs", "medical.request", body);
    let reply = desk.post(&jws).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    String::from_utf8(reply.body.to_vec()).expect("text")
}

async fn all_entries(desk: &mut Desk) -> String {
    let size = federation::log_size(&mut desk.client).await;
    let mut all = String::new();
    for i in 0..size {
        let entry = get_json(
            &mut desk.client,
            &format!("/v1/log/entries/{i}"),
            StatusCode::OK,
        )
        .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(entry["entry"].as_str().expect("entry"))
            .expect("base64");
        all.push_str(std::str::from_utf8(&bytes).expect("entries are JSON text"));
        all.push('\n');
    }
    // The search is not vacuous: the entries hold the flow's metadata (no
    // person hash: the request is sealed, so the gateway never learns the
    // subject; sealed.rs checks that).
    for expected in [
        "\"decision\":\"break-glass\"",
        "\"purpose\":\"ETREAT\"",
        "\"outcome\":\"appropriate\"",
    ] {
        assert!(
            all.contains(expected),
            "{expected} not in the entries: {all}"
        );
    }
    assert!(size >= 3, "the flow logged its entries ({size})");
    all
}
