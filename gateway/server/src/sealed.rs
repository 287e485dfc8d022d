//! Sealed parts as the gateway sees them: what only the recipient may read,
//! signed by the sender and then encrypted to the recipient's registered
//! encryption key, so the gateway verifies, routes, logs and stores the
//! envelope around it without being able to read it.
//!
//! The format (a nested JWT, RFC 7519 §5.2: an inner compact JWS of typ
//! [`TYP`] encrypted with [`jwe`] to the recipient) and the agencies' side
//! (sealing and opening) are in the `xgate` crate's `seal` module, the
//! one that holds keys. This module holds no key that opens a part: it
//! checks a part's shape ([`check`]) and where it sits in a body
//! ([`record_part`], [`is_sealed`]).
//!
//! Error messages name the member at fault and never quote a value:
//! sealed parts carry personal data.

use serde_json::{Map, Value};

use crate::envelope::Envelope;
use crate::kind::Kind;
use crate::medical::jwe::{self, JweError};
use crate::registry::Agency;

/// The member of an envelope's body that holds its sealed part.
pub const MEMBER: &str = "sealed";
/// The inner JWS's `typ`, and the JWE's `cty`. Distinct from an envelope's
/// `typ`, so an inner JWS is never taken for an envelope (RFC 8725 §3.11).
pub const TYP: &str = "xgate-sealed+jwt";

/// Why a sealed part is refused by the gateway. Messages name what is
/// wrong, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// Not a compact JWE of the profile.
    #[error("{MEMBER}: {0}")]
    Jwe(String),
    /// The JWE's `cty` is not [`TYP`].
    #[error("{MEMBER}: the JWE's cty must be {TYP}")]
    ContentType,
    /// The JWE's `kid` is not the recipient's registered encryption key.
    #[error("{MEMBER}: the JWE is not encrypted to {0}'s registered encryption key (its kid)")]
    NotToRecipient(String),
    /// A sealed record's body carries members beside the sealed part.
    #[error(
        "a sealed record's body is exactly {{\"{MEMBER}\": \"<compact JWE>\"}}; \
         nothing may travel in clear beside it"
    )]
    BesideSealed,
    /// The sealed member is not a string.
    #[error("{MEMBER} must be a compact JWE (a string)")]
    NotAString,
}

impl From<JweError> for ShapeError {
    fn from(e: JweError) -> ShapeError {
        ShapeError::Jwe(e.to_string())
    }
}

/// The gateway's check of a sealed part addressed to `recipient`, without
/// any key: a compact JWE that [`jwe::inspect`] accepts, `cty` [`TYP`],
/// and a `kid` naming the recipient's registered encryption key.
///
/// # Errors
/// [`ShapeError`], naming what is wrong, never a value.
pub fn check(sealed: &str, recipient: &Agency) -> Result<(), ShapeError> {
    let header = jwe::inspect(sealed)?;
    if header.cty.as_deref() != Some(TYP) {
        return Err(ShapeError::ContentType);
    }
    let registered = recipient.encryption_key.get("kid").and_then(Value::as_str);
    if registered.is_none() || header.kid.as_deref() != registered {
        return Err(ShapeError::NotToRecipient(recipient.id.to_string()));
    }
    Ok(())
}

/// The sealed part of a `record.send` body: `None` for a record in clear,
/// the compact JWE for a sealed one, whose body is exactly
/// `{"sealed":"<JWE>"}`.
///
/// # Errors
/// [`ShapeError::BesideSealed`] if `sealed` is present beside other
/// members, [`ShapeError::NotAString`] if it is not a string.
pub fn record_part(body: &Map<String, Value>) -> Result<Option<&str>, ShapeError> {
    match body.get(MEMBER) {
        None => Ok(None),
        Some(Value::String(jwe)) if body.len() == 1 => Ok(Some(jwe)),
        Some(Value::String(_)) => Err(ShapeError::BesideSealed),
        Some(_) => Err(ShapeError::NotAString),
    }
}

/// Whether `envelope`'s body holds a sealed part (well formed or not):
/// a record or a medical request with a [`MEMBER`] member.
pub fn is_sealed(envelope: &Envelope) -> bool {
    matches!(envelope.kind, Kind::RecordSend | Kind::MedicalRequest)
        && envelope.body.contains_key(MEMBER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_sealed_record_body_is_the_sealed_member_alone() {
        assert_eq!(record_part(&body(json!({"subject": "x"}))), Ok(None));
        assert_eq!(
            record_part(&body(json!({"sealed": "a.b.c.d.e"}))),
            Ok(Some("a.b.c.d.e"))
        );
        let beside = body(json!({"sealed": "a.b.c.d.e", "note": "SECRET"}));
        let err = record_part(&beside).expect_err("beside").to_string();
        assert!(err.contains("exactly") && !err.contains("SECRET"), "{err}");
        let number = body(json!({"sealed": 7}));
        assert!(
            record_part(&number)
                .expect_err("number")
                .to_string()
                .contains("string")
        );
    }
}
