//! Opening an envelope: a compact JWS signed with the sender's signing key,
//! whose claims say who sends what to whom, and for how long it is valid.
//!
//! Parsing is done here, once, and strictly. Signatures are checked with
//! keys taken from the registry once, at start ([`Verifiers`]): ES256 with
//! *ring*'s `ECDSA_P256_SHA256_FIXED` (raw `r || s`, 64 bytes), EdDSA with
//! `ed25519-zebra`, under the ZIP-215 rules, so that checking signatures
//! in a batch ([`crate::signatures`]) and one by one decide alike on every
//! input. The checks run in a fixed order so that each rejection names the
//! first thing wrong:
//!
//! 1. structure: three base64url parts, a JSON object header (`malformed`);
//! 2. identity: when the claims, as sent and not yet verified, hold a
//!    string `iss`, it must be the TLS identity (`identity_mismatch`). It is
//!    read only to refuse: nothing is verified with any key but the one the
//!    registry holds for the TLS identity, so another agency's envelope,
//!    however validly signed, is refused for what it is, before its `kid`
//!    (which names that agency's key, not the caller's) is looked at, and
//!    the answer tells the caller nothing it did not send;
//! 3. header: no key appears twice, in the header or anywhere in the
//!    claims (`malformed`: parsers that keep the first and parsers that
//!    keep the last would read two different envelopes); `alg` must be the
//!    sender's registered algorithm (ES256, or EdDSA for an Ed25519 key),
//!    never `none` or HMAC (`unsupported_alg`); no header that would bring
//!    a key or an extension from elsewhere: `jku`, `x5u`, `x5c`, `jwk`
//!    (keys come from the registry only), `crit` (no extension is
//!    implemented) or `b64` (RFC 7797 unencoded payloads)
//!    (`unsupported_header`); `typ` must be `xgate-envelope+jwt`
//!    (`malformed`); `kid` must be the sender's signing key (`bad_signature`);
//! 4. the signature, over the sender's key (`bad_signature`);
//! 5. claims: exactly `iss`, `aud`, `jti`, `iat`, `exp`, `kind`, `body`
//!    (`malformed`); `iss` is the TLS identity (`identity_mismatch`, now
//!    from the verified claims); `aud`
//!    is a registered agency (`wrong_audience`; whether it may be the
//!    sender itself depends on the kind, a later stage); `exp - iat` is at
//!    most [`Limits::max_lifetime`] (`lifetime_too_long`); `iat` is not in
//!    the future and `exp` not in the past, beyond [`Limits::skew`]
//!    (`not_yet_valid`, `expired`); `kind` is known (`unsupported_kind`).
//!
//! Whether the kind is handled yet, policy and replay are later stages.
//!
//! [`open`] runs them all. They are also three steps, so that the
//! signature can be checked elsewhere (in a batch, on another thread):
//! [`check`] runs 1-3 and returns what the signature check needs
//! ([`Signed`]: the signing input, the signature, the sender's key);
//! [`Signed::verify`] (or a batch) runs 4 and returns a [`Verified`]; and
//! [`Verified::open`] runs 5. Only a [`Verified`] can be opened.
//!
//! ## EdDSA: ZIP-215
//!
//! An Ed25519 signature `(R, s)` over `M` with key `A` verifies when `A`
//! and `R` are encodings of curve points, `s` is below the group order
//! `l`, and `[8][s]B = [8]R + [8][k]A` with `k = SHA-512(R || A || M)`
//! (ZIP-215). Every signature the cofactorless check of RFC 8032 (OpenSSL's,
//! which verified envelopes before) accepts satisfies this equation, so
//! everything logged before still verifies. What it accepts besides are
//! signatures whose `R` is off by a small-order point, or encoded
//! non-canonically: `k` covers `R` as encoded, so only the key's holder can
//! make one, never anyone holding a valid signature. The registry's keys
//! are refused at start if small-order (anyone could sign for them),
//! outside the prime-order subgroup or encoded non-canonically
//! ([`SigningKeyError::WeakEd25519`]).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::kind::Kind;
use crate::registry::{AgencyId, Registry};

/// Header parameters that are refused (`unsupported_header`): each would
/// take a key or a processing rule from the envelope instead of the
/// registry (RFC 7515 sections 4.1.2-4.1.6 and 4.1.11, RFC 7797).
pub const UNSUPPORTED_HEADERS: [&str; 6] = ["jku", "jwk", "x5u", "x5c", "crit", "b64"];

/// The `typ` header every envelope carries.
pub const ENVELOPE_TYP: &str = "xgate-envelope+jwt";
/// Longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 128;

/// Time limits on envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest `exp - iat`, in seconds.
    pub max_lifetime: i64,
    /// Clock skew tolerated on `iat` and `exp`, in seconds.
    pub skew: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_lifetime: 300,
            skew: 60,
        }
    }
}

/// Why an envelope was refused. Messages are safe to return to the caller:
/// they name claims and agencies, never the body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Not a well-formed envelope.
    #[error("{0}")]
    Malformed(String),
    /// The header's algorithm is not the sender's registered one.
    #[error("{0}")]
    UnsupportedAlg(String),
    /// The header carries a parameter the gateway never honours.
    #[error("{0}")]
    UnsupportedHeader(String),
    /// The signature does not verify with the sender's signing key.
    #[error("{0}")]
    BadSignature(String),
    /// `iss` is not the agency the TLS certificate names.
    #[error("{0}")]
    IdentityMismatch(String),
    /// `aud` is not a registered agency.
    #[error("{0}")]
    WrongAudience(String),
    /// `exp` has passed.
    #[error("{0}")]
    Expired(String),
    /// `iat` is in the future.
    #[error("{0}")]
    NotYetValid(String),
    /// `exp - iat` is longer than allowed.
    #[error("{0}")]
    LifetimeTooLong(String),
    /// `kind` names no kind the gateway knows or handles.
    #[error("{0}")]
    UnsupportedKind(String),
}

/// A verified envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The sending agency (`iss`), equal to the TLS identity.
    pub iss: AgencyId,
    /// The recipient agency (`aud`).
    pub aud: AgencyId,
    /// The sender's unique id for this envelope.
    pub jti: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// What the envelope asks for.
    pub kind: Kind,
    /// The kind-specific body.
    pub body: Map<String, Value>,
    /// The compact JWS as received, without a trailing newline.
    pub compact: String,
    /// SHA-256 of the compact JWS: the envelope's id.
    pub digest: [u8; 32],
}

impl Envelope {
    /// The envelope id: lowercase hex of [`Envelope::digest`].
    pub fn id(&self) -> String {
        hex::encode(self.digest)
    }
}

/// Why a registered signing key cannot verify envelopes. The registry
/// checks a key's members; this is the cryptographic half, done when the
/// verifiers are built at start. Messages name the agency, and quote
/// josekit's (OpenSSL's) reason, which names no secret: the key is public.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningKeyError {
    /// josekit does not accept the map as a JWK.
    #[error("agency {agency}: signing_key: {reason}")]
    NotJwk {
        /// The agency.
        agency: AgencyId,
        /// josekit's reason. In the message, so not also a `source`.
        reason: josekit::JoseError,
    },
    /// The key has no `kid`, so no envelope header could name it.
    #[error("agency {agency}: signing_key has no kid")]
    NoKid {
        /// The agency.
        agency: AgencyId,
    },
    /// An EC key that is not a usable P-256 public key.
    #[error("agency {agency}: signing_key is not a P-256 key: {reason}")]
    NotP256 {
        /// The agency.
        agency: AgencyId,
        /// josekit's reason. In the message, so not also a `source`.
        reason: josekit::JoseError,
    },
    /// An OKP key that is not a usable Ed25519 public key.
    #[error("agency {agency}: signing_key is not an Ed25519 key: {reason}")]
    NotEd25519 {
        /// The agency.
        agency: AgencyId,
        /// josekit's reason. In the message, so not also a `source`.
        reason: josekit::JoseError,
    },
    /// An EC key whose coordinates are not 32 bytes each (josekit, which
    /// accepted it, pads them).
    #[error("agency {agency}: signing_key's x and y must be 32 bytes each (base64url)")]
    Coordinates {
        /// The agency.
        agency: AgencyId,
    },
    /// An Ed25519 key that is a valid public key to OpenSSL, but that no
    /// honest key generation makes, and that the ZIP-215 check must not
    /// be given: small-order (anyone could sign for it), outside the
    /// prime-order subgroup, or encoded non-canonically.
    #[error("agency {agency}: signing_key is not a usable Ed25519 key: {why}")]
    WeakEd25519 {
        /// The agency.
        agency: AgencyId,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key type or curve with no envelope algorithm.
    #[error(
        "agency {agency}: signing_key must be EC P-256 or OKP Ed25519, not {kty} {}",
        .crv.as_deref().unwrap_or("(no curve)")
    )]
    KeyType {
        /// The agency.
        agency: AgencyId,
        /// The key's `kty`.
        kty: String,
        /// The key's `crv`, if any.
        crv: Option<String>,
    },
    /// The key's `alg` member is not the algorithm its type calls for.
    #[error("agency {agency}: signing_key declares alg {declared}, but its key is for {alg}")]
    AlgMismatch {
        /// The agency.
        agency: AgencyId,
        /// The `alg` the key declares.
        declared: String,
        /// The algorithm its type and curve call for.
        alg: &'static str,
    },
}

/// Signature verifiers for every registered agency, built once.
#[derive(Debug)]
pub struct Verifiers {
    keys: HashMap<AgencyId, Arc<SenderKey>>,
}

/// An agency's registered signing key, as envelopes are checked with it.
#[derive(Debug)]
pub struct SenderKey {
    kid: String,
    alg: &'static str,
    check: KeyCheck,
    /// josekit's verifier for the same key, for JWSs other than envelopes
    /// ([`Verifiers::signing_key`]).
    jose: Box<dyn JwsVerifier>,
}

/// The key in the form its signature check takes.
#[derive(Debug)]
enum KeyCheck {
    /// The uncompressed P-256 point `0x04 || x || y`, for *ring*.
    Es256(UnparsedPublicKey<[u8; 65]>),
    /// The Ed25519 point, decompressed once.
    EdDsa(ed25519_zebra::VerificationKey),
}

impl SenderKey {
    /// The key's `kid`, which an envelope's header must name exactly.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS `alg` the key signs with: `ES256` or `EdDSA`.
    pub fn alg(&self) -> &'static str {
        self.alg
    }

    /// The Ed25519 key, for a batch check; `None` for a P-256 key.
    pub(crate) fn ed25519(&self) -> Option<&ed25519_zebra::VerificationKey> {
        match &self.check {
            KeyCheck::EdDsa(key) => Some(key),
            KeyCheck::Es256(_) => None,
        }
    }

    /// Whether `signature` is this key's over `input`, alone: ES256 as
    /// raw `r || s` (exactly 64 bytes, never DER), EdDSA under ZIP-215.
    fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.check {
            KeyCheck::Es256(key) => key.verify(input, signature).is_ok(),
            KeyCheck::EdDsa(key) => ed25519_zebra::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify(&s, input).is_ok()),
        }
    }
}

impl Verifiers {
    /// Builds a verifier for each agency's signing key.
    ///
    /// # Errors
    /// [`SigningKeyError`] naming the first agency whose key is not a
    /// usable ES256 (P-256) or EdDSA (Ed25519) public key.
    pub fn from_registry(registry: &Registry) -> Result<Verifiers, SigningKeyError> {
        let mut keys = HashMap::new();
        for agency in registry.agencies() {
            let id = &agency.id;
            let jwk = Jwk::from_map(agency.signing_key.clone()).map_err(|reason| {
                SigningKeyError::NotJwk {
                    agency: id.clone(),
                    reason,
                }
            })?;
            let kid = jwk
                .key_id()
                .ok_or_else(|| SigningKeyError::NoKid { agency: id.clone() })?
                .to_owned();
            // josekit (OpenSSL) validates the key as it always has: a
            // point not on its curve is refused here, at start.
            let (alg, jose, check): (&'static str, Box<dyn JwsVerifier>, KeyCheck) =
                match (jwk.key_type(), jwk.curve()) {
                    ("EC", Some("P-256")) => (
                        "ES256",
                        Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).map_err(
                            |reason| SigningKeyError::NotP256 {
                                agency: id.clone(),
                                reason,
                            },
                        )?),
                        KeyCheck::Es256(p256_point(&jwk, id)?),
                    ),
                    ("OKP", Some("Ed25519")) => (
                        "EdDSA",
                        Box::new(josekit::jws::EdDSA.verifier_from_jwk(&jwk).map_err(
                            |reason| SigningKeyError::NotEd25519 {
                                agency: id.clone(),
                                reason,
                            },
                        )?),
                        KeyCheck::EdDsa(ed25519_point(&jwk, id)?),
                    ),
                    (kty, crv) => {
                        return Err(SigningKeyError::KeyType {
                            agency: id.clone(),
                            kty: kty.to_owned(),
                            crv: crv.map(str::to_owned),
                        });
                    }
                };
            if let Some(declared) = jwk.algorithm().filter(|a| *a != alg) {
                return Err(SigningKeyError::AlgMismatch {
                    agency: id.clone(),
                    declared: declared.to_owned(),
                    alg,
                });
            }
            let key = SenderKey {
                kid,
                alg,
                check,
                jose,
            };
            keys.insert(id.clone(), Arc::new(key));
        }
        Ok(Verifiers { keys })
    }

    /// Whether any agency signs with an Ed25519 key (whose envelopes the
    /// gateway checks in batches).
    pub fn any_ed25519(&self) -> bool {
        self.keys.values().any(|k| k.ed25519().is_some())
    }

    /// `agency`'s registered signing key: its `kid`, its JWS `alg` and a
    /// verifier for it, for JWSs other than envelopes (the inner JWS of a
    /// sealed part, [`crate::sealed`]).
    pub fn signing_key(&self, agency: &AgencyId) -> Option<(&str, &'static str, &dyn JwsVerifier)> {
        let key = self.keys.get(agency)?;
        Some((key.kid.as_str(), key.alg, key.jose.as_ref()))
    }
}

/// A JWK member's base64url bytes; `None` if absent or not base64url.
fn member_bytes(jwk: &Jwk, name: &str) -> Option<Vec<u8>> {
    let text = jwk.parameter(name)?.as_str()?;
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// The uncompressed point of a P-256 JWK that josekit accepted.
fn p256_point(
    jwk: &Jwk,
    agency: &AgencyId,
) -> Result<UnparsedPublicKey<[u8; 65]>, SigningKeyError> {
    let coordinate = |name| {
        member_bytes(jwk, name)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| SigningKeyError::Coordinates {
                agency: agency.clone(),
            })
    };
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let mut point = [4u8; 65];
    point[1..33].copy_from_slice(&x);
    point[33..].copy_from_slice(&y);
    Ok(UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point))
}

/// The point of an Ed25519 JWK that josekit accepted, if it is one an
/// honest key generation makes: a canonical encoding of a point of the
/// prime-order subgroup (which is never small-order: the identity is the
/// only point of both, and it is small-order).
fn ed25519_point(
    jwk: &Jwk,
    agency: &AgencyId,
) -> Result<ed25519_zebra::VerificationKey, SigningKeyError> {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let weak = |why| SigningKeyError::WeakEd25519 {
        agency: agency.clone(),
        why,
    };
    let bytes = member_bytes(jwk, "x")
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| weak("x must be 32 bytes (base64url)"))?;
    let point = CompressedEdwardsY(bytes)
        .decompress()
        .ok_or_else(|| weak("x is not a point of the curve"))?;
    if point.compress().to_bytes() != bytes {
        return Err(weak("x is not the canonical encoding of its point"));
    }
    if point.is_small_order() {
        return Err(weak(
            "x is a small-order point, for which anyone could make signatures",
        ));
    }
    if !point.is_torsion_free() {
        return Err(weak("x is not a point of the prime-order subgroup"));
    }
    ed25519_zebra::VerificationKey::try_from(bytes)
        .map_err(|_| weak("x is not a point of the curve"))
}

/// An envelope checked up to its signature: structure, identity and
/// header ([`check`]). It holds what the signature check needs, and only
/// [`Signed::verify`] (or a batch check, [`crate::signatures`]) turns it
/// into a [`Verified`], whose claims can then be read.
#[derive(Debug)]
pub struct Signed {
    /// The compact JWS as received, without a trailing newline.
    compact: String,
    /// The length of the signing input, `header.payload`.
    signed_len: usize,
    signature: Vec<u8>,
    /// The payload, decoded; `None` if it is not base64url, which is
    /// refused after the signature.
    payload: Option<Vec<u8>>,
    sender: AgencyId,
    key: Arc<SenderKey>,
}

impl Signed {
    /// The JWS signing input, `BASE64URL(header) '.' BASE64URL(payload)`.
    pub fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signed_len]
    }

    /// The signature, decoded (any length: a wrong one does not verify).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The sender's registered signing key, the only one the signature is
    /// checked with.
    pub fn key(&self) -> &SenderKey {
        &self.key
    }

    /// The sender (the TLS identity, or the `iss` of a forwarded envelope).
    pub fn sender(&self) -> &AgencyId {
        &self.sender
    }

    /// Checks the signature alone (step 4).
    ///
    /// # Errors
    /// [`Rejection::BadSignature`] if it is not the sender's key's over
    /// the signing input.
    pub fn verify(self) -> Result<Verified, Rejection> {
        if self.key.verifies(self.signing_input(), self.signature()) {
            Ok(Verified(self))
        } else {
            Err(bad_signature())
        }
    }

    /// The envelope, its signature verified by a batch check of
    /// [`crate::signatures`], which must have checked exactly
    /// [`Signed::signing_input`] and [`Signed::signature`] with
    /// [`Signed::key`].
    pub(crate) fn verified_in_batch(self) -> Verified {
        Verified(self)
    }
}

/// The refusal of a signature that does not verify.
pub(crate) fn bad_signature() -> Rejection {
    Rejection::BadSignature("the signature does not verify".into())
}

/// An envelope whose signature verified with its sender's registered key:
/// only its claims are left to check ([`Verified::open`]).
#[derive(Debug)]
pub struct Verified(Signed);

/// The claims, exactly; anything else is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    iss: String,
    aud: String,
    jti: String,
    iat: i64,
    exp: i64,
    kind: String,
    body: Map<String, Value>,
}

/// Opens the compact JWS `compact` sent by `sender` (the TLS identity):
/// verifies it and checks its claims at time `now` (seconds since the
/// epoch). Runs in time linear in the input; never panics. The same as
/// [`check`], [`Signed::verify`] and [`Verified::open`] in turn.
///
/// # Errors
/// The first [`Rejection`] that applies, in the order of the module docs.
pub fn open(
    compact: &[u8],
    sender: &AgencyId,
    verifiers: &Verifiers,
    registry: &Registry,
    limits: Limits,
    now: i64,
) -> Result<Envelope, Rejection> {
    check(compact, sender, verifiers, registry)?
        .verify()?
        .open(registry, limits, now)
}

/// The checks before the signature's (steps 1-3 of the module docs: the
/// structure, the identity, the header) of the compact JWS `compact` sent
/// by `sender`; what is left to check is the signature, then the claims.
///
/// # Errors
/// The first [`Rejection`] of steps 1-3 that applies.
pub fn check(
    compact: &[u8],
    sender: &AgencyId,
    verifiers: &Verifiers,
    registry: &Registry,
) -> Result<Signed, Rejection> {
    let malformed = |m: &str| Rejection::Malformed(m.to_owned());
    let text = std::str::from_utf8(compact)
        .map_err(|_| malformed("the envelope is not a compact JWS (not UTF-8)"))?;
    let text = text.trim_end_matches(['\r', '\n']);
    let mut parts = text.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "the envelope is not a compact JWS (three base64url parts separated by '.')",
        ));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h64)
        .map_err(|_| malformed("the JWS header is not base64url-encoded JSON object"))?;
    crate::strict_json::check(&header_bytes)
        .map_err(|m| Rejection::Malformed(format!("the JWS header: {m}")))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| malformed("the JWS header is not base64url-encoded JSON object"))?;
    // Decoded once; a payload that is not base64url is refused only after
    // the signature, as before, so the first thing wrong is still named.
    let payload = URL_SAFE_NO_PAD.decode(p64).ok();
    let claimed = payload.as_deref().and_then(claimed_iss);
    if let Some(other) = claimed.filter(|iss| iss != sender.as_str()) {
        return Err(identity_mismatch(&other, sender, registry));
    }
    let key = verifiers.keys.get(sender).ok_or_else(|| {
        Rejection::BadSignature(format!("no signing key is registered for {sender}"))
    })?;

    let alg = header.get("alg").and_then(Value::as_str);
    match alg {
        None => return Err(malformed("the JWS header has no \"alg\"")),
        // The value is not quoted back: nothing a peer sends is.
        Some(a) if a != key.alg => {
            return Err(Rejection::UnsupportedAlg(format!(
                "this alg is not accepted; {sender} signs with {}",
                key.alg
            )));
        }
        Some(_) => {}
    }
    if let Some(name) = UNSUPPORTED_HEADERS
        .iter()
        .find(|h| header.contains_key(**h))
    {
        return Err(Rejection::UnsupportedHeader(format!(
            "the JWS header parameter {name:?} is not supported: keys come from the registry \
             only, and no extension is implemented"
        )));
    }
    if header.get("typ").and_then(Value::as_str) != Some(ENVELOPE_TYP) {
        return Err(malformed(
            "the JWS header must have \"typ\": \"xgate-envelope+jwt\"",
        ));
    }
    if header.get("kid").and_then(Value::as_str) != Some(key.kid.as_str()) {
        return Err(Rejection::BadSignature(format!(
            "\"kid\" is not the signing key registered for {sender}"
        )));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| malformed("the JWS signature is not base64url"))?;
    Ok(Signed {
        compact: text.to_owned(),
        signed_len: h64.len() + 1 + p64.len(),
        signature,
        payload,
        sender: sender.clone(),
        key: Arc::clone(key),
    })
}

impl Verified {
    /// The last checks (step 5 of the module docs): the claims, at time
    /// `now` (seconds since the epoch), against `registry`.
    ///
    /// # Errors
    /// The first [`Rejection`] of step 5 that applies.
    pub fn open(
        self,
        registry: &Registry,
        limits: Limits,
        now: i64,
    ) -> Result<Envelope, Rejection> {
        let Signed {
            compact,
            payload,
            sender,
            ..
        } = self.0;
        let sender = &sender;
        let malformed = |m: &str| Rejection::Malformed(m.to_owned());
        let payload = payload.ok_or_else(|| malformed("the JWS payload is not base64url"))?;
        crate::strict_json::check(&payload)
            .map_err(|m| Rejection::Malformed(format!("the claims: {m}")))?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|e| {
            // serde's message names the field and type, never a value.
            Rejection::Malformed(format!("the claims are not valid: {}", claim_error(&e)))
        })?;
        let iss: AgencyId = claims
            .iss
            .parse()
            .map_err(|_| Rejection::IdentityMismatch(format!("iss is not {sender}")))?;
        if &iss != sender {
            return Err(identity_mismatch(iss.as_str(), sender, registry));
        }
        let aud: AgencyId = claims
            .aud
            .parse()
            .ok()
            .filter(|a| registry.get(a).is_some())
            .ok_or_else(|| Rejection::WrongAudience("aud is not a registered agency".into()))?;
        if claims.jti.is_empty()
            || claims.jti.len() > MAX_JTI_LEN
            || !claims
                .jti
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(malformed(
                "jti must be 1-128 characters of letters, digits, '-', '_', '.' and ':'",
            ));
        }
        check_times(claims.iat, claims.exp, limits, now)?;
        let kind: Kind = claims
            .kind
            .parse()
            .map_err(|_| Rejection::UnsupportedKind("kind is not a known envelope kind".into()))?;
        Ok(Envelope {
            iss,
            aud,
            jti: claims.jti,
            iat: claims.iat,
            exp: claims.exp,
            kind,
            body: claims.body,
            digest: Sha256::digest(compact.as_bytes()).into(),
            compact,
        })
    }
}

/// The agency an envelope says it is from, read without verifying
/// anything: a forwarded envelope has no TLS identity of its own, so this
/// names the key [`open`] then checks it with (and the gateway that must
/// have forwarded it). `None` if it names no agency.
pub fn claimed_sender(compact: &[u8]) -> Option<AgencyId> {
    let text = std::str::from_utf8(compact).ok()?;
    let payload = URL_SAFE_NO_PAD.decode(text.split('.').nth(1)?).ok()?;
    claimed_iss(&payload)?.parse().ok()
}

/// The `iss` the claims hold as sent, if they are a JSON object with one
/// string `iss`: anything else (not JSON, `iss` missing, twice or not a
/// string) is `None`, and left for the checks after the signature to name.
fn claimed_iss(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Claimed {
        iss: String,
    }
    serde_json::from_slice::<Claimed>(payload)
        .ok()
        .map(|c| c.iss)
}

/// The refusal of an envelope whose `iss` is not `sender`. Only a
/// registered agency's id is quoted back; anything else the caller wrote
/// is not.
fn identity_mismatch(iss: &str, sender: &AgencyId, registry: &Registry) -> Rejection {
    match iss.parse::<AgencyId>() {
        Ok(iss) if registry.get(&iss).is_some() => Rejection::IdentityMismatch(format!(
            "iss is {iss}, but the TLS certificate is {sender}'s"
        )),
        _ => Rejection::IdentityMismatch(format!("iss is not {sender}")),
    }
}

fn check_times(iat: i64, exp: i64, limits: Limits, now: i64) -> Result<(), Rejection> {
    if exp <= iat {
        return Err(Rejection::Malformed("exp must be after iat".into()));
    }
    if exp.saturating_sub(iat) > limits.max_lifetime {
        return Err(Rejection::LifetimeTooLong(format!(
            "exp - iat is {} s; at most {} s is allowed",
            exp.saturating_sub(iat),
            limits.max_lifetime
        )));
    }
    if iat > now.saturating_add(limits.skew) {
        return Err(Rejection::NotYetValid(format!(
            "iat is {} s in the future (clock skew allowed: {} s)",
            iat.saturating_sub(now),
            limits.skew
        )));
    }
    if exp < now.saturating_sub(limits.skew) {
        return Err(Rejection::Expired(format!(
            "the envelope expired {} s ago (clock skew allowed: {} s)",
            now.saturating_sub(exp),
            limits.skew
        )));
    }
    Ok(())
}

/// A claims parse error in words that quote nothing from the input:
/// serde_json's messages quote unknown claim names and wrong values, so
/// only the parts that name our own fields or types are kept.
fn claim_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    // The position serde_json appends says nothing the caller can use.
    let message = message
        .split_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    let ours = |m: &str| {
        // `missing field `exp`` and `duplicate field `exp`` name our claims.
        ["missing field `", "duplicate field `"]
            .iter()
            .find_map(|p| m.strip_prefix(p))
            .and_then(|rest| rest.strip_suffix('`'))
            .filter(|name| CLAIMS.contains(name))
            .map(|name| format!("{} claim {name}", m.split(' ').next().unwrap_or("a")))
    };
    if let Some(named) = ours(message) {
        return named;
    }
    if message.starts_with("unknown field") {
        return format!(
            "an unknown claim is present; the claims are exactly {}",
            CLAIMS.join(", ")
        );
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        // "... expected i64" names our type; everything before it is input.
        return match message.rsplit_once("expected ") {
            Some((_, expected)) => format!("a claim has the wrong type (expected {expected})"),
            None => "a claim has the wrong type".into(),
        };
    }
    "the claims are not a JSON object of the expected claims".into()
}

/// The claims an envelope carries, exactly.
const CLAIMS: [&str; 7] = ["iss", "aud", "jti", "iat", "exp", "kind", "body"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Agency, CertificateBinding};
    use josekit::jwk::alg::ec::EcCurve;
    use josekit::jwk::alg::ed::EdCurve;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    /// A registry of `state` (ES256 key) and `hhs` (Ed25519 key), with
    /// their private JWKs.
    fn federation() -> (Registry, Jwk, Jwk) {
        let mut es = Jwk::generate_ec_key(EcCurve::P256).expect("ec");
        es.set_key_id("state-sig");
        es.set_key_use("sig");
        let mut ed = Jwk::generate_ed_key(EdCurve::Ed25519).expect("ed");
        ed.set_key_id("hhs-sig");
        ed.set_key_use("sig");
        let agency = |id: &str, jwk: &Jwk| {
            let mut public = jwk.as_ref().clone();
            public.remove("d");
            let mut enc = public.clone();
            enc.insert("use".into(), json!("enc"));
            enc.insert("kid".into(), json!(format!("{id}-enc")));
            Agency {
                id: id.parse().expect("id"),
                name: id.into(),
                gateway: None,
                certificate: CertificateBinding {
                    uri: format!("urn:xgate:agency:{id}"),
                    sha256: None,
                },
                signing_key: public,
                encryption_key: enc,
                roles: Vec::new(),
            }
        };
        let registry = Registry::from_agencies(vec![agency("state", &es), agency("hhs", &ed)])
            .expect("registry");
        (registry, es, ed)
    }

    fn sign(jwk: &Jwk, alg: &str, claims: serde_json::Value) -> String {
        let mut header = josekit::jws::JwsHeader::new();
        header.set_token_type(ENVELOPE_TYP);
        let payload = serde_json::to_vec(&claims).expect("claims");
        match alg {
            "ES256" => {
                let s = josekit::jws::ES256.signer_from_jwk(jwk).expect("signer");
                josekit::jws::serialize_compact(&payload, &header, &s).expect("sign")
            }
            _ => {
                let s = josekit::jws::EdDSA.signer_from_jwk(jwk).expect("signer");
                josekit::jws::serialize_compact(&payload, &header, &s).expect("sign")
            }
        }
    }

    fn claims(iss: &str, aud: &str) -> serde_json::Value {
        json!({"iss": iss, "aud": aud, "jti": "j1", "iat": NOW, "exp": NOW + 60,
               "kind": "record.send", "body": {"a": 1}})
    }

    fn open_as(registry: &Registry, sender: &str, jws: &str) -> Result<Envelope, Rejection> {
        let verifiers = Verifiers::from_registry(registry).expect("verifiers");
        open(
            jws.as_bytes(),
            &sender.parse().expect("id"),
            &verifiers,
            registry,
            Limits::default(),
            NOW,
        )
    }

    #[test]
    fn es256_and_eddsa_senders_are_each_held_to_their_own_algorithm() {
        let (registry, es, ed) = federation();
        let from_state = open_as(
            &registry,
            "state",
            &sign(&es, "ES256", claims("state", "hhs")),
        )
        .expect("ES256 envelope opens");
        assert_eq!(from_state.aud.as_str(), "hhs");
        assert_eq!(
            from_state.id(),
            hex::encode(Sha256::digest(from_state.compact.as_bytes()))
        );
        open_as(
            &registry,
            "hhs",
            &sign(&ed, "EdDSA", claims("hhs", "state")),
        )
        .expect("EdDSA envelope opens");
        // An Ed25519 key cannot speak ES256, nor the other way round.
        let err = open_as(
            &registry,
            "hhs",
            &sign(&es, "ES256", claims("hhs", "state")),
        )
        .expect_err("wrong algorithm");
        assert!(matches!(err, Rejection::UnsupportedAlg(_)), "{err:?}");
    }

    #[test]
    fn checks_run_in_order_and_name_the_problem() {
        let (registry, es, _) = federation();
        let cases = [
            (claims("hhs", "state"), "IdentityMismatch"),
            (claims("state", "nasa"), "WrongAudience"),
        ];
        for (c, want) in cases {
            let err = open_as(&registry, "state", &sign(&es, "ES256", c)).expect_err(want);
            assert!(format!("{err:?}").starts_with(want), "{err:?}");
        }
        // Addressed to itself: opens; only record.send refuses that, later.
        open_as(
            &registry,
            "state",
            &sign(&es, "ES256", claims("state", "state")),
        )
        .expect("aud = iss opens");
        let mut c = claims("state", "hhs");
        c["exp"] = json!(NOW + 301);
        let err = open_as(&registry, "state", &sign(&es, "ES256", c)).expect_err("long");
        assert!(matches!(err, Rejection::LifetimeTooLong(_)));
        let mut c = claims("state", "hhs");
        c["iat"] = json!(NOW - 200);
        c["exp"] = json!(NOW - 61);
        let err = open_as(&registry, "state", &sign(&es, "ES256", c)).expect_err("expired");
        assert!(matches!(err, Rejection::Expired(_)));
        let mut c = claims("state", "hhs");
        c["iat"] = json!(NOW - 200);
        c["exp"] = json!(NOW - 59);
        open_as(&registry, "state", &sign(&es, "ES256", c)).expect("within the skew");
    }

    #[test]
    fn another_agencys_envelope_is_an_identity_mismatch_whoever_signed_it() {
        let (registry, es, ed) = federation();
        // hhs's own envelope, validly signed (EdDSA, hhs's kid), sent over
        // state's connection: refused for what it is, not as a signature
        // (nor an algorithm) state's key cannot account for.
        let theirs = sign(&ed, "EdDSA", claims("hhs", "state"));
        open_as(&registry, "hhs", &theirs).expect("hhs's own envelope opens for hhs");
        let err = open_as(&registry, "state", &theirs).expect_err("not state's");
        assert!(matches!(err, Rejection::IdentityMismatch(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "iss is hhs, but the TLS certificate is state's"
        );
        // Read before anything is verified, so a forged signature changes
        // nothing; an iss naming no registered agency is not quoted back.
        let (signed, _) = theirs.rsplit_once('.').expect("three parts");
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        let err = open_as(&registry, "state", &forged).expect_err("forged");
        assert!(matches!(err, Rejection::IdentityMismatch(_)), "{err:?}");
        let err = open_as(
            &registry,
            "state",
            &sign(&es, "ES256", claims("nasa", "hhs")),
        )
        .expect_err("nobody");
        assert_eq!(err.to_string(), "iss is not state");
    }

    #[test]
    fn only_the_exact_signature_over_the_exact_input_verifies() {
        let (registry, es, ed) = federation();
        let check = |sender: &str, jws: &str| {
            let err = open_as(&registry, sender, jws).expect_err("refused");
            assert!(matches!(err, Rejection::BadSignature(_)), "{err:?}");
        };
        for (sender, jwk, alg, iss_aud) in [
            ("state", &es, "ES256", ("state", "hhs")),
            ("hhs", &ed, "EdDSA", ("hhs", "state")),
        ] {
            let jws = sign(jwk, alg, claims(iss_aud.0, iss_aud.1));
            let (signed, sig64) = jws.rsplit_once('.').expect("three parts");
            let sig = URL_SAFE_NO_PAD.decode(sig64).expect("b64");
            // One bit flipped in the signature, then in the signed input.
            let mut flipped = sig.clone();
            flipped[5] ^= 1;
            check(
                sender,
                &format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
            );
            let (h64, p64) = signed.split_once('.').expect("header.payload");
            let other = URL_SAFE_NO_PAD.encode(
                serde_json::to_vec(&claims(iss_aud.0, iss_aud.1))
                    .expect("json")
                    .iter()
                    .map(|b| if *b == b'1' { b'2' } else { *b })
                    .collect::<Vec<u8>>(),
            );
            assert_ne!(other, p64);
            check(sender, &format!("{h64}.{other}.{sig64}"));
            // Truncated, padded, and empty signatures.
            for bad in [&sig[..sig.len() - 1], &[sig.as_slice(), &[0]].concat(), &[]] {
                check(sender, &format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bad)));
            }
        }
        // ES256 in JWS is r || s (RFC 7518 section 3.4), never ASN.1 DER.
        let jws = sign(&es, "ES256", claims("state", "hhs"));
        let (signed, sig64) = jws.rsplit_once('.').expect("three parts");
        let sig = URL_SAFE_NO_PAD.decode(sig64).expect("b64");
        let der = openssl::ecdsa::EcdsaSig::from_private_components(
            openssl::bn::BigNum::from_slice(&sig[..32]).expect("r"),
            openssl::bn::BigNum::from_slice(&sig[32..]).expect("s"),
        )
        .and_then(|s| s.to_der())
        .expect("der");
        check(
            "state",
            &format!("{signed}.{}", URL_SAFE_NO_PAD.encode(der)),
        );
    }

    #[test]
    fn registry_keys_must_carry_full_length_coordinates() {
        let (registry, es, _) = federation();
        let mut agencies: Vec<Agency> = registry.agencies().cloned().collect();
        let state = agencies
            .iter_mut()
            .find(|a| a.id.as_str() == "state")
            .expect("state");
        let x = es.parameter("x").and_then(Value::as_str).expect("x");
        let short = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(x).expect("b64")[1..]);
        state.signing_key.insert("x".into(), json!(short));
        let err = Registry::from_agencies(agencies)
            .map_err(|e| e.to_string())
            .and_then(|r| Verifiers::from_registry(&r).map_err(|e| e.to_string()))
            .expect_err("a 31-byte coordinate is refused");
        // josekit refuses the point when the verifiers are built; the rest
        // of the message is OpenSSL's.
        assert!(
            err.starts_with("agency state: signing_key is not a P-256 key: "),
            "{err}"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let (registry, _, _) = federation();
        for input in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "eyJ9.e30.",
            "\u{0}.\u{0}.\u{0}",
        ] {
            assert!(open_as(&registry, "state", input).is_err(), "{input:?}");
        }
        let bytes = [0xff_u8, 0xfe, b'.', b'.'];
        let verifiers = Verifiers::from_registry(&registry).expect("verifiers");
        let sender = "state".parse().expect("id");
        assert!(
            open(
                &bytes,
                &sender,
                &verifiers,
                &registry,
                Limits::default(),
                NOW
            )
            .is_err()
        );
    }

    /// A registry of `hhs` signing with the Ed25519 public key `x`
    /// (32 bytes), and `state`.
    fn ed25519_registry(x: &[u8]) -> Result<Registry, String> {
        let (registry, _, _) = federation();
        let mut agencies: Vec<Agency> = registry.agencies().cloned().collect();
        let hhs = agencies
            .iter_mut()
            .find(|a| a.id.as_str() == "hhs")
            .expect("hhs");
        hhs.signing_key
            .insert("x".into(), json!(URL_SAFE_NO_PAD.encode(x)));
        Registry::from_agencies(agencies).map_err(|e| e.to_string())
    }

    /// hhs's envelope to state, signed over its signing input by `sign`.
    fn signed_by(sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let header = json!({"alg": "EdDSA", "typ": ENVELOPE_TYP, "kid": "hhs-sig"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims("hhs", "state").to_string())
        );
        let signature = sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn zip215_accepts_every_signature_openssl_and_dalek_make() {
        // ZIP-215 accepts all that the cofactorless check (OpenSSL's,
        // which checked envelopes before) accepts: envelopes signed by
        // josekit (OpenSSL) and by ed25519-dalek open, and so does each
        // one's check as OpenSSL and dalek (strictly) make it.
        for _ in 0..32 {
            let (registry, _, ed) = federation();
            let jws = sign(&ed, "EdDSA", claims("hhs", "state"));
            open_as(&registry, "hhs", &jws).expect("josekit's signature opens");
            let verifier = josekit::jws::EdDSA
                .verifier_from_jwk(&ed.to_public_key().expect("public"))
                .expect("verifier");
            let (input, sig64) = jws.rsplit_once('.').expect("three parts");
            let sig = URL_SAFE_NO_PAD.decode(sig64).expect("b64");
            verifier
                .verify(input.as_bytes(), &sig)
                .expect("OpenSSL agrees");

            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).expect("random");
            let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
            let public = dalek.verifying_key();
            let registry = ed25519_registry(public.as_bytes()).expect("registry");
            let jws = signed_by(|input| {
                use ed25519_dalek::Signer as _;
                dalek.sign(input).to_bytes().to_vec()
            });
            open_as(&registry, "hhs", &jws).expect("dalek's signature opens");
            let (input, sig64) = jws.rsplit_once('.').expect("three parts");
            let sig = URL_SAFE_NO_PAD.decode(sig64).expect("b64");
            let sig = ed25519_dalek::Signature::from_slice(&sig).expect("64 bytes");
            public
                .verify_strict(input.as_bytes(), &sig)
                .expect("dalek's strict check agrees");
        }
    }

    #[test]
    fn weak_ed25519_keys_are_refused_at_start() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let refused = |x: &[u8]| {
            ed25519_registry(x)
                .and_then(|r| Verifiers::from_registry(&r).map_err(|e| e.to_string()))
                .expect_err("refused")
        };
        // The identity and a point of order 8: anyone could sign for them.
        for point in [EIGHT_TORSION[0], EIGHT_TORSION[1]] {
            let err = refused(point.compress().as_bytes());
            assert_eq!(
                err,
                "agency hhs: signing_key is not a usable Ed25519 key: x is a small-order \
                 point, for which anyone could make signatures"
            );
        }
        // A good key plus a point of order 8: not in the prime-order group.
        let mixed =
            ED25519_BASEPOINT_POINT * curve25519_dalek::Scalar::from(7u8) + EIGHT_TORSION[1];
        let err = refused(mixed.compress().as_bytes());
        assert!(
            err.ends_with("x is not a point of the prime-order subgroup"),
            "{err}"
        );
        // y + p for a small y: a point encoded non-canonically (2^255 - 19
        // + y, below 2^255 for y < 19).
        let non_canonical = (2u8..19).find_map(|y| {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + y;
            bytes[31] = 0x7f;
            CompressedEdwardsY(bytes).decompress().map(|_| bytes)
        });
        let bytes = non_canonical.expect("some y below 19 is on the curve");
        let err = refused(&bytes);
        assert!(
            err.ends_with("x is not the canonical encoding of its point"),
            "{err}"
        );
        // Not a point at all.
        let mut x = [0u8; 32];
        x[0] = 2;
        assert!(CompressedEdwardsY(x).decompress().is_none());
        assert_eq!(
            refused(&x),
            "agency hhs: signing_key is not a usable Ed25519 key: x is not a point of the curve"
        );
        // A key made honestly is kept.
        let (registry, _, _) = federation();
        assert!(
            Verifiers::from_registry(&registry)
                .expect("kept")
                .any_ed25519()
        );
    }

    #[test]
    fn the_steps_compose_to_open() {
        let (registry, es, ed) = federation();
        let verifiers = Verifiers::from_registry(&registry).expect("verifiers");
        for (sender, jws) in [
            ("state", sign(&es, "ES256", claims("state", "hhs"))),
            ("hhs", sign(&ed, "EdDSA", claims("hhs", "state"))),
        ] {
            let sender: AgencyId = sender.parse().expect("id");
            let signed = check(jws.as_bytes(), &sender, &verifiers, &registry).expect("checked");
            let (input, sig64) = jws.rsplit_once('.').expect("three parts");
            assert_eq!(signed.signing_input(), input.as_bytes());
            assert_eq!(
                signed.signature(),
                URL_SAFE_NO_PAD.decode(sig64).expect("b64")
            );
            assert_eq!(signed.sender(), &sender);
            assert_eq!(signed.key().kid(), format!("{sender}-sig"));
            let opened = signed
                .verify()
                .expect("verifies")
                .open(&registry, Limits::default(), NOW)
                .expect("opens");
            let whole = open(
                jws.as_bytes(),
                &sender,
                &verifiers,
                &registry,
                Limits::default(),
                NOW,
            )
            .expect("opens");
            assert_eq!(opened, whole);
        }
        // A bad signature passes the checks before it, and fails there.
        let jws = sign(&ed, "EdDSA", claims("hhs", "state"));
        let (input, _) = jws.rsplit_once('.').expect("three parts");
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        let signed = check(
            forged.as_bytes(),
            &"hhs".parse().expect("id"),
            &verifiers,
            &registry,
        )
        .expect("checked up to the signature");
        let err = signed.verify().expect_err("forged");
        assert!(matches!(err, Rejection::BadSignature(_)), "{err:?}");
    }
}
