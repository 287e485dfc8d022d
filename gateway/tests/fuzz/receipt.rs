//! Receipts as `xgate audit verify-receipt` reads them: a real receipt
//! from a real log, mutated as JSON and as bytes, run through the command
//! itself. Nothing panics, and nothing verifies that states something the
//! log does not.

use std::path::PathBuf;
use std::sync::LazyLock;

use clap::Parser as _;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use xgate::cli::Cli;
use xgate_ledger::{Log, OpenOptions};
use xgate_server::receipt::Receipt;

use crate::check;
use crate::mutate::{
    ByteEdit, JsonEdit, apply_bytes, apply_json, byte_edits, corpus, json_corpus, json_edits,
};

/// A log of 9 entries, the receipt of entry 3 against its checkpoint, the
/// log's verifier key, and the line a valid receipt prints.
struct World {
    dir: tempfile::TempDir,
    receipt: Value,
    key: String,
    ok_line: String,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create_or_open(&dir.path().join("log"), &OpenOptions::default()).expect("log");
    // Gateway entries (docs/ledger.md), each logging its own envelope id.
    let id = |i: usize| format!("{i:x}").repeat(64)[..64].to_owned();
    let entries: Vec<String> = (0..9)
        .map(|i| {
            format!(
                r#"{{"aud":"treasury","decision":"allow","envelope":"{}","iss":"state","jti":"j{i}","kind":"record.send","policy":"{}","time":1,"v":1}}"#,
                id(i),
                "cd".repeat(32)
            )
        })
        .collect();
    log.append_batch(&entries).expect("append");
    let checkpoint = log.checkpoint().expect("checkpoint");
    let receipt = Receipt::build(&log, id(3), 3, &checkpoint).expect("receipt");
    let key = log.verifier().to_string();
    drop(log);
    let mut world = World {
        dir,
        receipt: serde_json::to_value(&receipt).expect("json"),
        key,
        ok_line: String::new(),
    };
    world.ok_line = verify(&world, &serde_json::to_vec(&world.receipt).expect("json"))
        .expect("the real receipt verifies");
    world
});

/// Runs `xgate audit verify-receipt` on `bytes`: the `ok:` line, or the
/// error.
fn verify(world: &World, bytes: &[u8]) -> Result<String, String> {
    // One file per thread: the test harness runs tests in parallel.
    let path: PathBuf = world
        .dir
        .path()
        .join(format!("receipt-{:?}.json", std::thread::current().id()));
    std::fs::write(&path, bytes).expect("write");
    let args = ["xgate", "audit", "verify-receipt", "--receipt"];
    let cli = Cli::try_parse_from(args.iter().copied().chain([
        path.to_str().expect("utf-8"),
        "--key",
        &world.key,
    ]))
    .expect("arguments");
    let mut out = Vec::new();
    cli.run(&mut std::io::empty(), &mut out)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

/// The part of an `ok:` line the proof backs: entry, origin and size (the
/// `id` is bound through the entry, see the regression test below).
fn proven(line: &str) -> &str {
    line.split_once(" is entry ").map_or(line, |(_, rest)| rest)
}

/// Receipt edits: JSON edits anywhere but `id`, and byte edits.
#[derive(Clone, Debug)]
enum Edit {
    Json(Vec<JsonEdit>),
    Bytes(Vec<ByteEdit>),
    /// One field set to a value taken from elsewhere in the receipt.
    Field(Index, Index),
    /// Nested under `receipt`, as `xgate asset` prints it.
    Nest,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => json_edits(3).prop_map(Edit::Json),
        3 => byte_edits(4).prop_map(Edit::Bytes),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Field(a, b)),
        1 => Just(Edit::Nest),
    ]
}

const FIELDS: [&str; 5] = [
    "log_index",
    "tree_size",
    "leaf_hash",
    "inclusion_proof",
    "checkpoint",
];

fn apply(receipt: &Value, edits: &[Edit]) -> Vec<u8> {
    let mut value = receipt.clone();
    let mut bytes = Vec::new();
    for edit in edits {
        match edit {
            Edit::Json(edits) => {
                let id = value.get("id").cloned();
                value = apply_json(&value, edits);
                if let (Some(object), Some(id)) = (value.as_object_mut(), id) {
                    object.insert("id".into(), id);
                }
            }
            Edit::Bytes(edits) => bytes.extend(edits.iter().cloned()),
            Edit::Field(a, b) => {
                let (to, from) = (FIELDS[a.index(5)], FIELDS[b.index(5)]);
                let v = value.get(from).cloned().unwrap_or(Value::Null);
                let v = match (v, to) {
                    (Value::Array(a), "leaf_hash") => a.first().cloned().unwrap_or(Value::Null),
                    (Value::Number(n), "log_index" | "tree_size") => {
                        json!(n.as_u64().map(|n| n + 1))
                    }
                    (v, _) => v,
                };
                if let Some(object) = value.as_object_mut() {
                    object.insert(to.into(), v);
                }
            }
            Edit::Nest => value = json!({"kind": "asset.register", "receipt": value}),
        }
    }
    apply_bytes(&serde_json::to_vec(&value).expect("json"), &bytes)
}

#[test]
fn receipt_mutations_never_panic_and_never_verify() {
    let world = &*WORLD;
    check(prop::collection::vec(edit(), 1..3), |edits| {
        let input = apply(&world.receipt, &edits);
        if let Ok(line) = verify(world, &input) {
            prop_assert_eq!(
                proven(&line),
                proven(&world.ok_line),
                "a mutated receipt verified"
            );
        }
        Ok(())
    });
}

#[test]
fn receipt_corpus_never_panics() {
    let world = &*WORLD;
    for (name, bytes) in corpus("receipt") {
        assert!(verify(world, &bytes).is_err(), "{name} verifies");
    }
    check(prop::collection::vec(any::<u8>(), 0..200), |bytes| {
        prop_assert!(verify(world, &bytes).is_err());
        Ok(())
    });
}

#[test]
fn receipt_id_is_bound_to_the_proven_entry() {
    let world = &*WORLD;
    // Regression seeds: members to set on the real receipt.
    for (name, seed) in json_corpus("receipt-regressions") {
        let mut receipt = world.receipt.clone();
        for (k, v) in seed["set"].as_object().expect("set") {
            receipt[k] = v.clone();
        }
        let verified = verify(world, &serde_json::to_vec(&receipt).expect("json"));
        assert!(verified.is_err(), "{name}: verified: {verified:?}");
    }
    check("[0-9a-f]{64}", |id| {
        let mut receipt = world.receipt.clone();
        receipt["id"] = json!(id);
        let verified = verify(world, &serde_json::to_vec(&receipt).expect("json"));
        prop_assert!(
            receipt == world.receipt || verified.is_err(),
            "receipt with id {id} verified"
        );
        Ok(())
    });
}
