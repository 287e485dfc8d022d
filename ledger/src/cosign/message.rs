//! The messages a cosignature signs, one per type (tlog-cosignature):
//!
//! - Ed25519 (type 0x04): `cosignature/v1\n`, `time <decimal>\n`, then the
//!   whole checkpoint text, extension lines included. It does not name the
//!   cosigner.
//! - ML-DSA-44 (type 0x06): the binary `cosigned_message` with the 12-byte
//!   label `subtree/v1\n\0`, the cosigner's name and the log's origin
//!   (each with a one-byte length), the timestamp, start 0, end the tree
//!   size and the root, integers big-endian. It does not cover extension
//!   lines, so checkpoints carrying any are refused.

use super::error::CosignError;
use crate::checkpoint::Checkpoint;
use crate::hash::Hash;

/// The header line of an Ed25519 cosignature's message.
const ED25519_HEADER: &str = "cosignature/v1\n";
/// The label opening an ML-DSA-44 `cosigned_message`.
const SUBTREE_LABEL: &[u8; 12] = b"subtree/v1\n\0";
/// The largest timestamp a cosignature may carry (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Parses `text` as a checkpoint, for the cosignature messages.
fn checkpoint_of(text: &str) -> Result<Checkpoint, CosignError> {
    Checkpoint::parse_body(text).map_err(CosignError::NotACheckpoint)
}

fn check_timestamp(timestamp: u64) -> Result<(), CosignError> {
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignError::Timestamp(timestamp));
    }
    Ok(())
}

/// The Ed25519 cosignature/v1 message over checkpoint `text` at
/// `timestamp`.
///
/// # Errors
/// [`CosignError::NotACheckpoint`] or [`CosignError::Timestamp`].
pub(crate) fn ed25519_message(timestamp: u64, text: &str) -> Result<Vec<u8>, CosignError> {
    check_timestamp(timestamp)?;
    checkpoint_of(text)?;
    Ok(format!("{ED25519_HEADER}time {timestamp}\n{text}").into_bytes())
}

/// The ML-DSA-44 `cosigned_message` by `cosigner` over checkpoint `text`
/// at `timestamp`: the whole tree, start 0 and end its size.
///
/// # Errors
/// [`CosignError::NotACheckpoint`], [`CosignError::ExtensionLines`],
/// [`CosignError::Timestamp`], [`CosignError::TooLong`] or
/// [`CosignError::EmptyTreeRoot`].
pub(crate) fn ml_dsa_message(
    cosigner: &str,
    timestamp: u64,
    text: &str,
) -> Result<Vec<u8>, CosignError> {
    let checkpoint = checkpoint_of(text)?;
    // The body parser ignores extension lines and accepts only canonical
    // size and root lines, so any difference is an extension line.
    if checkpoint.body() != text {
        return Err(CosignError::ExtensionLines);
    }
    subtree_message(
        cosigner,
        timestamp,
        &checkpoint.origin,
        0,
        checkpoint.size,
        &checkpoint.root,
    )
}

/// The `cosigned_message` for subtree `[start, end)` with root `hash`.
fn subtree_message(
    cosigner: &str,
    timestamp: u64,
    origin: &str,
    start: u64,
    end: u64,
    hash: &Hash,
) -> Result<Vec<u8>, CosignError> {
    check_timestamp(timestamp)?;
    let name_len = short_len(cosigner, "the cosigner name")?;
    let origin_len = short_len(origin, "the log origin")?;
    if start == end && *hash != Hash::EMPTY_ROOT {
        return Err(CosignError::EmptyTreeRoot);
    }
    let mut m = Vec::with_capacity(12 + 1 + cosigner.len() + 8 + 1 + origin.len() + 8 + 8 + 32);
    m.extend_from_slice(SUBTREE_LABEL);
    m.push(name_len);
    m.extend_from_slice(cosigner.as_bytes());
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.push(origin_len);
    m.extend_from_slice(origin.as_bytes());
    m.extend_from_slice(&start.to_be_bytes());
    m.extend_from_slice(&end.to_be_bytes());
    m.extend_from_slice(hash.as_bytes());
    Ok(m)
}

/// The one-byte length of an `opaque <1..2^8-1>` field.
fn short_len(field: &str, what: &'static str) -> Result<u8, CosignError> {
    match u8::try_from(field.len()) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(CosignError::TooLong(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    #[test]
    fn the_ed25519_message_is_the_spec_example() {
        let text = format!("example.com/behind-the-sofa\n20852163\n{ROOT}\n");
        let m = ed25519_message(1679315147, &text).expect("message");
        assert_eq!(
            String::from_utf8(m).expect("utf-8"),
            format!(
                "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n{ROOT}\n"
            )
        );
        // Extension lines are signed as they are.
        let ext = format!("{text}ext\n");
        assert!(
            ed25519_message(1, &ext)
                .expect("message")
                .ends_with(b"ext\n")
        );
        assert_eq!(
            ed25519_message(MAX_TIMESTAMP + 1, &text),
            Err(CosignError::Timestamp(MAX_TIMESTAMP + 1))
        );
        assert!(matches!(
            ed25519_message(1, "not a checkpoint\n"),
            Err(CosignError::NotACheckpoint(_))
        ));
    }

    #[test]
    fn the_ml_dsa_message_refuses_what_it_cannot_carry() {
        let text = format!("example.com/log\n1\n{ROOT}\n");
        assert_eq!(
            ml_dsa_message("w", 1, &format!("{text}ext\n")),
            Err(CosignError::ExtensionLines)
        );
        assert!(matches!(
            ml_dsa_message(&"w".repeat(256), 1, &text),
            Err(CosignError::TooLong(_))
        ));
        assert!(ml_dsa_message(&"w".repeat(255), 1, &text).is_ok());
        let long_origin = format!("{}\n1\n{ROOT}\n", "o".repeat(256));
        assert!(matches!(
            ml_dsa_message("w", 1, &long_origin),
            Err(CosignError::TooLong(_))
        ));
        assert_eq!(
            ml_dsa_message("w", 1, &format!("example.com/log\n0\n{ROOT}\n")),
            Err(CosignError::EmptyTreeRoot)
        );
        assert_eq!(
            ml_dsa_message("w", MAX_TIMESTAMP + 1, &text),
            Err(CosignError::Timestamp(MAX_TIMESTAMP + 1))
        );
    }
}
