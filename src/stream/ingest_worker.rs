//! The ingest worker of one stream: opens the source, hands its frames to the processing worker
//! through the newest-frame slot, watches that they keep coming, and restarts the source with
//! backoff when it fails or stalls. It owns the stream's state:
//!
//! ```text
//! connecting ──first frame──▶ live ──no frame for stall_timeout──▶ stalled
//!     ▲                        │  ▲                                  │ │
//!     │                  error │  └────────── frames again ──────────┘ │ stalled as long again
//!     │                        ▼                                       ▼
//!     └──── after the delay ── reconnecting (attempt n, delay) ◀───────┘
//! ```
//! A failure before the first frame (unreachable camera, 404, no frame within the connect
//! timeout) is retried the same way, so a camera that is down at start-up comes up by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gst::prelude::*;

use crate::audio::AudioTrack;
use crate::config::{SourceUrl, StreamConfig};
use crate::elements::error_text;
use crate::frame::{Frame, FrameMeta, LatestSlot};
use crate::ingest::presence::{self, Presence};
use crate::ingest::{AccessUnits, DecodeCounters, Ingest, IngestOptions, Passthrough, SourceInfo};
use crate::publish::VideoSwitch;
use crate::supervise::{Backoff, Shutdown};

use super::{StateCell, StreamState, StreamStats};

/// How often the worker looks at its source's health.
const TICK: Duration = Duration::from_millis(100);

pub(super) struct Context {
    pub config: StreamConfig,
    pub state: Arc<StateCell>,
    pub stats: Arc<StreamStats>,
    pub slot: Arc<LatestSlot<Frame>>,
    pub shutdown: Shutdown,
    /// Frame numbers continue across reconnects.
    pub seq: Arc<AtomicU64>,
    /// What is known about the source (codec, size, decoder).
    pub source_info: Arc<Mutex<SourceInfo>>,
    /// The stream's audio track, fed by the source's audio branch.
    pub audio: Arc<AudioTrack>,
    /// The async runtime, for the media-server check.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Where the camera's own video goes when the stream may pass it through.
    pub video: Option<Arc<VideoSwitch>>,
    /// What the decoder's branch did (pass-through).
    pub decode_counters: Arc<DecodeCounters>,
}

/// The camera's access units of one run of the source: to the video switch, and counted as
/// signs of life (with `decode = "keyframes"` decoded frames come only once a GOP).
struct RunUnits {
    switch: Arc<VideoSwitch>,
    opened: Instant,
    last_frame: Arc<AtomicU64>,
    state: Arc<StateCell>,
    stats: Arc<StreamStats>,
}

impl AccessUnits for RunUnits {
    fn access_unit(&self, sample: &gst::Sample) {
        if self.switch.camera(sample) {
            self.stats.frames_passed.fetch_add(1, Ordering::Relaxed);
        }
        mark_alive(&self.last_frame, self.opened, &self.state);
    }

    fn refused(&self, why: Option<String>) {
        self.switch.set_refused(why);
    }
}

/// A frame or access unit came: the source is alive (and live, the first time).
fn mark_alive(last_frame: &AtomicU64, opened: Instant, state: &StateCell) {
    let first = last_frame.swap(opened.elapsed().as_millis() as u64 + 1, Ordering::Relaxed) == 0;
    if first {
        state.set(StreamState::Live, None);
    }
}

/// Why one run of the source ended.
enum Ended {
    Shutdown,
    /// A file reached its end: play it again at once.
    Looped,
    /// The source failed, after being live for this long (if it ever was).
    Failed {
        reason: String,
        live_for: Option<Duration>,
    },
}

pub(super) fn run(ctx: Context) {
    let r = &ctx.config.reconnect;
    let mut backoff = Backoff::from_secs(r.initial_s, r.max_s).with_jitter(r.jitter);
    let reset_after = Duration::from_secs_f64(r.reset_after_s);
    tracing::info!(stream = %ctx.config.id(), source = %ctx.config.source, "starting");
    let client = crate::ingest::presence::client();
    loop {
        if !wait_for_media_server(&ctx, &client) {
            break;
        }
        ctx.state.set(StreamState::Connecting, None);
        let (reason, live_for) = match run_once(&ctx) {
            Ended::Shutdown => break,
            Ended::Looped => {
                tracing::debug!(stream = %ctx.config.id(), "file ended; playing it again");
                continue;
            }
            Ended::Failed { reason, live_for } => (reason, live_for),
        };
        ctx.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        if live_for.is_some_and(|d| d >= reset_after) {
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

/// With a `media_server` check: polls the media server's API until it says the stream exists
/// (or gives no usable answer). False when the stream is shutting down.
fn wait_for_media_server(ctx: &Context, client: &reqwest::Client) -> bool {
    let (Some(check), Some(rt)) = (&ctx.config.media_server, &ctx.runtime) else {
        return !ctx.shutdown.is_set();
    };
    let url = presence::check_url(check, &ctx.config.source, ctx.config.id().as_str());
    let poll = Duration::from_secs_f64(check.poll_s);
    let mut polls = 0;
    loop {
        match rt.block_on(presence::ask(client, check, &url)) {
            Presence::Present => return !ctx.shutdown.is_set(),
            Presence::Unknown(why) => {
                tracing::debug!(stream = %ctx.config.id(), "{why}; opening the source anyway");
                return !ctx.shutdown.is_set();
            }
            Presence::Absent(why) => {
                polls += 1;
                ctx.state.set(
                    StreamState::Reconnecting {
                        attempt: polls,
                        delay: poll,
                    },
                    Some(&why),
                );
                if ctx.shutdown.wait(poll) {
                    return false;
                }
            }
        }
    }
}

fn run_once(ctx: &Context) -> Ended {
    let config = &ctx.config;
    let opened = Instant::now();
    // Milliseconds after `opened` of the newest frame, plus one (0: no frame yet).
    let last_frame = Arc::new(AtomicU64::new(0));
    let on_frame = frame_handler(ctx, opened, last_frame.clone());
    let passthrough = ctx.video.as_ref().map(|switch| Passthrough {
        units: Arc::new(RunUnits {
            switch: switch.clone(),
            opened,
            last_frame: last_frame.clone(),
            state: ctx.state.clone(),
            stats: ctx.stats.clone(),
        }),
        decode: config.decode,
        counters: ctx.decode_counters.clone(),
    });
    let opts = IngestOptions {
        realtime: true,
        lossless: false,
        passthrough,
        analyze_fps: config.analyze_fps,
    };
    let ingest = match Ingest::build(
        &config.source,
        config.transport,
        config.decoder.hardware,
        opts,
        ctx.source_info.clone(),
        Some(ctx.audio.clone()),
        on_frame,
    ) {
        Ok(i) => i,
        Err(e) => return failed(format!("{e:#}"), None),
    };
    let pipeline = ingest.pipeline();
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        return failed(format!("the source pipeline would not start: {e}"), None);
    }
    let Some(bus) = pipeline.bus() else {
        return failed("the source pipeline has no bus".into(), None);
    };
    let stall = Duration::from_secs_f64(config.stall_timeout_s);
    let connect_timeout = Duration::from_secs_f64(config.reconnect.connect_timeout_s);
    let mut live_since: Option<Instant> = None;
    loop {
        if ctx.shutdown.is_set() {
            return Ended::Shutdown;
        }
        let last = last_frame.load(Ordering::Relaxed);
        let live_for = live_since.map(|t| t.elapsed());
        if last == 0 {
            if opened.elapsed() > connect_timeout {
                return failed(
                    format!(
                        "no frame within {:.1} s of opening the source",
                        connect_timeout.as_secs_f64()
                    ),
                    None,
                );
            }
        } else {
            if live_since.is_none() {
                live_since = Some(Instant::now());
                log_source(ctx, &ingest);
            }
            let silent = opened
                .elapsed()
                .saturating_sub(Duration::from_millis(last - 1));
            let state = ctx.state.get();
            if silent >= 2 * stall {
                return failed(
                    format!("stalled: no frame for {:.1} s", silent.as_secs_f64()),
                    live_for,
                );
            } else if silent >= stall && state == StreamState::Live {
                ctx.state.set(
                    StreamState::Stalled,
                    Some(&format!("no frame for {:.1} s", silent.as_secs_f64())),
                );
            } else if silent < stall && state == StreamState::Stalled {
                ctx.state
                    .set(StreamState::Live, Some("frames are flowing again"));
            }
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(TICK.as_nanos() as u64)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => return failed(error_text(e), live_for),
            gst::MessageView::Eos(_) => {
                return match config.source {
                    SourceUrl::File(_) => Ended::Looped,
                    _ => failed("the source ended the stream".into(), live_for),
                };
            }
            gst::MessageView::Warning(w) => {
                tracing::debug!(stream = %config.id(), "source warning: {}", w.error());
            }
            _ => {}
        }
    }
}

fn failed(reason: String, live_for: Option<Duration>) -> Ended {
    Ended::Failed { reason, live_for }
}

/// The appsink callback: wraps each decoded sample as a [`Frame`] and puts it in the slot.
fn frame_handler(
    ctx: &Context,
    opened: Instant,
    last_frame: Arc<AtomicU64>,
) -> impl FnMut(gst::Buffer, &gst_video::VideoInfo) + Send + 'static {
    let (slot, stats, seq, state) = (
        ctx.slot.clone(),
        ctx.stats.clone(),
        ctx.seq.clone(),
        ctx.state.clone(),
    );
    let id = ctx.config.id().clone();
    move |buffer: gst::Buffer, info: &gst_video::VideoInfo| {
        let meta = FrameMeta::new(
            id.clone(),
            seq.fetch_add(1, Ordering::Relaxed),
            SystemTime::now(),
        );
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        slot.put(Frame::new(buffer, info.clone(), meta));
        stats
            .dropped_ingest
            .store(slot.dropped(), Ordering::Relaxed);
        mark_alive(&last_frame, opened, &state);
    }
}

fn log_source(ctx: &Context, ingest: &Ingest) {
    let info = ingest.info();
    tracing::info!(
        stream = %ctx.config.id(),
        decoder = info.decoder.as_deref().unwrap_or("none (raw source)"),
        hardware = info.hardware,
        size = ?info.size,
        fps = ?info.fps,
        codec = info.codec.as_deref().unwrap_or("raw"),
        "source is live"
    );
}
