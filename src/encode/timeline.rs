//! The output timeline of a live stream: smooth timestamps for the encoder, whatever the
//! source does.
//!
//! Live frames keep the spacing of their source's timestamps (an RTSP camera's RTP clock, after
//! the jitter buffer), mapped onto the encoder's own running time, so that decoding and
//! processing jitter does not reach the viewers' timestamps. When the source announces a frame
//! rate, times are also snapped to that frame grid, so that a constant-rate camera gives a
//! constant-rate output even through small timestamp jitter. The grid follows the source's
//! phase: when the source's times sit on average more than [`PHASE_SLACK`] of a frame off the
//! grid (its clock drifts against the announced rate, the jitter buffer re-estimates its skew),
//! the grid moves onto them, so that the picture never strays further than that from the sound,
//! which keeps the source's own times (each such move makes one frame interval an eighth longer
//! or shorter). A live frame that lands one or two slots after the previous one (its source
//! lost a frame or two) can have those slots filled, so that the output keeps a constant rate
//! without waiting for anything. Filler frames (held frames, the slate) follow the previous
//! frame at the frame interval. Whenever the mapped time drifts too far from the encoder's
//! clock (a source restart, a stall, a clock jump) the timeline re-anchors on the clock.
//! Timestamps only ever go forward.

/// Nanoseconds.
type Ns = u64;

/// How far the timeline may drift from the encoder's clock before it re-anchors.
pub const MAX_DRIFT: Ns = 200_000_000;
/// The smallest step between two frames.
const MIN_STEP: Ns = 1_000_000;
/// How far (a fraction of the frame interval: 1/8, 5 ms at 25 fps) the source's average phase
/// may sit off the grid before the grid moves onto it.
pub const PHASE_SLACK: u64 = 8;
/// How many frames the average phase is smoothed over.
const PHASE_SMOOTHING: i128 = 8;

/// Maps source timestamps to output timestamps.
#[derive(Debug, Default)]
pub struct Timeline {
    /// Output time minus source time, while the source is continuous.
    offset: Option<i128>,
    /// The frame grid: its origin and step.
    grid: Option<(Ns, Ns)>,
    /// The source's average distance from the grid (ns, positive when after it).
    phase: i128,
    last: Option<Ns>,
}

impl Timeline {
    /// The output time of a live frame stamped `src` by its source, arriving at `now` on the
    /// encoder's clock; `frame` is the source's frame duration, if it announces a rate.
    pub fn live(&mut self, src: Option<Ns>, now: Ns, frame: Option<Ns>) -> Ns {
        self.live_filling(src, now, frame, 0).1
    }

    /// Like [`Timeline::live`], and also returns the times of the empty grid slots (at most
    /// `max_fill`) between the previous frame and this one, to fill with the previous frame
    /// again before this one: a source that lost a frame still gives a constant-rate output.
    /// Without a known frame rate, or across a re-anchoring, nothing is filled.
    pub fn live_filling(
        &mut self,
        src: Option<Ns>,
        now: Ns,
        frame: Option<Ns>,
        max_fill: u32,
    ) -> (Vec<Ns>, Ns) {
        let Some(src) = src else {
            self.offset = None;
            self.grid = None;
            return (Vec::new(), self.emit(now, MIN_STEP));
        };
        let mapped = self.offset.map(|o| src as i128 + o);
        let t = match mapped {
            Some(t) if (t - now as i128).unsigned_abs() <= u128::from(MAX_DRIFT) => t as Ns,
            _ => {
                // Anchored where the frame will go: now, or after the last frame when filler
                // frames already reached past now (the audio follows this offset exactly).
                let step = frame.filter(|d| *d > 0).unwrap_or(MIN_STEP);
                let at = self.last.map_or(now, |l| now.max(l + step));
                self.offset = Some(at as i128 - src as i128);
                self.grid = None;
                at
            }
        };
        match frame.filter(|d| *d > 0) {
            Some(d) => {
                let (origin, step) = match self.grid {
                    Some((o, s)) if s == d && t >= o => (o, s),
                    _ => {
                        self.grid = Some((t, d));
                        self.phase = 0;
                        (t, d)
                    }
                };
                let slots = (t - origin + step / 2) / step;
                let mut at = origin + slots * step;
                // The source's phase, smoothed; past the slack the grid moves onto it.
                self.phase += (t as i128 - at as i128 - self.phase) / PHASE_SMOOTHING;
                if self.phase.unsigned_abs() > u128::from(step / PHASE_SLACK) {
                    let shift = self.phase;
                    let moved = (origin as i128 + shift).max(0) as Ns;
                    self.grid = Some((moved, step));
                    at = (at as i128 + shift).max(0) as Ns;
                    self.phase = 0;
                }
                let mut fill = Vec::new();
                // Slots are filled only after a frame that sat on the grid (not after a
                // filler that followed the clock), and only whole slots before this frame.
                let off_grid = |last: Ns| {
                    let r = (last as i128 - origin as i128).rem_euclid(i128::from(step));
                    r.min(i128::from(step) - r)
                };
                if let Some(last) = self.last
                    && off_grid(last) <= i128::from(step / 4)
                {
                    let mut next = last + step;
                    while next + step / 2 <= at && fill.len() < max_fill as usize {
                        fill.push(self.emit(next, step));
                        next += step;
                    }
                }
                (fill, self.emit(at, step))
            }
            None => {
                self.grid = None;
                (Vec::new(), self.emit(t, MIN_STEP))
            }
        }
    }

    /// The output time of a filler frame, `interval` after the previous one.
    pub fn filler(&mut self, now: Ns, interval: Ns) -> Ns {
        let t = match self.last {
            Some(last) if (last + interval).abs_diff(now) <= MAX_DRIFT => last + interval,
            _ => {
                self.grid = None;
                now
            }
        };
        self.emit(t, MIN_STEP)
    }

    /// Emits `t`, or the next free step after the last time if `t` is not after it.
    fn emit(&mut self, t: Ns, step: Ns) -> Ns {
        let t = match self.last {
            Some(last) if t < last + MIN_STEP => last + step.max(MIN_STEP),
            _ => t,
        };
        self.last = Some(t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Ns = 1_000_000;

    #[test]
    fn live_frames_keep_their_source_spacing_despite_arrival_jitter() {
        let mut t = Timeline::default();
        let arrivals = [1000, 1052, 1075, 1123, 1160];
        let out: Vec<Ns> = arrivals
            .iter()
            .enumerate()
            .map(|(i, a)| t.live(Some(5000 * MS + i as Ns * 40 * MS), a * MS, None))
            .collect();
        assert_eq!(out, [1000 * MS, 1040 * MS, 1080 * MS, 1120 * MS, 1160 * MS]);
    }

    #[test]
    fn a_known_frame_rate_snaps_source_jitter_to_the_grid() {
        let mut t = Timeline::default();
        // Source timestamps off the 40 ms grid by a few ms either way.
        let src = [0, 41, 79, 122, 160, 198];
        let out: Vec<Ns> = src
            .iter()
            .map(|s| t.live(Some(s * MS), 1000 * MS + s * MS, Some(40 * MS)))
            .collect();
        assert_eq!(out, [1000, 1040, 1080, 1120, 1160, 1200].map(|v| v * MS));
        // Two frames in one slot: the second takes the next slot.
        assert_eq!(t.live(Some(201 * MS), 1201 * MS, Some(40 * MS)), 1240 * MS);
    }

    #[test]
    fn the_grid_follows_a_source_whose_clock_drifts_so_picture_stays_near_sound() {
        // A camera announcing 25 fps whose clock runs 1% fast against ours, or slow: a fixed
        // grid would put its frames up to half a frame (20 ms) away from their own times, and
        // so from their sound, which keeps those times.
        for step_us in [40_400u64, 39_600] {
            let mut t = Timeline::default();
            let mut last = 0;
            for i in 0..1000u64 {
                let src = i * step_us * 1000;
                let out = t.live(Some(src), 1000 * MS + src, Some(40 * MS));
                let off = (out as i128 - (1000 * MS + src) as i128).abs();
                assert!(
                    off <= 10 * MS as i128,
                    "frame {i}: {off} ns off its own time"
                );
                if i > 0 {
                    assert!(
                        (34 * MS..=46 * MS).contains(&(out - last)),
                        "frame {i}: {}",
                        out - last
                    );
                }
                last = out;
            }
        }
    }

    #[test]
    fn slots_a_source_skipped_are_filled_up_to_the_limit_and_only_on_the_grid() {
        let mut t = Timeline::default();
        let f = Some(40 * MS);
        assert_eq!(
            t.live_filling(Some(0), 1000 * MS, f, 2),
            (vec![], 1000 * MS)
        );
        // One frame lost: its slot is filled before the next.
        assert_eq!(
            t.live_filling(Some(80 * MS), 1080 * MS, f, 2),
            (vec![1040 * MS], 1080 * MS)
        );
        // On time: nothing to fill.
        assert_eq!(
            t.live_filling(Some(120 * MS), 1120 * MS, f, 2),
            (vec![], 1120 * MS)
        );
        // Three lost: two filled (the limit), the live frame still at its own slot.
        assert_eq!(
            t.live_filling(Some(280 * MS), 1280 * MS, f, 2),
            (vec![1160 * MS, 1200 * MS], 1280 * MS)
        );
        // Slots already taken by held frames are not filled again.
        assert_eq!(t.filler(1321 * MS, 40 * MS), 1320 * MS);
        assert_eq!(
            t.live_filling(Some(360 * MS), 1360 * MS, f, 2),
            (vec![], 1360 * MS)
        );
        // Without a frame rate: nothing is filled.
        let mut u = Timeline::default();
        u.live_filling(Some(0), 1000 * MS, None, 2);
        assert_eq!(
            u.live_filling(Some(80 * MS), 1080 * MS, None, 2),
            (vec![], 1080 * MS)
        );
    }

    #[test]
    fn fillers_follow_at_the_interval_and_a_restarted_source_re_anchors() {
        let mut t = Timeline::default();
        assert_eq!(t.live(Some(0), 100 * MS, None), 100 * MS);
        assert_eq!(t.filler(141 * MS, 40 * MS), 140 * MS);
        assert_eq!(t.filler(179 * MS, 40 * MS), 180 * MS);
        // Long silence: fillers re-anchor on the clock.
        assert_eq!(t.filler(2000 * MS, 40 * MS), 2000 * MS);
        // The source comes back with timestamps from a new epoch.
        assert_eq!(t.live(Some(7 * MS), 2030 * MS, None), 2030 * MS);
        assert_eq!(t.live(Some(47 * MS), 2075 * MS, None), 2070 * MS);
        // Never backwards, never equal.
        assert_eq!(t.live(Some(47 * MS), 2076 * MS, None), 2071 * MS);
        assert_eq!(t.live(None, 1000 * MS, None), 2072 * MS);
    }
}
