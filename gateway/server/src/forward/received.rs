//! The receiving side's record of what was forwarded to it: exactly once
//! by sender and `jti`, for good.
//!
//! `Gy` sender `0x00` jti → the entry's log index (u64 BE) and the
//! envelope's digest (32 bytes). Written in the envelope's own commit.
//! A second copy of the same envelope (the forwarding gateway sending
//! again after a crash or a lost answer) is answered with the receipt of
//! the first; another envelope with the same sender and `jti` is a replay.
//! Unlike replay ids these are never purged: a copy may arrive after the
//! envelope's `exp`, and must still get the first one's receipt.

use xgate_ledger::{StoreError, WriteBatch};

use crate::apply::state::StateRead;
use crate::registry::AgencyId;
use crate::store_keys::Prefix;

/// Where an envelope forwarded here was logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Its entry's index in this log.
    pub log_index: u64,
    /// The SHA-256 of its compact JWS.
    pub digest: [u8; 32],
}

/// The key of `sender`'s envelope `jti`.
pub fn key(sender: &AgencyId, jti: &str) -> Vec<u8> {
    Prefix::Forwarded.key(&[sender.as_str().as_bytes(), jti.as_bytes()])
}

/// Adds the write that records `received` for `sender`'s `jti`.
pub fn put(sender: &AgencyId, jti: &str, received: Received, batch: &mut WriteBatch) {
    let mut value = received.log_index.to_be_bytes().to_vec();
    value.extend_from_slice(&received.digest);
    batch.put(key(sender, jti), value);
}

/// What was recorded for `sender`'s `jti`, if anything.
///
/// # Errors
/// A storage failure, or a record of the wrong length (a corrupt store).
pub fn get(
    state: &impl StateRead,
    sender: &AgencyId,
    jti: &str,
) -> Result<Option<Received>, StoreError> {
    let Some(value) = state.get(&key(sender, jti))? else {
        return Ok(None);
    };
    let (index, digest) = value.split_at_checked(8).ok_or_else(corrupt)?;
    Ok(Some(Received {
        log_index: u64::from_be_bytes(index.try_into().map_err(|_| corrupt())?),
        digest: digest.try_into().map_err(|_| corrupt())?,
    }))
}

fn corrupt() -> StoreError {
    StoreError("a forwarded-envelope record is malformed".into())
}
