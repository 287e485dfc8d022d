//! The bodies of the medical kinds, parsed and checked field by field, so
//! every refusal names the field at fault and none quotes a value.
//!
//! ```text
//! medical.request   {"subject","purpose":"ETREAT"|"TREAT","incident","responder":{"name","role"},
//!                    "sections":["allergies",...],"reply_key":<public JWK> | "<kid>"}
//!   or, sealed:     {"purpose","responder":{"role"},"sections","reply_key","sealed":"<compact JWE>"}
//! medical.approve   {"request":"<jti>","ttl_hours"?,"uses"?}
//! medical.response  {"request":"<jti>","payload":"<compact JWE>"}
//! review.decision   {"request":"<jti>","outcome":"appropriate"|"inappropriate","note"}
//! ```
//!
//! `subject`, `incident`, the responder's name and a review's note are
//! personal or sensitive: they stay in the signed envelope, which only the
//! two agencies and auditors can read. A sealed request goes further: its
//! subject, incident and responder's name travel only in its `sealed`
//! part ([`Private`], [`crate::sealed`]), encrypted to the holder, so the
//! gateway sees only what its policy needs (purpose, role, sections) and the
//! reply key. The subject of a request in clear reaches the log only as a
//! salted hash; the others reach neither the log nor the state store.
//! Purpose codes are HL7 v3 ActReason: `ETREAT` is emergency treatment,
//! `TREAT` routine treatment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::jwe;
use super::section::Section;
use crate::envelope::MAX_JTI_LEN;
use crate::fields::{self, FieldError, from_map};

/// Longest subject reference.
pub const MAX_SUBJECT: usize = 256;
/// Longest incident id, responder name or role.
pub const MAX_NAME: usize = 128;
/// Longest review note.
pub const MAX_NOTE: usize = 2048;
/// Longest grant a holder may approve, in hours (30 days, as policy allows).
pub const MAX_TTL_HOURS: u32 = 720;
/// Most responses one approval may cover.
pub const MAX_USES: u32 = 100;

/// Why the data is requested: HL7 v3 ActReason purpose of use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// Emergency treatment: may break the glass.
    #[serde(rename = "ETREAT")]
    Etreat,
    /// Routine treatment: needs the holder's approval.
    #[serde(rename = "TREAT")]
    Treat,
}

impl Purpose {
    /// The ActReason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Etreat => "ETREAT",
            Purpose::Treat => "TREAT",
        }
    }
}

/// The person asking, as the requesting agency vouches for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responder {
    /// Their name: personal data, never logged; in a sealed request, only
    /// in the sealed part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their role (e.g. `medical-officer`): what the policy decides on.
    pub role: String,
}

/// Where the answer is to be encrypted: a public JWK, or the `kid` of the
/// requesting agency's encryption key in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplyKey {
    /// A registry key, by `kid`.
    Kid(String),
    /// A public EC P-256 JWK given with the request.
    Jwk(Map<String, Value>),
}

/// `medical.request`, in clear or sealed: a request in clear carries
/// `subject`, `incident` and `responder.name`; a sealed one carries none of
/// them, and `sealed` instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Whom the data is about, as the holding agency knows them: opaque,
    /// personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Why it is asked for.
    pub purpose: Purpose,
    /// The incident it is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Who asks.
    pub responder: Responder,
    /// The IPS sections wanted.
    pub sections: Vec<Section>,
    /// The key the answer is encrypted to.
    pub reply_key: ReplyKey,
    /// The subject, incident and responder's name ([`Private`]), sealed to
    /// the holder: a compact JWE ([`crate::sealed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// What a sealed request hides from the gateway: the body of its sealed
/// part, which only the holder can open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Private {
    /// Whom the data is about.
    pub subject: String,
    /// The incident it is asked for.
    pub incident: String,
    /// The responder's name.
    pub responder_name: String,
}

/// `medical.approve`: the holder grants a request it was not obliged to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// The request's `jti`.
    pub request: String,
    /// How long the grant lasts (default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_hours: Option<u32>,
    /// How many responses it covers (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// `medical.response`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The request's `jti`.
    pub request: String,
    /// The bundle, as a compact JWE to the request's reply key.
    pub payload: String,
    /// The `kid` in the payload's JWE header, read at parse time.
    #[serde(skip)]
    pub kid: Option<String>,
}

/// What a reviewer concluded about a break-the-glass access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The access was justified.
    Appropriate,
    /// It was not; follow-up happens outside the gateway.
    Inappropriate,
}

impl Outcome {
    /// As in the body and the log entry.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Appropriate => "appropriate",
            Outcome::Inappropriate => "inappropriate",
        }
    }
}

/// `review.decision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// The request's `jti`.
    pub request: String,
    /// The conclusion.
    pub outcome: Outcome,
    /// The reviewer's reasons: never logged.
    pub note: String,
}

/// Why a medical body was refused. Every message names the field at fault
/// and none quotes a value: these bodies carry personal data, and refusals
/// reach the sender, logs and metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MedicalBodyError {
    /// A field is missing, unknown, of the wrong type, or outside its
    /// alphabet or length.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A sealed request also carries, in clear, a field its sealed part
    /// holds: the point of sealing is that it does not.
    #[error("{0} must not travel in clear beside sealed, which holds it")]
    ClearBesideSealed(&'static str),
    /// A request in clear lacks one of its personal fields.
    #[error("missing field `{0}` (or seal it in `sealed`)")]
    MissingPersonal(&'static str),
    /// The sealed part is not a compact JWE of the profile.
    #[error("sealed: {0}")]
    Sealed(jwe::JweError),
    /// The request names no section.
    #[error("sections must name at least one section")]
    NoSections,
    /// The request names a section twice.
    #[error("sections names a section twice")]
    DuplicateSection,
    /// The reply key, given as a JWK, is not a public P-256 key of the
    /// profile.
    #[error("reply_key: {0}")]
    ReplyKey(jwe::PublicKeyError),
    /// An approval's `ttl_hours` is 0 or beyond [`MAX_TTL_HOURS`].
    #[error("ttl_hours must be 1-{MAX_TTL_HOURS}")]
    TtlHours,
    /// An approval's `uses` is 0 or beyond [`MAX_USES`].
    #[error("uses must be 1-{MAX_USES}")]
    Uses,
    /// A response's payload is not a compact JWE of the profile.
    #[error("payload: {0}")]
    Payload(jwe::JweError),
}

impl Request {
    /// Parses and checks a request body.
    ///
    /// # Errors
    /// [`MedicalBodyError`] naming the first field at fault.
    pub fn parse(body: &Map<String, Value>) -> Result<Request, MedicalBodyError> {
        let r: Request = from_map(body)?;
        let personal = [
            ("subject", &r.subject, MAX_SUBJECT),
            ("incident", &r.incident, MAX_NAME),
            ("responder.name", &r.responder.name, MAX_NAME),
        ];
        match &r.sealed {
            Some(sealed) => {
                if let Some((field, ..)) = personal.iter().find(|(_, v, _)| v.is_some()) {
                    return Err(MedicalBodyError::ClearBesideSealed(field));
                }
                jwe::inspect(sealed).map_err(MedicalBodyError::Sealed)?;
            }
            None => {
                for (field, value, max) in personal {
                    let value = value
                        .as_deref()
                        .ok_or(MedicalBodyError::MissingPersonal(field))?;
                    fields::bounded(value, field, max)?;
                }
            }
        }
        fields::token(&r.responder.role, "responder.role", MAX_NAME)?;
        if r.sections.is_empty() {
            return Err(MedicalBodyError::NoSections);
        }
        let mut seen = std::collections::BTreeSet::new();
        if !r.sections.iter().all(|s| seen.insert(*s)) {
            return Err(MedicalBodyError::DuplicateSection);
        }
        match &r.reply_key {
            ReplyKey::Kid(kid) => fields::token(kid, "reply_key", MAX_JTI_LEN)?,
            ReplyKey::Jwk(jwk) => {
                jwe::check_public_key(jwk).map_err(MedicalBodyError::ReplyKey)?;
            }
        }
        Ok(r)
    }

    /// What the policy decides on besides the parties: the responder's role.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("role".to_owned(), self.responder.role.clone())])
    }

    /// The fields a sealed request hides, taken out of this request in
    /// clear (`None` if it is sealed already), leaving what the gateway
    /// sees.
    pub fn take_private(&mut self) -> Option<Private> {
        let private = Private {
            subject: self.subject.clone()?,
            incident: self.incident.clone()?,
            responder_name: self.responder.name.clone()?,
        };
        (self.subject, self.incident, self.responder.name) = (None, None, None);
        Some(private)
    }

    /// This sealed request with `private`, opened from its sealed part, in
    /// its place: the request as the holder reads it.
    ///
    /// # Errors
    /// [`FieldError::Text`] naming the field of `private` out of bounds.
    pub fn unsealed(mut self, private: Private) -> Result<Request, FieldError> {
        fields::bounded(&private.subject, "subject", MAX_SUBJECT)?;
        fields::bounded(&private.incident, "incident", MAX_NAME)?;
        fields::bounded(&private.responder_name, "responder.name", MAX_NAME)?;
        self.subject = Some(private.subject);
        self.incident = Some(private.incident);
        self.responder.name = Some(private.responder_name);
        self.sealed = None;
        Ok(self)
    }
}

impl Approve {
    /// Parses and checks an approval body.
    ///
    /// # Errors
    /// [`MedicalBodyError`] naming the first field at fault.
    pub fn parse(body: &Map<String, Value>) -> Result<Approve, MedicalBodyError> {
        let a: Approve = from_map(body)?;
        check_request(&a.request)?;
        if a.ttl_hours.is_some_and(|h| h == 0 || h > MAX_TTL_HOURS) {
            return Err(MedicalBodyError::TtlHours);
        }
        if a.uses.is_some_and(|u| u == 0 || u > MAX_USES) {
            return Err(MedicalBodyError::Uses);
        }
        Ok(a)
    }
}

impl Response {
    /// Parses and checks a response body. The payload's shape is checked
    /// without any key ([`jwe::inspect`]): the gateway cannot decrypt it.
    ///
    /// # Errors
    /// [`MedicalBodyError`] naming the first field at fault.
    pub fn parse(body: &Map<String, Value>) -> Result<Response, MedicalBodyError> {
        let mut r: Response = from_map(body)?;
        check_request(&r.request)?;
        let header = jwe::inspect(&r.payload).map_err(MedicalBodyError::Payload)?;
        r.kid = header.kid;
        Ok(r)
    }
}

impl Review {
    /// Parses and checks a review body.
    ///
    /// # Errors
    /// [`MedicalBodyError`] naming the first field at fault.
    pub fn parse(body: &Map<String, Value>) -> Result<Review, MedicalBodyError> {
        let r: Review = from_map(body)?;
        check_request(&r.request)?;
        fields::bounded(&r.note, "note", MAX_NOTE)?;
        Ok(r)
    }
}

/// Checks the `request` field of an approval, response or review: the
/// `jti` of the request it answers, which reaches the log entry.
fn check_request(jti: &str) -> Result<(), FieldError> {
    fields::token(jti, "request", MAX_JTI_LEN)
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

    fn request() -> Value {
        json!({"subject": "MRN-SECRET-1", "purpose": "ETREAT", "incident": "INC-7",
            "responder": {"name": "Dr Secret", "role": "medical-officer"},
            "sections": ["allergies", "medications"], "reply_key": "kid-1"})
    }

    #[test]
    fn a_valid_request_parses_with_a_kid_or_a_public_jwk() {
        let r = Request::parse(&map(request())).expect("valid");
        assert_eq!(r.purpose, Purpose::Etreat);
        assert_eq!(r.reply_key, ReplyKey::Kid("kid-1".into()));
        assert_eq!(r.attributes()["role"], "medical-officer");
    }

    #[test]
    fn refusals_name_the_field_and_never_echo_values() {
        let mutations: [(&str, Value); 7] = [
            ("purpose", json!("SECRET")),
            ("subject", json!("")),
            ("sections", json!([])),
            ("sections", json!(["allergies", "allergies"])),
            ("sections", json!(["secret-section"])),
            (
                "reply_key",
                json!({"kty": "EC", "crv": "P-256", "d": "SECRET"}),
            ),
            (
                "responder",
                json!({"name": "Dr Secret", "role": "SECRET role"}),
            ),
        ];
        for (field, value) in mutations {
            let mut body = request();
            body[field] = value;
            let err = Request::parse(&map(body)).expect_err(field).to_string();
            assert!(err.contains(field), "{err} should name {field}");
            assert!(!err.contains("SECRET"), "{err} echoes a value");
        }
    }

    /// A well-formed compact JWE, to a fresh key.
    fn some_jwe() -> String {
        let key = josekit::jwk::Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256)
            .expect("keygen");
        let public = key.to_public_key().expect("public");
        jwe::encrypt_as(b"x", public.as_ref(), "xgate-sealed+jwt").expect("encrypts")
    }

    #[test]
    fn a_sealed_request_carries_no_personal_field_in_clear() {
        let mut plain = Request::parse(&map(request())).expect("valid");
        let private = plain.take_private().expect("in clear");
        assert_eq!(private.subject, "MRN-SECRET-1");
        plain.sealed = Some(some_jwe());
        let body = serde_json::to_value(&plain).expect("json");
        let text = body.to_string();
        assert!(
            !text.contains("SECRET") && !text.contains("INC-7"),
            "{text}"
        );
        let sealed = Request::parse(&map(body.clone())).expect("a sealed request parses");
        assert_eq!(sealed.attributes()["role"], "medical-officer");
        let opened = sealed.unsealed(private).expect("unsealed");
        assert_eq!(opened.subject.as_deref(), Some("MRN-SECRET-1"));
        assert_eq!(opened.sealed, None);

        // Beside sealed, a personal field in clear is refused, by name.
        for (field, value) in [
            ("subject", json!("MRN-SECRET-1")),
            ("incident", json!("INC-SECRET")),
        ] {
            let mut both = body.clone();
            both[field] = value;
            let err = Request::parse(&map(both)).expect_err(field).to_string();
            assert!(err.starts_with(field) && !err.contains("SECRET"), "{err}");
        }
        let mut named = body.clone();
        named["responder"]["name"] = json!("Dr Secret");
        let err = Request::parse(&map(named)).expect_err("name").to_string();
        assert!(err.starts_with("responder.name"), "{err}");
        let mut garbage = body;
        garbage["sealed"] = json!("SECRET.not.a.jwe");
        let err = Request::parse(&map(garbage)).expect_err("jwe").to_string();
        assert!(
            err.starts_with("sealed") && !err.contains("SECRET"),
            "{err}"
        );
        // In clear, each personal field is required.
        let mut missing = request();
        missing.as_object_mut().expect("object").remove("incident");
        let err = Request::parse(&map(missing))
            .expect_err("incident")
            .to_string();
        assert!(err.contains("`incident`"), "{err}");
    }

    #[test]
    fn approvals_and_reviews_are_bounded() {
        assert!(Approve::parse(&map(json!({"request": "r1"}))).is_ok());
        assert!(Approve::parse(&map(json!({"request": "r1", "ttl_hours": 0}))).is_err());
        assert!(Approve::parse(&map(json!({"request": "r1", "uses": 1000}))).is_err());
        let ok = json!({"request": "r1", "outcome": "appropriate", "note": "fine"});
        assert!(Review::parse(&map(ok)).is_ok());
        let bad = json!({"request": "r1", "outcome": "maybe", "note": "fine"});
        assert!(Review::parse(&map(bad)).is_err());
        let bad = json!({"request": "r 1", "payload": "a.b.c.d.e"});
        assert!(
            Response::parse(&map(bad))
                .expect_err("jti")
                .to_string()
                .contains("request")
        );
    }
}
