//! Field checks shared by the envelope bodies of every kind: parsing a body
//! with errors that name the field at fault, and the alphabets of bounded
//! text and identifiers.
//!
//! Values are never quoted back in a message: bodies carry personal data,
//! and refusals reach other parties, logs and metrics.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Deserializes a body; the error names the field by its path and never
/// quotes its value.
///
/// # Errors
/// A message naming the field at fault.
pub fn from_map<T: DeserializeOwned>(body: &Map<String, Value>) -> Result<T, String> {
    // serde's own message is kept only where it names fields (missing,
    // unknown) rather than values.
    serde_path_to_error::deserialize(Value::Object(body.clone())).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if message.starts_with("missing field") || message.starts_with("unknown field") {
            if path == "." {
                message
            } else {
                format!("{path}: {message}")
            }
        } else {
            format!("{path} has the wrong type or value")
        }
    })
}

/// Checks free text: 1 to `max` characters, not blank, no control
/// characters (values are shown to people, and state keys separate their
/// parts with NUL).
///
/// # Errors
/// A message naming `field`.
pub fn bounded(value: &str, field: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(format!(
            "{field} must be 1-{max} characters, none of them control characters"
        ));
    }
    Ok(())
}

/// Checks an identifier that may reach a log entry (a tag, a `jti`): 1 to
/// `max` ASCII letters, digits, `-`, `_`, `.` or `:`.
///
/// # Errors
/// A message naming `field`.
pub fn token(value: &str, field: &str, max: usize) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(())
        .ok_or_else(|| format!("{field} must be 1-{max} letters, digits, '-', '_', '.' or ':'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_text_rules_name_the_field_never_the_value() {
        assert!(token("LAP-001:a_b.c", "tag", 64).is_ok());
        let err = token("secret value", "tag", 64).expect_err("space");
        assert!(err.contains("tag") && !err.contains("secret"), "{err}");
        assert!(token(&"a".repeat(65), "tag", 64).is_err());
        assert!(bounded("  ", "note", 10).is_err());
        assert!(bounded("a\u{0}b", "note", 10).is_err());
        assert!(bounded("ok", "note", 10).is_ok());
    }
}
