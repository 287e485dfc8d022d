//! The `xgate log` contract, end to end against the real binary: exact
//! output formats, proofs that verify with the ledger's own verifiers, and
//! entries that round-trip any bytes. Bad input is in `log_cli_errors.rs`.
//!
//! Known answers for `hello`, `world`, `xgate` are the worked example of
//! docs/ledger.md, which was checked with Python's hashlib.

mod common;

use common::{TestLog, b64, hash, hashes, keys, lines, num, parse_json_line, unb64, xgate};
use xgate_ledger::hash::root_of;
use xgate_ledger::{
    ConsistencyProof, Hash, InclusionProof, NoteVerifier, leaf_hash, verify_checkpoint,
    verify_consistency, verify_inclusion,
};

const HELLO_WORLD_XGATE: &[u8] = b"hello\nworld\nxgate\n";
const ROOT_2: &str = "JCMzOarc7fKH0mJBPwPAKOuNs5ft0yooeAkRUbmb8g8=";
const ROOT_3: &str = "/XoWuKfgAqYF6T+8JueTYVZ+OtZxPNmQtvs3oVgtzeE=";
const LEAF_0: &str = "iipcm3aIJ95alVLDigRMZpWcaPbS8htSYK9U0vh9uCc=";
const LEAF_1: &str = "rqPLszb01JTYtaFXrt/EgKRabefAlo4IVDOyFPm0Hvc=";
const LEAF_2: &str = "1LFPrgBOYHEh05nb3cw5N6ZCP/p79WMMUSM5oVWN1mM=";

fn key_of(log: &TestLog) -> NoteVerifier {
    NoteVerifier::parse(&log.ok("key", &[])).expect("key parses as a signed-note verifier")
}

#[test]
fn append_prints_counts_and_root_exactly() {
    let log = TestLog::new();
    let out = log.run("append", &[], HELLO_WORLD_XGATE).expect_ok();
    assert_eq!(
        out,
        format!("{{\"appended\":3,\"tree_size\":3,\"root_hash\":\"{ROOT_3}\"}}\n")
    );
    let raw = log.run("append", &[], b"more\n").expect_ok();
    assert_eq!(keys(&raw), ["appended", "tree_size", "root_hash"]);
    let out = parse_json_line(&raw);
    assert_eq!((num(&out, "appended"), num(&out, "tree_size")), (1, 4));
}

#[test]
fn append_creates_the_log_with_the_requested_origin() {
    let log = TestLog::new();
    let run = log.run("append", &["--origin", "example.org/audit"], b"x\n");
    run.expect_ok();
    assert!(log.dir.join("checkpoint.key").is_file());
    assert_eq!(key_of(&log).name(), "example.org/audit");
    // Naming the same origin again is fine.
    log.run("append", &["--origin", "example.org/audit"], b"y\n")
        .expect_ok();
}

#[test]
fn append_without_origin_uses_the_default() {
    let log = TestLog::new();
    log.append(b"x\n");
    assert_eq!(key_of(&log).name(), xgate_ledger::DEFAULT_ORIGIN);
}

#[test]
fn empty_stdin_appends_nothing_but_signs_a_checkpoint() {
    let log = TestLog::new();
    let out = log.append(b"");
    assert_eq!(num(&out, "appended"), 0);
    assert_eq!(num(&out, "tree_size"), 0);
    assert_eq!(hash(&out, "root_hash"), Hash::EMPTY_ROOT);
    let note = log.ok("checkpoint", &[]);
    let checkpoint = verify_checkpoint(&note, &key_of(&log)).expect("verifies");
    assert_eq!(checkpoint.size, 0);

    log.append(HELLO_WORLD_XGATE);
    assert_eq!(num(&log.append(b""), "tree_size"), 3);
}

#[test]
fn entry_round_trips_arbitrary_bytes() {
    let log = TestLog::new();
    let input: &[u8] = b"plain\n\xff\xfe\x00binary\ncrlf\r\n\n\r\n\xc3(\nno newline at end";
    let expected: [&[u8]; 7] = [
        b"plain",
        b"\xff\xfe\x00binary",
        b"crlf\r",
        b"",
        b"\r",
        b"\xc3(",
        b"no newline at end",
    ];
    let out = log.append(input);
    assert_eq!(num(&out, "appended"), expected.len() as u64);
    let leaves: Vec<Hash> = expected.iter().map(|e| leaf_hash(e)).collect();
    assert_eq!(hash(&out, "root_hash"), root_of(&leaves));

    for (i, want) in expected.iter().enumerate() {
        let index = i.to_string();
        let out = log.ok("entry", &["--index", &index]);
        assert_eq!(
            out,
            format!(
                "{{\"index\":{i},\"entry\":\"{}\",\"leaf_hash\":\"{}\"}}\n",
                b64(want),
                b64(leaf_hash(want).as_bytes())
            )
        );
    }
}

#[test]
fn entry_prints_the_known_answer() {
    let log = TestLog::new();
    log.append(HELLO_WORLD_XGATE);
    assert_eq!(
        log.ok("entry", &["--index", "1"]),
        format!("{{\"index\":1,\"entry\":\"d29ybGQ=\",\"leaf_hash\":\"{LEAF_1}\"}}\n")
    );
}

#[test]
fn a_line_of_exactly_the_limit_is_one_entry() {
    let log = TestLog::new();
    let mut input = vec![b'a'; xgate_ledger::MAX_ENTRY_LEN];
    input.push(b'\n');
    assert_eq!(num(&log.append(&input), "appended"), 1);
    let out = log.json("entry", &["--index", "0"]);
    assert_eq!(out["entry"], b64(&input[..xgate_ledger::MAX_ENTRY_LEN]));
}

#[test]
fn inclusion_prints_the_known_answer() {
    let log = TestLog::new();
    log.append(HELLO_WORLD_XGATE);
    assert_eq!(
        log.ok("inclusion", &["--index", "0", "--size", "3"]),
        format!(
            "{{\"leaf_index\":0,\"tree_size\":3,\"leaf_hash\":\"{LEAF_0}\",\"root_hash\":\"{ROOT_3}\",\"hashes\":[\"{LEAF_1}\",\"{LEAF_2}\"]}}\n"
        )
    );
}

#[test]
fn inclusion_proofs_verify_against_root_and_checkpoint() {
    let log = TestLog::new();
    let appended = log.append(&lines(0..37));
    let root = hash(&appended, "root_hash");
    let checkpoint = verify_checkpoint(&log.ok("checkpoint", &[]), &key_of(&log))
        .expect("checkpoint verifies with the printed key");
    assert_eq!((checkpoint.size, checkpoint.root), (37, root));

    for (index, size) in [(0, 1), (0, 37), (36, 37), (5, 6), (17, 32), (31, 33)] {
        let raw = log.ok(
            "inclusion",
            &["--index", &index.to_string(), "--size", &size.to_string()],
        );
        let out = parse_json_line(&raw);
        assert_eq!(
            keys(&raw),
            [
                "leaf_index",
                "tree_size",
                "leaf_hash",
                "root_hash",
                "hashes"
            ]
        );
        assert_eq!(
            (num(&out, "leaf_index"), num(&out, "tree_size")),
            (index, size)
        );
        let leaf = leaf_hash(format!("entry {index}").as_bytes());
        assert_eq!(hash(&out, "leaf_hash"), leaf);
        let expected_root = root_of(
            &(0..size)
                .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
                .collect::<Vec<_>>(),
        );
        assert_eq!(hash(&out, "root_hash"), expected_root);
        let proof = InclusionProof {
            leaf_index: index,
            tree_size: size,
            hashes: hashes(&out, "hashes"),
        };
        verify_inclusion(&proof, &leaf, &expected_root).expect("proof verifies");
        if size == 37 {
            verify_inclusion(&proof, &leaf, &checkpoint.root).expect("verifies against checkpoint");
        }
    }
}

#[test]
fn inclusion_size_defaults_to_the_log_size() {
    let log = TestLog::new();
    log.append(&lines(0..10));
    let root = hash(&log.append(&lines(10..21)), "root_hash");
    let out = log.json("inclusion", &["--index", "4"]);
    assert_eq!(num(&out, "tree_size"), 21);
    assert_eq!(hash(&out, "root_hash"), root);
    assert_eq!(
        out,
        log.json("inclusion", &["--index", "4", "--size", "21"])
    );
}

#[test]
fn consistency_prints_the_known_answer() {
    let log = TestLog::new();
    log.append(HELLO_WORLD_XGATE);
    assert_eq!(
        log.ok("consistency", &["--from", "2", "--to", "3"]),
        format!(
            "{{\"from\":2,\"to\":3,\"old_root\":\"{ROOT_2}\",\"new_root\":\"{ROOT_3}\",\"hashes\":[\"{LEAF_2}\"]}}\n"
        )
    );
}

#[test]
fn consistency_proofs_link_successive_checkpoints() {
    let log = TestLog::new();
    log.append(&lines(0..10));
    let key = key_of(&log);
    let old = verify_checkpoint(&log.ok("checkpoint", &[]), &key).expect("old verifies");
    log.append(&lines(10..300));
    let new = verify_checkpoint(&log.ok("checkpoint", &[]), &key).expect("new verifies");
    assert_eq!((old.size, new.size), (10, 300));

    let raw = log.ok("consistency", &["--from", "10"]);
    assert_eq!(keys(&raw), ["from", "to", "old_root", "new_root", "hashes"]);
    let out = parse_json_line(&raw);
    assert_eq!((num(&out, "from"), num(&out, "to")), (10, 300));
    assert_eq!(hash(&out, "old_root"), old.root);
    assert_eq!(hash(&out, "new_root"), new.root);
    let proof = ConsistencyProof {
        old_size: 10,
        new_size: 300,
        hashes: hashes(&out, "hashes"),
    };
    verify_consistency(&proof, &old.root, &new.root).expect("proof verifies");
    assert_eq!(
        out,
        log.json("consistency", &["--from", "10", "--to", "300"])
    );

    for (from, to) in [(1, 1), (1, 300), (7, 9), (256, 257), (299, 300)] {
        let out = log.json(
            "consistency",
            &["--from", &from.to_string(), "--to", &to.to_string()],
        );
        let proof = ConsistencyProof {
            old_size: from,
            new_size: to,
            hashes: hashes(&out, "hashes"),
        };
        verify_consistency(&proof, &hash(&out, "old_root"), &hash(&out, "new_root"))
            .unwrap_or_else(|e| panic!("{from}..{to}: {e}"));
    }
}

#[test]
fn checkpoint_prints_the_stored_note_byte_for_byte() {
    let log = TestLog::new();
    let appended = log.append(HELLO_WORLD_XGATE);
    let note = log.ok("checkpoint", &[]);
    // Body, blank line, one signature line; exactly one trailing newline.
    let (body, signatures) = note.split_once("\n\n").expect("a signed note");
    assert_eq!(
        body,
        format!("{}\n3\n{ROOT_3}", xgate_ledger::DEFAULT_ORIGIN)
    );
    assert!(
        signatures.starts_with("\u{2014} localhost/xgate "),
        "{note}"
    );
    assert!(signatures.ends_with('\n') && !signatures.ends_with("\n\n"));
    assert_eq!(signatures.lines().count(), 1);

    let checkpoint = verify_checkpoint(&note, &key_of(&log)).expect("verifies");
    assert_eq!(checkpoint.root, hash(&appended, "root_hash"));
    // Reading does not sign anew: the same note every time.
    assert_eq!(log.ok("checkpoint", &[]), note);
}

#[test]
fn key_is_a_signed_note_verifier_line() {
    let log = TestLog::new();
    log.run("append", &["--origin", "agency.example/log"], b"x\n")
        .expect_ok();
    let out = log.ok("key", &[]);
    let line = out.strip_suffix('\n').expect("newline-terminated");
    let parts: Vec<&str> = line.splitn(3, '+').collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert_eq!(parts[0], "agency.example/log");
    assert!(parts[1].len() == 8 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
    let key = unb64(parts[2]);
    assert_eq!(
        (key.len(), key[0]),
        (33, 0x01),
        "0x01 || Ed25519 public key"
    );
    let verifier = NoteVerifier::parse(line).expect("parses");
    assert_eq!(verifier.to_string(), line);
}

#[test]
fn verify_reports_ok_on_one_line() {
    let log = TestLog::new();
    log.append(&lines(0..300));
    log.append(&lines(300..600));
    let out = log.ok("verify", &[]);
    let line = out.strip_suffix('\n').expect("newline-terminated");
    assert!(!line.contains('\n'));
    let expected_root = root_of(
        &(0..600)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        line,
        format!(
            // 600 leaves fill 2 public tiles of 256 (tile/0/000 and 001) and,
            // for proofs, 2 private tiles of the 16 x 16 leaves above them
            // (ledger/nodes/level-1); the rest are partial.
            "ok: 600 entries, 4 tiles, 2 checkpoints, root {}",
            b64(expected_root.as_bytes())
        )
    );
}

#[test]
fn one_append_and_three_appends_give_the_same_log() {
    let input = lines(0..2500);
    let whole = TestLog::new();
    let out = whole.append(&input);
    assert_eq!(
        (num(&out, "appended"), num(&out, "tree_size")),
        (2500, 2500)
    );

    let split = TestLog::new();
    let cuts = [0, 1000, 1001, 2500];
    let mut last = None;
    for w in cuts.windows(2) {
        let out = split.append(&lines(w[0]..w[1]));
        assert_eq!(num(&out, "appended"), u64::from(w[1] - w[0]));
        last = Some(out);
    }
    let last = last.expect("three appends ran");
    assert_eq!(num(&last, "tree_size"), 2500);
    assert_eq!(last["root_hash"], out["root_hash"]);
    for index in ["0", "999", "1000", "2499"] {
        assert_eq!(
            whole.json("entry", &["--index", index]),
            split.json("entry", &["--index", index])
        );
    }
}

#[test]
fn appends_larger_than_one_batch_are_all_kept() {
    // More than two internal batches of 10,000 entries.
    let log = TestLog::new();
    let out = log.append(&lines(0..20_001));
    assert_eq!(num(&out, "tree_size"), 20_001);
    let expected = root_of(
        &(0..20_001)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(hash(&out, "root_hash"), expected);
    let last = log.json("entry", &["--index", "20000"]);
    assert_eq!(last["entry"], b64(b"entry 20000"));
}

#[test]
fn help_and_version_print_to_stdout_and_exit_zero() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["log", "--help"],
        &["log", "inclusion", "--help"],
    ] {
        let out = xgate().run(args, b"").expect_ok();
        assert!(!out.is_empty(), "{args:?}");
    }
    let version = xgate().run(&["--version"], b"").expect_ok();
    assert_eq!(version, format!("xgate {}\n", env!("CARGO_PKG_VERSION")));
}
