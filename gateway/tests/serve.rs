//! `xgate serve` end to end, over real mutual TLS on loopback: the happy
//! path, receipts that verify with the ledger's own functions, the log read
//! API, HTTP/1.1 and HTTP/2, concurrent senders, and a clean shutdown.

mod federation;

use federation::{Federation, body, get_json, id, inbox_len, log_size, runtime, submit, xgate};
use http::{Method, StatusCode};
use serde_json::Value;
use xgate::client::Protocol;
use xgate_ledger::{leaf_hash, verify_checkpoint};
use xgate_server::receipt::Receipt;

#[test]
fn send_inbox_ack_and_a_receipt_that_verifies_offline() {
    let fed = Federation::start();
    let rt = runtime();
    let mut state = fed.client("state");
    let mut treasury = fed.client("treasury");
    let jws = fed
        .signer("state")
        .sign(&id("treasury"), "record.send", body("hello"), 60, None)
        .expect("sign");
    let reply = rt.block_on(submit(&mut state, &jws));
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let raw: Value = serde_json::from_slice(&reply.body).expect("json");
    let keys: Vec<&str> = raw
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "log_index",
            "tree_size",
            "leaf_hash",
            "inclusion_proof",
            "checkpoint",
            "entry"
        ],
        "receipt fields, in contract order"
    );
    let receipt: Receipt = serde_json::from_slice(&reply.body).expect("receipt");
    assert_eq!(receipt.log_index, 0);

    // Offline: the checkpoint is signed by the log's key, the proof leads
    // to its root, and the leaf is the hash of the entry the log serves.
    let key = fed.log_key();
    let checkpoint = receipt.verify(&key).expect("receipt verifies");
    assert_eq!(checkpoint.size, receipt.tree_size);
    verify_checkpoint(&receipt.checkpoint, &key).expect("checkpoint");
    let entry = rt.block_on(get_json(&mut state, "/v1/log/entries/0", StatusCode::OK));
    let entry_bytes = base64_decode(entry["entry"].as_str().expect("entry"));
    assert_eq!(
        base64_encode(leaf_hash(&entry_bytes).as_bytes()),
        receipt.leaf_hash
    );
    let entry_json: Value = serde_json::from_slice(&entry_bytes).expect("entry is JSON");
    assert_eq!(entry_json["iss"], "state");
    assert_eq!(entry_json["aud"], "treasury");
    assert_eq!(entry_json["envelope"], receipt.id.as_str());
    assert!(
        !String::from_utf8_lossy(&entry_bytes).contains("hello"),
        "the body never reaches the log"
    );

    // The same receipt through the command line.
    let file = fed.root.path().join("receipt.json");
    std::fs::write(&file, &reply.body).expect("write receipt");
    let out = xgate()
        .run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &file.display().to_string(),
                "--key",
                &key.to_string(),
            ],
            b"",
        )
        .expect_ok();
    assert!(out.starts_with("ok: envelope "), "{out}");
    // A receipt whose leaf was changed, or checked with another log's key,
    // fails with one clear line.
    let mut forged: Value = serde_json::from_slice(&reply.body).expect("json");
    forged["leaf_hash"] = Value::String(base64_encode(&[7u8; 32]));
    let forged_file = fed.root.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).expect("write");
    let msg = xgate()
        .run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &forged_file.display().to_string(),
                "--key",
                &key.to_string(),
            ],
            b"",
        )
        .expect_error(1);
    assert!(msg.contains("entry does not hash to leaf_hash"), "{msg}");
    let other = xgate_ledger::NoteSigner::generate("localhost/xgate").expect("key");
    let msg = xgate()
        .run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &file.display().to_string(),
                "--key",
                &other.verifier().to_string(),
            ],
            b"",
        )
        .expect_error(1);
    assert!(msg.contains("checkpoint does not verify"), "{msg}");

    // Delivery: the recipient sees it, the sender does not; ack removes it.
    let page = rt.block_on(get_json(&mut treasury, "/v1/inbox", StatusCode::OK));
    let items = page["envelopes"].as_array().expect("envelopes");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], receipt.id.as_str());
    assert_eq!(items[0]["from"], "state");
    assert_eq!(items[0]["jws"], jws.as_str());
    assert_eq!(rt.block_on(inbox_len(&mut state)), 0);
    let other = rt.block_on(fed.client("gsa").request(
        Method::POST,
        &format!("/v1/inbox/{}/ack", receipt.id),
        None,
        Vec::new(),
    ));
    assert_eq!(
        other.expect("reply").status,
        StatusCode::NOT_FOUND,
        "not gsa's"
    );
    let ack = rt
        .block_on(treasury.request(
            Method::POST,
            &format!("/v1/inbox/{}/ack", receipt.id),
            None,
            Vec::new(),
        ))
        .expect("ack");
    assert_eq!(ack.status, StatusCode::OK);
    assert_eq!(rt.block_on(inbox_len(&mut treasury)), 0);
    let again = rt
        .block_on(treasury.request(
            Method::POST,
            &format!("/v1/inbox/{}/ack", receipt.id),
            None,
            Vec::new(),
        ))
        .expect("ack again");
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[test]
fn a_list_of_envelopes_is_acknowledged_in_one_request() {
    let fed = Federation::start();
    let rt = runtime();
    let mut state = fed.client("state");
    let mut treasury = fed.client("treasury");
    let mut send = |to: &str, text: &str| {
        let jws = fed
            .signer("state")
            .sign(&id(to), "record.send", body(text), 60, None)
            .expect("sign");
        let reply = rt.block_on(submit(&mut state, &jws));
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        serde_json::from_slice::<Receipt>(&reply.body)
            .expect("receipt")
            .id
    };
    let [one, two, three] = ["one", "two", "three"].map(|t| send("treasury", t));
    let gsas = send("gsa", "not treasury's");
    let ack = |client: &mut xgate::client::Client, content_type: &str, body: &str| {
        let reply = rt
            .block_on(client.request(
                Method::POST,
                "/v1/inbox/ack",
                Some(content_type),
                body.as_bytes().to_vec(),
            ))
            .expect("reply");
        let json: Value = serde_json::from_slice(&reply.body).expect("json body");
        (reply.status, json)
    };

    // Refused whole, and nothing removed: each with its status and code.
    let many = serde_json::json!({ "ids": vec![one.clone(); 101] }).to_string();
    let refused = [
        (
            "text/plain",
            format!(r#"{{"ids":["{one}"]}}"#),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            r#"{"ids":[]}"#.to_owned(),
            400,
            "malformed",
        ),
        ("application/json", many, 400, "malformed"),
        (
            "application/json",
            format!(r#"{{"ids":["{one}"],"ids":[]}}"#),
            400,
            "malformed",
        ),
        (
            "application/json",
            format!(r#"{{"ids":["{one}"],"all":true}}"#),
            400,
            "malformed",
        ),
        (
            "application/json",
            r#"{"ids":[1,2]}"#.to_owned(),
            400,
            "malformed",
        ),
        (
            "application/json",
            format!(r#"["{one}"]"#),
            400,
            "malformed",
        ),
        ("application/json", "{".to_owned(), 400, "malformed"),
    ];
    for (content_type, request, status, code) in refused {
        let (got, reply) = ack(&mut treasury, content_type, &request);
        assert_eq!(got.as_u16(), status, "{request:.80}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{request:.80}");
    }
    assert_eq!(rt.block_on(inbox_len(&mut treasury)), 3, "nothing removed");

    // Someone else's id, a repeat and a non-id are unknown; the rest go.
    let list = serde_json::json!({ "ids": [&one, &gsas, &two, &one, "../x"] }).to_string();
    let (status, reply) = ack(&mut treasury, "application/json; charset=utf-8", &list);
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply,
        serde_json::json!({ "acked": [&one, &two], "unknown": [&gsas, &one, "../x"] })
    );
    let page = rt.block_on(get_json(&mut treasury, "/v1/inbox", StatusCode::OK));
    assert_eq!(page["envelopes"][0]["id"], three.as_str());
    assert_eq!(rt.block_on(inbox_len(&mut treasury)), 1);
    let mut gsa = fed.client("gsa");
    assert_eq!(rt.block_on(inbox_len(&mut gsa)), 1, "gsa's is untouched");

    // A retried list is answered, not refused: what is gone is unknown.
    let (status, reply) = ack(&mut treasury, "application/json", &list);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["acked"], serde_json::json!([]));
    let (status, _) = ack(
        &mut treasury,
        "application/json",
        &format!(r#"{{"ids":["{three}"]}}"#),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rt.block_on(inbox_len(&mut treasury)), 0);
    let wrong_method = rt
        .block_on(treasury.request(Method::GET, "/v1/inbox/ack", None, Vec::new()))
        .expect("reply");
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn the_cli_sends_lists_and_acknowledges() {
    let fed = Federation::start();
    let file = fed.root.path().join("record.json");
    std::fs::write(&file, br#"{"subject":"quarterly report"}"#).expect("write");
    let pki = fed.pki().display().to_string();
    let url = fed.gateway.url().to_owned();
    let receipt = xgate()
        .run(
            &[
                "send",
                "--pki",
                &pki,
                "--as",
                "state",
                "--to",
                "gsa",
                "--gateway",
                &url,
                &file.display().to_string(),
            ],
            b"",
        )
        .expect_ok();
    let receipt: Receipt = serde_json::from_str(receipt.trim()).expect("receipt");
    let listed = xgate()
        .run(
            &[
                "inbox",
                "--pki",
                &pki,
                "--as",
                "gsa",
                "--gateway",
                &url,
                "--ack",
            ],
            b"",
        )
        .expect_ok();
    let lines: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], receipt.id.as_str());
    assert_eq!(lines[0]["body"]["subject"], "quarterly report");
    let empty = xgate()
        .run(
            &["inbox", "--pki", &pki, "--as", "gsa", "--gateway", &url],
            b"",
        )
        .expect_ok();
    assert_eq!(empty, "", "acknowledged");

    // A refusal is one clear line naming the code.
    let msg = xgate()
        .run(
            &[
                "send",
                "--pki",
                &pki,
                "--as",
                "state",
                "--to",
                "state",
                "--gateway",
                &url,
                &file.display().to_string(),
            ],
            b"",
        )
        .expect_error(1);
    assert!(msg.contains("wrong_audience"), "{msg}");

    // A body that is not one JSON object is refused before anything is sent.
    let not_object = fed.root.path().join("list.json");
    std::fs::write(&not_object, b"[1, 2]").expect("write");
    let msg = xgate()
        .run(
            &[
                "send",
                "--pki",
                &pki,
                "--as",
                "state",
                "--to",
                "gsa",
                "--gateway",
                &url,
                &not_object.display().to_string(),
            ],
            b"",
        )
        .expect_error(1);
    assert!(msg.contains("does not hold one JSON object"), "{msg}");
    let mut probe = fed.client("state");
    assert_eq!(
        runtime().block_on(log_size(&mut probe)),
        1,
        "only the first send"
    );
}

#[test]
fn the_log_api_matches_the_log_commands() {
    let fed = Federation::start();
    let rt = runtime();
    let mut state = fed.client("state");
    let signer = fed.signer("state");
    for i in 0..5 {
        let jws = signer
            .sign(
                &id("treasury"),
                "record.send",
                body(&format!("r{i}")),
                60,
                None,
            )
            .expect("sign");
        assert_eq!(
            rt.block_on(submit(&mut state, &jws)).status,
            StatusCode::CREATED
        );
    }
    let inclusion = rt.block_on(get_json(
        &mut state,
        "/v1/log/proof/inclusion?index=2&size=5",
        StatusCode::OK,
    ));
    let consistency = rt.block_on(get_json(
        &mut state,
        "/v1/log/proof/consistency?from=3&to=5",
        StatusCode::OK,
    ));
    let entry = rt.block_on(get_json(&mut state, "/v1/log/entries/4", StatusCode::OK));
    let out_of_range = rt.block_on(get_json(
        &mut state,
        "/v1/log/proof/inclusion?index=9&size=5",
        StatusCode::NOT_FOUND,
    ));
    assert_eq!(out_of_range["error"]["code"], "not_found");
    let bad = rt.block_on(get_json(
        &mut state,
        "/v1/log/proof/consistency?from=x",
        StatusCode::BAD_REQUEST,
    ));
    assert_eq!(bad["error"]["code"], "malformed");
    let checkpoint = rt.block_on(federation::checkpoint_note(&mut state));
    verify_checkpoint(&checkpoint, &fed.log_key()).expect("signed");

    // Stop the gateway, then ask the command line the same questions.
    // (The client goes first: an idle HTTP/2 connection whose peer is not
    // running would hold the graceful shutdown to its deadline.)
    drop(state);
    drop(rt);
    let data = fed.data().display().to_string();
    let Federation { root, gateway } = fed;
    assert_eq!(gateway.stop(), Some(0), "clean shutdown");
    let run = |args: &[&str]| -> Value {
        let mut all = vec!["log"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", &data]);
        serde_json::from_str(&xgate().run(&all, b"").expect_ok()).expect("json")
    };
    assert_eq!(
        run(&["inclusion", "--index", "2", "--size", "5"]),
        inclusion
    );
    assert_eq!(
        run(&["consistency", "--from", "3", "--to", "5"]),
        consistency
    );
    assert_eq!(run(&["entry", "--index", "4"]), entry);
    let verify = xgate()
        .run(&["log", "verify", "--data-dir", &data], b"")
        .expect_ok();
    assert!(verify.starts_with("ok: 5 entries"), "{verify}");
    // A clean stop leaves the copy outside the database at the latest
    // checkpoint: on the embedded store (on PostgreSQL, pg_suite, the
    // database holds it and the data directory only the key).
    let latest = xgate()
        .run(&["log", "checkpoint", "--data-dir", &data], b"")
        .expect_ok();
    if xgate_tests::postgres::known_suite_store(std::path::Path::new(&data)).is_none() {
        let copy = std::fs::read_to_string(std::path::Path::new(&data).join("checkpoint"))
            .expect("checkpoint copy");
        assert_eq!(copy, latest);
    }
    assert!(latest.starts_with("localhost/xgate\n5\n"), "{latest}");
    drop(root);
}

#[test]
fn http1_and_http2_both_work() {
    let fed = Federation::start();
    let rt = runtime();
    for (protocol, h2) in [(Protocol::Auto, true), (Protocol::Http1, false)] {
        let mut client = fed.client_with("state", protocol);
        let jws = fed
            .signer("state")
            .sign(&id("gsa"), "record.send", body("x"), 60, None)
            .expect("sign");
        let reply = rt.block_on(submit(&mut client, &jws));
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.http2, h2, "{protocol:?}");
    }
}

#[test]
fn sixty_four_concurrent_senders_get_distinct_valid_receipts() {
    let fed = Federation::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let key = fed.log_key();
    let agencies = ["state", "treasury", "gsa"];
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let from = agencies[i % 3];
            let to = agencies[(i + 1) % 3];
            let mut client = fed.client(from);
            let jws = fed
                .signer(from)
                .sign(&id(to), "record.send", body(&format!("c{i}")), 60, None)
                .expect("sign");
            rt.spawn(async move { submit(&mut client, &jws).await })
        })
        .collect();
    let mut indices = std::collections::BTreeSet::new();
    for task in tasks {
        let reply = rt.block_on(task).expect("task");
        assert_eq!(reply.status, StatusCode::CREATED);
        let receipt: Receipt = serde_json::from_slice(&reply.body).expect("receipt");
        receipt.verify(&key).expect("verifies");
        assert!(
            indices.insert(receipt.log_index),
            "index {} twice",
            receipt.log_index
        );
    }
    assert_eq!(indices, (0..64).collect());
    let mut probe = fed.client("state");
    assert_eq!(rt.block_on(log_size(&mut probe)), 64);
}

#[test]
fn healthz_and_metrics_answer() {
    let fed = Federation::start();
    let rt = runtime();
    let mut client = fed.client("state");
    let health = rt
        .block_on(client.request(Method::GET, "/healthz", None, Vec::new()))
        .expect("healthz");
    assert_eq!(health.status, StatusCode::OK);
    let jws = fed
        .signer("state")
        .sign(&id("gsa"), "record.send", body("m"), 60, None)
        .expect("sign");
    rt.block_on(submit(&mut client, &jws));
    rt.block_on(submit(&mut client, &jws));
    let metrics = rt
        .block_on(client.request(Method::GET, "/metrics", None, Vec::new()))
        .expect("metrics");
    let text = String::from_utf8(metrics.body.to_vec()).expect("utf-8");
    for needle in [
        "xgate_envelopes_total{kind=\"record.send\",outcome=\"accepted\"} 1",
        "xgate_envelopes_total{kind=\"record.send\",outcome=\"replayed\"} 1",
        "xgate_rejections_total{code=\"replayed\"} 1",
        "xgate_replay_attempts_total 1",
        "xgate_log_size 1",
        "xgate_append_seconds_count 1",
        "xgate_open_connections 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn the_inbox_pages_oldest_first() {
    let fed = Federation::start_with(&[], &[("XGATE_INBOX_PAGE", "2")]);
    let rt = runtime();
    let mut state = fed.client("state");
    let mut gsa = fed.client("gsa");
    let signer = fed.signer("state");
    let mut ids = Vec::new();
    for i in 0..5 {
        let jws = signer
            .sign(&id("gsa"), "record.send", body(&format!("p{i}")), 60, None)
            .expect("sign");
        let reply = rt.block_on(submit(&mut state, &jws));
        let receipt: Receipt = serde_json::from_slice(&reply.body).expect("receipt");
        ids.push(receipt.id);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/inbox".to_owned();
    loop {
        let page = rt.block_on(get_json(&mut gsa, &path, StatusCode::OK));
        let items = page["envelopes"].as_array().expect("envelopes");
        assert!(items.len() <= 2, "pages hold at most inbox_page");
        seen.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_u64() {
            Some(after) => path = format!("/v1/inbox?after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every envelope once, oldest first");
    let one = rt.block_on(get_json(&mut gsa, "/v1/inbox?limit=1", StatusCode::OK));
    assert_eq!(one["envelopes"].as_array().map(Vec::len), Some(1));
}

#[test]
fn the_checkpoint_command_answers_while_the_gateway_runs() {
    let fed = Federation::start();
    let rt = runtime();
    let mut state = fed.client("state");
    let jws = fed
        .signer("state")
        .sign(&id("gsa"), "record.send", body("c"), 60, None)
        .expect("sign");
    assert_eq!(
        rt.block_on(submit(&mut state, &jws)).status,
        StatusCode::CREATED
    );
    let data = fed.data().display().to_string();
    // The published copy is refreshed at least once a second (until the
    // first publication there is none: "no signed checkpoint yet").
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let run = xgate().run(&["log", "checkpoint", "--data-dir", &data], b"");
        if run.code == Some(1) && run.stderr.contains("no signed checkpoint yet") {
            assert!(std::time::Instant::now() < deadline, "never published");
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        let out = run.expect_ok();
        let checkpoint = verify_checkpoint(&out, &fed.log_key()).expect("signed");
        if checkpoint.size == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "checkpoint stuck at {}",
            checkpoint.size
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn concurrent_acks_of_one_envelope_succeed_once() {
    let fed = Federation::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut state = fed.client("state");
    let jws = fed
        .signer("state")
        .sign(&id("gsa"), "record.send", body("once"), 60, None)
        .expect("sign");
    let receipt: Receipt =
        serde_json::from_slice(&rt.block_on(submit(&mut state, &jws)).body).expect("receipt");
    let acks: Vec<_> = (0..8)
        .map(|_| {
            let mut gsa = fed.client("gsa");
            let path = format!("/v1/inbox/{}/ack", receipt.id);
            rt.spawn(async move {
                gsa.request(Method::POST, &path, None, Vec::new())
                    .await
                    .expect("reply")
                    .status
            })
        })
        .collect();
    let statuses: Vec<StatusCode> = acks
        .into_iter()
        .map(|a| rt.block_on(a).expect("task"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::NOT_FOUND)
    );
}

#[test]
fn one_envelope_submitted_sixteen_times_at_once_is_accepted_once() {
    let fed = Federation::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let jws = fed
        .signer("state")
        .sign(&id("gsa"), "record.send", body("twice?"), 60, None)
        .expect("sign");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let mut client = fed.client("state");
            let jws = jws.clone();
            rt.spawn(async move { submit(&mut client, &jws).await })
        })
        .collect();
    let replies: Vec<_> = tasks
        .into_iter()
        .map(|t| rt.block_on(t).expect("task"))
        .collect();
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(federation::error_code(reply), "replayed");
    }
    let mut probe = fed.client("state");
    assert_eq!(rt.block_on(log_size(&mut probe)), 1);
}
