//! What keeps a stream's output at its frame rate: live frames go to the encoder on the output
//! timeline, with the previous frame again in the slots a source skipped; while no live frame
//! comes, the last frame again after a short gap, the NO SIGNAL slate after the stall timeout.
//! While the camera's own video passes through, its frames go to no encoder and gaps are left
//! as the camera made them: only the slate is encoded, from the stall timeout until the camera
//! is back (the video switch changes over on key frames).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::encode::{Slot, Timeline};
use crate::frame::Frame;
use crate::publish::{VideoOn, VideoSwitch};

use super::Context;

/// The shortest gap after which the last frame is repeated. The gap is otherwise two and a half
/// frame intervals (100 ms at 25 fps): a frame later than that is repeated, so a camera that dies
/// costs its viewers one or two frames, not a quarter of a second; a live frame that was merely
/// late follows its repeat a moment later.
const HOLD_AFTER_MIN: Duration = Duration::from_millis(60);
/// Slots a source skipped that are filled with the previous frame when the next one comes: the
/// gaps shorter than the repeat's (two and a half intervals).
const MAX_FILL: u32 = 2;

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
pub(super) struct GapFiller {
    started: Instant,
    last_live: Option<LastLive>,
    /// The last frame sent to the encoder, for repeating.
    last_pushed: Option<(gst::Buffer, gst_video::VideoInfo)>,
    slate: Option<Slate>,
    next: Option<Instant>,
    /// The output timeline of live and filler frames alike.
    timeline: Timeline,
    /// The encoder whose clock the timeline follows.
    generation: u64,
}

impl GapFiller {
    pub fn new(ctx: &Context) -> Self {
        Self {
            started: Instant::now(),
            last_live: None,
            last_pushed: None,
            slate: None,
            next: None,
            timeline: Timeline::default(),
            generation: ctx.encoder.generation(),
        }
    }

    /// How long the worker may wait for a frame before a filler frame is due.
    pub fn wait(&self, poll: Duration) -> Duration {
        self.next.map_or(poll, |t| {
            t.saturating_duration_since(Instant::now()).min(poll)
        })
    }

    /// A live frame came: the slate goes.
    pub fn live(&mut self, ctx: &Context, frame: &Frame) {
        // While the camera's video passes through, the slate goes when the switch is back on
        // the camera (`fill`), not with a decoded frame.
        if !ctx.passing_through() && self.slate.take().is_some() {
            tracing::info!(stream = %ctx.id, "live frames are back: slate off");
        }
        let fps = frame.info().fps();
        self.last_live = Some(LastLive {
            at: Instant::now(),
            wall: SystemTime::now(),
            fps: (fps.numer() > 0).then_some(fps),
        });
    }

    /// Sends a processed live frame to the encoder at its place on the timeline, after the
    /// previous frame again in the slots its source skipped (only a previous frame of the same
    /// layout: not across a change of size or format); the next repeat is due after the hold.
    pub fn send_live(
        &mut self,
        ctx: &mut Context,
        buffer: gst::Buffer,
        info: gst_video::VideoInfo,
    ) {
        let fps = info.fps();
        let frame_ns =
            (fps.numer() > 0).then(|| 1_000_000_000u64 * fps.denom() as u64 / fps.numer() as u64);
        let previous = self.last_pushed.take().filter(|(_, i)| {
            (i.width(), i.height(), i.format()) == (info.width(), info.height(), info.format())
        });
        if ctx.passing_through() {
            // Kept for the slate's size and layout; the camera's video goes out by itself.
            self.last_pushed = Some((buffer, info));
            self.next = None;
            return;
        }
        let clock = ctx.clock();
        let src = buffer.pts().map(gst::ClockTime::nseconds);
        let Slot::At { fill, at: pts } = self.timeline.live_filling(
            src,
            clock,
            frame_ns,
            if previous.is_some() { MAX_FILL } else { 0 },
        ) else {
            // The source ran ahead of its announced rate: this frame's slot went to the last.
            ctx.stats.dropped_early.fetch_add(1, Ordering::Relaxed);
            self.last_pushed = previous;
            return;
        };
        // The source's audio goes where its video went: this frame's offset, snapping and
        // all (the track follows it when it moves by more than the snapping's jitter).
        ctx.audio.video_anchor(
            src.map(|s| i128::from(pts) - i128::from(s)),
            frame_ns,
            clock,
        );
        if let Some((held, held_info)) = &previous {
            for t in fill {
                push_held(ctx, held, held_info, gst::ClockTime::from_nseconds(t));
            }
        }
        // A refused frame is the encoder's failure: it is restarted, and says so (rate-limited).
        // The encoded picture says which source frame it shows (for boxes drawn by viewers).
        let mut input = buffer.clone();
        if let Some(s) = src {
            crate::frame::source_pts::tag(input.make_mut(), gst::ClockTime::from_nseconds(s));
        }
        ctx.encoder
            .push(input, &info, Some(gst::ClockTime::from_nseconds(pts)));
        self.last_pushed = Some((buffer, info));
        self.next = Some(Instant::now() + self.hold_after(ctx));
        ctx.audio.follow_video(pts);
    }

    /// Watches the encoder (restarted when it failed); a new encoder has a clock of its own,
    /// so the timeline starts again.
    pub fn follow_encoder(&mut self, ctx: &mut Context) {
        ctx.encoder.check();
        if ctx.encoder.generation() != self.generation {
            self.generation = ctx.encoder.generation();
            // The video switch's clock goes on through encoder restarts.
            if ctx.video.is_none() {
                self.timeline = Timeline::default();
                ctx.audio.reset_clock();
            }
        }
    }

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
    pub fn fill(&mut self, ctx: &mut Context) {
        let now = Instant::now();
        if let Some(video) = ctx.video.clone().filter(|_| ctx.passing_through()) {
            self.fill_passing_through(ctx, &video, now);
            return;
        }
        let silent_since = self.last_live.as_ref().map_or(self.started, |l| l.at);
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
        let pts = gst::ClockTime::from_nseconds(
            self.timeline
                .filler(ctx.clock(), interval.as_nanos() as u64),
        );
        if self.slate.is_some() {
            self.push_slate(ctx, pts, now);
        } else if let Some((buffer, info)) = &self.last_pushed
            && push_held(ctx, buffer, info, pts)
        {
            ctx.tap(buffer, info, SystemTime::now());
        }
        // The audio keeps going with the video: silence while the source sends none.
        ctx.audio.follow_video(pts.nseconds());
        let next = self.next.unwrap_or(now) + interval;
        // Fell behind (a busy machine): carry on from now rather than send a burst.
        self.next = Some(if next < now { now + interval } else { next });
    }

    /// The gaps of a stream passing its camera's video through: nothing until the stall
    /// timeout (the camera's own timing goes out), then the slate, encoded at the camera's
    /// size, until the switch is back on the camera.
    fn fill_passing_through(&mut self, ctx: &mut Context, video: &VideoSwitch, now: Instant) {
        let silent = video
            .camera_silent_for()
            .unwrap_or_else(|| now.duration_since(self.started));
        if self.slate.is_some() && silent < ctx.stall_timeout && video.on() == VideoOn::Camera {
            tracing::info!(stream = %ctx.id, "the camera's video is back: slate off");
            self.slate = None;
            self.next = None;
            return;
        }
        if silent >= ctx.stall_timeout && self.slate.is_none() {
            self.start_slate(ctx);
            if self.slate.is_some() {
                video.want_encoder(true);
                ctx.encoder.request_keyframe();
            }
        }
        if self.slate.is_none() {
            return;
        }
        if self.next.is_some_and(|t| now < t) {
            return;
        }
        let interval = self.interval(ctx);
        let pts = gst::ClockTime::from_nseconds(
            self.timeline
                .filler(ctx.clock(), interval.as_nanos() as u64),
        );
        self.push_slate(ctx, pts, now);
        ctx.audio.follow_video(pts.nseconds());
        let next = self.next.unwrap_or(now) + interval;
        self.next = Some(if next < now { now + interval } else { next });
    }

    /// Sends the slate (redrawn once a second: it shows the time now).
    fn push_slate(&mut self, ctx: &mut Context, pts: gst::ClockTime, now: Instant) {
        let Some(s) = self.slate.as_mut() else {
            return;
        };
        if s.rendered.elapsed() >= Duration::from_secs(1)
            && let Some(b) =
                super::super::slate::render(&s.info, &ctx.id, s.since, SystemTime::now())
        {
            s.buffer = b;
            s.rendered = now;
        }
        if ctx.encoder.push(s.buffer.clone(), &s.info, Some(pts)) {
            ctx.stats.frames_slate.fetch_add(1, Ordering::Relaxed);
            ctx.tap(&s.buffer, &s.info, SystemTime::now());
        }
    }

    fn start_slate(&mut self, ctx: &Context) {
        // The output size is fixed by the first frame (or the config; the camera's size when
        // its video passes through); without it there is nothing to keep alive yet.
        let Some((w, h)) = ctx.encoder.output_size().or_else(|| {
            self.last_pushed
                .as_ref()
                .map(|(_, i)| (i.width(), i.height()))
        }) else {
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
        let Some(buffer) = super::super::slate::render(&info, &ctx.id, since, SystemTime::now())
        else {
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

/// Sends the last frame again, counted as held; whether the encoder took it.
fn push_held(
    ctx: &mut Context,
    buffer: &gst::Buffer,
    info: &gst_video::VideoInfo,
    pts: gst::ClockTime,
) -> bool {
    let taken = ctx.encoder.push(buffer.clone(), info, Some(pts));
    if taken {
        ctx.stats.frames_held.fetch_add(1, Ordering::Relaxed);
    }
    taken
}
