//! C2SP signed-note framing, shared by every key type: splitting a note into
//! its text and signature lines, key names, key ids, and the
//! `<name>+<hex id>+<base64(type || key)>` key encoding.
//!
//! <https://c2sp.org/signed-note>: a note is a text ending in a newline, a
//! blank line, then one or more lines `— <name> <base64(key id || sig)>`.
//! What a signature means (the algorithm, the signed message) is the key
//! type's business: Ed25519 note signatures in `checkpoint`, timestamped
//! cosignatures in `cosign`. This is the one parser of notes both use.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// Why a note, a signature line or a key was refused at the framing level.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
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
}

/// Prefix of a signature line: U+2014 EM DASH and a space.
pub const SIG_PREFIX: &str = "\u{2014} ";
/// The most signature lines a note may carry. The spec asks verifiers to
/// accept at least 16; Go's note package refuses more than 100, so do we.
pub const MAX_SIGNATURES: usize = 100;

/// One signature line of a note, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLine<'n> {
    /// The key name.
    pub name: &'n str,
    /// The 4-byte key id (the first four bytes of the decoded blob).
    pub key_id: [u8; 4],
    /// The signature proper: the decoded blob after the key id (never empty).
    pub signature: Vec<u8>,
    /// The whole line as it appears in the note, without its newline.
    pub line: &'n str,
}

/// A note split into its signed text and its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note<'n> {
    /// The signed text, including its final newline.
    pub text: &'n str,
    /// The signature lines, in order.
    pub signatures: Vec<SignatureLine<'n>>,
}

/// Splits `note` into text and signature lines, checking the framing only:
/// no signature is verified here.
///
/// # Errors
/// [`NoteError::MalformedNote`]: a control character other than
/// newline, no blank line before the signatures, no signature, a line that
/// is not a signature line, or more than [`MAX_SIGNATURES`].
pub fn parse_note(note: &str) -> Result<Note<'_>, NoteError> {
    let bad = NoteError::MalformedNote;
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(bad("control character in the note"));
    }
    // The text may hold blank lines: the last one separates the signatures.
    let split = note
        .rfind("\n\n")
        .ok_or(bad("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let signatures = parse_signature_lines(signatures)?;
    if signatures.is_empty() {
        return Err(bad("no signature lines"));
    }
    Ok(Note { text, signatures })
}

/// Parses a block of signature lines, each ending in a newline (as a
/// witness answers `add-checkpoint`, or as they follow a note's blank
/// line). An empty block gives no lines.
///
/// # Errors
/// [`NoteError::MalformedNote`] for a line that is not a signature
/// line, a missing final newline, or more than [`MAX_SIGNATURES`] lines.
pub fn parse_signature_lines(block: &str) -> Result<Vec<SignatureLine<'_>>, NoteError> {
    let bad = NoteError::MalformedNote;
    if block.is_empty() {
        return Ok(Vec::new());
    }
    let block = block
        .strip_suffix('\n')
        .ok_or(bad("signatures must end with a newline"))?;
    let mut lines = Vec::new();
    for line in block.split('\n') {
        if lines.len() >= MAX_SIGNATURES {
            return Err(bad("too many signatures"));
        }
        lines.push(parse_signature_line(line)?);
    }
    Ok(lines)
}

/// Parses one signature line, `— <name> <base64(key id || signature)>`,
/// without its newline.
///
/// # Errors
/// [`NoteError::MalformedNote`].
pub fn parse_signature_line(line: &str) -> Result<SignatureLine<'_>, NoteError> {
    let bad = NoteError::MalformedNote;
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(bad("signature line must start with an em dash"))?;
    let (name, blob) = rest
        .split_once(' ')
        .ok_or(bad("signature line has no signature"))?;
    check_name(name).map_err(|_| bad("invalid signer name"))?;
    let blob = B64
        .decode(blob)
        .map_err(|_| bad("signature is not standard base64"))?;
    if blob.len() < 5 {
        return Err(bad("signature too short"));
    }
    let key_id = [blob[0], blob[1], blob[2], blob[3]];
    Ok(SignatureLine {
        name,
        key_id,
        signature: blob[4..].to_vec(),
        line,
    })
}

/// Formats a signature line, newline included.
pub fn signature_line(name: &str, key_id: [u8; 4], signature: &[u8]) -> String {
    let mut blob = Vec::with_capacity(4 + signature.len());
    blob.extend_from_slice(&key_id);
    blob.extend_from_slice(signature);
    format!("{SIG_PREFIX}{name} {}\n", B64.encode(blob))
}

/// Checks that `name` can be a key name (and so a log origin): non-empty,
/// without Unicode spaces or `+`.
///
/// # Errors
/// [`NoteError::InvalidName`].
pub fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::InvalidName);
    }
    Ok(())
}

/// `SHA-256(name || 0x0A || type || public key)[..4]`, the key id every
/// signed-note key type this crate knows uses.
pub fn key_id(name: &str, key_type: u8, public_key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', key_type]);
    h.update(public_key);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A key in the signed-note encoding, split: `<name>+<hex id>+<base64(type
/// || key material)>` (the same shape for Go's `PRIVATE+KEY+` keys once the
/// prefix is gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedKey<'k> {
    /// The key name.
    pub name: &'k str,
    /// The key id as written (not yet checked against the key).
    pub key_id: [u8; 4],
    /// The signature type byte.
    pub key_type: u8,
    /// The key material after the type byte.
    pub material: Vec<u8>,
}

/// Splits `<name>+<hex id>+<base64(type || material)>`, checking the name,
/// the id's form (8 lowercase hex digits) and the base64. Whether the id
/// matches the key is for the caller, which knows how the id is derived.
///
/// # Errors
/// [`NoteError::MalformedKey`] or [`NoteError::InvalidName`].
pub fn split_key(text: &str) -> Result<EncodedKey<'_>, NoteError> {
    let bad = NoteError::MalformedKey;
    let mut parts = text.splitn(3, '+');
    let (name, id, key) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(i), Some(k)) => (n, i, k),
        _ => return Err(bad("expected <name>+<key id>+<key>")),
    };
    check_name(name)?;
    if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad("key id must be 8 lowercase hex digits"));
    }
    let mut key_id = [0u8; 4];
    for (i, byte) in key_id.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(&id[2 * i..2 * i + 2], 16).map_err(|_| bad("key id is not hex"))?;
    }
    let key = B64
        .decode(key)
        .map_err(|_| bad("key is not standard base64"))?;
    let (&key_type, material) = key.split_first().ok_or(bad("empty key"))?;
    Ok(EncodedKey {
        name,
        key_id,
        key_type,
        material: material.to_vec(),
    })
}

/// Formats `<name>+<hex id>+<base64(type || material)>`.
pub fn join_key(name: &str, key_id: [u8; 4], key_type: u8, material: &[u8]) -> String {
    let mut key = Vec::with_capacity(1 + material.len());
    key.push(key_type);
    key.extend_from_slice(material);
    format!("{name}+{}+{}", hex_id(key_id), B64.encode(key))
}

/// The key id as 8 lowercase hex digits.
pub fn hex_id(id: [u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_signatures_at_the_last_blank_line() {
        let note = "a\n\nb\n\n\u{2014} k AQIDBAU=\n\u{2014} j AQIDBAUG\n";
        let parsed = parse_note(note).expect("parses");
        assert_eq!(parsed.text, "a\n\nb\n");
        assert_eq!(parsed.signatures.len(), 2);
        assert_eq!(parsed.signatures[0].name, "k");
        assert_eq!(parsed.signatures[0].key_id, [1, 2, 3, 4]);
        assert_eq!(parsed.signatures[0].signature, vec![5]);
        assert_eq!(parsed.signatures[1].line, "\u{2014} j AQIDBAUG");
    }

    #[test]
    fn refuses_every_malformed_frame() {
        for note in [
            "text\n",                                 // no blank line
            "text\n\n",                               // no signature
            "text\n\n\u{2014} k AQIDBAU=",            // no final newline
            "text\n\n- k AQIDBAU=\n",                 // not an em dash
            "text\n\n\u{2014} k\n",                   // no signature
            "text\n\n\u{2014}  AQIDBAU=\n",           // empty name
            "text\n\n\u{2014} k+1 AQIDBAU=\n",        // plus in the name
            "text\n\n\u{2014} k AQIDBA==\n",          // 4 bytes: no signature
            "text\n\n\u{2014} k AQID!AU=\n",          // not base64
            "te\rxt\n\n\u{2014} k AQIDBAU=\n",        // control character
            "text\n\n\u{2014} k AQIDBAU=\n\n",        // blank line after
            "text\n\n\u{2014} k AQIDBAU=\ntrailer\n", // trailing text
        ] {
            assert!(
                matches!(parse_note(note), Err(NoteError::MalformedNote(_))),
                "accepted {note:?}"
            );
        }
        let many = "\u{2014} k AQIDBAU=\n".repeat(MAX_SIGNATURES + 1);
        assert!(parse_note(&format!("t\n\n{many}")).is_err());
        let enough = "\u{2014} k AQIDBAU=\n".repeat(MAX_SIGNATURES);
        assert!(parse_note(&format!("t\n\n{enough}")).is_ok());
    }

    #[test]
    fn keys_round_trip_and_refuse_bad_parts() {
        let text = join_key("example.com/w", [0xde, 0xad, 0xbe, 0xef], 4, &[9; 32]);
        let key = split_key(&text).expect("parses");
        assert_eq!(key.name, "example.com/w");
        assert_eq!(key.key_id, [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(key.key_type, 4);
        assert_eq!(key.material, vec![9; 32]);
        for bad in [
            "name+deadbeef",
            "name+DEADBEEF+BAk=",
            "name+deadbee+BAk=",
            "name+deadbeef+!!",
            "name+deadbeef+",
            "+deadbeef+BAk=",
            "na me+deadbeef+BAk=",
        ] {
            assert!(split_key(bad).is_err(), "accepted {bad:?}");
        }
    }
}
