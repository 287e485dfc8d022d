//! Several `PgLog`s on one database, as replicas run them: concurrent
//! appends from many threads, the change feed between them, a batch whose
//! session is killed mid-way, a replica that hangs holding the lock, and a
//! database that goes away and comes back.

mod pg_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pg_common::{copy_dir, open};
use xgate_ledger::pg::PgLog;
use xgate_ledger::turn::{Changes, TurnStart};
use xgate_ledger::{Error, StoreRead, WriteBatch};
use xgate_tests::postgres::TestPostgres;

/// What one replica's turns were told.
#[derive(Default)]
struct Told {
    keys: Vec<Vec<u8>>,
    unknown: usize,
}

/// One thread's turns on `log`: entries labelled with the index each was
/// told it gets, and one key per turn.
fn turns(log: &PgLog, replica: char, thread: u32, n: u32, told: &Mutex<Told>) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for turn in 0..n {
        let key = format!("G{replica}{thread}/{turn:03}").into_bytes();
        let count = 1 + (thread * 7 + turn) % 5;
        let committed = log
            .turn(&mut |start: &TurnStart| {
                let mut t = told.lock().expect("lock");
                match &start.changes {
                    Changes::None => {}
                    Changes::Keys(changes) => t.keys.extend(changes.iter().map(|c| c.key.clone())),
                    Changes::Unknown => t.unknown += 1,
                }
                let entries = (0..u64::from(count))
                    .map(|j| {
                        format!("{replica}/{thread}/{turn}/{j}@{}", start.next_index + j)
                            .into_bytes()
                    })
                    .collect();
                let mut batch = WriteBatch::new();
                batch.put(key.clone(), start.next_index.to_be_bytes().to_vec());
                (entries, batch)
            })
            .expect("turn");
        assert_eq!(
            committed.range.end - committed.range.start,
            u64::from(count)
        );
        keys.push(key);
    }
    keys
}

#[test]
fn two_replicas_appending_from_many_threads_share_one_log() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(db.url(), &tmp.path().join("a"));
    copy_dir(&tmp.path().join("a"), &tmp.path().join("b"));
    let b = open(db.url(), &tmp.path().join("b"));
    let (told_a, told_b) = (Mutex::new(Told::default()), Mutex::new(Told::default()));
    const THREADS: u32 = 3;
    const TURNS: u32 = 30;
    let (mut wrote_a, mut wrote_b, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    std::thread::scope(|s| {
        let mut by_a = Vec::new();
        let mut by_b = Vec::new();
        for t in 0..THREADS {
            let (a, b, told_a, told_b) = (&a, &b, &told_a, &told_b);
            by_a.push(s.spawn(move || turns(a, 'a', t, TURNS, told_a)));
            by_b.push(s.spawn(move || turns(b, 'b', t, TURNS, told_b)));
        }
        // Plain appends besides the turns, on both replicas.
        let appends: Vec<_> = [&a, &b]
            .into_iter()
            .enumerate()
            .map(|(r, log)| {
                s.spawn(move || {
                    (0..20u32)
                        .map(|i| {
                            let entries: Vec<Vec<u8>> = (0..3)
                                .map(|j| format!("plain {r}/{i}/{j}").into_bytes())
                                .collect();
                            (log.append_batch(&entries).expect("append"), entries)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in by_a {
            wrote_a.extend(h.join().expect("join"));
        }
        for h in by_b {
            wrote_b.extend(h.join().expect("join"));
        }
        for h in appends {
            plain.extend(h.join().expect("join"));
        }
    });
    // A last turn each, to hear of the other's last batches.
    let nothing = |_: &TurnStart| (Vec::new(), WriteBatch::new());
    let last = |log: &PgLog, told: &Mutex<Told>| {
        log.turn(&mut |start: &TurnStart| {
            if let Changes::Keys(changes) = &start.changes {
                let mut t = told.lock().expect("lock");
                t.keys.extend(changes.iter().map(|c| c.key.clone()));
            }
            nothing(start)
        })
        .expect("last turn");
    };
    last(&a, &told_a);
    last(&b, &told_b);

    // Every index given once, every entry where it was told it would be.
    let per_turn: u64 = (0..THREADS)
        .flat_map(|t| (0..TURNS).map(move |n| u64::from(1 + (t * 7 + n) % 5)))
        .sum();
    let size = 2 * per_turn + 2 * 20 * 3;
    assert_eq!(a.size(), size);
    assert_eq!(b.size(), size);
    let mut seen = BTreeSet::new();
    for i in 0..size {
        let entry = String::from_utf8(b.entry(i).expect("entry")).expect("utf-8");
        assert!(seen.insert(entry.clone()), "entry {entry} appears twice");
        if let Some((_, at)) = entry.split_once('@') {
            assert_eq!(at.parse::<u64>().ok(), Some(i), "{entry} is at {i}");
        }
    }
    for (range, entries) in &plain {
        for (i, e) in range.clone().zip(entries) {
            assert_eq!(&a.entry(i).expect("entry"), e);
        }
    }
    let report = a.verify().expect("verify");
    assert_eq!(report.size, size);
    assert_eq!(b.root_at(size).expect("root"), report.root);

    // Each replica was told of every key the other wrote, once, and never
    // of its own.
    for (told, theirs, ours) in [(&told_a, &wrote_b, &wrote_a), (&told_b, &wrote_a, &wrote_b)] {
        let told = told.lock().expect("lock");
        assert_eq!(told.unknown, 0);
        let mut counts: BTreeMap<&[u8], usize> = BTreeMap::new();
        for k in &told.keys {
            *counts.entry(k.as_slice()).or_default() += 1;
        }
        for k in theirs {
            assert_eq!(
                counts.get(k.as_slice()),
                Some(&1),
                "{}",
                String::from_utf8_lossy(k)
            );
        }
        for k in ours {
            assert!(!counts.contains_key(k.as_slice()), "told of its own key");
        }
        assert_eq!(told.keys.len(), theirs.len());
    }
    for k in wrote_a.iter().chain(&wrote_b) {
        assert!(a.store().get(k).expect("get").is_some());
    }
    let stats = a.stats();
    assert_eq!(stats.batches, u64::from(THREADS * TURNS) + 20);
    println!(
        "{} batches: mean lock hold {} µs, max {} µs, {:.2} round trips each",
        stats.batches,
        stats.mean_hold_us(),
        stats.hold_max_us,
        stats.round_trips as f64 / stats.batches as f64
    );
}

#[test]
fn a_batch_whose_session_is_killed_leaves_nothing_and_the_next_one_works() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(db.url(), tmp.path());
    log.append_batch(&pg_common::entries(0, 300))
        .expect("append");
    let root = log.root_at(300).expect("root");
    let result = std::thread::scope(|s| {
        let turn = s.spawn(|| {
            log.turn(&mut |start: &TurnStart| {
                // The session sits idle in its transaction, holding the
                // lock, while this sleeps.
                std::thread::sleep(Duration::from_millis(1500));
                let mut batch = WriteBatch::new();
                batch.put(b"Gdoomed".to_vec(), vec![1]);
                (
                    pg_common::entries(start.next_index, start.next_index + 50),
                    batch,
                )
            })
        });
        std::thread::sleep(Duration::from_millis(500));
        let killed = db
            .psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            )
            .expect("terminate");
        assert_eq!(killed.trim(), "1", "one session held the lock");
        turn.join().expect("join")
    });
    assert!(matches!(result, Err(Error::Store(_))), "{result:?}");
    // Nothing of it: not the entries, not the key, not the tiles.
    let other = open(db.url(), tmp.path());
    for log in [&log, &other] {
        assert_eq!(log.size(), 300);
        assert_eq!(log.store().get(b"Gdoomed").expect("get"), None);
        assert_eq!(log.root_at(300).expect("root"), root);
    }
    // The next batch gets the indices the killed one was given.
    let committed = log
        .append_batch_with(&pg_common::entries(300, 350), |_| {
            let mut batch = WriteBatch::new();
            batch.put(b"Gnext".to_vec(), vec![2]);
            batch
        })
        .expect("append after the kill");
    assert_eq!(committed.range, 300..350);
    assert!(other.store().get(b"Gnext").expect("get").is_some());
    assert_eq!(other.verify().expect("verify").size, 350);
}

#[test]
fn a_replica_that_hangs_holding_the_lock_stalls_the_others_only_until_the_server_ends_it() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let hung = open(db.url(), tmp.path());
    hung.append_batch(&pg_common::entries(0, 100))
        .expect("append");
    let other = open(db.url(), tmp.path());
    std::thread::scope(|s| {
        let turn = s.spawn(|| {
            hung.turn(&mut |start: &TurnStart| {
                // Hung mid-batch, its session idle in the transaction
                // that holds the lock: longer than the server allows.
                std::thread::sleep(Duration::from_secs(12));
                (
                    pg_common::entries(start.next_index, start.next_index + 10),
                    WriteBatch::new(),
                )
            })
        });
        std::thread::sleep(Duration::from_millis(300));
        // Another replica's batch waits for the lock, then gives up (the
        // statement timeout), answering a storage error, not hanging.
        let started = Instant::now();
        let refused = other.append(b"while the lock is held");
        assert!(matches!(refused, Err(Error::Store(_))), "{refused:?}");
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "gave up after {:?}",
            started.elapsed()
        );
        // The server ends the idle session (10 s) and its lock with it:
        // the other replica goes on by itself.
        let deadline = Instant::now() + Duration::from_secs(40);
        let index = loop {
            match other.append(b"after the hung replica") {
                Ok(index) => break index,
                Err(e) => assert!(Instant::now() < deadline, "never recovered: {e}"),
            }
        };
        assert_eq!(index, 100, "the hung batch got nothing");
        let hung_result = turn.join().expect("join");
        assert!(
            matches!(hung_result, Err(Error::Store(_))),
            "{hung_result:?}"
        );
    });
    assert_eq!(other.verify().expect("verify").size, 101);
    assert_eq!(
        other.entry(100).expect("entry"),
        b"after the hung replica".to_vec()
    );
}

#[test]
fn calls_fail_in_bounded_time_while_the_database_is_away_and_recover_by_themselves() {
    let server = xgate_tests::require_postgres!(TestPostgres::private());
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(db.url(), tmp.path());
    log.append_batch(&pg_common::entries(0, 600))
        .expect("append");
    let proof = log.inclusion(7, 600).expect("proof");

    server.stop().expect("stop");
    let started = Instant::now();
    assert!(matches!(log.append(b"while away"), Err(Error::Store(_))));
    assert!(matches!(log.entry(3), Err(Error::Store(_))));
    assert!(log.store().get(b"Gx").is_err());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // What is known is still answered.
    assert_eq!(log.size(), 600);

    server.start().expect("start");
    // No reopening: the pool replaces its dead connections.
    assert_eq!(
        log.entry(3).expect("read after restart"),
        pg_common::entries(3, 4)[0]
    );
    assert_eq!(log.inclusion(7, 600).expect("proof"), proof);
    assert_eq!(log.append(b"after").expect("append after restart"), 600);
    assert_eq!(log.verify().expect("verify").size, 601);
}

#[test]
fn calls_from_inside_an_async_task_neither_panic_nor_block_the_runtime_for_good() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(db.url(), tmp.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let size = runtime.block_on(async {
        log.append(b"from a task").expect("append");
        log.size()
    });
    assert_eq!(size, 1);
    // Dropped inside an async context too.
    runtime.block_on(async move { drop(log) });
}
