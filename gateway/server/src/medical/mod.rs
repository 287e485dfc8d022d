//! Emergency medical data exchange: a responder's agency asks the agency
//! that holds a person's records for their critical summary; the policy
//! grants an emergency request at once ("break the glass") or leaves it to
//! the holder's approval; the holder answers with a FHIR International
//! Patient Summary encrypted to the requester, which the gateway anchors
//! but can never read; and the holder's reviewer reviews every emergency
//! access afterwards. `docs/medical.md` tells the whole flow.
//!
//! - [`model`]: the bodies of `medical.request`, `medical.approve`,
//!   `medical.response` and `review.decision`; their rules are one step of
//!   the apply stage ([`crate::apply::medical`]), which the committer and
//!   a replay both run.
//! - [`state`]: where cases, the holder index and the review queue live.
//! - [`query`]: what the HTTP API shows of them, and to whom.
//! - [`pending`]: the review queue's counts for `/metrics`, kept in memory.
//! - [`jwe`]: encryption of responses to the requester's key, and
//!   inspection of a JWE without decrypting it, which is all the gateway
//!   ever does.
//! - [`section`]: the IPS sections a request names.

pub mod jwe;
pub mod model;
pub mod pending;
pub mod query;
pub mod section;
pub mod state;
