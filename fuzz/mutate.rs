//! Shared by the fuzz targets of both crates (`ledger/tests/fuzz/`,
//! `gateway/tests/fuzz/`), included with `#[path]`: how many cases to run,
//! the seed corpora under `fuzz/corpus/`, and the mutations applied to
//! seeds, as proptest strategies so a failure shrinks to a small input.
//!
//! Stable Rust has no libFuzzer, so this is structured fuzzing: every
//! target mutates known-good inputs (bytes and JSON trees) as well as
//! generating arbitrary ones. See `docs/fuzzing.md`.

#![allow(dead_code)]

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

/// Cases per target when `XGATE_FUZZ_CASES` is unset: small enough that
/// every target together runs well under two minutes in a debug build.
pub const DEFAULT_CASES: u32 = 1000;

/// The marker every generated string value carries: an error message
/// containing it quotes input.
pub const MARKER: &str = "QZX";

/// Cases per target: `XGATE_FUZZ_CASES`, or [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("XGATE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The proptest configuration of every target. Failures are not persisted
/// in `.proptest-regressions` files: a failing input goes into the corpus
/// as a seed instead (docs/fuzzing.md).
pub fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    }
}

/// The seeds of `target`: every file in `fuzz/corpus/<target>/`, sorted by
/// name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).expect("corpus file");
            (name, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "corpus {} is empty", dir.display());
    seeds
}

/// The seeds of `target` that are JSON, parsed.
pub fn json_corpus(target: &str) -> Vec<(String, Value)> {
    corpus(target)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".json"))
        .map(|(name, bytes)| {
            let value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("corpus {target}/{name}: {e}"));
            (name, value)
        })
        .collect()
}

/// One byte-level edit, at positions relative to the input's length.
#[derive(Clone, Debug)]
pub enum ByteEdit {
    /// Flip one bit.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Delete up to `n` bytes.
    Delete(Index, usize),
    /// Cut the input here.
    Truncate(Index),
    /// Copy a range of the input somewhere else in it.
    Splice(Index, Index, Index),
    /// Insert one of the bytes that structure our formats.
    Punct(Index, u8),
}

/// Up to `max` byte edits.
pub fn byte_edits(max: usize) -> impl Strategy<Value = Vec<ByteEdit>> {
    let punct = prop::sample::select(b".\n=+-_/ {}[]\":,\\\0\xff".to_vec());
    let edit = prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| ByteEdit::Splice(a, b, c)),
        2 => (any::<Index>(), punct).prop_map(|(i, b)| ByteEdit::Punct(i, b)),
    ];
    prop::collection::vec(edit, 1..=max)
}

/// Applies `edits` to `input`.
pub fn apply_bytes(input: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut out = input.to_vec();
    for edit in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        let len = out.len();
        match edit {
            ByteEdit::Flip(i, bit) if len > 0 => out[at(i, len)] ^= 1 << bit,
            ByteEdit::Set(i, b) if len > 0 => out[at(i, len)] = *b,
            ByteEdit::Insert(i, bytes) => {
                let p = at(i, len + 1);
                out.splice(p..p, bytes.iter().copied());
            }
            ByteEdit::Punct(i, b) => out.insert(at(i, len + 1), *b),
            ByteEdit::Delete(i, n) if len > 0 => {
                let p = at(i, len);
                out.drain(p..(p + n).min(len));
            }
            ByteEdit::Truncate(i) => out.truncate(at(i, len + 1)),
            ByteEdit::Splice(a, b, c) if len > 0 => {
                let (x, y) = (at(a, len), at(b, len));
                let piece = out[x.min(y)..=x.max(y)].to_vec();
                let p = at(c, len + 1);
                out.splice(p..p, piece);
            }
            _ => {}
        }
    }
    out
}

/// A string value carrying [`MARKER`], sometimes one a schema would take
/// (a token), sometimes not (spaces, control characters, long).
pub fn marked_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{0,6}".prop_map(|s| format!("{MARKER}{s}")),
        "[ -~]{0,12}".prop_map(|s| format!("{s}{MARKER}{s}")),
        "\\PC{0,8}".prop_map(|s| format!("{MARKER}\u{0}{s}\n")),
        (1usize..400).prop_map(|n| format!("{MARKER}{}", "x".repeat(n))),
    ]
}

/// Object keys: the field names of our schemas, or plain words. Never
/// marked: errors name fields by design.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELD_NAMES.to_vec()).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

/// Field names across the body schemas, the claims and the IPS bundle.
pub const FIELD_NAMES: &[&str] = &[
    "tag",
    "serial",
    "category",
    "description",
    "holder",
    "agency",
    "person",
    "location",
    "to",
    "reason",
    "offer",
    "reported_by",
    "observed",
    "subject",
    "purpose",
    "incident",
    "responder",
    "name",
    "role",
    "sections",
    "reply_key",
    "request",
    "ttl_hours",
    "uses",
    "payload",
    "outcome",
    "note",
    "kty",
    "crv",
    "x",
    "y",
    "d",
    "kid",
    "use",
    "alg",
    "key_ops",
    "iss",
    "aud",
    "jti",
    "iat",
    "exp",
    "kind",
    "body",
    "reference",
    "resourceType",
    "fullUrl",
    "resource",
    "entry",
    "section",
    "code",
    "emptyReason",
];

/// Arbitrary JSON trees whose strings all carry [`MARKER`], up to `depth`
/// levels of nesting.
pub fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            0i64,
            1,
            -1,
            24,
            100,
            101,
            720,
            721,
            i64::MAX,
            i64::MIN
        ])
        .prop_map(Value::from),
        marked_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One edit of a JSON tree, at a node chosen by position in a walk.
#[derive(Clone, Debug)]
pub enum JsonEdit {
    /// Replace the node with another value.
    Replace(Index, Value),
    /// Remove a member of an object (or an element of an array).
    Remove(Index, Index),
    /// Add a member to an object (or push onto an array).
    Add(Index, String, Value),
    /// Wrap the node in an array.
    Wrap(Index),
    /// Nest the node `n` arrays deep.
    Nest(Index, usize),
}

/// Up to `max` JSON edits.
pub fn json_edits(max: usize) -> impl Strategy<Value = Vec<JsonEdit>> {
    let edit = prop_oneof![
        4 => (any::<Index>(), json_value(2)).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| JsonEdit::Remove(i, j)),
        2 => (any::<Index>(), key(), json_value(1)).prop_map(|(i, k, v)| JsonEdit::Add(i, k, v)),
        1 => any::<Index>().prop_map(JsonEdit::Wrap),
        1 => (any::<Index>(), 1usize..200).prop_map(|(i, n)| JsonEdit::Nest(i, n)),
    ];
    prop::collection::vec(edit, 1..=max)
}

/// Applies `edits` to a copy of `value`.
pub fn apply_json(value: &Value, edits: &[JsonEdit]) -> Value {
    let mut out = value.clone();
    for edit in edits {
        let (JsonEdit::Replace(i, _)
        | JsonEdit::Remove(i, _)
        | JsonEdit::Add(i, _, _)
        | JsonEdit::Wrap(i)
        | JsonEdit::Nest(i, _)) = edit;
        let target = i.index(count(&out));
        let node = nth(&mut out, target).expect("index within the walk");
        match edit {
            JsonEdit::Replace(_, v) => *node = v.clone(),
            JsonEdit::Remove(_, j) => match node {
                Value::Object(m) if !m.is_empty() => {
                    let k = m.keys().nth(j.index(m.len())).cloned().expect("key");
                    m.remove(&k);
                }
                Value::Array(a) if !a.is_empty() => {
                    a.remove(j.index(a.len()));
                }
                _ => {}
            },
            JsonEdit::Add(_, k, v) => match node {
                Value::Object(m) => {
                    m.insert(k.clone(), v.clone());
                }
                Value::Array(a) => a.push(v.clone()),
                _ => {}
            },
            JsonEdit::Wrap(_) => *node = Value::Array(vec![node.take()]),
            JsonEdit::Nest(_, n) => {
                for _ in 0..*n {
                    *node = Value::Array(vec![node.take()]);
                }
            }
        }
    }
    out
}

/// Nodes in `value`, itself included.
fn count(value: &Value) -> usize {
    1 + match value {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(m) => m.values().map(count).sum(),
        _ => 0,
    }
}

/// The `n`th node of a pre-order walk.
fn nth(value: &mut Value, mut n: usize) -> Option<&mut Value> {
    if n == 0 {
        return Some(value);
    }
    n -= 1;
    let children: Vec<&mut Value> = match value {
        Value::Array(a) => a.iter_mut().collect(),
        Value::Object(m) => m.values_mut().collect(),
        _ => return None,
    };
    for child in children {
        let size = count(child);
        if n < size {
            return nth(child, n);
        }
        n -= size;
    }
    None
}

/// Every string value in `value`, recursively.
pub fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(m) => m.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}
