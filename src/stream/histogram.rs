//! A lock-free latency histogram with fixed buckets: cheap to record from any thread, read for
//! percentiles (API) and exported as a Prometheus histogram (metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets in microseconds (a 1-2-5 series from 50 µs to 10 s); one more
/// bucket holds everything above.
pub const BOUNDS_US: [u64; 18] = [
    50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000,
];

/// Counts of durations per bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of durations recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of all durations, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Cumulative counts per upper bound (seconds), the last one for +Inf: Prometheus' `le`.
    pub fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            out.push((BOUNDS_US.get(i).map(|us| *us as f64 / 1e6), total));
        }
        out
    }

    /// The `q` quantile (0 to 1), interpolated inside its bucket; `None` before any record.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, c) in counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lo = if i == 0 { 0 } else { BOUNDS_US[i - 1] } as f64;
                let hi = BOUNDS_US
                    .get(i)
                    .copied()
                    .unwrap_or(BOUNDS_US[BOUNDS_US.len() - 1] * 2) as f64;
                let within = (rank - seen as f64) / *c as f64;
                return Some(Duration::from_micros((lo + (hi - lo) * within) as u64));
            }
            seen += c;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_fall_in_the_right_bucket() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..98 {
            h.record(Duration::from_micros(700)); // 500..1000 µs bucket
        }
        h.record(Duration::from_millis(30)); // 20..50 ms
        h.record(Duration::from_millis(40));
        let p50 = h.quantile(0.5).unwrap();
        assert!(
            p50 > Duration::from_micros(500) && p50 <= Duration::from_millis(1),
            "{p50:?}"
        );
        let p99 = h.quantile(0.99).unwrap();
        assert!(
            p99 > Duration::from_millis(20) && p99 <= Duration::from_millis(50),
            "{p99:?}"
        );
        let cum = h.cumulative();
        assert_eq!(cum.last().unwrap().1, 100);
        assert_eq!(cum[3], (Some(0.0005), 0));
        assert_eq!(cum[4], (Some(0.001), 98));
        assert!((h.sum_secs() - (98.0 * 0.0007 + 0.07)).abs() < 1e-6);
    }
}
