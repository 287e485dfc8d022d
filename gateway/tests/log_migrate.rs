//! `xgate log migrate --data-dir OLD --into NEW`: a data directory of the
//! layout before issue 19 (everything in one sled database, format
//! `xgate-ledger/2`) becomes one of the current layout with the same
//! entries, the same roots, every old checkpoint verifying, the same
//! inboxes (ids, order and envelopes) and the same state, checked by
//! reopening it and by `xgate audit replay`.
//!
//! The old directory is made here from a real gateway's: a gateway of the
//! current layout runs records, asset registrations and medical requests,
//! some inboxes are acknowledged, and its log, checkpoints and keys are
//! then written in the old layout as `ledger/src/layout.rs` of issue 18
//! defined it: `LF` = `xgate-ledger/2`, `Lz` the size, `LE` bundles of 16
//! entries (u32 big-endian length + entry), `Le` the entries of the
//! unfinished bundle, `LC` every checkpoint by size, and the gateway's `G`
//! keys with each inbox record holding its JWS and each kept envelope its
//! JWS under `Ge`.

mod federation;

use std::path::Path;

use http::StatusCode;
use serde_json::Value;
use xgate_ledger::{
    DiskStore, Log, OpenOptions, SledStore, Store, StoreRead, WriteBatch, verify_checkpoint,
};
use xgate_server::inbox::{self, InboxRecord};

use federation::{Federation, body, id, runtime, submit, xgate};

const AGENCIES: [&str; 3] = ["state", "treasury", "hhs"];

/// What a log directory holds, as the migration must keep it.
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    size: u64,
    root: xgate_ledger::Hash,
    entries: Vec<Vec<u8>>,
    /// Every inbox, whole: ids, order, envelopes.
    inboxes: Vec<Vec<InboxRecord>>,
    /// Every gateway key and value in the store.
    state: Vec<(Vec<u8>, Vec<u8>)>,
}

fn contents(log: &Log<DiskStore>) -> Contents {
    let size = log.size();
    Contents {
        size,
        root: log.root_at(size).expect("root"),
        entries: (0..size).map(|i| log.entry(i).expect("entry")).collect(),
        inboxes: AGENCIES
            .iter()
            .map(|a| {
                let (items, more) = inbox::list(log, &id(a), None, 10_000).expect("inbox");
                assert!(!more);
                items
            })
            .collect(),
        state: log
            .store()
            .scan_prefix(b"G")
            .map(|kv| kv.expect("read"))
            .collect(),
    }
}

/// Runs a gateway with some of everything, leaving some inboxes acknowledged
/// and some not; returns its data directory's root (stopped).
fn traffic() -> tempfile::TempDir {
    let fed = Federation::start();
    let state = fed.signer("state");
    let (mut client, mut treasury) = (fed.client("state"), fed.client("treasury"));
    runtime().block_on(async {
        for n in 0..300 {
            let jws = state
                .sign(
                    &id("treasury"),
                    "record.send",
                    body(&format!("record {n}")),
                    60,
                    None,
                )
                .expect("sign");
            assert_eq!(submit(&mut client, &jws).await.status, StatusCode::CREATED);
            if n % 50 == 0 {
                let asset = federation::assets::register_body(
                    &format!("STATE-LAPTOP-{n:04}"),
                    "state",
                    "p-1",
                    "hq",
                );
                let Value::Object(asset) = asset else {
                    unreachable!()
                };
                let jws = state
                    .sign(&id("state"), "asset.register", asset, 60, None)
                    .expect("sign");
                assert_eq!(submit(&mut client, &jws).await.status, StatusCode::CREATED);
            }
        }
        // A page of treasury's inbox is read and acknowledged.
        federation::ack_first_page(&mut treasury, 100).await;
    });
    let Federation { root, gateway } = fed;
    assert_eq!(gateway.stop(), Some(0));
    root
}

/// Writes the log in `from` into `to` in the layout before issue 19.
fn downgrade(from: &Path, to: &Path) {
    let log = Log::open_existing(from, &OpenOptions::default()).expect("open");
    std::fs::create_dir_all(to.join("db")).expect("mkdir");
    let old = SledStore::open(&to.join("db"), 1 << 20).expect("old store");
    let mut batch = WriteBatch::new();
    batch.put(b"LF".to_vec(), b"xgate-ledger/2".to_vec());
    let size = log.size();
    batch.put(b"Lz".to_vec(), size.to_be_bytes().to_vec());
    let key = |prefix: &[u8], n: u64| [prefix, &n.to_be_bytes()].concat();
    for bundle in 0..size / 16 {
        let mut bytes = Vec::new();
        for i in bundle * 16..(bundle + 1) * 16 {
            let e = log.entry(i).expect("entry");
            bytes.extend_from_slice(&(e.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&e);
        }
        batch.put(key(b"LE", bundle), bytes);
    }
    for i in size / 16 * 16..size {
        batch.put(key(b"Le", i), log.entry(i).expect("entry"));
    }
    for (at, note) in log.checkpoints().expect("checkpoints") {
        batch.put(key(b"LC", at), note.into_bytes());
    }
    for kv in log.store().scan_prefix(b"G") {
        let (k, v) = kv.expect("read");
        let mut value = v.clone();
        if k.starts_with(b"Gi") {
            let mut record: InboxRecord = serde_json::from_slice(&value).expect("record");
            if !record.kept {
                let jws = log.body(&k).expect("body").expect("an inbox body");
                record.jws = String::from_utf8(jws).expect("utf-8");
                value = serde_json::to_vec(&record).expect("json");
            }
        }
        batch.put(k, value);
    }
    // Kept envelopes: under `Ge` in the store, as the old layout had them.
    for index in 0..size {
        let k = inbox::kept_key(index);
        if let Some(jws) = log.body(&k).expect("kept") {
            batch.put(k, jws);
        }
    }
    old.apply(batch).expect("apply");
    old.sync().expect("sync");
    drop(old);
    // The key, the checkpoint copy and whatever else the directory holds.
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let name = entry.expect("entry").file_name();
        if ["db", "log", "ledger", "lock"]
            .iter()
            .any(|own| name == *own)
        {
            continue;
        }
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(from.join(&name))
            .arg(to.join(&name))
            .status()
            .expect("cp");
        assert!(status.success());
    }
}

#[test]
fn an_old_data_dir_migrates_to_the_same_log_inboxes_and_state() {
    let root = traffic();
    let original = root.path().join("data");
    let before = contents(&Log::open_existing(&original, &OpenOptions::default()).expect("open"));
    assert!(before.size > 300);
    assert_eq!(
        before.inboxes[1].len(),
        200,
        "a page of treasury's inbox was acknowledged"
    );

    let old = root.path().join("old");
    downgrade(&original, &old);
    // The gateway refuses the old layout, naming the command to run.
    let refused = xgate()
        .run(
            &["log", "verify", "--data-dir", &old.display().to_string()],
            b"",
        )
        .expect_error(1);
    assert!(refused.contains("xgate log migrate"), "{refused}");

    let new = root.path().join("new");
    let out = xgate()
        .run(
            &[
                "log",
                "migrate",
                "--data-dir",
                &old.display().to_string(),
                "--into",
                &new.display().to_string(),
            ],
            b"",
        )
        .expect_ok();
    let report: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["entries"], before.size);
    assert!(report["checkpoints"].as_u64().expect("checkpoints") >= 1);
    let keys = report["keys"].as_u64().expect("keys");
    assert!(keys as usize >= before.state.len(), "{report}");

    let migrated = Log::open_existing(&new, &OpenOptions::default()).expect("reopen");
    assert_eq!(contents(&migrated), before);
    // Every checkpoint of the old log verifies against the new tree.
    let verifier = migrated.verifier();
    for (at, note) in migrated.checkpoints().expect("checkpoints") {
        let c = verify_checkpoint(&note, &verifier).expect("signed");
        assert_eq!(c.size, at);
        assert_eq!(migrated.root_at(at).expect("root"), c.root, "size {at}");
    }
    drop(migrated);
    let verified = xgate()
        .run(
            &["log", "verify", "--data-dir", &new.display().to_string()],
            b"",
        )
        .expect_ok();
    assert!(verified.starts_with("ok: "), "{verified}");
    let registry = root.path().join("pki/registry.toml").display().to_string();
    let replayed = xgate()
        .run(
            &[
                "audit",
                "replay",
                "--data-dir",
                &new.display().to_string(),
                "--registry",
                &registry,
            ],
            b"",
        )
        .expect_ok();
    assert!(replayed.starts_with("ok"), "{replayed}");

    // The old directory is still the old log.
    let old_store = SledStore::open(&old.join("db"), 1 << 20).expect("old");
    assert_eq!(
        old_store.get(b"LF").expect("read").as_deref(),
        Some(&b"xgate-ledger/2"[..])
    );
    drop(old_store);

    // A second migration into a directory that is not empty is refused.
    let again = xgate()
        .run(
            &[
                "log",
                "migrate",
                "--data-dir",
                &old.display().to_string(),
                "--into",
                &new.display().to_string(),
            ],
            b"",
        )
        .expect_error(1);
    assert!(again.contains("not empty"), "{again}");
}

#[test]
fn an_interrupted_migration_is_refused_until_it_is_run_again() {
    let root = traffic();
    let old = root.path().join("old");
    downgrade(&root.path().join("data"), &old);
    let new = root.path().join("new");
    let migrate = |into: &Path| {
        xgate().run(
            &[
                "log",
                "migrate",
                "--data-dir",
                &old.display().to_string(),
                "--into",
                &into.display().to_string(),
            ],
            b"",
        )
    };
    migrate(&new).expect_ok();
    // What a crash before the last step leaves: everything but the key.
    std::fs::remove_file(new.join("checkpoint.key")).expect("rm key");
    let refused = xgate()
        .run(
            &["log", "verify", "--data-dir", &new.display().to_string()],
            b"",
        )
        .expect_error(1);
    assert!(refused.contains("checkpoint.key"), "{refused}");
    std::fs::remove_dir_all(&new).expect("rm");
    migrate(&new).expect_ok();
    let log = Log::open_existing(&new, &OpenOptions::default()).expect("reopen");
    assert!(log.size() > 300);
}
