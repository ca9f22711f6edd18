//! The output timeline of a live stream: smooth timestamps for the encoder, whatever the
//! source does.
//!
//! Live frames keep the spacing of their source's timestamps (an RTSP camera's RTP clock, after
//! the jitter buffer), mapped onto the encoder's own running time, so that decoding and
//! processing jitter does not reach the viewers' timestamps. Filler frames (held frames, the
//! slate) follow the previous frame at the frame interval. Whenever the mapped time drifts too
//! far from the encoder's clock (a source restart, a stall, a clock jump) the timeline
//! re-anchors on the clock. Timestamps only ever go forward.

/// Nanoseconds.
type Ns = u64;

/// How far the timeline may drift from the encoder's clock before it re-anchors.
pub const MAX_DRIFT: Ns = 200_000_000;
/// The smallest step between two frames.
const MIN_STEP: Ns = 1_000_000;

/// Maps source timestamps to output timestamps.
#[derive(Debug, Default)]
pub struct Timeline {
    /// Output time minus source time, while the source is continuous.
    offset: Option<i128>,
    last: Option<Ns>,
}

impl Timeline {
    /// The output time of a live frame stamped `src` by its source, arriving at `now` on the
    /// encoder's clock.
    pub fn live(&mut self, src: Option<Ns>, now: Ns) -> Ns {
        let Some(src) = src else {
            self.offset = None;
            return self.emit(now);
        };
        let mapped = self.offset.map(|o| src as i128 + o);
        let t = match mapped {
            Some(t) if (t - now as i128).unsigned_abs() <= u128::from(MAX_DRIFT) => t as Ns,
            _ => {
                self.offset = Some(now as i128 - src as i128);
                now
            }
        };
        self.emit(t)
    }

    /// The output time of a filler frame, `interval` after the previous one.
    pub fn filler(&mut self, now: Ns, interval: Ns) -> Ns {
        let t = match self.last {
            Some(last) if (last + interval).abs_diff(now) <= MAX_DRIFT => last + interval,
            _ => now,
        };
        // The source's mapping is no longer current: the next live frame re-anchors if needed.
        self.emit(t)
    }

    fn emit(&mut self, t: Ns) -> Ns {
        let t = match self.last {
            Some(last) if t < last + MIN_STEP => last + MIN_STEP,
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
            .map(|(i, a)| t.live(Some(5000 * MS + i as Ns * 40 * MS), a * MS))
            .collect();
        assert_eq!(out, [1000 * MS, 1040 * MS, 1080 * MS, 1120 * MS, 1160 * MS]);
    }

    #[test]
    fn fillers_follow_at_the_interval_and_a_restarted_source_re_anchors() {
        let mut t = Timeline::default();
        assert_eq!(t.live(Some(0), 100 * MS), 100 * MS);
        assert_eq!(t.filler(141 * MS, 40 * MS), 140 * MS);
        assert_eq!(t.filler(179 * MS, 40 * MS), 180 * MS);
        // Long silence: fillers re-anchor on the clock.
        assert_eq!(t.filler(2000 * MS, 40 * MS), 2000 * MS);
        // The source comes back with timestamps from a new epoch.
        assert_eq!(t.live(Some(7 * MS), 2030 * MS), 2030 * MS);
        assert_eq!(t.live(Some(47 * MS), 2075 * MS), 2070 * MS);
        // Never backwards, never equal.
        assert_eq!(t.live(Some(47 * MS), 2076 * MS), 2071 * MS);
        assert_eq!(t.live(None, 1000 * MS), 2072 * MS);
    }
}
