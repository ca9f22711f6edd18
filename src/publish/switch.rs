//! The video switch of a stream that passes its camera's own H.264 through: which of the two
//! sources of access units the outputs get, and on which timeline.
//!
//! ```text
//! camera access units (ingest thread) ──┐
//!                                       ├─▶ VideoSwitch ─▶ Fanout ─▶ every output
//! encoder output (slate, or the whole ──┘   (one timeline, one source at a time,
//!   video when it cannot pass through)        each switch on a key frame)
//! ```
//! The camera's units are moved onto the stream's output clock (a monotonic clock started
//! with the stream) keeping their spacing, PTS and DTS alike (B-frames keep their order); the
//! encoder is fed on the same clock. A switch happens only on a key frame of the source
//! switched to: until it comes, the source switched from goes on (the slate) or the outputs
//! wait (the camera's units before its first key frame are dropped and counted). Decode
//! timestamps only ever go forward.
//!
//! [`Switch`] is the pure state machine; [`VideoSwitch`] wraps it with the fan-out, the audio
//! track and the counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audio::AudioTrack;
use crate::encode::MAX_DRIFT;
use crate::supervise::lock;

use super::Fanout;

/// Nanoseconds.
type Ns = u64;

/// The smallest step between two decode timestamps.
const MIN_STEP: Ns = 1_000_000;

/// Which source the outputs get now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum On {
    /// Nothing published yet.
    #[default]
    Nothing,
    /// The camera's own access units.
    Camera,
    /// The stream's encoder (the NO SIGNAL slate, or every frame when encoding).
    Encoder,
}

/// What to do with an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Publish it at these output times.
    Publish {
        /// Presentation time.
        pts: Ns,
        /// Decode time.
        dts: Ns,
    },
    /// Not this source's turn, or it waits for a key frame: drop it.
    Drop,
}

/// The switch's state: pure, no clock of its own (times come in).
#[derive(Debug, Default)]
pub struct Switch {
    on: On,
    /// The encoder is wanted (the camera is silent, or cannot pass through).
    want_encoder: bool,
    /// Output time minus camera time, while the camera is continuous.
    offset: Option<i128>,
    last_dts: Option<Ns>,
}

impl Switch {
    /// Which source is on.
    pub fn on(&self) -> On {
        self.on
    }

    /// Asks for the encoder (true: the slate, or encoding) or for the camera (false). The
    /// switch happens at the next key frame of the source asked for.
    pub fn want_encoder(&mut self, want: bool) {
        self.want_encoder = want;
    }

    /// Whether the encoder is asked for.
    pub fn encoder_wanted(&self) -> bool {
        self.want_encoder
    }

    /// A camera access unit with its source times (`dts` falls back to `pts`), arriving at
    /// `now` on the output clock.
    pub fn camera(&mut self, now: Ns, pts: Option<Ns>, dts: Option<Ns>, key: bool) -> Verdict {
        let Some(src_dts) = dts.or(pts) else {
            return Verdict::Drop;
        };
        // A switch to the camera (from the slate, or at the start) waits for its key frame;
        // while the slate is asked for but has not started, the camera goes on.
        if self.on != On::Camera && !key {
            return Verdict::Drop;
        }
        let mapped = self.offset.map(|o| src_dts as i128 + o);
        let floor = self.last_dts.map_or(0, |l| l + MIN_STEP);
        let out_dts = match mapped {
            Some(t)
                if self.on == On::Camera
                    && (t - now as i128).unsigned_abs() <= u128::from(MAX_DRIFT)
                    && t >= floor as i128 =>
            {
                t as Ns
            }
            _ => {
                // (Re)anchored: on a switch, after a restart of the camera, or when its clock
                // drifted away from ours.
                let at = now.max(floor);
                self.offset = Some(at as i128 - src_dts as i128);
                at
            }
        };
        let offset = out_dts as i128 - src_dts as i128;
        let out_pts = pts.map_or(out_dts, |p| (p as i128 + offset).max(out_dts as i128) as Ns);
        self.on = On::Camera;
        self.want_encoder = false;
        self.last_dts = Some(out_dts);
        Verdict::Publish {
            pts: out_pts,
            dts: out_dts,
        }
    }

    /// An encoder access unit, already on the output clock.
    pub fn encoder(&mut self, pts: Option<Ns>, dts: Option<Ns>, key: bool) -> Verdict {
        if !self.want_encoder || (self.on != On::Encoder && !key) {
            return Verdict::Drop;
        }
        let Some(dts) = dts.or(pts) else {
            return Verdict::Drop;
        };
        let floor = self.last_dts.map_or(0, |l| l + MIN_STEP);
        if dts < floor && self.on == On::Encoder {
            return Verdict::Drop;
        }
        // On a switch the encoder's first unit may sit just before the camera's last one
        // (B-frames): moved after it.
        let shift = floor.saturating_sub(dts);
        let out_dts = dts + shift;
        let out_pts = pts.map_or(out_dts, |p| (p + shift).max(out_dts));
        self.on = On::Encoder;
        self.last_dts = Some(out_dts);
        Verdict::Publish {
            pts: out_pts,
            dts: out_dts,
        }
    }
}

/// Counters of a switch.
#[derive(Debug, Default)]
pub struct SwitchStats {
    /// Camera access units published.
    pub camera_units: AtomicU64,
    /// Encoder access units published.
    pub encoder_units: AtomicU64,
    /// Access units dropped (waiting for a key frame to switch, or not their turn).
    pub dropped: AtomicU64,
    /// Switches between the two.
    pub switches: AtomicU64,
}

/// A stream's video switch with its fan-out (see the module's documentation).
pub struct VideoSwitch {
    fanout: Arc<Fanout>,
    audio: Arc<AudioTrack>,
    origin: Instant,
    state: Mutex<SwitchState>,
    stats: SwitchStats,
}

#[derive(Default)]
struct SwitchState {
    switch: Switch,
    /// When the camera's last access unit came.
    last_camera: Option<Instant>,
    /// The latest output PTS (for the audio's silence).
    latest_pts: Ns,
    /// Why the camera's video cannot pass through, when it cannot.
    refused: Option<String>,
}

impl VideoSwitch {
    /// A switch publishing into `fanout`, placing `audio` where the camera's video goes.
    pub fn new(fanout: Arc<Fanout>, audio: Arc<AudioTrack>) -> Arc<Self> {
        Arc::new(Self {
            fanout,
            audio,
            origin: Instant::now(),
            state: Mutex::default(),
            stats: SwitchStats::default(),
        })
    }

    /// The output clock now: nanoseconds since the stream started.
    pub fn now(&self) -> Ns {
        self.origin.elapsed().as_nanos() as Ns
    }

    /// Its counters.
    pub fn stats(&self) -> &SwitchStats {
        &self.stats
    }

    /// Which source is on now.
    pub fn on(&self) -> On {
        lock(&self.state).switch.on()
    }

    /// How long since the camera's last access unit (`None`: none yet).
    pub fn camera_silent_for(&self) -> Option<Duration> {
        lock(&self.state).last_camera.map(|t| t.elapsed())
    }

    /// Asks for the encoder (the slate) or back for the camera.
    pub fn want_encoder(&self, want: bool) {
        lock(&self.state).switch.want_encoder(want);
    }

    /// The source's video cannot pass through (`Some(why)`): the encoder's output goes out
    /// from its next key frame. Or it can again (`None`): the camera takes over at its first
    /// key frame.
    pub fn set_refused(&self, why: Option<String>) {
        let mut s = lock(&self.state);
        if why.is_some() {
            s.switch.want_encoder(true);
        }
        if s.refused != why {
            match &why {
                Some(w) => tracing::warn!("video cannot pass through: {w}; encoding it"),
                None => tracing::debug!("video can pass through"),
            }
            s.refused = why;
        }
    }

    /// Why the video does not pass through now, if it does not.
    pub fn refused(&self) -> Option<String> {
        lock(&self.state).refused.clone()
    }

    /// One of the camera's access units (H.264 byte-stream, one unit, source times); whether
    /// it went to the outputs.
    pub fn camera(&self, sample: &gst::Sample) -> bool {
        let Some(buffer) = sample.buffer() else {
            return false;
        };
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let (pts, dts) = (
            buffer.pts().map(gst::ClockTime::nseconds),
            buffer.dts().map(gst::ClockTime::nseconds),
        );
        let now = self.now();
        let mut s = lock(&self.state);
        s.last_camera = Some(Instant::now());
        if s.refused.is_some() {
            return false;
        }
        let before = s.switch.on();
        match s.switch.camera(now, pts, dts, key) {
            Verdict::Publish {
                pts: out_pts,
                dts: out_dts,
            } => {
                if before != On::Camera {
                    self.switched("camera", before);
                }
                s.latest_pts = s.latest_pts.max(out_pts);
                let latest = s.latest_pts;
                // Under the lock: units go out in order, whichever thread brings them.
                self.publish(sample, out_pts, out_dts, buffer.pts());
                self.stats.camera_units.fetch_add(1, Ordering::Relaxed);
                drop(s);
                // The camera's sound goes where its video went.
                let offset = pts.map(|p| i128::from(out_pts) - i128::from(p));
                // The camera's own units are not snapped to a grid.
                self.audio.video_anchor(offset, None, now);
                self.audio.follow_video(latest);
                true
            }
            Verdict::Drop => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// An access unit of the stream's encoder (its times on [`VideoSwitch::now`]'s clock, or
    /// the encoder's own when the stream encodes everything).
    pub fn encoded(&self, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let mut s = lock(&self.state);
        let before = s.switch.on();
        match s.switch.encoder(
            buffer.pts().map(gst::ClockTime::nseconds),
            buffer.dts().map(gst::ClockTime::nseconds),
            key,
        ) {
            Verdict::Publish { pts, dts } => {
                if before != On::Encoder {
                    self.switched("encoder", before);
                }
                s.latest_pts = s.latest_pts.max(pts);
                // The encoder's units carry their source frame's mark from its input.
                self.publish(sample, pts, dts, None);
                self.stats.encoder_units.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Drop => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn switched(&self, to: &str, from: On) {
        if from != On::Nothing {
            self.stats.switches.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!("outputs switched to the {to}'s video (from {from:?})");
    }

    /// Sends a unit out at `pts`/`dts`, marked as showing the source frame of `source`.
    fn publish(&self, sample: &gst::Sample, pts: Ns, dts: Ns, source: Option<gst::ClockTime>) {
        let Some(mut buffer) = sample.buffer_owned() else {
            return;
        };
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_dts(gst::ClockTime::from_nseconds(dts));
            if let Some(source) = source {
                crate::frame::source_pts::tag(b, source);
            }
        }
        let caps = sample.caps_owned();
        let mut out = gst::Sample::builder().buffer(&buffer);
        if let Some(caps) = &caps {
            out = out.caps(caps);
        }
        self.fanout.publish(&out.build());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Ns = 1_000_000;

    fn at(v: Verdict) -> (Ns, Ns) {
        match v {
            Verdict::Publish { pts, dts } => (pts, dts),
            Verdict::Drop => panic!("dropped"),
        }
    }

    #[test]
    fn the_camera_starts_on_a_key_frame_keeps_its_spacing_and_its_reordering() {
        let mut s = Switch::default();
        // Before its first key frame nothing goes out.
        assert_eq!(s.camera(1000 * MS, Some(0), Some(0), false), Verdict::Drop);
        // Anchored at now on the decode time; PTS keeps its distance (a B-frame stream).
        let (p, d) = at(s.camera(1000 * MS, Some(80 * MS), Some(0), true));
        assert_eq!((p, d), (1080 * MS, 1000 * MS));
        // Arrival jitter does not move the times: the source's spacing is kept.
        let (p, d) = at(s.camera(1047 * MS, Some(160 * MS), Some(40 * MS), false));
        assert_eq!((p, d), (1160 * MS, 1040 * MS));
        let (p, d) = at(s.camera(1071 * MS, Some(120 * MS), Some(80 * MS), false));
        assert_eq!((p, d), (1120 * MS, 1080 * MS));
        assert_eq!(s.on(), On::Camera);
        // The encoder's units are not wanted while the camera is on.
        assert_eq!(
            s.encoder(Some(1100 * MS), Some(1100 * MS), true),
            Verdict::Drop
        );
    }

    #[test]
    fn the_slate_takes_over_on_its_key_frame_and_the_camera_comes_back_on_its_own() {
        let mut s = Switch::default();
        at(s.camera(1000 * MS, Some(0), Some(0), true));
        at(s.camera(1040 * MS, Some(40 * MS), Some(40 * MS), false));
        // The camera went silent: the slate is asked for; the camera goes on until the
        // slate's key frame.
        s.want_encoder(true);
        assert_eq!(
            s.encoder(Some(3000 * MS), Some(3000 * MS), false),
            Verdict::Drop
        );
        assert_eq!(
            at(s.encoder(Some(3040 * MS), Some(3040 * MS), true)).1,
            3040 * MS
        );
        assert_eq!(s.on(), On::Encoder);
        at(s.encoder(Some(3080 * MS), Some(3080 * MS), false));
        // The camera is back (its clock restarted at 0): its delta frames wait for its key
        // frame; then it is re-anchored after the slate, and the slate is dropped.
        assert_eq!(s.camera(3100 * MS, Some(0), Some(0), false), Verdict::Drop);
        let (_, d) = at(s.camera(3110 * MS, Some(40 * MS), Some(40 * MS), true));
        assert_eq!(d, 3110 * MS);
        assert_eq!(s.on(), On::Camera);
        assert!(!s.encoder_wanted());
        assert_eq!(
            s.encoder(Some(3120 * MS), Some(3120 * MS), false),
            Verdict::Drop
        );
    }

    #[test]
    fn decode_times_only_go_forward_across_switches_and_clock_jumps() {
        let mut s = Switch::default();
        let mut last = 0;
        let mut check = |v: Verdict| {
            if let Verdict::Publish { pts, dts } = v {
                assert!(dts > last || last == 0, "{dts} after {last}");
                assert!(pts >= dts);
                last = dts;
            }
        };
        check(s.camera(1000 * MS, Some(200 * MS), Some(100 * MS), true));
        // The camera's units run 150 ms ahead of the clock (a burst): still its spacing.
        check(s.camera(1000 * MS, Some(300 * MS), Some(250 * MS), false));
        // Its clock jumps back (a restart without a gap): re-anchored after the last.
        check(s.camera(1010 * MS, Some(10 * MS), Some(0), true));
        // The encoder's first unit sits before the camera's last: moved after it.
        s.want_encoder(true);
        check(s.encoder(Some(1000 * MS), Some(1000 * MS), true));
        check(s.encoder(Some(1040 * MS), Some(1040 * MS), false));
        // A unit of the encoder behind the last one sent is dropped.
        assert_eq!(
            s.encoder(Some(900 * MS), Some(900 * MS), false),
            Verdict::Drop
        );
    }
}
