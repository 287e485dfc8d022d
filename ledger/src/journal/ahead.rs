//! Keeping the next segment prepared ahead of the writer, on a thread of
//! its own, so that the commit path never creates, renames or syncs a
//! directory.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::segment::{self, Prepared};

/// The preparer's state, shared with the writer.
#[derive(Debug, Default)]
struct State {
    /// A prepared segment waiting for the writer.
    ready: Option<Prepared>,
    /// The segment to prepare next, once `ready` is taken.
    want: Option<u64>,
    /// The preparer is preparing a segment now.
    busy: bool,
    /// The journal is closing.
    stop: bool,
}

/// The segment preparer.
#[derive(Debug)]
pub(super) struct Ahead {
    state: Mutex<State>,
    changed: Condvar,
    dir: Arc<OwnedFd>,
    segment_bytes: u64,
    /// Bytes of all the journal's segment files.
    disk_bytes: Arc<AtomicU64>,
    /// Times the writer found no segment ready.
    stalls: AtomicU64,
}

impl Ahead {
    /// A preparer of `segment_bytes` segments in `dir`, holding `ready`
    /// already, or asked for segment `want`.
    pub fn new(
        dir: Arc<OwnedFd>,
        segment_bytes: u64,
        disk_bytes: Arc<AtomicU64>,
        ready: Option<Prepared>,
        want: Option<u64>,
    ) -> Arc<Ahead> {
        Arc::new(Ahead {
            state: Mutex::new(State {
                ready,
                want,
                busy: false,
                stop: false,
            }),
            changed: Condvar::new(),
            dir,
            segment_bytes,
            disk_bytes,
            stalls: AtomicU64::new(0),
        })
    }

    /// Starts the preparer's thread.
    pub fn spawn(self: &Arc<Ahead>) -> io::Result<JoinHandle<()>> {
        let ahead = self.clone();
        std::thread::Builder::new()
            .name("xgate-journal-prep".into())
            .spawn(move || ahead.run())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread: prepare what is wanted once the slot is free.
    fn run(&self) {
        let mut state = self.lock();
        loop {
            if state.stop {
                return;
            }
            let Some(number) = state.want.filter(|_| state.ready.is_none()) else {
                state = self.wait(state);
                continue;
            };
            state.want = None;
            state.busy = true;
            drop(state);
            let prepared = segment::prepare(self.dir.as_fd(), number, self.segment_bytes);
            state = self.lock();
            state.busy = false;
            // On failure the writer prepares the segment itself when it
            // needs it, and meets the error there if it persists.
            if let Ok(prepared) = prepared {
                self.disk_bytes.fetch_add(prepared.len, Ordering::Relaxed);
                state.ready = Some(prepared);
            }
            self.changed.notify_all();
        }
    }

    /// Segment `number` for the writer: the prepared one, else (counted as
    /// a stall) the one being prepared once it is, else one prepared here
    /// and now. Then asks for the one after it.
    pub fn take(&self, number: u64) -> io::Result<Prepared> {
        let mut state = self.lock();
        let mut stalled = false;
        loop {
            // Only the segment after the writer's is ever prepared; any
            // other would be dropped here (left on disk, the next open
            // reuses or removes it).
            if let Some(ready) = state.ready.take()
                && ready.number == number
            {
                state.want = number.checked_add(1);
                self.changed.notify_all();
                return Ok(ready);
            }
            if !stalled {
                stalled = true;
                self.stalls.fetch_add(1, Ordering::Relaxed);
            }
            if !state.busy {
                break;
            }
            state = self.wait(state);
        }
        // Withdraw the request, so the thread cannot start on the same
        // segment while it is prepared here.
        state.want = None;
        drop(state);
        let prepared = segment::prepare(self.dir.as_fd(), number, self.segment_bytes)?;
        self.disk_bytes.fetch_add(prepared.len, Ordering::Relaxed);
        let mut state = self.lock();
        state.want = number.checked_add(1);
        self.changed.notify_all();
        Ok(prepared)
    }

    /// Times the writer found no segment ready.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// Waits until the preparer has nothing to do (tests: so that
    /// `disk_bytes` stands still).
    #[cfg(test)]
    pub fn settle(&self) {
        let mut state = self.lock();
        while state.busy || (state.want.is_some() && state.ready.is_none()) {
            state = self.wait(state);
        }
    }

    /// Stops the thread (after the preparation under way, if any).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }
}
