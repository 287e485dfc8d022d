//! The contracts run on one entry: each event it caused, in order, against
//! the contracts on its trigger, and each act that fires carried out and
//! logged right after the entry, in the same commit (docs/contracts.md,
//! "Acts in the commit").
//!
//! Bounded three ways, all decided from the log alone so a replay meets
//! the same bounds at the same place:
//! - **chains**: an act's own events (the discrepancies it opens or
//!   closes) are triggers too, to [`MAX_CHAIN`] deep; a contract that
//!   fires deeper is logged as failed, `chain_too_deep`, and not carried
//!   out;
//! - **cost**: the contracts evaluated on one entry, fan-out included (a
//!   count can open thousands of discrepancies), may cost [`MAX_ENTRY_COST`]
//!   together; the first that would go over is logged as failed,
//!   `entry_cost_exceeded`, and no more run on that entry;
//! - **acts**: at most [`MAX_ACTS`] entries follow one entry; the last of
//!   them is then a failed `too_many_acts`.
//!
//! A contract whose condition fails to evaluate is an act too, logged as
//! failed with the evaluation's code: the entry commits as it would have
//! without it.

use std::collections::VecDeque;

use xgate_ledger::WriteBatch;

use super::take::{self, Failure, Scope, Taking};
use crate::apply::Op;
use crate::apply::facts::Facts;
use crate::apply::state::{Over, StateError, StateRead};
use crate::apply::triggers::{self, Event};
use crate::contracts::act::ActEntry;
use crate::contracts::{Bound, Contracts};
use crate::kind::Kind;

/// How deep acts may trigger acts: the entry's own events are depth 1.
pub const MAX_CHAIN: u32 = 3;
/// The most the contracts evaluated on one entry may cost together.
pub const MAX_ENTRY_COST: u64 = 20_000_000;
/// The most act entries that follow one entry.
pub const MAX_ACTS: usize = 64;

/// One act, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Act {
    /// The entry.
    pub entry: ActEntry,
    /// Its canonical encoding: what the log holds.
    pub bytes: Vec<u8>,
}

/// The contracts in force and what the acts may see.
#[derive(Clone, Copy)]
pub struct Setting<'a> {
    /// The contracts.
    pub contracts: &'a Contracts,
    /// The hash of the policy file they came with, lowercase hex.
    pub policy: &'a str,
    /// The registry and this gateway.
    pub scope: Scope<'a>,
}

/// The entry that caused the events.
#[derive(Clone, Copy, Debug)]
pub struct Cause {
    /// Its index.
    pub index: u64,
    /// Its time as the rules read it: every act's `time`.
    pub time: i64,
}

/// Runs the contracts of `setting` on `events`, the events of the entry
/// `cause` (over `state` as that entry left it, with `batch` its writes),
/// adding each act's writes to `batch`; returns the acts, in log order,
/// to append right after the entry.
///
/// # Errors
/// A storage failure: the entry cannot be committed now.
pub fn run(
    setting: Setting<'_>,
    cause: Cause,
    events: Vec<Event>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<Vec<Act>, StateError> {
    if setting.contracts.is_empty() {
        return Ok(Vec::new());
    }
    let mut queue: VecDeque<(Event, u32, u64)> =
        events.into_iter().map(|e| (e, 1, cause.index)).collect();
    let mut acts: Vec<Act> = Vec::new();
    let mut spent = 0u64;
    while let Some((event, depth, trigger)) = queue.pop_front() {
        // Made on the first contract of the trigger, and only then.
        let mut bound: Option<Bound> = None;
        for contract in setting.contracts.on(&event.trigger) {
            let index = cause.index + 1 + acts.len() as u64;
            let mut entry = ActEntry::new(
                contract.action.name(),
                &contract.spec.name,
                contract.hash_hex(),
                setting.policy,
                trigger,
                cause.time,
            );
            spent = spent.saturating_add(contract.checked.cost);
            let stop = if spent > MAX_ENTRY_COST {
                Some("entry_cost_exceeded")
            } else if acts.len() + 1 == MAX_ACTS {
                Some("too_many_acts")
            } else {
                None
            };
            if let Some(code) = stop {
                acts.push(logged(entry.failed(code))?);
                return Ok(acts);
            }
            let bound = bound.get_or_insert_with(|| Bound::new(&event.bindings));
            let entry = match contract.holds_in(bound) {
                Ok(false) => continue,
                Err(e) => entry.failed(e.code()),
                Ok(true) if depth > MAX_CHAIN => entry.failed("chain_too_deep"),
                Ok(true) => {
                    let mut writes = WriteBatch::new();
                    let taking = Taking {
                        action: &contract.action,
                        event: &event,
                        index,
                        entry: &mut entry,
                    };
                    let over = Over {
                        base: state,
                        top: &*batch,
                    };
                    match take::take(setting.scope, taking, &over, &mut writes) {
                        Ok(caused) => {
                            let to = take::deliver(setting.scope, &contract.action, &entry, &event);
                            let act = logged(entry)?;
                            take::notify(&to, &event, index, &act.bytes, &mut writes).map_err(
                                |e| StateError::Store(xgate_ledger::StoreError(e.to_string())),
                            )?;
                            batch.extend(writes);
                            queue.extend(caused.into_iter().map(|e| (e, depth + 1, index)));
                            acts.push(act);
                            continue;
                        }
                        // Its partial writes are dropped with `writes`.
                        Err(Failure::Code(code)) => entry.failed(code),
                        Err(Failure::State(e)) => return Err(e),
                    }
                }
            };
            acts.push(logged(entry)?);
        }
    }
    Ok(acts)
}

/// [`run`] on the events of the envelope entry `facts` describes (body
/// `op`, of `kind`), over `state` with the entry's `batch` of writes: what
/// the committer runs after applying an envelope, and a replay after
/// recomputing it.
///
/// # Errors
/// As [`run`].
pub fn on_entry(
    setting: Setting<'_>,
    op: &Op,
    kind: Kind,
    facts: &Facts<'_>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<Vec<Act>, StateError> {
    if setting.contracts.is_empty() {
        return Ok(Vec::new());
    }
    let left = Over {
        base: state,
        top: &*batch,
    };
    let events = triggers::events(op, kind, facts, op.named(), &left)?;
    let cause = Cause {
        index: facts.log_index,
        time: facts.time,
    };
    run(setting, cause, events, state, batch)
}

/// `entry` with its canonical encoding.
fn logged(entry: ActEntry) -> Result<Act, StateError> {
    let bytes = entry
        .encode()
        .map_err(|e| StateError::Store(xgate_ledger::StoreError(e.to_string())))?;
    Ok(Act { entry, bytes })
}
