//! Where audio packets go on a stream's output timeline: the video's.
//!
//! The video timeline ([`crate::encode::Timeline`]) maps the source's timestamps onto the
//! encoder's clock with an offset, re-anchored when the source restarts or drifts. Audio from
//! the same source carries timestamps of the same clock, so an audio packet goes to its source
//! time plus *the video's current offset*: sound and picture stay as far apart as the camera
//! sent them, through decoding, processing and re-encoding, whatever those cost.
//!
//! A packet is dropped when it cannot be placed: before the video has an offset, when it lands
//! too far from the encoder's clock (the offset is the previous source run's, until the first
//! video frame of the new run re-anchors it), or when it would overlap the packet before it
//! (times only go forward). While no audio comes (NO SIGNAL, a camera whose microphone went
//! quiet) the track is filled with silent packets a little behind the video, so that players
//! and push servers keep going; a gap longer than [`JUMP_AFTER`] is skipped, not filled in a
//! burst.

/// Nanoseconds.
type Ns = u64;

/// How far behind the encoder's clock a packet may land (as the video timeline allows).
pub const MAX_BEHIND: Ns = crate::encode::MAX_DRIFT;
/// How far ahead of the encoder's clock a packet may land: a file's demuxer, or a camera whose
/// audio is captured before its video, hands audio over early.
pub const MAX_AHEAD: Ns = 1_000_000_000;
/// Audio quiet this long (no packet arrived) while the video goes on is filled with silence.
pub const SILENCE_AFTER: Ns = 250_000_000;
/// Silence is made up to this far behind the video, so that a packet that was only late still
/// finds its place.
pub const SILENCE_BEHIND: Ns = 150_000_000;
/// A hole longer than this (the encoder's clock jumped, the machine was suspended) is skipped.
pub const JUMP_AFTER: Ns = 600_000_000;

/// A packet this close to the end of the previous one follows it without a hole (ns).
const SNAP: Ns = 2_000_000;

/// Where a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Its output time.
    pub at: Ns,
    /// It does not follow the previous packet: a hole, or a shift, before it. Marked on the
    /// packet, so that a payloader that counts samples (G.711, L16) takes its time from it
    /// again instead of drifting.
    pub discont: bool,
}

/// Why a packet was not placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// No video frame has set the offset yet.
    NoVideo,
    /// It lands too far from the encoder's clock.
    OffClock,
    /// It would overlap the previous packet (or silence already sent).
    Overlap,
}

/// The end of the audio sent so far, on the output timeline.
#[derive(Debug, Default)]
pub struct AudioTimeline {
    end: Option<Ns>,
}

impl AudioTimeline {
    /// The output time of a packet of `dur` stamped `src` by its source, with the video's
    /// current `offset` (output minus source), the encoder's clock at `now`.
    pub fn place(
        &mut self,
        src: Ns,
        dur: Ns,
        offset: Option<i128>,
        now: Ns,
    ) -> Result<Placed, Dropped> {
        let offset = offset.ok_or(Dropped::NoVideo)?;
        let mapped = src as i128 + offset;
        let now = now as i128;
        if mapped < now - MAX_BEHIND as i128 || mapped > now + MAX_AHEAD as i128 || mapped < 0 {
            return Err(Dropped::OffClock);
        }
        let mapped = mapped as Ns;
        let placed = match self.end {
            Some(end) if mapped + dur / 2 < end => return Err(Dropped::Overlap),
            // Where the previous packet ended, give or take rounding: contiguous.
            Some(end) if mapped.abs_diff(end) <= SNAP => Placed {
                at: end,
                discont: false,
            },
            // Up to half a packet early (moved to the end of the previous one), or after a hole.
            Some(end) => Placed {
                at: mapped.max(end),
                discont: true,
            },
            None => Placed {
                at: mapped,
                discont: true,
            },
        };
        self.end = Some(placed.at + dur);
        Ok(placed)
    }

    /// The output times of silent packets of `dur` that are due: audio has been quiet for
    /// `quiet` while the video reached `video`. None before any audio was placed.
    pub fn silence(&mut self, video: Ns, dur: Ns, quiet: Ns) -> Vec<Ns> {
        let Some(mut end) = self.end else {
            return Vec::new();
        };
        if quiet < SILENCE_AFTER || dur == 0 {
            return Vec::new();
        }
        let until = video.saturating_sub(SILENCE_BEHIND);
        if until > end + JUMP_AFTER {
            end = until - dur;
        }
        let mut out = Vec::new();
        while end + dur <= until {
            out.push(end);
            end += dur;
        }
        self.end = Some(end);
        out
    }

    /// The encoder restarted: its clock is another one.
    pub fn reset(&mut self) {
        self.end = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Ns = 1_000_000;
    const DUR: Ns = 20 * MS;

    #[test]
    fn packets_follow_the_video_offset() {
        let mut t = AudioTimeline::default();
        assert_eq!(t.place(0, DUR, None, 0), Err(Dropped::NoVideo));
        // The video mapped source time 0 to 5 s on the encoder's clock.
        let offset = Some(5_000 * MS as i128);
        assert_eq!(
            t.place(0, DUR, offset, 5_000 * MS).map(|p| p.at),
            Ok(5_000 * MS)
        );
        assert_eq!(
            t.place(DUR, DUR, offset, 5_010 * MS),
            Ok(Placed {
                at: 5_020 * MS,
                discont: false
            })
        );
        // A packet that repeats the previous one's time is dropped; one a little early moves.
        assert_eq!(t.place(DUR, DUR, offset, 5_020 * MS), Err(Dropped::Overlap));
        // (within rounding: contiguous)
        assert_eq!(
            t.place(2 * DUR - MS, DUR, offset, 5_030 * MS).map(|p| p.at),
            Ok(5_040 * MS)
        );
        // A hole in the source stays a hole.
        assert_eq!(
            t.place(10 * DUR, DUR, offset, 5_200 * MS),
            Ok(Placed {
                at: 5_200 * MS,
                discont: true
            })
        );
    }

    #[test]
    fn packets_far_from_the_clock_are_dropped() {
        let mut t = AudioTimeline::default();
        let offset = Some(1_000 * MS as i128);
        // A new source run starts its times again: with the old offset they land in the past.
        assert_eq!(t.place(0, DUR, offset, 9_000 * MS), Err(Dropped::OffClock));
        // Early by up to a second is kept (files, cameras that capture sound first).
        assert_eq!(
            t.place(900 * MS, DUR, offset, 1_000 * MS).map(|p| p.at),
            Ok(1_900 * MS)
        );
        assert_eq!(
            t.place(2_100 * MS, DUR, offset, 1_000 * MS),
            Err(Dropped::OffClock)
        );
    }

    #[test]
    fn quiet_audio_is_filled_with_silence_behind_the_video() {
        let mut t = AudioTimeline::default();
        // Nothing to continue before any audio.
        assert!(t.silence(1_000 * MS, DUR, SILENCE_AFTER).is_empty());
        let offset = Some(0);
        assert_eq!(
            t.place(1_000 * MS, DUR, offset, 1_000 * MS).map(|p| p.at),
            Ok(1_000 * MS)
        );
        // Quiet, but not for long enough yet.
        assert!(t.silence(1_300 * MS, DUR, SILENCE_AFTER - 1).is_empty());
        let s = t.silence(1_300 * MS, DUR, SILENCE_AFTER);
        // From the end of the last packet, contiguous, up to 150 ms behind the video.
        assert_eq!(s.first(), Some(&(1_020 * MS)));
        assert!(s.windows(2).all(|w| w[1] - w[0] == DUR));
        assert!(s.last().is_some_and(|l| l + DUR <= 1_150 * MS), "{s:?}");
        assert_eq!(s.len(), 6);
        // It goes on with the video.
        assert_eq!(
            t.silence(1_340 * MS, DUR, SILENCE_AFTER),
            [1_140 * MS, 1_160 * MS]
        );
        // Audio back: after the silence, never over it.
        assert_eq!(
            t.place(1_150 * MS, DUR, offset, 1_350 * MS),
            Err(Dropped::Overlap)
        );
        assert_eq!(
            t.place(1_185 * MS, DUR, offset, 1_380 * MS).map(|p| p.at),
            Ok(1_185 * MS)
        );
    }

    #[test]
    fn a_long_hole_is_skipped_not_filled_in_a_burst() {
        let mut t = AudioTimeline::default();
        assert!(t.place(0, DUR, Some(0), 0).is_ok());
        let s = t.silence(10_000 * MS, DUR, 10_000 * MS);
        assert_eq!(s, [10_000 * MS - SILENCE_BEHIND - DUR]);
        t.reset();
        assert!(t.silence(20_000 * MS, DUR, 10_000 * MS).is_empty());
    }
}
