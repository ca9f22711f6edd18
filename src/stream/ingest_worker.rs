//! The ingest worker of one stream: opens the source, hands its frames to the processing worker
//! through the newest-frame slot, and restarts it with backoff when it fails. It owns the
//! stream's state (connecting → live → reconnecting → ...).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use gst::prelude::*;

use crate::config::{SourceUrl, StreamConfig};
use crate::elements::error_text;
use crate::frame::{Frame, FrameMeta, LatestSlot};
use crate::ingest::{Ingest, IngestOptions};
use crate::supervise::{Backoff, Shutdown};

use super::{StateCell, StreamState, StreamStats};

/// A source that stayed live this long starts its next retry from the first delay.
const STABLE_AFTER: Duration = Duration::from_secs(30);

pub(super) struct Context {
    pub config: StreamConfig,
    pub state: Arc<StateCell>,
    pub stats: Arc<StreamStats>,
    pub slot: Arc<LatestSlot<Frame>>,
    pub shutdown: Shutdown,
    /// Frame numbers continue across reconnects.
    pub seq: Arc<AtomicU64>,
}

/// Why one run of the source ended.
enum Ended {
    Shutdown,
    /// A file reached its end: play it again at once.
    Looped,
    Failed(String),
}

pub(super) fn run(ctx: Context) {
    let mut backoff = Backoff::from_secs(0.5, 10.0);
    let source = &ctx.config.source;
    tracing::info!(stream = %ctx.config.id(), source = %source, "starting");
    loop {
        ctx.state.set(StreamState::Connecting, None);
        let started = Instant::now();
        let ended = run_once(&ctx);
        let reason = match ended {
            Ended::Shutdown => break,
            Ended::Looped => {
                tracing::debug!(stream = %ctx.config.id(), "file ended; playing it again");
                continue;
            }
            Ended::Failed(reason) => reason,
        };
        ctx.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        if ctx.state.get() == StreamState::Live && started.elapsed() > STABLE_AFTER {
            backoff.reset();
        }
        let attempt = backoff.attempt();
        let delay = backoff.next_delay();
        ctx.state
            .set(StreamState::Reconnecting { attempt, delay }, Some(&reason));
        if ctx.shutdown.wait(delay) {
            break;
        }
    }
}

fn run_once(ctx: &Context) -> Ended {
    let config = &ctx.config;
    let first_frame = Arc::new(AtomicBool::new(false));
    let on_frame = {
        let (slot, stats, seq, state) = (
            ctx.slot.clone(),
            ctx.stats.clone(),
            ctx.seq.clone(),
            ctx.state.clone(),
        );
        let first_frame = first_frame.clone();
        let id = config.id().clone();
        let mut cached: Option<(gst::Caps, gst_video::VideoInfo)> = None;
        move |sample: gst::Sample| {
            let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else {
                return;
            };
            if cached.as_ref().is_none_or(|(c, _)| c.as_ref() != caps) {
                match gst_video::VideoInfo::from_caps(caps) {
                    Ok(info) => cached = Some((caps.to_owned(), info)),
                    Err(_) => return,
                }
            }
            let Some((_, info)) = &cached else { return };
            drop(sample);
            let meta = FrameMeta {
                stream: id.clone(),
                seq: seq.fetch_add(1, Ordering::Relaxed),
                capture_time: SystemTime::now(),
                detections: Vec::new(),
            };
            stats.frames_in.fetch_add(1, Ordering::Relaxed);
            slot.put(Frame::new(buffer, info.clone(), meta));
            stats
                .dropped_ingest
                .store(slot.dropped(), Ordering::Relaxed);
            if !first_frame.swap(true, Ordering::Relaxed) {
                state.set(StreamState::Live, None);
            }
        }
    };
    let opts = IngestOptions {
        realtime: true,
        lossless: false,
    };
    let ingest = match Ingest::build(
        &config.source,
        config.transport,
        config.decoder.hardware,
        opts,
        on_frame,
    ) {
        Ok(i) => i,
        Err(e) => return Ended::Failed(format!("{e:#}")),
    };
    let pipeline = ingest.pipeline();
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        return Ended::Failed(format!("the source pipeline would not start: {e}"));
    }
    let Some(bus) = pipeline.bus() else {
        return Ended::Failed("the source pipeline has no bus".into());
    };
    let mut logged_decoder = false;
    loop {
        if ctx.shutdown.is_set() {
            return Ended::Shutdown;
        }
        if !logged_decoder && first_frame.load(Ordering::Relaxed) {
            logged_decoder = true;
            let info = ingest.info();
            tracing::info!(
                stream = %config.id(),
                decoder = info.decoder.as_deref().unwrap_or("none (raw source)"),
                hardware = info.hardware,
                size = ?info.size,
                fps = ?info.fps,
                codec = info.codec.as_deref().unwrap_or("raw"),
                "source is live"
            );
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => return Ended::Failed(error_text(e)),
            gst::MessageView::Eos(_) => {
                return match config.source {
                    SourceUrl::File(_) => Ended::Looped,
                    _ => Ended::Failed("the source ended the stream".into()),
                };
            }
            gst::MessageView::Warning(w) => {
                tracing::debug!(stream = %config.id(), "source warning: {}", w.error());
            }
            _ => {}
        }
    }
}
