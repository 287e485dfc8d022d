//! Every key the gateway keeps in the log's store, beside the log's own
//! `L` keys: one table of two-byte prefixes under `G`, each with what its
//! keys hold and whether `xgate audit replay` recomputes them.
//!
//! Nobody else spells a prefix: the key builders of the asset state
//! (`assets::state`), the medical state (`medical::state`), the inbox
//! (`inbox`), the replay ids (`replay`) and the person-hash salt (`entry`)
//! build on [`Prefix`], and the replay describes a key that differs with
//! [`describe`], from the same table. The parts after a prefix are
//! separated by NUL, which no tag, agency id, location, person or `jti`
//! contains (their alphabets exclude control characters).

/// Which part of a key names what it is about, for [`describe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Named {
    /// The last NUL-separated part: a tag or a `jti`.
    LastPart,
    /// The first NUL-separated part: a tag.
    FirstPart,
    /// A log index, the first 8 bytes after the prefix.
    IndexFirst,
    /// A log index, the last 8 bytes.
    IndexLast,
    /// Nothing a person can read (a digest, a keep-until time).
    Nothing,
}

/// Whether `xgate audit replay` recomputes the keys under a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replayed {
    /// The state: recomputed from the log and compared.
    Recomputed,
    /// Kept beside the state, not recomputed (deliveries, replay ids, the
    /// salt, the envelopes the state is recomputed from).
    Kept,
}

/// Declares [`Prefix`] and its table from one list: a row per prefix,
/// `Name = bytes, what its keys are, the part that names one, replayed;`.
macro_rules! prefixes {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $bytes:literal, $what:literal, $named:ident, $replayed:ident;
    )*) => {
        /// A key prefix of the gateway's store.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Prefix {
            $($(#[doc = $doc])* $name,)*
        }

        impl Prefix {
            /// Every prefix, in the order of the table.
            pub const ALL: &'static [Prefix] = &[$(Prefix::$name),*];

            /// Its two bytes.
            pub const fn bytes(self) -> &'static [u8] {
                match self {
                    $(Prefix::$name => $bytes,)*
                }
            }

            /// What a key under it is, in words (`"asset record"`).
            pub const fn what(self) -> &'static str {
                match self {
                    $(Prefix::$name => $what,)*
                }
            }

            const fn named(self) -> Named {
                match self {
                    $(Prefix::$name => Named::$named,)*
                }
            }

            /// Whether `xgate audit replay` recomputes the keys under it.
            pub const fn recomputed(self) -> bool {
                match self {
                    $(Prefix::$name => matches!(Replayed::$replayed, Replayed::Recomputed),)*
                }
            }
        }
    };
}

prefixes! {
    /// `Ga` tag: an asset's current record.
    Asset = b"Ga", "asset record", LastPart, Recomputed;
    /// `Gv` tag `0` index (u64 BE): one event of an asset's custody chain.
    CustodyEvent = b"Gv", "custody event", FirstPart, Recomputed;
    /// `Gg` tag `0` seq (u32 BE): a custody event logged by another
    /// gateway, with its receipt, from the dossier of an offer forwarded
    /// here.
    ImportedEvent = b"Gg", "imported custody event", FirstPart, Recomputed;
    /// `Gh` agency `0` tag: the agency holds or has held the asset.
    HeldIndex = b"Gh", "holder index", LastPart, Recomputed;
    /// `Gl` agency `0` location `0` tag: where the holder keeps the asset.
    LocationIndex = b"Gl", "location index", LastPart, Recomputed;
    /// `Go` agency `0` tag: the asset was offered to the agency (the offer
    /// may have lapsed since).
    OfferIndex = b"Go", "offer index", LastPart, Recomputed;
    /// `Gq` tag: an asset's open discrepancies.
    OpenDiscrepancies = b"Gq", "open discrepancies", LastPart, Recomputed;
    /// `Gc` index (u64 BE): the reconciliation report of an inventory report.
    Reconciliation = b"Gc", "reconciliation report", IndexFirst, Recomputed;
    /// `Gn` index (u64 BE) seq (u32 BE): one notice of the discrepancy feed.
    FeedNotice = b"Gn", "feed notice", IndexFirst, Recomputed;
    /// `Gm` requester `0` jti: a medical request's case.
    MedicalCase = b"Gm", "medical request", LastPart, Recomputed;
    /// `Gw` holder `0` jti: the holder's name for a case (its requester).
    MedicalHolderIndex = b"Gw", "medical holder index", LastPart, Recomputed;
    /// `Gu` holder `0` index (u64 BE): a break-the-glass grant awaiting review.
    ReviewQueue = b"Gu", "review queue item", IndexLast, Recomputed;
    /// `Gp` due (u64 BE) index (u64 BE): a deadline a contract set, by
    /// when it falls due and the act that set it; a `clock.tick` entry
    /// fires and removes it.
    Deadline = b"Gp", "deadline", IndexLast, Recomputed;
    /// `Gj` index (u64 BE): the deadlines the `clock.tick` at that index
    /// fired, in order (what `xgate contracts explain` reads of a tick).
    FiredDeadlines = b"Gj", "fired deadlines", IndexFirst, Recomputed;
    /// `Ge` index (u64 BE): the compact JWS of an envelope the state is
    /// recomputed from, kept for good.
    KeptEnvelope = b"Ge", "kept envelope", IndexFirst, Kept;
    /// `Gt` index (u64 BE): the dossier a forwarded offer came with, kept
    /// for good beside its envelope (`audit replay`'s input too).
    KeptDossier = b"Gt", "kept dossier", IndexFirst, Kept;
    /// `Gb` index (u64 BE): the forwarding gateway's receipt of an
    /// envelope forwarded here, kept for good (custody chains show it).
    SenderReceipt = b"Gb", "sender gateway's receipt", IndexFirst, Kept;
    /// `Gi` recipient `0` index (u64 BE): an envelope waiting in an inbox.
    InboxItem = b"Gi", "inbox item", IndexLast, Kept;
    /// `Gd` digest (32 bytes): where an envelope waits, by id.
    InboxId = b"Gd", "inbox id", Nothing, Kept;
    /// `Gx` keep-until (u64 BE) sender `0` jti: a sender's `jti`, kept
    /// against replays.
    ReplayId = b"Gx", "replay id", Nothing, Kept;
    /// `Gr`: the replay index of earlier versions, dropped at open.
    LegacyReplayId = b"Gr", "replay id of an earlier version", Nothing, Kept;
    /// `Gk`: the salt of the person hashes in log entries.
    PersonSalt = b"Gk", "person-hash salt", Nothing, Kept;
    /// `Gf` gateway `0` index (u64 BE): an envelope waiting to be
    /// forwarded to the gateway that serves its recipient.
    ForwardQueue = b"Gf", "forward queue item", IndexLast, Kept;
    /// `Gs` sender `0` index (u64 BE): what became of an envelope the
    /// sender sent to an agency of another gateway (its outbox).
    Outbox = b"Gs", "outbox record", IndexLast, Kept;
    /// `Gy` sender `0` jti: an envelope forwarded here, and where it is in
    /// this log (exactly once by sender and `jti`).
    Forwarded = b"Gy", "forwarded envelope", LastPart, Kept;
}

impl Prefix {
    /// The prefix `key` is under, if it is one of the table's.
    pub fn of(key: &[u8]) -> Option<Prefix> {
        let head = key.get(..2)?;
        Prefix::ALL.iter().copied().find(|p| p.bytes() == head)
    }

    /// The prefixes `xgate audit replay` recomputes, in table order.
    pub fn recomputed_all() -> impl Iterator<Item = Prefix> {
        Prefix::ALL.iter().copied().filter(|p| p.recomputed())
    }

    /// The key of `parts` under this prefix, NUL-separated.
    pub fn key(self, parts: &[&[u8]]) -> Vec<u8> {
        let mut k = self.bytes().to_vec();
        join_into(&mut k, parts);
        k
    }

    /// The key of log index `index` (u64 BE) under this prefix.
    pub fn at(self, index: u64) -> Vec<u8> {
        self.key(&[&index.to_be_bytes()])
    }
}

/// `parts`, NUL-separated (a value that locates a key's record).
pub fn joined(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    join_into(&mut v, parts);
    v
}

fn join_into(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p);
    }
}

/// The last part of a key: a tag or a `jti`, after the last NUL.
pub fn last_part(key: &[u8]) -> Option<String> {
    let start = key.iter().rposition(|b| *b == 0).map_or(2, |i| i + 1);
    String::from_utf8(key.get(start..)?.to_vec()).ok()
}

/// A key in words, without its value (values hold person identifiers):
/// what it is and what it is about, `"location index of T-7"`.
pub fn describe(key: &[u8]) -> String {
    let Some(prefix) = Prefix::of(key) else {
        return format!("state key of {}", last_part(key).unwrap_or_default());
    };
    let tail = key.get(2..).unwrap_or_default();
    let index = |bytes: Option<&[u8]>| {
        bytes
            .and_then(|b| b.try_into().ok())
            .map(|b| format!("at entry {}", u64::from_be_bytes(b)))
            .unwrap_or_default()
    };
    let readable = match prefix.named() {
        Named::LastPart => format!("of {}", last_part(key).unwrap_or_default()),
        Named::FirstPart => {
            let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
            format!("of {}", String::from_utf8_lossy(&tail[..end]))
        }
        Named::IndexFirst => index(tail.get(..8)),
        Named::IndexLast => index(tail.len().checked_sub(8).and_then(|at| tail.get(at..))),
        Named::Nothing => return prefix.what().to_owned(),
    };
    format!("{} {readable}", prefix.what())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_is_distinct_and_described() {
        let mut seen = std::collections::HashSet::new();
        for &p in Prefix::ALL {
            assert_eq!(p.bytes().len(), 2, "{p:?}");
            assert_eq!(p.bytes()[0], b'G', "{p:?} is beside the log's L keys");
            assert!(seen.insert(p.bytes()), "{p:?} repeats a prefix");
            assert!(!p.what().is_empty(), "{p:?}");
            assert_eq!(Prefix::of(&p.key(&[b"x"])), Some(p));
            // A key under it is described as what it is, never as a bare
            // "state key".
            let key = p.key(&[b"agency", b"T-1", &7u64.to_be_bytes()]);
            let words = describe(&key);
            assert!(words.starts_with(p.what()), "{p:?}: {words}");
            assert!(!words.starts_with("state key"), "{p:?}: {words}");
        }
        assert_eq!(describe(b"Gzunknown"), "state key of unknown");
    }

    #[test]
    fn keys_name_their_tag_jti_or_entry() {
        let at = |p: Prefix, parts: &[&[u8]]| describe(&p.key(parts));
        assert_eq!(at(Prefix::Asset, &[b"T-3"]), "asset record of T-3");
        assert_eq!(
            at(Prefix::LocationIndex, &[b"treasury", b"HQ", b"T-7"]),
            "location index of T-7"
        );
        assert_eq!(
            at(Prefix::OfferIndex, &[b"gsa", b"T-9"]),
            "offer index of T-9"
        );
        assert_eq!(
            at(Prefix::CustodyEvent, &[b"T-1", &5u64.to_be_bytes()]),
            "custody event of T-1"
        );
        assert_eq!(
            describe(&Prefix::Reconciliation.at(12)),
            "reconciliation report at entry 12"
        );
        assert_eq!(
            at(Prefix::ReviewQueue, &[b"hhs", &9u64.to_be_bytes()]),
            "review queue item at entry 9"
        );
        assert_eq!(
            at(Prefix::MedicalCase, &[b"state", b"q-1"]),
            "medical request of q-1"
        );
    }

    #[test]
    fn the_recomputed_prefixes_are_the_state() {
        let recomputed: Vec<&[u8]> = Prefix::recomputed_all().map(Prefix::bytes).collect();
        assert_eq!(
            recomputed,
            [
                b"Ga", b"Gv", b"Gg", b"Gh", b"Gl", b"Go", b"Gq", b"Gc", b"Gn", b"Gm", b"Gw", b"Gu",
                b"Gp", b"Gj"
            ]
            .map(|b| b.as_slice())
        );
    }
}
