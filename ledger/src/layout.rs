//! The log's own keys in its [`Store`](crate::store::Store), beside its
//! owner's: every one starts with `L`, so other owners (the gateway's
//! state) share the store without colliding.
//!
//! | key                 | value                                              |
//! |---------------------|----------------------------------------------------|
//! | `L` `F`             | format marker [`FORMAT`]                           |
//! | `L` `a`             | the last journal record applied, u64 BE            |
//! | `L` `b` owner key   | where a body put with `put_body` is (a locator)    |
//! | `L` `B` owner key   | where a body kept for good is (a locator)          |
//!
//! The tree itself is not in the store any more: entries and hashes are in
//! the journal until they are in tlog-tiles files (`log/integrate`).

/// Value of the format marker key.
pub const FORMAT: &[u8] = b"xgate-ledger/3";
/// The format marker of the layout before the journal and tile files,
/// which `xgate log migrate` converts from.
pub const FORMAT_V2: &[u8] = b"xgate-ledger/2";

pub(crate) const FORMAT_KEY: &[u8] = b"LF";
pub(crate) const APPLIED_KEY: &[u8] = b"La";
pub(crate) const BODY_PREFIX: &[u8] = b"Lb";
pub(crate) const KEPT_PREFIX: &[u8] = b"LB";

/// The key holding the locator of the body put under `key`.
pub(crate) fn body_key(key: &[u8]) -> Vec<u8> {
    [BODY_PREFIX, key].concat()
}

/// The key holding the locator of the body kept under `key`.
pub(crate) fn kept_key(key: &[u8]) -> Vec<u8> {
    [KEPT_PREFIX, key].concat()
}

/// Decodes a big-endian u64.
pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}
