//! The data directory's promises: a damaged or rolled-back journal or
//! database is refused instead of reopened as a shorter log under the same
//! key, an interrupted creation is finished, and a second opener is kept
//! out.

use std::path::Path;

use xgate_ledger::{
    CHECKPOINT_FILE, DB_DIR, DiskStore, Error, KEY_FILE, LEDGER_DIR, LOG_DIR, Log, OpenOptions,
    SledStore, Store, WriteBatch,
};

/// The parts of a data directory a backup restore would roll back.
const DATA: [&str; 3] = [DB_DIR, LEDGER_DIR, LOG_DIR];

fn open(dir: &Path) -> Result<Log<DiskStore>, Error> {
    Log::create_or_open(dir, &OpenOptions::default())
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

#[test]
fn refuses_a_database_that_lost_its_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path()).expect("create");
    log.append_batch(&["a", "b", "c"]).expect("append");
    log.checkpoint().expect("checkpoint");
    drop(log);
    std::fs::remove_dir_all(dir.path().join(DB_DIR)).expect("rm db");
    let err = open(dir.path()).err().expect("must refuse");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
}

#[test]
fn refuses_a_database_rolled_back_behind_its_last_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path()).expect("create");
    log.append(b"first").expect("append");
    log.checkpoint().expect("checkpoint");
    drop(log);
    for part in DATA {
        copy_dir(&dir.path().join(part), &backup.path().join(part));
    }

    let log = open(dir.path()).expect("reopen");
    log.append_batch(&["second", "third"]).expect("append");
    let signed = log.checkpoint().expect("checkpoint");
    drop(log);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).expect("mirror"),
        signed.note
    );

    for part in DATA {
        std::fs::remove_dir_all(dir.path().join(part)).expect("rm");
        copy_dir(&backup.path().join(part), &dir.path().join(part));
    }
    let err = open(dir.path())
        .err()
        .expect("must refuse the rolled-back database");
    assert!(
        err.to_string().contains("lost acknowledged writes"),
        "{err}"
    );
    assert!(Log::open_existing(dir.path(), &OpenOptions::default()).is_err());
}

#[test]
fn finishes_an_interrupted_creation() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The database was initialised, then the process died before the key
    // was written.
    let store = SledStore::open(&dir.path().join(DB_DIR), 1 << 20).expect("store");
    let mut batch = WriteBatch::new();
    batch.put(b"LF".to_vec(), b"xgate-ledger/3".to_vec());
    store.apply(batch).expect("init");
    store.sync().expect("sync");
    drop(store);
    assert!(!dir.path().join(KEY_FILE).exists());

    let log = open(dir.path()).expect("creation finishes");
    assert_eq!(log.size(), 0);
    assert!(dir.path().join(KEY_FILE).exists());
    log.append(b"entry").expect("append");
}

#[test]
fn refuses_a_log_whose_key_went_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path()).expect("create");
    log.append(b"entry").expect("append");
    drop(log);
    std::fs::remove_file(dir.path().join(KEY_FILE)).expect("rm key");
    let err = open(dir.path()).err().expect("must refuse");
    assert!(
        err.to_string().contains("checkpoint.key is missing"),
        "{err}"
    );
}

#[test]
fn key_file_is_private_and_origin_is_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = OpenOptions {
        origin: Some("agency.example/log".into()),
        ..OpenOptions::default()
    };
    let log = Log::create_or_open(dir.path(), &options).expect("create");
    assert_eq!(log.origin(), "agency.example/log");
    drop(log);
    let mode = std::fs::metadata(dir.path().join(KEY_FILE))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let other = OpenOptions {
        origin: Some("other.example/log".into()),
        ..OpenOptions::default()
    };
    assert!(matches!(
        Log::create_or_open(dir.path(), &other),
        Err(Error::OriginMismatch { .. })
    ));
}

#[test]
fn the_directories_and_files_the_log_writes_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("new").join("data");
    let log = open(&dir).expect("create");
    // Enough entries for a full tile, so a tile file exists.
    let entries: Vec<String> = (0..300).map(|i| format!("entry {i}")).collect();
    log.append_batch(&entries).expect("append");
    log.checkpoint().expect("checkpoint");
    drop(log);
    let mode = |p: &Path| {
        std::fs::symlink_metadata(p)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    for d in [
        root.path().join("new"),
        dir.clone(),
        dir.join(DB_DIR),
        dir.join(LEDGER_DIR),
        dir.join("ledger/journal"),
        dir.join("ledger/bodies"),
        dir.join("ledger/kept"),
        dir.join("ledger/nodes"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in [
        KEY_FILE,
        CHECKPOINT_FILE,
        "lock",
        "ledger/checkpoints",
        "ledger/integrated",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    // The tlog-tiles tree is for serving: readable, its full files immutable.
    for d in [LOG_DIR, "log/tile", "log/tile/0", "log/tile/entries"] {
        assert_eq!(mode(&dir.join(d)), 0o755, "{d}");
    }
    for f in ["log/tile/0/000", "log/tile/entries/000"] {
        assert_eq!(mode(&dir.join(f)), 0o444, "{f}");
    }
    assert_eq!(mode(&dir.join("log/checkpoint")), 0o644);
}

#[test]
fn a_second_opener_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = open(dir.path()).expect("create");
    assert!(matches!(
        Log::open_existing(dir.path(), &OpenOptions::default()),
        Err(Error::Locked(_))
    ));
}

#[test]
fn invalid_origin_creates_nothing() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("new");
    let options = OpenOptions {
        origin: Some("has space".into()),
        ..OpenOptions::default()
    };
    assert!(Log::create_or_open(&dir, &options).is_err());
    assert!(!dir.exists());
}
