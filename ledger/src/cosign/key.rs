//! A cosigner's verifier key: its name, key id and public key, in the
//! signed-note vkey encoding `<name>+<hex id>+<base64(type || key)>` with
//! type 0x04 (Ed25519 cosignature/v1, 32-byte key) or 0x06 (ML-DSA-44,
//! 1312-byte key); and checking one cosignature with it.

use std::fmt;
use std::str::FromStr;

use ml_dsa::MlDsa44;

use super::error::CosignError;
use super::message::{MAX_TIMESTAMP, ed25519_message, ml_dsa_message};
use crate::note::{self, SignatureLine, join_key, split_key};

/// The signature type of Ed25519 cosignature/v1 (signed-note).
pub const TYPE_ED25519: u8 = 0x04;
/// The signature type of ML-DSA-44 cosignatures (signed-note).
pub const TYPE_ML_DSA_44: u8 = 0x06;
/// Length of an ML-DSA-44 public key (FIPS 204).
pub const ML_DSA_44_PUBLIC_KEY_LEN: usize = 1312;
/// Length of an ML-DSA-44 signature (FIPS 204).
pub const ML_DSA_44_SIGNATURE_LEN: usize = 2420;
/// Length of an Ed25519 signature.
const ED25519_SIGNATURE_LEN: usize = 64;

/// The two cosignature types of tlog-cosignature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CosignatureAlg {
    /// Ed25519 cosignature/v1, type 0x04.
    Ed25519,
    /// ML-DSA-44 (FIPS 204), type 0x06; the spec's recommendation for new
    /// deployments.
    MlDsa44,
}

impl CosignatureAlg {
    /// The signed-note signature type byte.
    pub fn key_type(self) -> u8 {
        match self {
            CosignatureAlg::Ed25519 => TYPE_ED25519,
            CosignatureAlg::MlDsa44 => TYPE_ML_DSA_44,
        }
    }

    /// Length of the signature proper (after the 8-byte timestamp).
    fn signature_len(self) -> usize {
        match self {
            CosignatureAlg::Ed25519 => ED25519_SIGNATURE_LEN,
            CosignatureAlg::MlDsa44 => ML_DSA_44_SIGNATURE_LEN,
        }
    }
}

impl fmt::Display for CosignatureAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CosignatureAlg::Ed25519 => "ed25519",
            CosignatureAlg::MlDsa44 => "ml-dsa-44",
        })
    }
}

impl FromStr for CosignatureAlg {
    type Err = CosignError;

    /// `ed25519` or `ml-dsa-44`.
    fn from_str(s: &str) -> Result<CosignatureAlg, CosignError> {
        match s {
            "ed25519" => Ok(CosignatureAlg::Ed25519),
            "ml-dsa-44" => Ok(CosignatureAlg::MlDsa44),
            _ => Err(CosignError::MalformedKey(
                "the algorithm is ed25519 or ml-dsa-44",
            )),
        }
    }
}

/// A cosigner's public key.
#[derive(Clone)]
pub(crate) enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    MlDsa44(Box<ml_dsa::VerifyingKey<MlDsa44>>),
}

impl PublicKey {
    fn alg(&self) -> CosignatureAlg {
        match self {
            PublicKey::Ed25519(_) => CosignatureAlg::Ed25519,
            PublicKey::MlDsa44(_) => CosignatureAlg::MlDsa44,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.as_bytes().to_vec(),
            PublicKey::MlDsa44(k) => k.encode().to_vec(),
        }
    }
}

/// A cosigner's verifier key (vkey): name, key id, type and public key.
///
/// The key id is `SHA-256(name || 0x0A || type || public key)[:4]`, as
/// tlog-cosignature requires for both types.
#[derive(Clone)]
pub struct CosignerVerifier {
    name: String,
    key_id: [u8; 4],
    key: PublicKey,
}

impl CosignerVerifier {
    pub(crate) fn new(name: &str, key: PublicKey) -> Result<CosignerVerifier, CosignError> {
        note::check_name(name)?;
        let key_id = note::key_id(name, key.alg().key_type(), &key.to_bytes());
        Ok(CosignerVerifier {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a vkey `<name>+<hex id>+<base64(type || public key)>` of type
    /// 0x04 or 0x06, checking the key id against the name and key.
    ///
    /// # Errors
    /// [`CosignError::Note`] for the framing,
    /// [`CosignError::UnsupportedType`], [`CosignError::MalformedKey`] or
    /// [`CosignError::KeyIdMismatch`].
    pub fn parse(vkey: &str) -> Result<CosignerVerifier, CosignError> {
        let encoded = split_key(vkey.trim_end())?;
        let key = public_key(encoded.key_type, &encoded.material)?;
        let verifier = CosignerVerifier::new(encoded.name, key)?;
        if verifier.key_id != encoded.key_id {
            return Err(CosignError::KeyIdMismatch);
        }
        Ok(verifier)
    }

    /// The key name (the witness's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The cosignature type.
    pub fn alg(&self) -> CosignatureAlg {
        self.key.alg()
    }

    /// Whether `line` claims to be from this key (same name and key id).
    pub fn signed(&self, line: &SignatureLine<'_>) -> bool {
        line.name == self.name && line.key_id == self.key_id
    }

    /// Verifies a cosignature by this key over the checkpoint `text` (the
    /// note text, final newline included) and returns its timestamp (POSIX
    /// seconds; 0 means the cosigner makes no statement about time).
    ///
    /// # Errors
    /// [`CosignError::OtherKey`] if the line is another key's,
    /// [`CosignError::BadSignature`] if it is this key's and does not
    /// verify, or why the text cannot be cosigned by this type
    /// ([`CosignError::NotACheckpoint`], [`CosignError::ExtensionLines`],
    /// [`CosignError::EmptyTreeRoot`], [`CosignError::Timestamp`]).
    pub fn verify(&self, text: &str, line: &SignatureLine<'_>) -> Result<u64, CosignError> {
        if !self.signed(line) {
            return Err(CosignError::OtherKey(self.name.clone()));
        }
        let bad = || CosignError::BadSignature(self.name.clone());
        let alg = self.alg();
        if line.signature.len() != 8 + alg.signature_len() {
            return Err(bad());
        }
        let (time, signature) = line.signature.split_at(8);
        let mut be = [0u8; 8];
        be.copy_from_slice(time);
        let timestamp = u64::from_be_bytes(be);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignError::Timestamp(timestamp));
        }
        let valid = match &self.key {
            PublicKey::Ed25519(key) => {
                let message = ed25519_message(timestamp, text)?;
                let signature =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad())?;
                key.verify_strict(&message, &signature).is_ok()
            }
            PublicKey::MlDsa44(key) => {
                let message = ml_dsa_message(&self.name, timestamp, text)?;
                let signature =
                    ml_dsa::Signature::<MlDsa44>::try_from(signature).map_err(|_| bad())?;
                // Pure ML-DSA with the empty context (FIPS 204, Algorithm 3).
                key.verify_with_context(&message, &[], &signature)
            }
        };
        if valid { Ok(timestamp) } else { Err(bad()) }
    }

    /// As [`CosignerVerifier::verify`], for one signature line as text (with
    /// or without its final newline), as a witness answers.
    ///
    /// # Errors
    /// [`CosignError::Note`] if it is not a signature line; then as
    /// [`CosignerVerifier::verify`].
    pub fn verify_line(&self, text: &str, line: &str) -> Result<u64, CosignError> {
        let line = note::parse_signature_line(line.strip_suffix('\n').unwrap_or(line))?;
        self.verify(text, &line)
    }
}

/// Decodes public key material of signature type `key_type`.
fn public_key(key_type: u8, material: &[u8]) -> Result<PublicKey, CosignError> {
    match key_type {
        TYPE_ED25519 => {
            let bytes: [u8; 32] = material
                .try_into()
                .map_err(|_| CosignError::MalformedKey("Ed25519 public key must be 32 bytes"))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| CosignError::MalformedKey("not an Ed25519 public key"))?;
            Ok(PublicKey::Ed25519(key))
        }
        TYPE_ML_DSA_44 => {
            let encoded =
                ml_dsa::EncodedVerifyingKey::<MlDsa44>::try_from(material).map_err(|_| {
                    CosignError::MalformedKey("ML-DSA-44 public key must be 1312 bytes")
                })?;
            Ok(PublicKey::MlDsa44(Box::new(ml_dsa::VerifyingKey::decode(
                &encoded,
            ))))
        }
        other => Err(CosignError::UnsupportedType(other)),
    }
}

impl fmt::Display for CosignerVerifier {
    /// The vkey.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_key(
            &self.name,
            self.key_id,
            self.alg().key_type(),
            &self.key.to_bytes(),
        ))
    }
}

impl fmt::Debug for CosignerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignerVerifier")
            .field("name", &self.name)
            .field("key_id", &note::hex_id(self.key_id))
            .field("alg", &self.alg())
            .finish()
    }
}

impl PartialEq for CosignerVerifier {
    fn eq(&self, other: &CosignerVerifier) -> bool {
        self.name == other.name
            && self.key_id == other.key_id
            && self.alg() == other.alg()
            && self.key.to_bytes() == other.key.to_bytes()
    }
}

impl Eq for CosignerVerifier {}

impl FromStr for CosignerVerifier {
    type Err = CosignError;

    fn from_str(s: &str) -> Result<CosignerVerifier, CosignError> {
        CosignerVerifier::parse(s)
    }
}
