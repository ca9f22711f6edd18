//! The hand-off between two stages that keeps only the newest frames: a slot of one (or a few),
//! not a queue. A producer never waits; a frame pushed out before the consumer took it is
//! counted as dropped. A depth of two absorbs a burst (two frames decoded back to back, as a
//! TCP relay delivers them) without dropping, at the cost of at most one frame of waiting
//! while the consumer is behind; with the consumer keeping up, nothing waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A hand-off that keeps the newest `depth` values, oldest out first.
pub struct LatestSlot<T> {
    inner: Mutex<State<T>>,
    ready: Condvar,
    dropped: AtomicU64,
    depth: usize,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// What [`LatestSlot::recv_timeout`] returns.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotRecv<T> {
    /// The newest item.
    Item(T),
    /// Nothing arrived before the deadline.
    Timeout,
    /// The slot was closed and is empty.
    Closed,
}

impl<T> Default for LatestSlot<T> {
    fn default() -> Self {
        Self::with_depth(1)
    }
}

impl<T> LatestSlot<T> {
    /// A new, empty slot of one.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A new, empty slot keeping the newest `depth` items (at least one).
    pub fn newest(depth: usize) -> Arc<Self> {
        Arc::new(Self::with_depth(depth))
    }

    fn with_depth(depth: usize) -> Self {
        let depth = depth.max(1);
        Self {
            inner: Mutex::new(State {
                items: VecDeque::with_capacity(depth + 1),
                closed: false,
            }),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
            depth,
        }
    }

    /// Puts an item in, pushing out (and counting as dropped) the oldest the consumer has not
    /// taken when the slot is full.
    pub fn put(&self, item: T) {
        let replaced = {
            let mut s = self.lock();
            s.items.push_back(item);
            if s.items.len() > self.depth {
                s.items.pop_front()
            } else {
                None
            }
        };
        // Drop the replaced frame outside the lock: it may release GStreamer memory.
        if replaced.is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(replaced);
        self.ready.notify_one();
    }

    /// Waits up to `timeout` for an item.
    pub fn recv_timeout(&self, timeout: Duration) -> SlotRecv<T> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                return SlotRecv::Item(item);
            }
            if s.closed {
                return SlotRecv::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return SlotRecv::Timeout;
            }
            s = self
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Closes the slot: the consumer gets what is left, then [`SlotRecv::Closed`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Items replaced before they were taken.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the state inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_counts_drops() {
        let slot = LatestSlot::new();
        slot.put(1);
        slot.put(2);
        slot.put(3);
        assert_eq!(slot.recv_timeout(Duration::ZERO), SlotRecv::Item(3));
        assert_eq!(slot.dropped(), 2);
        assert_eq!(
            slot.recv_timeout(Duration::from_millis(1)),
            SlotRecv::Timeout
        );
    }

    #[test]
    fn a_deeper_slot_keeps_a_burst_in_order() {
        let slot = LatestSlot::newest(2);
        slot.put(1);
        slot.put(2);
        assert_eq!(slot.dropped(), 0, "a burst of two is kept");
        slot.put(3);
        assert_eq!(slot.dropped(), 1, "the oldest is pushed out");
        assert_eq!(slot.recv_timeout(Duration::ZERO), SlotRecv::Item(2));
        assert_eq!(slot.recv_timeout(Duration::ZERO), SlotRecv::Item(3));
        assert_eq!(slot.recv_timeout(Duration::ZERO), SlotRecv::Timeout);
        slot.put(4);
        slot.close();
        assert_eq!(slot.recv_timeout(Duration::ZERO), SlotRecv::Item(4));
        assert_eq!(slot.recv_timeout(Duration::ZERO), SlotRecv::Closed);
    }

    #[test]
    fn wakes_a_waiting_consumer_and_closes() {
        let slot = LatestSlot::new();
        let producer = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                slot.put(7);
                slot.close();
            })
        };
        assert_eq!(
            slot.recv_timeout(Duration::from_secs(10)),
            SlotRecv::Item(7)
        );
        producer.join().expect("producer");
        assert_eq!(slot.recv_timeout(Duration::from_secs(10)), SlotRecv::Closed);
    }
}
