//! The journal on real files in temporary directories, with real syncs.

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;

use super::record::HEADER_LEN;
use super::*;

fn options(segment_bytes: u64) -> JournalOptions {
    JournalOptions {
        segment_bytes,
        ..JournalOptions::default()
    }
}

fn open(dir: &Path, segment_bytes: u64) -> Journal {
    Journal::open(dir, options(segment_bytes)).expect("open journal")
}

fn all(journal: &Journal, from: u64) -> Vec<(u64, Vec<u8>)> {
    journal
        .read_from(from)
        .expect("read_from")
        .collect::<Result<Vec<_>, _>>()
        .expect("records")
}

/// Deterministic payload `i` of `len` bytes, never all zeros.
fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (i as usize * 31 + k * 7 + 1) as u8 | 1)
        .collect()
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(segment::name(number))
}

fn segment_numbers(dir: &Path) -> Vec<u64> {
    segment::list(dir).expect("list").segments
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn records_round_trip_across_small_segments_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal");
    let mut expected = Vec::new();
    {
        let journal = open(&path, 4096);
        assert_eq!((journal.first_seq(), journal.next_seq()), (0, 0));
        assert_eq!(all(&journal, 0), vec![]);
        for i in 0..60u64 {
            // Mostly small, some larger than a whole segment, one empty.
            let len = match i {
                7 => 0,
                20 | 21 => 10_000,
                _ => (i as usize * 97) % 1500,
            };
            let bytes = payload(i, len);
            // Split in parts, as the caller's encoder hands them over.
            let (a, b) = bytes.split_at(len / 3);
            assert_eq!(journal.append(&[a, &[], b]).expect("append"), i);
            expected.push((i, bytes));
        }
        assert_eq!(journal.next_seq(), 60);
        assert_eq!(all(&journal, 0), expected);
        assert_eq!(all(&journal, 37), expected[37..].to_vec());
        assert_eq!(all(&journal, 60), vec![]);
        assert!(matches!(
            journal.read_from(61),
            Err(JournalError::Beyond { seq: 61, next: 60 })
        ));
    }
    let numbers = segment_numbers(&path);
    assert!(numbers.len() > 10, "{numbers:?}");
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>());
    // The records larger than a segment each went alone into one, which
    // grew past the nominal size.
    let big: Vec<u64> = numbers
        .iter()
        .copied()
        .filter(|&n| fs::metadata(segment_path(&path, n)).expect("meta").len() > 4096)
        .collect();
    assert_eq!(big.len(), 2, "{big:?}");
    assert_eq!(mode(&path), 0o700);
    for &n in &numbers {
        assert_eq!(mode(&segment_path(&path, n)), 0o600);
    }
    let journal = open(&path, 4096);
    assert_eq!((journal.first_seq(), journal.next_seq()), (0, 60));
    assert_eq!(all(&journal, 0), expected);
    assert_eq!(journal.append(&[b"after reopen"]).expect("append"), 60);
    expected.push((60, b"after reopen".to_vec()));
    drop(journal);
    let journal = open(&path, 4096);
    assert_eq!(all(&journal, 0), expected);
    journal.ahead.settle();
    let on_disk: u64 = segment_numbers(&path)
        .iter()
        .map(|&n| fs::metadata(segment_path(&path, n)).expect("meta").len())
        .sum();
    assert_eq!(journal.disk_bytes(), on_disk);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path(), 4096);
    assert!(matches!(
        Journal::open(dir.path(), options(4096)),
        Err(JournalError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock
    ));
    drop(journal);
    open(dir.path(), 4096);
}

/// How a test damages the tail of a journal.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The record's bytes from `k` on never reached the disk (zeros).
    Zeros,
    /// Bytes from `k` on (and some after the record) are garbage.
    Garbage,
    /// The file ends at `k`.
    Cut,
}

/// Builds a journal whose last record (`last_len` payload bytes) is at the
/// end of segment `last_segment`; returns the records, the last record's
/// segment and offset.
fn build(dir: &Path, before: &[usize], last_len: usize) -> (Vec<(u64, Vec<u8>)>, u64, u64) {
    let journal = open(dir, 4096);
    let mut records = Vec::new();
    for (i, &len) in before.iter().enumerate() {
        let bytes = payload(i as u64, len);
        journal.append(&[&bytes]).expect("append");
        records.push((i as u64, bytes));
    }
    let seq = before.len() as u64;
    let bytes = payload(seq, last_len);
    let (number, offset) = {
        let w = journal.writer.lock().expect("lock");
        if w.offset + (HEADER_LEN + last_len) as u64 > w.len {
            (w.number + 1, 0)
        } else {
            (w.number, w.offset)
        }
    };
    journal.append(&[&bytes]).expect("append");
    records.push((seq, bytes));
    (records, number, offset)
}

/// Compares records without printing megabytes when they differ.
fn assert_same(got: &[(u64, Vec<u8>)], want: &[(u64, Vec<u8>)], context: &str) {
    let seqs = |r: &[(u64, Vec<u8>)]| r.iter().map(|(s, b)| (*s, b.len())).collect::<Vec<_>>();
    assert_eq!(seqs(got), seqs(want), "{context}");
    assert!(got == want, "{context}: payloads differ");
}

/// The last record torn at every byte offset, each way, reopens to exactly
/// the records before it; appending and reopening then works, and no stale
/// byte is left after the end.
fn torn_at_every_offset(before: &[usize], last_len: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pristine = dir.path().join("pristine");
    let (records, number, offset) = build(&pristine, before, last_len);
    let record_len = (HEADER_LEN + last_len) as u64;
    let originals: Vec<(u64, Vec<u8>)> = segment_numbers(&pristine)
        .into_iter()
        .map(|n| (n, fs::read(segment_path(&pristine, n)).expect("read")))
        .collect();
    let work = dir.path().join("work");
    for damage in [Damage::Zeros, Damage::Garbage, Damage::Cut] {
        for k in 0..=record_len {
            let _ = fs::remove_dir_all(&work);
            fs::create_dir(&work).expect("mkdir");
            for (n, bytes) in &originals {
                fs::write(segment_path(&work, *n), bytes).expect("write");
            }
            let file = fs::OpenOptions::new()
                .write(true)
                .open(segment_path(&work, number))
                .expect("open segment");
            let at = offset + k;
            let end = offset + record_len;
            match damage {
                Damage::Zeros => file
                    .write_all_at(&vec![0u8; (end - at) as usize], at)
                    .expect("zero"),
                Damage::Garbage => {
                    let garbage: Vec<u8> = (0..(end - at + 40))
                        .map(|i| (i as u8).wrapping_mul(13) | 0x80)
                        .collect();
                    file.write_all_at(&garbage, at).expect("garbage");
                }
                Damage::Cut => file.set_len(at).expect("cut"),
            }
            drop(file);
            // Garbage after a whole record leaves the record intact.
            let intact = k == record_len;
            let want = if intact {
                records.clone()
            } else {
                records[..records.len() - 1].to_vec()
            };
            let context = format!("{damage:?} at byte {k} of {record_len}");
            let journal = Journal::open(&work, options(4096)).expect(&context);
            assert_same(&all(&journal, 0), &want, &context);
            assert_eq!(journal.next_seq(), want.len() as u64, "{context}");
            // Nothing but zeros after the end.
            let end = if intact { offset + record_len } else { offset };
            match fs::read(segment_path(&work, number)) {
                Ok(bytes) => assert!(
                    bytes[end as usize..].iter().all(|&b| b == 0),
                    "{context}: stale bytes after the end"
                ),
                // A spare segment cut short is removed, not kept.
                Err(_) => assert!(offset == 0 && !intact, "{context}: segment gone"),
            }
            let next = journal.append(&[b"short"]).expect("append after recovery");
            assert_eq!(next, want.len() as u64);
            drop(journal);
            let journal = open(&work, 4096);
            let mut then = want.clone();
            then.push((next, b"short".to_vec()));
            assert_same(&all(&journal, 0), &then, &format!("{context}, reopened"));
        }
    }
}

#[test]
fn a_torn_last_record_in_the_middle_of_a_segment_is_dropped_at_every_offset() {
    torn_at_every_offset(&[40, 0, 200], 90);
}

#[test]
fn a_torn_last_record_at_the_start_of_a_segment_is_dropped_at_every_offset() {
    // 3 x 1,316 bytes fill the first 4 KiB segment but 148 bytes; a
    // 216-byte record does not fit after them.
    torn_at_every_offset(&[1300, 1300, 1300], 200);
}

#[test]
fn a_zeroed_tail_ends_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, number, offset) = build(dir.path(), &[100, 100, 100, 100], 100);
    assert_eq!(number, 0);
    // The last two records never reached the disk.
    let start = offset - (HEADER_LEN as u64 + 100);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), 0))
        .expect("open");
    file.write_all_at(&[0u8; 4096][..(4096 - start) as usize], start)
        .expect("zero");
    let journal = open(dir.path(), 4096);
    assert_eq!(all(&journal, 0), records[..3].to_vec());
}

/// Flips one byte of segment `number` at `at`.
fn flip(dir: &Path, number: u64, at: u64) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment_path(dir, number))
        .expect("open");
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).expect("read");
    file.write_all_at(&[byte[0] ^ 0x40], at).expect("write");
}

#[test]
fn a_bad_checksum_in_the_last_segment_ends_the_journal_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, number, _) = build(dir.path(), &[100; 6], 100);
    assert_eq!(number, 0);
    // Record 2's payload.
    let record = (HEADER_LEN + 100) as u64;
    flip(dir.path(), 0, 2 * record + HEADER_LEN as u64 + 50);
    let journal = open(dir.path(), 4096);
    assert_eq!(all(&journal, 0), records[..2].to_vec());
    assert_eq!(journal.append(&[b"x"]).expect("append"), 2);
    drop(journal);
    let bytes = fs::read(segment_path(dir.path(), 0)).expect("read");
    let end = 2 * record as usize + HEADER_LEN + 1;
    assert!(
        bytes[end..].iter().all(|&b| b == 0),
        "records after it are zeroed"
    );
}

#[test]
fn damage_in_an_earlier_complete_segment_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Three segments of records (1,300-byte payloads, three a segment).
    build(dir.path(), &[1300; 8], 1300);
    assert_eq!(
        segment_numbers(dir.path()).len(),
        4,
        "three full, one ready"
    );
    let pristine = fs::read(segment_path(dir.path(), 1)).expect("read");

    // A bad checksum in segment 1, with records in segment 2 after it.
    flip(dir.path(), 1, HEADER_LEN as u64 + 1316 + 7);
    match Journal::open(dir.path(), options(4096)) {
        Err(JournalError::Corrupt { segment: 1, .. }) => {}
        other => panic!("expected corruption in segment 1: {other:?}"),
    }
    // Nothing was repaired on the way: the damage is still there to see.
    assert_ne!(
        fs::read(segment_path(dir.path(), 1)).expect("read"),
        pristine
    );

    // A segment whose first record does not continue the previous one.
    fs::write(segment_path(dir.path(), 1), &pristine).expect("restore");
    let seg2 = fs::read(segment_path(dir.path(), 2)).expect("read");
    fs::write(segment_path(dir.path(), 1), &seg2).expect("duplicate");
    match Journal::open(dir.path(), options(4096)) {
        Err(JournalError::Corrupt { segment: 1, .. }) => {}
        other => panic!("expected corruption in segment 1: {other:?}"),
    }

    // A missing segment in the middle.
    fs::remove_file(segment_path(dir.path(), 1)).expect("remove");
    match Journal::open(dir.path(), options(4096)) {
        Err(JournalError::Missing { segment: 1 }) => {}
        other => panic!("expected segment 1 missing: {other:?}"),
    }
}

/// A hook failing the steps its switches say.
fn hook(
    fail_write: Arc<AtomicBool>,
    tear: Arc<AtomicBool>,
    fail_sync: Arc<AtomicBool>,
) -> FaultHook {
    Arc::new(move |step| match step {
        Step::Write if tear.load(Ordering::SeqCst) => Err(torn()),
        Step::Write if fail_write.load(Ordering::SeqCst) => Err(io::Error::other("injected")),
        Step::Barrier if fail_sync.load(Ordering::SeqCst) => Err(io::Error::other("injected")),
        _ => Ok(()),
    })
}

#[test]
fn a_failed_barrier_or_torn_write_poisons_the_journal_until_reopened() {
    for (case, step) in ["sync", "write", "torn"].into_iter().enumerate() {
        if step == "write" {
            // A write failed before it wrote anything poisons nothing:
            // `a_write_that_wrote_nothing_leaves_the_journal_usable`.
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let switches: [Arc<AtomicBool>; 3] = Default::default();
        let journal = Journal::open(
            dir.path(),
            JournalOptions {
                segment_bytes: 4096,
                fault: Some(hook(
                    switches[1].clone(),
                    switches[2].clone(),
                    switches[0].clone(),
                )),
            },
        )
        .expect("open");
        journal.append(&[b"zero"]).expect("append");
        journal.append(&[b"one"]).expect("append");
        switches[case].store(true, Ordering::SeqCst);
        match journal.append(&[b"two, never acknowledged"]) {
            Err(JournalError::Poisoned { cause: Some(_) }) => {}
            other => panic!("{step}: expected poisoned with a cause: {other:?}"),
        }
        switches[case].store(false, Ordering::SeqCst);
        for _ in 0..2 {
            let err = journal.append(&[b"three"]).expect_err("poisoned");
            assert!(err.is_poisoned(), "{step}");
            assert!(matches!(err, JournalError::Poisoned { cause: None }));
        }
        assert_eq!(journal.next_seq(), 2, "{step}");
        assert_eq!(all(&journal, 0).len(), 2, "{step}: reads still work");
        drop(journal);
        let journal = open(dir.path(), 4096);
        let got = all(&journal, 0);
        match step {
            // The record reached the file, only its barrier failed: it may
            // count after a restart (it was never acknowledged either way).
            "sync" => assert_eq!(got.len(), 3, "{step}"),
            _ => assert_eq!(got.len(), 2, "{step}"),
        }
        let seq = journal.append(&[b"after restart"]).expect("append");
        assert_eq!(seq, got.len() as u64);
    }
}

#[test]
fn release_frees_whole_segments_only_and_survives_reopen_and_crashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let journal = open(path, 4096);
    // 1,300-byte payloads: three records a segment, seqs 3n..3n+2 in n.
    let mut records = Vec::new();
    for i in 0..20u64 {
        let bytes = payload(i, 1300);
        journal.append(&[&bytes]).expect("append");
        records.push((i, bytes));
    }
    journal.ahead.settle();
    let before = journal.disk_bytes();
    assert_eq!(journal.release_before(0).expect("release"), 0);
    // Records 0..7 are wanted no more: segments 0 and 1 (records 0..6) go,
    // segment 2 (6..9) holds record 7 and stays.
    let freed = journal.release_before(7).expect("release");
    assert_eq!(freed, 2 * 4096);
    assert_eq!(journal.disk_bytes(), before - freed);
    assert_eq!(journal.first_seq(), 6);
    assert_eq!(all(&journal, 6), records[6..].to_vec());
    assert!(matches!(
        journal.read_from(5),
        Err(JournalError::Released { seq: 5, first: 6 })
    ));
    assert!(!segment_path(path, 1).exists());
    // The segment being written is never released.
    journal.release_before(u64::MAX).expect("release");
    assert_eq!(journal.first_seq(), 18);
    assert_eq!(all(&journal, 18), records[18..].to_vec());
    drop(journal);

    let journal = open(path, 4096);
    assert_eq!((journal.first_seq(), journal.next_seq()), (18, 20));
    assert_eq!(all(&journal, 18), records[18..].to_vec());
    let seq = journal.append(&[b"more"]).expect("append");
    assert_eq!(seq, 20);
    drop(journal);

    // A crash undid an unlink: the released segment is removed again.
    let stale = fs::read(segment_path(path, 6)).unwrap_or_else(|_| vec![1; 4096]);
    fs::write(segment_path(path, 3), &stale).expect("resurrect");
    let journal = open(path, 4096);
    assert!(!segment_path(path, 3).exists());
    assert_eq!((journal.first_seq(), journal.next_seq()), (18, 21));
    drop(journal);

    // But a kept segment missing is damage.
    fs::remove_file(segment_path(path, 6)).expect("remove");
    assert!(matches!(
        Journal::open(path, options(4096)),
        Err(JournalError::Missing { segment: 6 })
    ));
}

#[test]
fn reads_and_releases_run_beside_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path(), 4096);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..300u64 {
                journal.append(&[&payload(i, 500)]).expect("append");
            }
        });
        let mut reads = 0;
        while !writer.is_finished() {
            let first = journal.first_seq();
            // A release may race the read's start: that is the only error.
            match journal.read_from(first) {
                Ok(records) => {
                    for (seq, bytes) in records.map(|r| r.expect("record")) {
                        assert_eq!(bytes, payload(seq, 500));
                    }
                    reads += 1;
                }
                Err(JournalError::Released { .. }) => {}
                Err(e) => panic!("{e}"),
            }
            journal
                .release_before(journal.next_seq().saturating_sub(20))
                .expect("release");
        }
        writer.join().expect("writer");
        assert!(reads > 0);
    });
    assert_eq!(journal.next_seq(), 300);
    let kept = all(&journal, journal.first_seq());
    assert_eq!(kept.last().map(|r| r.0), Some(299));
}

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    /// Release below this fraction (in 1/16) of the records.
    Release(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![0usize..200, 200usize..3000, Just(5000)].prop_map(Op::Append),
        1 => (0u8..=16).prop_map(Op::Release),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn appends_releases_and_reopens_match_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = open(dir.path(), 4096);
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut first = 0u64;
        for op in ops {
            match op {
                Op::Append(len) => {
                    let bytes = payload(model.len() as u64, len);
                    prop_assert_eq!(journal.append(&[&bytes]).expect("append"), model.len() as u64);
                    model.push(bytes);
                }
                Op::Release(sixteenths) => {
                    let seq = model.len() as u64 * u64::from(sixteenths) / 16;
                    journal.release_before(seq).expect("release");
                    let now = journal.first_seq();
                    prop_assert!(now >= first);
                    prop_assert!(now <= first.max(seq.min(model.len().saturating_sub(1) as u64)));
                    first = now;
                }
                Op::Reopen => {
                    drop(journal);
                    journal = open(dir.path(), 4096);
                }
            }
            prop_assert_eq!(journal.next_seq(), model.len() as u64);
            prop_assert_eq!(journal.first_seq(), first.min(model.len() as u64));
            let got = all(&journal, journal.first_seq());
            let want: Vec<(u64, Vec<u8>)> = model
                .iter()
                .cloned()
                .enumerate()
                .skip(journal.first_seq() as usize)
                .map(|(i, b)| (i as u64, b))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn a_write_that_wrote_nothing_leaves_the_journal_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let switches: [Arc<AtomicBool>; 3] = Default::default();
    let journal = Journal::open(
        dir.path(),
        JournalOptions {
            segment_bytes: 4096,
            fault: Some(hook(
                switches[1].clone(),
                switches[2].clone(),
                switches[0].clone(),
            )),
        },
    )
    .expect("open");
    journal.append(&[b"zero"]).expect("append");
    switches[1].store(true, Ordering::SeqCst);
    let err = journal.append(&[b"refused"]).expect_err("write fails");
    assert!(!err.is_poisoned(), "{err:?}");
    switches[1].store(false, Ordering::SeqCst);
    assert_eq!(journal.append(&[b"one"]).expect("append"), 1);
    drop(journal);
    let journal = open(dir.path(), 4096);
    let got: Vec<Vec<u8>> = all(&journal, 0).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, [b"zero".to_vec(), b"one".to_vec()]);
}

#[test]
fn the_crate_fault_switch_drives_the_hook() {
    use crate::faults::{Fault, Switch};
    let dir = tempfile::tempdir().expect("tempdir");
    let switch = Arc::new(Switch::new());
    let journal = Journal::open(
        dir.path(),
        JournalOptions {
            segment_bytes: 4096,
            fault: Some(hook_from_switch(switch.clone())),
        },
    )
    .expect("open");
    switch.set(Fault::Read);
    journal
        .append(&[b"reads are not the journal's"])
        .expect("append");
    switch.set(Fault::Full);
    match journal.append(&[b"full"]) {
        Err(JournalError::Io(e)) => assert_eq!(e.raw_os_error(), Some(28)),
        other => panic!("expected ENOSPC: {other:?}"),
    }
    switch.set(Fault::Torn);
    assert!(journal.append(&[b"torn"]).expect_err("torn").is_poisoned());
    drop(journal);
    let journal = Journal::open(
        dir.path(),
        JournalOptions {
            segment_bytes: 4096,
            fault: Some(hook_from_switch(switch.clone())),
        },
    )
    .expect("reopen");
    assert_eq!(journal.next_seq(), 1);
    switch.set(Fault::Flush);
    assert!(journal.append(&[b"x"]).expect_err("flush").is_poisoned());
}
