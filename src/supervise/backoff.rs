//! Exponential backoff with jitter, capped, reset after a stretch of success.

use std::time::Duration;

use rand::Rng;

/// Retry delays: `initial`, then doubling up to `max`, each with a random spread (±20% by
/// default) so that many cameras behind one failed switch do not retry in lock-step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            jitter: 0.2,
            attempt: 0,
        }
    }

    /// Sets the random spread of each delay, as a fraction (0.2: ±20%).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 0.99);
        self
    }

    /// From seconds, as written in the config.
    pub fn from_secs(initial: f64, max: f64) -> Self {
        Self::new(
            Duration::from_secs_f64(initial.max(0.001)),
            Duration::from_secs_f64(max.max(0.001)),
        )
    }

    /// The attempt number of the next retry, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt + 1
    }

    /// The delay before the next attempt (without jitter), then advances.
    pub fn next_base(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        self.attempt = self.attempt.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt, with jitter, then advances.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next_base();
        if self.jitter == 0.0 {
            return base;
        }
        let factor = rand::rng().random_range(1.0 - self.jitter..1.0 + self.jitter);
        base.mul_f64(factor).min(self.max)
    }

    /// Back to the first delay (after the worker has been up for a while).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let seq: Vec<u64> = (0..7).map(|_| b.next_base().as_millis() as u64).collect();
        assert_eq!(seq, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        b.reset();
        assert_eq!(b.attempt(), 1);
        let d = b.next_delay();
        assert!(
            d >= Duration::from_millis(400) && d <= Duration::from_millis(600),
            "{d:?}"
        );
    }
}
