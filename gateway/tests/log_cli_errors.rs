//! The `xgate log` error contract, end to end: every bad input exits
//! non-zero (2 when the command line does not parse, 1 otherwise) with
//! exactly one line on stderr, never shows entry contents, and leaves the
//! log exactly as it was.

mod common;

use std::path::Path;

use common::{TestLog, lines, num, xgate};
use xgate_ledger::{Log, NoteSigner, OpenOptions};

/// Every entry of the fixture log holds this, so a message that leaks
/// entry contents is caught.
const MARKER: &str = "SECRET-ENTRY-CONTENT";

/// A log of three entries, each holding [`MARKER`].
fn fixture() -> TestLog {
    let log = TestLog::new();
    let input = format!("{MARKER} 0\n{MARKER} 1\n{MARKER} 2\n");
    assert_eq!(num(&log.append(input.as_bytes()), "tree_size"), 3);
    log
}

/// Asserts the run failed with `code`, one line, no marker, and a message
/// containing `needle`.
fn assert_refused(run: &xgate_tests::Run, code: i32, needle: &str) {
    let message = run.expect_error(code);
    assert!(
        message.contains(needle),
        "xgate {:?}: message {message:?} lacks {needle:?}",
        run.args
    );
    assert!(
        !message.contains(MARKER),
        "xgate {:?} leaked entry contents: {message:?}",
        run.args
    );
}

/// One valid invocation of every read-only command.
const READ_COMMANDS: [(&str, &[&str]); 6] = [
    ("checkpoint", &[]),
    ("key", &[]),
    ("inclusion", &["--index", "0"]),
    ("consistency", &["--from", "1"]),
    ("entry", &["--index", "0"]),
    ("verify", &[]),
];

#[test]
fn unparsable_arguments_exit_2_and_change_nothing() {
    let log = fixture();
    let before = log.state();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "entry",
            &["--index", "-1"],
            "must be a non-negative integer",
        ),
        ("entry", &["--index=-1"], "must be a non-negative integer"),
        (
            "entry",
            &["--index", "abc"],
            "must be a non-negative integer",
        ),
        (
            "entry",
            &["--index", "1.5"],
            "must be a non-negative integer",
        ),
        ("entry", &["--index", ""], "must be a non-negative integer"),
        (
            "entry",
            &["--index", "18446744073709551616"],
            "no larger than",
        ),
        ("entry", &[], "missing required argument: --index"),
        (
            "entry",
            &["--index", "0", "--bogus"],
            "unexpected argument '--bogus'",
        ),
        (
            "inclusion",
            &["--index", "-1"],
            "invalid value '-1' for '--index",
        ),
        (
            "inclusion",
            &["--index", "0", "--size", "-2"],
            "invalid value '-2' for '--size",
        ),
        (
            "inclusion",
            &["--index", "x"],
            "must be a non-negative integer",
        ),
        (
            "consistency",
            &["--from", "-1"],
            "invalid value '-1' for '--from",
        ),
        (
            "consistency",
            &["--from", "1", "--to", "-1"],
            "invalid value '-1' for '--to",
        ),
        (
            "consistency",
            &["--from", "one"],
            "must be a non-negative integer",
        ),
        ("consistency", &[], "missing required argument: --from"),
        (
            "append",
            &["--origin", "has space"],
            "invalid value 'has space' for '--origin",
        ),
        ("append", &["--origin", "a+b"], "for '--origin"),
        ("append", &["--origin", ""], "for '--origin"),
    ];
    for (command, args, needle) in cases {
        assert_refused(&log.run(command, args, b"new entry\n"), 2, needle);
    }
    for args in [
        &["log"][..],
        &[],
        &["log", "frobnicate"],
        &["log", "entry", "--index", "0"],
        &["frobnicate"],
    ] {
        xgate().run(args, b"").expect_error(2);
    }
    assert_eq!(log.state(), before);
}

#[test]
fn requests_beyond_the_log_exit_1_and_change_nothing() {
    let log = fixture();
    let before = log.state();
    let cases: &[(&str, &[&str], &str)] = &[
        ("entry", &["--index", "3"], "--index 3 is out of range"),
        (
            "entry",
            &["--index", "18446744073709551615"],
            "out of range",
        ),
        ("inclusion", &["--index", "3"], "--index 3 is out of range"),
        (
            "inclusion",
            &["--index", "2", "--size", "2"],
            "out of range for a tree of size 2",
        ),
        (
            "inclusion",
            &["--index", "0", "--size", "0"],
            "--size must be at least 1",
        ),
        (
            "inclusion",
            &["--index", "0", "--size", "4"],
            "--size 4 is beyond the end",
        ),
        ("consistency", &["--from", "0"], "--from must be at least 1"),
        (
            "consistency",
            &["--from", "3", "--to", "2"],
            "--from 3 is larger than --to 2",
        ),
        (
            "consistency",
            &["--from", "4"],
            "--from 4 is larger than --to 3",
        ),
        (
            "consistency",
            &["--from", "1", "--to", "4"],
            "--to 4 is beyond the end",
        ),
        (
            "consistency",
            &["--from", "0", "--to", "0"],
            "--from must be at least 1",
        ),
    ];
    for (command, args, needle) in cases {
        assert_refused(&log.run(command, args, b""), 1, needle);
    }
    assert_eq!(log.state(), before);
}

#[test]
fn append_with_another_origin_is_refused() {
    let log = fixture();
    let before = log.state();
    let run = log.run("append", &["--origin", "other.example/log"], b"x\n");
    assert_refused(&run, 1, "origin");
    assert_eq!(log.state(), before);
}

#[test]
fn over_long_line_appends_nothing() {
    let log = fixture();
    let before = log.state();
    let long = MARKER.repeat(xgate_ledger::MAX_ENTRY_LEN / MARKER.len() + 1);
    assert!(long.len() > xgate_ledger::MAX_ENTRY_LEN);
    for input in [
        format!("fine\n{long}\nafter\n"),
        format!("fine\n{long}"),
        format!("fine\n{}\n", "x".repeat(xgate_ledger::MAX_ENTRY_LEN + 1)),
    ] {
        let run = log.run("append", &[], input.as_bytes());
        assert_refused(&run, 1, "line 2 of standard input is");
        assert!(
            run.stderr.contains("nothing was appended"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(log.state(), before);
}

#[test]
fn over_long_line_does_not_create_a_log() {
    let log = TestLog::new();
    let input = vec![b'x'; xgate_ledger::MAX_ENTRY_LEN + 1];
    assert_refused(&log.run("append", &[], &input), 1, "65536 bytes");
    assert!(!log.dir.exists(), "a refused append created the data dir");
}

#[test]
fn missing_data_dir_is_refused_and_not_created() {
    let log = TestLog::new();
    for (command, args) in READ_COMMANDS {
        assert_refused(&log.run(command, args, b""), 1, "not an xgate log data dir");
        assert!(!log.dir.exists(), "{command} created the data dir");
    }
}

#[test]
fn a_directory_that_is_not_a_log_is_refused_and_left_alone() {
    let log = TestLog::new();
    std::fs::create_dir(&log.dir).expect("mkdir");
    std::fs::write(log.dir.join("notes.txt"), "not a log").expect("write");
    let before = log.state();
    for (command, args) in READ_COMMANDS {
        assert_refused(&log.run(command, args, b""), 1, "not an xgate log data dir");
    }
    assert_eq!(log.state(), before);
    assert!(!log.dir.join("db").exists() && !log.dir.join("checkpoint.key").exists());

    // A database that is not a log is never adopted, even without a key.
    // It is made elsewhere and copied in: sled releases its file lock only
    // when its epoch collector frees a dropped database, which may be never
    // in a process that stops using sled.
    let scratch = tempfile::tempdir().expect("tempdir");
    let foreign = sled::open(scratch.path().join("db")).expect("foreign sled db");
    foreign
        .insert(b"someone else's key", b"value".to_vec())
        .expect("insert");
    foreign.flush().expect("flush");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(scratch.path().join("db"))
        .arg(log.dir.join("db"))
        .status()
        .expect("cp");
    assert!(copied.success());
    let before = log.state();
    assert_refused(&log.run("append", &[], b"x\n"), 1, "not an xgate log");
    assert_eq!(log.state(), before);
}

#[test]
fn a_data_dir_that_is_a_file_is_refused() {
    let log = TestLog::new();
    std::fs::write(&log.dir, "a file").expect("write");
    assert_refused(&log.run("append", &[], b"x\n"), 1, "not a directory");
    for (command, args) in READ_COMMANDS {
        assert_refused(&log.run(command, args, b""), 1, "not an xgate log data dir");
    }
    assert_eq!(std::fs::read(&log.dir).expect("still a file"), b"a file");
}

#[test]
fn an_unreadable_key_is_refused_by_every_command() {
    let log = fixture();
    let key_path = log.dir.join("checkpoint.key");
    let mut key = std::fs::read(&key_path).expect("key");
    // Flip one character of the base64 private key: the key id no longer
    // matches.
    let last = key.len() - 2;
    key[last] = if key[last] == b'A' { b'B' } else { b'A' };
    std::fs::write(&key_path, &key).expect("write key");
    let before = log.state();
    for (command, args) in READ_COMMANDS {
        assert_refused(&log.run(command, args, b""), 1, "checkpoint.key");
    }
    assert_refused(&log.run("append", &[], b"x\n"), 1, "checkpoint.key");
    assert_eq!(log.state(), before);

    std::fs::write(&key_path, "garbage\n").expect("write key");
    for (command, args) in READ_COMMANDS {
        assert_refused(&log.run(command, args, b""), 1, "checkpoint.key");
    }
    assert_eq!(std::fs::read(&key_path).expect("key"), b"garbage\n");
}

#[test]
fn a_replaced_key_is_detected() {
    let log = fixture();
    let key_path = log.dir.join("checkpoint.key");
    let forged = NoteSigner::generate(xgate_ledger::DEFAULT_ORIGIN).expect("key");
    std::fs::write(&key_path, format!("{}\n", forged.to_private_key())).expect("write key");
    let before = log.state();
    // The stored checkpoints were signed by the old key: the log refuses
    // to open rather than serve or sign anything under the new one.
    for (command, args) in READ_COMMANDS {
        assert_refused(&log.run(command, args, b""), 1, "log is corrupt");
    }
    assert_refused(&log.run("append", &[], b"x\n"), 1, "log is corrupt");
    assert_eq!(log.state(), before);
}

#[test]
fn append_does_not_reinitialise_a_damaged_database() {
    let log = fixture();
    // Damage the start of sled's log file: sled then recovers an empty
    // database, which must not be taken for a new log under the old key.
    let db = log.dir.join("db").join("db");
    let mut bytes = std::fs::read(&db).expect("read db");
    bytes[..64].fill(0xab);
    std::fs::write(&db, bytes).expect("write db");
    let before = log.state();
    assert_refused(
        &log.run("append", &[], b"x\n"),
        1,
        "database has no xgate format marker",
    );
    for (command, args) in READ_COMMANDS {
        assert_refused(
            &log.run(command, args, b""),
            1,
            "database has no xgate format marker",
        );
    }
    assert_eq!(log.state(), before);
}

#[test]
fn verify_detects_a_tampered_entry() {
    let log = TestLog::new();
    log.append(&lines(0..300));
    tamper_file(
        &log.dir.join("log/tile/entries/000"),
        b"entry 5",
        b"entrY 5",
    );
    // Opening checks the latest checkpoint against stored tiles, which the
    // tampering did not touch; only a full verify recomputes from entries.
    let run = log.run("verify", &[], b"");
    assert_refused(&run, 1, "public tile 0/0 does not match its entries");
}

#[test]
fn verify_detects_a_forged_old_checkpoint() {
    let log = TestLog::new();
    log.append(&lines(0..10));
    log.append(&lines(10..20));
    let forger = NoteSigner::generate(xgate_ledger::DEFAULT_ORIGIN).expect("key");
    // The published checkpoints: size u64, length u32, note; the one at 10
    // is first. A note signed by another key of the same name has the same
    // length.
    let path = log.dir.join("ledger/checkpoints");
    let mut bytes = std::fs::read(&path).expect("read");
    assert_eq!(bytes[..8], 10u64.to_be_bytes());
    let len = u32::from_be_bytes(bytes[8..12].try_into().expect("len")) as usize;
    let text = String::from_utf8(bytes[12..12 + len].to_vec()).expect("UTF-8");
    let (body, _) = text.split_once("\n\n").expect("signed note");
    let forged = forger.sign_note(&format!("{body}\n"));
    assert_eq!(forged.len(), len);
    bytes[12..12 + len].copy_from_slice(forged.as_bytes());
    std::fs::write(&path, bytes).expect("write");
    // The latest checkpoint is intact, so the log opens and serves...
    log.ok("checkpoint", &[]);
    // ...but a full verify checks every stored checkpoint.
    assert_refused(&log.run("verify", &[], b""), 1, "checkpoint at size 10");
}

#[test]
fn a_locked_data_dir_is_refused_and_unchanged() {
    let log = fixture();
    let before = log.state();
    let key = log.run("key", &[], b"").expect_ok();
    let checkpoint = log.run("checkpoint", &[], b"").expect_ok();
    {
        let held = Log::open_existing(&log.dir, &OpenOptions::default()).expect("open");
        for (command, args) in READ_COMMANDS {
            // `key` and `checkpoint` read files outside the database, so
            // they answer beside a running gateway (issue 3, item 8).
            if matches!(command, "key" | "checkpoint") {
                continue;
            }
            assert_refused(&log.run(command, args, b""), 1, "locked by another process");
        }
        assert_eq!(log.run("key", &[], b"").expect_ok(), key);
        assert_eq!(log.run("checkpoint", &[], b"").expect_ok(), checkpoint);
        assert_refused(
            &log.run("append", &[], b"x\n"),
            1,
            "locked by another process",
        );
        assert_eq!(held.size(), 3);
    }
    assert_eq!(log.state(), before);
}

#[test]
fn checkpoint_of_a_log_that_never_signed_one_is_refused() {
    let log = TestLog::new();
    // Created in-process elsewhere and copied in, so no lingering sled
    // handle in this process can hold the copy's lock.
    let scratch = tempfile::tempdir().expect("tempdir");
    let made = scratch.path().join("log");
    drop(Log::create_or_open(&made, &OpenOptions::default()).expect("create"));
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&made)
        .arg(&log.dir)
        .status()
        .expect("cp");
    assert!(copied.success());
    let before = log.state();
    assert_refused(&log.run("checkpoint", &[], b""), 1, "no signed checkpoint");
    assert_refused(
        &log.run("inclusion", &["--index", "0"], b""),
        1,
        "the log is empty",
    );
    assert_refused(
        &log.run("consistency", &["--from", "1"], b""),
        1,
        "the log is empty",
    );
    assert_refused(&log.run("entry", &["--index", "0"], b""), 1, "out of range");
    assert_eq!(log.state(), before);
    assert_eq!(
        log.ok("verify", &[]),
        format!(
            "ok: 0 entries, 0 tiles, 0 checkpoints, root {}\n",
            common::b64(xgate_ledger::Hash::EMPTY_ROOT.as_bytes())
        )
    );
}

/// Replaces `from` with `to` (same length) in the file at `path`, which
/// may be one of the log's immutable (0444) files.
fn tamper_file(path: &Path, from: &[u8], to: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).expect("read");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("something to tamper with");
    bytes[at..at + to.len()].copy_from_slice(to);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(path, bytes).expect("write");
}
