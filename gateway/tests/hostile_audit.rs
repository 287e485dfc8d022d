//! The hostile-input corpus, audit half: receipts, proofs and checkpoints
//! damaged in every way a careless or malicious party might, fed to
//! `xgate audit verify-receipt`. Each must exit 1 with a message naming
//! what is wrong (never 0, never a panic), while the untouched receipt
//! verifies. The log commands' own refusals are pinned in
//! `log_cli_errors.rs`.

mod federation;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::StatusCode;
use serde_json::{Value, json};

use federation::{Federation, body, id, runtime, submit, xgate};

/// A receipt for one record, and the log's verifier key.
fn receipt(fed: &Federation) -> (Value, String) {
    let signer = fed.signer("state");
    let mut client = fed.client("state");
    // A few entries first, so the receipt's proof has hashes to damage.
    for i in 0..5 {
        let jws = signer
            .sign(&id("gsa"), "record.send", body(&format!("r{i}")), 60, None)
            .expect("sign");
        runtime().block_on(submit(&mut client, &jws));
    }
    let jws = signer
        .sign(&id("treasury"), "record.send", body("audit me"), 60, None)
        .expect("sign");
    let reply = runtime().block_on(submit(&mut client, &jws));
    assert_eq!(reply.status, StatusCode::CREATED);
    let data = fed.data().display().to_string();
    let key = xgate()
        .run(&["log", "key", "--data-dir", &data], b"")
        .expect_ok();
    (
        serde_json::from_slice(&reply.body).expect("receipt"),
        key.trim().to_owned(),
    )
}

fn flip(b64: &str) -> String {
    let mut bytes = B64.decode(b64).expect("base64");
    bytes[0] ^= 1;
    B64.encode(bytes)
}

/// Every damaged variant of `good`: a name and the file's bytes.
fn variants(good: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut r = good.clone();
        f(&mut r);
        r.to_string().into_bytes()
    };
    let note = good["checkpoint"].as_str().expect("note").to_owned();
    let lines: Vec<String> = note.lines().map(str::to_owned).collect();
    let body_edit = |i: usize, to: &str| {
        let mut l = lines.clone();
        l[i] = to.to_owned();
        format!("{}\n", l.join("\n"))
    };
    let (origin, size, root) = (lines[0].clone(), lines[1].clone(), lines[2].clone());
    let signature_line = lines
        .iter()
        .position(|l| l.starts_with("\u{2014} "))
        .expect("signature");
    let forged_sig = {
        let line = &lines[signature_line];
        let (head, sig) = line.rsplit_once(' ').expect("sig");
        format!("{head} {}", flip(sig))
    };
    let mut forged_lines = lines.clone();
    forged_lines[signature_line] = forged_sig;
    let forged = format!("{}\n", forged_lines.join("\n"));
    vec![
        ("empty file", Vec::new()),
        ("not JSON", b"receipt? what receipt".to_vec()),
        ("a JSON array", b"[]".to_vec()),
        ("an unknown field", edit(&|r| r["extra"] = json!(1))),
        ("log_index a string", edit(&|r| r["log_index"] = json!("0"))),
        ("log_index negative", edit(&|r| r["log_index"] = json!(-1))),
        (
            "log_index past the tree",
            edit(&|r| r["log_index"] = json!(good["tree_size"].as_u64().unwrap_or(0) + 5)),
        ),
        (
            "another log_index",
            edit(&|r| r["log_index"] = json!(good["log_index"].as_u64().unwrap_or(0) + 1)),
        ),
        (
            "tree_size not the checkpoint's",
            edit(&|r| r["tree_size"] = json!(good["tree_size"].as_u64().unwrap_or(0) + 1)),
        ),
        (
            "tree_size u64::MAX",
            edit(&|r| r["tree_size"] = json!(u64::MAX)),
        ),
        (
            "leaf_hash flipped",
            edit(&|r| r["leaf_hash"] = json!(flip(good["leaf_hash"].as_str().unwrap_or_default()))),
        ),
        (
            "leaf_hash not base64",
            edit(&|r| r["leaf_hash"] = json!("!!!")),
        ),
        (
            "leaf_hash of 31 bytes",
            edit(&|r| r["leaf_hash"] = json!(B64.encode([0u8; 31]))),
        ),
        (
            "a proof hash flipped",
            edit(&|r| {
                r["inclusion_proof"][0] = json!(flip(
                    good["inclusion_proof"][0].as_str().unwrap_or_default()
                ))
            }),
        ),
        (
            "the proof truncated",
            edit(&|r| {
                r["inclusion_proof"].as_array_mut().map(Vec::pop);
            }),
        ),
        (
            "the proof with an extra hash",
            edit(&|r| {
                if let Some(p) = r["inclusion_proof"].as_array_mut() {
                    p.push(json!(B64.encode([7u8; 32])));
                }
            }),
        ),
        (
            "the proof empty",
            edit(&|r| r["inclusion_proof"] = json!([])),
        ),
        (
            "1,000 proof hashes",
            edit(&|r| r["inclusion_proof"] = json!(vec![B64.encode([1u8; 32]); 1000])),
        ),
        ("checkpoint empty", edit(&|r| r["checkpoint"] = json!(""))),
        (
            "checkpoint signature forged",
            edit(&|r| r["checkpoint"] = json!(forged)),
        ),
        (
            "checkpoint unsigned",
            edit(&|r| r["checkpoint"] = json!(format!("{origin}\n{size}\n{root}\n"))),
        ),
        (
            "checkpoint origin changed",
            edit(&|r| r["checkpoint"] = json!(body_edit(0, "evil.example/log"))),
        ),
        (
            "checkpoint size changed",
            edit(&|r| r["checkpoint"] = json!(body_edit(1, "999"))),
        ),
        (
            "checkpoint size not a number",
            edit(&|r| r["checkpoint"] = json!(body_edit(1, "-1"))),
        ),
        (
            "checkpoint root changed",
            edit(&|r| r["checkpoint"] = json!(body_edit(2, &B64.encode([9u8; 32])))),
        ),
        (
            "checkpoint root not base64",
            edit(&|r| r["checkpoint"] = json!(body_edit(2, "%%%"))),
        ),
        (
            "checkpoint with CRLF lines",
            edit(&|r| r["checkpoint"] = json!(note.replace('\n', "\r\n"))),
        ),
    ]
}

#[test]
fn damaged_receipts_proofs_and_checkpoints_are_refused_by_the_audit_command() {
    let fed = Federation::start();
    let (good, key) = receipt(&fed);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("receipt.json");
    let file_arg = file.display().to_string();
    let verify = |bytes: &[u8]| {
        std::fs::write(&file, bytes).expect("write");
        xgate().run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &file_arg,
                "--key",
                &key,
            ],
            b"",
        )
    };
    let ok = verify(good.to_string().as_bytes()).expect_ok();
    assert!(ok.starts_with("ok: envelope "), "{ok}");
    let variants = variants(&good);
    assert!(variants.len() >= 25);
    for (name, bytes) in variants {
        let message = verify(&bytes).expect_error(1);
        assert!(!message.trim().is_empty(), "{name}: no message");
        assert!(!message.contains("panicked"), "{name}: {message}");
    }
    // Another log's key never verifies this log's receipt.
    let other = Federation::start();
    let data = other.data().display().to_string();
    let other_key = xgate()
        .run(&["log", "key", "--data-dir", &data], b"")
        .expect_ok();
    std::fs::write(&file, good.to_string()).expect("write");
    xgate()
        .run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &file_arg,
                "--key",
                other_key.trim(),
            ],
            b"",
        )
        .expect_error(1);
}
