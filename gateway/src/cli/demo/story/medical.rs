//! The medical steps (docs/medical.md): a State Department responder asks
//! HHS for a person's emergency summary, the subject, incident and
//! responder's name sealed to HHS, the policy breaks the glass, HHS answers
//! encrypted to the reply key of the signed request, State opens and
//! validates the answer, and HHS's reviewer closes the grant. The gateway
//! only ever carries JWEs; the keys stay in each agency's PKI directory.

use josekit::jwk::Jwk;
use serde_json::{Map, Value};

use super::cast::{Story, agency};
use crate::bundle::{self, Section};
use crate::cli::error::Error;
use crate::cli::medical::{Signed, seal_request};
use crate::cli::session::delivered_body;
use xgate_server::kind::Kind;
use xgate_server::medical::jwe;
use xgate_server::medical::model::{Outcome, Purpose, ReplyKey, Request, Responder, Review};
use xgate_server::pki::ENCRYPTION_JWK;

/// The synthetic IPS document HHS holds (every person in it is made up;
/// see tests/fixtures/ips/README.md), built in so the demo runs anywhere.
const BUNDLE: &[u8] = include_bytes!("../../../../../tests/fixtures/ips/ips-avery.json");
/// The request's `jti`: its name from then on.
const REQUEST: &str = "demo-medreq-0001";
/// The sections asked for.
const SECTIONS: [Section; 4] = [
    Section::Allergies,
    Section::Medications,
    Section::Problems,
    Section::Immunizations,
];

/// Tells the medical steps.
///
/// # Errors
/// Any step that does not go as told.
pub(super) fn tell(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    request(story)?;
    let response = respond(story)?;
    open(story, response)?;
    review(story)
}

fn request(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let sections: Vec<&str> = SECTIONS.iter().map(|s| s.as_str()).collect();
    story.out.step(
        "request",
        &format!(
            "state's medical officer asks hhs for the emergency summary of subject hhs-mrn-000123 \
             (ETREAT, incident INC-DEMO-0001; {}); subject, incident and name sealed to hhs",
            sections.join(", ")
        ),
    )?;
    let kid = story
        .registry
        .get(&agency("state"))
        .and_then(|a| a.encryption_key.get("kid"))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Request("state has no registered encryption key".into()))?
        .to_owned();
    let body = Request {
        subject: Some("hhs-mrn-000123".into()),
        purpose: Purpose::Etreat,
        incident: Some("INC-DEMO-0001".into()),
        responder: Responder {
            name: Some("Dr. Casey Example".into()),
            role: "medical-officer".into(),
        },
        sections: SECTIONS.to_vec(),
        reply_key: ReplyKey::Kid(kid),
        sealed: None,
    };
    let body = seal_request(
        body,
        story.signer("state"),
        &story.registry,
        &agency("hhs"),
        REQUEST,
    )?;
    let sent = story.submit(
        "state",
        "hhs",
        Kind::MedicalRequest,
        &body,
        REQUEST,
        REQUEST,
    )?;
    let case = story.get("state", &format!("/v1/medical/requests/{REQUEST}"))?;
    let glass = if case["break_glass"] == true {
        "the policy breaks the glass"
    } else {
        "the policy does not break the glass"
    };
    story.out.more(&format!(
        "request {REQUEST}: {}; {glass}: {}, {} response allowed, flagged for hhs's review",
        story.logged(&sent),
        case["status"].as_str().unwrap_or("?"),
        case["grant"]["uses"].as_u64().unwrap_or_default()
    ))
}

/// HHS answers; returns the response's id (its log index).
fn respond(story: &mut Story<'_, '_, '_>) -> Result<u64, Error> {
    story.out.step(
        "respond",
        "hhs reads the signed request, checks its IPS bundle holds every section asked for, \
         and encrypts it to state's reply key",
    )?;
    let signed = signed(story, "hhs")?;
    bundle::validate(BUNDLE, &signed.request.sections)
        .map_err(|e| Error::Request(format!("the demo's bundle is not valid: {e}")))?;
    let payload = jwe::encrypt(BUNDLE, &signed.reply_key)
        .map_err(|e| Error::Request(format!("cannot encrypt to the reply key: {e}")))?;
    let mut body = Map::new();
    body.insert("request".into(), Value::String(REQUEST.into()));
    body.insert("payload".into(), Value::String(payload));
    let sent = story.submit(
        "hhs",
        "state",
        Kind::MedicalResponse,
        &body,
        "demo-medresp-0001",
        REQUEST,
    )?;
    story.out.more(&format!(
        "response {}: a JWE ({} / {}); {} checks its header, logs and delivers it, \
         and holds no key to open it",
        story.logged(&sent),
        jwe::KEY_ALG,
        jwe::CONTENT_ENC,
        match sent.delivery {
            Some(_) => "each gateway",
            None => "the gateway",
        }
    ))?;
    // State reads it at its own gateway, under the index that one gave.
    Ok(sent.at_recipient().log_index)
}

fn open(story: &mut Story<'_, '_, '_>, response: u64) -> Result<(), Error> {
    story.out.step(
        "open",
        "state fetches the answer, checks hhs's signature, decrypts it with its own private key \
         and validates the bundle",
    )?;
    let view = story.get("state", &format!("/v1/medical/responses/{response}"))?;
    let body = delivered_body(
        view["jws"].as_str().unwrap_or_default(),
        &agency("hhs"),
        &agency("state"),
        &story.registry,
    )?;
    let payload = body
        .get("payload")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let key_file = story.federation.pki.join("state").join(ENCRYPTION_JWK);
    let key = std::fs::read(&key_file)
        .ok()
        .and_then(|bytes| Jwk::from_bytes(bytes).ok())
        .ok_or_else(|| Error::Request(format!("cannot read {}", key_file.display())))?;
    let plain = jwe::decrypt(payload, &key)
        .map_err(|e| Error::Request(format!("the answer does not decrypt: {e}")))?;
    let summary = bundle::validate(&plain, &signed(story, "state")?.request.sections)
        .map_err(|e| Error::Request(format!("the decrypted bundle is not valid: {e}")))?;
    let sections: Vec<String> = summary
        .sections
        .iter()
        .map(|s| format!("{} {}", s.section, s.entries))
        .collect();
    story.out.more(&format!(
        "a valid IPS document of {} resources, byte for byte what hhs sent: {}",
        summary.resources,
        sections.join(", ")
    ))?;
    if plain != BUNDLE {
        return Err(Error::Request(
            "the decrypted bundle differs from the one sent".into(),
        ));
    }
    Ok(())
}

fn review(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let pending = story.get("hhs", "/v1/reviews")?["reviews"]
        .as_array()
        .map_or(0, Vec::len);
    story.out.step(
        "review",
        &format!(
            "hhs's reviewer finds {pending} break-the-glass grant in the queue and closes it as appropriate"
        ),
    )?;
    let body = Review {
        request: REQUEST.into(),
        outcome: Outcome::Appropriate,
        note: "cardiac emergency abroad; access was needed".into(),
    };
    let sent = story.submit(
        "hhs",
        "hhs",
        Kind::ReviewDecision,
        &body,
        "demo-review-0001",
        REQUEST,
    )?;
    let left = story.get("hhs", "/v1/reviews")?["reviews"]
        .as_array()
        .map_or(0, Vec::len);
    story.out.more(&format!(
        "{}: the outcome is logged, the note stays in the signed envelope; {left} left in the queue",
        story.logged(&sent)
    ))
}

/// The request as `who` (its requester or holder) reads it: from the
/// signed envelope the gateway keeps, checked against the registry.
fn signed(story: &mut Story<'_, '_, '_>, who: &str) -> Result<Signed, Error> {
    let view = story.get(who, &format!("/v1/medical/requests/{REQUEST}"))?;
    Signed::from_view(&view, REQUEST, &agency(who), &story.registry)
}
