//! What the gateway writes into the transparency log for each accepted
//! envelope: metadata only, in one canonical encoding that anyone can
//! recompute from the envelope (docs/ledger.md, "Gateway entries").
//!
//! The encoding is JSON with the keys in lexicographic order, no
//! whitespace, integers in decimal and every string from a restricted
//! alphabet (agency ids, kind names, the `jti` alphabet, lowercase hex), so
//! there is exactly one way to write each entry:
//!
//! ```text
//! {"aud":"treasury","decision":"allow","envelope":"<sha256 hex>","iss":"state","jti":"...","kind":"record.send","policy":"<sha256 hex>","time":1764259200,"v":1}
//! ```
//!
//! Never a body, never personal data: the envelope is represented by the
//! SHA-256 of its compact JWS, which only its holders can match.

use serde::Serialize;

use crate::envelope::Envelope;

/// Version of the entry encoding.
pub const ENTRY_VERSION: u32 = 1;

/// One log entry. Field order is the canonical key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry<'a> {
    /// Recipient agency.
    pub aud: &'a str,
    /// The policy decision that let the envelope through.
    pub decision: &'a str,
    /// Lowercase hex SHA-256 of the compact JWS.
    pub envelope: String,
    /// Sending agency.
    pub iss: &'a str,
    /// The sender's envelope id.
    pub jti: &'a str,
    /// Envelope kind.
    pub kind: &'a str,
    /// Lowercase hex SHA-256 of the policy file in force.
    pub policy: &'a str,
    /// When the gateway accepted it, seconds since the epoch.
    pub time: i64,
    /// [`ENTRY_VERSION`].
    pub v: u32,
}

impl<'a> Entry<'a> {
    /// The entry for `envelope`, accepted at `time` under the policy whose
    /// hash is `policy` with `decision`.
    pub fn of(envelope: &'a Envelope, policy: &'a str, decision: &'a str, time: i64) -> Entry<'a> {
        Entry {
            aud: envelope.aud.as_str(),
            decision,
            envelope: envelope.id(),
            iss: envelope.iss.as_str(),
            jti: &envelope.jti,
            kind: envelope.kind.as_str(),
            policy,
            time,
            v: ENTRY_VERSION,
        }
    }

    /// The canonical encoding: the bytes that are hashed into the log.
    pub fn encode(&self) -> Vec<u8> {
        // Strings and integers only: serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_sorted_compact_json() {
        let e = Entry {
            aud: "treasury",
            decision: "allow",
            envelope: "ab".repeat(32),
            iss: "state",
            jti: "j-1",
            kind: "record.send",
            policy: "cd",
            time: 1_764_259_200,
            v: 1,
        };
        let text = String::from_utf8(e.encode()).expect("utf-8");
        assert_eq!(
            text,
            format!(
                "{{\"aud\":\"treasury\",\"decision\":\"allow\",\"envelope\":\"{}\",\"iss\":\"state\",\"jti\":\"j-1\",\"kind\":\"record.send\",\"policy\":\"cd\",\"time\":1764259200,\"v\":1}}",
                "ab".repeat(32)
            )
        );
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                .expect("json")
                .keys()
                .cloned()
                .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
