//! The processing worker of one stream: takes the newest decoded frame, runs the processors,
//! and hands the frame to the encoder. It also logs the stream's periodic summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::StreamId;
use crate::elements::error_text;
use crate::encode::Encoder;
use crate::frame::{Frame, LatestSlot, SlotRecv};
use crate::process::Chain;
use crate::publish::Fanout;

use super::stats::Snapshot;
use super::{StateCell, StreamStats};

/// How long the worker waits for a frame before it looks at its other duties.
const POLL: Duration = Duration::from_millis(200);
/// How long the encoder gets to flush at the end.
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) struct Context {
    pub id: StreamId,
    pub chain: Chain,
    pub slot: Arc<LatestSlot<Frame>>,
    pub encoder: Arc<Encoder>,
    pub fanout: Arc<Fanout>,
    pub stats: Arc<StreamStats>,
    pub state: Arc<StateCell>,
    pub summary_interval: Option<Duration>,
}

pub(super) fn run(mut ctx: Context) {
    let mut last_summary = (Instant::now(), Snapshot::default());
    let mut last_error_log: Option<Instant> = None;
    loop {
        match ctx.slot.recv_timeout(POLL) {
            SlotRecv::Item(frame) => process(&mut ctx, frame, &mut last_error_log),
            SlotRecv::Timeout => {}
            SlotRecv::Closed => break,
        }
        watch_encoder(&ctx);
        if let Some(every) = ctx.summary_interval
            && last_summary.0.elapsed() >= every
        {
            let now = ctx.stats.snapshot(ctx.fanout.dropped());
            tracing::info!(
                stream = %ctx.id,
                state = %ctx.state.get(),
                "{}",
                now.summary_since(&last_summary.1, last_summary.0.elapsed())
            );
            last_summary = (Instant::now(), now);
        }
    }
    if let Err(e) = ctx.encoder.finish(FINISH_TIMEOUT) {
        tracing::debug!(stream = %ctx.id, "encoder flush: {e:#}");
    }
}

fn process(ctx: &mut Context, mut frame: Frame, last_error_log: &mut Option<Instant>) {
    let report = ctx.chain.run(&mut frame);
    ctx.stats.record_processed(report.elapsed);
    for (name, e) in report.errors {
        ctx.stats
            .processor_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // At most one line per second, whatever the frame rate.
        if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            *last_error_log = Some(Instant::now());
            tracing::warn!(stream = %ctx.id, processor = name, "processor failed: {e:#}");
        }
    }
    let (buffer, info, _meta) = frame.into_parts();
    if let Err(e) = ctx.encoder.push(buffer, &info) {
        tracing::warn!(stream = %ctx.id, "the encoder refused a frame: {e:?}");
    }
}

fn watch_encoder(ctx: &Context) {
    use gst::prelude::*;
    let Some(bus) = ctx.encoder.pipeline().bus() else {
        return;
    };
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning]) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                tracing::error!(stream = %ctx.id, "encoder error: {}", error_text(e));
            }
            gst::MessageView::Warning(w) => {
                tracing::debug!(stream = %ctx.id, "encoder warning: {}", w.error());
            }
            _ => {}
        }
    }
}
