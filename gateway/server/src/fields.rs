//! Field checks shared by the envelope bodies of every kind: parsing a body
//! with errors that name the field at fault, and the alphabets of bounded
//! text and identifiers.
//!
//! Values are never quoted back in a message: bodies carry personal data,
//! and refusals reach other parties, logs and metrics.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a body field was refused. Every message names the field, by its
/// path, and none quotes its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A field the body type requires is absent, or one it does not know
    /// is present. `message` is serde's, which names the field (never a
    /// value), prefixed with the path of the object holding it.
    #[error("{message}")]
    Unexpected {
        /// serde's message, with the path when the field is nested.
        message: String,
    },
    /// A field is present but of the wrong type or out of its enum.
    #[error("{path} has the wrong type or value")]
    WrongType {
        /// The field's path, as `serde_path_to_error` writes it.
        path: String,
    },
    /// Free text is blank, too long or holds a control character.
    #[error("{field} must be 1-{max} characters, none of them control characters")]
    Text {
        /// The field, as the body names it.
        field: String,
        /// The most characters allowed.
        max: usize,
    },
    /// An identifier is empty, too long or outside its alphabet.
    #[error("{field} must be 1-{max} letters, digits, '-', '_', '.' or ':'")]
    Token {
        /// The field, as the body names it.
        field: String,
        /// The most bytes allowed.
        max: usize,
    },
}

/// Deserializes a body; the error names the field by its path and never
/// quotes its value.
///
/// # Errors
/// [`FieldError::Unexpected`] for a missing or unknown field,
/// [`FieldError::WrongType`] for a field of the wrong type or value.
pub fn from_map<T: DeserializeOwned>(body: &Map<String, Value>) -> Result<T, FieldError> {
    // serde's own message is kept only where it names fields (missing,
    // unknown) rather than values.
    serde_path_to_error::deserialize(Value::Object(body.clone())).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if message.starts_with("missing field") || message.starts_with("unknown field") {
            let message = if path == "." {
                message
            } else {
                format!("{path}: {message}")
            };
            FieldError::Unexpected { message }
        } else {
            FieldError::WrongType { path }
        }
    })
}

/// Checks free text: 1 to `max` characters, not blank, no control
/// characters (values are shown to people, and state keys separate their
/// parts with NUL).
///
/// # Errors
/// [`FieldError::Text`], naming `field`.
pub fn bounded(value: &str, field: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(FieldError::Text {
            field: field.to_owned(),
            max,
        });
    }
    Ok(())
}

/// Checks an identifier that may reach a log entry (a tag, a `jti`): 1 to
/// `max` ASCII letters, digits, `-`, `_`, `.` or `:`.
///
/// # Errors
/// [`FieldError::Token`], naming `field`.
pub fn token(value: &str, field: &str, max: usize) -> Result<(), FieldError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(()).ok_or_else(|| FieldError::Token {
        field: field.to_owned(),
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_text_rules_name_the_field_never_the_value() {
        assert!(token("LAP-001:a_b.c", "tag", 64).is_ok());
        let err = token("secret value", "tag", 64)
            .expect_err("space")
            .to_string();
        assert!(err.contains("tag") && !err.contains("secret"), "{err}");
        assert!(token(&"a".repeat(65), "tag", 64).is_err());
        assert!(bounded("  ", "note", 10).is_err());
        assert!(bounded("a\u{0}b", "note", 10).is_err());
        assert!(bounded("ok", "note", 10).is_ok());
    }
}
