//! The stream's recent frame rates (every second) and its periodic log summary.

use std::time::{Duration, Instant};

use super::super::stats::Snapshot;
use super::Context;

/// How often the recent frame rates are updated.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// When the rates and the summary were last taken, and what the counters were then.
pub(super) struct Meters {
    rates: (Instant, Snapshot),
    summary: (Instant, Snapshot),
}

impl Meters {
    pub fn new() -> Self {
        Self {
            rates: (Instant::now(), Snapshot::default()),
            summary: (Instant::now(), Snapshot::default()),
        }
    }

    /// Updates the rates once a second and logs the summary once per `summary_interval`.
    pub fn tick(&mut self, ctx: &Context) {
        if self.rates.0.elapsed() >= RATE_WINDOW {
            let now = ctx.stats.snapshot(0);
            let (fps_in, fps_out) = now.rates_since(&self.rates.1, self.rates.0.elapsed());
            ctx.stats.set_rates(fps_in, fps_out);
            self.rates = (Instant::now(), now);
        }
        if let Some(every) = ctx.summary_interval
            && self.summary.0.elapsed() >= every
        {
            let now = ctx.stats.snapshot(ctx.fanout.dropped());
            tracing::info!(
                stream = %ctx.id,
                state = %ctx.state.get(),
                "{}",
                now.summary_since(&self.summary.1, self.summary.0.elapsed())
            );
            self.summary = (Instant::now(), now);
        }
    }
}
