//! Storage faults under the log, by name: the fault-injecting wrapper around
//! the storage trait (`xgate_ledger::faults`, built for tests only) fails
//! flushes, fails writes, reports the disk full, or tears a batch part-way.
//! Under the first three the append fails and nothing is reported
//! committed; the log stays consistent (`verify` passes, checkpoints
//! consistent); and once the fault clears the next append succeeds, in the
//! same process, with no repair. A torn batch breaks the trait's contract (batches are atomic;
//! sled's are): `verify` catches what it leaves.

use std::sync::Arc;

use xgate_ledger::faults::{Fault, Faulty, Switch};
use xgate_ledger::{Log, NoteSigner, SledStore, Store, WriteBatch, verify_checkpoint};

type Tested = Faulty<SledStore>;

fn log(dir: &std::path::Path) -> (Log<Tested>, Arc<Switch>) {
    let fault = Arc::new(Switch::new());
    let store = Faulty::new(
        SledStore::open(&dir.join("db"), 1 << 20).expect("store"),
        Arc::clone(&fault),
    );
    let signer = NoteSigner::generate("localhost/faults").expect("signer");
    let log = Log::open_store(store, signer, true).expect("log");
    log.set_checkpoint_every_commit(true);
    (log, fault)
}

/// Appends `n` entries, one commit each, with a write of their own.
fn append(log: &Log<Tested>, from: u64, n: u64) -> Result<(), xgate_ledger::Error> {
    for i in from..from + n {
        log.append_batch_with(&[format!("entry {i}").into_bytes()], move |range| {
            let mut batch = WriteBatch::new();
            batch.put(format!("G{}", range.start).into_bytes(), b"state".to_vec());
            batch
        })?;
    }
    Ok(())
}

#[test]
fn failed_writes_and_full_disks_commit_nothing_and_clear_by_themselves() {
    for fault in [Fault::Write, Fault::Full] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, switch) = log(dir.path());
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
        let now = log.latest_checkpoint().expect("checkpoint");
        let old = verify_checkpoint(&checkpoint.note, &log.verifier()).expect("old");
        let new = verify_checkpoint(&now.note, &log.verifier()).expect("new");
        let proof = log.consistency(old.size, new.size).expect("proof");
        xgate_ledger::verify_consistency(&proof, &old.root, &new.root).expect("consistent");
    }
}

#[test]
fn a_failed_flush_reports_failure_and_the_next_commit_covers_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, switch) = log(dir.path());
    append(&log, 0, 10).expect("before");
    let before = log.latest_checkpoint().expect("checkpoint");
    switch.set(Fault::Flush);
    let failed = append(&log, 10, 1);
    assert!(
        failed.is_err(),
        "a commit whose flush failed was reported committed"
    );
    // No checkpoint was handed out for it.
    assert_eq!(log.latest_checkpoint(), Some(before.clone()));
    switch.set(Fault::None);
    append(&log, 11, 5).expect("after");
    log.verify().expect("consistent");
    // The batch whose flush failed was applied, so it is in the log now,
    // made durable by the next flush: never acknowledged, never lost
    // silently either (its sender got an error and may resubmit).
    assert_eq!(log.size(), 16);
    let old = verify_checkpoint(&before.note, &log.verifier()).expect("old");
    let now = log.latest_checkpoint().expect("now");
    let new = verify_checkpoint(&now.note, &log.verifier()).expect("new");
    let proof = log.consistency(old.size, new.size).expect("proof");
    xgate_ledger::verify_consistency(&proof, &old.root, &new.root).expect("consistent");
}

#[test]
fn a_batch_torn_part_way_is_overwritten_by_the_next_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, switch) = log(dir.path());
    append(&log, 0, 10).expect("before");
    switch.set(Fault::Torn);
    assert!(append(&log, 10, 1).is_err());
    assert_eq!(log.size(), 10, "a torn batch moved the log");
    switch.set(Fault::None);
    append(&log, 11, 5).expect("after");
    assert_eq!(log.size(), 15);
    log.verify()
        .expect("consistent after a torn write was overwritten");
}

/// The storage trait promises atomic batches (sled keeps it); a backend
/// that tears one breaks the log's invariants in ways no later commit can
/// undo in general (a torn batch may overwrite state it cannot restore).
/// What this pins: such damage never passes unnoticed, `verify` names it.
#[test]
fn a_batch_torn_against_the_storage_contract_is_caught_by_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, switch) = log(dir.path());
    append(&log, 0, 10).expect("before");
    switch.set(Fault::Torn);
    assert!(append(&log, 10, 1).is_err());
    switch.set(Fault::None);
    // One commit of three entries: it ends past the torn one's size.
    let entries: Vec<Vec<u8>> = (0..3).map(|i| format!("after {i}").into_bytes()).collect();
    log.append_batch_with(&entries, |_| WriteBatch::new())
        .expect("after");
    assert_eq!(log.size(), 13);
    // The torn batch's signed checkpoint for size 11 survived, over a root
    // the log never had.
    let err = log
        .verify()
        .expect_err("a torn batch left a stale checkpoint");
    assert!(err.to_string().contains("checkpoint at size 11"), "{err}");
}
