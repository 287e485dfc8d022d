//! The facts of one envelope that the rules read besides its body: who
//! sent it to whom, its `jti` and id, where its entry is in the log, and
//! what the gateway decided when it accepted it ([`Stamp`]: the time, an
//! offer's or a grant's expiry, a grant's uses), all as the entry records
//! them.
//!
//! [`Facts::new`] is the one place they are put together, for the live
//! commit and for `xgate audit replay` alike, so the two cannot apply an
//! envelope with different facts.

use crate::entry::Stamp;
use crate::registry::AgencyId;

/// The envelope being applied.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// `iss`.
    pub sender: &'a AgencyId,
    /// `aud`.
    pub recipient: &'a AgencyId,
    /// `jti`.
    pub jti: &'a str,
    /// The envelope id (hex SHA-256 of the JWS).
    pub envelope: &'a str,
    /// The entry's index.
    pub log_index: u64,
    /// The time the rules judge it at, from the log entry: when this
    /// gateway accepted it, or for a forwarded envelope when the gateway
    /// that forwarded it did ([`Stamp::rule_time`]).
    pub time: i64,
    /// An offer's or a grant's expiry, from the log entry.
    pub expires: Option<i64>,
    /// How many responses a grant covers, from the log entry.
    pub uses: Option<u32>,
}

/// The terms of a grant, as its log entry records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    /// When it lapses, seconds since the epoch.
    pub expires: i64,
    /// How many responses it covers.
    pub uses: u32,
}

impl<'a> Facts<'a> {
    /// The facts of the envelope `jti` (id `envelope`) from `sender` to
    /// `recipient`, logged at `log_index` with `stamp`.
    pub fn new(
        sender: &'a AgencyId,
        recipient: &'a AgencyId,
        jti: &'a str,
        envelope: &'a str,
        stamp: Stamp,
        log_index: u64,
    ) -> Facts<'a> {
        Facts {
            sender,
            recipient,
            jti,
            envelope,
            log_index,
            time: stamp.rule_time(),
            expires: stamp.expires,
            uses: stamp.uses,
        }
    }

    /// The grant the entry records, if it records one: a break-the-glass
    /// request's or an approval's (an expiry with a number of uses).
    pub fn grant(&self) -> Option<Terms> {
        self.expires
            .zip(self.uses)
            .map(|(expires, uses)| Terms { expires, uses })
    }
}
