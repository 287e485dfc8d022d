//! Fault injection for the journal's commit path (feature `faults`, test
//! builds only): a hook called before each record write and each barrier.

use std::io;
use std::sync::Arc;

use crate::faults::{Fault, Switch};

/// A step of [`Journal::append`](super::Journal::append) a [`FaultHook`]
/// can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The `pwritev` of a record. An error from the hook fails the write
    /// with nothing written (the journal stays usable); an error made by
    /// [`torn`] writes the first half of the record first (a torn write),
    /// then fails and poisons the journal.
    Write,
    /// The `fdatasync` after it. An error from the hook fails the barrier
    /// without calling `fdatasync`.
    Barrier,
}

/// Called before each step of an append; an error fails that step. A
/// failed barrier or a torn write poisons the journal, as a real failure
/// would; a write failed before it wrote anything leaves it usable.
pub type FaultHook = Arc<dyn Fn(Step) -> io::Result<()> + Send + Sync>;

/// The marker inside an error made by [`torn`].
#[derive(Debug)]
struct Torn;

impl std::fmt::Display for Torn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("write torn part-way (injected)")
    }
}

impl std::error::Error for Torn {}

/// The error a hook returns at [`Step::Write`] to tear the write: half the
/// record's bytes reach the file, then the write fails.
pub fn torn() -> io::Error {
    io::Error::other(Torn)
}

/// The marker inside the error a hook returns to skip a barrier.
#[derive(Debug)]
struct Skip;

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("barrier skipped (injected)")
    }
}

impl std::error::Error for Skip {}

/// Whether `error` asks to skip the barrier and report success.
pub(super) fn is_skip(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<Skip>())
}

/// Whether `error` asks for a torn write.
pub(super) fn is_torn(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<Torn>())
}

/// A hook that obeys the crate's fault [`Switch`] (and so the gateway's
/// `XGATE_FAULT_FILE`): `write` fails writes, `full` fails them with
/// ENOSPC, `torn` tears them, `flush` fails barriers, `nobarrier` skips
/// them and reports success (the negative control of the barrier test),
/// `stall` holds the write until the fault changes, `panic` panics in the
/// write; `read` and `none` change nothing.
pub fn hook_from_switch(switch: Arc<Switch>) -> FaultHook {
    Arc::new(move |step| {
        let mut fault = switch.current();
        while fault == Fault::Stall && step == Step::Write {
            std::thread::sleep(std::time::Duration::from_millis(10));
            fault = switch.current();
        }
        match (step, fault) {
            (Step::Write, Fault::Write) => Err(io::Error::other("I/O error (injected)")),
            // ENOSPC, as the kernel reports it.
            (Step::Write, Fault::Full) => Err(io::Error::from_raw_os_error(28)),
            (Step::Write, Fault::Torn) => Err(torn()),
            (Step::Write, Fault::Panic) => panic!("a journal write panicked (injected)"),
            (Step::Barrier, Fault::Flush) => Err(io::Error::other("fdatasync failed (injected)")),
            (Step::Barrier, Fault::NoBarrier) => Err(io::Error::other(Skip)),
            _ => Ok(()),
        }
    })
}
