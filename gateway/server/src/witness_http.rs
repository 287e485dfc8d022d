//! A C2SP tlog-witness's `add-checkpoint` over HTTP, for every witness
//! server xgate runs: `xgate witness serve` (the whole server) and the
//! witness each gateway of a federation runs for its peers' logs
//! (`POST /witness/add-checkpoint` on the main listener). Both route the
//! request their own way, then hand it here, so both answer with exactly
//! the spec's statuses, content types and bodies.
//!
//! A body longer than the witness accepts is 400 without being read
//! further; one that takes longer than [`BODY_TIMEOUT`] is 408. The check,
//! the durable write and the signature run on a blocking thread; a failure
//! there (storage) is 500, with no detail for the caller.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use xgate_ledger::witness::{
    BodyError, MAX_BODY_BYTES, Outcome, TEXT_CONTENT_TYPE, Witness, WitnessError,
};

/// The path of `add-checkpoint` below a witness's submission prefix.
pub const ADD_CHECKPOINT: &str = "/add-checkpoint";
/// Longest a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A witness's answer to one `add-checkpoint` request.
#[derive(Debug)]
pub struct Answered {
    /// The HTTP response.
    pub response: Response<Full<Bytes>>,
    /// What it was, for metrics: `cosigned`, `unknown_origin`,
    /// `untrusted`, `bad_request`, `conflict`, `inconsistent`, `timeout`
    /// or `error`.
    pub outcome: &'static str,
    /// Whether the refused checkpoint was kept as evidence of a fork.
    pub evidence: bool,
}

/// Answers the `add-checkpoint` request `req` (its path and method already
/// checked by the caller) with `witness`.
pub async fn add_checkpoint(witness: &Arc<Witness>, req: Request<Incoming>) -> Answered {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        let too_large = declared.map_or(MAX_BODY_BYTES + 1, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        return answered(&Outcome::BadRequest(BodyError::TooLarge(too_large)));
    }
    let body = Limited::new(req.into_body(), MAX_BODY_BYTES);
    let body = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return answered(&Outcome::BadRequest(BodyError::TooLarge(
                    MAX_BODY_BYTES + 1,
                )));
            }
            return Answered {
                response: text(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                ),
                outcome: "bad_request",
                evidence: false,
            };
        }
        Err(_) => {
            return Answered {
                response: text(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body took too long\n",
                ),
                outcome: "timeout",
                evidence: false,
            };
        }
    };
    let witness = Arc::clone(witness);
    // Verification, an fsync and a signature: off the async threads.
    let result = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    match result {
        Ok(Ok(outcome)) => {
            log_outcome(&outcome);
            answered(&outcome)
        }
        Ok(Err(e)) => {
            report(&e);
            failed("the witness could not record the checkpoint\n")
        }
        Err(e) => {
            tracing::error!(error = %e, "add-checkpoint task failed");
            failed("internal error\n")
        }
    }
}

/// The HTTP response for an outcome: its status, content type and body,
/// as tlog-witness prescribes.
pub fn outcome_response(outcome: &Outcome) -> Response<Full<Bytes>> {
    let status =
        StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Full::new(Bytes::from(outcome.body())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(outcome.content_type()),
    );
    response
}

/// The metrics label of an outcome.
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Cosigned { .. } => "cosigned",
        Outcome::UnknownOrigin => "unknown_origin",
        Outcome::Untrusted(_) => "untrusted",
        Outcome::BadRequest(_) => "bad_request",
        Outcome::Conflict { .. } => "conflict",
        Outcome::Inconsistent { .. } => "inconsistent",
    }
}

/// A plain-text response (`text/plain; charset=utf-8`).
pub fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    response
}

fn answered(outcome: &Outcome) -> Answered {
    let evidence = matches!(
        outcome,
        Outcome::Conflict {
            evidence: Some(_),
            ..
        } | Outcome::Inconsistent {
            evidence: Some(_),
            ..
        }
    );
    Answered {
        response: outcome_response(outcome),
        outcome: outcome_label(outcome),
        evidence,
    }
}

fn failed(body: &'static str) -> Answered {
    Answered {
        response: text(StatusCode::INTERNAL_SERVER_ERROR, body),
        outcome: "error",
        evidence: false,
    }
}

fn log_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Cosigned { checkpoint, .. } => {
            tracing::info!(origin = %checkpoint.origin, size = checkpoint.size, "cosigned");
        }
        Outcome::Conflict {
            evidence: Some(path),
            ..
        }
        | Outcome::Inconsistent {
            evidence: Some(path),
            ..
        } => {
            tracing::warn!(
                evidence = %path.display(),
                status = outcome.status(),
                "refused a checkpoint that conflicts with the one cosigned; evidence kept"
            );
        }
        other => {
            tracing::info!(status = other.status(), reason = %other.body().trim_end(), "refused");
        }
    }
}

fn report(e: &WitnessError) {
    tracing::error!(error = %e, "add-checkpoint failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::witness::{Inconsistency, Untrusted};

    #[test]
    fn every_outcome_has_the_spec_status_type_and_label() {
        let cases = [
            (
                Outcome::UnknownOrigin,
                404,
                TEXT_CONTENT_TYPE,
                "unknown_origin",
            ),
            (
                Outcome::Untrusted(Untrusted::NoTrustedSignature),
                403,
                TEXT_CONTENT_TYPE,
                "untrusted",
            ),
            (
                Outcome::BadRequest(BodyError::TooLarge(1 << 20)),
                400,
                TEXT_CONTENT_TYPE,
                "bad_request",
            ),
            (
                Outcome::Conflict {
                    latest_size: 42,
                    evidence: None,
                },
                409,
                "text/x.tlog.size",
                "conflict",
            ),
            (
                Outcome::Inconsistent {
                    reason: Inconsistency::RootMismatch(3),
                    evidence: None,
                },
                422,
                TEXT_CONTENT_TYPE,
                "inconsistent",
            ),
        ];
        for (outcome, status, content_type, label) in cases {
            let response = outcome_response(&outcome);
            assert_eq!(response.status().as_u16(), status, "{outcome:?}");
            assert_eq!(
                response.headers()[CONTENT_TYPE].to_str().expect("ascii"),
                content_type
            );
            assert_eq!(outcome_label(&outcome), label);
            assert!(!answered(&outcome).evidence);
        }
        let kept = Outcome::Inconsistent {
            reason: Inconsistency::RootMismatch(3),
            evidence: Some("e".into()),
        };
        assert!(answered(&kept).evidence);
        // The 409 body is the size and a newline, nothing else.
        let conflict = Outcome::Conflict {
            latest_size: 42,
            evidence: None,
        };
        assert_eq!(conflict.body(), "42\n");
    }
}
