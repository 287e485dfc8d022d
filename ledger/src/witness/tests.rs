//! Every outcome of `add-checkpoint`, state across restarts, concurrent
//! submissions, evidence and file modes, against a log built in memory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use crate::cosign::CosignatureAlg;
use crate::hash::{Hash, leaf_hash, root_of};
use crate::proof::{MemoryLeaves, prove_consistency};

const ORIGIN: &str = "example.com/log";

/// A log in memory: leaves, a signing key, checkpoints and proofs.
struct TestLog {
    signer: NoteSigner,
    leaves: Vec<Hash>,
}

impl TestLog {
    fn new(seed: u8, salt: &str, size: u64) -> TestLog {
        let leaves = (0..size)
            .map(|i| leaf_hash(format!("{salt}{i}").as_bytes()))
            .collect();
        TestLog {
            signer: NoteSigner::from_seed(ORIGIN, [seed; 32]).expect("key"),
            leaves,
        }
    }

    fn text(&self, size: u64) -> String {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: root_of(&self.leaves[..size as usize]),
        }
        .body()
    }

    fn note(&self, size: u64) -> String {
        self.signer.sign_note(&self.text(size))
    }

    fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 || old == new {
            return Vec::new();
        }
        prove_consistency(
            &MemoryLeaves(self.leaves[..new as usize].to_vec()),
            old,
            new,
        )
        .expect("infallible")
        .hashes
    }

    fn body(&self, old: u64, new: u64) -> Vec<u8> {
        format_body(old, &self.proof(old, new), &self.note(new)).into_bytes()
    }
}

fn open(dir: &Path, log: &TestLog) -> Witness {
    Witness::open(dir, &[log.signer.verifier()]).expect("opens")
}

fn setup(alg: CosignatureAlg) -> (tempfile::TempDir, TestLog) {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(&tmp.path().join("w"), "witness.example/w1", alg).expect("init");
    (tmp, TestLog::new(1, "", 64))
}

fn cosigned(outcome: Outcome) -> (String, Checkpoint) {
    match outcome {
        Outcome::Cosigned { lines, checkpoint } => (lines, checkpoint),
        other => panic!("expected a cosignature, got {other:?}"),
    }
}

#[test]
fn cosigns_a_growing_log_and_the_lines_verify() {
    for alg in [CosignatureAlg::Ed25519, CosignatureAlg::MlDsa44] {
        let (tmp, log) = setup(alg);
        let w = open(&tmp.path().join("w"), &log);
        let mut old = 0;
        for new in [1, 2, 3, 7, 8, 20, 20, 64] {
            let outcome = w
                .add_checkpoint_at(&log.body(old, new), 1000 + new)
                .expect("ok");
            assert_eq!(outcome.status(), 200);
            let (lines, checkpoint) = cosigned(outcome);
            assert_eq!(checkpoint.size, new);
            assert_eq!(
                w.cosigner().verifier().verify_line(&log.text(new), &lines),
                Ok(1000 + new),
                "{alg}"
            );
            let latest = w.latest(ORIGIN).expect("recorded");
            assert_eq!(latest.size, new);
            assert_eq!(latest.note, format!("{}{lines}", log.note(new)));
            old = new;
        }
    }
}

#[test]
fn every_refusal_gets_the_spec_status() {
    let (tmp, log) = setup(CosignatureAlg::Ed25519);
    let w = open(&tmp.path().join("w"), &log);
    assert_eq!(
        w.add_checkpoint_at(&log.body(0, 10), 1)
            .expect("ok")
            .status(),
        200
    );

    // 400: malformed body, old size above the checkpoint's.
    let status = |body: &[u8]| w.add_checkpoint_at(body, 2).expect("answers").status();
    assert_eq!(status(b"old 10\n"), 400);
    assert_eq!(status(b"garbage"), 400);
    assert_eq!(
        w.add_checkpoint_at(&log.body(12, 12)[..], 2)
            .expect("answers")
            .status(),
        409
    );
    let above = format_body(11, &[], &log.note(10));
    assert_eq!(
        w.add_checkpoint_at(above.as_bytes(), 2).expect("answers"),
        Outcome::BadRequest(BodyError::OldAboveSize { old: 11, size: 10 })
    );
    // A signed note whose text is no checkpoint.
    let not_checkpoint = log.signer.sign_note(&format!("{ORIGIN}\nten\nroot\n"));
    assert_eq!(status(format_body(0, &[], &not_checkpoint).as_bytes()), 400);
    // A note without signature lines.
    assert_eq!(
        status(format_body(10, &[], &format!("{}\n", log.text(12))).as_bytes()),
        400
    );

    // 404: unknown origin.
    let stranger = NoteSigner::from_seed("other.example/log", [2; 32]).expect("key");
    let note = stranger.sign_note(&log.text(12).replacen(ORIGIN, "other.example/log", 1));
    assert_eq!(
        w.add_checkpoint_at(format_body(10, &[], &note).as_bytes(), 2)
            .expect("answers"),
        Outcome::UnknownOrigin
    );

    // 403: signed by another key of the same name; a bad signature from
    // the trusted key.
    let impostor = TestLog::new(3, "", 64);
    assert_eq!(
        w.add_checkpoint_at(&impostor.body(10, 12), 2)
            .expect("answers"),
        Outcome::Untrusted(Untrusted::NoTrustedSignature)
    );
    let tampered = log.note(12).replacen("\n12\n", "\n13\n", 1);
    assert_eq!(
        w.add_checkpoint_at(format_body(10, &log.proof(10, 12), &tampered).as_bytes(), 2)
            .expect("answers"),
        Outcome::Untrusted(Untrusted::BadSignature(ORIGIN.into()))
    );
    // An unknown key's line beside the trusted one is ignored.
    let both = format!(
        "{}{}",
        log.note(12),
        stranger
            .sign_note("x\n")
            .split("\n\n")
            .nth(1)
            .expect("line")
    );
    assert_eq!(
        w.add_checkpoint_at(format_body(10, &log.proof(10, 12), &both).as_bytes(), 3)
            .expect("answers")
            .status(),
        200
    );

    // 409 with the latest size.
    let conflict = w.add_checkpoint_at(&log.body(10, 14), 4).expect("answers");
    assert_eq!(
        conflict,
        Outcome::Conflict {
            latest_size: 12,
            evidence: None
        }
    );
    assert_eq!(conflict.body(), "12\n");
    assert_eq!(conflict.content_type(), "text/x.tlog.size");

    // 422: a bad proof; a proof from zero; a size-0 checkpoint whose root
    // is not the empty tree's.
    let mut proof = log.proof(12, 14);
    proof[0].0[0] ^= 1;
    let bad = format_body(12, &proof, &log.note(14));
    assert!(matches!(
        w.add_checkpoint_at(bad.as_bytes(), 5).expect("answers"),
        Outcome::Inconsistent {
            reason: Inconsistency::BadProof { old: 12, new: 14 },
            evidence: Some(_)
        }
    ));
    let short = format_body(12, &log.proof(12, 14)[1..], &log.note(14));
    assert_eq!(
        w.add_checkpoint_at(short.as_bytes(), 5)
            .expect("answers")
            .status(),
        422
    );
    assert_eq!(
        w.latest(ORIGIN).expect("latest").size,
        12,
        "nothing refused is recorded"
    );

    let tmp2 = tempfile::tempdir().expect("tempdir");
    init(
        &tmp2.path().join("w"),
        "witness.example/w2",
        CosignatureAlg::Ed25519,
    )
    .expect("init");
    let fresh = open(&tmp2.path().join("w"), &log);
    let from_zero = format_body(0, &log.proof(5, 12), &log.note(12));
    assert_eq!(
        fresh
            .add_checkpoint_at(from_zero.as_bytes(), 1)
            .expect("answers"),
        Outcome::Inconsistent {
            reason: Inconsistency::ProofFromZero,
            evidence: None
        }
    );
    let zero = log.signer.sign_note(
        &Checkpoint {
            origin: ORIGIN.into(),
            size: 0,
            root: Hash([1; 32]),
        }
        .body(),
    );
    assert_eq!(
        fresh
            .add_checkpoint_at(format_body(0, &[], &zero).as_bytes(), 1)
            .expect("answers"),
        Outcome::Inconsistent {
            reason: Inconsistency::EmptyTreeRoot,
            evidence: None
        }
    );
    let empty = log.signer.sign_note(
        &Checkpoint {
            origin: ORIGIN.into(),
            size: 0,
            root: Hash::EMPTY_ROOT,
        }
        .body(),
    );
    assert_eq!(
        fresh
            .add_checkpoint_at(format_body(0, &[], &empty).as_bytes(), 1)
            .expect("answers")
            .status(),
        200
    );
    // The same checkpoint again with a (needless) proof: 422, no evidence.
    let same = format_body(12, &log.proof(10, 12), &log.note(12));
    assert_eq!(
        w.add_checkpoint_at(same.as_bytes(), 6).expect("answers"),
        Outcome::Inconsistent {
            reason: Inconsistency::BadProof { old: 12, new: 12 },
            evidence: None
        }
    );
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files_under(&p));
        }
        out.push(p);
    }
    out.sort();
    out
}

#[test]
fn a_fork_is_refused_and_kept_as_evidence_never_overwritten() {
    let (tmp, log) = setup(CosignatureAlg::MlDsa44);
    let dir = tmp.path().join("w");
    let w = open(&dir, &log);
    assert_eq!(
        w.add_checkpoint_at(&log.body(0, 20), 1)
            .expect("ok")
            .status(),
        200
    );
    // The same key signs another history from leaf 16 on.
    let mut fork = TestLog::new(1, "", 64);
    for (i, leaf) in fork.leaves.iter_mut().enumerate().skip(16) {
        *leaf = leaf_hash(format!("fork{i}").as_bytes());
    }
    // Same size, other root, right old size: 422 and evidence.
    let outcome = w.add_checkpoint_at(&fork.body(20, 20), 2).expect("answers");
    let Outcome::Inconsistent {
        reason: Inconsistency::RootMismatch(20),
        evidence: Some(first),
    } = outcome
    else {
        panic!("expected a root mismatch with evidence, got {outcome:?}")
    };
    let read = |name: &str| std::fs::read_to_string(first.join(name)).expect("read");
    assert_eq!(read("refused"), fork.note(20));
    assert_eq!(
        read("cosigned"),
        w.latest(ORIGIN).expect("latest").note,
        "the note it had cosigned, with its cosignature"
    );
    assert_eq!(
        read("request"),
        String::from_utf8(fork.body(20, 20)).expect("utf-8")
    );
    // Both notes verify with the log's key: the pair proves a fork.
    let key = log.signer.verifier();
    let a = crate::checkpoint::verify_checkpoint(&read("cosigned"), &key).expect("verifies");
    let b = crate::checkpoint::verify_checkpoint(&read("refused"), &key).expect("verifies");
    assert_eq!((a.size, b.size), (20, 20));
    assert_ne!(a.root, b.root);

    // The same refusal again: the same evidence, unchanged.
    let before = std::fs::read(first.join("refused")).expect("read");
    let again = w.add_checkpoint_at(&fork.body(20, 20), 3).expect("answers");
    assert!(matches!(again, Outcome::Inconsistent { evidence: Some(ref p), .. } if *p == first));
    assert_eq!(std::fs::read(first.join("refused")).expect("read"), before);

    // Same size, other root, wrong old size: 409, and evidence too.
    let outcome = w.add_checkpoint_at(&fork.body(16, 20), 4).expect("answers");
    let Outcome::Conflict {
        latest_size: 20,
        evidence: Some(second),
    } = outcome
    else {
        panic!("expected a conflict with evidence, got {outcome:?}")
    };
    assert_ne!(second, first);
    // A larger fork checkpoint with a proof from the cosigned size: the
    // proof cannot verify, 422 and evidence.
    let outcome = w.add_checkpoint_at(&fork.body(20, 30), 5).expect("answers");
    assert!(matches!(
        outcome,
        Outcome::Inconsistent {
            reason: Inconsistency::BadProof { old: 20, new: 30 },
            evidence: Some(_)
        }
    ));
    assert_eq!(w.latest(ORIGIN).expect("latest").size, 20);
    // The honest log goes on.
    assert_eq!(
        w.add_checkpoint_at(&log.body(20, 30), 6)
            .expect("ok")
            .status(),
        200
    );

    // Everything private.
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let files = files_under(&dir);
    assert!(files.len() > 10);
    for f in files {
        let want = if f.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&f), want, "{}", f.display());
    }
}

#[test]
fn state_survives_a_restart_and_the_directory_is_held_by_one_process() {
    let (tmp, log) = setup(CosignatureAlg::Ed25519);
    let dir = tmp.path().join("w");
    let w = open(&dir, &log);
    assert_eq!(
        w.add_checkpoint_at(&log.body(0, 9), 1)
            .expect("ok")
            .status(),
        200
    );
    let vkey = w.cosigner().verifier().to_string();
    assert!(matches!(
        Witness::open(&dir, &[log.signer.verifier()]),
        Err(WitnessError::Locked(_))
    ));
    drop(w);
    let w = open(&dir, &log);
    assert_eq!(w.cosigner().verifier().to_string(), vkey);
    assert_eq!(w.latest(ORIGIN).expect("kept").size, 9);
    assert_eq!(
        w.add_checkpoint_at(&log.body(0, 10), 2).expect("answers"),
        Outcome::Conflict {
            latest_size: 9,
            evidence: None
        }
    );
    assert_eq!(
        w.add_checkpoint_at(&log.body(9, 10), 2)
            .expect("ok")
            .status(),
        200
    );
    // A log no longer listed is unknown; listed again, its state is back.
    drop(w);
    let w = Witness::open(&dir, &[]).expect("opens");
    assert_eq!(
        w.add_checkpoint_at(&log.body(10, 11), 3).expect("answers"),
        Outcome::UnknownOrigin
    );
    drop(w);
    assert_eq!(open(&dir, &log).latest(ORIGIN).expect("kept").size, 10);
    // A corrupt state file stops the witness rather than forgetting.
    let state = dir.join(STATE_DIR).join(origin_hash(ORIGIN));
    std::fs::write(&state, "not a note").expect("write");
    assert!(matches!(
        Witness::open(&dir, &[log.signer.verifier()]),
        Err(WitnessError::Corrupt { .. })
    ));
}

#[test]
fn a_key_kept_elsewhere_signs_for_state_in_a_directory_created_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = TestLog::new(1, "", 16);
    let key = crate::cosign::Cosigner::generate("gw.example/witness", CosignatureAlg::Ed25519)
        .expect("key");
    let vkey = key.verifier().clone();
    let again = || crate::cosign::Cosigner::from_private_key(&key.to_private_key()).expect("key");
    // Two levels missing: both are made, private.
    let dir = tmp.path().join("data").join("witness");
    let w = Witness::open_with_key(&dir, again(), &[log.signer.verifier()]).expect("opens");
    for d in [tmp.path().join("data"), dir.clone()] {
        let mode = std::fs::metadata(&d).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", d.display());
    }
    assert!(
        !dir.join(KEY_FILE).exists(),
        "the key stays where it is kept"
    );
    let (lines, checkpoint) = cosigned(w.add_checkpoint_at(&log.body(0, 5), 7).expect("ok"));
    assert_eq!(
        vkey.verify_line(&checkpoint.body(), &lines)
            .expect("verifies"),
        7
    );
    // Held by one process; its state survives a restart.
    assert!(matches!(
        Witness::open_with_key(&dir, again(), &[log.signer.verifier()]),
        Err(WitnessError::Locked(_))
    ));
    drop(w);
    let w = Witness::open_with_key(&dir, again(), &[log.signer.verifier()]).expect("reopens");
    assert_eq!(w.latest(ORIGIN).expect("kept").size, 5);
    assert_eq!(w.cosigner().verifier(), &vkey);
}

#[test]
fn init_never_replaces_a_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("w");
    let first = init(&dir, "witness.example/w1", CosignatureAlg::MlDsa44).expect("init");
    let key = std::fs::read(dir.join(KEY_FILE)).expect("read");
    assert!(matches!(
        init(&dir, "witness.example/w1", CosignatureAlg::Ed25519),
        Err(WitnessError::KeyExists(_))
    ));
    assert_eq!(std::fs::read(dir.join(KEY_FILE)).expect("read"), key);
    assert_eq!(load_key(&dir).expect("loads").verifier(), first.verifier());
    let mode = std::fs::metadata(dir.join(KEY_FILE))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(matches!(load_key(tmp.path()), Err(WitnessError::NoKey(_))));
    assert!(matches!(
        Witness::open(&tmp.path().join("missing"), &[]),
        Err(WitnessError::NoKey(_))
    ));
}

#[test]
fn concurrent_submissions_from_one_size_cosign_exactly_one() {
    let (tmp, log) = setup(CosignatureAlg::Ed25519);
    let w = Arc::new(open(&tmp.path().join("w"), &log));
    let log = Arc::new(log);
    let mut size = 0;
    for round in 0..5 {
        let threads: Vec<_> = (1..=6)
            .map(|i| {
                let (w, log) = (Arc::clone(&w), Arc::clone(&log));
                let new = size + i;
                std::thread::spawn(move || {
                    (
                        new,
                        w.add_checkpoint_at(&log.body(size, new), 10 + round)
                            .expect("ok"),
                    )
                })
            })
            .collect();
        let outcomes: Vec<(u64, Outcome)> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let won: Vec<u64> = outcomes
            .iter()
            .filter(|(_, o)| o.status() == 200)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {outcomes:?}");
        for (_, o) in &outcomes {
            if o.status() != 200 {
                assert_eq!(
                    *o,
                    Outcome::Conflict {
                        latest_size: won[0],
                        evidence: None
                    }
                );
            }
        }
        size = won[0];
        assert_eq!(w.latest(ORIGIN).expect("latest").size, size);
    }
}

#[test]
fn a_log_with_two_keys_is_one_origin() {
    let (tmp, log) = setup(CosignatureAlg::Ed25519);
    let rotated = TestLog::new(7, "", 64);
    let keys: Vec<NoteVerifier> = vec![log.signer.verifier(), rotated.signer.verifier()];
    let w = Witness::open(&tmp.path().join("w"), &keys).expect("opens");
    assert_eq!(w.origins().collect::<Vec<_>>(), [ORIGIN]);
    assert_eq!(
        w.add_checkpoint_at(&log.body(0, 4), 1)
            .expect("ok")
            .status(),
        200
    );
    assert_eq!(
        w.add_checkpoint_at(&rotated.body(4, 8), 1)
            .expect("ok")
            .status(),
        200
    );
}
