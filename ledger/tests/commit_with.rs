//! Writes that commit with an append (`append_batch_with`) and checkpoints
//! signed by each commit (`set_checkpoint_every_commit`): what the gateway
//! builds its receipts and inboxes on.

use std::sync::Arc;

use xgate_ledger::{
    DiskStore, Error, Log, OpenOptions, StoreRead, WriteBatch, leaf_hash, verify_checkpoint,
    verify_inclusion,
};

fn open(dir: &std::path::Path) -> Log<DiskStore> {
    Log::create_or_open(dir, &OpenOptions::default()).expect("open log")
}

fn owned_key(index: u64) -> Vec<u8> {
    let mut k = b"G".to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

#[test]
fn concurrent_appenders_each_get_their_own_range_and_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(open(dir.path()));
    log.set_checkpoint_every_commit(true);
    let verifier = log.verifier();
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let log = Arc::clone(&log);
            let verifier = verifier.clone();
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    let entry = format!("thread {t} entry {i}");
                    let tag = entry.clone();
                    let committed = log
                        .append_batch_with(&[entry.as_bytes()], move |range| {
                            let mut batch = WriteBatch::new();
                            batch.put(owned_key(range.start), tag.into_bytes());
                            batch
                        })
                        .expect("append");
                    let index = committed.range.start;
                    assert_eq!(committed.range.end, index + 1);
                    // The commit's own checkpoint covers the entry, and the
                    // proof against it verifies.
                    let signed = committed.checkpoint.expect("a checkpoint per commit");
                    let checkpoint = verify_checkpoint(&signed.note, &verifier).expect("signed");
                    assert!(checkpoint.size > index);
                    let proof = log.inclusion(index, checkpoint.size).expect("proof");
                    verify_inclusion(&proof, &leaf_hash(entry.as_bytes()), &checkpoint.root)
                        .expect("inclusion verifies against the commit's checkpoint");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("appender");
    }
    assert_eq!(log.size(), 400);
    for index in 0..400 {
        let written = log
            .store()
            .get(&owned_key(index))
            .expect("read")
            .expect("written");
        assert_eq!(
            written.as_slice(),
            log.entry(index).expect("entry").as_slice()
        );
    }
    // Per-commit checkpoints are kept in the journal and handed out; the
    // published ones (at most one a second, and on demand) are kept for good.
    log.checkpoint().expect("publish");
    let report = log.verify().expect("verify");
    assert!(report.checkpoints >= 1);
    assert_eq!(
        log.latest_checkpoint().expect("latest").checkpoint.size,
        400
    );
}

#[test]
fn writes_to_log_keys_are_refused_and_nothing_is_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append(b"before").expect("append");
    let err = log
        .append_batch_with(&[b"x"], |_| {
            let mut batch = WriteBatch::new();
            batch.put(b"Lz".to_vec(), vec![0; 8]);
            batch
        })
        .expect_err("a log key");
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(log.size(), 1);
    log.append(b"after").expect("the log goes on");
    assert_eq!(log.entry(1).expect("entry"), b"after");
    log.verify().expect("verify");
}

#[test]
fn the_mirror_holds_the_latest_commit_checkpoint_after_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.set_checkpoint_every_commit(true);
    for i in 0..5u32 {
        log.append(&i.to_be_bytes()).expect("append");
    }
    let latest = log.latest_checkpoint().expect("latest");
    drop(log);
    let mirror =
        std::fs::read_to_string(dir.path().join(xgate_ledger::CHECKPOINT_FILE)).expect("mirror");
    assert_eq!(mirror, latest.note);
    let log = open(dir.path());
    assert_eq!(log.latest_checkpoint(), Some(latest));
}
