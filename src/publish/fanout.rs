//! Fan-out of encoded access units to any number of feeds, each with its own drop accounting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Something encoded frames can be pushed into without blocking.
pub trait EncodedSink: Send + Sync {
    /// A name for logs (`rtsp /cam0`, `rtmp rtmp://host/live/x`).
    fn name(&self) -> &str;
    /// Offers one access unit; must not block.
    fn offer(&self, sample: &gst::Sample) -> Offer;
    /// The stream is ending: pass end-of-stream on, so that the consumer closes cleanly.
    fn finish(&self) {}
}

/// What a sink did with an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued.
    Taken,
    /// Its buffer is full (a slow consumer): dropped.
    Full,
    /// The consumer is gone for good: remove the feed.
    Gone,
}

/// Counters of one feed.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Access units queued.
    pub sent: AtomicU64,
    /// Access units dropped (full buffer, or waiting for a key frame after one).
    pub dropped: AtomicU64,
}

struct Entry {
    sink: Arc<dyn EncodedSink>,
    stats: Arc<FeedStats>,
    waiting_for_key: bool,
}

/// Distributes the encoder's output to feeds. Publishing never waits for a feed.
pub struct Fanout {
    entries: Mutex<Vec<Entry>>,
    /// Drops of the feeds that left, so that [`Fanout::dropped`] never goes down.
    left_dropped: AtomicU64,
    last_caps: Mutex<Option<gst::Caps>>,
    keyframe_request: Box<dyn Fn() + Send + Sync>,
}

impl Fanout {
    /// A fan-out that calls `keyframe_request` when a feed needs a key frame to (re)start.
    pub fn new(keyframe_request: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::new(Vec::new()),
            left_dropped: AtomicU64::new(0),
            last_caps: Mutex::new(None),
            keyframe_request: Box::new(keyframe_request),
        })
    }

    /// Adds a feed; it starts at the next key frame (one is asked for).
    pub fn add(&self, sink: Arc<dyn EncodedSink>) -> Arc<FeedStats> {
        let stats = Arc::new(FeedStats::default());
        tracing::debug!(feed = sink.name(), "feed added");
        self.lock().push(Entry {
            sink,
            stats: stats.clone(),
            waiting_for_key: true,
        });
        (self.keyframe_request)();
        stats
    }

    /// Asks the encoder for a key frame (a viewer lost packets); the encoder rate-limits these.
    pub fn request_keyframe(&self) {
        (self.keyframe_request)();
    }

    /// Removes a feed (by identity).
    pub fn remove(&self, sink: &Arc<dyn EncodedSink>) {
        self.lock().retain(|e| {
            let keep = !Arc::ptr_eq(&e.sink, sink);
            if !keep {
                self.left(e);
            }
            keep
        });
    }

    /// Keeps the drops of a feed that leaves.
    fn left(&self, e: &Entry) {
        self.left_dropped
            .fetch_add(e.stats.dropped.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// How many feeds it has.
    pub fn feeds(&self) -> usize {
        self.lock().len()
    }

    /// Caps of the newest access unit (for feeds created later).
    pub fn caps(&self) -> Option<gst::Caps> {
        self.last_caps.lock().ok().and_then(|c| c.clone())
    }

    /// Offers one access unit to every feed.
    pub fn publish(&self, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        if keyframe
            && let (Some(caps), Ok(mut last)) = (sample.caps(), self.last_caps.lock())
            && last.as_ref().is_none_or(|c| c.as_ref() != caps)
        {
            *last = Some(caps.to_owned());
        }
        let mut need_key = false;
        self.lock().retain_mut(|e| {
            if e.waiting_for_key && !keyframe {
                e.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            match e.sink.offer(sample) {
                Offer::Taken => {
                    e.waiting_for_key = false;
                    e.stats.sent.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Offer::Full => {
                    if !e.waiting_for_key {
                        tracing::debug!(
                            feed = e.sink.name(),
                            "feed fell behind; restarting at the next key frame"
                        );
                    }
                    e.waiting_for_key = true;
                    need_key = true;
                    e.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Offer::Gone => {
                    tracing::debug!(feed = e.sink.name(), "feed removed");
                    self.left(e);
                    false
                }
            }
        });
        if need_key {
            (self.keyframe_request)();
        }
    }

    /// Ends every feed (end-of-stream) and removes them all.
    pub fn finish(&self) {
        let entries = std::mem::take(&mut *self.lock());
        for e in entries {
            self.left(&e);
            e.sink.finish();
        }
    }

    /// Total access units dropped across feeds, those that left included: it never goes down
    /// (a Prometheus counter).
    pub fn dropped(&self) -> u64 {
        let now: u64 = self
            .lock()
            .iter()
            .map(|e| e.stats.dropped.load(Ordering::Relaxed))
            .sum();
        now + self.left_dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Sink {
        capacity: usize,
        got: Mutex<Vec<bool>>,
    }

    impl EncodedSink for Sink {
        fn name(&self) -> &str {
            "test"
        }
        fn offer(&self, sample: &gst::Sample) -> Offer {
            let mut got = self.got.lock().expect("lock");
            if got.len() >= self.capacity {
                return Offer::Full;
            }
            let key = !sample
                .buffer()
                .expect("buffer")
                .flags()
                .contains(gst::BufferFlags::DELTA_UNIT);
            got.push(key);
            Offer::Taken
        }
    }

    fn sample(key: bool) -> gst::Sample {
        let mut b = gst::Buffer::new();
        if !key {
            b.get_mut()
                .expect("new")
                .set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        gst::Sample::builder().buffer(&b).build()
    }

    #[test]
    fn feeds_start_at_a_key_frame_and_slow_ones_do_not_block_others() {
        gst::init().expect("gstreamer");
        let requests = Arc::new(AtomicUsize::new(0));
        let r = requests.clone();
        let fanout = Fanout::new(move || {
            r.fetch_add(1, Ordering::Relaxed);
        });
        let fast = Arc::new(Sink {
            capacity: 100,
            got: Mutex::default(),
        });
        let slow = Arc::new(Sink {
            capacity: 2,
            got: Mutex::default(),
        });
        let fast_stats = fanout.add(fast.clone());
        let slow_stats = fanout.add(slow.clone());
        assert_eq!(requests.load(Ordering::Relaxed), 2);
        for key in [false, true, false, false, false, true, false] {
            fanout.publish(&sample(key));
        }
        // The delta frame before the first key frame is never sent.
        assert_eq!(
            *fast.got.lock().expect("lock"),
            [true, false, false, false, true, false]
        );
        assert_eq!(fast_stats.dropped.load(Ordering::Relaxed), 1);
        // The slow feed took two frames, then dropped everything else.
        assert_eq!(slow.got.lock().expect("lock").len(), 2);
        assert_eq!(slow_stats.dropped.load(Ordering::Relaxed), 5);
        assert!(
            requests.load(Ordering::Relaxed) > 2,
            "no key frame asked for the slow feed"
        );
        // A feed that leaves keeps its drops in the total: the counter never goes down.
        assert_eq!(fanout.dropped(), 6);
        let slow: Arc<dyn EncodedSink> = slow;
        fanout.remove(&slow);
        assert_eq!(fanout.dropped(), 6);
        fanout.finish();
        assert_eq!(fanout.dropped(), 6);
    }
}
