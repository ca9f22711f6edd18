//! Cuts the stream's access units into LL-HLS parts (one fMP4 fragment of ~200 ms each) and
//! segments (whole parts, each segment starting at a key frame and lasting at least
//! [`SEGMENT_MIN_S`]), keeping the newest few in memory.
//!
//! A part is closed when its frame count is reached or a segment ends; a sample's duration is
//! known when the next one arrives, so a part goes out with the first frame after it.

use std::collections::VecDeque;
use std::time::SystemTime;

use bytes::Bytes;

use super::fmp4::{self, Sample, TIMESCALE};
use super::h264;

/// Target duration of a part, seconds.
pub const PART_TARGET_S: f64 = 0.2;
/// Shortest segment, seconds: a segment ends at the first key frame after this.
pub const SEGMENT_MIN_S: f64 = 1.0;
/// Complete segments kept (and listed).
const KEEP_SEGMENTS: usize = 6;

/// One part: a fragment of a segment.
#[derive(Debug, Clone)]
pub struct Part {
    /// `moof` + `mdat`.
    pub data: Bytes,
    /// Seconds.
    pub duration: f64,
    /// Starts with a key frame.
    pub independent: bool,
}

/// A segment, complete or in progress (the newest).
#[derive(Debug, Clone)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// Its parts so far.
    pub parts: Vec<Part>,
    /// The whole segment, once complete.
    pub body: Option<Bytes>,
    /// Wall-clock time of its first frame (`EXT-X-PROGRAM-DATE-TIME`).
    pub start: SystemTime,
}

impl Segment {
    /// Seconds, from its parts.
    pub fn duration(&self) -> f64 {
        self.parts.iter().map(|p| p.duration).sum()
    }
}

/// The packager of one stream.
pub struct Packager {
    keyframe_interval: u32,
    /// The initialisation segment and the parameter sets it was made from.
    init: Option<(Bytes, Vec<u8>, Vec<u8>)>,
    /// Nominal frame duration in ticks (from the caps' frame rate, else measured).
    frame_ticks: Option<u32>,
    segments: VecDeque<Segment>,
    pending: Vec<Sample>,
    pending_pts: Option<u64>,
    decode_time: u64,
    fragment_seq: u32,
    next_msn: u64,
    longest_segment: f64,
    /// Times the stream's parameter sets changed and the packager started over.
    pub restarts: u64,
}

/// What a pushed access unit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Waiting for a key frame with parameter sets, or nothing to package.
    Skipped,
    /// Added to the part being built.
    Added,
    /// Added after a part (and maybe a segment) was completed: waiters may go on.
    Completed,
}

impl Packager {
    /// A packager for an encoder with this key frame interval (frames).
    pub fn new(keyframe_interval: u32) -> Self {
        Self {
            keyframe_interval: keyframe_interval.max(1),
            init: None,
            frame_ticks: None,
            segments: VecDeque::new(),
            pending: Vec::new(),
            pending_pts: None,
            decode_time: 0,
            fragment_seq: 1,
            next_msn: 0,
            longest_segment: 0.0,
            restarts: 0,
        }
    }

    /// Adds one Annex B access unit with its timestamp (nanoseconds), key flag and the
    /// caps' size and frame rate.
    pub fn push(
        &mut self,
        pts_ns: Option<u64>,
        key: bool,
        data: &[u8],
        size: (u32, u32),
        fps: Option<f64>,
    ) -> Pushed {
        let au = h264::to_mp4(data);
        if let (true, Some(sps), Some(pps)) = (key, &au.sps, &au.pps) {
            let same = self
                .init
                .as_ref()
                .is_some_and(|(_, s, p)| s == sps && p == pps);
            if !same {
                if self.init.is_some() {
                    tracing::info!("LL-HLS: the stream's parameter sets changed; starting over");
                    *self = Self {
                        restarts: self.restarts + 1,
                        next_msn: self.next_msn,
                        ..Self::new(self.keyframe_interval)
                    };
                }
                let init = fmp4::init_segment(size.0, size.1, sps, pps);
                self.init = Some((Bytes::from(init), sps.clone(), pps.clone()));
            }
        }
        if self.init.is_none() || au.avcc.is_empty() {
            return Pushed::Skipped;
        }
        if self.frame_ticks.is_none()
            && let Some(fps) = fps.filter(|f| *f > 0.0)
        {
            self.frame_ticks = Some((f64::from(TIMESCALE) / fps).round() as u32);
        }
        // The previous sample's duration is known now.
        let nominal = self.frame_ticks.unwrap_or(TIMESCALE / 25);
        if let Some(last) = self.pending.last_mut() {
            let measured = match (pts_ns, self.pending_pts) {
                (Some(now), Some(before)) if now > before => {
                    ((now - before) as u128 * u128::from(TIMESCALE) / 1_000_000_000) as u64
                }
                _ => 0,
            };
            last.duration = if measured > 0 && measured <= u64::from(TIMESCALE) {
                measured as u32
            } else {
                nominal
            };
            self.frame_ticks.get_or_insert(last.duration);
        }
        let mut completed = false;
        let in_progress = self.segments.back().is_some_and(|s| s.body.is_none());
        let half_frame = f64::from(nominal) / f64::from(TIMESCALE) / 2.0;
        if key && in_progress && self.current_duration() >= SEGMENT_MIN_S - half_frame {
            completed |= self.close_part();
            self.close_segment();
        } else if self.pending.len() >= self.part_frames() {
            completed |= self.close_part();
        }
        if self.segments.back().is_none_or(|s| s.body.is_some()) {
            if !key {
                return if completed {
                    Pushed::Completed
                } else {
                    Pushed::Skipped
                };
            }
            self.segments.push_back(Segment {
                msn: self.next_msn,
                parts: Vec::new(),
                body: None,
                start: SystemTime::now(),
            });
            self.next_msn += 1;
        }
        self.pending.push(Sample {
            data: au.avcc,
            duration: nominal,
            key,
        });
        self.pending_pts = pts_ns;
        if completed {
            Pushed::Completed
        } else {
            Pushed::Added
        }
    }

    /// A frame's nominal duration, seconds (25 fps until the rate is known).
    fn frame_s(&self) -> f64 {
        f64::from(self.frame_ticks.unwrap_or(TIMESCALE / 25)) / f64::from(TIMESCALE)
    }

    /// Frames per part: ~[`PART_TARGET_S`] at the stream's frame rate.
    fn part_frames(&self) -> usize {
        ((PART_TARGET_S / self.frame_s()).round() as usize).max(1)
    }

    /// The declared part target: the duration of a full part, seconds.
    pub fn part_target(&self) -> f64 {
        self.part_frames() as f64 * self.frame_s()
    }

    /// `EXT-X-TARGETDURATION`: the longest segment, at least one key frame interval, whole
    /// seconds rounded up.
    pub fn target_duration(&self) -> u64 {
        let gop = f64::from(self.keyframe_interval) * self.frame_s();
        (self.longest_segment.max(gop).max(SEGMENT_MIN_S) - 1e-3).ceil() as u64
    }

    /// Duration of the segment in progress, with the pending samples, seconds.
    fn current_duration(&self) -> f64 {
        let parts = self.segments.back().map_or(0.0, Segment::duration);
        let pending: u64 = self.pending.iter().map(|s| u64::from(s.duration)).sum();
        parts + pending as f64 / f64::from(TIMESCALE)
    }

    fn close_part(&mut self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let Some(segment) = self.segments.back_mut() else {
            return false;
        };
        let ticks: u64 = self.pending.iter().map(|s| u64::from(s.duration)).sum();
        let data = fmp4::fragment(self.fragment_seq, self.decode_time, &self.pending);
        segment.parts.push(Part {
            data: Bytes::from(data),
            duration: ticks as f64 / f64::from(TIMESCALE),
            independent: self.pending[0].key,
        });
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        self.decode_time += ticks;
        self.pending.clear();
        true
    }

    fn close_segment(&mut self) {
        let Some(segment) = self.segments.back_mut() else {
            return;
        };
        // One buffer for the segment; its parts become views of it.
        let mut body = Vec::with_capacity(segment.parts.iter().map(|p| p.data.len()).sum());
        for p in &segment.parts {
            body.extend_from_slice(&p.data);
        }
        let body = Bytes::from(body);
        let mut at = 0;
        for p in &mut segment.parts {
            let len = p.data.len();
            p.data = body.slice(at..at + len);
            at += len;
        }
        segment.body = Some(body);
        self.longest_segment = self.longest_segment.max(segment.duration());
        while self.segments.len() > KEEP_SEGMENTS {
            self.segments.pop_front();
        }
    }

    /// The initialisation segment, once a key frame came.
    pub fn init(&self) -> Option<Bytes> {
        self.init.as_ref().map(|(b, _, _)| b.clone())
    }

    /// The segments, oldest first; the last may be in progress.
    pub fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    /// A complete segment.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.find(msn)?.body.clone()
    }

    /// A complete part.
    pub fn part(&self, msn: u64, index: usize) -> Option<Bytes> {
        Some(self.find(msn)?.parts.get(index)?.data.clone())
    }

    /// The part being built: (segment, index), which `EXT-X-PRELOAD-HINT` names.
    pub fn next_part(&self) -> Option<(u64, usize)> {
        self.segments.back().map(|s| match s.body {
            None => (s.msn, s.parts.len()),
            Some(_) => (s.msn + 1, 0),
        })
    }

    /// Whether the playlist holds segment `msn` (complete) or, with `part`, that part of it.
    pub fn has(&self, msn: u64, part: Option<usize>) -> bool {
        let Some((next_msn, next_part)) = self.next_part() else {
            return false;
        };
        match part {
            None => msn < next_msn,
            Some(p) => msn < next_msn || (msn == next_msn && p < next_part),
        }
    }

    fn find(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e];
    const PPS: &[u8] = &[0, 0, 0, 1, 0x68, 0xce];

    fn au(key: bool) -> Vec<u8> {
        let mut d = Vec::new();
        if key {
            d.extend_from_slice(SPS);
            d.extend_from_slice(PPS);
            d.extend_from_slice(&[0, 0, 1, 0x65, 1, 2, 3]);
        } else {
            d.extend_from_slice(&[0, 0, 1, 0x41, 4, 5]);
        }
        d
    }

    /// Pushes `frames` frames at 25 fps, a key frame every `gop`.
    fn run(p: &mut Packager, frames: u64, gop: u64) {
        for i in 0..frames {
            p.push(
                Some(i * 40_000_000),
                i % gop == 0,
                &au(i % gop == 0),
                (640, 360),
                Some(25.0),
            );
        }
    }

    #[test]
    fn parts_of_five_frames_and_segments_at_key_frames() {
        let mut p = Packager::new(25);
        // Delta frames before the first key frame are skipped.
        assert_eq!(
            p.push(Some(0), false, &au(false), (640, 360), Some(25.0)),
            Pushed::Skipped
        );
        run(&mut p, 101, 25);
        assert!(p.init().is_some());
        let s = p.segments();
        // Four complete 1 s segments, the fifth just begun.
        assert_eq!(s.len(), 5);
        for seg in s.iter().take(4) {
            assert!(seg.body.is_some());
            assert_eq!(seg.parts.len(), 5);
            assert!((seg.duration() - 1.0).abs() < 1e-9);
            assert!(seg.parts[0].independent && !seg.parts[1].independent);
            let total: usize = seg.parts.iter().map(|x| x.data.len()).sum();
            assert_eq!(seg.body.as_ref().unwrap().len(), total);
        }
        assert_eq!(p.next_part(), Some((4, 0)));
        assert!(p.has(3, None) && !p.has(4, None) && !p.has(4, Some(0)));
        assert!((p.part_target() - 0.2).abs() < 1e-9);
        assert_eq!(p.target_duration(), 1);
        assert!(p.part(2, 4).is_some() && p.part(2, 5).is_none() && p.segment(9).is_none());
    }

    #[test]
    fn long_gops_make_long_segments_and_the_window_is_bounded() {
        let mut p = Packager::new(50);
        run(&mut p, 50 * 20 + 1, 50);
        assert_eq!(p.target_duration(), 2);
        let s = p.segments();
        assert_eq!(s.len(), KEEP_SEGMENTS + 1);
        assert_eq!(s.back().unwrap().msn, 20);
        assert_eq!(s[0].parts.len(), 10);
    }

    #[test]
    fn new_parameter_sets_start_over() {
        let mut p = Packager::new(25);
        run(&mut p, 30, 25);
        let other = [SPS, &[0, 0, 1, 0x68, 0xcf], &[0, 0, 1, 0x65, 9][..]].concat();
        p.push(Some(2_000_000_000), true, &other, (640, 360), Some(25.0));
        assert_eq!(p.restarts, 1);
        assert_eq!(p.segments().len(), 1);
        // Sequence numbers go on, so players do not take new segments for old ones.
        assert_eq!(p.segments()[0].msn, 2);
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::Packager;

    proptest! {
        /// Any access units (random bytes, start codes or not, key or not, timestamps going
        /// anywhere): the packager answers, and what it serves can always be asked for.
        #[test]
        fn any_access_units_are_packaged_or_refused_without_a_panic(
            units in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), any::<bool>(), proptest::option::of(any::<u64>())),
                0..80,
            ),
            fps in proptest::option::of(0.0f64..240.0),
        ) {
            let mut p = Packager::new(25);
            for (mut data, key, pts) in units {
                if key && data.len() > 8 {
                    // Some with real-looking parameter sets and an IDR slice.
                    data.splice(0..0, [0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65]);
                }
                let _ = p.push(pts, key, &data, (640, 360), fps);
            }
            let _ = super::super::playlist::render(&p);
            let _ = p.init();
            if let Some((msn, part)) = p.next_part() {
                let _ = p.part(msn, part);
                let _ = p.segment(msn);
            }
        }
    }
}
