//! Checkpoints: the C2SP tlog-checkpoint body inside a C2SP signed note,
//! signed with Ed25519.
//!
//! - <https://c2sp.org/tlog-checkpoint>: origin line, decimal tree size,
//!   base64 root hash, optional extension lines, each ending in `\n`.
//! - <https://c2sp.org/signed-note>: the text, a blank line, then one line per
//!   signature: `— <name> <base64(key id || signature)>`, where the key id
//!   is the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.
//!
//! The key formats are those of Go's `golang.org/x/mod/sumdb/note`, so a
//! checkpoint from this log opens with existing tools. Where the key is kept
//! and when a checkpoint is signed is the log's business, not this module's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use crate::hash::Hash;
use crate::note::{NoteError, join_key, parse_note, signature_line, split_key};

/// The signature type byte for Ed25519 in signed-note keys and key ids.
const ALG_ED25519: u8 = 0x01;

/// Why a checkpoint, note or key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A key string is not in the signed-note key format.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A key name is empty or contains a space or `+`.
    #[error("invalid key name: names must be non-empty, without spaces or '+'")]
    InvalidName,
    /// The note is not a signed note (no blank line before signatures, bad
    /// signature lines, too many signatures).
    #[error("malformed signed note: {0}")]
    MalformedNote(&'static str),
    /// No signature line is from the expected key.
    #[error("note has no signature from {0}")]
    NoSignature(String),
    /// A signature from the expected key does not verify.
    #[error("signature from {0} does not verify")]
    BadSignature(String),
    /// The signed text is not a valid checkpoint body.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// The checkpoint's origin is not the log the key belongs to.
    #[error("checkpoint origin {found:?} is not {expected:?}")]
    WrongOrigin {
        /// The key's (and log's) name.
        expected: String,
        /// The origin line of the checkpoint.
        found: String,
    },
}

impl From<NoteError> for CheckpointError {
    fn from(e: NoteError) -> CheckpointError {
        match e {
            NoteError::MalformedKey(m) => CheckpointError::MalformedKey(m),
            NoteError::InvalidName => CheckpointError::InvalidName,
            NoteError::MalformedNote(m) => CheckpointError::MalformedNote(m),
        }
    }
}

/// The body of a checkpoint: which log, how large, and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (also the name of its signing key).
    pub origin: String,
    /// The number of entries committed to.
    pub size: u64,
    /// `MTH` of the first `size` entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body as signed: three lines, each ending in `\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.as_bytes())
        )
    }

    /// Parses a checkpoint body. Extension lines after the root are allowed
    /// and ignored, as the spec asks.
    ///
    /// # Errors
    /// [`CheckpointError::MalformedCheckpoint`] naming the first bad line.
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = CheckpointError::MalformedCheckpoint;
        let body = text
            .strip_suffix('\n')
            .ok_or(bad("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(bad("empty origin line"))?;
        let size = lines.next().ok_or(bad("missing size line"))?;
        let root = lines.next().ok_or(bad("missing root hash line"))?;
        if lines.any(str::is_empty) {
            return Err(bad("empty extension line"));
        }
        let canonical_decimal = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !canonical_decimal {
            return Err(bad("size is not a decimal number without leading zeroes"));
        }
        let size = size
            .parse()
            .map_err(|_| bad("size does not fit in 64 bits"))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|b| Hash::from_slice(&b))
            .ok_or(bad("root hash is not 32 bytes of standard base64"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// An Ed25519 signed-note signer: a key name and its private key.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl NoteSigner {
    /// Generates a new key for `name` from the operating system's randomness.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidName`] for a name the format cannot carry.
    /// Randomness failures are reported the same way as a malformed key.
    pub fn generate(name: &str) -> Result<NoteSigner, CheckpointError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| CheckpointError::MalformedKey("no randomness"))?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A signer for `name` from a fixed 32-byte Ed25519 seed. For tests and
    /// worked examples; real keys come from [`NoteSigner::generate`].
    ///
    /// # Errors
    /// [`CheckpointError::InvalidName`].
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner, CheckpointError> {
        check_name(name)?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses a private key in Go's `PRIVATE+KEY+<name>+<hex id>+<base64>` form.
    ///
    /// # Errors
    /// [`CheckpointError::MalformedKey`] or [`CheckpointError::InvalidName`].
    pub fn from_private_key(text: &str) -> Result<NoteSigner, CheckpointError> {
        let rest = text
            .trim_end()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(CheckpointError::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
        let (name, id, key) = split_ed25519_key(rest)?;
        let seed: [u8; 32] = key
            .try_into()
            .map_err(|_| CheckpointError::MalformedKey("Ed25519 seed must be 32 bytes"))?;
        let signer = NoteSigner {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        };
        if signer.verifier().key_id != id {
            return Err(CheckpointError::MalformedKey(
                "key id does not match the key",
            ));
        }
        Ok(signer)
    }

    /// The private key in Go's `PRIVATE+KEY+...` form. Secret: store with care.
    pub fn to_private_key(&self) -> String {
        let id = self.verifier().key_id;
        format!(
            "PRIVATE+KEY+{}",
            join_key(&self.name, id, ALG_ED25519, self.key.as_bytes())
        )
    }

    /// The key name (for a log, its origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier::new(&self.name, self.key.verifying_key())
    }

    /// Signs `text` (which must end in a newline) and returns the signed note.
    pub fn sign_note(&self, text: &str) -> String {
        use ed25519_dalek::Signer;
        let signature = self.key.sign(text.as_bytes());
        let line = signature_line(&self.name, self.verifier().key_id, &signature.to_bytes());
        format!("{text}\n{line}")
    }
}

/// An Ed25519 signed-note verifier key: name, key id and public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    fn new(name: &str, key: VerifyingKey) -> NoteVerifier {
        NoteVerifier {
            name: name.to_owned(),
            key_id: crate::note::key_id(name, ALG_ED25519, key.as_bytes()),
            key,
        }
    }

    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`.
    ///
    /// # Errors
    /// [`CheckpointError::MalformedKey`] or [`CheckpointError::InvalidName`].
    pub fn parse(text: &str) -> Result<NoteVerifier, CheckpointError> {
        let (name, id, key) = split_ed25519_key(text.trim_end())?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| CheckpointError::MalformedKey("Ed25519 public key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| CheckpointError::MalformedKey("not an Ed25519 public key"))?;
        let verifier = NoteVerifier::new(name, key);
        if verifier.key_id != id {
            return Err(CheckpointError::MalformedKey(
                "key id does not match the key",
            ));
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// Checks `note` carries a valid signature by this key and returns the
    /// signed text. Signatures by other keys are ignored, as the spec asks.
    ///
    /// # Errors
    /// [`CheckpointError::MalformedNote`], [`CheckpointError::NoSignature`]
    /// or [`CheckpointError::BadSignature`].
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, CheckpointError> {
        let parsed = parse_note(note)?;
        let mut found = false;
        for line in &parsed.signatures {
            if line.name != self.name || line.key_id != self.key_id {
                continue;
            }
            let signature = Signature::from_slice(&line.signature)
                .map_err(|_| CheckpointError::BadSignature(self.name.clone()))?;
            self.key
                .verify_strict(parsed.text.as_bytes(), &signature)
                .map_err(|_| CheckpointError::BadSignature(self.name.clone()))?;
            found = true;
        }
        if found {
            Ok(parsed.text)
        } else {
            Err(CheckpointError::NoSignature(self.name.clone()))
        }
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&join_key(
            &self.name,
            self.key_id,
            ALG_ED25519,
            self.key.as_bytes(),
        ))
    }
}

/// A checkpoint and the signed note that carries it, exactly as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The signed note text.
    pub note: String,
}

impl SignedCheckpoint {
    /// Verifies `note` with [`verify_checkpoint`] and keeps it with its body.
    ///
    /// # Errors
    /// As [`verify_checkpoint`].
    pub fn open(
        note: String,
        verifier: &NoteVerifier,
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let checkpoint = verify_checkpoint(&note, verifier)?;
        Ok(SignedCheckpoint { checkpoint, note })
    }
}

/// Verifies a signed checkpoint note against the log's verifier key and
/// returns its body. The origin must be the key's name.
///
/// # Errors
/// Any [`CheckpointError`]: a malformed note or body, a missing or bad
/// signature, or a foreign origin.
pub fn verify_checkpoint(
    note: &str,
    verifier: &NoteVerifier,
) -> Result<Checkpoint, CheckpointError> {
    let checkpoint = Checkpoint::parse_body(verifier.open(note)?)?;
    if checkpoint.origin != verifier.name {
        return Err(CheckpointError::WrongOrigin {
            expected: verifier.name.clone(),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}

/// Checks that `name` can be a key name (and so a log origin).
///
/// # Errors
/// [`CheckpointError::InvalidName`].
pub fn check_name(name: &str) -> Result<(), CheckpointError> {
    Ok(crate::note::check_name(name)?)
}

/// Splits an Ed25519 (type 0x01) key into name, id and key material.
fn split_ed25519_key(text: &str) -> Result<(&str, [u8; 4], Vec<u8>), CheckpointError> {
    let key = split_key(text)?;
    if key.key_type != ALG_ED25519 {
        return Err(CheckpointError::MalformedKey(
            "only Ed25519 keys (type 0x01) are supported",
        ));
    }
    Ok((key.name, key.key_id, key.material))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key and note from the documentation of Go's
    // golang.org/x/mod/sumdb/note, the reference implementation of signed-note.
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn signs_the_go_reference_note_byte_for_byte() {
        let signer = NoteSigner::from_private_key(GO_SKEY).expect("reference key parses");
        assert_eq!(signer.to_private_key(), GO_SKEY);
        assert_eq!(signer.verifier().to_string(), GO_VKEY);
        assert_eq!(signer.sign_note(GO_TEXT), format!("{GO_TEXT}\n{GO_SIG}"));
    }

    #[test]
    fn opens_the_go_reference_note() {
        let verifier = NoteVerifier::parse(GO_VKEY).expect("reference verifier parses");
        let note = format!("{GO_TEXT}\n{GO_SIG}");
        assert_eq!(verifier.open(&note), Ok(GO_TEXT));
    }

    #[test]
    fn opens_the_c2sp_spec_example() {
        let verifier = NoteVerifier::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .expect("spec verifier parses");
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        assert_eq!(verifier.open(note), Ok("This is an example message.\n"));
    }

    #[test]
    fn rejects_tampered_and_unsigned_notes() {
        let verifier = NoteVerifier::parse(GO_VKEY).expect("parses");
        let tampered = format!("{}\n{GO_SIG}", GO_TEXT.replace("problem,", "problem;"));
        assert_eq!(
            verifier.open(&tampered),
            Err(CheckpointError::BadSignature("PeterNeumann".into()))
        );
        let other = "\u{2014} someone AAAAAAAAAA==\n";
        assert_eq!(
            verifier.open(&format!("{GO_TEXT}\n{other}")),
            Err(CheckpointError::NoSignature("PeterNeumann".into()))
        );
        assert!(matches!(
            verifier.open(GO_TEXT),
            Err(CheckpointError::MalformedNote(_))
        ));
        let no_dash = format!("{GO_TEXT}\n- PeterNeumann x08go/ZJkuBS9U=\n");
        assert!(matches!(
            verifier.open(&no_dash),
            Err(CheckpointError::MalformedNote(_))
        ));
    }

    #[test]
    fn checkpoint_round_trips_through_a_signed_note() {
        let signer = NoteSigner::generate("example.org/log").expect("generates");
        let checkpoint = Checkpoint {
            origin: "example.org/log".into(),
            size: 42,
            root: Hash([7; 32]),
        };
        let note = signer.sign_note(&checkpoint.body());
        assert_eq!(verify_checkpoint(&note, &signer.verifier()), Ok(checkpoint));
        let restored = NoteSigner::from_private_key(&signer.to_private_key()).expect("round trip");
        assert_eq!(restored.verifier(), signer.verifier());
    }

    #[test]
    fn rejects_malformed_checkpoint_bodies() {
        let root = B64.encode([0u8; 32]);
        for body in [
            format!("origin\n042\n{root}\n"),
            format!("origin\n-1\n{root}\n"),
            format!("origin\n99999999999999999999\n{root}\n"),
            format!("\n1\n{root}\n"),
            "origin\n1\nAAAA\n".to_string(),
            format!("origin\n1\n{root}"),
            format!("origin\n1\n{root}\n\n"),
            "origin\n1\n".to_string(),
        ] {
            assert!(Checkpoint::parse_body(&body).is_err(), "accepted {body:?}");
        }
        let with_extension = format!("origin\n1\n{root}\nextension line\n");
        assert_eq!(
            Checkpoint::parse_body(&with_extension).map(|c| c.size),
            Ok(1)
        );
    }

    #[test]
    fn rejects_a_checkpoint_from_another_origin() {
        let signer = NoteSigner::generate("a.example/log").expect("generates");
        let body = Checkpoint {
            origin: "b.example/log".into(),
            size: 0,
            root: Hash::EMPTY_ROOT,
        }
        .body();
        let note = signer.sign_note(&body);
        assert!(matches!(
            verify_checkpoint(&note, &signer.verifier()),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", "a b", "a+b", "tab\there"] {
            assert!(NoteSigner::generate(name).is_err(), "accepted {name:?}");
        }
    }
}
