//! The order of one forward request's envelopes in the receiving log.
//!
//! A forwarding gateway sends a peer its queue oldest first and moves on
//! only past envelopes settled for good, so the receiving log keeps each
//! sender's order as long as no envelope is logged after an earlier one of
//! the same request that was not. The request's envelopes share commit
//! batches, and a batch can fail while a later one succeeds; so each
//! envelope, at its turn on the commit thread, checks that the envelope
//! before it in its request was either refused for good (it will not be
//! sent again) or accepted and is in the store as this batch sees it. If
//! not, it is declined as not taken now, and sent again after its
//! predecessor.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use xgate_ledger::StoreError;

use crate::apply::state::StateRead;

/// What became of one envelope of the request at its turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Slot {
    /// It has not had its turn (refused before the commit, or not yet).
    #[default]
    Unprepared,
    /// Accepted (or delivered before): the key that records it.
    Accepted(Vec<u8>),
    /// Refused for good: the forwarding gateway will not send it again.
    Refused,
    /// Not taken now: it will be sent again, so nothing after it may be
    /// logged before it.
    Retry,
}

/// The envelopes of one forward request, in order.
#[derive(Debug)]
pub struct Chain {
    slots: Mutex<Vec<Slot>>,
}

impl Chain {
    /// A chain of `len` envelopes, none decided.
    pub fn new(len: usize) -> Chain {
        Chain {
            slots: Mutex::new(vec![Slot::Unprepared; len]),
        }
    }

    /// Whether the envelope at `position` may be logged now: every earlier
    /// one was refused for good, or accepted and visible in `state`.
    ///
    /// # Errors
    /// A storage failure reading `state`.
    pub fn may_follow(&self, position: usize, state: &impl StateRead) -> Result<bool, StoreError> {
        let slots = self.slots();
        let before = slots.get(..position).unwrap_or(&slots[..]);
        for slot in before.iter().rev() {
            match slot {
                Slot::Refused => continue,
                Slot::Accepted(key) => return Ok(state.get(key)?.is_some()),
                Slot::Unprepared | Slot::Retry => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The envelope at `position` was accepted, recorded under `key`.
    pub fn accepted(&self, position: usize, key: Vec<u8>) {
        self.set(position, Slot::Accepted(key));
    }

    /// The envelope at `position` was refused for good.
    pub fn refused(&self, position: usize) {
        self.set(position, Slot::Refused);
    }

    /// The envelope at `position` was not taken now.
    pub fn retry(&self, position: usize) {
        self.set(position, Slot::Retry);
    }

    fn set(&self, position: usize, slot: Slot) {
        if let Some(s) = self.slots().get_mut(position) {
            *s = slot;
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Which envelopes of a forward request have been queued for the
/// committer (or refused before): each is queued only after every one
/// before it, so they reach the committer in the request's order, whatever
/// order their tasks run in.
#[derive(Debug)]
pub struct Turns(watch::Sender<Vec<bool>>);

impl Turns {
    /// Turns for `len` envelopes.
    pub fn new(len: usize) -> Arc<Turns> {
        Arc::new(Turns(watch::Sender::new(vec![false; len])))
    }

    /// The turn of the envelope at `position`: taken when it is queued, or
    /// when it is dropped (refused before the commit).
    pub fn turn(self: &Arc<Turns>, position: usize) -> Turn {
        Turn {
            turns: Arc::clone(self),
            position,
            taken: false,
        }
    }
}

/// One envelope's turn to be queued ([`Turns`]).
#[derive(Debug)]
pub struct Turn {
    turns: Arc<Turns>,
    position: usize,
    taken: bool,
}

impl Turn {
    /// Waits until every envelope before this one is queued or refused.
    pub async fn wait(&self) {
        let mut done = self.turns.0.subscribe();
        let position = self.position;
        let _ = done
            .wait_for(|d| d.iter().take(position).all(|queued| *queued))
            .await;
    }

    /// This envelope is queued (or refused): the next may go.
    pub fn take(&mut self) {
        if !self.taken {
            self.taken = true;
            let position = self.position;
            self.turns.0.send_modify(|d| {
                if let Some(slot) = d.get_mut(position) {
                    *slot = true;
                }
            });
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.take();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Map(BTreeMap<Vec<u8>, Vec<u8>>);

    impl StateRead for Map {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.get(key).cloned())
        }

        fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
            Ok(self
                .0
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        }
    }

    #[tokio::test]
    async fn turns_are_taken_in_order_whoever_runs_first() {
        let turns = Turns::new(3);
        let (mut first, second, third) = (turns.turn(0), turns.turn(1), turns.turn(2));
        let waiting = tokio::spawn(async move {
            third.wait().await;
            third
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "0 and 1 have not had their turn");
        first.take();
        drop(second);
        let third = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("2 may go once 0 is queued and 1 refused")
            .expect("task");
        drop(third);
    }

    #[test]
    fn an_envelope_follows_only_what_is_logged_or_refused_for_good() {
        let chain = Chain::new(4);
        let mut state = Map(BTreeMap::new());
        assert!(
            chain.may_follow(0, &state).expect("read"),
            "the first has no predecessor"
        );
        assert!(
            !chain.may_follow(1, &state).expect("read"),
            "0 has not had its turn"
        );
        chain.accepted(0, b"k0".to_vec());
        assert!(
            !chain.may_follow(1, &state).expect("read"),
            "0 was accepted in a batch that is not in the store"
        );
        state.0.insert(b"k0".to_vec(), Vec::new());
        assert!(chain.may_follow(1, &state).expect("read"));
        chain.refused(1);
        assert!(
            chain.may_follow(2, &state).expect("read"),
            "a refusal is final"
        );
        chain.retry(2);
        assert!(
            !chain.may_follow(3, &state).expect("read"),
            "2 will come again"
        );
    }
}
