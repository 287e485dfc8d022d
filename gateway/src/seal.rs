//! Sealed parts: what only the recipient may read, signed by the sender and
//! then encrypted to the recipient's registered encryption key, so the
//! gateway verifies, routes, logs and stores the envelope around it without
//! being able to read it.
//!
//! A sealed part is a nested JWT (RFC 7519 §5.2): an inner compact JWS,
//! signed with the sender's registered signing key, header `typ` [`TYP`],
//! whose claims are exactly
//!
//! ```text
//! {"iss":"<sender>","aud":"<recipient>","jti":"<the outer envelope's jti>","kind":"<its kind>","body":{...}}
//! ```
//!
//! encrypted with [`jwe`] (`ECDH-ES+A256KW`, `A256GCM`, header `cty`
//! [`TYP`]) to the recipient's registered encryption key. The compact JWE
//! is the [`MEMBER`] member of the outer envelope's body:
//!
//! - `record.send`: the body is exactly `{"sealed":"<JWE>"}`; the inner
//!   body is the record.
//! - `medical.request`: the body keeps in clear what the policy needs
//!   (purpose, the responder's role, sections, reply key) and `sealed`
//!   replaces the subject, the incident and the responder's name
//!   ([`Private`] is the inner body).
//!
//! The inner claims bind the part to its envelope: [`open`] refuses one
//! whose `iss`, `aud`, `jti` or `kind` is not the outer envelope's, so a
//! ciphertext lifted into another envelope (another `jti`, recipient or
//! sender) is refused by the recipient. The inner signature, checked
//! against the recipient's own copy of the registry, is what shows the
//! sender sealed this content: the outer signature alone would not (its
//! signer may have copied a ciphertext it could not read).
//!
//! The gateway only checks the shape of a sealed part
//! (`xgate_server::sealed::check`): a
//! compact JWE of the profile, `cty` [`TYP`], and a `kid` naming the
//! recipient's registered encryption key. It holds no key that opens one.
//!
//! Error messages name the claim or member at fault and never quote a
//! value: sealed parts carry personal data.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use xgate_server::envelope::{Envelope, UNSUPPORTED_HEADERS, Verifiers};
use xgate_server::fields;
use xgate_server::kind::Kind;
use xgate_server::medical::jwe::{self, JweError};
use xgate_server::medical::model::{Private, Request};
use xgate_server::registry::AgencyId;
pub use xgate_server::sealed::{MEMBER, TYP, is_sealed, record_part};

use crate::client::EnvelopeSigner;

/// What a sealed part is bound to: its outer envelope's parties, `jti` and
/// kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The sender (`iss`), whose signing key signs the inner JWS.
    pub iss: AgencyId,
    /// The recipient (`aud`), whose encryption key it is encrypted to.
    pub aud: AgencyId,
    /// The outer envelope's `jti`.
    pub jti: String,
    /// The outer envelope's kind.
    pub kind: Kind,
}

impl Binding {
    /// The binding a part sealed inside `envelope` must carry.
    pub fn of(envelope: &Envelope) -> Binding {
        Binding {
            iss: envelope.iss.clone(),
            aud: envelope.aud.clone(),
            jti: envelope.jti.clone(),
            kind: envelope.kind,
        }
    }
}

/// Why a part could not be sealed or opened. Messages name what is wrong,
/// never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The JWE could not be made, or does not decrypt with the key given.
    #[error("{0}")]
    Jwe(#[from] JweError),
    /// The inner JWS was not signed by the sender's registered key.
    #[error("the inner signature: {0}")]
    Signature(String),
    /// The inner claims name another envelope (the claim is named).
    #[error("the sealed part belongs to another envelope: its {0} is not this envelope's")]
    Binding(&'static str),
    /// Not a sealed part of this profile.
    #[error("the sealed part is malformed: {0}")]
    Malformed(String),
}

/// The inner claims, exactly.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner {
    iss: String,
    aud: String,
    jti: String,
    kind: String,
    body: Map<String, Value>,
}

/// Seals `body` for the envelope `binding` describes: signs it as
/// `signer` (who must be `binding.iss`) and encrypts that to
/// `recipient_key`, the recipient's public encryption JWK, taken from the
/// sender's own copy of the registry. Returns the compact JWE.
///
/// # Errors
/// [`SealError::Malformed`] if `signer` is not `binding.iss`;
/// [`SealError::Signature`] if signing fails; [`SealError::Jwe`] if the key
/// is not a usable P-256 encryption key.
pub fn seal(
    signer: &EnvelopeSigner,
    recipient_key: &Map<String, Value>,
    binding: &Binding,
    body: Map<String, Value>,
) -> Result<String, SealError> {
    if signer.iss() != &binding.iss {
        return Err(SealError::Malformed(
            "a part is sealed by the envelope's own sender".into(),
        ));
    }
    let inner = Inner {
        iss: binding.iss.to_string(),
        aud: binding.aud.to_string(),
        jti: binding.jti.clone(),
        kind: binding.kind.as_str().to_owned(),
        body,
    };
    let payload = serde_json::to_vec(&inner).map_err(|e| SealError::Malformed(e.to_string()))?;
    let jws = signer
        .sign_typed(TYP, &payload)
        .map_err(|e| SealError::Signature(e.to_string()))?;
    Ok(jwe::encrypt_as(jws.as_bytes(), recipient_key, TYP)?)
}

/// Opens the sealed part `sealed` of the envelope `binding` describes:
/// decrypts it with `key` (the recipient's private encryption JWK), checks
/// the inner JWS against `binding.iss`'s signing key in `verifiers` (built
/// from the recipient's own copy of the registry, never from anything the
/// gateway sent), and checks that its claims name this envelope. Returns
/// the inner body.
///
/// # Errors
/// [`SealError::Jwe`] if it does not decrypt with `key` (another
/// recipient's, or altered); [`SealError::Signature`] if the sender did not
/// sign it; [`SealError::Binding`] if it was sealed for another envelope;
/// [`SealError::Malformed`] for anything else out of shape.
pub fn open(
    sealed: &str,
    key: &Jwk,
    verifiers: &Verifiers,
    binding: &Binding,
) -> Result<Map<String, Value>, SealError> {
    let header = jwe::inspect(sealed)?;
    if header.cty.as_deref() != Some(TYP) {
        return Err(SealError::Malformed(format!("the JWE's cty must be {TYP}")));
    }
    let plain = jwe::decrypt(sealed, key)?;
    let jws = std::str::from_utf8(&plain)
        .map_err(|_| SealError::Malformed("the inner JWS is not UTF-8".into()))?;
    let payload = verify_inner(jws, &binding.iss, verifiers)?;
    xgate_server::strict_json::check(&payload)
        .map_err(|m| SealError::Malformed(format!("the inner claims: {m}")))?;
    let inner: Inner = serde_json::from_slice(&payload).map_err(|_| {
        SealError::Malformed("the inner claims are not exactly iss, aud, jti, kind and body".into())
    })?;
    let named = [
        ("iss (sender)", inner.iss == binding.iss.as_str()),
        ("aud (recipient)", inner.aud == binding.aud.as_str()),
        ("jti", inner.jti == binding.jti),
        ("kind", inner.kind == binding.kind.as_str()),
    ];
    if let Some((claim, _)) = named.into_iter().find(|(_, same)| !same) {
        return Err(SealError::Binding(claim));
    }
    Ok(inner.body)
}

/// Checks the inner compact JWS `text` as signed by `signer`'s registered
/// key, with the header rules of an envelope (the registered `alg` and
/// `kid`, no key-pointing or extension headers) and `typ` [`TYP`]; returns
/// its payload.
fn verify_inner(
    text: &str,
    signer: &AgencyId,
    verifiers: &Verifiers,
) -> Result<Vec<u8>, SealError> {
    let malformed = |m: &str| SealError::Malformed(m.to_owned());
    let (kid, alg, verifier) = verifiers.signing_key(signer).ok_or_else(|| {
        SealError::Signature(format!("no signing key is registered for {signer}"))
    })?;
    let mut parts = text.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("the inner part is not a compact JWS"));
    };
    let header = URL_SAFE_NO_PAD
        .decode(h64)
        .map_err(|_| malformed("the inner JWS header is not base64url"))?;
    xgate_server::strict_json::check(&header)
        .map_err(|m| SealError::Malformed(format!("the inner JWS header: {m}")))?;
    let header: Map<String, Value> = serde_json::from_slice(&header)
        .map_err(|_| malformed("the inner JWS header is not a JSON object"))?;
    if header.get("alg").and_then(Value::as_str) != Some(alg) {
        return Err(SealError::Signature(format!(
            "not made with {signer}'s registered algorithm ({alg})"
        )));
    }
    if let Some(name) = UNSUPPORTED_HEADERS
        .iter()
        .find(|h| header.contains_key(**h))
    {
        return Err(SealError::Malformed(format!(
            "the inner JWS header carries {name:?}, which is never honoured"
        )));
    }
    if header.get("typ").and_then(Value::as_str) != Some(TYP) {
        return Err(SealError::Malformed(format!(
            "the inner JWS must have typ {TYP}"
        )));
    }
    if header.get("kid").and_then(Value::as_str) != Some(kid) {
        return Err(SealError::Signature(format!(
            "its kid is not {signer}'s registered signing key"
        )));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| malformed("the inner JWS signature is not base64url"))?;
    let signed = &text[..h64.len() + 1 + p64.len()];
    verifier
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| SealError::Signature(format!("it was not signed by {signer}")))?;
    URL_SAFE_NO_PAD
        .decode(p64)
        .map_err(|_| malformed("the inner JWS payload is not base64url"))
}

/// The body of a delivered envelope as its recipient reads it, when it
/// holds a sealed part: for a `record.send`, the record; for a
/// `medical.request`, the request with its subject, incident and
/// responder's name restored from the sealed part. `None` when nothing in
/// it is sealed. `envelope` must have been verified against the
/// recipient's own registry, which `verifiers` is built from; `key` is the
/// recipient's private encryption JWK.
///
/// # Errors
/// [`SealError`], as for [`open`]; [`SealError::Malformed`] for a body
/// that is not its kind's.
pub fn unseal(
    envelope: &Envelope,
    key: &Jwk,
    verifiers: &Verifiers,
) -> Result<Option<Map<String, Value>>, SealError> {
    let binding = Binding::of(envelope);
    match envelope.kind {
        Kind::RecordSend => {
            match record_part(&envelope.body).map_err(|e| SealError::Malformed(e.to_string()))? {
                Some(sealed) => open(sealed, key, verifiers, &binding).map(Some),
                None => Ok(None),
            }
        }
        Kind::MedicalRequest => {
            let request =
                Request::parse(&envelope.body).map_err(|e| SealError::Malformed(e.to_string()))?;
            let Some(sealed) = request.sealed.clone() else {
                return Ok(None);
            };
            let inner = open(&sealed, key, verifiers, &binding)?;
            let private: Private = fields::from_map(&inner)
                .map_err(|m| SealError::Malformed(format!("the sealed request: {m}")))?;
            let request = request
                .unsealed(private)
                .map_err(|e| SealError::Malformed(e.to_string()))?;
            match serde_json::to_value(request) {
                Ok(Value::Object(map)) => Ok(Some(map)),
                _ => Err(SealError::Malformed("the request is not an object".into())),
            }
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ec::EcCurve;
    use serde_json::json;
    use xgate_server::registry::{Agency, CertificateBinding, Registry};
    use xgate_server::sealed::check;

    /// One agency's private keys.
    struct Keys {
        signing: Jwk,
        encryption: Jwk,
    }

    fn keys(id: &str) -> Keys {
        let mut signing = Jwk::generate_ec_key(EcCurve::P256).expect("keygen");
        signing.set_key_id(format!("{id}-sig"));
        let mut encryption = Jwk::generate_ec_key(EcCurve::P256).expect("keygen");
        encryption.set_key_id(format!("{id}-enc"));
        Keys {
            signing,
            encryption,
        }
    }

    fn public(jwk: &Jwk, usage: &str) -> Map<String, Value> {
        let mut public = jwk.to_public_key().expect("public");
        public.set_key_id(jwk.key_id().expect("kid"));
        public.set_key_use(usage);
        public.as_ref().clone()
    }

    /// state, treasury and gsa, their registry and verifiers.
    fn federation() -> (Vec<Keys>, Registry, Verifiers) {
        let ids = ["state", "treasury", "gsa"];
        let keys: Vec<Keys> = ids.iter().map(|id| keys(id)).collect();
        let agencies = ids
            .iter()
            .zip(&keys)
            .map(|(id, k)| Agency {
                id: id.parse().expect("id"),
                name: (*id).into(),
                gateway: None,
                certificate: CertificateBinding {
                    uri: format!("urn:xgate:agency:{id}"),
                    sha256: None,
                },
                signing_key: public(&k.signing, "sig"),
                encryption_key: public(&k.encryption, "enc"),
                roles: Vec::new(),
            })
            .collect();
        let registry = Registry::from_agencies(agencies).expect("registry");
        let verifiers = Verifiers::from_registry(&registry).expect("verifiers");
        (keys, registry, verifiers)
    }

    fn id(a: &str) -> AgencyId {
        a.parse().expect("id")
    }

    fn binding(iss: &str, aud: &str, jti: &str) -> Binding {
        Binding {
            iss: id(iss),
            aud: id(aud),
            jti: jti.into(),
            kind: Kind::RecordSend,
        }
    }

    fn record() -> Map<String, Value> {
        match json!({"subject": "SECRET-RECORD", "pages": 12}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_sealed_record_opens_only_for_its_recipient_and_its_envelope() {
        let (keys, registry, verifiers) = federation();
        let state = EnvelopeSigner::from_jwk(id("state"), &keys[0].signing).expect("signer");
        let to_treasury = &registry
            .get(&id("treasury"))
            .expect("treasury")
            .encryption_key;
        let bound = binding("state", "treasury", "j-1");
        let part = seal(&state, to_treasury, &bound, record()).expect("seals");
        assert!(!part.contains("SECRET"), "{part}");
        check(&part, registry.get(&id("treasury")).expect("treasury")).expect("for treasury");
        let for_gsa = check(&part, registry.get(&id("gsa")).expect("gsa"));
        assert!(for_gsa.expect_err("not gsa's").to_string().contains("gsa"));

        let treasury_key = &keys[1].encryption;
        let opened = open(&part, treasury_key, &verifiers, &bound).expect("opens");
        assert_eq!(opened, record());

        // Another jti, recipient, sender or kind: refused, naming the claim.
        let mut other_kind = bound.clone();
        other_kind.kind = Kind::MedicalRequest;
        for (other, claim) in [
            (binding("state", "treasury", "j-2"), "jti"),
            (binding("state", "gsa", "j-1"), "aud"),
            (other_kind, "kind"),
        ] {
            match open(&part, treasury_key, &verifiers, &other) {
                Err(SealError::Binding(named)) => assert!(named.starts_with(claim), "{named}"),
                other => panic!("{claim}: {other:?}"),
            }
        }
        // Said to come from gsa: gsa's key did not sign it.
        let from_gsa = binding("gsa", "treasury", "j-1");
        let err = open(&part, treasury_key, &verifiers, &from_gsa).expect_err("gsa");
        assert!(matches!(err, SealError::Signature(_)), "{err:?}");
        // Another agency's key does not decrypt it.
        let err = open(&part, &keys[2].encryption, &verifiers, &bound).expect_err("key");
        assert!(matches!(err, SealError::Jwe(_)), "{err:?}");
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn only_the_sender_seals_and_an_envelope_typed_jws_is_not_a_sealed_part() {
        let (keys, registry, verifiers) = federation();
        let gsa = EnvelopeSigner::from_jwk(id("gsa"), &keys[2].signing).expect("signer");
        let to_treasury = &registry
            .get(&id("treasury"))
            .expect("treasury")
            .encryption_key;
        let bound = binding("state", "treasury", "j-1");
        assert!(matches!(
            seal(&gsa, to_treasury, &bound, record()),
            Err(SealError::Malformed(_))
        ));
        // state's envelope JWS, encrypted as if it were a sealed part.
        let state = EnvelopeSigner::from_jwk(id("state"), &keys[0].signing).expect("signer");
        let envelope = state
            .sign(
                &id("treasury"),
                "record.send",
                record(),
                60,
                Some("j-1".into()),
            )
            .expect("sign");
        let part = jwe::encrypt_as(envelope.as_bytes(), to_treasury, TYP).expect("encrypt");
        let err = open(&part, &keys[1].encryption, &verifiers, &bound).expect_err("typ");
        assert!(err.to_string().contains("typ"), "{err}");
    }
}
