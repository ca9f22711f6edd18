//! The processing worker of one stream: takes the newest decoded frame, runs the processors,
//! and hands the frame to the encoder. When no frame has come for the stall timeout it sends the
//! NO SIGNAL slate instead, at the output's frame rate, until live frames return; it watches the
//! encoder (restarted when it fails). It also logs the stream's periodic summary. Output
//! housekeeping (idle HLS, vanished WebRTC peers) runs on the stream's own housekeeping thread,
//! never here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::config::StreamId;
use crate::encode::{Supervised, Timeline};
use crate::frame::{Frame, FrameTap, LatestSlot, SlotRecv, TappedFrame};
use crate::process::Chain;
use crate::publish::Fanout;

use super::stats::Snapshot;
use super::{StateCell, StreamStats};

/// How long the worker waits for a frame before it looks at its other duties.
const POLL: Duration = Duration::from_millis(200);
/// The shortest gap after which the last frame is repeated. The gap is otherwise two and a half
/// frame intervals (100 ms at 25 fps): a frame later than that is repeated, so a camera that dies
/// costs its viewers one or two frames, not a quarter of a second; a live frame that was merely
/// late follows its repeat a moment later.
const HOLD_AFTER_MIN: Duration = Duration::from_millis(60);
/// How often the recent frame rates are updated.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// How long the encoder gets to flush at the end.
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) struct Context {
    pub id: StreamId,
    pub chain: Chain,
    pub slot: Arc<LatestSlot<Frame>>,
    /// The stream's encoder, restarted when it fails.
    pub encoder: Supervised,
    pub fanout: Arc<Fanout>,
    pub stats: Arc<StreamStats>,
    pub state: Arc<StateCell>,
    pub summary_interval: Option<Duration>,
    pub stall_timeout: Duration,
    /// Frame rate of the slate when the source announces none.
    pub default_fps: u32,
    /// Where every frame sent to the encoder is also offered (browser viewers).
    pub tap: FrameTap,
}

impl Context {
    /// Offers a frame sent to the encoder to the tap (a reference, no copy).
    fn tap(&self, buffer: &gst::Buffer, info: &gst_video::VideoInfo, capture_time: SystemTime) {
        let seq = self.tap.borrow().as_ref().map_or(0, |f| f.seq + 1);
        self.tap.send_replace(Some(TappedFrame {
            buffer: buffer.clone(),
            info: info.clone(),
            seq,
            capture_time,
        }));
    }
}

/// The slate being shown.
struct Slate {
    info: gst_video::VideoInfo,
    since: SystemTime,
    buffer: gst::Buffer,
    rendered: Instant,
}

/// The last live frame: when it came, and its output format.
struct LastLive {
    at: Instant,
    wall: SystemTime,
    fps: Option<gst::Fraction>,
}

/// What keeps the output's frame rate while no live frame comes: first the last frame again
/// (short gaps), then, after the stall timeout, the slate.
#[derive(Default)]
struct GapFiller {
    last_live: Option<LastLive>,
    last_pushed: Option<(gst::Buffer, gst_video::VideoInfo)>,
    slate: Option<Slate>,
    next: Option<Instant>,
    timeline: Timeline,
}

pub(super) fn run(mut ctx: Context) {
    let started = Instant::now();
    let mut last_summary = (Instant::now(), Snapshot::default());
    let mut last_rates = (Instant::now(), Snapshot::default());
    let mut last_error_log: Option<Instant> = None;
    let mut gap = GapFiller::default();
    let mut generation = ctx.encoder.generation();
    loop {
        let wait = gap.next.map_or(POLL, |t| {
            t.saturating_duration_since(Instant::now()).min(POLL)
        });
        match ctx.slot.recv_timeout(wait) {
            SlotRecv::Item(frame) => {
                if gap.slate.take().is_some() {
                    tracing::info!(stream = %ctx.id, "live frames are back: slate off");
                }
                let fps = frame.info().fps();
                gap.last_live = Some(LastLive {
                    at: Instant::now(),
                    wall: SystemTime::now(),
                    fps: (fps.numer() > 0).then_some(fps),
                });
                gap.last_pushed = process(
                    &mut ctx,
                    frame,
                    &mut gap.timeline,
                    gap.last_pushed.take(),
                    &mut last_error_log,
                );
                gap.next = Some(Instant::now() + gap.hold_after(&ctx));
            }
            SlotRecv::Timeout => {}
            SlotRecv::Closed => break,
        }
        ctx.encoder.check();
        if ctx.encoder.generation() != generation {
            // A restarted encoder has a clock of its own.
            generation = ctx.encoder.generation();
            gap.timeline = Timeline::default();
        }
        gap.fill(&mut ctx, started);
        if last_rates.0.elapsed() >= RATE_WINDOW {
            let now = ctx.stats.snapshot(0);
            let (fps_in, fps_out) = now.rates_since(&last_rates.1, last_rates.0.elapsed());
            ctx.stats.set_rates(fps_in, fps_out);
            last_rates = (Instant::now(), now);
        }
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

impl GapFiller {
    /// Time between two output frames.
    fn interval(&self, ctx: &Context) -> Duration {
        let fps = self
            .last_live
            .as_ref()
            .and_then(|l| l.fps)
            .unwrap_or(gst::Fraction::new(ctx.default_fps as i32, 1));
        Duration::from_secs_f64(f64::from(fps.denom()) / f64::from(fps.numer().max(1)))
    }

    /// How long after a live frame the last frame is repeated: longer than network jitter, so
    /// that a late frame is not doubled, and well under the stall timeout.
    fn hold_after(&self, ctx: &Context) -> Duration {
        (self.interval(ctx) * 5 / 2).max(HOLD_AFTER_MIN)
    }

    /// Sends a filler frame when one is due: the last frame again while the gap is shorter than
    /// the stall timeout, the slate after it (from start-up too, when the output size is set).
    fn fill(&mut self, ctx: &mut Context, started: Instant) {
        let now = Instant::now();
        let silent_since = self.last_live.as_ref().map_or(started, |l| l.at);
        let silent = now.duration_since(silent_since);
        if silent >= ctx.stall_timeout && self.slate.is_none() {
            self.start_slate(ctx);
        }
        let due = match self.next {
            Some(t) => now >= t,
            None => self.slate.is_some(),
        };
        if !due {
            return;
        }
        let interval = self.interval(ctx);
        let pts = gst::ClockTime::from_nseconds(self.timeline.filler(
            ctx.encoder.running_time().nseconds(),
            interval.as_nanos() as u64,
        ));
        if let Some(s) = self.slate.as_mut() {
            // The slate shows the time now: redraw it once a second.
            if s.rendered.elapsed() >= Duration::from_secs(1)
                && let Some(b) = super::slate::render(&s.info, &ctx.id, s.since, SystemTime::now())
            {
                s.buffer = b;
                s.rendered = now;
            }
            if ctx.encoder.push(s.buffer.clone(), &s.info, Some(pts)) {
                ctx.stats.frames_slate.fetch_add(1, Ordering::Relaxed);
                ctx.tap(&s.buffer, &s.info, SystemTime::now());
            }
        } else if let Some((buffer, info)) = &self.last_pushed
            && ctx.encoder.push(buffer.clone(), info, Some(pts))
        {
            ctx.stats.frames_held.fetch_add(1, Ordering::Relaxed);
            ctx.tap(buffer, info, SystemTime::now());
        }
        let next = self.next.unwrap_or(now) + interval;
        // Fell behind (a busy machine): carry on from now rather than send a burst.
        self.next = Some(if next < now { now + interval } else { next });
    }

    fn start_slate(&mut self, ctx: &Context) {
        // The output size is fixed by the first frame (or the config); without it there is
        // nothing to keep alive yet.
        let Some((w, h)) = ctx.encoder.output_size() else {
            return;
        };
        let fps = self
            .last_live
            .as_ref()
            .and_then(|l| l.fps)
            .unwrap_or(gst::Fraction::new(ctx.default_fps as i32, 1));
        // The live frames' own layout (NV12 from NVDEC, I420 from libav), so that switching
        // to the slate and back never renegotiates the encoder.
        let format = self
            .last_pushed
            .as_ref()
            .map(|(_, i)| i.format())
            .filter(|f| {
                matches!(
                    f,
                    gst_video::VideoFormat::Nv12 | gst_video::VideoFormat::I420
                )
            })
            .unwrap_or(gst_video::VideoFormat::I420);
        let Ok(info) = gst_video::VideoInfo::builder(format, w, h).fps(fps).build() else {
            return;
        };
        let since = self
            .last_live
            .as_ref()
            .map_or_else(SystemTime::now, |l| l.wall);
        let Some(buffer) = super::slate::render(&info, &ctx.id, since, SystemTime::now()) else {
            return;
        };
        tracing::info!(
            stream = %ctx.id,
            "no frame for {:.1} s: showing the NO SIGNAL slate",
            ctx.stall_timeout.as_secs_f64()
        );
        self.slate = Some(Slate {
            info,
            since,
            buffer,
            rendered: Instant::now(),
        });
    }
}

/// Slots a source skipped that are filled with the previous frame when the next one comes:
/// the gaps shorter than the gap filler's (two and a half intervals).
const MAX_FILL: u32 = 2;

/// Runs the processors and encodes the frame, after the previous frame again in the slots the
/// source skipped; returns it for repeating in short gaps.
fn process(
    ctx: &mut Context,
    mut frame: Frame,
    timeline: &mut Timeline,
    previous: Option<(gst::Buffer, gst_video::VideoInfo)>,
    last_error_log: &mut Option<Instant>,
) -> Option<(gst::Buffer, gst_video::VideoInfo)> {
    if let Ok(waited) = frame.meta.capture_time.elapsed() {
        ctx.stats.queue_latency.record(waited);
    }
    let report = ctx.chain.run(&mut frame);
    ctx.stats.record_processed(report.elapsed);
    if report.similar {
        ctx.stats.frames_similar.fetch_add(1, Ordering::Relaxed);
    }
    for (name, e) in report.errors {
        ctx.stats.processor_errors.fetch_add(1, Ordering::Relaxed);
        // At most one line per second, whatever the frame rate.
        if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            *last_error_log = Some(Instant::now());
            tracing::warn!(stream = %ctx.id, processor = name, "processor failed: {e:#}");
        }
    }
    let (buffer, info, meta) = frame.into_parts();
    let kept = buffer.clone();
    ctx.tap(&buffer, &info, meta.capture_time);
    let fps = info.fps();
    let frame_ns =
        (fps.numer() > 0).then(|| 1_000_000_000u64 * fps.denom() as u64 / fps.numer() as u64);
    // Only a previous frame of the same layout fills (not across a change of size or format).
    let max_fill = match &previous {
        Some((_, i))
            if (i.width(), i.height(), i.format())
                == (info.width(), info.height(), info.format()) =>
        {
            MAX_FILL
        }
        _ => 0,
    };
    let (fill, pts) = timeline.live_filling(
        buffer.pts().map(gst::ClockTime::nseconds),
        ctx.encoder.running_time().nseconds(),
        frame_ns,
        max_fill,
    );
    if let Some((held, held_info)) = &previous {
        for t in fill {
            if ctx.encoder.push(
                held.clone(),
                held_info,
                Some(gst::ClockTime::from_nseconds(t)),
            ) {
                ctx.stats.frames_held.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // A refused frame is the encoder's failure: it is restarted, and says so (rate-limited).
    ctx.encoder
        .push(buffer, &info, Some(gst::ClockTime::from_nseconds(pts)));
    Some((kept, info))
}
