//! The hand-off between two stages that keeps only the newest frame: a slot, not a queue.
//! A producer never waits; a frame replaced before the consumer took it is counted as dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A single-item hand-off that keeps the newest value.
pub struct LatestSlot<T> {
    inner: Mutex<State<T>>,
    ready: Condvar,
    dropped: AtomicU64,
}

struct State<T> {
    item: Option<T>,
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
        Self {
            inner: Mutex::new(State {
                item: None,
                closed: false,
            }),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
        }
    }
}

impl<T> LatestSlot<T> {
    /// A new, empty slot.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Puts an item in, replacing (and counting as dropped) one the consumer has not taken.
    pub fn put(&self, item: T) {
        let replaced = {
            let mut s = self.lock();
            s.item.replace(item)
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
            if let Some(item) = s.item.take() {
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
