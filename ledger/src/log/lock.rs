//! Locking that outlives a panic in another thread.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, recovering from poisoning: every critical section in the
/// log leaves its data consistent before anything that can panic (the
/// writer's lock guards only its turn; what an append changes is published
/// after the store accepted it).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
