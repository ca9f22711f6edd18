//! A process-wide (or per-worker) stop signal that waiting threads wake up on at once.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A stop signal: cheap to clone, set once, waited on with a deadline.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    /// A signal that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the signal and wakes every waiter.
    pub fn trigger(&self) {
        let (lock, cv) = &*self.inner;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }

    /// Whether the signal is set.
    pub fn is_set(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout`; returns `true` if the signal was set (at once or while waiting).
    pub fn wait(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut set = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            set = cv
                .wait_timeout(set, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_waiters_at_once() {
        let s = Shutdown::new();
        assert!(!s.wait(Duration::from_millis(1)));
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait(Duration::from_secs(30)))
        };
        s.trigger();
        assert!(waiter.join().expect("waiter"));
        assert!(s.is_set());
    }
}
