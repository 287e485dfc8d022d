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
//! Asset envelopes add the fields an auditor needs to follow an asset
//! through the log without the state store: `tag`, the asset's tag;
//! `person`, the salted SHA-256 of the person the envelope names (never
//! the identifier itself); and for an offer, `expires`, when it lapses.
//! Medical envelopes add `purpose` (a request's HL7 ActReason code),
//! `request` (the `jti` of the request an approval, response or review is
//! about), a grant's `expires` and `uses`, and a review's `outcome`; a
//! request's `person` is the salted hash of its subject reference.
//! Absent fields are omitted, so `record.send` entries are unchanged.
//!
//! Never a body, never personal data: the envelope is represented by the
//! SHA-256 of its compact JWS, which only its holders can match, and a
//! person by a salted hash ([`person_hash`]) whose salt never leaves the
//! data directory.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xgate_ledger::{Ledger, StoreError, StoreRead, WriteBatch};

use crate::envelope::Envelope;
use crate::store_keys::Prefix;

/// Version of the entry encoding.
pub const ENTRY_VERSION: u32 = 1;

/// What the gateway decided for an envelope when it accepted it, which its
/// entry records and the state rules read (through `apply::Facts`): the
/// acceptance time, an offer's or a grant's expiry, and how many responses
/// a grant covers. The live commit takes it from its own decisions, a
/// replay from the logged entry ([`Logged::stamp`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    /// When the gateway accepted it, seconds since the epoch.
    pub time: i64,
    /// An offer's or a grant's expiry, seconds since the epoch.
    pub expires: Option<i64>,
    /// How many responses a grant covers.
    pub uses: Option<u32>,
    /// A forwarded envelope's time at the gateway that forwarded it (when
    /// that gateway logged it), seconds since the epoch: the rules judge it
    /// at that time, as its sender's gateway did.
    pub sent: Option<i64>,
}

impl Stamp {
    /// The time the rules judge the envelope at: when its sender's gateway
    /// logged it (for a forwarded envelope), else when this one did.
    pub fn rule_time(&self) -> i64 {
        self.sent.unwrap_or(self.time)
    }
}

/// One log entry. Field order is the canonical key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry<'a> {
    /// Recipient agency.
    pub aud: &'a str,
    /// The policy decision that let the envelope through.
    pub decision: &'a str,
    /// Lowercase hex SHA-256 of the compact JWS.
    pub envelope: String,
    /// An offer's expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// Sending agency.
    pub iss: &'a str,
    /// The sender's envelope id.
    pub jti: &'a str,
    /// Envelope kind.
    pub kind: &'a str,
    /// A review's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    /// Salted SHA-256 (hex) of the person the envelope names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// Lowercase hex SHA-256 of the policy file in force.
    pub policy: &'a str,
    /// A medical request's purpose of use (HL7 ActReason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<&'a str>,
    /// The `jti` of the medical request an approval, response or review is
    /// about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<&'a str>,
    /// A forwarded envelope's time at the gateway that forwarded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<i64>,
    /// The asset's tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<&'a str>,
    /// When the gateway accepted it, seconds since the epoch.
    pub time: i64,
    /// How many responses a grant covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
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
            expires: None,
            iss: envelope.iss.as_str(),
            jti: &envelope.jti,
            kind: envelope.kind.as_str(),
            outcome: None,
            person: None,
            policy,
            purpose: None,
            request: None,
            sent: None,
            tag: None,
            time,
            uses: None,
            v: ENTRY_VERSION,
        }
    }

    /// The same entry naming an asset, a person's salted hash and an offer's
    /// expiry.
    pub fn about(
        mut self,
        tag: Option<&'a str>,
        person: Option<String>,
        expires: Option<i64>,
    ) -> Entry<'a> {
        self.tag = tag;
        self.person = person;
        self.expires = expires;
        self
    }

    /// The same entry with a medical envelope's fields: a request's
    /// purpose, the request an envelope is about, a grant's uses, a
    /// review's outcome. A grant's expiry goes in `expires` ([`Entry::about`]).
    pub fn medical(
        mut self,
        purpose: Option<&'a str>,
        request: Option<&'a str>,
        uses: Option<u32>,
        outcome: Option<&'a str>,
    ) -> Entry<'a> {
        self.purpose = purpose;
        self.request = request;
        self.uses = uses;
        self.outcome = outcome;
        self
    }

    /// The same entry for an envelope forwarded by the gateway that logged
    /// it at `sent` (`None`: submitted here).
    pub fn sent(mut self, sent: Option<i64>) -> Entry<'a> {
        self.sent = sent;
        self
    }

    /// The canonical encoding: the bytes that are hashed into the log.
    ///
    /// # Errors
    /// If it cannot be encoded (it holds strings and integers only, so a
    /// bug): an entry is never logged empty.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeEntryError> {
        serde_json::to_vec(self).map_err(EncodeEntryError)
    }
}

/// An entry read back from the log, for auditing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logged {
    /// Recipient agency.
    pub aud: String,
    /// The policy decision.
    pub decision: String,
    /// Lowercase hex SHA-256 of the compact JWS.
    pub envelope: String,
    /// An offer's expiry.
    #[serde(default)]
    pub expires: Option<i64>,
    /// Sending agency.
    pub iss: String,
    /// The sender's envelope id.
    pub jti: String,
    /// Envelope kind.
    pub kind: String,
    /// A review's outcome.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Salted hash of the person named.
    #[serde(default)]
    pub person: Option<String>,
    /// Hash of the policy in force.
    pub policy: String,
    /// A medical request's purpose of use.
    #[serde(default)]
    pub purpose: Option<String>,
    /// The medical request an envelope is about.
    #[serde(default)]
    pub request: Option<String>,
    /// A forwarded envelope's time at the gateway that forwarded it.
    #[serde(default)]
    pub sent: Option<i64>,
    /// The asset's tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Acceptance time.
    pub time: i64,
    /// How many responses a grant covers.
    #[serde(default)]
    pub uses: Option<u32>,
    /// Encoding version.
    pub v: u32,
}

/// An entry that could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode a log entry: {0}")]
pub struct EncodeEntryError(#[source] serde_json::Error);

/// Why bytes read from the log are not a gateway entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Not an entry's JSON, or with fields an entry does not have.
    #[error("not a gateway entry: {0}")]
    NotAnEntry(#[source] serde_json::Error),
    /// An entry of another encoding version.
    #[error("entry version {0} is not {ENTRY_VERSION}")]
    Version(u32),
}

impl Logged {
    /// Parses an entry's bytes.
    ///
    /// # Errors
    /// If they are not a version-1 gateway entry.
    pub fn parse(bytes: &[u8]) -> Result<Logged, EntryError> {
        let logged: Logged = serde_json::from_slice(bytes).map_err(EntryError::NotAnEntry)?;
        if logged.v != ENTRY_VERSION {
            return Err(EntryError::Version(logged.v));
        }
        Ok(logged)
    }

    /// What the gateway decided when it accepted the envelope, as logged.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            time: self.time,
            expires: self.expires,
            uses: self.uses,
            sent: self.sent,
        }
    }
}

/// The salt of person hashes, created on first use. Written and synced
/// before any entry uses it. Created on the log's writer's turn, so that
/// replicas starting at once on one database agree on one salt: the turn
/// that finds one already there keeps it.
///
/// # Errors
/// A storage failure, or no randomness.
pub fn salt(log: &dyn Ledger) -> Result<[u8; 32], xgate_ledger::Error> {
    if let Some(salt) = existing_salt(log.store())? {
        return Ok(salt);
    }
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| StoreError(format!("no randomness: {e}")))?;
    let mut found = Ok(None);
    log.turn(&mut |_| {
        found = existing_salt(log.store());
        let mut batch = WriteBatch::new();
        if matches!(found, Ok(None)) {
            batch.put(Prefix::PersonSalt.bytes().to_vec(), fresh.to_vec());
        }
        (Vec::new(), batch)
    })?;
    Ok(found?.unwrap_or(fresh))
}

/// The salt, if the gateway ever made one (for replay, which never writes).
///
/// # Errors
/// A storage failure or a corrupt salt.
pub fn existing_salt(store: &dyn StoreRead) -> Result<Option<[u8; 32]>, StoreError> {
    store
        .get(Prefix::PersonSalt.bytes())?
        .map(|v| {
            v.as_slice()
                .try_into()
                .map_err(|_| StoreError("the person-hash salt is corrupt".into()))
        })
        .transpose()
}

/// What the log holds for a person: lowercase hex SHA-256 of the gateway's
/// salt followed by the identifier. Without the salt, which never leaves
/// the data directory, the hash cannot be matched to a guess.
pub fn person_hash(salt: &[u8; 32], person: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(person.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_hashes_depend_on_the_salt() {
        let h1 = person_hash(&[1; 32], "p-1");
        assert_eq!(h1.len(), 64);
        assert_ne!(h1, person_hash(&[2; 32], "p-1"));
        assert_ne!(h1, person_hash(&[1; 32], "p-2"));
        assert!(!h1.contains("p-1"));
    }

    #[test]
    fn encoding_is_sorted_compact_json() {
        let e = Entry {
            aud: "treasury",
            decision: "allow",
            envelope: "ab".repeat(32),
            expires: None,
            iss: "state",
            jti: "j-1",
            kind: "record.send",
            outcome: None,
            person: None,
            policy: "cd",
            purpose: None,
            request: None,
            sent: None,
            tag: None,
            time: 1_764_259_200,
            uses: None,
            v: 1,
        };
        let text = String::from_utf8(e.encode().expect("encodes")).expect("utf-8");
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

    #[test]
    fn asset_fields_sort_into_place_and_read_back() {
        let e = Entry {
            aud: "gsa",
            decision: "allow",
            envelope: "ab".repeat(32),
            expires: None,
            iss: "treasury",
            jti: "o-1",
            kind: "asset.transfer.offer",
            outcome: None,
            person: None,
            policy: "cd",
            purpose: None,
            request: None,
            sent: None,
            tag: None,
            time: 10,
            uses: None,
            v: 1,
        }
        .about(Some("LAP-1"), Some("ef".repeat(32)), Some(20));
        let bytes = e.encode().expect("encodes");
        assert_eq!(
            String::from_utf8(bytes.clone()).expect("utf-8"),
            format!(
                "{{\"aud\":\"gsa\",\"decision\":\"allow\",\"envelope\":\"{}\",\"expires\":20,\"iss\":\"treasury\",\"jti\":\"o-1\",\"kind\":\"asset.transfer.offer\",\"person\":\"{}\",\"policy\":\"cd\",\"tag\":\"LAP-1\",\"time\":10,\"v\":1}}",
                "ab".repeat(32),
                "ef".repeat(32)
            )
        );
        let logged = Logged::parse(&bytes).expect("parses");
        assert_eq!(logged.tag.as_deref(), Some("LAP-1"));
        assert_eq!(logged.expires, Some(20));
        assert!(Logged::parse(b"{}").is_err());
    }

    #[test]
    fn medical_fields_sort_into_place_and_read_back() {
        let e = Entry {
            aud: "hhs",
            decision: "break-glass",
            envelope: "ab".repeat(32),
            expires: None,
            iss: "state",
            jti: "r-1",
            kind: "medical.request",
            outcome: None,
            person: None,
            policy: "cd",
            purpose: None,
            request: None,
            sent: None,
            tag: None,
            time: 10,
            uses: None,
            v: 1,
        }
        .about(None, Some("ef".repeat(32)), Some(20))
        .medical(Some("ETREAT"), Some("q-1"), Some(1), Some("appropriate"));
        let text = String::from_utf8(e.encode().expect("encodes")).expect("utf-8");
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                .expect("json")
                .keys()
                .cloned()
                .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{text}");
        let logged = Logged::parse(text.as_bytes()).expect("parses");
        assert_eq!(logged.purpose.as_deref(), Some("ETREAT"));
        assert_eq!(logged.request.as_deref(), Some("q-1"));
        assert_eq!(
            (logged.uses, logged.outcome.as_deref()),
            (Some(1), Some("appropriate"))
        );
    }
}
