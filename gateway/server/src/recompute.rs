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
//! 5. with the policy file the entry names (by its hash, among those
//!    given), runs its contracts on the entry's events as the committer
//!    did ([`crate::acts::run`]) and expects exactly the act entries it
//!    computes to follow it in the log, byte for byte; an act the log
//!    holds that no contract computes there, or one computed and not
//!    logged, is a difference, as is an act under a policy whose file was
//!    not given (its effects cannot be recomputed without it).
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
use xgate_ledger::{Ledger, StoreError, StoreRead, WriteBatch};

use crate::acts::deadlines::{self, Tick};
use crate::acts::{self, Cause, Scope, Setting};
use crate::apply::record::Record;
use crate::apply::state::Memory;
use crate::apply::{self, ApplyError, BodyError, Facts, Op, asset, medical};
use crate::assets::dossier::Dossier;
use crate::assets::state as asset_state;
use crate::contracts::act::ActEntry;
use crate::entry::{EntryError, Logged, existing_salt, person_hash};
use crate::envelope::{self, Limits, Rejection, Verifiers};
use crate::kind::Kind;
use crate::policy::Policy;
use crate::registry::{AgencyId, GatewayId, Registry};
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
    /// Contracts' acts recomputed and found logged as computed.
    pub acts: u64,
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

/// Why a replay could not run. What does not match is an [`Outcome`]
/// difference, not an error.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The log could not be read.
    #[error(transparent)]
    Ledger(#[from] xgate_ledger::Error),
    /// The state or the stored envelopes could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An agency's signing key in the registry given is unusable, so
    /// signatures cannot be checked against it.
    #[error("cannot check signatures against the registry: {0}")]
    RegistryKey(String),
}

/// Why one entry does not replay as it was logged: a difference.
#[derive(Debug, thiserror::Error)]
enum Mismatch {
    /// The entry is not a gateway entry.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The entry names a kind the gateway does not know.
    #[error("unknown kind")]
    UnknownKind,
    /// The envelope the state is recomputed from is missing.
    #[error("its envelope is not stored")]
    NotStored,
    /// The stored envelope does not hash to the digest logged.
    #[error("the stored envelope is not the one logged")]
    NotLogged,
    /// The stored envelope is not text.
    #[error("the envelope is not UTF-8")]
    NotUtf8,
    /// The stored envelope is not a compact JWS.
    #[error("the envelope is not a compact JWS")]
    NotCompact,
    /// Its payload is not base64url.
    #[error("the envelope's payload is not base64url")]
    PayloadNotBase64,
    /// Its claims do not parse.
    #[error("the envelope's claims do not parse")]
    ClaimsDoNotParse,
    /// Its claims name other parties, `jti` or kind than the entry.
    #[error("the envelope's claims differ from the entry")]
    ClaimsDiffer,
    /// `iss` is not an agency id.
    #[error("iss is not an agency id")]
    BadIss,
    /// `aud` is not an agency id.
    #[error("aud is not an agency id")]
    BadAud,
    /// Its signature or claims do not check out at the logged time.
    #[error("the envelope does not open as it did: {0}")]
    DoesNotOpen(#[source] Rejection),
    /// Its body does not parse for its kind.
    #[error("the body does not parse: {0}")]
    Body(#[source] BodyError),
    /// The dossier kept with a forwarded offer does not parse.
    #[error("the dossier kept with the forwarded offer does not parse")]
    BadDossier,
    /// An entry of a kind the gateway does not apply to the state.
    #[error("not a kind the gateway applies")]
    NotApplied,
    /// A person to hash, and no salt to hash it with.
    #[error("no person-hash salt is stored")]
    NoSalt,
    /// The entry's asset fields are not the body's.
    #[error("the entry's tag or person hash does not match the body")]
    AssetFields,
    /// An offer's expiry missing, or an expiry on another asset kind.
    #[error("the entry's offer expiry is missing or out of place")]
    OfferExpiry,
    /// The entry's medical fields are not the body's.
    #[error("the entry's medical fields do not match the body")]
    MedicalFields,
    /// Grant terms missing where a grant is made, or present elsewhere.
    #[error("the entry's grant terms are missing or out of place")]
    GrantTerms,
    /// The rules refuse the envelope at its place in the log.
    #[error("the rules refuse it on replay: {0}")]
    Refused(#[source] ApplyError),
    /// The check of its block panicked (a bug): counted, not dropped.
    #[error("its check failed")]
    CheckFailed,
    /// The contracts could not be run on it (a storage failure).
    #[error("its contracts could not be run: {0}")]
    Acts(#[source] crate::apply::state::StateError),
    /// A `clock.tick` with no deadline due: the gateway logs none.
    #[error("a clock.tick at which no deadline is due")]
    IdleTick,
}

/// The policies a replay was given, by hash, with what the acts may see.
struct Policies<'a> {
    by_hash: std::collections::HashMap<String, &'a Policy>,
    registry: Option<&'a Registry>,
    local: Option<GatewayId>,
}

impl Policies<'_> {
    /// The acts the contracts of the policy `hash` (if given, with a
    /// registry) take on the entry `facts` describes, whose body is `op`
    /// and whose writes are in `batch`, over `memory`; their writes are
    /// added to `batch`.
    fn acts(
        &self,
        hash: &str,
        op: &Op,
        kind: Kind,
        facts: &Facts<'_>,
        memory: &Memory,
        batch: &mut WriteBatch,
    ) -> Result<Vec<Vec<u8>>, Mismatch> {
        let Some(setting) = self.setting(hash) else {
            return Ok(Vec::new());
        };
        let acts = acts::on_entry(setting, op, kind, facts, memory, batch);
        Ok(acts
            .map_err(Mismatch::Acts)?
            .into_iter()
            .map(|a| a.bytes)
            .collect())
    }

    /// The contracts of the policy `hash` and what their acts may see, if
    /// its file was given, with a registry.
    fn setting<'s>(&'s self, hash: &'s str) -> Option<Setting<'s>> {
        let (policy, registry) = (self.by_hash.get(hash)?, self.registry?);
        Some(Setting {
            contracts: policy.contracts(),
            policy: hash,
            scope: Scope {
                registry,
                local: self.local.as_ref(),
            },
        })
    }

    /// Fires the deadlines due at the tick at `index`, logged at `time`
    /// under the policy `hash`, and the contracts on them: the writes and
    /// the acts that must follow the tick.
    fn tick(
        &self,
        index: u64,
        tick: &Tick,
        memory: &Memory,
    ) -> Result<(WriteBatch, Vec<Vec<u8>>), Mismatch> {
        let mut batch = WriteBatch::new();
        let events =
            deadlines::fire(memory, index, tick.time, &mut batch).map_err(Mismatch::Acts)?;
        if events.is_empty() {
            return Err(Mismatch::IdleTick);
        }
        let cause = Cause {
            index,
            time: tick.time,
        };
        let acts = match self.setting(&tick.policy) {
            Some(setting) => acts::run(setting, cause, events, memory, &mut batch)
                .map_err(Mismatch::Acts)?
                .into_iter()
                .map(|a| a.bytes)
                .collect(),
            None => Vec::new(),
        };
        Ok((batch, acts))
    }

    /// Why an act logged under the policy `hash` cannot be recomputed, if
    /// it cannot.
    fn missing(&self, hash: &str) -> Option<String> {
        if !self.by_hash.contains_key(hash) {
            return Some(format!(
                "an act under policy {hash}, whose file was not given (--policy FILE)"
            ));
        }
        self.registry
            .is_none()
            .then(|| "an act, and no registry to run its contracts with (--registry)".to_owned())
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

/// Replays `log`; with `registry`, also checks every envelope's signature;
/// with `policies` (the policy files in force over the log's life) and a
/// registry, also recomputes the acts of their contracts.
///
/// # Errors
/// A storage failure, an unreadable log, or a registry whose keys cannot
/// check signatures; what does not match is an [`Outcome`] difference, not
/// an error.
pub fn replay(
    log: &dyn Ledger,
    registry: Option<&Registry>,
    policies: &[Policy],
) -> Result<Outcome, ReplayError> {
    let store = log.store();
    let local = log
        .origin()
        .strip_prefix("xgate/")
        .and_then(|id| id.parse::<GatewayId>().ok())
        .filter(|id| registry.is_some_and(|r| r.gateway(id).is_some()));
    let policies = Policies {
        by_hash: policies.iter().map(|p| (p.hash_hex(), p)).collect(),
        registry,
        local,
    };
    let verifiers = match registry {
        Some(r) => {
            Some(Verifiers::from_registry(r).map_err(|e| ReplayError::RegistryKey(e.to_string()))?)
        }
        None => None,
    };
    let checker = Checker {
        salt: existing_salt(store)?,
        registry: registry.zip(verifiers.as_ref()),
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut memory = Memory::default();
    let mut out = Outcome::default();
    // The acts computed for the last entry, which the log must hold next.
    let mut expected: std::collections::VecDeque<Vec<u8>> = Default::default();
    let size = log.size();
    let mut start = 0;
    while start < size {
        let end = size.min(start + BLOCK);
        let mut block = Vec::new();
        for index in start..end {
            let entry = log.entry(index)?;
            let jws = log.body(&crate::inbox::kept_key(index))?;
            let dossier = if forwarded_offer(&entry) {
                log.body(&asset_state::dossier_key(index))?
            } else {
                None
            };
            block.push((index, entry, jws, dossier));
        }
        out.entries += end - start;
        let checked = checker.check_all(&block, threads);
        for (index, step) in checked {
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    out.differ(format!("entry {index}: {e}"));
                    continue;
                }
            };
            if let Step::Act(bytes, policy) = &step {
                match expected.pop_front() {
                    Some(computed) if computed == *bytes => out.acts += 1,
                    Some(_) => out.differ(format!(
                        "entry {index}: the act logged is not the one its contract computes"
                    )),
                    None => out.differ(format!(
                        "entry {index}: {}",
                        policies.missing(policy).unwrap_or_else(|| {
                            "an act that no contract computes here".to_owned()
                        })
                    )),
                }
                continue;
            }
            if !expected.is_empty() {
                out.differ(format!(
                    "entry {index}: {} act(s) computed for the entry before are not logged",
                    expected.len()
                ));
                expected.clear();
            }
            let applied = match step {
                Step::Envelope(checked) => checked.apply(index, &memory, &policies),
                Step::Record(checked) => checked.apply(index, &memory, &policies),
                Step::Tick(tick) => policies
                    .tick(index, &tick, &memory)
                    .map(|(batch, acts)| (batch, acts, false)),
                Step::Act(..) => continue,
            };
            match applied {
                Ok((batch, acts, counted)) => {
                    memory.apply(batch);
                    expected.extend(acts);
                    if counted {
                        out.applied += 1;
                    }
                }
                Err(e) => out.differ(format!("entry {index}: {e}")),
            }
        }
        start = end;
    }
    if !expected.is_empty() {
        out.differ(format!(
            "the end of the log: {} act(s) computed for the last entry are not logged",
            expected.len()
        ));
    }
    compare(store, &memory, &mut out)?;
    Ok(out)
}

/// What the checks of one entry leave for the fold.
enum Step {
    /// An asset or medical envelope, applied to the state.
    Envelope(Checked),
    /// A record, which changes no state (its envelope is not kept) but
    /// may trigger contracts.
    Record(Checked),
    /// A contract's act, as logged, and the policy it names.
    Act(Vec<u8>, String),
    /// A `clock.tick`, which fires the deadlines due.
    Tick(Tick),
}

/// An envelope's entry, checked.
struct Checked {
    entry: Logged,
    kind: Kind,
    step: Op,
    iss: AgencyId,
    aud: AgencyId,
}

impl Checked {
    /// Applies the envelope to the state recomputed so far, and runs the
    /// contracts of its policy on it: the writes, the acts that must follow
    /// it, and whether it changed the state as an asset or medical one.
    fn apply(
        &self,
        index: u64,
        memory: &Memory,
        policies: &Policies<'_>,
    ) -> Result<(WriteBatch, Vec<Vec<u8>>, bool), Mismatch> {
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
        apply::apply(&self.step, &facts, memory, &mut batch).map_err(Mismatch::Refused)?;
        let acts = policies.acts(
            &entry.policy,
            &self.step,
            self.kind,
            &facts,
            memory,
            &mut batch,
        )?;
        let counted = !matches!(self.step, Op::Record(_));
        Ok((batch, acts, counted))
    }
}

/// The checks of each entry that do not depend on the state before it.
struct Checker<'a> {
    salt: Option<[u8; 32]>,
    registry: Option<(&'a Registry, &'a Verifiers)>,
}

/// An entry, with its stored envelope and, for an offer forwarded here,
/// the dossier it came with, if there are.
type Read = (u64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Whether `entry` is an offer another gateway forwarded (which came with
/// a dossier).
fn forwarded_offer(entry: &[u8]) -> bool {
    Logged::parse(entry)
        .is_ok_and(|l| l.sent.is_some() && l.kind == Kind::AssetTransferOffer.as_str())
}

impl Checker<'_> {
    /// Checks a block of entries on `threads` threads, in order.
    fn check_all(&self, block: &[Read], threads: usize) -> Vec<(u64, Result<Step, Mismatch>)> {
        let per_thread = block.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = block
                .chunks(per_thread)
                .map(|chunk| {
                    let handle = scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|(index, entry, jws, dossier)| {
                                (
                                    *index,
                                    self.check(entry, jws.as_deref(), dossier.as_deref()),
                                )
                            })
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
                            .map(|(index, ..)| (*index, Err(Mismatch::CheckFailed)))
                            .collect()
                    })
                })
                .collect()
        })
    }

    /// Checks the stored envelope against its entry; a record's entry and
    /// an act are read as they are.
    fn check(
        &self,
        bytes: &[u8],
        jws: Option<&[u8]>,
        dossier: Option<&[u8]>,
    ) -> Result<Step, Mismatch> {
        if let Ok(act) = ActEntry::parse(bytes) {
            return Ok(Step::Act(bytes.to_vec(), act.policy));
        }
        if let Ok(tick) = Tick::parse(bytes) {
            return Ok(Step::Tick(tick));
        }
        let entry = Logged::parse(bytes)?;
        let kind: Kind = entry.kind.parse().map_err(|_| Mismatch::UnknownKind)?;
        if kind == Kind::RecordSend {
            let iss: AgencyId = entry.iss.parse().map_err(|_| Mismatch::BadIss)?;
            let aud: AgencyId = entry.aud.parse().map_err(|_| Mismatch::BadAud)?;
            // Its body is not kept, and no contract reads it.
            return Ok(Step::Record(Checked {
                entry,
                kind,
                step: Op::Record(Record { sealed: false }),
                iss,
                aud,
            }));
        }
        let jws = jws.ok_or(Mismatch::NotStored)?;
        if hex::encode(Sha256::digest(jws)) != entry.envelope {
            return Err(Mismatch::NotLogged);
        }
        let claims = claims(jws)?;
        if claims.iss != entry.iss
            || claims.aud != entry.aud
            || claims.jti != entry.jti
            || claims.kind != entry.kind
        {
            return Err(Mismatch::ClaimsDiffer);
        }
        let iss: AgencyId = claims.iss.parse().map_err(|_| Mismatch::BadIss)?;
        let aud: AgencyId = claims.aud.parse().map_err(|_| Mismatch::BadAud)?;
        if let Some((registry, verifiers)) = self.registry {
            envelope::open(
                jws,
                &iss,
                verifiers,
                registry,
                Limits::default(),
                // A forwarded envelope was judged when the forwarding
                // gateway logged it.
                entry.stamp().rule_time(),
            )
            .map_err(Mismatch::DoesNotOpen)?;
        }
        let step = match Op::parse(kind, &claims.body) {
            Ok(Op::Asset(op)) => {
                let op = match dossier {
                    Some(bytes) => {
                        let dossier: Dossier =
                            serde_json::from_slice(bytes).map_err(|_| Mismatch::BadDossier)?;
                        op.with_dossier(dossier)
                    }
                    None => op,
                };
                self.asset_fields(Op::Asset(op), &entry)?
            }
            Ok(op @ Op::Medical(_)) => self.medical_fields(op, &entry)?,
            Ok(Op::Record(_)) | Err(BodyError::Unsupported(_)) => {
                return Err(Mismatch::NotApplied);
            }
            Err(e) => return Err(Mismatch::Body(e)),
        };
        Ok(Step::Envelope(Checked {
            entry,
            kind,
            step,
            iss,
            aud,
        }))
    }

    /// The salted hash of `person`, as entries log it.
    fn person(&self, person: Option<&str>) -> Result<Option<String>, Mismatch> {
        match (person, &self.salt) {
            (Some(p), Some(salt)) => Ok(Some(person_hash(salt, p))),
            (Some(_), None) => Err(Mismatch::NoSalt),
            (None, _) => Ok(None),
        }
    }

    /// Checks an asset entry's fields against the body.
    fn asset_fields(&self, op: Op, entry: &Logged) -> Result<Op, Mismatch> {
        let named = op.named();
        let person = self.person(named.person)?;
        if named.tag != entry.tag.as_deref() || person != entry.person {
            return Err(Mismatch::AssetFields);
        }
        let offer = matches!(op, Op::Asset(asset::Op::Offer(_) | asset::Op::OfferIn(_)));
        if offer != entry.expires.is_some() {
            return Err(Mismatch::OfferExpiry);
        }
        Ok(op)
    }

    /// Checks a medical entry's fields against the body: the subject's
    /// hash, the purpose, the request named, the outcome, and that a grant's
    /// terms are logged exactly where one is made (a request the policy let
    /// break the glass, an approval).
    fn medical_fields(&self, op: Op, entry: &Logged) -> Result<Op, Mismatch> {
        let named = op.named();
        let person = self.person(named.person)?;
        let same = person == entry.person
            && named.purpose == entry.purpose.as_deref()
            && named.outcome == entry.outcome.as_deref()
            && named.request == entry.request.as_deref();
        if !same {
            return Err(Mismatch::MedicalFields);
        }
        let grants = match &op {
            Op::Medical(medical::Op::Request(_)) => entry.decision == "break-glass",
            Op::Medical(medical::Op::Approve(_)) => true,
            _ => false,
        };
        let terms = entry.expires.is_some() && entry.uses.is_some();
        let none = entry.expires.is_none() && entry.uses.is_none();
        if !(grants && terms || !grants && none) || entry.tag.is_some() {
            return Err(Mismatch::GrantTerms);
        }
        Ok(op)
    }
}

fn claims(jws: &[u8]) -> Result<Claims, Mismatch> {
    let text = std::str::from_utf8(jws).map_err(|_| Mismatch::NotUtf8)?;
    let payload = text.split('.').nth(1).ok_or(Mismatch::NotCompact)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Mismatch::PayloadNotBase64)?;
    serde_json::from_slice(&bytes).map_err(|_| Mismatch::ClaimsDoNotParse)
}

/// Compares the recomputed state with the stored one, key by key.
fn compare(store: &dyn StoreRead, memory: &Memory, out: &mut Outcome) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use xgate_ledger::Log;
    use xgate_ledger::OpenOptions;

    use super::*;
    use crate::registry::{Agency, CertificateBinding};

    #[test]
    fn an_unusable_registry_key_is_not_a_storage_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let jwk = |kid: &str, usage: &str| match json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": usage})
        {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        // The registry takes it (kid, use, kty), but it is no P-256 key.
        let agency = Agency {
            id: "state".parse().expect("id"),
            name: "state".into(),
            gateway: None,
            certificate: CertificateBinding {
                uri: "urn:xgate:agency:state".into(),
                sha256: None,
            },
            signing_key: jwk("s", "sig"),
            encryption_key: jwk("e", "enc"),
            roles: Vec::new(),
        };
        let registry = Registry::from_agencies(vec![agency]).expect("registry");
        let e = replay(&log, Some(&registry), &[]).expect_err("no verifier for state");
        assert!(matches!(e, ReplayError::RegistryKey(_)), "{e:?}");
        assert!(!e.to_string().contains("storage failure"), "{e}");
        assert!(replay(&log, None, &[]).expect("no registry").is_clean());
    }
}
