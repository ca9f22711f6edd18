//! A node's fence, checked where a held camera's data leaves the process: push outputs send
//! nothing, and connect to nothing, unless the node can still be sure its lease holds.
//!
//! The membership task moves the fence's deadline on with every renewal (the time the renewal
//! was sent, plus the TTL, minus the margin). Checking a deadline in the data path, rather
//! than waiting for the membership task to say so, is what makes it hold when the whole process
//! was stopped (SIGSTOP, a VM paused) past its lease: the monotonic clock went on meanwhile, and
//! the first buffer after the resume already finds the deadline passed, before any task had
//! the chance to notice.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The instant deadlines are counted from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Whether a camera's data may leave the node: open for a node's own streams, moved on by
/// the lease's renewals for a camera held for the cluster.
#[derive(Debug, Clone)]
pub struct Fence(Arc<AtomicU64>);

impl Default for Fence {
    fn default() -> Self {
        Self::open()
    }
}

impl Fence {
    /// A fence that always allows (a stream of the node's own config).
    pub fn open() -> Self {
        Self(Arc::new(AtomicU64::new(u64::MAX)))
    }

    /// A fence that allows nothing until [`Fence::extend`] moves it.
    pub fn closed() -> Self {
        Self(Arc::new(AtomicU64::new(0)))
    }

    /// Allows until `deadline` unless it already allows longer (a renewal that answers late
    /// must not pull back a deadline that a later confirmation moved on).
    pub fn extend(&self, deadline: Instant) {
        let ns = deadline.saturating_duration_since(epoch()).as_nanos();
        self.0.fetch_max(
            u64::try_from(ns).unwrap_or(u64::MAX).max(1),
            Ordering::AcqRel,
        );
    }

    /// Allows nothing from now on (until moved again).
    pub fn close(&self) {
        self.0.store(0, Ordering::Release);
    }

    /// Whether data may leave now.
    pub fn allows(&self) -> bool {
        let until = self.0.load(Ordering::Acquire);
        until == u64::MAX
            || (until > 0
                && (Instant::now().saturating_duration_since(epoch()).as_nanos() as u64) < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_fence_allows_until_its_deadline_and_not_after() {
        assert!(Fence::open().allows());
        let f = Fence::closed();
        assert!(!f.allows());
        f.extend(Instant::now() + Duration::from_secs(60));
        assert!(f.allows());
        // A deadline passed while nobody looked (the process was stopped): closed at once.
        f.close();
        f.extend(Instant::now() - Duration::from_millis(1));
        assert!(!f.allows());
        f.extend(Instant::now() + Duration::from_secs(60));
        let shared = f.clone();
        f.close();
        assert!(!shared.allows());
        // Extending moves a deadline on, never back; a closed fence opens.
        f.extend(Instant::now() + Duration::from_secs(60));
        assert!(f.allows());
        f.extend(Instant::now() - Duration::from_millis(1));
        assert!(f.allows(), "an earlier deadline does not pull it back");
    }
}
