//! Locking that survives a panic elsewhere: a worker that panicked while holding a lock (caught
//! by the processor chain) must not take every later user of the data down with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the data as it is if a panicking thread left the lock poisoned.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
