//! What the connections of a run share, and each connection's turns: which
//! kind it sends next, when, and as whom.
//!
//! Nothing here is locked per exchange: the envelopes are taken by an
//! atomic cursor, the stop flag is read, and each connection counts its
//! exchanges in a counter of its own (on a cache line of its own, so that
//! two threads counting do not contend).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::keep::Keep;
use super::plan::Plan;
use super::presign::Queues;
use xgate_server::kind::Kind;

/// A connection whose exchanges fail this many times in a row without an
/// answer (the gateway is down) stops.
pub const GIVE_UP_AFTER: u32 = 3;

/// What every connection of a run shares.
pub struct Shared {
    /// The pre-signed envelopes, by kind and sender.
    pub queues: Arc<Queues>,
    /// The receipts and timings kept, if asked.
    pub keep: Keep,
    /// Set when the run's time is up.
    pub stop: Arc<AtomicBool>,
    /// Exchanges finished, one counter per connection.
    done: Box<[Counter]>,
}

/// One connection's count, alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

impl Shared {
    /// The shared state of a run of `connections` connections.
    pub fn new(queues: Arc<Queues>, keep: Keep, connections: usize) -> Shared {
        Shared {
            queues,
            keep,
            stop: Arc::new(AtomicBool::new(false)),
            done: (0..connections).map(|_| Counter::default()).collect(),
        }
    }

    /// Whether the run's time is up.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Counts one finished exchange of connection `index`.
    pub fn count(&self, index: usize) {
        if let Some(c) = self.done.get(index) {
            c.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Exchanges finished so far, over all connections.
    pub fn done(&self) -> u64 {
        self.done.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// One connection's place in the run: its index, its sender, and its
/// cycle of kinds, paced if the run has a rate.
#[derive(Debug)]
pub struct Seat {
    /// The connection's index in the run.
    pub index: usize,
    /// Which agency it sends as (an index into the plan's).
    pub sender: usize,
    /// Kinds in the order it sends them, cycled.
    schedule: Vec<Kind>,
    at: usize,
    /// Its share of the rate, as a gap between sends.
    gap: Option<Duration>,
    next: Option<tokio::time::Instant>,
}

impl Seat {
    /// The `index`th connection's seat in `plan`.
    pub fn new(plan: &Plan, index: usize) -> Seat {
        Seat {
            index,
            sender: index % plan.agencies.len().max(1),
            schedule: plan.mix.schedule(),
            at: 0,
            gap: plan
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(plan.connections as f64 / r)),
            next: None,
        }
    }

    /// Waits for this connection's next turn (at once without a rate) and
    /// returns the kind to send.
    pub async fn turn(&mut self) -> Kind {
        if let Some(gap) = self.gap {
            let next = *self.next.get_or_insert_with(tokio::time::Instant::now);
            tokio::time::sleep_until(next).await;
            self.next = Some(next + gap);
        }
        // A mix names at least one kind, so the schedule is never empty.
        let kind = self
            .schedule
            .get(self.at)
            .copied()
            .unwrap_or(Kind::RecordSend);
        self.at = (self.at + 1) % self.schedule.len().max(1);
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_per_connection_and_sum() {
        let shared = Shared::new(Arc::new(Queues::default()), Keep::default(), 3);
        shared.count(0);
        shared.count(2);
        shared.count(2);
        shared.count(7); // no such connection: ignored
        assert_eq!(shared.done(), 3);
        assert_eq!(std::mem::align_of::<Counter>(), 64);
    }
}
