//! The `add-checkpoint` exchange of C2SP tlog-witness, from the log's side:
//! the request body, and what the witness's answer means.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::StatusCode;

use crate::outbound::Response;
use xgate_ledger::Hash;

/// The `Content-Type` of a 409's body: the witness's latest cosigned size.
pub const SIZE_TYPE: &str = "text/x.tlog.size";

/// Most consistency proof lines a request may carry (the spec's limit;
/// RFC 9162 proofs for trees below 2^63 are never longer).
const MAX_PROOF_LINES: usize = 63;

/// The request body: `old <size>`, one base64 line per proof hash, an
/// empty line, then the signed checkpoint note.
///
/// # Panics
/// Never: a proof longer than 63 hashes cannot be built for a `u64` size;
/// a longer one is cut (and will fail at the witness with 422).
pub fn body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof.iter().take(MAX_PROOF_LINES) {
        body.push_str(&B64.encode(hash.as_bytes()));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// What a witness answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: its signature lines (each ending in `\n`), not yet verified.
    Cosigned(Vec<String>),
    /// 409: it last cosigned this size, not the old size sent.
    Conflict(u64),
    /// Any other answer: the status and the start of the body, for logs.
    Refused(StatusCode, String),
}

/// Reads a witness's response.
pub fn answer(response: &Response) -> Answer {
    let text = String::from_utf8_lossy(&response.body);
    let refused = || {
        let start: String = text.chars().take(200).collect();
        Answer::Refused(response.status, start)
    };
    match response.status {
        StatusCode::OK => {
            let lines: Vec<String> = text
                .split_inclusive('\n')
                .filter(|l| l.starts_with('\u{2014}') && l.ends_with('\n'))
                .map(str::to_owned)
                .collect();
            if lines.is_empty() {
                refused()
            } else {
                Answer::Cosigned(lines)
            }
        }
        StatusCode::CONFLICT => {
            let sized = response
                .content_type
                .as_deref()
                .is_some_and(|t| t.split(';').next().is_some_and(|t| t.trim() == SIZE_TYPE));
            match text.strip_suffix('\n').map(str::parse::<u64>) {
                Some(Ok(size)) if sized => Answer::Conflict(size),
                _ => refused(),
            }
        }
        _ => refused(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn response(status: u16, content_type: Option<&str>, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).expect("status"),
            content_type: content_type.map(str::to_owned),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn the_body_is_old_size_proof_lines_blank_line_and_note() {
        let note = "origin\n3\nAAAA\n\n\u{2014} origin sig\n";
        assert_eq!(body(0, &[], note), format!("old 0\n\n{note}"));
        let proof = [Hash([0; 32]), Hash([0xff; 32])];
        assert_eq!(
            body(2, &proof, note),
            format!(
                "old 2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
                 //////////////////////////////////////////8=\n\n{note}"
            )
        );
    }

    #[test]
    fn answers_are_read_as_the_spec_says() {
        let line = "\u{2014} w.example/1 AAAA\n";
        assert_eq!(
            answer(&response(200, Some("text/plain"), &format!("{line}{line}"))),
            Answer::Cosigned(vec![line.to_owned(), line.to_owned()])
        );
        assert_eq!(
            answer(&response(409, Some(SIZE_TYPE), "42\n")),
            Answer::Conflict(42)
        );
        assert_eq!(
            answer(&response(
                409,
                Some("text/x.tlog.size; charset=utf-8"),
                "7\n"
            )),
            Answer::Conflict(7)
        );
        // A 409 without the size type, or without a size, is a refusal.
        for (ct, body) in [
            (None, "42\n"),
            (Some("text/plain"), "42\n"),
            (Some(SIZE_TYPE), "x\n"),
            (Some(SIZE_TYPE), "42"),
        ] {
            assert!(
                matches!(answer(&response(409, ct, body)), Answer::Refused(..)),
                "{ct:?} {body:?}"
            );
        }
        // 200 without a signature line is a refusal too.
        assert!(matches!(
            answer(&response(200, None, "ok\n")),
            Answer::Refused(..)
        ));
        assert!(matches!(
            answer(&response(422, None, "bad proof")),
            Answer::Refused(StatusCode::UNPROCESSABLE_ENTITY, _)
        ));
    }
}
