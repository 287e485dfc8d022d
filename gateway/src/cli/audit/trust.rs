//! Who an auditor trusts: the log's verifier key and, optionally, K of a
//! list of witnesses' cosigner keys. A checkpoint is accepted when the log
//! signed it and at least K listed witnesses cosigned it; lines from keys
//! not listed are ignored (signed-note), a line from a listed key that does
//! not verify refuses the note.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use xgate_ledger::NoteVerifier;
use xgate_ledger::cosign::{Cosigned, CosignerVerifier, QuorumError, verify_quorum};

use super::super::error::Error;

/// The log's key and the witnesses required.
#[derive(Debug)]
pub struct Trust {
    /// The log's verifier key.
    pub log: NoteVerifier,
    witnesses: Vec<CosignerVerifier>,
    quorum: usize,
}

impl Trust {
    /// From `--key`, `--witness` and `--quorum`: the quorum defaults to
    /// every witness listed (0 when none is).
    ///
    /// # Errors
    /// [`Error::Request`] for a key that does not parse, or a quorum
    /// larger than the distinct witnesses listed.
    pub fn from_args(
        key: &str,
        witnesses: &[String],
        quorum: Option<usize>,
    ) -> Result<Trust, Error> {
        let log = NoteVerifier::parse(key.trim())
            .map_err(|e| Error::Request(format!("--key is not a verifier key: {e}")))?;
        let witnesses = witnesses
            .iter()
            .map(|w| {
                CosignerVerifier::parse(w.trim()).map_err(|e| {
                    Error::Request(format!("--witness {w:?} is not a cosigner key: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let quorum = quorum.unwrap_or(witnesses.len());
        let trust = Trust {
            log,
            witnesses,
            quorum,
        };
        // Refuse a quorum no note could meet before fetching anything.
        if let Err(e @ QuorumError::Impossible { .. }) = trust.verify("") {
            return Err(Error::Request(format!("--quorum: {e}")));
        }
        Ok(trust)
    }

    /// Verifies `note`: the log's signature and the quorum.
    ///
    /// # Errors
    /// Why the note is not accepted.
    pub fn verify(&self, note: &str) -> Result<Cosigned, QuorumError> {
        verify_quorum(note, &self.log, &self.witnesses, self.quorum)
    }

    /// `cosigned by K of N witnesses (a, b)`, or `signed by the log (no
    /// witnesses required)`.
    pub fn describe(&self, cosigned: &Cosigned) -> String {
        if self.witnesses.is_empty() {
            return "signed by the log (no witnesses required)".to_owned();
        }
        let names: Vec<&str> = cosigned
            .cosignatures
            .iter()
            .map(|c| c.witness.as_str())
            .collect();
        format!(
            "cosigned by {} of the {} witnesses listed ({}), {} required",
            names.len(),
            self.witnesses.len(),
            names.join(", "),
            self.quorum
        )
    }

    /// What the cosignatures say about time: the earliest cosignature (the
    /// checkpoint existed by then if that witness is honest) and the time
    /// the whole quorum vouches for. `None` without timed cosignatures.
    pub fn trusted_time(&self, cosigned: &Cosigned) -> Option<String> {
        let earliest = cosigned.earliest_time()?;
        let by = cosigned
            .cosignatures
            .iter()
            .find(|c| c.timestamp == earliest)
            .map_or("?", |c| c.witness.as_str());
        let mut line = format!(
            "{} (POSIX {earliest}), the earliest cosignature (by {by}) on the checkpoint of size {}",
            rfc3339(earliest),
            cosigned.checkpoint.checkpoint.size
        );
        if self.quorum > 1
            && let Some(all) = cosigned.time_vouched_by(self.quorum)
        {
            line.push_str(&format!(
                "; all {} of the quorum vouch for {} (POSIX {all})",
                self.quorum,
                rfc3339(all)
            ));
        }
        Some(line)
    }
}

/// POSIX seconds as RFC 3339 UTC (`2025-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), format!("@{}", u64::MAX));
    }
}
