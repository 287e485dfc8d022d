//! JWE for emergency medical data (RFC 7516): one fixed profile,
//! `ECDH-ES+A256KW` key agreement (RFC 7518 §4.6) and `A256GCM` content
//! encryption (RFC 7518 §5.3), to an EC P-256 key, in the compact
//! serialization (RFC 7516 §7.1). Medical responses use it, and so do the
//! sealed parts of records and medical requests ([`crate::sealed`]).
//!
//! The gateway never holds a recipient's private key, so the one thing it
//! does with these JWEs is [`inspect`]: check the shape of a compact JWE,
//! without any key, before it is stored or forwarded. [`encrypt`] and
//! [`decrypt`] are for the parties at either end (clients, tests, the demo).
//! All cryptography is josekit's (over OpenSSL); nothing is hand-rolled here.
//!
//! Error messages name the part or member at fault and never quote its
//! content: a JWE carries personal data, and its header is attacker input.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwe::alg::ecdh_es::EcdhEsJweEncrypter;
use josekit::jwe::{ECDH_ES_A256KW, JweHeader};
use josekit::jwk::Jwk;
use serde_json::{Map, Value};

/// The key management algorithm, the JWE `alg` header.
pub const KEY_ALG: &str = "ECDH-ES+A256KW";
/// The content encryption algorithm, the JWE `enc` header.
pub const CONTENT_ENC: &str = "A256GCM";
/// The `cty` header of an encrypted FHIR bundle.
pub const BUNDLE_CTY: &str = "application/fhir+json";

/// The EC curve of every key in this profile.
const CURVE: &str = "P-256";
/// Bytes in a P-256 coordinate (RFC 7518 §6.2.1.2: the full field size,
/// leading zeros kept).
const COORDINATE_LEN: usize = 32;
/// AES key wrap of a 256-bit content key adds one 64-bit block (RFC 3394).
const WRAPPED_KEY_LEN: usize = 40;
/// AES-GCM IV, 96 bits (RFC 7518 §5.3).
const IV_LEN: usize = 12;
/// AES-GCM authentication tag, 128 bits (RFC 7518 §5.3).
const TAG_LEN: usize = 16;
/// Header members that would let the sender point at keys or change how
/// the payload is processed: none has a use in this profile, and `jku`,
/// `jwk`, `x5u`, `x5c` invite a recipient to trust a key named by the
/// attacker; `zip` makes a small JWE a decompression bomb; `crit` asks for
/// extensions nobody here implements (RFC 7516 §4.1.13).
const FORBIDDEN_HEADERS: [&str; 6] = ["zip", "crit", "jku", "jwk", "x5u", "x5c"];

/// Why a JWE could not be made, read or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JweError {
    /// The key is not an EC P-256 key usable for this profile (wrong type
    /// or curve, a private key where a public one belongs, or the reverse).
    #[error("unusable key: {0}")]
    Key(String),
    /// The JWE, or the plaintext offered for one, is not in the shape this
    /// profile allows; the message names the part at fault.
    #[error("malformed JWE: {0}")]
    Malformed(String),
    /// Encryption or decryption failed: the wrong key, or a JWE altered in
    /// transit. Deliberately uninformative, so a failure is no oracle.
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}

/// Why a JWK is not a public EC P-256 key fit for this profile: a
/// recipient's key, or the ephemeral `epk` of a JWE. Each message names the
/// member at fault, never its value (the key may be attacker input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// The key holds its private part.
    #[error("d: a private key where a public one belongs")]
    Private,
    /// The key type is not `EC`.
    #[error("kty must be EC")]
    KeyType,
    /// The curve is not P-256.
    #[error("crv must be {CURVE}")]
    Curve,
    /// A coordinate is missing, not base64url, or not the curve's size.
    #[error("{0} must be base64url of {COORDINATE_LEN} bytes")]
    Coordinate(&'static str),
    /// `use` is present and not `enc`.
    #[error("use must be enc")]
    Use,
    /// `alg` is present and not [`KEY_ALG`].
    #[error("alg must be {KEY_ALG}")]
    Alg,
    /// `kid` is present and not a string.
    #[error("kid must be a string")]
    Kid,
    /// `key_ops` is present and does not allow key agreement.
    #[error("key_ops must include deriveKey")]
    KeyOps,
    /// josekit does not accept the map as a JWK.
    #[error("not a JWK josekit accepts")]
    NotJwk,
    /// The coordinates are not a point on the curve.
    #[error("x, y: not a point on P-256")]
    OffCurve,
}

/// The protected header members worth knowing about a JWE that cannot be
/// decrypted here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The recipient key's id, when the sender named it.
    pub kid: Option<String>,
    /// The content type, [`BUNDLE_CTY`] for an IPS bundle.
    pub cty: Option<String>,
}

/// Encrypts `plaintext` to `recipient`, a public EC P-256 JWK, and returns
/// the compact serialization.
///
/// The protected header carries `alg` = [`KEY_ALG`], `enc` =
/// [`CONTENT_ENC`], `cty` = [`BUNDLE_CTY`], the ephemeral key `epk`, and
/// the recipient's `kid` when the JWK has one.
///
/// # Errors
///
/// [`JweError::Key`] if `recipient` fails [`check_public_key`];
/// [`JweError::Malformed`] for an empty plaintext (which [`inspect`] would
/// refuse); [`JweError::Crypto`] if josekit fails to encrypt.
pub fn encrypt(plaintext: &[u8], recipient: &Map<String, Value>) -> Result<String, JweError> {
    encrypt_as(plaintext, recipient, BUNDLE_CTY)
}

/// [`encrypt`] with another content type: `cty` says what the plaintext
/// is (a sealed part, [`crate::sealed::TYP`], is a nested JWS).
///
/// # Errors
/// As for [`encrypt`].
pub fn encrypt_as(
    plaintext: &[u8],
    recipient: &Map<String, Value>,
    cty: &str,
) -> Result<String, JweError> {
    if plaintext.is_empty() {
        return Err(JweError::Malformed("the plaintext is empty".into()));
    }
    let encrypter = load_public_key(recipient).map_err(|e| JweError::Key(e.to_string()))?;
    let mut header = JweHeader::new();
    header.set_content_encryption(CONTENT_ENC);
    header.set_content_type(cty);
    if let Some(kid) = recipient.get("kid").and_then(Value::as_str) {
        header.set_key_id(kid);
    }
    josekit::jwe::serialize_compact(plaintext, &header, &encrypter)
        .map_err(|_| JweError::Crypto("encryption failed".into()))
}

/// Decrypts a compact JWE with `key`, the recipient's private EC P-256 JWK.
///
/// The JWE must first pass [`inspect`], so a JWE with any other `alg` or
/// `enc`, a compression or key-pointing header is refused before any
/// cryptography runs. When both the JWE and `key` carry a `kid`, they must
/// be the same; a JWE without one is tried with the key (the `kid` is a
/// routing hint, the key agreement and tag are what prove the key right).
///
/// # Errors
///
/// [`JweError::Malformed`] as for [`inspect`]; [`JweError::Key`] if `key`
/// is not a private EC P-256 key, or its `kid` is not the JWE's;
/// [`JweError::Crypto`] if the JWE does not decrypt with it (wrong key, or
/// altered).
pub fn decrypt(compact: &str, key: &Jwk) -> Result<Vec<u8>, JweError> {
    let header = inspect(compact)?;
    if key.key_type() != "EC" || key.curve() != Some(CURVE) {
        return Err(JweError::Key("not an EC P-256 key (kty, crv)".into()));
    }
    if key.parameter("d").is_none() {
        return Err(JweError::Key("not a private key (no d)".into()));
    }
    if let (Some(ours), Some(theirs)) = (key.key_id(), header.kid.as_deref())
        && ours != theirs
    {
        return Err(JweError::Key("kid: the JWE is for another key".into()));
    }
    let mut decrypter = ECDH_ES_A256KW
        .decrypter_from_jwk(key)
        .map_err(|_| JweError::Key("josekit cannot load it as an ECDH-ES key".into()))?;
    // Compared above; josekit would also refuse a JWE without a kid.
    decrypter.remove_key_id();
    // One message for every failure past this point: which step failed
    // (key unwrap, tag check) is of no use to a caller and of some to an
    // attacker probing with altered JWEs.
    let (plaintext, _) = josekit::jwe::deserialize_compact(compact, &decrypter)
        .map_err(|_| JweError::Crypto("the JWE does not decrypt with this key".into()))?;
    Ok(plaintext)
}

/// Checks the shape of a compact JWE without any key, and returns the
/// header members a router needs.
///
/// Requires exactly five base64url parts without padding (RFC 7516 §7.1);
/// a protected header that is a JSON object with `alg` = [`KEY_ALG`],
/// `enc` = [`CONTENT_ENC`], an `epk` that is a public EC P-256 key, and
/// none of `zip`, `crit`, `jku`, `jwk`, `x5u`, `x5c`; a 40-byte encrypted
/// key, a 12-byte IV, a non-empty ciphertext and a 16-byte tag. Whether
/// `epk` is a point on the curve is left to the recipient's decryption,
/// which loads it through OpenSSL.
///
/// # Errors
///
/// [`JweError::Malformed`], naming the part or member at fault.
pub fn inspect(compact: &str) -> Result<Header, JweError> {
    let malformed = JweError::Malformed;
    let parts: Vec<&str> = compact.splitn(6, '.').collect();
    let [header, key, iv, ciphertext, tag] = parts[..] else {
        return Err(malformed(
            "a compact JWE has exactly 5 dot-separated parts".into(),
        ));
    };

    let header = decode("protected header", header)?;
    let header: Map<String, Value> = serde_json::from_slice(&header)
        .map_err(|_| malformed("protected header: not a JSON object".into()))?;
    if header.get("alg").and_then(Value::as_str) != Some(KEY_ALG) {
        return Err(malformed(format!(
            "protected header: alg must be {KEY_ALG}"
        )));
    }
    if header.get("enc").and_then(Value::as_str) != Some(CONTENT_ENC) {
        return Err(malformed(format!(
            "protected header: enc must be {CONTENT_ENC}"
        )));
    }
    if let Some(name) = FORBIDDEN_HEADERS.iter().find(|n| header.contains_key(**n)) {
        return Err(malformed(format!(
            "protected header: {name} is not allowed"
        )));
    }
    match header.get("epk") {
        Some(Value::Object(epk)) => {
            check_ec_public(epk).map_err(|m| malformed(format!("protected header: epk: {m}")))?
        }
        _ => {
            return Err(malformed(
                "protected header: epk must be a JWK object".into(),
            ));
        }
    }
    let kid = optional_string(&header, "kid")?;
    let cty = optional_string(&header, "cty")?;

    expect_len("encrypted key", key, WRAPPED_KEY_LEN)?;
    expect_len("initialization vector", iv, IV_LEN)?;
    if decode("ciphertext", ciphertext)?.is_empty() {
        return Err(malformed("ciphertext: empty".into()));
    }
    expect_len("authentication tag", tag, TAG_LEN)?;
    Ok(Header { kid, cty })
}

/// Checks that `jwk` is a public EC P-256 key fit to encrypt to: `kty`
/// `EC`, `crv` `P-256`, `x` and `y` base64url of 32 bytes each forming a
/// point on the curve (loaded through josekit and OpenSSL), no private
/// member `d`, `use` (if any) `enc`, `alg` (if any) [`KEY_ALG`],
/// `key_ops` (if any) including `deriveKey`, `kid` (if any) a string.
///
/// # Errors
///
/// [`PublicKeyError`], naming the member at fault, never its value.
pub fn check_public_key(jwk: &Map<String, Value>) -> Result<(), PublicKeyError> {
    load_public_key(jwk).map(drop)
}

/// [`check_public_key`], returning the josekit encrypter it had to build
/// to know the point is valid, so [`encrypt`] loads the key once.
fn load_public_key(jwk: &Map<String, Value>) -> Result<EcdhEsJweEncrypter, PublicKeyError> {
    check_ec_public(jwk)?;
    if jwk.get("use").is_some_and(|u| u.as_str() != Some("enc")) {
        return Err(PublicKeyError::Use);
    }
    if jwk.get("alg").is_some_and(|a| a.as_str() != Some(KEY_ALG)) {
        return Err(PublicKeyError::Alg);
    }
    if jwk.get("kid").is_some_and(|k| !k.is_string()) {
        return Err(PublicKeyError::Kid);
    }
    // josekit refuses such a key too; saying so here keeps the point
    // error below about the point.
    if let Some(ops) = jwk.get("key_ops")
        && !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "deriveKey"))
    {
        return Err(PublicKeyError::KeyOps);
    }
    // josekit's own reasons are dropped: they may quote the member's value.
    let key = Jwk::from_map(jwk.clone()).map_err(|_| PublicKeyError::NotJwk)?;
    // OpenSSL refuses a point off the curve, or a coordinate not below
    // the field prime, when it decodes the key (SEC 1 §2.3.4).
    ECDH_ES_A256KW
        .encrypter_from_jwk(&key)
        .map_err(|_| PublicKeyError::OffCurve)
}

/// The shape of a public EC P-256 JWK, shared by recipient keys and the
/// ephemeral `epk` of a JWE: no cryptography, only member checks.
fn check_ec_public(jwk: &Map<String, Value>) -> Result<(), PublicKeyError> {
    // First, so a private key is called what it is whatever else is wrong.
    if jwk.contains_key("d") {
        return Err(PublicKeyError::Private);
    }
    if jwk.get("kty").and_then(Value::as_str) != Some("EC") {
        return Err(PublicKeyError::KeyType);
    }
    if jwk.get("crv").and_then(Value::as_str) != Some(CURVE) {
        return Err(PublicKeyError::Curve);
    }
    for member in ["x", "y"] {
        let ok = jwk
            .get(member)
            .and_then(Value::as_str)
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .is_some_and(|c| c.len() == COORDINATE_LEN);
        if !ok {
            return Err(PublicKeyError::Coordinate(member));
        }
    }
    Ok(())
}

/// Decodes one part of a compact JWE.
fn decode(part: &str, text: &str) -> Result<Vec<u8>, JweError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JweError::Malformed(format!("{part}: not base64url without padding")))
}

/// Decodes one part and checks its length.
fn expect_len(part: &str, text: &str, len: usize) -> Result<(), JweError> {
    if decode(part, text)?.len() != len {
        return Err(JweError::Malformed(format!("{part}: must be {len} bytes")));
    }
    Ok(())
}

/// A header member that is absent or a string.
fn optional_string(header: &Map<String, Value>, name: &str) -> Result<Option<String>, JweError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JweError::Malformed(format!(
            "protected header: {name} must be a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ec::EcCurve;
    use proptest::prelude::*;
    use serde_json::json;

    /// A private P-256 key with a kid, and its public half as a map.
    fn keypair() -> (Jwk, Map<String, Value>) {
        let mut private = Jwk::generate_ec_key(EcCurve::P256).expect("keygen");
        private.set_key_id("requester-1");
        let mut public = private.to_public_key().expect("public");
        public.set_key_id("requester-1");
        (private, public.as_ref().clone())
    }

    fn sample() -> (Jwk, String) {
        let (private, public) = keypair();
        let jwe = encrypt(br#"{"resourceType":"Bundle"}"#, &public).expect("encrypts");
        (private, jwe)
    }

    /// `jwe` with its protected header replaced by `f(header)`.
    fn with_header(jwe: &str, f: impl FnOnce(&mut Map<String, Value>)) -> String {
        let (head, rest) = jwe.split_once('.').expect("parts");
        let mut header: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).expect("b64")).expect("json");
        f(&mut header);
        let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json"));
        format!("{head}.{rest}")
    }

    /// `jwe` with part `index` replaced.
    fn with_part(jwe: &str, index: usize, part: &str) -> String {
        let mut parts: Vec<&str> = jwe.split('.').collect();
        parts[index] = part;
        parts.join(".")
    }

    fn malformed(result: Result<Header, JweError>) -> String {
        match result {
            Err(JweError::Malformed(m)) => m,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        let (private, public) = keypair();
        let plaintext = include_bytes!("../../../../tests/fixtures/ips/ips-avery.json");
        let jwe = encrypt(plaintext, &public).expect("encrypts");
        assert_eq!(decrypt(&jwe, &private).expect("decrypts"), plaintext);
    }

    #[test]
    fn wrong_key_does_not_decrypt() {
        let (_, jwe) = sample();
        let (mut other, _) = keypair();
        // Same kid, so it is the key agreement that fails, not the kid match.
        other.set_key_id("requester-1");
        assert!(matches!(decrypt(&jwe, &other), Err(JweError::Crypto(_))));
    }

    #[test]
    fn altered_ciphertext_does_not_decrypt() {
        let (private, jwe) = sample();
        let parts: Vec<&str> = jwe.split('.').collect();
        let mut ciphertext = URL_SAFE_NO_PAD.decode(parts[3]).expect("b64");
        ciphertext[0] ^= 1;
        let altered = with_part(&jwe, 3, &URL_SAFE_NO_PAD.encode(ciphertext));
        assert!(matches!(
            decrypt(&altered, &private),
            Err(JweError::Crypto(_))
        ));
    }

    #[test]
    fn decrypt_refuses_other_algorithms_before_trying() {
        let (private, jwe) = sample();
        let other_alg = with_header(&jwe, |h| {
            h.insert("alg".into(), json!("ECDH-ES"));
        });
        let other_enc = with_header(&jwe, |h| {
            h.insert("enc".into(), json!("A128CBC-HS256"));
        });
        for jwe in [other_alg, other_enc] {
            assert!(matches!(
                decrypt(&jwe, &private),
                Err(JweError::Malformed(_))
            ));
        }
    }

    #[test]
    fn decrypt_refuses_a_public_key() {
        let (private, jwe) = sample();
        let public = private.to_public_key().expect("public");
        assert!(matches!(decrypt(&jwe, &public), Err(JweError::Key(_))));
    }

    #[test]
    fn header_names_the_key_and_content_type() {
        let (_, jwe) = sample();
        let header = inspect(&jwe).expect("valid");
        assert_eq!(header.kid.as_deref(), Some("requester-1"));
        assert_eq!(header.cty.as_deref(), Some(BUNDLE_CTY));
    }

    #[test]
    fn kid_is_omitted_for_a_key_without_one() {
        let (_, mut public) = keypair();
        public.remove("kid");
        let jwe = encrypt(b"x", &public).expect("encrypts");
        assert_eq!(inspect(&jwe).expect("valid").kid, None);
    }

    #[test]
    fn decrypts_a_jwe_without_kid() {
        let (private, mut public) = keypair();
        public.remove("kid");
        let jwe = encrypt(b"x", &public).expect("encrypts");
        assert_eq!(decrypt(&jwe, &private).expect("decrypts"), b"x");
    }

    #[test]
    fn decrypt_refuses_a_jwe_for_another_kid() {
        let (mut private, jwe) = sample();
        private.set_key_id("requester-2");
        assert!(matches!(decrypt(&jwe, &private), Err(JweError::Key(_))));
    }

    #[test]
    fn encrypt_refuses_empty_plaintext() {
        let (_, public) = keypair();
        assert!(matches!(encrypt(b"", &public), Err(JweError::Malformed(_))));
    }

    #[test]
    fn encrypt_refuses_a_private_key() {
        let (private, _) = keypair();
        assert!(matches!(
            encrypt(b"x", private.as_ref()),
            Err(JweError::Key(_))
        ));
    }

    #[test]
    fn inspect_rejects_wrong_alg_and_enc() {
        let (_, jwe) = sample();
        let m = malformed(inspect(&with_header(&jwe, |h| {
            h.insert("alg".into(), json!("RSA-OAEP"));
        })));
        assert!(m.contains("alg"), "{m}");
        assert!(!m.contains("RSA"), "quotes the header: {m}");
        let m = malformed(inspect(&with_header(&jwe, |h| {
            h.remove("enc");
        })));
        assert!(m.contains("enc"), "{m}");
    }

    #[test]
    fn inspect_rejects_four_or_six_parts() {
        let (_, jwe) = sample();
        let four = jwe.rsplit_once('.').expect("parts").0;
        assert!(malformed(inspect(four)).contains("5"));
        assert!(malformed(inspect(&format!("{jwe}.AAAA"))).contains("5"));
    }

    #[test]
    fn inspect_rejects_bad_base64() {
        let (_, jwe) = sample();
        let cases = [
            (0, "e30=", "protected header"),
            (2, "AAAAAAAAAAAAAAA+", "initialization vector"),
            (3, "not base64!", "ciphertext"),
            (4, "AAAAAAAAAAAAAAAAAAAAAA==", "authentication tag"),
        ];
        for (index, part, name) in cases {
            let m = malformed(inspect(&with_part(&jwe, index, part)));
            assert!(m.starts_with(name), "{m}");
        }
    }

    #[test]
    fn inspect_rejects_wrong_lengths() {
        let (_, jwe) = sample();
        let b64 = |n: usize| URL_SAFE_NO_PAD.encode(vec![7u8; n]);
        let cases = [
            (1, b64(32), "encrypted key"),
            (1, String::new(), "encrypted key"),
            (2, b64(16), "initialization vector"),
            (3, String::new(), "ciphertext"),
            (4, b64(12), "authentication tag"),
        ];
        for (index, part, name) in cases {
            let m = malformed(inspect(&with_part(&jwe, index, &part)));
            assert!(m.starts_with(name), "{m}");
        }
    }

    #[test]
    fn inspect_rejects_compression_and_key_pointers() {
        let (_, jwe) = sample();
        for name in FORBIDDEN_HEADERS {
            let m = malformed(inspect(&with_header(&jwe, |h| {
                h.insert(name.into(), json!("https://attacker.example/keys"));
            })));
            assert!(m.contains(name), "{m}");
            assert!(!m.contains("attacker"), "quotes the header: {m}");
        }
    }

    #[test]
    fn inspect_rejects_a_bad_epk() {
        let (private, jwe) = sample();
        let d = private.parameter("d").cloned().expect("d");
        let cases: [(&str, Value); 4] = [
            ("d", d),
            ("crv", json!("P-384")),
            ("x", json!("AAAA")),
            ("kty", json!("OKP")),
        ];
        for (member, value) in cases {
            let m = malformed(inspect(&with_header(&jwe, |h| {
                h["epk"]
                    .as_object_mut()
                    .expect("epk")
                    .insert(member.into(), value);
            })));
            assert!(m.contains("epk") && m.contains(member), "{m}");
        }
        let m = malformed(inspect(&with_header(&jwe, |h| {
            h.remove("epk");
        })));
        assert!(m.contains("epk"), "{m}");
    }

    #[test]
    fn inspect_rejects_a_header_that_is_not_an_object() {
        let (_, jwe) = sample();
        let m = malformed(inspect(&with_part(&jwe, 0, &URL_SAFE_NO_PAD.encode("[1]"))));
        assert!(m.starts_with("protected header"), "{m}");
    }

    #[test]
    fn checks_public_keys() {
        let (private, public) = keypair();
        assert_eq!(check_public_key(&public), Ok(()));

        let err = check_public_key(private.as_ref())
            .expect_err("private")
            .to_string();
        assert!(err.starts_with("d:"), "{err}");

        let p384 = Jwk::generate_ec_key(EcCurve::P384).expect("keygen");
        let p384 = p384.to_public_key().expect("public");
        assert!(
            check_public_key(p384.as_ref())
                .expect_err("curve")
                .to_string()
                .contains("crv")
        );

        let mut short = public.clone();
        short.insert("x".into(), json!("AAAA"));
        assert!(
            check_public_key(&short)
                .expect_err("short")
                .to_string()
                .starts_with("x ")
        );

        // Right length, but (almost surely) not on the curve.
        let mut off_curve = public.clone();
        let mut y = URL_SAFE_NO_PAD
            .decode(public["y"].as_str().expect("y"))
            .expect("b64");
        y[31] ^= 1;
        off_curve.insert("y".into(), json!(URL_SAFE_NO_PAD.encode(&y)));
        let err = check_public_key(&off_curve)
            .expect_err("off curve")
            .to_string();
        assert!(err.contains("point"), "{err}");
        assert!(!err.contains(public["x"].as_str().expect("x")), "{err}");

        let mut signing = public.clone();
        signing.insert("use".into(), json!("sig"));
        assert!(
            check_public_key(&signing)
                .expect_err("use")
                .to_string()
                .contains("use")
        );

        let mut other_alg = public.clone();
        other_alg.insert("alg".into(), json!("ECDH-ES"));
        assert!(
            check_public_key(&other_alg)
                .expect_err("alg")
                .to_string()
                .contains("alg")
        );

        let mut verify_only = public;
        verify_only.insert("key_ops".into(), json!(["verify"]));
        assert!(
            check_public_key(&verify_only)
                .expect_err("ops")
                .to_string()
                .contains("key_ops")
        );
    }

    proptest! {
        #[test]
        fn inspect_never_panics_on_garbage(s in any::<String>()) {
            let _ = inspect(&s);
        }

        #[test]
        fn inspect_never_panics_on_dotted_base64(s in "[A-Za-z0-9_.=-]{0,300}") {
            let _ = inspect(&s);
        }

        #[test]
        fn inspect_never_panics_on_an_altered_jwe(at in any::<prop::sample::Index>(), byte in 0x20u8..0x7f) {
            static JWE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sample().1);
            let mut altered = JWE.clone().into_bytes();
            altered[at.index(JWE.len())] = byte;
            let altered = String::from_utf8(altered).expect("ascii");
            let _ = inspect(&altered);
        }
    }
}
