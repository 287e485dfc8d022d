//! Storage faults under the log, by name (`xgate_ledger::faults`, built for
//! tests only), injected into the journal, the log's durability point:
//!
//! - a write refused before it wrote anything (an I/O error, a full disk)
//!   commits nothing, and the next append succeeds in the same process;
//! - a failed barrier, or a write torn part-way, commits nothing either,
//!   but the journal is poisoned (fsyncgate: after a failed write-back the
//!   page cache cannot be trusted), so every later append fails until the
//!   log is reopened, which recovers exactly the durable records: what was
//!   acknowledged, and perhaps the unacknowledged record whose barrier
//!   failed, never a torn one;
//! - a store that lost its latest writes gets them back from the journal;
//! - tile files that cannot be written hold no commit up: proofs come from
//!   memory, nothing is published over a bad file, and the files catch up
//!   once the cause is gone.

use std::path::Path;
use std::sync::Arc;

use xgate_ledger::faults::{Fault, Switch};
use xgate_ledger::{DiskStore, Log, OpenOptions, Store, StoreRead, WriteBatch, verify_checkpoint};

fn open(dir: &Path, switch: &Arc<Switch>) -> Log<DiskStore> {
    let options = OpenOptions {
        faults: Some(Arc::clone(switch)),
        ..OpenOptions::default()
    };
    let log = Log::create_or_open(dir, &options).expect("log");
    log.set_checkpoint_every_commit(true);
    log
}

/// Appends `n` entries, one commit each, with a write of their own.
fn append(log: &Log<DiskStore>, from: u64, n: u64) -> Result<(), xgate_ledger::Error> {
    for i in from..from + n {
        log.append_batch_with(&[format!("entry {i}").into_bytes()], move |range| {
            let mut batch = WriteBatch::new();
            batch.put(format!("G{}", range.start).into_bytes(), b"state".to_vec());
            batch
        })?;
    }
    Ok(())
}

/// Checks `log` extends the tree `before` signed.
fn extends(log: &Log<DiskStore>, before: &str) {
    let old = verify_checkpoint(before, &log.verifier()).expect("old");
    let now = log.latest_checkpoint().expect("now");
    let new = verify_checkpoint(&now.note, &log.verifier()).expect("new");
    let proof = log.consistency(old.size, new.size).expect("proof");
    xgate_ledger::verify_consistency(&proof, &old.root, &new.root).expect("consistent");
}

#[test]
fn failed_writes_and_full_disks_commit_nothing_and_clear_by_themselves() {
    for fault in [Fault::Write, Fault::Full] {
        let dir = tempfile::tempdir().expect("tempdir");
        let switch = Arc::new(Switch::new());
        let log = open(dir.path(), &switch);
        append(&log, 0, 20).expect("before");
        let checkpoint = log.latest_checkpoint().expect("checkpoint");
        switch.set(fault);
        for _ in 0..3 {
            assert!(
                append(&log, 100, 1).is_err(),
                "{fault:?}: an append succeeded"
            );
        }
        // Nothing moved: size, checkpoint, the entries' own writes.
        assert_eq!(log.size(), 20, "{fault:?}");
        assert_eq!(
            log.latest_checkpoint(),
            Some(checkpoint.clone()),
            "{fault:?}"
        );
        assert!(
            log.store().get(b"G20").expect("read").is_none(),
            "{fault:?}"
        );
        log.verify().expect("consistent under the fault");
        switch.set(Fault::None);
        append(&log, 20, 20).expect("after the fault clears");
        assert_eq!(log.size(), 40);
        log.verify().expect("consistent after");
        extends(&log, &checkpoint.note);
        drop(log);
        let log = open(dir.path(), &switch);
        assert_eq!(log.size(), 40, "{fault:?}: reopened");
        log.verify().expect("consistent reopened");
    }
}

#[test]
fn a_failed_barrier_or_torn_write_stops_the_log_until_it_is_reopened() {
    for fault in [Fault::Flush, Fault::Torn] {
        let dir = tempfile::tempdir().expect("tempdir");
        let switch = Arc::new(Switch::new());
        let log = open(dir.path(), &switch);
        append(&log, 0, 10).expect("before");
        let before = log.latest_checkpoint().expect("checkpoint");
        switch.set(fault);
        assert!(append(&log, 10, 1).is_err(), "{fault:?}: acknowledged");
        // No checkpoint was handed out for it, and nothing else is taken.
        assert_eq!(log.latest_checkpoint(), Some(before.clone()));
        switch.set(Fault::None);
        assert!(
            append(&log, 11, 1).is_err(),
            "{fault:?}: the log went on after a failed write-back"
        );
        assert_eq!(log.size(), 10);
        drop(log);

        let log = open(dir.path(), &switch);
        let recovered = log.size();
        match fault {
            // The record reached the file; only its barrier failed. It was
            // never acknowledged, and may count after the restart.
            Fault::Flush => assert!((10..=11).contains(&recovered), "{recovered}"),
            // Half a record is never taken for one.
            _ => assert_eq!(recovered, 10),
        }
        append(&log, 100, 5).expect("after reopening");
        log.verify().expect("consistent");
        extends(&log, &before.note);
        // Each recovered commit's own write came back with it.
        for i in 0..recovered + 5 {
            let key = format!("G{i}").into_bytes();
            assert!(log.store().get(&key).expect("read").is_some(), "G{i}");
        }
    }
}

#[test]
fn a_store_that_lost_its_latest_writes_gets_them_back_from_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let switch = Arc::new(Switch::new());
    let log = open(dir.path(), &switch);
    append(&log, 0, 30).expect("append");
    // The store's writes are applied after the journal's barrier and never
    // synced on the commit path; a write the store dropped (as after a
    // power loss) is repaired at the next open.
    let mut batch = WriteBatch::new();
    for i in 20..30 {
        batch.delete(format!("G{i}").into_bytes());
    }
    batch.put(b"La".to_vec(), 19u64.to_be_bytes().to_vec());
    log.store().apply(batch).expect("damage");
    drop(log);
    let log = open(dir.path(), &switch);
    for i in 0..30 {
        let key = format!("G{i}").into_bytes();
        assert!(log.store().get(&key).expect("read").is_some(), "G{i}");
    }
}

#[test]
fn a_failing_integration_holds_no_commit_up_and_catches_up_once_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let switch = Arc::new(Switch::new());
    let log = open(dir.path(), &switch);
    // Where the first entry bundle goes, a file with other bytes: the
    // integrator never overwrites a tile file, so every round fails.
    let bundle = dir.path().join("log/tile/entries/000");
    std::fs::write(&bundle, b"not the bundle").expect("plant");
    append(&log, 0, 300).expect("commits do not wait for the files");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.integration_failure().is_none() {
        assert!(std::time::Instant::now() < deadline, "no round failed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Proofs come from memory meanwhile.
    let signed = log.latest_checkpoint().expect("checkpoint");
    let proof = log.inclusion(5, 300).expect("proof");
    xgate_ledger::verify_inclusion(
        &proof,
        &xgate_ledger::leaf_hash(b"entry 5"),
        &signed.checkpoint.root,
    )
    .expect("verifies");
    assert!(
        log.checkpoint().is_err(),
        "nothing is published over a bad file"
    );

    std::fs::remove_file(&bundle).expect("fix");
    log.checkpoint().expect("published once fixed");
    assert!(log.integration_failure().is_none());
    log.verify().expect("consistent");
    drop(log);
    let log = open(dir.path(), &switch);
    assert_eq!(log.size(), 300);
    log.verify().expect("consistent reopened");
}
