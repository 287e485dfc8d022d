//! The body of a tlog-witness `add-checkpoint` request:
//!
//! ```text
//! old <decimal size, no leading zeroes>
//! <base64 hash>        (0 to 63 consistency proof lines)
//!
//! <checkpoint: a signed note>
//! ```
//!
//! Parsing checks the framing only; what the note says is checked against
//! the log's keys and the witness's state by the caller.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::hash::Hash;

/// The most consistency proof lines a client may send (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;
/// The largest request body accepted, in bytes: room for the old size
/// line, 63 proof lines and a checkpoint carrying 16 signatures of up to
/// 5 kB each (the spec asks verifiers to accept at least 16 and warns that
/// post-quantum signatures can be nearly 5 kB), with margin.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// Why a request body is malformed (400 Bad Request).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("request body of {0} bytes is over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge(usize),
    /// The body is not UTF-8.
    #[error("request body is not UTF-8")]
    NotUtf8,
    /// No empty line ends the old size and proof lines.
    #[error("no empty line between the proof and the checkpoint")]
    NoSeparator,
    /// The first line is not `old <size>` in canonical decimal.
    #[error("the first line must be `old <size>` in decimal without leading zeroes")]
    OldSize,
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    /// A proof line is not a 32-byte hash in standard base64.
    #[error("consistency proof line {0} is not a 32-byte hash in standard base64")]
    ProofLine(usize),
    /// The checkpoint is not a signed note, or its text not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    /// The old size is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldAboveSize {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
}

/// An `add-checkpoint` request, framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint<'b> {
    /// The size the client believes the witness last cosigned.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint, a signed note, as sent.
    pub note: &'b str,
}

impl<'b> AddCheckpoint<'b> {
    /// Frames `body`. The note is not checked here beyond being what
    /// follows the first empty line.
    ///
    /// # Errors
    /// [`BodyError`] naming the first fault.
    pub fn parse(body: &'b [u8]) -> Result<AddCheckpoint<'b>, BodyError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge(body.len()));
        }
        let body = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
        // Every line before the empty one is non-empty, so the first empty
        // line is the first "\n\n".
        let (head, note) = body.split_once("\n\n").ok_or(BodyError::NoSeparator)?;
        let mut lines = head.split('\n');
        let old_size = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(canonical_decimal)
            .ok_or(BodyError::OldSize)?;
        let mut proof = Vec::new();
        for (i, line) in lines.enumerate() {
            if i >= MAX_PROOF_LINES {
                return Err(BodyError::TooManyProofLines);
            }
            let hash = B64
                .decode(line)
                .ok()
                .and_then(|b| Hash::from_slice(&b))
                .ok_or(BodyError::ProofLine(i + 1))?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            note,
        })
    }

    /// The checkpoint's origin: its note's first line.
    pub fn origin(&self) -> &'b str {
        self.note.split('\n').next().unwrap_or_default()
    }
}

/// Parses ASCII decimal without leading zeroes (`0` alone for zero).
fn canonical_decimal(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Formats a request body, as a log sends it: for tests, benches and the
/// clients that submit checkpoints.
pub fn format_body(old_size: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old_size}\n");
    for hash in proof {
        body.push_str(&B64.encode(hash.as_bytes()));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "o\n1\nAAAA\n\n\u{2014} o AQIDBAU=\n";

    #[test]
    fn parses_the_spec_example_framing() {
        let body = "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let request = AddCheckpoint::parse(body.as_bytes()).expect("parses");
        assert_eq!(request.old_size, 20852014);
        assert_eq!(request.proof.len(), 4);
        assert_eq!(request.origin(), "example.com/behind-the-sofa");
        assert!(
            request
                .note
                .starts_with("example.com/behind-the-sofa\n20852163\n")
        );
        assert_eq!(
            format_body(request.old_size, &request.proof, request.note),
            body
        );
    }

    #[test]
    fn refuses_every_malformed_field() {
        let hash = B64.encode([0u8; 32]);
        let cases: Vec<(String, BodyError)> = vec![
            (format!("old 1\n{hash}\n{NOTE}"), BodyError::ProofLine(2)),
            (format!("old 1\n{hash}"), BodyError::NoSeparator),
            (format!("old 01\n\n{NOTE}"), BodyError::OldSize),
            (format!("old -1\n\n{NOTE}"), BodyError::OldSize),
            (format!("old\n\n{NOTE}"), BodyError::OldSize),
            (format!("old  1\n\n{NOTE}"), BodyError::OldSize),
            (format!("Old 1\n\n{NOTE}"), BodyError::OldSize),
            (
                format!("old 18446744073709551616\n\n{NOTE}"),
                BodyError::OldSize,
            ),
            (format!("old 1 \n\n{NOTE}"), BodyError::OldSize),
            (format!("\nold 1\n\n{NOTE}"), BodyError::OldSize),
            (format!("old 1\nAAAA\n\n{NOTE}"), BodyError::ProofLine(1)),
            (
                format!("old 1\n{hash}\n{hash} \n\n{NOTE}"),
                BodyError::ProofLine(2),
            ),
            (format!("old 1\r\n\n{NOTE}"), BodyError::OldSize),
        ];
        for (body, want) in cases {
            assert_eq!(
                AddCheckpoint::parse(body.as_bytes()),
                Err(want),
                "body {body:?}"
            );
        }
        assert_eq!(
            AddCheckpoint::parse(b"old 1\n\xff\n\n"),
            Err(BodyError::NotUtf8)
        );
        let max = format!(
            "old 1\n{}\n{NOTE}",
            format!("{hash}\n").repeat(MAX_PROOF_LINES)
        );
        assert_eq!(
            AddCheckpoint::parse(max.as_bytes()).map(|r| r.proof.len()),
            Ok(MAX_PROOF_LINES)
        );
        let over = format!(
            "old 1\n{}\n{NOTE}",
            format!("{hash}\n").repeat(MAX_PROOF_LINES + 1)
        );
        assert_eq!(
            AddCheckpoint::parse(over.as_bytes()),
            Err(BodyError::TooManyProofLines)
        );
        let big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert_eq!(
            AddCheckpoint::parse(&big),
            Err(BodyError::TooLarge(MAX_BODY_BYTES + 1))
        );
        assert_eq!(
            AddCheckpoint::parse(format!("old 0\n\n{NOTE}").as_bytes()).map(|r| r.old_size),
            Ok(0)
        );
    }
}
