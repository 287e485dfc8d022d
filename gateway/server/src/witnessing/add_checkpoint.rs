//! What a witness's answer to `add-checkpoint` (C2SP tlog-witness) means
//! to the log that asked (the request body is
//! [`xgate_ledger::witness::format_body`]).

use http::StatusCode;
use xgate_ledger::witness::{SIZE_CONTENT_TYPE, parse_size_body};

use crate::outbound::Response;

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
            let sized = response.content_type.as_deref().is_some_and(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == SIZE_CONTENT_TYPE)
            });
            match parse_size_body(&response.body) {
                Some(size) if sized => Answer::Conflict(size),
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
    fn answers_are_read_as_the_spec_says() {
        let line = "\u{2014} w.example/1 AAAA\n";
        assert_eq!(
            answer(&response(200, Some("text/plain"), &format!("{line}{line}"))),
            Answer::Cosigned(vec![line.to_owned(), line.to_owned()])
        );
        assert_eq!(
            answer(&response(409, Some(SIZE_CONTENT_TYPE), "42\n")),
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
            (Some(SIZE_CONTENT_TYPE), "x\n"),
            (Some(SIZE_CONTENT_TYPE), "42"),
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
