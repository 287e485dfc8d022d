//! `xgate audit replay`: recompute the asset and medical state from the log
//! and the stored envelopes, and compare it with the state the gateway
//! stored.
//!
//! For every entry of an asset or medical kind, in log order, the replay
//! 1. takes the envelope stored beside it and checks that its SHA-256 is
//!    the digest the entry logged (so the envelope is the one logged);
//! 2. checks the envelope's claims (`iss`, `aud`, `jti`, `kind`) and, given
//!    a registry, its signature (with the checks the gateway ran, at the
//!    acceptance time the entry records) against the entry;
//! 3. recomputes the entry's kind fields from the body (tag, salted person
//!    hash, offer expiry presence; a medical request's purpose, the request
//!    named, a review's outcome, and whether a grant's terms are logged);
//! 4. applies the body with the step the gateway's committer ran,
//!    [`apply::apply`], with the [`Facts`] the entry records (its index,
//!    time, an offer's expiry, a grant's terms), to a state built in memory
//!    from nothing.
//!
//! Then every key of the recomputable state (the prefixes
//! [`crate::store_keys`] marks recomputed) is compared with the stored
//! one. Differences are described by key (an asset's tag, a report's id, a
//! request's `jti`), never by value: values hold person identifiers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use xgate_ledger::{Log, Store, StoreError, WriteBatch};

use crate::apply::state::Memory;
use crate::apply::{self, Facts, Op, asset, medical};
use crate::entry::{Logged, existing_salt, person_hash};
use crate::envelope::{self, Limits, Verifiers};
use crate::kind::Kind;
use crate::registry::{AgencyId, Registry};
use crate::store_keys::{Prefix, describe};

/// Most differences described; the rest are counted.
const DESCRIBED: usize = 50;

/// What a replay found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Entries read.
    pub entries: u64,
    /// Asset and medical envelopes applied.
    pub applied: u64,
    /// Recomputed state keys compared.
    pub keys: u64,
    /// The first differences, described.
    pub differences: Vec<String>,
    /// How many differences in all.
    pub difference_count: u64,
}

impl Outcome {
    /// Whether the stored state is exactly the recomputed one.
    pub fn is_clean(&self) -> bool {
        self.difference_count == 0
    }

    fn differ(&mut self, what: String) {
        self.difference_count += 1;
        if self.differences.len() < DESCRIBED {
            self.differences.push(what);
        }
    }
}

/// The claims an envelope carries, read without checking the signature.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    jti: String,
    kind: String,
    body: Map<String, Value>,
}

/// Entries read and checked at a time; checks run on every core, the
/// fold itself in log order.
const BLOCK: u64 = 8192;

/// Replays `log`; with `registry`, also checks every envelope's signature.
///
/// # Errors
/// A storage failure or an unreadable log; what does not match is an
/// [`Outcome`] difference, not an error.
pub fn replay<S: Store>(
    log: &Log<S>,
    registry: Option<&Registry>,
) -> Result<Outcome, xgate_ledger::Error> {
    let store = log.store();
    let verifiers = match registry {
        Some(r) => Some(Verifiers::from_registry(r).map_err(StoreError)?),
        None => None,
    };
    let checker = Checker {
        salt: existing_salt(store)?,
        registry: registry.zip(verifiers.as_ref()),
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut memory = Memory::default();
    let mut out = Outcome::default();
    let size = log.size();
    let mut start = 0;
    while start < size {
        let end = size.min(start + BLOCK);
        let mut block = Vec::new();
        for index in start..end {
            let entry = log.entry(index)?;
            let jws = store
                .get(&crate::inbox::kept_key(index))?
                .map(|v| v.as_ref().to_vec());
            block.push((index, entry, jws));
        }
        out.entries += end - start;
        let checked = checker.check_all(&block, threads);
        for (index, step) in checked {
            let applied = step.and_then(|step| {
                let Some(step) = step else { return Ok(false) };
                step.apply(index, &memory).map(|batch| {
                    memory.apply(batch);
                    true
                })
            });
            match applied {
                Ok(true) => out.applied += 1,
                Ok(false) => {}
                Err(e) => out.differ(format!("entry {index}: {e}")),
            }
        }
        start = end;
    }
    compare(store, &memory, &mut out)?;
    Ok(out)
}

/// What the checks of one entry leave for the fold.
struct Checked {
    entry: Logged,
    step: Op,
    iss: AgencyId,
    aud: AgencyId,
}

impl Checked {
    /// Applies the envelope to the state recomputed so far.
    fn apply(&self, index: u64, memory: &Memory) -> Result<WriteBatch, String> {
        let entry = &self.entry;
        let facts = Facts::new(
            &self.iss,
            &self.aud,
            &entry.jti,
            &entry.envelope,
            entry.stamp(),
            index,
        );
        let mut batch = WriteBatch::new();
        apply::apply(&self.step, &facts, memory, &mut batch)
            .map_err(|e| format!("the rules refuse it on replay: {e}"))?;
        Ok(batch)
    }
}

/// The checks of each entry that do not depend on the state before it.
struct Checker<'a> {
    salt: Option<[u8; 32]>,
    registry: Option<(&'a Registry, &'a Verifiers)>,
}

/// An entry, with its stored envelope if there is one.
type Read = (u64, Vec<u8>, Option<Vec<u8>>);

impl Checker<'_> {
    /// Checks a block of entries on `threads` threads, in order.
    fn check_all(
        &self,
        block: &[Read],
        threads: usize,
    ) -> Vec<(u64, Result<Option<Checked>, String>)> {
        let per_thread = block.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = block
                .chunks(per_thread)
                .map(|chunk| {
                    let handle = scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|(index, entry, jws)| (*index, self.check(entry, jws.as_deref())))
                            .collect::<Vec<_>>()
                    });
                    (chunk, handle)
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(chunk, handle)| {
                    // A check that panicked still counts its entries, as
                    // differences, rather than dropping them unseen.
                    handle.join().unwrap_or_else(|_| {
                        chunk
                            .iter()
                            .map(|(index, _, _)| (*index, Err("its check failed".to_owned())))
                            .collect()
                    })
                })
                .collect()
        })
    }

    /// Checks the stored envelope against its entry: `None` for an entry
    /// of another kind.
    fn check(&self, entry: &[u8], jws: Option<&[u8]>) -> Result<Option<Checked>, String> {
        let entry = Logged::parse(entry).map_err(|e| e.to_string())?;
        let kind: Kind = entry.kind.parse().map_err(|_| "unknown kind")?;
        if kind == Kind::RecordSend {
            return Ok(None);
        }
        let jws = jws.ok_or("its envelope is not stored")?;
        if hex::encode(Sha256::digest(jws)) != entry.envelope {
            return Err("the stored envelope is not the one logged".into());
        }
        let claims = claims(jws)?;
        if claims.iss != entry.iss
            || claims.aud != entry.aud
            || claims.jti != entry.jti
            || claims.kind != entry.kind
        {
            return Err("the envelope's claims differ from the entry".into());
        }
        let iss: AgencyId = claims.iss.parse().map_err(|_| "iss is not an agency id")?;
        let aud: AgencyId = claims.aud.parse().map_err(|_| "aud is not an agency id")?;
        if let Some((registry, verifiers)) = self.registry {
            envelope::open(
                jws,
                &iss,
                verifiers,
                registry,
                Limits::default(),
                entry.time,
            )
            .map_err(|e| format!("the envelope does not open as it did: {e}"))?;
        }
        let step = match Op::parse(kind, &claims.body) {
            Ok(op @ Op::Asset(_)) => self.asset_fields(op, &entry)?,
            Ok(op @ Op::Medical(_)) => self.medical_fields(op, &entry)?,
            Ok(Op::Record(_)) | Err(apply::BodyError::Unsupported(_)) => {
                return Err("not a kind the gateway applies".into());
            }
            Err(e) => return Err(format!("the body does not parse: {e}")),
        };
        Ok(Some(Checked {
            entry,
            step,
            iss,
            aud,
        }))
    }

    /// The salted hash of `person`, as entries log it.
    fn person(&self, person: Option<&str>) -> Result<Option<String>, String> {
        match (person, &self.salt) {
            (Some(p), Some(salt)) => Ok(Some(person_hash(salt, p))),
            (Some(_), None) => Err("no person-hash salt is stored".into()),
            (None, _) => Ok(None),
        }
    }

    /// Checks an asset entry's fields against the body.
    fn asset_fields(&self, op: Op, entry: &Logged) -> Result<Op, String> {
        let named = op.named();
        let person = self.person(named.person)?;
        if named.tag != entry.tag.as_deref() || person != entry.person {
            return Err("the entry's tag or person hash does not match the body".into());
        }
        let offer = matches!(op, Op::Asset(asset::Op::Offer(_)));
        if offer != entry.expires.is_some() {
            return Err("the entry's offer expiry is missing or out of place".into());
        }
        Ok(op)
    }

    /// Checks a medical entry's fields against the body: the subject's
    /// hash, the purpose, the request named, the outcome, and that a grant's
    /// terms are logged exactly where one is made (a request the policy let
    /// break the glass, an approval).
    fn medical_fields(&self, op: Op, entry: &Logged) -> Result<Op, String> {
        let named = op.named();
        let person = self.person(named.person)?;
        let same = person == entry.person
            && named.purpose == entry.purpose.as_deref()
            && named.outcome == entry.outcome.as_deref()
            && named.request == entry.request.as_deref();
        if !same {
            return Err("the entry's medical fields do not match the body".into());
        }
        let grants = match &op {
            Op::Medical(medical::Op::Request(_)) => entry.decision == "break-glass",
            Op::Medical(medical::Op::Approve(_)) => true,
            _ => false,
        };
        let terms = entry.expires.is_some() && entry.uses.is_some();
        let none = entry.expires.is_none() && entry.uses.is_none();
        if !(grants && terms || !grants && none) || entry.tag.is_some() {
            return Err("the entry's grant terms are missing or out of place".into());
        }
        Ok(op)
    }
}

fn claims(jws: &[u8]) -> Result<Claims, String> {
    let text = std::str::from_utf8(jws).map_err(|_| "the envelope is not UTF-8")?;
    let payload = text
        .split('.')
        .nth(1)
        .ok_or("the envelope is not a compact JWS")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "the envelope's payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "the envelope's claims do not parse".into())
}

/// Compares the recomputed state with the stored one, key by key.
fn compare<S: Store>(store: &S, memory: &Memory, out: &mut Outcome) -> Result<(), StoreError> {
    for prefix in Prefix::recomputed_all() {
        let mut stored = store.scan_prefix(prefix.bytes()).peekable();
        let mut recomputed = memory.under(prefix.bytes()).peekable();
        loop {
            let next_stored = match stored.peek() {
                Some(Ok((k, _))) => Some(k.clone()),
                Some(Err(e)) => return Err(e.clone()),
                None => None,
            };
            let next_memory = recomputed.peek().map(|(k, _)| (*k).clone());
            let (stored_only, memory_only) = match (&next_stored, &next_memory) {
                (None, None) => break,
                (Some(_), None) => (true, false),
                (None, Some(_)) => (false, true),
                (Some(s), Some(m)) => (s < m, m < s),
            };
            if stored_only {
                stored.next();
                let key = next_stored.unwrap_or_default();
                out.differ(format!("{}: stored, but not recomputed", describe(&key)));
            } else if memory_only {
                recomputed.next();
                out.keys += 1;
                let key = next_memory.unwrap_or_default();
                out.differ(format!("{}: recomputed, but not stored", describe(&key)));
            } else {
                out.keys += 1;
                let stored_value = stored.next().and_then(Result::ok).map(|(_, v)| v);
                let memory_value = recomputed.next().map(|(_, v)| v);
                if stored_value.as_ref().map(AsRef::as_ref) != memory_value.map(Vec::as_slice) {
                    let key = next_memory.unwrap_or_default();
                    out.differ(format!("{}: the stored value differs", describe(&key)));
                }
            }
        }
    }
    Ok(())
}
