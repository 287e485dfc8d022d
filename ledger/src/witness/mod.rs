//! A C2SP tlog-witness: for each log it witnesses, the latest checkpoint
//! it cosigned, and `add-checkpoint` deciding, to the letter of the spec,
//! whether to cosign a new one. No HTTP here: the outcome is typed
//! ([`Outcome`]) and the server maps it to status codes.
//!
//! - `request`: the request body's framing and limits;
//! - `outcome`: what a request gets (200, 400, 403, 404, 409, 422);
//! - `store`: the witness directory: key, per-log state, evidence of
//!   refused conflicting checkpoints, all written durably;
//! - `service` ([`Witness`]): the checks, serialised per log, and the
//!   cosignature, durable before it is answered.
//!
//! A witness promises: it never cosigns two checkpoints of one log that
//! are not consistent with each other, never cosigns a smaller tree after
//! a larger one, and a cosignature at time T means that at T this was the
//! largest tree it had seen. It keeps every log-signed checkpoint it
//! refused for conflicting with what it cosigned beside that one: two
//! log-signed checkpoints that no consistency proof joins prove a fork.

mod error;
mod outcome;
mod request;
mod service;
mod store;

pub use error::WitnessError;
pub use outcome::{Inconsistency, Outcome, SIZE_CONTENT_TYPE, TEXT_CONTENT_TYPE, Untrusted};
pub use request::{AddCheckpoint, BodyError, MAX_BODY_BYTES, MAX_PROOF_LINES, format_body};
pub use service::Witness;
pub use store::{EVIDENCE_DIR, KEY_FILE, Latest, STATE_DIR, init, load_key, origin_hash};

#[cfg(test)]
mod tests;
