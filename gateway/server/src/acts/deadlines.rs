//! The deadlines contracts set, and the logged ticks that fire them
//! (docs/contracts.md, "Deadlines").
//!
//! A `set_deadline` act records a deadline in the state, keyed by when it
//! falls due and the act that set it (`Gp`, recomputed by a replay like
//! the rest of the state). Nothing reads the clock to fire it: the gateway
//! appends a `clock.tick` entry,
//! `{"kind":"clock.tick","policy":"<hex>","time":T,"v":1}`, once the
//! earliest deadline is due (`policy`: the hash of the policy whose
//! contracts ran at it), and every deadline due at `T` fires
//! there, in key order, as a `deadline:<name>` event whose `entry` is the
//! entry that led to the deadline being set. A replay meets the same tick
//! at the same place with the same `T`, so it fires the same deadlines in
//! the same order.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use xgate_ledger::{StoreError, StoreRead, WriteBatch};

use crate::apply::state::{StateError, StateRead, read, write};
use crate::apply::triggers::Event;
use crate::contracts::trigger::Trigger;
use crate::store_keys::Prefix;

/// The `kind` of a tick entry.
pub const TICK_KIND: &str = "clock.tick";

/// The most deadlines one tick fires; the rest fire at the next.
pub const MAX_PER_TICK: usize = 256;

/// A deadline, as the state holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// Its name: `deadline:<name>` contracts run when it falls due.
    pub name: String,
    /// When it falls due, seconds since the epoch.
    pub due: i64,
    /// The contract that set it.
    pub set_by: String,
    /// The act that set it.
    pub act: u64,
    /// The asset it is about, if the trigger bound one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The agency it concerns: the asset's holder, else the sender of the
    /// entry that led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// The `entry` record of the event that set it: what a condition on
    /// `deadline:<name>` reads as `entry`.
    pub entry: Value,
}

impl Deadline {
    /// The event it causes when it falls due.
    pub fn event(&self) -> Event {
        let mut deadline = json!({
            "name": self.name,
            "due": self.due,
            "set_by": self.set_by,
        });
        if let Some(tag) = &self.tag {
            deadline["tag"] = json!(tag);
        }
        if let Some(agency) = &self.agency {
            deadline["agency"] = json!(agency);
        }
        Event {
            trigger: Trigger::Deadline(self.name.clone()),
            bindings: [("entry", self.entry.clone()), ("deadline", deadline)]
                .into_iter()
                .collect(),
        }
    }
}

/// A tick entry: the time at which the deadlines due fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tick {
    /// [`TICK_KIND`].
    pub kind: String,
    /// The hash of the policy in force, lowercase hex.
    pub policy: String,
    /// The gateway's time when it logged the tick, seconds since the
    /// epoch.
    pub time: i64,
    /// 1.
    pub v: u32,
}

/// Why bytes are not a tick entry.
#[derive(Debug, thiserror::Error)]
#[error("not a clock.tick entry")]
pub struct NotATick;

impl Tick {
    /// The tick at `time`, under the policy whose hash is `policy`.
    pub fn at(time: i64, policy: &str) -> Tick {
        Tick {
            kind: TICK_KIND.to_owned(),
            policy: policy.to_owned(),
            time,
            v: 1,
        }
    }

    /// Its canonical encoding (keys in order, compact).
    pub fn encode(&self) -> Vec<u8> {
        // Strings and integers only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a tick entry, refusing any but its canonical encoding.
    ///
    /// # Errors
    /// [`NotATick`].
    pub fn parse(bytes: &[u8]) -> Result<Tick, NotATick> {
        let tick: Tick = serde_json::from_slice(bytes).map_err(|_| NotATick)?;
        let hex = tick.policy.len() == 64
            && tick
                .policy
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if tick.kind != TICK_KIND || tick.v != 1 || !hex || tick.encode() != bytes {
            return Err(NotATick);
        }
        Ok(tick)
    }
}

/// The key of a deadline due at `due`, set by the act at `act`.
pub fn key(due: i64, act: u64) -> Vec<u8> {
    let due = u64::try_from(due).unwrap_or(0);
    Prefix::Deadline.key(&[&due.to_be_bytes(), &act.to_be_bytes()])
}

/// Adds the write that records `deadline`.
///
/// # Errors
/// A record that cannot be encoded (a bug).
pub fn set(deadline: &Deadline, batch: &mut WriteBatch) -> Result<(), StateError> {
    write(batch, key(deadline.due, deadline.act), deadline)?;
    Ok(())
}

/// When the earliest deadline falls due, if any is set.
///
/// # Errors
/// A storage failure or a corrupt key.
pub fn earliest(store: &dyn StoreRead) -> Result<Option<i64>, StoreError> {
    let Some(first) = store.scan_prefix(Prefix::Deadline.bytes()).next() else {
        return Ok(None);
    };
    let (key, _) = first?;
    let due = key
        .get(2..10)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| crate::apply::state::corrupt(&key))?;
    Ok(Some(i64::try_from(due).unwrap_or(i64::MAX)))
}

/// Fires the deadlines due at `time` (at most [`MAX_PER_TICK`], earliest
/// first) at the tick logged at `index`, removing them in `batch` and
/// recording them as fired there: their events, in order.
///
/// # Errors
/// A storage failure, a corrupt record, or one that cannot be encoded.
pub fn fire(
    state: &impl StateRead,
    index: u64,
    time: i64,
    batch: &mut WriteBatch,
) -> Result<Vec<Event>, StateError> {
    let mut fired = Vec::new();
    for key in state.keys(Prefix::Deadline.bytes())? {
        let Some(deadline) = read::<Deadline>(state, &key)? else {
            continue;
        };
        if deadline.due > time || fired.len() == MAX_PER_TICK {
            break;
        }
        batch.delete(key);
        fired.push(deadline);
    }
    if !fired.is_empty() {
        write(batch, Prefix::FiredDeadlines.at(index), &fired)?;
    }
    Ok(fired.iter().map(Deadline::event).collect())
}

/// The deadlines the tick at `index` fired, in order.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn fired_at(state: &impl StateRead, index: u64) -> Result<Vec<Deadline>, StoreError> {
    Ok(read(state, &Prefix::FiredDeadlines.at(index))?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::state::Memory;

    fn deadline(name: &str, due: i64, act: u64) -> Deadline {
        Deadline {
            name: name.into(),
            due,
            set_by: "c".into(),
            act,
            tag: Some("LAP-1".into()),
            agency: None,
            entry: json!({"index": act - 1, "from": "treasury"}),
        }
    }

    #[test]
    fn deadlines_fire_at_the_first_tick_at_or_after_they_are_due_earliest_first() {
        let mut state = Memory::default();
        let mut batch = WriteBatch::new();
        for d in [
            deadline("b", 2000, 7),
            deadline("a", 1000, 9),
            deadline("c", 1000, 3),
        ] {
            set(&d, &mut batch).expect("set");
        }
        state.apply(batch);
        let mut none = WriteBatch::new();
        assert!(fire(&state, 10, 999, &mut none).expect("fire").is_empty());
        assert!(none.is_empty(), "nothing recorded");
        let mut batch = WriteBatch::new();
        let fired = fire(&state, 11, 1500, &mut batch).expect("fire");
        let names: Vec<String> = fired.iter().map(|e| e.trigger.to_string()).collect();
        // Due first, then by the act that set it.
        assert_eq!(names, ["deadline:c", "deadline:a"]);
        assert_eq!(
            fired[0].bindings["deadline"],
            json!({"name": "c", "due": 1000, "set_by": "c", "tag": "LAP-1"})
        );
        assert_eq!(fired[0].bindings["entry"]["from"], "treasury");
        state.apply(batch);
        let names: Vec<String> = fired_at(&state, 11)
            .expect("read")
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["c", "a"]);
        let mut batch = WriteBatch::new();
        assert!(
            fire(&state, 12, 1500, &mut batch).expect("fire").is_empty(),
            "fired once"
        );
        let rest = fire(&state, 13, 2000, &mut batch).expect("fire");
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn a_tick_is_written_one_way() {
        let tick = Tick::at(1_796_000_000, &"a".repeat(64));
        let bytes = tick.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).expect("utf-8"),
            format!(
                "{{\"kind\":\"clock.tick\",\"policy\":\"{}\",\"time\":1796000000,\"v\":1}}",
                "a".repeat(64)
            )
        );
        assert_eq!(Tick::parse(&bytes).expect("parses"), tick);
        let spaced = String::from_utf8(bytes)
            .expect("utf-8")
            .replacen(':', ": ", 1);
        assert!(Tick::parse(spaced.as_bytes()).is_err());
        assert!(
            Tick::parse(Tick::at(1, "A").encode().as_slice()).is_err(),
            "not a hash"
        );
    }
}
