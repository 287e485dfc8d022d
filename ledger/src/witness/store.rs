//! The witness's directory, which it owns (0700, files 0600):
//!
//! ```text
//! DIR/witness.key                 the private key (PRIVATE+KEY+...)
//! DIR/state/<sha256(origin)>      per log, the latest cosigned checkpoint:
//!                                 the note as the log signed it, followed
//!                                 by the witness's cosignature line(s)
//! DIR/evidence/<sha256(origin)>/<id>/
//!     cosigned                    the note the witness had cosigned
//!     refused                     the log-signed note it refused
//!     request                     the whole refused request body
//!     reason                      one line: why it was refused
//! ```
//!
//! Origins are named by the lowercase hex SHA-256 of the origin, as
//! tlog-witness names them for monitoring. Every write is durable before
//! it returns: a state file is replaced atomically (temporary file,
//! fsync, rename, fsync of the directory); an evidence directory is built
//! under a temporary name, fsynced, and renamed into place without
//! replacing anything.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::WitnessError;
use crate::checkpoint::Checkpoint;
use crate::cosign::{CosignatureAlg, Cosigner};
use crate::fsutil::{create_private_dir, write_atomic};
use crate::hash::Hash;

/// The private key's file name in the witness directory.
pub const KEY_FILE: &str = "witness.key";
/// The directory of per-log state files.
pub const STATE_DIR: &str = "state";
/// The directory of evidence of refused, conflicting checkpoints.
pub const EVIDENCE_DIR: &str = "evidence";

/// The latest checkpoint a witness cosigned for one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latest {
    /// Its size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
    /// The note as stored: the log's signed note and the witness's
    /// cosignature line(s).
    pub note: String,
}

/// The lowercase hex SHA-256 of `origin`: its name in the directory.
pub fn origin_hash(origin: &str) -> String {
    hex(&Sha256::digest(origin.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a witness directory with a new key of type `alg` named `name`,
/// and returns the cosigner. Refuses to replace an existing key.
///
/// # Errors
/// [`WitnessError::KeyExists`], [`WitnessError::Key`] for a bad name or no
/// randomness, [`WitnessError::Io`].
pub fn init(dir: &Path, name: &str, alg: CosignatureAlg) -> Result<Cosigner, WitnessError> {
    let path = dir.join(KEY_FILE);
    if fs::symlink_metadata(&path).is_ok() {
        return Err(WitnessError::KeyExists(path));
    }
    let cosigner = Cosigner::generate(name, alg)?;
    create_private_dir(dir).map_err(WitnessError::io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".witness.key.")
        .tempfile_in(dir)
        .map_err(WitnessError::io(dir))?;
    let mut text = cosigner.to_private_key();
    text.push('\n');
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(WitnessError::io(&path))?;
    // Linked into place only if nothing is there: a key is never replaced,
    // even by a concurrent `init`.
    tmp.persist_noclobber(&path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            WitnessError::KeyExists(path.clone())
        } else {
            WitnessError::Io {
                path: path.clone(),
                source: e.error,
            }
        }
    })?;
    sync_dir(dir)?;
    Ok(cosigner)
}

/// Reads the witness's key.
///
/// # Errors
/// [`WitnessError::NoKey`], [`WitnessError::Key`], [`WitnessError::Io`].
pub fn load_key(dir: &Path) -> Result<Cosigner, WitnessError> {
    let path = dir.join(KEY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WitnessError::NoKey(dir.to_path_buf()));
        }
        Err(e) => return Err(WitnessError::io(&path)(e)),
    };
    Ok(Cosigner::from_private_key(&text)?)
}

/// The directory, locked for one witness process, with its state and
/// evidence subdirectories.
pub(crate) struct Store {
    dir: PathBuf,
    _lock: OwnedFd,
}

impl Store {
    /// Locks `dir` (which must exist) and makes sure its subdirectories
    /// exist, durably.
    pub(crate) fn open(dir: &Path) -> Result<Store, WitnessError> {
        if !dir.is_dir() {
            return Err(WitnessError::NoKey(dir.to_path_buf()));
        }
        let lock = crate::fsutil::open_locked_dir(dir, "witness directory").map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                WitnessError::Locked(dir.to_path_buf())
            } else {
                WitnessError::io(dir)(e)
            }
        })?;
        for sub in [STATE_DIR, EVIDENCE_DIR] {
            let path = dir.join(sub);
            create_private_dir(&path).map_err(WitnessError::io(&path))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn state_path(&self, origin: &str) -> PathBuf {
        self.dir.join(STATE_DIR).join(origin_hash(origin))
    }

    /// The latest cosigned checkpoint of `origin`, if any.
    pub(crate) fn load(&self, origin: &str) -> Result<Option<Latest>, WitnessError> {
        let path = self.state_path(origin);
        let note = match fs::read_to_string(&path) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WitnessError::io(&path)(e)),
        };
        let corrupt = |reason: String| WitnessError::Corrupt {
            path: path.clone(),
            reason,
        };
        let parsed = crate::note::parse_note(&note).map_err(|e| corrupt(e.to_string()))?;
        let checkpoint = Checkpoint::parse_body(parsed.text).map_err(|e| corrupt(e.to_string()))?;
        if checkpoint.origin != origin {
            return Err(corrupt(format!(
                "holds a checkpoint of {:?}",
                checkpoint.origin
            )));
        }
        Ok(Some(Latest {
            size: checkpoint.size,
            root: checkpoint.root,
            note,
        }))
    }

    /// Records `latest` for `origin`, durably, replacing what was there.
    pub(crate) fn save(&self, origin: &str, latest: &Latest) -> Result<(), WitnessError> {
        let path = self.state_path(origin);
        write_atomic(&path, latest.note.as_bytes(), 0o600).map_err(WitnessError::io(&path))
    }

    /// Writes evidence of a refused checkpoint of `origin` beside the one
    /// cosigned, durably, and returns its directory. The same refusal
    /// twice is kept once (the directory is named by its content); nothing
    /// is ever replaced.
    pub(crate) fn evidence(
        &self,
        origin: &str,
        cosigned: &str,
        refused: &str,
        request: &str,
        reason: &str,
    ) -> Result<PathBuf, WitnessError> {
        let parent = self.dir.join(EVIDENCE_DIR).join(origin_hash(origin));
        create_private_dir(&parent).map_err(WitnessError::io(&parent))?;
        let mut id = Sha256::new();
        for part in [cosigned, request] {
            id.update((part.len() as u64).to_be_bytes());
            id.update(part.as_bytes());
        }
        let target = parent.join(hex(&id.finalize()[..16]));
        if target.exists() {
            return Ok(target);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".evidence.")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&parent)
            .map_err(WitnessError::io(&parent))?;
        for (name, contents) in [
            ("cosigned", cosigned),
            ("refused", refused),
            ("request", request),
            ("reason", &format!("{reason}\n")),
        ] {
            let path = tmp.path().join(name);
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(WitnessError::io(&path))?;
            file.write_all(contents.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(WitnessError::io(&path))?;
        }
        sync_dir(tmp.path())?;
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp.path(),
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                // Renamed away: nothing left for the guard to remove.
                let _ = tmp.keep();
            }
            // Written meanwhile by another request: the same content.
            Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => {}
            Err(e) => return Err(WitnessError::io(&target)(e.into())),
        }
        sync_dir(&parent)?;
        Ok(target)
    }
}

fn sync_dir(dir: &Path) -> Result<(), WitnessError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WitnessError::io(dir))
}
