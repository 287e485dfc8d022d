//! The bodies of the asset kinds, parsed and checked field by field, so
//! every refusal names the field at fault.
//!
//! ```text
//! asset.register         {"tag","serial","category","description","holder":{"agency","person"},"location"}
//! asset.transfer.offer   {"tag","to":{"agency","person"},"reason"}
//! asset.transfer.accept  {"tag","offer":"<jti of the offer>","location"?}
//! asset.transfer.reject  {"tag","offer":"<jti of the offer>"}
//! inventory.report       {"location","reported_by","observed":[{"tag","person"?}]}
//! ```
//!
//! Tags are 1-64 characters of letters, digits, `-`, `_`, `.` and `:`
//! (they go into log entries); free-text fields are 1-256 characters
//! without control characters;
//! person identifiers are opaque, 1-128 characters, and personal data:
//! they stay in the state store and never reach the log.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields::{self, FieldError, from_map};
use crate::registry::AgencyId;

/// Longest tag.
pub const MAX_TAG: usize = 64;
/// Longest free-text field.
pub const MAX_TEXT: usize = 256;
/// Longest person identifier.
pub const MAX_PERSON: usize = 128;
/// Most tags in one inventory report.
pub const MAX_OBSERVED: usize = 100_000;

/// Who holds an asset: an agency and a person in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The agency.
    pub agency: AgencyId,
    /// The person, opaque to the gateway.
    pub person: String,
}

/// `asset.register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The asset's tag, unique in the federation.
    pub tag: String,
    /// Manufacturer serial number.
    pub serial: String,
    /// Kind of asset (laptop, phone, radio...).
    pub category: String,
    /// Free text.
    pub description: String,
    /// The first holder.
    pub holder: Holder,
    /// Where it is.
    pub location: String,
}

/// `asset.transfer.offer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The asset.
    pub tag: String,
    /// The proposed next holder.
    pub to: Holder,
    /// Why.
    pub reason: String,
}

/// `asset.transfer.accept` and `asset.transfer.reject`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The asset.
    pub tag: String,
    /// The `jti` of the offer answered.
    pub offer: String,
    /// Accept only, optional: where the new holder will keep the asset, so
    /// inventory counts there expect it (otherwise it stays where it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// `contract.approve` and `contract.deny`: a second person's decision on
/// an offer a contract held (the two-person rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The asset.
    pub tag: String,
    /// The log index of the act that holds the offer.
    pub act: u64,
    /// The person deciding (logged as a salted hash); an approval must
    /// name another person than the holder who offered the asset.
    pub approver: String,
}

/// One tag seen in an inventory count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// The tag seen.
    pub tag: String,
    /// Who had it, if noted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

/// `inventory.report`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The location counted.
    pub location: String,
    /// Who counted (a person identifier).
    pub reported_by: String,
    /// What was there.
    pub observed: Vec<Observed>,
}

/// Why an asset body was refused. Every message names the field at fault
/// and none quotes a value: refusals reach the sender, logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssetBodyError {
    /// A field is missing, unknown, of the wrong type, or outside its
    /// alphabet or length.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// An answer's `offer` cannot be a `jti`.
    #[error("offer must be the jti of an offer")]
    Offer,
    /// A rejection names a `location`, which only an acceptance uses.
    #[error("location is for asset.transfer.accept only")]
    LocationOnReject,
    /// An inventory report lists more than [`MAX_OBSERVED`] tags.
    #[error("observed lists more than {MAX_OBSERVED} tags")]
    TooManyObserved,
}

/// Parses and checks a body; the error names the field.
pub trait AssetBody: Sized {
    /// Parses `body` and checks every field.
    ///
    /// # Errors
    /// [`AssetBodyError`] naming the first field at fault.
    fn parse(body: &Map<String, Value>) -> Result<Self, AssetBodyError>;
}

impl AssetBody for Register {
    fn parse(body: &Map<String, Value>) -> Result<Register, AssetBodyError> {
        let r: Register = from_map(body)?;
        check_tag(&r.tag, "tag")?;
        text(&r.serial, "serial")?;
        text(&r.category, "category")?;
        text(&r.description, "description")?;
        person(&r.holder.person, "holder.person")?;
        text(&r.location, "location")?;
        Ok(r)
    }
}

impl AssetBody for Offer {
    fn parse(body: &Map<String, Value>) -> Result<Offer, AssetBodyError> {
        let o: Offer = from_map(body)?;
        check_tag(&o.tag, "tag")?;
        person(&o.to.person, "to.person")?;
        text(&o.reason, "reason")?;
        Ok(o)
    }
}

impl AssetBody for Answer {
    fn parse(body: &Map<String, Value>) -> Result<Answer, AssetBodyError> {
        let a: Answer = from_map(body)?;
        check_tag(&a.tag, "tag")?;
        // Only the length: the offer is compared with the jti of the
        // asset's open offer, so a value that is no jti matches none and
        // is refused when the answer is applied.
        if a.offer.is_empty() || a.offer.len() > crate::envelope::MAX_JTI_LEN {
            return Err(AssetBodyError::Offer);
        }
        if let Some(location) = &a.location {
            text(location, "location")?;
        }
        Ok(a)
    }
}

impl Answer {
    /// Parses a rejection: an answer without the accept-only `location`.
    ///
    /// # Errors
    /// [`AssetBodyError`] naming the field at fault.
    pub fn parse_reject(body: &Map<String, Value>) -> Result<Answer, AssetBodyError> {
        let a = Answer::parse(body)?;
        if a.location.is_some() {
            return Err(AssetBodyError::LocationOnReject);
        }
        Ok(a)
    }
}

impl AssetBody for Approval {
    fn parse(body: &Map<String, Value>) -> Result<Approval, AssetBodyError> {
        let a: Approval = from_map(body)?;
        check_tag(&a.tag, "tag")?;
        person(&a.approver, "approver")?;
        Ok(a)
    }
}

impl AssetBody for Report {
    fn parse(body: &Map<String, Value>) -> Result<Report, AssetBodyError> {
        let r: Report = from_map(body)?;
        text(&r.location, "location")?;
        person(&r.reported_by, "reported_by")?;
        if r.observed.len() > MAX_OBSERVED {
            return Err(AssetBodyError::TooManyObserved);
        }
        for (i, o) in r.observed.iter().enumerate() {
            check_tag(&o.tag, &format!("observed[{i}].tag"))?;
            if let Some(p) = &o.person {
                person(p, &format!("observed[{i}].person"))?;
            }
        }
        Ok(r)
    }
}

/// Checks a tag's alphabet and length; the error names `field`.
///
/// # Errors
/// [`FieldError::Token`], naming `field`.
pub fn check_tag(value: &str, field: &str) -> Result<(), FieldError> {
    fields::token(value, field, MAX_TAG)
}

/// Checks a free-text field (serial, category, description, location,
/// reason).
fn text(value: &str, field: &str) -> Result<(), FieldError> {
    fields::bounded(value, field, MAX_TEXT)
}

/// Checks a person identifier: opaque, so only its length and alphabet.
fn person(value: &str, field: &str) -> Result<(), FieldError> {
    fields::bounded(value, field, MAX_PERSON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_valid_register_parses() {
        let r = Register::parse(&map(
            json!({"tag": "LAP-001", "serial": "SN1", "category": "laptop",
            "description": "ThinkPad", "holder": {"agency": "treasury", "person": "p-17"},
            "location": "HQ-3"}),
        ))
        .expect("valid");
        assert_eq!(r.holder.agency.as_str(), "treasury");
    }

    #[test]
    fn refusals_name_the_field_and_never_echo_values() {
        let cases = [
            (
                json!({"tag": "bad tag", "to": {"agency": "gsa", "person": "p"}, "reason": "r"}),
                "tag",
            ),
            (
                json!({"tag": "T1", "to": {"agency": "gsa", "person": ""}, "reason": "r"}),
                "to.person",
            ),
            (
                json!({"tag": "T1", "to": {"agency": "gsa", "person": "p"}}),
                "reason",
            ),
            (
                json!({"tag": "T1", "to": {"agency": "GSA!", "person": "p"}, "reason": "r"}),
                "agency",
            ),
            (
                json!({"tag": "T1", "to": {"agency": "gsa", "person": "p"}, "reason": "r", "x": 1}),
                "x",
            ),
        ];
        for (body, field) in cases {
            let err = Offer::parse(&map(body)).expect_err(field).to_string();
            assert!(err.contains(field), "{err} should name {field}");
            assert!(!err.contains("GSA!"), "{err} echoes a value");
        }
        let err = Report::parse(&map(json!({"location": "HQ", "reported_by": "p",
            "observed": [{"tag": "ok"}, {"tag": ""}]})))
        .expect_err("empty tag")
        .to_string();
        assert!(err.contains("observed[1].tag"), "{err}");
    }
}
