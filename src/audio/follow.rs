//! Which offset (output minus source time) the audio takes from the video's frames.
//!
//! Each live frame lands on the output's frame grid, so its offset is its source phase's
//! distance from the grid plus the source's jitter. The audio follows their average, moved only
//! when the average has moved by more than [`OFFSET_STEP`], so that jitter does not shift the
//! sound packet by packet. Two kinds of move are followed at once instead: a jump past
//! [`OFFSET_JUMP`] (a restarted source), and a wrap, where the video timeline dropped or
//! repeated a frame as the source's phase went round the grid and every frame's offset moved
//! by one interval (two frames in a row more than three quarters of an interval off the
//! average, on the same side).

/// How far the video's average offset moves before the audio follows it (ns).
pub const OFFSET_STEP: u128 = 8_000_000;
/// A video offset this far from the average is a jump, followed at once (ns).
pub const OFFSET_JUMP: u128 = 60_000_000;
/// The average's weight: each frame moves it by 1/this of its difference (about 1 s at 25 fps).
const OFFSET_SMOOTHING: i128 = 25;

/// The offset the audio follows.
#[derive(Debug, Default)]
pub struct VideoOffset {
    /// What the audio uses now.
    applied: Option<i128>,
    /// The average of the frames' offsets.
    average: i128,
    /// The side of the last frame that sat a wrap away from the average.
    wrapping: Option<bool>,
}

impl VideoOffset {
    /// A frame with `offset` (none when its source does not stamp frames) was placed on a grid
    /// of `interval` ns (none without a known rate). Returns the audio's offset.
    pub fn frame(&mut self, offset: Option<i128>, interval: Option<u64>) -> Option<i128> {
        let (Some(applied), Some(new)) = (self.applied, offset) else {
            return self.restart(offset);
        };
        let off = new - self.average;
        if off.unsigned_abs() > OFFSET_JUMP {
            return self.restart(offset);
        }
        let wrap = interval.is_some_and(|i| off.unsigned_abs() > u128::from(i) * 3 / 4);
        let side = off > 0;
        if wrap && self.wrapping == Some(side) {
            return self.restart(offset);
        }
        self.wrapping = wrap.then_some(side);
        self.average += off / OFFSET_SMOOTHING;
        if (self.average - applied).unsigned_abs() > OFFSET_STEP {
            self.applied = Some(self.average);
        }
        self.applied
    }

    /// The offset is `offset` from now on.
    fn restart(&mut self, offset: Option<i128>) -> Option<i128> {
        self.average = offset.unwrap_or(0);
        self.applied = offset;
        self.wrapping = None;
        offset
    }

    /// The encoder restarted: the next frame sets the offset.
    pub fn reset(&mut self) {
        self.restart(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;
    const FRAME: Option<u64> = Some(40_000_000);

    #[test]
    fn jitter_is_averaged_and_moves_the_sound_only_past_the_step() {
        let mut o = VideoOffset::default();
        assert_eq!(o.frame(Some(100 * MS), FRAME), Some(100 * MS));
        // Frames ±25 ms either way (a jittery source on a fixed grid): the sound stays.
        for i in 0..100 {
            let j = if i % 2 == 0 { 25 } else { -25 };
            assert_eq!(o.frame(Some((100 + j) * MS), FRAME), Some(100 * MS));
        }
        // A phase that moves slowly, by 20 ms: followed once it has moved past 8 ms.
        let mut last = None;
        for _ in 0..200 {
            last = o.frame(Some(120 * MS), FRAME);
        }
        let moved = last.unwrap() - 100 * MS;
        assert!((8 * MS..=20 * MS).contains(&moved), "{moved}");
    }

    #[test]
    fn a_wrap_round_the_grid_is_followed_at_once_a_single_outlier_is_not() {
        let mut o = VideoOffset::default();
        o.frame(Some(100 * MS), FRAME);
        // One frame a whole interval off: jitter, or the first of a wrap; the sound waits.
        assert_eq!(o.frame(Some(140 * MS), FRAME), Some(100 * MS));
        assert_eq!(o.frame(Some(101 * MS), FRAME), Some(100 * MS));
        // Two in a row on the same side: a frame was dropped, the sound moves with the picture.
        assert_eq!(o.frame(Some(139 * MS), FRAME), Some(100 * MS));
        assert_eq!(o.frame(Some(141 * MS), FRAME), Some(141 * MS));
        // Alternating sides is not a wrap.
        assert_eq!(o.frame(Some(101 * MS), FRAME), Some(141 * MS));
        assert_eq!(o.frame(Some(180 * MS), FRAME), Some(141 * MS));
        // Without a known rate only jumps are followed at once.
        let mut p = VideoOffset::default();
        p.frame(Some(0), None);
        p.frame(Some(40 * MS), None);
        assert_eq!(p.frame(Some(40 * MS), None), Some(0));
        assert_eq!(p.frame(Some(500 * MS), None), Some(500 * MS));
        // A source that stops stamping, then the encoder's restart: set by the next frame.
        assert_eq!(p.frame(None, None), None);
        assert_eq!(p.frame(Some(7 * MS), None), Some(7 * MS));
        p.reset();
        assert_eq!(p.frame(Some(9 * MS), None), Some(9 * MS));
    }
}
