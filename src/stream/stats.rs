//! A stream's counters: written lock-free by the workers, read by the summary log (and later the
//! API and metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::Histogram;

/// Counters of one stream since it started.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Frames decoded.
    pub frames_in: AtomicU64,
    /// Frames through the processors and into the encoder.
    pub frames_processed: AtomicU64,
    /// Access units out of the encoder.
    pub frames_out: AtomicU64,
    /// The camera's own access units sent to the outputs (pass-through).
    pub frames_passed: AtomicU64,
    /// Decoded frames replaced by a newer one before processing took them.
    pub dropped_ingest: AtomicU64,
    /// Live frames whose slot on the output's frame grid the previous frame had taken (a
    /// source faster than the rate it announces): not encoded.
    pub dropped_early: AtomicU64,
    /// Processor failures (the frame went on regardless).
    pub processor_errors: AtomicU64,
    /// Source restarts.
    pub reconnects: AtomicU64,
    /// NO SIGNAL slate frames sent while the source was down.
    pub frames_slate: AtomicU64,
    /// Frames repeated to keep the output rate through gaps shorter than the stall timeout.
    pub frames_held: AtomicU64,
    /// Processed frames that `skip_similar` found like the last processed one (the processors
    /// after it reused their last result).
    pub frames_similar: AtomicU64,
    /// Processed frames whose pixels a drawing processor had to copy first: the decoder still
    /// held them as a reference (libav does; decision 0034).
    pub frames_copied: AtomicU64,
    /// Frames a processor kept from the outputs (a `python` function past its budget: the
    /// previous frame was shown again in their place).
    pub frames_withheld: AtomicU64,
    /// Time from decode to the start of processing (waiting in the slot).
    pub queue_latency: Histogram,
    /// Time in the processors.
    pub process_latency: Histogram,
    /// Time inside the encoder pipeline.
    pub encode_latency: Histogram,
    /// Recent input rate (frames per second, as f64 bits), updated about once a second.
    fps_in: AtomicU64,
    /// Recent output rate (frames per second, as f64 bits).
    fps_out: AtomicU64,
    process_ns: AtomicU64,
    encode_ns: AtomicU64,
    encode_samples: AtomicU64,
}

/// A copy of the counters at one instant.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    /// See [`StreamStats::frames_in`].
    pub frames_in: u64,
    /// See [`StreamStats::frames_processed`].
    pub frames_processed: u64,
    /// See [`StreamStats::frames_out`].
    pub frames_out: u64,
    /// See [`StreamStats::frames_passed`].
    pub frames_passed: u64,
    /// See [`StreamStats::dropped_ingest`].
    pub dropped_ingest: u64,
    /// Access units dropped by outputs (slow viewers, servers behind).
    pub dropped_outputs: u64,
    /// See [`StreamStats::reconnects`].
    pub reconnects: u64,
    /// See [`StreamStats::frames_slate`].
    pub frames_slate: u64,
    /// See [`StreamStats::frames_held`].
    pub frames_held: u64,
    /// Total nanoseconds in processors.
    pub process_ns: u64,
    /// Total nanoseconds frames spent in the encoder.
    pub encode_ns: u64,
    /// Frames whose encode time was measured.
    pub encode_samples: u64,
}

impl StreamStats {
    /// Counts a processed frame and the time the processors took.
    pub fn record_processed(&self, elapsed: Duration) {
        self.frames_processed.fetch_add(1, Ordering::Relaxed);
        self.process_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.process_latency.record(elapsed);
    }

    /// Counts an encoded access unit and the time its frame spent in the encoder.
    pub fn record_encoded(&self, spent: Option<Duration>) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = spent {
            self.encode_ns
                .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
            self.encode_samples.fetch_add(1, Ordering::Relaxed);
            self.encode_latency.record(d);
        }
    }

    /// Stores the recent input and output rates.
    pub fn set_rates(&self, fps_in: f64, fps_out: f64) {
        self.fps_in.store(fps_in.to_bits(), Ordering::Relaxed);
        self.fps_out.store(fps_out.to_bits(), Ordering::Relaxed);
    }

    /// Recent input and output rates, frames per second.
    pub fn rates(&self) -> (f64, f64) {
        (
            f64::from_bits(self.fps_in.load(Ordering::Relaxed)),
            f64::from_bits(self.fps_out.load(Ordering::Relaxed)),
        )
    }

    /// The counters now; `dropped_outputs` comes from the fan-out.
    pub fn snapshot(&self, dropped_outputs: u64) -> Snapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            frames_in: l(&self.frames_in),
            frames_processed: l(&self.frames_processed),
            frames_out: l(&self.frames_out),
            frames_passed: l(&self.frames_passed),
            dropped_ingest: l(&self.dropped_ingest),
            dropped_outputs,
            reconnects: l(&self.reconnects),
            frames_slate: l(&self.frames_slate),
            frames_held: l(&self.frames_held),
            process_ns: l(&self.process_ns),
            encode_ns: l(&self.encode_ns),
            encode_samples: l(&self.encode_samples),
        }
    }
}

impl Snapshot {
    /// Input and output frame rates between `prev` and `self`.
    pub fn rates_since(&self, prev: &Snapshot, elapsed: Duration) -> (f64, f64) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        (
            (self.frames_in - prev.frames_in) as f64 / secs,
            self.out_since(prev) as f64 / secs,
        )
    }

    /// Frames sent to the outputs since `prev`: encoded or passed through.
    fn out_since(&self, prev: &Snapshot) -> u64 {
        (self.frames_out + self.frames_passed) - (prev.frames_out + prev.frames_passed)
    }

    /// One line describing what happened between `prev` and `self`, `elapsed` apart.
    pub fn summary_since(&self, prev: &Snapshot, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let per = |ns: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                ns as f64 / n as f64 / 1e6
            }
        };
        format!(
            "fps in {:.1}, out {:.1} (held {:.1}, slate {:.1}); dropped ingest {}, outputs {}; process {:.2} ms/frame, \
             encode {:.2} ms/frame; reconnects {}",
            (self.frames_in - prev.frames_in) as f64 / secs,
            self.out_since(prev) as f64 / secs,
            (self.frames_held - prev.frames_held) as f64 / secs,
            (self.frames_slate - prev.frames_slate) as f64 / secs,
            self.dropped_ingest - prev.dropped_ingest,
            self.dropped_outputs.saturating_sub(prev.dropped_outputs),
            per(
                self.process_ns - prev.process_ns,
                self.frames_processed - prev.frames_processed
            ),
            per(
                self.encode_ns - prev.encode_ns,
                self.encode_samples - prev.encode_samples
            ),
            self.reconnects,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_rates_and_means() {
        let s = StreamStats::default();
        let before = s.snapshot(0);
        for _ in 0..50 {
            s.frames_in.fetch_add(1, Ordering::Relaxed);
            s.record_processed(Duration::from_micros(500));
            s.record_encoded(Some(Duration::from_millis(3)));
        }
        let line = s.snapshot(2).summary_since(&before, Duration::from_secs(2));
        assert!(
            line.starts_with(
                "fps in 25.0, out 25.0 (held 0.0, slate 0.0); dropped ingest 0, outputs 2"
            ),
            "{line}"
        );
        assert!(
            line.contains("process 0.50 ms/frame, encode 3.00 ms/frame"),
            "{line}"
        );
    }
}
