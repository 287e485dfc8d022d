//! [`Witness`]: `add-checkpoint` with tlog-witness's semantics, over the
//! state in a witness directory.
//!
//! Each log's check-and-persist runs under that log's lock, so concurrent
//! requests for one log are serialised (the spec's rollback race cannot
//! happen), and requests for different logs do not wait on each other. A
//! checkpoint is cosigned, then its note and cosignature are persisted
//! durably, and only then is the cosignature answered.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::error::WitnessError;
use super::outcome::{Inconsistency, Outcome, Untrusted};
use super::request::{AddCheckpoint, BodyError};
use super::store::{Latest, Store, load_key};
use crate::checkpoint::{Checkpoint, CheckpointError, NoteVerifier};
use crate::cosign::Cosigner;
use crate::hash::Hash;
use crate::proof::ConsistencyProof;
use crate::verify::verify_consistency;

/// One witnessed log: its trusted keys and its state.
struct Witnessed {
    keys: Vec<NoteVerifier>,
    state: Mutex<State>,
}

struct State {
    latest: Option<Latest>,
    /// A write failed: what is on disk is unknown until a restart reads it.
    failed: bool,
}

/// A witness: its cosigner, the logs it witnesses and their latest
/// cosigned checkpoints, in a directory it holds locked while open.
pub struct Witness {
    store: Store,
    cosigner: Cosigner,
    logs: HashMap<String, Witnessed>,
}

impl Witness {
    /// Opens the witness directory `dir` (made by [`super::init`]), locked
    /// for this process, to witness the logs whose verifier keys are
    /// `logs` (each log's origin is its key's name; several keys may share
    /// an origin).
    ///
    /// # Errors
    /// [`WitnessError::Locked`], [`WitnessError::NoKey`],
    /// [`WitnessError::Key`], [`WitnessError::Corrupt`],
    /// [`WitnessError::Io`].
    pub fn open(dir: &Path, logs: &[NoteVerifier]) -> Result<Witness, WitnessError> {
        let store = Store::open(dir)?;
        let cosigner = load_key(dir)?;
        Witness::with_store(store, cosigner, logs)
    }

    /// Opens the witness state in `dir`, locked for this process, signing
    /// with `cosigner`, a key kept elsewhere (a gateway's witness: its key
    /// in the federation's PKI, its state in the gateway's data
    /// directory). `dir` is created (0700, durably: it and its parent
    /// fsynced) if missing; a key file in it is not read. As
    /// [`Witness::open`] otherwise.
    ///
    /// # Errors
    /// [`WitnessError::Locked`], [`WitnessError::Corrupt`],
    /// [`WitnessError::Io`].
    pub fn open_with_key(
        dir: &Path,
        cosigner: Cosigner,
        logs: &[NoteVerifier],
    ) -> Result<Witness, WitnessError> {
        crate::fsutil::create_private_dir(dir).map_err(WitnessError::io(dir))?;
        let store = Store::open(dir)?;
        Witness::with_store(store, cosigner, logs)
    }

    fn with_store(
        store: Store,
        cosigner: Cosigner,
        logs: &[NoteVerifier],
    ) -> Result<Witness, WitnessError> {
        let mut witnessed: HashMap<String, Vec<NoteVerifier>> = HashMap::new();
        for key in logs {
            let keys = witnessed.entry(key.name().to_owned()).or_default();
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        let mut map = HashMap::with_capacity(witnessed.len());
        for (origin, keys) in witnessed {
            let latest = store.load(&origin)?;
            map.insert(
                origin,
                Witnessed {
                    keys,
                    state: Mutex::new(State {
                        latest,
                        failed: false,
                    }),
                },
            );
        }
        Ok(Witness {
            store,
            cosigner,
            logs: map,
        })
    }

    /// The witness's cosigner (its name and verifier key).
    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    /// The origins witnessed.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// The latest checkpoint cosigned for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Option<Latest> {
        let log = self.logs.get(origin)?;
        let state = log.state.lock().unwrap_or_else(|p| p.into_inner());
        state.latest.clone()
    }

    /// Handles an `add-checkpoint` request body, cosigning at the current
    /// time.
    ///
    /// # Errors
    /// As [`Witness::add_checkpoint_at`].
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<Outcome, WitnessError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // tlog-witness: the timestamp must not be zero.
        self.add_checkpoint_at(body, now.max(1))
    }

    /// Handles an `add-checkpoint` request body, cosigning at `timestamp`
    /// (POSIX seconds; tlog-witness forbids 0, which is raised to 1), with
    /// tlog-witness's checks in its order: the body
    /// (400), the origin (404), the log's signature (403), the old size
    /// against the checkpoint's (400) and against the latest cosigned
    /// (409), then consistency (422). On success the new checkpoint and
    /// its cosignature are durable before this returns.
    ///
    /// # Errors
    /// Only server-side failures: I/O on the state (then the log is
    /// refused until a restart), signing. Every refusal of the request is
    /// an [`Outcome`].
    pub fn add_checkpoint_at(&self, body: &[u8], timestamp: u64) -> Result<Outcome, WitnessError> {
        let request = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::BadRequest(e)),
        };
        let Some(log) = self.logs.get(request.origin()) else {
            return Ok(Outcome::UnknownOrigin);
        };
        let (checkpoint, text) = match trusted(&log.keys, request.note) {
            Ok(c) => c,
            Err(refusal) => return Ok(refusal),
        };
        if request.old_size > checkpoint.size {
            return Ok(Outcome::BadRequest(BodyError::OldAboveSize {
                old: request.old_size,
                size: checkpoint.size,
            }));
        }
        let mut state = log.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.failed {
            return Err(WitnessError::Failed(checkpoint.origin));
        }
        let (latest_size, latest_root) = state
            .latest
            .as_ref()
            .map_or((0, Hash::EMPTY_ROOT), |l| (l.size, l.root));
        let refuse = |reason: String| -> Result<Option<std::path::PathBuf>, WitnessError> {
            let cosigned = state.latest.as_ref().map_or("", |l| l.note.as_str());
            let body = std::str::from_utf8(body).unwrap_or_default();
            self.store
                .evidence(&checkpoint.origin, cosigned, request.note, body, &reason)
                .map(Some)
        };
        // The cosigned size with another root proves a fork by itself, so
        // it is kept as evidence whatever the old size says.
        let forked = state.latest.is_some()
            && checkpoint.size == latest_size
            && checkpoint.root != latest_root;
        if request.old_size != latest_size {
            let evidence = if forked {
                refuse(format!(
                    "conflict: size {latest_size} was cosigned with another root hash"
                ))?
            } else {
                None
            };
            return Ok(Outcome::Conflict {
                latest_size,
                evidence,
            });
        }
        // Whether a refusal is worth keeping: a log-signed checkpoint that
        // differs from the one cosigned and is not shown consistent with it.
        let mut conflicting = true;
        let inconsistent = if checkpoint.size == 0 && checkpoint.root != Hash::EMPTY_ROOT {
            Some(Inconsistency::EmptyTreeRoot)
        } else if request.old_size == 0 && !request.proof.is_empty() {
            Some(Inconsistency::ProofFromZero)
        } else if forked {
            Some(Inconsistency::RootMismatch(latest_size))
        } else if request.old_size > 0 && request.old_size < checkpoint.size {
            let proof = ConsistencyProof {
                old_size: request.old_size,
                new_size: checkpoint.size,
                hashes: request.proof.clone(),
            };
            verify_consistency(&proof, &latest_root, &checkpoint.root)
                .err()
                .map(|_| Inconsistency::BadProof {
                    old: request.old_size,
                    new: checkpoint.size,
                })
        } else if request.old_size > 0 && !request.proof.is_empty() {
            // Equal sizes and roots: the empty proof is the only proof, but
            // the checkpoint is the one cosigned.
            conflicting = false;
            Some(Inconsistency::BadProof {
                old: request.old_size,
                new: checkpoint.size,
            })
        } else {
            None
        };
        if let Some(reason) = inconsistent {
            let evidence = match reason {
                Inconsistency::RootMismatch(_) | Inconsistency::BadProof { .. } if conflicting => {
                    refuse(reason.to_string())?
                }
                _ => None,
            };
            return Ok(Outcome::Inconsistent { reason, evidence });
        }
        let lines = self.cosigner.cosign(text, timestamp.max(1))?;
        let latest = Latest {
            size: checkpoint.size,
            root: checkpoint.root,
            note: format!("{}{lines}", request.note),
        };
        if let Err(e) = self.store.save(&checkpoint.origin, &latest) {
            state.failed = true;
            return Err(e);
        }
        state.latest = Some(latest);
        Ok(Outcome::Cosigned { lines, checkpoint })
    }
}

/// Verifies `note` with the keys trusted for its origin: at least one
/// valid signature, and none from a trusted key that fails. Returns the
/// checkpoint and the signed text, or the refusal to answer.
fn trusted<'n>(keys: &[NoteVerifier], note: &'n str) -> Result<(Checkpoint, &'n str), Outcome> {
    let mut text = None;
    for key in keys {
        match key.open(note) {
            Ok(t) => text = Some(t),
            Err(CheckpointError::NoSignature(_)) => {}
            Err(CheckpointError::BadSignature(name)) => {
                return Err(Outcome::Untrusted(Untrusted::BadSignature(name)));
            }
            Err(e) => return Err(Outcome::BadRequest(BodyError::Checkpoint(e.to_string()))),
        }
    }
    let text = text.ok_or(Outcome::Untrusted(Untrusted::NoTrustedSignature))?;
    // The origin line is the keys' name: that is how they were found.
    let checkpoint = Checkpoint::parse_body(text)
        .map_err(|e| Outcome::BadRequest(BodyError::Checkpoint(e.to_string())))?;
    Ok((checkpoint, text))
}
