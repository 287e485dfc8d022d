//! A fault-injecting wrapper around the storage trait, compiled only with
//! the `faults` feature, which only the test builds turn on (a release
//! `xgate` has none of this).
//!
//! [`Faulty`] passes everything to the store it wraps until a [`Fault`] is
//! switched on: then flushes fail, writes fail (nothing written, or half the
//! batch written, which breaks the trait's atomic contract on purpose), the
//! disk reports itself full, writes hang until the fault is switched off,
//! a write panics (a bug in the thread that writes), or reads fail. Tests in this process flip the switch
//! directly ([`Faulty::switch`]); a test driving a gateway in another
//! process names a file in `XGATE_FAULT_FILE` and writes the fault's name
//! into it, which the store reads at every write and flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::store::{KeyValue, Store, StoreError, StoreRead, WriteBatch};

/// The environment variable naming the fault file a gateway under test
/// reads its fault from.
pub const FAULT_FILE_VAR: &str = "XGATE_FAULT_FILE";

/// A storage fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// No fault: the wrapped store works.
    None = 0,
    /// `sync` fails: the batches applied before it are not known durable.
    Flush = 1,
    /// `apply` fails with an I/O error, writing nothing.
    Write = 2,
    /// `apply` fails with ENOSPC, writing nothing.
    Full = 3,
    /// `apply` writes the first half of the batch's keys, then fails.
    Torn = 4,
    /// `apply` waits until the fault is switched to another, then does
    /// what that one says: a slow disk, or a commit that takes long.
    Stall = 5,
    /// `apply` panics, as a bug in the writing thread would.
    Panic = 6,
    /// `get` and every scan fail; writes and flushes work.
    Read = 7,
    /// The journal skips its barrier and reports success: acknowledgements
    /// that rest on nothing. Only for the negative control of the test
    /// that checks every acknowledgement has a barrier.
    NoBarrier = 8,
}

impl Fault {
    /// The fault a fault file names: `none`, `flush`, `write`, `full`,
    /// `torn`, `stall`, `panic`, `read` or `nobarrier`; anything else (an
    /// empty or missing file) is `None`.
    pub fn parse(name: &str) -> Fault {
        match name.trim() {
            "flush" => Fault::Flush,
            "write" => Fault::Write,
            "full" => Fault::Full,
            "torn" => Fault::Torn,
            "stall" => Fault::Stall,
            "panic" => Fault::Panic,
            "read" => Fault::Read,
            "nobarrier" => Fault::NoBarrier,
            _ => Fault::None,
        }
    }

    fn from_u8(v: u8) -> Fault {
        match v {
            1 => Fault::Flush,
            2 => Fault::Write,
            3 => Fault::Full,
            4 => Fault::Torn,
            5 => Fault::Stall,
            6 => Fault::Panic,
            7 => Fault::Read,
            8 => Fault::NoBarrier,
            _ => Fault::None,
        }
    }
}

/// Where a [`Faulty`] store reads its current fault from.
#[derive(Debug, Default)]
pub struct Switch {
    fault: AtomicU8,
    file: Option<PathBuf>,
}

impl Switch {
    /// A switch set from code, off.
    pub fn new() -> Switch {
        Switch::default()
    }

    /// A switch read from the file `XGATE_FAULT_FILE` names, or set from
    /// code if the variable is unset.
    pub fn from_env() -> Switch {
        Switch {
            fault: AtomicU8::new(0),
            file: std::env::var_os(FAULT_FILE_VAR).map(PathBuf::from),
        }
    }

    /// Switches `fault` on (or every fault off, with [`Fault::None`]).
    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// The fault in force now.
    pub fn current(&self) -> Fault {
        match &self.file {
            // Read at every call, so a test can flip it at any instant.
            Some(path) => std::fs::read_to_string(path)
                .map(|name| Fault::parse(&name))
                .unwrap_or(Fault::None),
            None => Fault::from_u8(self.fault.load(Ordering::SeqCst)),
        }
    }
}

/// A store that fails as its [`Switch`] says, and otherwise is `S`.
#[derive(Debug)]
pub struct Faulty<S> {
    inner: S,
    switch: Arc<Switch>,
}

impl<S: Store> Faulty<S> {
    /// Wraps `inner`, failing as `switch` says.
    pub fn new(inner: S, switch: Arc<Switch>) -> Faulty<S> {
        Faulty { inner, switch }
    }

    /// The switch this store obeys.
    pub fn switch(&self) -> &Arc<Switch> {
        &self.switch
    }
}

impl<S> Faulty<S> {
    fn readable(&self) -> Result<(), StoreError> {
        match self.switch.current() {
            Fault::Read => Err(StoreError("read failed (injected)".into())),
            _ => Ok(()),
        }
    }
}

impl<S: Store> StoreRead for Faulty<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.readable()?;
        self.inner.get(key)
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_> {
        match self.readable() {
            Ok(()) => self.inner.scan_prefix(prefix),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        from: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_> {
        match self.readable() {
            Ok(()) => self.inner.scan_prefix_from(prefix, from),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue<Vec<u8>>>, StoreError> {
        self.readable()?;
        self.inner.last_with_prefix(prefix)
    }

}

impl<S: Store> Store for Faulty<S> {
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut fault = self.switch.current();
        while fault == Fault::Stall {
            std::thread::sleep(std::time::Duration::from_millis(10));
            fault = self.switch.current();
        }
        match fault {
            Fault::Panic => panic!("a write panicked (injected)"),
            Fault::Write => Err(StoreError("I/O error (injected)".into())),
            Fault::Full => Err(StoreError(
                "No space left on device (os error 28, injected)".into(),
            )),
            Fault::Torn => {
                let ops: Vec<_> = batch.into_ops().collect();
                let keep = ops.len() / 2;
                let mut half = WriteBatch::new();
                for (key, value) in ops.into_iter().take(keep) {
                    match value {
                        Some(value) => half.put(key, value),
                        None => half.delete(key),
                    }
                }
                self.inner.apply(half)?;
                Err(StoreError("write failed part-way (injected)".into()))
            }
            Fault::Flush | Fault::None | Fault::Read | Fault::Stall | Fault::NoBarrier => {
                self.inner.apply(batch)
            }
        }
    }

    fn sync(&self) -> Result<(), StoreError> {
        match self.switch.current() {
            Fault::Flush => Err(StoreError("fsync failed (injected)".into())),
            _ => self.inner.sync(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_parse_and_anything_else_is_none() {
        assert_eq!(Fault::parse("flush\n"), Fault::Flush);
        assert_eq!(Fault::parse("write"), Fault::Write);
        assert_eq!(Fault::parse(" full "), Fault::Full);
        assert_eq!(Fault::parse("torn"), Fault::Torn);
        assert_eq!(Fault::parse("stall"), Fault::Stall);
        assert_eq!(Fault::parse("panic"), Fault::Panic);
        assert_eq!(Fault::parse("read"), Fault::Read);
        assert_eq!(Fault::parse(""), Fault::None);
        assert_eq!(Fault::parse("FLUSH"), Fault::None);
    }

    #[test]
    fn a_switch_reads_its_file_at_every_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fault");
        let switch = Switch {
            fault: AtomicU8::new(0),
            file: Some(path.clone()),
        };
        assert_eq!(switch.current(), Fault::None, "a missing file");
        std::fs::write(&path, "full").expect("write");
        assert_eq!(switch.current(), Fault::Full);
        std::fs::write(&path, "none").expect("write");
        assert_eq!(switch.current(), Fault::None);
    }
}
