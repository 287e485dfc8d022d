//! The monitor's state file and its evidence files.
//!
//! The state is one JSON file, replaced atomically and durably
//! (`fsutil::write_atomic`: temporary file, fsync, rename, fsync of the
//! directory) after each checkpoint verified, so a monitor killed at any
//! instant resumes from the last checkpoint it finished:
//!
//! ```json
//! {"version":1,"checkpoint":"<signed note>","edge":["<b64>",...],"replay":{...}}
//! ```
//!
//! `edge` is the right edge of the tree at the checkpoint's size (see
//! `tiles::edge`): with it the next checkpoint's root is recomputed from
//! the new entries alone. On load the checkpoint is verified again with
//! the log's key and the edge must hash to its root.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use xgate_ledger::{Checkpoint, Hash, NoteVerifier, verify_checkpoint};

use super::super::error::Error;
use super::entries::{EntryState, RULES};
use super::trust::rfc3339;
use crate::tiles::Edge;

/// The state file's format version.
const VERSION: u32 = 1;

/// What a monitor has verified so far.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The last checkpoint verified and its note; `None` before the first.
    pub last: Option<(Checkpoint, String)>,
    /// The tree's right edge at the last checkpoint's size.
    pub edge: Edge,
    /// The `--replay` state, if replaying.
    pub replay: Option<EntryState>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    checkpoint: String,
    edge: Vec<String>,
    #[serde(default)]
    replay: Option<EntryState>,
}

impl State {
    /// Loads `path`, or the empty state if it does not exist.
    ///
    /// # Errors
    /// [`Error::Request`] for a file that cannot be read, does not parse,
    /// whose checkpoint the key does not verify, or whose edge is not the
    /// checkpoint's.
    pub fn load(path: &Path, key: &NoteVerifier) -> Result<State, Error> {
        let bad = |why: String| Error::Request(format!("the state file {}: {why}", path.display()));
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(bad(e.to_string())),
        };
        let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if saved.version != VERSION {
            return Err(bad(format!("version {} is not {VERSION}", saved.version)));
        }
        let checkpoint = verify_checkpoint(&saved.checkpoint, key)
            .map_err(|e| bad(format!("its checkpoint does not verify with --key: {e}")))?;
        let nodes = saved
            .edge
            .iter()
            .map(|h| {
                B64.decode(h)
                    .ok()
                    .and_then(|b| Hash::from_slice(&b))
                    .ok_or_else(|| bad("its edge holds a non-hash".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let edge = Edge::from_parts(checkpoint.size, nodes).map_err(|e| bad(e.to_string()))?;
        if edge.root() != checkpoint.root {
            return Err(bad("its edge does not hash to its checkpoint's root".into()));
        }
        if let Some(replay) = &saved.replay
            && replay.rules != RULES
        {
            return Err(bad(format!(
                "its replay state was folded under earlier rules ({}, now {RULES}): use a new state file",
                replay.rules
            )));
        }
        Ok(State {
            last: Some((checkpoint, saved.checkpoint)),
            edge,
            replay: saved.replay,
        })
    }

    /// Replaces `path` with this state, durably.
    ///
    /// # Errors
    /// [`Error::Request`] if it cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let Some((_, note)) = &self.last else {
            return Ok(());
        };
        let saved = Saved {
            version: VERSION,
            checkpoint: note.clone(),
            edge: self
                .edge
                .nodes()
                .iter()
                .map(|h| B64.encode(h.as_bytes()))
                .collect(),
            replay: self.replay.clone(),
        };
        let mut json = serde_json::to_vec(&saved)
            .map_err(|e| Error::Request(format!("cannot encode the state: {e}")))?;
        json.push(b'\n');
        xgate_ledger::fsutil::write_atomic(path, &json, 0o600)
            .map_err(|e| Error::Request(format!("cannot write {}: {e}", path.display())))
    }
}

/// Writes the evidence of an inconsistent log next to the state file,
/// durably: `STATE.evidence-<unix time>.txt` with the reason, the last
/// checkpoint verified and the conflicting one, both as the log served
/// them (signed). Returns its path.
///
/// # Errors
/// [`Error::Request`] if it cannot be written.
pub fn write_evidence(
    state: &Path,
    source: &str,
    reason: &str,
    last: Option<&str>,
    conflicting: &str,
    now: u64,
) -> Result<PathBuf, Error> {
    let mut name = state.as_os_str().to_owned();
    name.push(format!(".evidence-{now}.txt"));
    let path = PathBuf::from(name);
    let text = format!(
        "xgate audit monitor: evidence that a log is inconsistent\n\
         detected: {} (POSIX {now})\n\
         log: {source}\n\
         reason: {reason}\n\
         \n\
         ----- the last checkpoint verified -----\n\
         {}\
         ----- the conflicting checkpoint, as served -----\n\
         {conflicting}{}",
        rfc3339(now),
        last.unwrap_or("(none: nothing verified yet)\n"),
        if conflicting.ends_with('\n') {
            ""
        } else {
            "\n"
        },
    );
    xgate_ledger::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
        .map_err(|e| Error::Request(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::NoteSigner;

    #[test]
    fn a_state_round_trips_and_a_tampered_edge_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        let signer = NoteSigner::from_seed("example.org/log", [7; 32]).expect("signer");
        let key = signer.verifier();
        assert!(State::load(&path, &key).expect("absent").last.is_none());
        let mut edge = Edge::default();
        for i in 0u8..5 {
            edge.push(xgate_ledger::leaf_hash(&[i]));
        }
        let checkpoint = Checkpoint {
            origin: "example.org/log".into(),
            size: 5,
            root: edge.root(),
        };
        let note = signer.sign_note(&checkpoint.body());
        let state = State {
            last: Some((checkpoint.clone(), note)),
            edge,
            replay: Some(EntryState::default()),
        };
        state.save(&path).expect("save");
        let loaded = State::load(&path, &key).expect("load");
        assert_eq!(loaded.last.map(|l| l.0), Some(checkpoint));
        assert_eq!(loaded.edge, state.edge);
        assert_eq!(loaded.replay, state.replay);
        let text = std::fs::read_to_string(&path).expect("read");
        let first = B64.encode(state.edge.nodes()[0].as_bytes());
        std::fs::write(&path, text.replace(&first, &B64.encode([0u8; 32]))).expect("tamper");
        assert!(State::load(&path, &key).is_err());
        // A replay state of earlier rules is not resumed.
        std::fs::write(&path, text.replace("\"rules\":2,", "")).expect("older");
        let older = State::load(&path, &key)
            .map(|_| ())
            .expect_err("older rules");
        assert!(older.to_string().contains("earlier rules"), "{older}");
        std::fs::write(&path, &text).expect("restore");
        assert!(State::load(&path, &key).is_ok());
        let evidence =
            write_evidence(&path, "http://x", "why", Some("a\n"), "b\n", 1).expect("evidence");
        assert!(evidence.ends_with("state.json.evidence-1.txt"));
        let text = std::fs::read_to_string(evidence).expect("read");
        assert!(text.contains("reason: why\n") && text.contains("a\n") && text.contains("b\n"));
    }
}
