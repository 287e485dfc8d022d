//! The integrator thread: a round every second, sooner when the write path
//! says many entries wait, and a last one when the log closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::lock::lock;
use super::progress::{Publish, ROUND_EVERY};
use crate::error::Error;

/// Entries accumulated since the last nudge that start a round at once.
const HURRY_AT: u64 = 16 * crate::tlog::WIDTH;

/// The integrator thread, and how the write path wakes it.
pub(super) struct Integrator {
    signal: Arc<(Mutex<Signal>, Condvar)>,
    /// The size at which the write path last woke the thread.
    nudged: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Signal {
    stop: bool,
    hurry: bool,
}

impl Integrator {
    /// Starts the thread, which calls `round` for each round; `size` is
    /// the log's size now.
    pub fn start<R>(round: R, size: u64) -> Result<Integrator, Error>
    where
        R: Fn(Publish) + Send + 'static,
    {
        let signal = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let theirs = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("xgate-integrate".into())
            .spawn(move || run(&round, &theirs))
            .map_err(|e| Error::Io {
                path: "integrator thread".into(),
                source: e,
            })?;
        Ok(Integrator {
            signal,
            nudged: AtomicU64::new(size),
            thread: Some(thread),
        })
    }

    /// Tells the thread the tree reached `size`: it starts a round at once
    /// when many entries have accumulated since the last nudge.
    pub fn nudge(&self, size: u64) {
        let last = self.nudged.load(Ordering::Relaxed);
        if size >= last + HURRY_AT {
            self.nudged.store(size, Ordering::Relaxed);
            let (state, wake) = &*self.signal;
            lock(state).hurry = true;
            wake.notify_one();
        }
    }

    /// Stops the thread after a last round.
    pub fn stop(mut self) {
        let (state, wake) = &*self.signal;
        lock(state).stop = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been reported by the
            // runtime; the journal holds everything it was doing.
            let _ = thread.join();
        }
    }
}

fn run(round: &dyn Fn(Publish), signal: &(Mutex<Signal>, Condvar)) {
    let (state, wake) = signal;
    loop {
        let stop = {
            let guard = lock(state);
            let (mut guard, _) = wake
                .wait_timeout_while(guard, ROUND_EVERY, |s| !s.stop && !s.hurry)
                .unwrap_or_else(PoisonError::into_inner);
            guard.hurry = false;
            guard.stop
        };
        // A failed round is recorded (`Log::integration_failure`) and tried
        // again; the journal keeps everything meanwhile.
        round(if stop { Publish::Now } else { Publish::IfDue });
        if stop {
            return;
        }
    }
}
