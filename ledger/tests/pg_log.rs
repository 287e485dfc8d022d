//! `PgLog` against a real PostgreSQL server: the schema, opening and
//! refusing, the store contract, appends whose roots and proofs match an
//! independent computation, the tlog-tiles resources byte for byte as the
//! disk log serves them, checkpoints and verification.

mod pg_common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use pg_common::{copy_dir, entries, leaves, open, with_key};
use xgate_ledger::hash::root_of;
use xgate_ledger::pg::{self, PgLog};
use xgate_ledger::proof::{prove_consistency, prove_inclusion};
use xgate_ledger::sequencer::contract;
use xgate_ledger::tlog::{Resource, Width};
use xgate_ledger::turn::{Changes, TurnStart};
use xgate_ledger::{
    Error, Log, NoteSigner, OpenOptions, Store, StoreRead, WriteBatch, verify_checkpoint,
    verify_consistency, verify_inclusion,
};

#[test]
fn migrating_twice_changes_nothing_and_replicas_migrate_together() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let first = pg::migrate(db.url()).expect("migrate");
    assert_eq!(first.applied, vec![1]);
    assert_eq!(first.version, pg::latest_version());
    let again = pg::migrate(db.url()).expect("migrate again");
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(again.version, first.version);
    let rows = db
        .psql("SELECT version FROM xgate_schema_migrations")
        .expect("psql");
    assert_eq!(rows.trim(), "1");

    // Four at once on a fresh database: each migration applied once.
    let db = server.database();
    let url = db.url().to_owned();
    let applied: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| pg::migrate(&url).expect("migrate").applied))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    assert_eq!(applied.concat(), vec![1], "{applied:?}");
}

#[test]
fn a_database_refuses_another_logs_key_and_a_replica_without_one() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = NoteSigner::generate("xgate/hub").expect("key");
    let log = PgLog::open(db.url(), &tmp.path().join("a"), &with_key(&hub)).expect("open");
    log.append(b"one").expect("append");
    drop(log);
    let key_file = tmp.path().join("a/checkpoint.key");
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let other = NoteSigner::generate("xgate/hub").expect("key");
    let refused = PgLog::open(db.url(), &tmp.path().join("b"), &with_key(&other));
    let err = match refused {
        Err(e) => e,
        Ok(_) => panic!("another key opened the log"),
    };
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
    let message = err.to_string();
    for signer in [&hub, &other] {
        let private = signer.to_private_key();
        let public = signer.verifier().to_string();
        let secret = private.splitn(5, '+').nth(4).expect("material");
        let material = public.splitn(3, '+').nth(2).expect("material");
        assert!(
            !message.contains(secret) && !message.contains(material),
            "{message}"
        );
    }

    // No key in the data directory: refused, and no key is made there.
    let bare = tmp.path().join("c");
    let err = match PgLog::open(db.url(), &bare, &OpenOptions::default()) {
        Err(e) => e,
        Ok(_) => panic!("opened without the log's key"),
    };
    assert!(matches!(err, Error::NotALog { .. }), "{err}");
    assert!(!bare.join("checkpoint.key").exists());

    // A copy of the first replica's directory is the same log.
    copy_dir(&tmp.path().join("a"), &tmp.path().join("d"));
    let replica = open(db.url(), &tmp.path().join("d"));
    assert_eq!(replica.size(), 1);
    assert_eq!(replica.entry(0).expect("entry"), b"one");
}

#[test]
fn replicas_opening_an_empty_database_at_once_end_with_one_log() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let results: Vec<Result<String, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let dir = tmp.path().join(format!("r{i}"));
                let url = db.url().to_owned();
                s.spawn(move || {
                    PgLog::open(&url, &dir, &OpenOptions::default())
                        .map(|log| log.verifier().to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    let opened: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(opened.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            // Refused with its own key, or before it made one.
            assert!(
                matches!(e, Error::KeyMismatch { .. } | Error::NotALog { .. }),
                "{e}"
            );
        }
    }
    let stored = db.psql("SELECT vkey FROM xgate_tree").expect("psql");
    assert_eq!(stored.trim(), opened[0].as_str());
}

#[test]
fn the_store_contract_holds_on_pg_store() {
    let server = xgate_tests::require_postgres!();
    // The contract opens a store in a directory, and again in the same one:
    // each directory gets a database of its own.
    let databases = Mutex::new(HashMap::<PathBuf, xgate_tests::postgres::TestDatabase>::new());
    contract::store(|dir| {
        let mut dbs = databases.lock().expect("lock");
        let db = dbs
            .entry(dir.to_path_buf())
            .or_insert_with(|| server.database());
        open(db.url(), &dir.join("data")).store().clone()
    });
}

#[test]
fn small_writes_and_bodies_commit_with_entries() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(db.url(), tmp.path());
    let committed = log
        .append_batch_with(&entries(0, 3), |range| {
            let mut batch = WriteBatch::new();
            for i in range {
                batch.put(format!("Gi{i}").into_bytes(), i.to_be_bytes().to_vec());
            }
            batch.put_body(b"inbox/1".to_vec(), b"envelope one".to_vec());
            batch
        })
        .expect("append");
    let mut batch = WriteBatch::new();
    batch.put_kept(b"inbox/1".to_vec(), b"kept one".to_vec());
    log.commit_writes(batch).expect("commit");
    assert_eq!(committed.range, 0..3);
    assert!(committed.checkpoint.is_none());
    assert_eq!(
        log.store().get(b"Gi2").expect("get").as_deref(),
        Some(&2u64.to_be_bytes()[..])
    );
    assert_eq!(
        log.body(b"inbox/1").expect("body").as_deref(),
        Some(&b"envelope one"[..])
    );
    // Dropping the body leaves the one kept for good.
    let mut batch = WriteBatch::new();
    batch.drop_body(b"inbox/1".to_vec());
    batch.delete(b"Gi0".to_vec());
    log.commit_writes(batch).expect("commit");
    assert_eq!(
        log.body(b"inbox/1").expect("body").as_deref(),
        Some(&b"kept one"[..])
    );
    assert_eq!(log.store().get(b"Gi0").expect("get"), None);
    assert_eq!(log.size(), 3);
    assert_eq!(log.body(b"nothing").expect("body"), None);

    // The log's own keys are refused, and nothing of the batch is written.
    let err = log
        .append_batch_with(&entries(3, 4), |_| {
            let mut batch = WriteBatch::new();
            batch.put(b"Gok".to_vec(), vec![1]);
            batch.put(b"La".to_vec(), vec![1]);
            batch
        })
        .expect_err("an L key");
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(log.store().get(b"Gok").expect("get"), None);
    assert_eq!(log.size(), 3);
    let too_large = vec![0u8; 65_536];
    assert!(matches!(
        log.append(&too_large),
        Err(Error::EntryTooLarge { .. })
    ));
    assert_eq!(log.append(b"after").expect("append"), 3);

    // Scans page through more keys than a page holds, in order.
    let mut batch = WriteBatch::new();
    for i in 0..700u32 {
        batch.put(format!("Gs{i:04}").into_bytes(), vec![i as u8]);
    }
    batch.put(vec![b'G', b's', 0xff, 0xff], b"last".to_vec());
    batch.put(b"Gt".to_vec(), b"past the prefix".to_vec());
    log.commit_writes(batch).expect("commit");
    let keys: Vec<Vec<u8>> = log
        .store()
        .scan_prefix(b"Gs")
        .map(|kv| kv.expect("scan").0)
        .collect();
    assert_eq!(keys.len(), 701);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let from: Vec<Vec<u8>> = log
        .store()
        .scan_prefix_from(b"Gs", b"Gs0695")
        .map(|kv| kv.expect("scan").0)
        .collect();
    assert_eq!(from.len(), 6);
    assert_eq!(
        log.store()
            .last_with_prefix(b"Gs")
            .expect("last")
            .map(|kv| kv.1),
        Some(b"last".to_vec())
    );
    let everything = log.store().scan_prefix(b"").count();
    assert_eq!(everything, 2 + 701 + 1);
}

#[test]
fn roots_and_proofs_match_an_independent_tree_across_tile_boundaries() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(db.url(), &tmp.path().join("a"));
    copy_dir(&tmp.path().join("a"), &tmp.path().join("b"));
    let all = entries(0, 65_537 + 300);
    let hashes = leaves(&all);
    let mut size = 0u64;
    // Batches that end on either side of every boundary of the first two
    // tile levels, some of them large.
    for end in [
        1u64, 2, 255, 256, 257, 511, 512, 513, 20_000, 65_535, 65_536, 65_537, 65_837,
    ] {
        let range = log
            .append_batch(&all[size as usize..end as usize])
            .expect("append");
        assert_eq!(range, size..end);
        size = end;
        // The writer (its edge in memory) and a replica that reads the
        // tiles from the database agree with the independent tree.
        let reader = open(db.url(), &tmp.path().join("b"));
        for source in [&log, &reader] {
            assert_eq!(source.size(), size);
            let root = source.root_at(size).expect("root");
            assert_eq!(root, root_of(&hashes[..size as usize]), "root at {size}");
            let memory = pg_common::memory(&hashes, size);
            for index in [0, size / 2, size.saturating_sub(256), size - 1] {
                let proof = source.inclusion(index, size).expect("inclusion");
                assert_eq!(
                    proof,
                    prove_inclusion(&memory, index, size).expect("memory")
                );
                verify_inclusion(&proof, &hashes[index as usize], &root).expect("verifies");
                assert_eq!(
                    source.leaf_hash(index).expect("leaf"),
                    hashes[index as usize]
                );
                assert_eq!(source.entry(index).expect("entry"), all[index as usize]);
            }
            for old in [1, size / 3 + 1, size.saturating_sub(255).max(1), size] {
                let proof = source.consistency(old, size).expect("consistency");
                assert_eq!(
                    proof,
                    prove_consistency(&memory, old, size).expect("memory")
                );
                let old_root = root_of(&hashes[..old as usize]);
                verify_consistency(&proof, &old_root, &root).expect("verifies");
            }
        }
    }
    // Every full bundle and tile is one row: their chunks were merged.
    let unmerged = db
        .psql(
            "SELECT (SELECT count(*) FROM (SELECT idx FROM xgate_bundles GROUP BY idx \
               HAVING sum(entries) = 256 AND count(*) > 1) AS b) \
             + (SELECT count(*) FROM (SELECT level, idx FROM xgate_tiles GROUP BY level, idx \
               HAVING sum(octet_length(hashes)) = 8192 AND count(*) > 1) AS t)",
        )
        .expect("psql");
    assert_eq!(unmerged.trim(), "0");
    // Past sizes, from the final tree.
    for at in [3u64, 256, 300, 65_536, 65_600] {
        assert_eq!(
            log.root_at(at).expect("root"),
            root_of(&hashes[..at as usize])
        );
    }
    assert!(matches!(log.entry(size), Err(Error::OutOfRange { .. })));
    assert!(matches!(
        log.inclusion(0, size + 1),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(log.consistency(0, 1), Err(Error::Invalid(_))));
    let report = log.verify().expect("verify");
    assert_eq!(report.size, size);
    assert_eq!(report.root, root_of(&hashes));
    // 257 full tiles of level 0 and one of level 1.
    assert_eq!(report.tiles, 257 + 1);
}

/// Every tlog-tiles resource of a log of `size` entries that a server
/// serves once the checkpoint at `size` is published.
fn resources(size: u64) -> Vec<Resource> {
    let mut out = vec![Resource::Checkpoint];
    for index in 0..size / 256 {
        out.push(Resource::Bundle {
            index,
            width: Width::Full,
        });
    }
    if let Some(width) = Width::partial_at(size, 0) {
        out.push(Resource::Bundle {
            index: size / 256,
            width,
        });
    }
    for level in 0u8..4 {
        let shift = 8 * (u32::from(level) + 1);
        for index in 0..size >> shift {
            out.push(Resource::Tile {
                level,
                index,
                width: Width::Full,
            });
        }
        if let Some(width) = Width::partial_at(size, level) {
            out.push(Resource::Tile {
                level,
                index: size >> shift,
                width,
            });
        }
    }
    out
}

#[test]
fn the_tlog_tiles_resources_are_the_disk_logs_byte_for_byte() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let signer = NoteSigner::generate("example.com/pg").expect("key");
    let disk = Log::create_or_open(&tmp.path().join("disk"), &with_key(&signer)).expect("disk");
    let log = PgLog::open(db.url(), &tmp.path().join("pg"), &with_key(&signer)).expect("pg");
    let all = entries(0, 66_000);
    let mut size = 0;
    for (end, step) in [(300u64, 7usize), (66_000, 4096)] {
        for chunk in all[size as usize..end as usize].chunks(step) {
            disk.append_batch(chunk).expect("disk append");
            log.append_batch(chunk).expect("pg append");
        }
        size = end;
        let (a, b) = (
            disk.checkpoint().expect("disk"),
            log.checkpoint().expect("pg"),
        );
        // The same key signs the same checkpoint: Ed25519 is deterministic.
        assert_eq!(a, b, "checkpoints at {size}");
        for resource in resources(size) {
            let want = disk.read_public(&resource).expect("disk read");
            assert!(want.is_some(), "the disk log serves {}", resource.path());
            let got = log.read_public(&resource).expect("pg read");
            assert!(got == want, "{} differs at size {size}", resource.path());
        }
    }
    // Nothing past the size is served.
    for resource in [
        Resource::Bundle {
            index: size / 256,
            width: Width::Partial(((size % 256) + 1) as u8),
        },
        Resource::Bundle {
            index: size / 256,
            width: Width::Full,
        },
        Resource::Tile {
            level: 0,
            index: size / 256,
            width: Width::Full,
        },
        Resource::Tile {
            level: 1,
            index: size >> 16,
            width: Width::Partial(((size >> 8) % 256 + 1) as u8),
        },
        Resource::Tile {
            level: 2,
            index: 0,
            width: Width::Partial(2),
        },
        Resource::Tile {
            level: 9,
            index: 0,
            width: Width::Partial(1),
        },
    ] {
        assert_eq!(
            log.read_public(&resource).expect("read"),
            None,
            "{}",
            resource.path()
        );
    }
}

#[test]
fn checkpoints_sign_with_commits_and_on_demand_and_a_witnessed_log_serves_what_is_cosigned() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let options = OpenOptions {
        witnessed: true,
        ..OpenOptions::default()
    };
    let log = PgLog::open(db.url(), &tmp.path().join("a"), &options).expect("open");
    assert_eq!(log.latest_checkpoint(), None);
    assert_eq!(log.read_public(&Resource::Checkpoint).expect("read"), None);
    // The empty log publishes only when asked to.
    let empty = log.checkpoint().expect("checkpoint");
    assert_eq!(empty.checkpoint.size, 0);
    assert_eq!(
        log.checkpoints().expect("list"),
        vec![(0, empty.note.clone())]
    );

    log.set_checkpoint_every_commit(true);
    // A commit publishes its checkpoint if none was for a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let first = log
        .append_batch_with(&entries(0, 10), |_| WriteBatch::new())
        .expect("append");
    let signed = first.checkpoint.expect("a checkpoint per commit");
    assert_eq!(signed.checkpoint.size, 10);
    verify_checkpoint(&signed.note, &log.verifier()).expect("valid");
    assert_eq!(signed.checkpoint.root, log.root_at(10).expect("root"));
    // Published at most once a second from commits.
    let second = log.append_batch(&entries(10, 20)).expect("append");
    assert_eq!(second, 10..20);
    assert_eq!(log.latest_checkpoint().map(|c| c.checkpoint.size), Some(20));
    assert_eq!(
        log.published_checkpoint().map(|c| c.checkpoint.size),
        Some(20)
    );
    let sizes: Vec<u64> = log
        .checkpoints()
        .expect("list")
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(sizes, vec![0, 10]);
    // On demand: published at once, and the same note if asked again.
    let at20 = log.checkpoint().expect("checkpoint");
    assert_eq!(at20.checkpoint.size, 20);
    assert_eq!(log.checkpoint().expect("again"), at20);
    let sizes: Vec<u64> = log
        .checkpoints()
        .expect("list")
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(sizes, vec![0, 10, 20]);

    // Witnessed: nothing served until a cosigned note is published; never
    // backwards; only this log's notes of this tree.
    assert_eq!(log.read_public(&Resource::Checkpoint).expect("read"), None);
    assert_eq!(log.publish_cosigned(&at20.note).expect("serve"), 20);
    assert_eq!(
        log.read_public(&Resource::Checkpoint).expect("read"),
        Some(at20.note.clone().into_bytes())
    );
    assert!(matches!(
        log.publish_cosigned(&signed.note),
        Err(Error::Corrupt(_))
    ));
    let stranger = NoteSigner::generate("xgate/other").expect("key");
    let foreign = stranger.sign_note(&at20.checkpoint.body());
    assert!(matches!(
        log.publish_cosigned(&foreign),
        Err(Error::Checkpoint(_))
    ));
    // Another replica sees what was served.
    copy_dir(&tmp.path().join("a"), &tmp.path().join("b"));
    let replica = PgLog::open(db.url(), &tmp.path().join("b"), &options).expect("open");
    assert_eq!(
        replica.read_public(&Resource::Checkpoint).expect("read"),
        Some(at20.note.into_bytes())
    );
    let report = replica.verify().expect("verify");
    assert_eq!(report.checkpoints, 3);
}

#[test]
fn a_turn_reports_the_keys_others_wrote_and_commits_nothing_when_asked_for_nothing() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = open(db.url(), &tmp.path().join("a"));
    copy_dir(&tmp.path().join("a"), &tmp.path().join("b"));
    let b = open(db.url(), &tmp.path().join("b"));
    let mut nothing = |_: &TurnStart| (Vec::new(), WriteBatch::new());
    assert_eq!(a.turn(&mut nothing).expect("turn").range, 0..0);

    let mut batch = WriteBatch::new();
    batch.put(b"Gx".to_vec(), b"1".to_vec());
    batch.delete(b"Gy".to_vec());
    b.commit_writes(batch).expect("commit");
    b.append(b"by b").expect("append");
    // Writes straight to the store are batches too, in the feed.
    let mut batch = WriteBatch::new();
    batch.put(b"Gw".to_vec(), b"2".to_vec());
    Store::apply(b.store(), batch).expect("apply");
    let mut seen = None;
    a.turn(&mut |start: &TurnStart| {
        seen = Some(start.clone());
        (vec![b"by a".to_vec()], WriteBatch::new())
    })
    .expect("turn");
    let seen = seen.expect("prepared");
    assert_eq!(seen.next_index, 1);
    let Changes::Keys(keys) = seen.changes else {
        panic!("{:?}", seen.changes)
    };
    let keys: Vec<(Vec<u8>, bool)> = keys.into_iter().map(|c| (c.key, c.put)).collect();
    assert_eq!(
        keys,
        vec![
            (b"Gx".to_vec(), true),
            (b"Gy".to_vec(), false),
            (b"Gw".to_vec(), true)
        ]
    );
    // Reported once.
    let mut again = None;
    a.turn(&mut |start: &TurnStart| {
        again = Some(start.changes.clone());
        (Vec::new(), WriteBatch::new())
    })
    .expect("turn");
    assert_eq!(again, Some(Changes::None));
    assert_eq!(b.entry(1).expect("entry"), b"by a");

    // A feed pruned past where a writer stood: everything must be read again.
    let mut batch = WriteBatch::new();
    batch.put(b"Gz".to_vec(), b"1".to_vec());
    b.commit_writes(batch).expect("commit");
    db.psql("DELETE FROM xgate_changes").expect("prune");
    let mut pruned = None;
    a.turn(&mut |start: &TurnStart| {
        pruned = Some(start.changes.clone());
        (Vec::new(), WriteBatch::new())
    })
    .expect("turn");
    assert_eq!(pruned, Some(Changes::Unknown));
    let stats = a.stats();
    assert_eq!(stats.batches, 1);
    assert_eq!(stats.entries, 1);
    assert!(stats.hold_total_us > 0 && stats.hold_max_us <= stats.hold_total_us);
    assert!(stats.bytes_sent > 0);
}

#[test]
fn a_tree_that_does_not_match_its_size_is_refused_and_found_out() {
    let server = xgate_tests::require_postgres!();
    let db = server.database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(db.url(), tmp.path());
    log.append_batch(&entries(0, 600)).expect("append");
    assert_eq!(log.verify().expect("verify").tiles, 2);

    // A full tile altered behind the log's back: verify finds it.
    db.psql(
        "UPDATE xgate_tiles SET hashes = overlay(hashes placing '\\x00' from 100) \
         WHERE level = 0 AND idx = 1",
    )
    .expect("tamper");
    let err = open(db.url(), tmp.path()).verify().expect_err("tampered");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("tile 0/1"), "{err}");

    // The partial bundle's last chunk gone: the next batch's check fails
    // inside the database and nothing of the batch is committed.
    db.psql("DELETE FROM xgate_bundles WHERE idx = 2")
        .expect("tamper");
    let mut batch = WriteBatch::new();
    batch.put(b"Gnot".to_vec(), vec![1]);
    let err = log
        .append_batch_with(&entries(600, 601), |_| batch)
        .expect_err("refused");
    assert!(matches!(err, Error::Store(_)), "{err}");
    assert!(
        err.to_string()
            .contains("entry bundles do not match the tree size"),
        "{err}"
    );
    assert_eq!(log.store().get(b"Gnot").expect("get"), None);
    assert_eq!(log.size(), 600);
}
