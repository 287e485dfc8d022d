//! The log entry of an act a contract took (docs/contracts.md, "The acts
//! in the commit"): what an auditor reads to know which contract acted,
//! on which entry, and how it went, in one canonical encoding, as every
//! gateway entry has.
//!
//! ```text
//! {"act":"accept_offer","contract":"treasury-to-gsa-laptops","contract_hash":"<hex>","kind":"contract.act","outcome":"done","policy":"<hex>","tag":"LAP-0042","time":1796000000,"trigger":17,"v":1}
//! ```
//!
//! JSON with the keys in lexicographic order, no whitespace, integers in
//! decimal and every string from a restricted alphabet (names, lowercase
//! hex, agency ids, tags, `jti`s, codes), so there is exactly one way to
//! write each act; [`ActEntry::parse`] refuses any other. `time` is the
//! triggering entry's logged time, never the clock; a failed act names a
//! stable code in `error`, never a message.

use serde::{Deserialize, Serialize};

use super::schema::is_name;

/// The `kind` of every act entry.
pub const ACT_KIND: &str = "contract.act";

/// The version of the act entry encoding.
pub const ACT_VERSION: u32 = 1;

/// One act entry. Field order is the canonical key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActEntry {
    /// The act (`Action::name`).
    pub act: String,
    /// The contract's name.
    pub contract: String,
    /// Lowercase hex SHA-256 of the contract's canonical JSON.
    pub contract_hash: String,
    /// A deadline's name (`set_deadline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// When a deadline falls due, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<i64>,
    /// Why it failed: a stable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// [`ACT_KIND`].
    pub kind: String,
    /// `done` or `failed`.
    pub outcome: String,
    /// Lowercase hex SHA-256 of the policy file in force.
    pub policy: String,
    /// The medical request it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The asset it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The triggering entry's time, seconds since the epoch.
    pub time: i64,
    /// The agency a notice went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The triggering entry's index.
    pub trigger: u64,
    /// [`ACT_VERSION`].
    pub v: u32,
}

/// Why bytes are not an act entry.
#[derive(Debug, thiserror::Error)]
pub enum ActEntryError {
    /// Not its JSON, or with fields it does not have.
    #[error("not an act entry: {0}")]
    Json(#[source] serde_json::Error),
    /// Its JSON, but not written the one way it is written.
    #[error("an act entry not in its canonical encoding")]
    NotCanonical,
    /// A field outside what it may hold.
    #[error("an act entry with a bad {0}")]
    Field(&'static str),
}

impl ActEntry {
    /// The act `act` of `contract` (its name and hash), under the policy
    /// whose hash is `policy`, on the entry at `trigger` logged at `time`:
    /// done, naming nothing yet.
    pub fn new(
        act: &str,
        contract: &str,
        contract_hash: String,
        policy: &str,
        trigger: u64,
        time: i64,
    ) -> ActEntry {
        ActEntry {
            act: act.to_owned(),
            contract: contract.to_owned(),
            contract_hash,
            deadline: None,
            due: None,
            error: None,
            kind: ACT_KIND.to_owned(),
            outcome: "done".to_owned(),
            policy: policy.to_owned(),
            request: None,
            tag: None,
            time,
            to: None,
            trigger,
            v: ACT_VERSION,
        }
    }

    /// The same act, failed with the stable `code`.
    #[must_use]
    pub fn failed(mut self, code: &str) -> ActEntry {
        self.outcome = "failed".to_owned();
        self.error = Some(code.to_owned());
        self
    }

    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        self.error.is_some()
    }

    /// The canonical encoding: the bytes hashed into the log.
    ///
    /// # Errors
    /// Never in practice (strings and integers); reported, never logged
    /// empty.
    pub fn encode(&self) -> Result<Vec<u8>, ActEntryError> {
        serde_json::to_vec(self).map_err(ActEntryError::Json)
    }

    /// Parses an act entry's bytes, refusing any but the canonical
    /// encoding of a valid act.
    ///
    /// # Errors
    /// [`ActEntryError`] naming what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<ActEntry, ActEntryError> {
        let act: ActEntry = serde_json::from_slice(bytes).map_err(ActEntryError::Json)?;
        act.check()?;
        if act.encode()? != bytes {
            return Err(ActEntryError::NotCanonical);
        }
        Ok(act)
    }

    /// Checks every field's alphabet and the rules between them.
    fn check(&self) -> Result<(), ActEntryError> {
        let hex = |s: &str| {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        };
        let rules: [(&'static str, bool); 12] = [
            ("kind", self.kind == ACT_KIND),
            ("v", self.v == ACT_VERSION),
            ("act", is_name(&self.act.replace('_', "-"))),
            ("contract", is_name(&self.contract)),
            ("contract_hash", hex(&self.contract_hash)),
            ("policy", hex(&self.policy)),
            (
                "outcome",
                matches!(
                    (self.outcome.as_str(), &self.error),
                    ("done", None) | ("failed", Some(_))
                ),
            ),
            (
                "error",
                self.error
                    .as_deref()
                    .is_none_or(|e| is_name(&e.replace('_', "-"))),
            ),
            ("deadline", self.deadline.as_deref().is_none_or(is_name)),
            ("tag", self.tag.as_deref().is_none_or(word)),
            ("request", self.request.as_deref().is_none_or(word)),
            ("to", self.to.as_deref().is_none_or(word)),
        ];
        match rules.iter().find(|(_, ok)| !ok) {
            Some((field, _)) => Err(ActEntryError::Field(field)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted() -> ActEntry {
        ActEntry {
            act: "accept_offer".into(),
            contract: "treasury-to-gsa-laptops".into(),
            contract_hash: "a".repeat(64),
            deadline: None,
            due: None,
            error: None,
            kind: ACT_KIND.into(),
            outcome: "done".into(),
            policy: "b".repeat(64),
            request: None,
            tag: Some("LAP-0042".into()),
            time: 1_796_000_000,
            to: None,
            trigger: 17,
            v: ACT_VERSION,
        }
    }

    #[test]
    fn an_act_is_written_one_way_and_read_back() {
        let act = accepted();
        let bytes = act.encode().expect("encodes");
        let expected = format!(
            "{{\"act\":\"accept_offer\",\"contract\":\"treasury-to-gsa-laptops\",\
             \"contract_hash\":\"{}\",\"kind\":\"contract.act\",\"outcome\":\"done\",\
             \"policy\":\"{}\",\"tag\":\"LAP-0042\",\"time\":1796000000,\"trigger\":17,\"v\":1}}",
            "a".repeat(64),
            "b".repeat(64)
        );
        assert_eq!(String::from_utf8(bytes.clone()).expect("utf-8"), expected);
        assert_eq!(ActEntry::parse(&bytes).expect("parses"), act);

        let mut failed = accepted();
        failed.outcome = "failed".into();
        failed.error = Some("division_by_zero".into());
        let bytes = failed.encode().expect("encodes");
        assert_eq!(ActEntry::parse(&bytes).expect("parses"), failed);
    }

    #[test]
    fn any_other_writing_or_a_bad_field_is_refused() {
        let canonical = String::from_utf8(accepted().encode().expect("encodes")).expect("utf-8");
        let spaced = canonical.replacen(':', ": ", 1);
        assert!(matches!(
            ActEntry::parse(spaced.as_bytes()),
            Err(ActEntryError::NotCanonical)
        ));
        let extra = canonical.replacen("{", "{\"x\":1,", 1);
        assert!(matches!(
            ActEntry::parse(extra.as_bytes()),
            Err(ActEntryError::Json(_))
        ));
        /// The field a spoiled act is refused for, and how it is spoiled.
        type Spoiled = (&'static str, fn(&mut ActEntry));
        let cases: [Spoiled; 7] = [
            ("kind", |a| a.kind = "record.send".into()),
            ("v", |a| a.v = 2),
            ("contract", |a| a.contract = "Not A Name".into()),
            ("contract_hash", |a| a.contract_hash = "A".repeat(64)),
            ("outcome", |a| a.error = Some("overflow".into())),
            ("outcome", |a| a.outcome = "failed".into()),
            ("tag", |a| a.tag = Some("a tag with spaces".into())),
        ];
        for (field, spoil) in cases {
            let mut act = accepted();
            spoil(&mut act);
            let bytes = act.encode().expect("encodes");
            match ActEntry::parse(&bytes) {
                Err(ActEntryError::Field(f)) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
