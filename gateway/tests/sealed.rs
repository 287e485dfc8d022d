//! End to end by default, through the real `xgate` client and a real
//! gateway (mutual TLS on loopback, sled, the committer): a record, and the
//! subject, incident and responder's name of a medical request, are signed
//! by the sender and encrypted to the recipient's registered encryption key
//! (`gateway/server/src/sealed.rs`), so the gateway's operator, who runs it from a
//! PKI directory without any agency's private key, finds them in none of
//! its files, answers or log lines, not even base64url-encoded; the
//! recipient's `xgate inbox` opens them and checks the inner signature and
//! binding against its own registry, and refuses a ciphertext lifted into
//! another envelope. A policy can require sealing (`encryption_required`);
//! by default the gateway still accepts records in clear. And `xgate
//! medical respond` takes the reply key from the signed request, never from
//! the gateway's view: a reply key swapped in the gateway's store is
//! refused and nothing is sent.

mod federation;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::StatusCode;
use josekit::jwk::Jwk;
use serde_json::{Map, Value, json};
use xgate::client::random_jti;
use xgate::seal::{self as sealed, Binding};
use xgate_ledger::StoreRead;
use xgate_ledger::{Log, OpenOptions, Store, WriteBatch};
use xgate_server::medical::jwe;
use xgate_server::medical::model::ReplyKey;
use xgate_server::medical::state::{self, Case};
use xgate_server::policy::DEFAULT_POLICY;
use xgate_server::registry::Registry;
use xgate_tests::{Gateway, Run};

use federation::{
    Federation, error_code, files_under, get_json, id, inbox_len, log_size, make_audited_pki,
    runtime, start_gateway, submit, xgate,
};

/// The agencies of these tests, and their auditor.
const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];
const AUDITORS: [&str; 1] = ["gao"];

/// A federation whose gateway runs from its own PKI directory, holding
/// only what a gateway needs (the CA certificate, the CRL, the registry and
/// its own TLS key): no agency's private signing or encryption key.
fn blind_federation() -> Federation {
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    make_audited_pki(&pki, &AGENCIES, &AUDITORS);
    let gateway_pki = root.path().join("gateway-pki");
    std::fs::create_dir_all(gateway_pki.join("gateway")).expect("mkdir");
    for file in [
        "ca.crt",
        "crl.pem",
        "registry.toml",
        "gateway/tls.crt",
        "gateway/tls.key",
    ] {
        std::fs::copy(pki.join(file), gateway_pki.join(file)).expect("copy");
    }
    let gateway_pki = gateway_pki.display().to_string();
    let gateway = Gateway::start(
        env!("CARGO_BIN_EXE_xgate"),
        &root.path().join("data"),
        &["--pki", &gateway_pki],
        &[("XGATE_LOG", "debug")],
    );
    Federation { root, gateway }
}

/// Everything of the gateway's on disk: its data and its PKI directory.
fn gateway_files(fed: &Federation) -> Vec<PathBuf> {
    let mut files = files_under(&fed.data());
    files.extend(files_under(&fed.root.path().join("gateway-pki")));
    assert!(files.len() > 5, "the search is not vacuous: {files:?}");
    files
}

/// Whether `marker` can be read in `haystack`: in clear, or base64 or
/// base64url encoded at any of the three byte alignments (a JWS payload
/// is base64url; an operator decodes it as easily as reading it).
fn readable(haystack: &[u8], marker: &str) -> bool {
    let mut forms = vec![marker.as_bytes().to_vec()];
    for pad in 0..3 {
        let bytes: Vec<u8> = std::iter::repeat_n(0u8, pad)
            .chain(marker.bytes())
            .collect();
        // Only the characters that depend on the marker's bytes alone.
        let (from, to) = ((pad * 8).div_ceil(6), (bytes.len() * 8) / 6);
        for engine in [URL_SAFE_NO_PAD, STANDARD] {
            let text = engine.encode(&bytes);
            forms.push(text.as_bytes()[from..to].to_vec());
        }
    }
    forms
        .iter()
        .any(|f| haystack.windows(f.len()).any(|w| w == f.as_slice()))
}

/// Runs `xgate COMMAND --pki --as AGENCY --gateway` with `args`.
fn run(fed: &Federation, command: &[&str], agency: &str, args: &[&str]) -> Run {
    let pki = fed.pki().display().to_string();
    let mut all: Vec<&str> = command.to_vec();
    all.extend([
        "--pki",
        &pki,
        "--as",
        agency,
        "--gateway",
        fed.gateway.url(),
    ]);
    all.extend_from_slice(args);
    xgate().run(&all, b"")
}

/// A record file holding `body`.
fn record_file(dir: &Path, name: &str, body: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body.to_string()).expect("write record");
    path.display().to_string()
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// The claims of a compact JWS, unverified, as anyone holding it reads them.
fn claims(jws: &str) -> Value {
    let payload = jws.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

/// The raw bytes of `agency`'s first inbox page, and the JWS of its items.
fn raw_inbox(fed: &Federation, agency: &str) -> (Vec<u8>, Vec<String>) {
    let mut client = fed.client(agency);
    let page = runtime().block_on(async {
        client
            .request(http::Method::GET, "/v1/inbox", None, Vec::new())
            .await
            .expect("inbox")
    });
    assert_eq!(page.status, StatusCode::OK);
    let value: Value = serde_json::from_slice(&page.body).expect("JSON");
    let jws = value["envelopes"]
        .as_array()
        .expect("envelopes")
        .iter()
        .map(|e| e["jws"].as_str().expect("jws").to_owned())
        .collect();
    (page.body.to_vec(), jws)
}

/// An agency's private encryption key, from its PKI directory.
fn encryption_key(fed: &Federation, agency: &str) -> Jwk {
    let path = fed
        .pki()
        .join(agency)
        .join(xgate_server::pki::ENCRYPTION_JWK);
    Jwk::from_bytes(std::fs::read(path).expect("read key")).expect("JWK")
}

fn registry(fed: &Federation) -> Registry {
    Registry::load(&fed.pki().join(xgate_server::pki::REGISTRY)).expect("registry")
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn records_are_sealed_end_to_end_so_the_operator_cannot_read_them() {
    let fed = blind_federation();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = "ZQX-RECORD-BODY-4471";
    let record = json!({"subject": marker, "pages": 12});
    let file = record_file(dir.path(), "record.json", &record);
    let receipt: Value = serde_json::from_str(
        &run(&fed, &["send"], "state", &["--to", "treasury", &file]).expect_ok(),
    )
    .expect("receipt");
    assert!(receipt["log_index"].is_u64(), "{receipt}");

    // What the operator has: the inbox as served, every file of the data
    // and PKI directories, the gateway's debug log. The record is in none.
    let (page, jws) = raw_inbox(&fed, "treasury");
    assert!(
        !readable(&page, marker),
        "the inbox page reveals the record"
    );
    let body = &claims(&jws[0])["body"];
    let part = body["sealed"].as_str().expect("a sealed part");
    assert_eq!(body.as_object().map(Map::len), Some(1), "{body}");
    assert_eq!(part.split('.').count(), 5, "a compact JWE");
    let header = jwe::inspect(part).expect("the JWE profile");
    let treasury = registry(&fed);
    let treasury = treasury.get(&id("treasury")).expect("treasury");
    assert_eq!(
        header.kid.as_deref(),
        treasury.encryption_key["kid"].as_str()
    );
    let private_d = encryption_key(&fed, "treasury")
        .parameter("d")
        .and_then(Value::as_str)
        .expect("d")
        .to_owned();
    for file in gateway_files(&fed) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !readable(&bytes, marker),
            "{} reveals the record",
            file.display()
        );
        assert!(
            !readable(&bytes, &private_d),
            "{} holds treasury's private key",
            file.display()
        );
    }
    assert!(!readable(fed.gateway.log_output().as_bytes(), marker));

    // Treasury's client opens it, checks it and acknowledges it.
    let lines = json_lines(&run(&fed, &["inbox"], "treasury", &["--ack"]).expect_ok());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["from"], "state");
    assert_eq!(lines[0]["sealed"], true);
    assert_eq!(lines[0]["body"], record, "the record, as sent");
    assert_eq!(lines[0]["receipt"]["log_index"], receipt["log_index"]);

    // A record in clear is still accepted by default, and the operator can
    // read it: the same search finds it, so the search above is not blind.
    let plain = "ZQX-PLAIN-BODY-9902";
    let file = record_file(dir.path(), "plain.json", &json!({"subject": plain}));
    run(
        &fed,
        &["send"],
        "state",
        &["--to", "treasury", "--plain", &file],
    )
    .expect_ok();
    let (page, _) = raw_inbox(&fed, "treasury");
    assert!(readable(&page, plain), "a record in clear is readable");
    let found = gateway_files(&fed)
        .iter()
        .any(|f| readable(&std::fs::read(f).expect("read"), plain));
    assert!(found, "the operator finds a record in clear on disk");
    let lines = json_lines(&run(&fed, &["inbox"], "treasury", &["--ack"]).expect_ok());
    assert_eq!(lines[0]["sealed"], false);
    assert_eq!(lines[0]["body"]["subject"], plain);
}

#[test]
fn a_sealed_part_lifted_into_another_envelope_is_refused_by_the_recipient() {
    let fed = Federation::start_audited(&AGENCIES, &[], &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let record = json!({"subject": "lifted", "n": 1});
    let file = record_file(dir.path(), "record.json", &record);
    run(&fed, &["send"], "state", &["--to", "treasury", &file]).expect_ok();
    let (_, jws) = raw_inbox(&fed, "treasury");
    let part = claims(&jws[0])["body"]["sealed"]
        .as_str()
        .expect("sealed")
        .to_owned();
    run(&fed, &["inbox"], "treasury", &["--ack"]).expect_ok();

    // Each envelope below is accepted by the gateway, which cannot look
    // inside; the recipient's client refuses it, naming what is wrong,
    // prints its JWS as evidence and never its content, and goes on: a
    // record sent after it is read in the same run, and `--ack` clears
    // both, so one bad envelope cannot block an inbox.
    let accepted = |from: &str, to: &str, body: Map<String, Value>, jti: &str| {
        let jws = fed
            .signer(from)
            .sign(&id(to), "record.send", body, 60, Some(jti.to_owned()))
            .expect("sign");
        let mut client = fed.client(from);
        let reply = runtime().block_on(submit(&mut client, &jws));
        assert_eq!(reply.status, StatusCode::CREATED, "{from} -> {to}");
    };
    let refused = |agency: &str, why: &str| {
        let after = record_file(dir.path(), "after.json", &json!({"subject": "after"}));
        run(&fed, &["send"], "state", &["--to", agency, &after]).expect_ok();
        let out = run(&fed, &["inbox"], agency, &["--ack"]);
        assert_eq!(out.code, Some(1), "{agency}: {}", out.stderr);
        assert!(
            out.stderr.contains("1 envelope(s) refused"),
            "{}",
            out.stderr
        );
        let lines = json_lines(&String::from_utf8(out.stdout.clone()).expect("utf-8"));
        assert_eq!(lines.len(), 2, "{lines:?}");
        let message = lines[0]["refused"].as_str().expect("refused").to_owned();
        assert!(message.contains(why), "{agency}: {message}");
        assert!(lines[0]["body"].is_null() && lines[0]["jws"].is_string());
        assert!(!message.contains("lifted"), "{message}");
        assert_eq!(lines[1]["body"]["subject"], "after", "{agency}");
        let mut client = fed.client(agency);
        assert_eq!(runtime().block_on(inbox_len(&mut client)), 0, "acked");
    };

    // The same ciphertext, resent by state under another jti.
    let sealed_body = object(json!({ "sealed": part }));
    accepted(
        "state",
        "treasury",
        sealed_body,
        &random_jti().expect("jti"),
    );
    refused("treasury", "jti");

    // Treasury decrypts it and passes state's signed record on to gsa,
    // encrypted to gsa's key, in its own envelope.
    let inner = jwe::decrypt(&part, &encryption_key(&fed, "treasury")).expect("treasury's");
    let registry = registry(&fed);
    let gsa_key = &registry.get(&id("gsa")).expect("gsa").encryption_key;
    let passed_on = jwe::encrypt_as(&inner, gsa_key, sealed::TYP).expect("encrypt");
    accepted(
        "treasury",
        "gsa",
        object(json!({ "sealed": passed_on })),
        &random_jti().expect("jti"),
    );
    refused("gsa", "inner signature");

    // State seals a record for treasury but encrypts it to hhs and sends
    // it to hhs, under the jti the sealed part names.
    let jti = random_jti().expect("jti");
    let binding = Binding {
        iss: id("state"),
        aud: id("treasury"),
        jti: jti.clone(),
        kind: xgate_server::kind::Kind::RecordSend,
    };
    let hhs_key = &registry.get(&id("hhs")).expect("hhs").encryption_key;
    let misaddressed =
        sealed::seal(&fed.signer("state"), hhs_key, &binding, object(record)).expect("seal");
    accepted(
        "state",
        "hhs",
        object(json!({ "sealed": misaddressed })),
        &jti,
    );
    refused("hhs", "aud (recipient)");
}

#[test]
fn a_policy_requiring_encryption_refuses_what_comes_in_clear_and_keeps_nothing() {
    let policy_dir = tempfile::tempdir().expect("tempdir");
    let policy = policy_dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!("{DEFAULT_POLICY}\n[encryption]\nrequired_for = [\"treasury\", \"hhs\"]\n"),
    )
    .expect("write policy");
    let policy = policy.display().to_string();
    let fed = Federation::start_audited(&AGENCIES, &AUDITORS, &[("XGATE_POLICY", &policy)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = record_file(dir.path(), "record.json", &json!({"subject": "clear"}));
    let snapshot = || runtime().block_on(federation::snapshot(&fed, &["treasury", "hhs", "gao"]));
    let before = snapshot();

    // A record in clear to treasury: refused with the code, nothing kept.
    let message = run(
        &fed,
        &["send"],
        "state",
        &["--to", "treasury", "--plain", &file],
    )
    .expect_error(1);
    assert!(message.contains("(403 encryption_required)"), "{message}");
    assert!(
        message.contains("treasury takes record.send only sealed"),
        "{message}"
    );
    let jws = fed
        .signer("state")
        .sign(
            &id("treasury"),
            "record.send",
            object(json!({"a": 1})),
            60,
            None,
        )
        .expect("sign");
    let mut client = fed.client("state");
    let reply = runtime().block_on(submit(&mut client, &jws));
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&reply), "encryption_required");

    // A medical request in clear to hhs: the same.
    let request = |extra: &[&str]| {
        let mut args = vec![
            "--to",
            "hhs",
            "--subject",
            "hhs-mrn-1",
            "--purpose",
            "ETREAT",
            "--incident",
            "INC-1",
            "--responder",
            "Dr. Example",
            "--role",
            "medical-officer",
            "--section",
            "allergies",
        ];
        args.extend_from_slice(extra);
        run(&fed, &["medical", "request"], "state", &args)
    };
    let message = request(&["--plain"]).expect_error(1);
    assert!(message.contains("(403 encryption_required)"), "{message}");
    assert_eq!(snapshot(), before, "a refusal keeps nothing");

    // Sealed, both are accepted; a record in clear to gsa still is.
    run(&fed, &["send"], "state", &["--to", "treasury", &file]).expect_ok();
    request(&[]).expect_ok();
    run(&fed, &["send"], "state", &["--to", "gsa", "--plain", &file]).expect_ok();
    let lines = json_lines(&run(&fed, &["inbox"], "gsa", &[]).expect_ok());
    assert_eq!((lines.len(), &lines[0]["sealed"]), (1, &json!(false)));
}

/// Markers in every personal field of a medical request.
const SUBJECT: &str = "ZQX-SUBJECT-5120";
const INCIDENT: &str = "ZQX-INCIDENT-7734";
const NAME: &str = "ZQX-RESPONDER-2291";

fn medical_request(fed: &Federation) -> String {
    let out = run(
        fed,
        &["medical", "request"],
        "state",
        &[
            "--to",
            "hhs",
            "--subject",
            SUBJECT,
            "--purpose",
            "ETREAT",
            "--incident",
            INCIDENT,
            "--responder",
            NAME,
            "--role",
            "medical-officer",
            "--section",
            "allergies",
            "--section",
            "medications",
        ],
    )
    .expect_ok();
    json_lines(&out)[0]["jti"].as_str().expect("jti").to_owned()
}

fn bundle() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ips/ips-avery.json")
        .display()
        .to_string()
}

#[test]
fn medical_requests_are_sealed_to_the_holder_whose_client_reads_them() {
    let fed = blind_federation();
    let jti = medical_request(&fed);

    // The gateway decides on what it sees (purpose, role, sections) ...
    let mut hhs = fed.client("hhs");
    let path = format!("/v1/medical/requests/{jti}");
    let case = runtime().block_on(get_json(&mut hhs, &path, StatusCode::OK));
    assert_eq!(case["break_glass"], true, "{case}");
    assert_eq!(
        (&case["purpose"], &case["role"]),
        (&json!("ETREAT"), &json!("medical-officer"))
    );
    let body = &claims(case["jws"].as_str().expect("the signed request"))["body"];
    for field in ["subject", "incident"] {
        assert!(body.get(field).is_none(), "{field} in clear: {body}");
    }
    assert!(body["responder"].get("name").is_none(), "{body}");
    assert!(body["sealed"].is_string(), "{body}");

    // ... and the personal fields are nowhere the operator looks.
    let mut gao = fed.client("gao");
    let size = runtime().block_on(log_size(&mut gao));
    let mut entries = String::new();
    for i in 0..size {
        let entry = runtime().block_on(get_json(
            &mut gao,
            &format!("/v1/log/entries/{i}"),
            StatusCode::OK,
        ));
        let bytes = STANDARD
            .decode(entry["entry"].as_str().expect("entry"))
            .expect("base64");
        entries.push_str(std::str::from_utf8(&bytes).expect("text"));
    }
    assert!(entries.contains("\"purpose\":\"ETREAT\""), "{entries}");
    assert!(
        !entries.contains("\"person\""),
        "no subject, so no person hash: {entries}"
    );
    let (page, _) = raw_inbox(&fed, "hhs");
    let shown = [
        ("the case view", serde_json::to_vec(&case).expect("json")),
        ("the holder's inbox page", page),
        ("the log entries", entries.into_bytes()),
        ("the gateway's log", fed.gateway.log_output().into_bytes()),
    ];
    for (what, bytes) in &shown {
        for marker in [SUBJECT, INCIDENT, NAME] {
            assert!(!readable(bytes, marker), "{marker} in {what}");
        }
    }
    for file in gateway_files(&fed) {
        let bytes = std::fs::read(&file).expect("read");
        for marker in [SUBJECT, INCIDENT, NAME] {
            assert!(!readable(&bytes, marker), "{marker} in {}", file.display());
        }
    }

    // The holder's client opens them.
    let lines = json_lines(&run(&fed, &["inbox"], "hhs", &[]).expect_ok());
    let request = lines
        .iter()
        .find(|l| l["kind"] == "medical.request")
        .expect("the request is delivered");
    assert_eq!(request["sealed"], true);
    assert_eq!(request["body"]["subject"], SUBJECT);
    assert_eq!(request["body"]["incident"], INCIDENT);
    assert_eq!(request["body"]["responder"]["name"], NAME);
    assert_eq!(request["body"]["responder"]["role"], "medical-officer");
    assert!(request["body"].get("sealed").is_none());

    // The flow goes on as before, and replays to the same state.
    let bundle = bundle();
    let answered = run(
        &fed,
        &["medical", "respond"],
        "hhs",
        &["--request", &jti, "--bundle", &bundle],
    )
    .expect_ok();
    let response = json_lines(&answered)[0]["response"]
        .as_u64()
        .expect("response id")
        .to_string();
    let out = fed.root.path().join("bundle.json").display().to_string();
    let opened = run(
        &fed,
        &["medical", "open"],
        "state",
        &["--response", &response, "--out", &out],
    )
    .expect_ok();
    assert_eq!(json_lines(&opened)[0]["request"], jti.as_str());
    federation::replays_clean(fed);
}

#[test]
fn respond_refuses_a_reply_key_the_gateway_swapped_in_its_store() {
    let fed = Federation::start_audited(&AGENCIES, &AUDITORS, &[]);
    let jti = medical_request(&fed);

    // The operator stops the gateway, puts its own key in the stored case,
    // and starts it again.
    let Federation { root, gateway } = fed;
    gateway.stop();
    let mut operator = Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256).expect("key");
    operator.set_key_id("operator-1");
    let mut public = operator.to_public_key().expect("public");
    public.set_key_id("operator-1");
    {
        let log = Log::open_existing(&root.path().join("data"), &OpenOptions::default())
            .expect("the gateway's log");
        let key = state::case_key(&id("state"), &jti);
        let stored = log.store().get(&key).expect("read").expect("the case");
        let mut case: Case = serde_json::from_slice(stored.as_ref()).expect("a case");
        case.reply_key = ReplyKey::Jwk(public.as_ref().clone());
        let mut batch = WriteBatch::new();
        batch.put(key, serde_json::to_vec(&case).expect("json"));
        log.store().apply(batch).expect("write");
        log.store().sync().expect("sync");
    }
    let gateway = start_gateway(root.path(), &[], &[]);
    let fed = Federation { root, gateway };
    let mut hhs = fed.client("hhs");
    let path = format!("/v1/medical/requests/{jti}");
    let view = runtime().block_on(get_json(&mut hhs, &path, StatusCode::OK));
    assert_eq!(
        view["reply_key"]["kid"], "operator-1",
        "the view is swapped"
    );
    let before = runtime().block_on(log_size(&mut hhs));

    // HHS's client refuses: the signed request names state's key.
    let bundle = bundle();
    let message = run(
        &fed,
        &["medical", "respond"],
        "hhs",
        &["--request", &jti, "--bundle", &bundle],
    )
    .expect_error(1);
    assert!(
        message.contains("differs from the signed request in reply_key"),
        "{message}"
    );
    assert_eq!(
        runtime().block_on(log_size(&mut hhs)),
        before,
        "nothing was sent"
    );
    // So does an approval, and the requester's own reading of the case.
    let message = run(&fed, &["medical", "approve"], "hhs", &["--request", &jti]).expect_error(1);
    assert!(message.contains("reply_key"), "{message}");
}
