//! A cosigner: a name and a private key of either cosignature type, which
//! signs checkpoints at a given time.
//!
//! Private keys are kept as 32-byte seeds (Ed25519: RFC 8032 secret key;
//! ML-DSA-44: the FIPS 204 key generation seed `ξ`) in the text form of
//! Go's note package, `PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`.
//! ML-DSA-44 signatures are hedged (FIPS 204's default, fresh randomness
//! mixed into each signature), which keeps them safe against fault and
//! side-channel attacks that target deterministic signing.

use std::fmt;

use ml_dsa::{ExpandedSigningKey, MlDsa44};

use super::error::CosignError;
use super::key::{CosignatureAlg, CosignerVerifier, PublicKey};
use super::message::{ed25519_message, ml_dsa_message};
use crate::hash::Hash;
use crate::note::{self, join_key, split_key};

/// The prefix of a private key's text form.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

enum SecretKey {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    MlDsa44 {
        // Keeps the seed (for the key file) and zeroizes it on drop.
        seed: Box<ml_dsa::SigningKey<MlDsa44>>,
        // Hedged signing is offered on the expanded key.
        expanded: Box<ExpandedSigningKey<MlDsa44>>,
    },
}

/// A cosigner: signs cosignature lines over checkpoints.
pub struct Cosigner {
    verifier: CosignerVerifier,
    secret: SecretKey,
}

impl Cosigner {
    /// A new key of type `alg` for `name` from the operating system's
    /// randomness.
    ///
    /// # Errors
    /// [`CosignError::Note`] for a name the format cannot carry,
    /// [`CosignError::Randomness`].
    pub fn generate(name: &str, alg: CosignatureAlg) -> Result<Cosigner, CosignError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| CosignError::Randomness)?;
        let cosigner = Cosigner::from_seed(name, alg, seed);
        seed.fill(0);
        cosigner
    }

    /// The cosigner of type `alg` for `name` from a 32-byte seed. For tests
    /// and worked examples; real keys come from [`Cosigner::generate`].
    ///
    /// # Errors
    /// [`CosignError::Note`] for a name the format cannot carry.
    pub fn from_seed(
        name: &str,
        alg: CosignatureAlg,
        seed: [u8; 32],
    ) -> Result<Cosigner, CosignError> {
        note::check_name(name)?;
        let (public, secret) = match alg {
            CosignatureAlg::Ed25519 => {
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                (
                    PublicKey::Ed25519(key.verifying_key()),
                    SecretKey::Ed25519(Box::new(key)),
                )
            }
            CosignatureAlg::MlDsa44 => {
                let seed = ml_dsa::Seed::from(seed);
                let key = ml_dsa::SigningKey::<MlDsa44>::from_seed(&seed);
                let public: &ml_dsa::VerifyingKey<MlDsa44> = key.as_ref();
                (
                    PublicKey::MlDsa44(Box::new(public.clone())),
                    SecretKey::MlDsa44 {
                        expanded: Box::new(ExpandedSigningKey::from_seed(&seed)),
                        seed: Box::new(key),
                    },
                )
            }
        };
        Ok(Cosigner {
            verifier: CosignerVerifier::new(name, public)?,
            secret,
        })
    }

    /// Parses a private key in the `PRIVATE+KEY+<name>+<hex id>+<base64(type
    /// || seed)>` form [`Cosigner::to_private_key`] writes.
    ///
    /// # Errors
    /// [`CosignError::Note`], [`CosignError::UnsupportedType`],
    /// [`CosignError::MalformedKey`] or [`CosignError::KeyIdMismatch`].
    /// Messages never carry key material.
    pub fn from_private_key(text: &str) -> Result<Cosigner, CosignError> {
        let rest = text
            .trim_end()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(CosignError::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
        let encoded = split_key(rest)?;
        let alg = match encoded.key_type {
            super::key::TYPE_ED25519 => CosignatureAlg::Ed25519,
            super::key::TYPE_ML_DSA_44 => CosignatureAlg::MlDsa44,
            other => return Err(CosignError::UnsupportedType(other)),
        };
        let seed: [u8; 32] = encoded
            .material
            .as_slice()
            .try_into()
            .map_err(|_| CosignError::MalformedKey("the seed must be 32 bytes"))?;
        let cosigner = Cosigner::from_seed(encoded.name, alg, seed)?;
        if cosigner.verifier.key_id() != encoded.key_id {
            return Err(CosignError::KeyIdMismatch);
        }
        Ok(cosigner)
    }

    /// The private key's text form. Secret: store it with care (0600).
    pub fn to_private_key(&self) -> String {
        let seed: [u8; 32] = match &self.secret {
            SecretKey::Ed25519(key) => key.to_bytes(),
            SecretKey::MlDsa44 { seed, .. } => seed.to_seed().into(),
        };
        let v = &self.verifier;
        format!(
            "{PRIVATE_PREFIX}{}",
            join_key(v.name(), v.key_id(), v.alg().key_type(), &seed)
        )
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> &CosignerVerifier {
        &self.verifier
    }

    /// Cosigns the checkpoint `text` (a note text, final newline included)
    /// at `timestamp` (POSIX seconds) and returns the signature line,
    /// `— <name> <base64(key id || timestamp || signature)>\n`.
    ///
    /// A checkpoint of size zero must carry the empty tree's root, for
    /// either type.
    ///
    /// # Errors
    /// [`CosignError::NotACheckpoint`], [`CosignError::EmptyTreeRoot`],
    /// [`CosignError::Timestamp`]; for ML-DSA-44 also
    /// [`CosignError::ExtensionLines`] and [`CosignError::TooLong`], and
    /// [`CosignError::Randomness`] if no randomness could be had.
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<String, CosignError> {
        let checkpoint =
            crate::checkpoint::Checkpoint::parse_body(text).map_err(CosignError::NotACheckpoint)?;
        if checkpoint.size == 0 && checkpoint.root != Hash::EMPTY_ROOT {
            return Err(CosignError::EmptyTreeRoot);
        }
        let signature = match &self.secret {
            SecretKey::Ed25519(key) => {
                use ed25519_dalek::Signer;
                key.sign(&ed25519_message(timestamp, text)?)
                    .to_bytes()
                    .to_vec()
            }
            SecretKey::MlDsa44 { expanded, .. } => {
                let message = ml_dsa_message(self.name(), timestamp, text)?;
                // Pure ML-DSA, empty context, hedged with the system RNG.
                expanded
                    .sign_randomized(&message, &[], &mut ml_dsa::common::getrandom::SysRng)
                    .map_err(|_| CosignError::Randomness)?
                    .encode()
                    .to_vec()
            }
        };
        let mut blob = Vec::with_capacity(8 + signature.len());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature);
        Ok(note::signature_line(
            self.name(),
            self.verifier.key_id(),
            &blob,
        ))
    }
}

impl fmt::Debug for Cosigner {
    /// The public half only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}
