//! The output timeline of a live stream: smooth timestamps for the encoder, whatever the
//! source does.
//!
//! Live frames keep the spacing of their source's timestamps (an RTSP camera's RTP clock, after
//! the jitter buffer), mapped onto the encoder's own running time, so that decoding and
//! processing jitter does not reach the viewers' timestamps. When the source announces a frame
//! rate, the output is that constant rate exactly: times sit on a fixed frame grid, as a
//! recorder or a player probing the stream expects (a jitter buffer that re-estimates its
//! skew at start-up makes the source's times run a few per cent fast or slow for a second;
//! the output's do not). Each live frame takes the slot after the previous frame's while its
//! own time is within half an interval plus [`SLOT_HYSTERESIS`] of that slot, so that a source
//! whose phase sits near the middle between two slots does not flap between them. A frame
//! further after it (its source lost a frame or two, or runs slow) takes its nearest slot, and
//! the slots it skipped can be filled with the previous frame, so the output keeps its rate
//! without waiting for anything; a frame further before it (the source runs faster than it
//! announced) finds its slot taken and is dropped. A frame's output time is thus within 30 ms
//! of its own at 25 fps, and the sound follows the pictures' average offset
//! (`crate::audio`), so that a phase anywhere on the grid keeps them together. Filler frames
//! (held frames, the slate) follow the previous frame at the frame interval. Whenever the
//! mapped time drifts too far from the encoder's clock (a source restart, a stall, a clock
//! jump) the timeline re-anchors on the clock. Timestamps only ever go forward.

/// Nanoseconds.
type Ns = u64;

/// How far the timeline may drift from the encoder's clock before it re-anchors.
pub const MAX_DRIFT: Ns = 200_000_000;
/// The smallest step between two frames.
const MIN_STEP: Ns = 1_000_000;
/// How far past half an interval (a fraction of the interval: 1/4, 10 ms at 25 fps) a live
/// frame's time may sit from the slot after the previous frame's and still take it.
pub const SLOT_HYSTERESIS: u64 = 4;

/// Where a live frame goes on the output timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Encoded at `at`, after the previous frame again at each time of `fill`.
    At {
        /// The times of skipped slots, filled with the previous frame.
        fill: Vec<Ns>,
        /// The frame's own time.
        at: Ns,
    },
    /// Its slot is taken by the previous frame: the source runs ahead of its announced rate,
    /// and this frame is not encoded.
    Taken,
}

impl Slot {
    /// The frame's time, unless it was dropped.
    pub fn at(&self) -> Option<Ns> {
        match self {
            Slot::At { at, .. } => Some(*at),
            Slot::Taken => None,
        }
    }
}

/// Maps source timestamps to output timestamps.
#[derive(Debug, Default)]
pub struct Timeline {
    /// Output time minus source time, while the source is continuous.
    offset: Option<i128>,
    /// The frame grid: its origin and step.
    grid: Option<(Ns, Ns)>,
    last: Option<Ns>,
}

impl Timeline {
    /// The output time of a live frame stamped `src` by its source, arriving at `now` on the
    /// encoder's clock; `frame` is the source's frame duration, if it announces a rate. `None`
    /// when its slot is taken ([`Slot::Taken`]).
    pub fn live(&mut self, src: Option<Ns>, now: Ns, frame: Option<Ns>) -> Option<Ns> {
        self.live_filling(src, now, frame, 0).at()
    }

    /// Like [`Timeline::live`], and also gives the times of the empty grid slots (at most
    /// `max_fill`) between the previous frame and this one, to fill with the previous frame
    /// again before this one: a source that lost a frame still gives a constant-rate output.
    /// Without a known frame rate, or across a re-anchoring, nothing is filled.
    pub fn live_filling(
        &mut self,
        src: Option<Ns>,
        now: Ns,
        frame: Option<Ns>,
        max_fill: u32,
    ) -> Slot {
        let Some(src) = src else {
            self.offset = None;
            self.grid = None;
            return Slot::At {
                fill: Vec::new(),
                at: self.emit(now, MIN_STEP),
            };
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
            Some(d) => self.on_grid(t, d, max_fill),
            None => {
                self.grid = None;
                Slot::At {
                    fill: Vec::new(),
                    at: self.emit(t, MIN_STEP),
                }
            }
        }
    }

    /// Places a frame mapped to `t` on the grid of `step`.
    fn on_grid(&mut self, t: Ns, step: Ns, max_fill: u32) -> Slot {
        let origin = match self.grid {
            Some((o, s)) if s == step && t >= o => o,
            _ => {
                self.grid = Some((t, step));
                t
            }
        };
        let slot_of = |x: Ns| origin + (x - origin + step / 2) / step * step;
        // The slot after the previous frame's, when that frame sat on this grid (not a filler
        // that followed the clock, not a frame of an earlier grid).
        let after_previous = self
            .last
            .filter(|&l| l + step / 4 >= origin && slot_of(l.max(origin)).abs_diff(l) <= step / 4)
            .map(|l| slot_of(l.max(origin)) + step);
        let at = match after_previous {
            Some(next) => {
                let reach = i128::from(step / 2 + step / SLOT_HYSTERESIS);
                let d = t as i128 - next as i128;
                if d < -reach {
                    return Slot::Taken;
                }
                if d <= reach { next } else { slot_of(t) }
            }
            None => slot_of(t),
        };
        // Only whole slots before this frame are filled.
        let mut fill = Vec::new();
        if let Some(mut next) = after_previous {
            while next + step / 2 <= at && fill.len() < max_fill as usize {
                fill.push(self.emit(next, step));
                next += step;
            }
        }
        Slot::At {
            fill,
            at: self.emit(at, step),
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
            .map(|(i, a)| {
                t.live(Some(5000 * MS + i as Ns * 40 * MS), a * MS, None)
                    .unwrap()
            })
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
            .map(|s| {
                t.live(Some(s * MS), 1000 * MS + s * MS, Some(40 * MS))
                    .unwrap()
            })
            .collect();
        assert_eq!(out, [1000, 1040, 1080, 1120, 1160, 1200].map(|v| v * MS));
        // Two frames in one slot: the second finds it taken.
        assert_eq!(t.live(Some(201 * MS), 1201 * MS, Some(40 * MS)), None);
        // A source whose phase sits half an interval off the grid, jittering by ±4 ms, keeps
        // to consecutive slots instead of flapping between neighbours.
        for (i, jitter) in [4i64, -4, 3, -4, 4, -3].into_iter().enumerate() {
            let s = (240 + 40 * i as i64 + 20 + jitter) as Ns * MS;
            let out = t.live(Some(s), 1000 * MS + s, Some(40 * MS));
            assert_eq!(out, Some((1240 + 40 * i as Ns) * MS), "frame {i}");
        }
    }

    #[test]
    fn a_source_off_its_announced_rate_keeps_the_output_rate_exact() {
        // A camera announcing 25 fps whose clock runs 2% fast against ours, or slow (as a
        // jitter buffer's times do for a second while it estimates its skew): the output stays
        // on the 40 ms grid, a fast source loses a frame now and then, a slow one has a frame
        // filled, and each frame is within half an interval and the hysteresis of its own time.
        for (step_us, taken, filled) in [(39_200u64, 20usize, 0usize), (40_800, 0, 20)] {
            let mut t = Timeline::default();
            let (mut dropped, mut fills) = (0usize, 0usize);
            let mut last = None;
            for i in 0..1000u64 {
                let src = i * step_us * 1000;
                let Slot::At { fill, at } =
                    t.live_filling(Some(src), 1000 * MS + src, Some(40 * MS), 2)
                else {
                    dropped += 1;
                    continue;
                };
                fills += fill.len();
                for x in fill.iter().chain([&at]) {
                    assert_eq!(
                        (x - 1000 * MS) % (40 * MS),
                        0,
                        "frame {i}: {x} off the grid"
                    );
                    if let Some(l) = last {
                        assert_eq!(x - l, 40 * MS, "frame {i}: a gap or a step back");
                    }
                    last = Some(*x);
                }
                let off = (at as i128 - (1000 * MS + src) as i128).abs();
                assert!(
                    off <= 30 * MS as i128,
                    "frame {i}: {off} ns off its own time"
                );
            }
            assert!(
                dropped.abs_diff(taken) + fills.abs_diff(filled) <= 1,
                "{step_us} us: {dropped} dropped, {fills} filled"
            );
        }
    }

    #[test]
    fn slots_a_source_skipped_are_filled_up_to_the_limit_and_only_on_the_grid() {
        let mut t = Timeline::default();
        let f = Some(40 * MS);
        let at = |fill: Vec<Ns>, at: Ns| Slot::At { fill, at };
        assert_eq!(
            t.live_filling(Some(0), 1000 * MS, f, 2),
            at(vec![], 1000 * MS)
        );
        // One frame lost: its slot is filled before the next.
        assert_eq!(
            t.live_filling(Some(80 * MS), 1080 * MS, f, 2),
            at(vec![1040 * MS], 1080 * MS)
        );
        // On time: nothing to fill.
        assert_eq!(
            t.live_filling(Some(120 * MS), 1120 * MS, f, 2),
            at(vec![], 1120 * MS)
        );
        // Three lost: two filled (the limit), the live frame still at its own slot.
        assert_eq!(
            t.live_filling(Some(280 * MS), 1280 * MS, f, 2),
            at(vec![1160 * MS, 1200 * MS], 1280 * MS)
        );
        // Slots already taken by held frames are not filled again.
        assert_eq!(t.filler(1321 * MS, 40 * MS), 1320 * MS);
        assert_eq!(
            t.live_filling(Some(360 * MS), 1360 * MS, f, 2),
            at(vec![], 1360 * MS)
        );
        // Without a frame rate: nothing is filled.
        let mut u = Timeline::default();
        u.live_filling(Some(0), 1000 * MS, None, 2);
        assert_eq!(
            u.live_filling(Some(80 * MS), 1080 * MS, None, 2),
            at(vec![], 1080 * MS)
        );
    }

    #[test]
    fn fillers_follow_at_the_interval_and_a_restarted_source_re_anchors() {
        let mut t = Timeline::default();
        assert_eq!(t.live(Some(0), 100 * MS, None), Some(100 * MS));
        assert_eq!(t.filler(141 * MS, 40 * MS), 140 * MS);
        assert_eq!(t.filler(179 * MS, 40 * MS), 180 * MS);
        // Long silence: fillers re-anchor on the clock.
        assert_eq!(t.filler(2000 * MS, 40 * MS), 2000 * MS);
        // The source comes back with timestamps from a new epoch.
        assert_eq!(t.live(Some(7 * MS), 2030 * MS, None), Some(2030 * MS));
        assert_eq!(t.live(Some(47 * MS), 2075 * MS, None), Some(2070 * MS));
        // Never backwards, never equal.
        assert_eq!(t.live(Some(47 * MS), 2076 * MS, None), Some(2071 * MS));
        assert_eq!(t.live(None, 1000 * MS, None), Some(2072 * MS));
    }
}
