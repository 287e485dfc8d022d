//! Helpers shared by the `xgate log` contract tests: a log in a temporary
//! directory, driven through the real binary.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use xgate_ledger::Hash;
use xgate_tests::{Run, Xgate};

/// The binary cargo built for this package.
pub fn xgate() -> Xgate {
    Xgate::new(env!("CARGO_BIN_EXE_xgate"))
}

/// A log data directory inside a fresh temporary directory. The log itself
/// does not exist until something appends to it.
pub struct TestLog {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl TestLog {
    pub fn new() -> TestLog {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("log");
        TestLog { _tmp: tmp, dir }
    }

    /// Runs `xgate log <command> --data-dir DIR <args...>`.
    pub fn run(&self, command: &str, args: &[&str], stdin: &[u8]) -> Run {
        let mut all = vec!["log", command, "--data-dir", self.dir_str()];
        all.extend_from_slice(args);
        xgate().run(&all, stdin)
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, command: &str, args: &[&str]) -> String {
        self.run(command, args, b"").expect_ok()
    }

    /// Runs a command that must print one line of JSON, and parses it.
    pub fn json(&self, command: &str, args: &[&str]) -> Value {
        parse_json_line(&self.ok(command, args))
    }

    /// Appends `input` (one entry per line) and returns the parsed output.
    pub fn append(&self, input: &[u8]) -> Value {
        parse_json_line(&self.run("append", &[], input).expect_ok())
    }

    pub fn dir_str(&self) -> &str {
        self.dir.to_str().expect("temp paths are UTF-8")
    }

    /// Everything observable about the log, to compare before and after a
    /// command that must change nothing.
    pub fn state(&self) -> State {
        State::of(&self.dir)
    }
}

/// What a data directory looks like from outside: which files are at the
/// top, the key, and what `checkpoint` and `verify` say about it.
#[derive(Debug, PartialEq, Eq)]
pub struct State {
    files: Option<Vec<String>>,
    key: Option<Vec<u8>>,
    checkpoint: (Option<i32>, Vec<u8>, String),
    verify: (Option<i32>, Vec<u8>, String),
}

impl State {
    pub fn of(dir: &Path) -> State {
        let files = std::fs::read_dir(dir).ok().map(|entries| {
            let mut names: Vec<String> = entries
                .map(|e| {
                    e.expect("dir entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                // Opening a log takes its lock file; that is not a change.
                .filter(|n| n != "lock")
                .collect();
            names.sort();
            names
        });
        let key = std::fs::read(dir.join("checkpoint.key")).ok();
        let dir = dir.to_str().expect("temp paths are UTF-8");
        let outcome = |command: &str| {
            let run = xgate().run(&["log", command, "--data-dir", dir], b"");
            (run.code, run.stdout, run.stderr)
        };
        State {
            files,
            key,
            checkpoint: outcome("checkpoint"),
            verify: outcome("verify"),
        }
    }
}

/// Parses stdout that must be exactly one line of JSON.
pub fn parse_json_line(stdout: &str) -> Value {
    let line = stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("output does not end in a newline: {stdout:?}"));
    assert!(!line.contains('\n'), "output is not one line: {stdout:?}");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

/// The top-level keys of a one-line JSON object, in the order they were
/// printed. serde_json's `Value` sorts keys, so order is read off the text.
pub fn keys(line: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut current: Option<String> = None;
    let mut expect_key = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                if let Some(key) = current.take() {
                    keys.push(key);
                }
                continue;
            }
            if let Some(key) = current.as_mut() {
                key.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                if depth == 1 && expect_key {
                    current = Some(String::new());
                }
                expect_key = false;
            }
            '{' | '[' => {
                depth += 1;
                expect_key = c == '{' && depth == 1;
            }
            '}' | ']' => depth -= 1,
            ',' => expect_key = depth == 1,
            _ => {}
        }
    }
    keys
}

/// A JSON field that must be an unsigned integer.
pub fn num(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a u64 in {value}"))
}

/// A JSON field that must be base64 of a 32-byte hash.
pub fn hash(value: &Value, field: &str) -> Hash {
    hash_str(
        value[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string in {value}")),
    )
}

/// A JSON field that must be an array of base64 hashes.
pub fn hashes(value: &Value, field: &str) -> Vec<Hash> {
    value[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not an array in {value}"))
        .iter()
        .map(|h| hash_str(h.as_str().expect("hash strings")))
        .collect()
}

pub fn hash_str(text: &str) -> Hash {
    Hash::from_slice(&unb64(text)).expect("32 bytes")
}

/// Decodes standard base64 with padding, which is all xgate prints.
pub fn unb64(text: &str) -> Vec<u8> {
    B64.decode(text).expect("standard base64")
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// `n` distinct lines, newline-terminated.
pub fn lines(range: std::ops::Range<u32>) -> Vec<u8> {
    range
        .flat_map(|i| format!("entry {i}\n").into_bytes())
        .collect()
}
