//! A strict reading of untrusted JSON before it is parsed for real: no key
//! may appear twice in an object, and nesting is bounded.
//!
//! RFC 8259 leaves duplicate names undefined, and parsers differ: serde_json
//! keeps the last, others keep the first. An envelope whose header or
//! claims say two things would be read one way here and another way by an
//! agency's verifier, so it is refused outright (RFC 7515 section 5.2 lets
//! a JWS parser do exactly that). The depth bound keeps the work per byte
//! constant and far below serde_json's own recursion limit.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 32;

// The messages the walker below raises through serde, recognised again
// in `check` to tell its own refusals from serde_json's syntax errors.
const DUPLICATE: &str = "a key appears twice in one object";
const TOO_DEEP: &str = "arrays and objects nest too deeply";

/// Why bytes are not strict JSON. No message quotes the input: it is an
/// envelope's header or claims, attacker-controlled and possibly personal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrictJsonError {
    /// Some object names the same key twice.
    #[error("a key appears twice in one object")]
    DuplicateKey,
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    #[error("arrays and objects nest too deeply (at most {MAX_DEPTH} levels)")]
    TooDeep,
    /// Not one JSON value; where serde_json stopped reading it.
    #[error("not valid JSON (line {line} column {column})")]
    Syntax {
        /// The line, from 1.
        line: usize,
        /// The column, from 1.
        column: usize,
    },
}

/// Checks that `bytes` is one JSON value with no duplicate key in any
/// object and at most [`MAX_DEPTH`] levels of nesting.
///
/// # Errors
/// The [`StrictJsonError`] that applies, without quoting the input.
pub fn check(bytes: &[u8]) -> Result<(), StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Strict { depth: 0 }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            // The walker can only report through serde's error type, as
            // text; its two messages are told apart by their start.
            let message = e.to_string();
            if message.starts_with(DUPLICATE) {
                StrictJsonError::DuplicateKey
            } else if message.starts_with(TOO_DEEP) {
                StrictJsonError::TooDeep
            } else {
                // Syntax errors: the position helps, the text is not quoted.
                StrictJsonError::Syntax {
                    line: e.line(),
                    column: e.column(),
                }
            }
        })
}

/// Walks one value, refusing duplicate keys and deep nesting.
struct Strict {
    depth: usize,
}

impl Strict {
    fn deeper<E: serde::de::Error>(&self) -> Result<Strict, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(TOO_DEEP));
        }
        Ok(Strict {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq
            .next_element_seed(Strict { depth: inner.depth })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(A::Error::custom(DUPLICATE));
            }
            map.next_value_seed(Strict { depth: inner.depth })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicate_keys_at_any_depth_and_names_no_value() {
        assert!(check(br#"{"a":1,"b":{"c":[1,{"d":2}]}}"#).is_ok());
        for bad in [
            &br#"{"alg":"ES256","alg":"none"}"#[..],
            br#"{"body":{"x":"secret","x":"other"}}"#,
            br#"{"a":[{"k":1,"k":2}]}"#,
            // The same name, once escaped: still the same key.
            br#"{"kid":"a","\u006bid":"b"}"#,
        ] {
            let err = check(bad).expect_err("duplicate");
            assert_eq!(err.to_string(), DUPLICATE);
        }
    }

    #[test]
    fn refuses_deep_nesting_and_garbage_without_quoting() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(
            check(deep.as_bytes())
                .expect_err("deep")
                .to_string()
                .contains("nest")
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check(ok.as_bytes()).is_ok());
        let err = check(br#"{"secret": tru}"#)
            .expect_err("syntax")
            .to_string();
        assert!(
            err.starts_with("not valid JSON") && !err.contains("secret"),
            "{err}"
        );
        assert!(check(b"{} {}").is_err(), "one value only");
        assert!(check(b"\xff").is_err());
    }
}
