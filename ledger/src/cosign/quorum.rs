//! Checking a checkpoint against the log's key and a quorum of witnesses:
//! the log's signature must verify, and at least K of the listed witnesses
//! must have cosigned it. Signature lines from keys not listed are ignored
//! (signed-note); a line from a listed key that does not verify refuses
//! the whole note.

use super::error::{CosignError, QuorumError};
use super::key::CosignerVerifier;
use crate::checkpoint::{NoteVerifier, SignedCheckpoint, verify_checkpoint};
use crate::note::parse_note;

/// One verified cosignature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name.
    pub witness: String,
    /// The witness's key id.
    pub key_id: [u8; 4],
    /// When the witness cosigned, POSIX seconds (0: no statement on time).
    pub timestamp: u64,
    /// The signature line, without its newline.
    pub line: String,
}

/// A checkpoint the log signed and a quorum of witnesses cosigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The checkpoint and the whole note, as given.
    pub checkpoint: SignedCheckpoint,
    /// One verified cosignature per listed witness that cosigned (the
    /// earliest, if a witness signed twice), in the order of the list.
    pub cosignatures: Vec<Cosignature>,
}

impl Cosigned {
    /// The earliest time any of the witnesses vouches for: the checkpoint
    /// existed by then if that one witness is honest. `None` if no
    /// cosignature carries a time.
    pub fn earliest_time(&self) -> Option<u64> {
        self.times().into_iter().next()
    }

    /// The earliest time at least `k` witnesses vouch for (the k-th
    /// smallest timestamp): the checkpoint existed by then unless `k`
    /// witnesses lie. `None` if fewer than `k` cosignatures carry a time.
    pub fn time_vouched_by(&self, k: usize) -> Option<u64> {
        self.times().get(k.checked_sub(1)?).copied()
    }

    fn times(&self) -> Vec<u64> {
        let mut times: Vec<u64> = self
            .cosignatures
            .iter()
            .map(|c| c.timestamp)
            .filter(|&t| t > 0)
            .collect();
        times.sort_unstable();
        times
    }
}

/// Verifies `note` as a checkpoint signed by `log` and cosigned by at
/// least `quorum` distinct witnesses of `witnesses`. With a quorum of 0
/// this is the log's signature alone.
///
/// # Errors
/// [`QuorumError::Log`] for the log's signature or the checkpoint,
/// [`QuorumError::BadCosignature`] for a listed witness's line that does
/// not verify, [`QuorumError::Impossible`] for a quorum above the distinct
/// witnesses listed, [`QuorumError::TooFew`] otherwise.
pub fn verify_quorum(
    note: &str,
    log: &NoteVerifier,
    witnesses: &[CosignerVerifier],
    quorum: usize,
) -> Result<Cosigned, QuorumError> {
    let mut distinct: Vec<&CosignerVerifier> = Vec::with_capacity(witnesses.len());
    for w in witnesses {
        // One witness is one (name, key id), however often it is listed.
        if !distinct
            .iter()
            .any(|d| d.name() == w.name() && d.key_id() == w.key_id())
        {
            distinct.push(w);
        }
    }
    if quorum > distinct.len() {
        return Err(QuorumError::Impossible {
            quorum,
            witnesses: distinct.len(),
        });
    }
    let checkpoint = verify_checkpoint(note, log)?;
    let parsed = parse_note(note).map_err(crate::checkpoint::CheckpointError::from)?;
    let mut cosignatures = Vec::new();
    let mut missing = Vec::new();
    for witness in distinct {
        let mut earliest: Option<Cosignature> = None;
        for line in parsed.signatures.iter().filter(|l| witness.signed(l)) {
            let timestamp = witness.verify(parsed.text, line).map_err(|reason| {
                QuorumError::BadCosignature {
                    witness: witness.name().to_owned(),
                    reason,
                }
            })?;
            if earliest.as_ref().is_none_or(|e| timestamp < e.timestamp) {
                earliest = Some(Cosignature {
                    witness: witness.name().to_owned(),
                    key_id: witness.key_id(),
                    timestamp,
                    line: line.line.to_owned(),
                });
            }
        }
        match earliest {
            Some(c) => cosignatures.push(c),
            None => missing.push(witness.name().to_owned()),
        }
    }
    if cosignatures.len() < quorum {
        return Err(QuorumError::TooFew {
            needed: quorum,
            got: cosignatures.len(),
            missing,
        });
    }
    Ok(Cosigned {
        checkpoint: SignedCheckpoint {
            checkpoint,
            note: note.to_owned(),
        },
        cosignatures,
    })
}

/// Appends cosignature lines (as a witness answers `add-checkpoint`: lines
/// each ending in a newline) to a signed note, as tlog-witness suggests
/// clients do. The lines are checked for form only; verify the result with
/// [`verify_quorum`].
///
/// # Errors
/// [`CosignError::Note`] if `note` is not a signed note or `lines` are not
/// signature lines.
pub fn attach(note: &str, lines: &str) -> Result<String, CosignError> {
    parse_note(note)?;
    crate::note::parse_signature_lines(lines)?;
    let joined = format!("{note}{lines}");
    // The total must still be a note (within the signature limit).
    parse_note(&joined)?;
    Ok(joined)
}
