//! A witnessed log serves, as its tlog-tiles `checkpoint` file, only what
//! `Log::publish_cosigned` was given: checkpoints this log signed for its
//! own tree, moving forward, never a fork's.

use std::path::Path;

use xgate_ledger::{DiskStore, Error, LOG_DIR, Log, OpenOptions};

fn open(dir: &Path) -> Log<DiskStore> {
    let options = OpenOptions {
        witnessed: true,
        ..OpenOptions::default()
    };
    Log::create_or_open(dir, &options).expect("open")
}

fn served(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(LOG_DIR).join("checkpoint")).ok()
}

/// A cosignature line as a witness would add it (its bytes do not matter
/// to the log, which checks only its own signature).
fn cosigned(note: &str) -> String {
    format!(
        "{note}\u{2014} witness.example/w1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"
    )
}

#[test]
fn only_cosigned_checkpoints_of_this_tree_are_served_and_only_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append_batch(&["a", "b", "c"]).expect("append");
    let first = log.checkpoint().expect("checkpoint");
    assert_eq!(log.published_checkpoint().as_ref(), Some(&first));
    // The integrator published it, but nothing is served before a quorum.
    assert_eq!(served(dir.path()), None);
    assert_eq!(
        log.publish_cosigned(&cosigned(&first.note)).expect("serve"),
        3
    );
    assert_eq!(served(dir.path()), Some(cosigned(&first.note)));

    log.append_batch(&["d", "e"]).expect("append");
    let second = log.checkpoint().expect("checkpoint");
    assert_eq!(log.published_checkpoint().as_ref(), Some(&second));
    assert_eq!(
        served(dir.path()),
        Some(cosigned(&first.note)),
        "not yet cosigned"
    );
    log.publish_cosigned(&second.note).expect("serve");
    // Backwards is refused, and the file is left alone.
    let err = log.publish_cosigned(&first.note).expect_err("backwards");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert_eq!(served(dir.path()), Some(second.note.clone()));
    // Not a note of this log.
    let err = log.publish_cosigned("garbage\n").expect_err("garbage");
    assert!(matches!(err, Error::Checkpoint(_)), "{err}");
    // Reopened, the served file stays; a new publication does not touch it.
    drop(log);
    let log = open(dir.path());
    assert_eq!(
        log.published_checkpoint().as_ref(),
        Some(&second),
        "reopened"
    );
    log.append(b"f").expect("append");
    log.checkpoint().expect("checkpoint");
    assert_eq!(served(dir.path()), Some(second.note.clone()));
    let err = log
        .publish_cosigned(&first.note)
        .expect_err("backwards after reopening");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert_eq!(served(dir.path()), Some(second.note));
}

#[test]
fn a_fork_signed_with_the_same_key_is_never_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fork = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append_batch(&["a", "b"]).expect("append");
    log.checkpoint().expect("checkpoint");
    drop(log);
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.path().display()))
        .arg(fork.path())
        .status()
        .expect("cp");
    assert!(status.success());
    // One history here, another there, both signed with the one key.
    let log = open(dir.path());
    log.append(b"ours").expect("append");
    log.checkpoint().expect("checkpoint");
    let other = open(fork.path());
    other.append(b"theirs").expect("append");
    let forked = other.checkpoint().expect("checkpoint");
    let err = log.publish_cosigned(&forked.note).expect_err("a fork");
    assert!(err.to_string().contains("not this log's"), "{err}");
    assert_eq!(served(dir.path()), None);
}
