//! The free-space guard: the committer refuses a batch, before writing any
//! of it, while the data directory's file system has less than a reserve
//! free.
//!
//! Why not let the store report the full disk: sled 0.34, on an `ENOSPC`
//! during a flush, never completes that flush or any later one, even once
//! space is freed (docs/reliability.md, "Storage faults"), so a gateway
//! that ran its disk full would hang until restarted. Refusing with
//! `storage_unavailable` while space is short keeps the store away from
//! that edge, and the gateway resumes by itself as soon as space returns.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The data directory's file system has less than the reserve free
/// (`storage_unavailable`): nothing is written until it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the gateway's disk is nearly full")]
pub struct DiskFull;

/// Where to check, and how much must stay free; unset means no check.
#[derive(Debug, Default)]
pub struct DiskGuard {
    reserve: OnceLock<(PathBuf, u64)>,
}

impl DiskGuard {
    /// Arms the guard for `dir`, keeping `bytes` free; the first call wins.
    pub fn arm(&self, dir: PathBuf, bytes: u64) {
        let _ = self.reserve.set((dir, bytes));
    }

    /// Refuses when the reserve is not free. A file system that cannot be
    /// asked is not held against the batch: the store reports real errors.
    ///
    /// # Errors
    /// [`DiskFull`].
    pub fn check(&self) -> Result<(), DiskFull> {
        let Some((dir, reserve)) = self.reserve.get() else {
            return Ok(());
        };
        let Ok(stat) = rustix::fs::statvfs(dir) else {
            return Ok(());
        };
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if free < *reserve {
            return Err(DiskFull);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::{ApiError, Code};

    #[test]
    fn an_unarmed_guard_passes_and_an_impossible_reserve_refuses() {
        let guard = DiskGuard::default();
        assert!(guard.check().is_ok());
        guard.arm(std::env::temp_dir(), u64::MAX);
        let e = guard.check().expect_err("no disk has u64::MAX bytes free");
        assert_eq!(ApiError::from(e).code, Code::StorageUnavailable);
        let roomy = DiskGuard::default();
        roomy.arm(std::env::temp_dir(), 1);
        assert!(roomy.check().is_ok());
    }
}
