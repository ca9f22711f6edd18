//! Cuts the stream's access units into LL-HLS parts (one fMP4 fragment of ~200 ms each) and
//! segments (whole parts, each segment starting at a key frame and lasting at least
//! [`SEGMENT_MIN_S`]), keeping the newest few in memory.
//!
//! A part is closed when its frame count is reached or a segment ends; a sample's duration is
//! known when the next one arrives, so a part goes out with the first frame after it. The
//! stream's AAC, when it has some, rides in the same parts: each part carries the audio frames
//! that came while it was built, on the video's decode timeline (the two share the encoder's
//! running time), back to back unless the source left a hole.

use std::collections::VecDeque;
use std::time::SystemTime;

use bytes::Bytes;

use super::fmp4::{self, AUDIO_TRACK, AudioConfig, Run, Sample, TIMESCALE, VIDEO_TRACK};
use super::h264;

/// Target duration of a part, seconds.
pub const PART_TARGET_S: f64 = 0.2;
/// Shortest segment, seconds: a segment ends at the first key frame after this.
pub const SEGMENT_MIN_S: f64 = 1.0;
/// Complete segments kept (and listed).
const KEEP_SEGMENTS: usize = 6;
/// How long (stream time) the first segment waits for the sound the output expects before it
/// starts without it, nanoseconds.
const AUDIO_WAIT_NS: u64 = 2_000_000_000;
/// Audio frames a part may gather (several seconds of AAC); more are dropped, counted.
const PENDING_AUDIO_MAX: usize = 256;

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

/// What an initialisation segment was made from.
struct Init {
    body: Bytes,
    sps: Vec<u8>,
    pps: Vec<u8>,
    audio: Option<AudioConfig>,
}

/// The packager of one stream.
pub struct Packager {
    keyframe_interval: u32,
    /// Whether the stream has sound this output carries: the first segment waits for it.
    expect_audio: bool,
    /// The sound's configuration, from its latest frame.
    audio: Option<AudioConfig>,
    /// The initialisation segment in use.
    init: Option<Init>,
    /// Stream time of the first key frame that waited for sound.
    waiting_since: Option<u64>,
    /// Nominal frame duration in ticks (from the caps' frame rate, else measured).
    frame_ticks: Option<u32>,
    segments: VecDeque<Segment>,
    pending: Vec<Sample>,
    pending_pts: Option<u64>,
    /// Audio frames of the part being built, from decode time `audio_base`.
    pending_audio: Vec<Sample>,
    audio_base: u64,
    /// Where the next audio frame belongs (decode time, audio timescale).
    audio_next: Option<u64>,
    /// The newest video frame: its stream time (ns) and decode time (ticks), which place the
    /// audio.
    video_ref: Option<(u64, u64)>,
    decode_time: u64,
    fragment_seq: u32,
    next_msn: u64,
    longest_segment: f64,
    /// Times the stream's parameter sets or sound changed and the packager started over:
    /// the generation of the initialisation segment.
    pub restarts: u64,
    /// Audio frames dropped (before the first video frame, overlapping, too many).
    pub audio_dropped: u64,
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
    /// A packager for an encoder with this key frame interval (frames), for a stream with
    /// or without sound.
    pub fn new(keyframe_interval: u32, expect_audio: bool) -> Self {
        Self {
            keyframe_interval: keyframe_interval.max(1),
            expect_audio,
            audio: None,
            init: None,
            waiting_since: None,
            frame_ticks: None,
            segments: VecDeque::new(),
            pending: Vec::new(),
            pending_pts: None,
            pending_audio: Vec::new(),
            audio_base: 0,
            audio_next: None,
            video_ref: None,
            decode_time: 0,
            fragment_seq: 1,
            next_msn: 0,
            longest_segment: 0.0,
            restarts: 0,
            audio_dropped: 0,
        }
    }

    /// Drops the segments and waits for a key frame to make a new initialisation segment;
    /// sequence numbers and decode times go on, so players take nothing new for old.
    fn start_over(&mut self) {
        let audio = self.audio.take();
        *self = Self {
            restarts: self.restarts + 1,
            next_msn: self.next_msn,
            decode_time: self.decode_time,
            fragment_seq: self.fragment_seq,
            audio_dropped: self.audio_dropped,
            audio,
            ..Self::new(self.keyframe_interval, self.expect_audio)
        };
    }

    /// Sound is expected from now on (it appeared after the output started).
    pub fn expect_audio(&mut self) {
        self.expect_audio = true;
    }

    /// The name of the initialisation segment in use: `init.mp4`, then `init{N}.mp4` after
    /// `N` restarts, so that players fetch the new one.
    pub fn init_name(&self) -> String {
        match self.restarts {
            0 => "init.mp4".to_string(),
            n => format!("init{n}.mp4"),
        }
    }

    /// Adds one Annex B access unit with its decode timestamp (nanoseconds), its presentation
    /// time minus that (B-frames), its key flag and the caps' size and frame rate.
    pub fn push(
        &mut self,
        pts_ns: Option<u64>,
        cto_ns: u64,
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
                .is_some_and(|i| &i.sps == sps && &i.pps == pps && i.audio == self.audio);
            if !same {
                if self.init.is_some() {
                    tracing::info!(
                        "LL-HLS: the stream's parameter sets or sound changed; starting over"
                    );
                    self.start_over();
                }
                if self.expect_audio && self.audio.is_none() && self.wait_for_audio(pts_ns) {
                    return Pushed::Skipped;
                }
                let body = fmp4::init_segment(size.0, size.1, sps, pps, self.audio.as_ref());
                self.init = Some(Init {
                    body: Bytes::from(body),
                    sps: sps.clone(),
                    pps: pps.clone(),
                    audio: self.audio.clone(),
                });
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
        let ticks: u64 = self.pending.iter().map(|s| u64::from(s.duration)).sum();
        self.video_ref = pts_ns.map(|pts| (pts, self.decode_time + ticks));
        // A composition offset of more than a second is not a reordering: ignored.
        let cto = if cto_ns <= 1_000_000_000 {
            (u128::from(cto_ns) * u128::from(TIMESCALE) / 1_000_000_000) as i32
        } else {
            0
        };
        self.pending.push(Sample {
            data: au.avcc,
            duration: nominal,
            key,
            cto,
        });
        self.pending_pts = pts_ns;
        if completed {
            Pushed::Completed
        } else {
            Pushed::Added
        }
    }

    /// Whether a key frame at `pts_ns` still waits for the sound (for [`AUDIO_WAIT_NS`] of
    /// stream time from the first that did).
    fn wait_for_audio(&mut self, pts_ns: Option<u64>) -> bool {
        let Some(pts) = pts_ns else {
            return false;
        };
        let since = *self.waiting_since.get_or_insert(pts);
        pts.saturating_sub(since) < AUDIO_WAIT_NS
    }

    /// Adds one AAC frame (raw, as in MP4) with its stream time and duration (ns) and its
    /// configuration. A new configuration starts the packager over.
    pub fn push_audio(
        &mut self,
        pts_ns: Option<u64>,
        duration_ns: Option<u64>,
        data: &[u8],
        config: &AudioConfig,
    ) -> Pushed {
        if self.audio.as_ref() != Some(config) {
            self.audio = Some(config.clone());
            if self.init.is_some() {
                tracing::info!("LL-HLS: the stream's sound changed; starting over");
                self.start_over();
            }
            return Pushed::Skipped;
        }
        let in_segment = self.segments.back().is_some_and(|s| s.body.is_none());
        let carried = self.init.as_ref().is_some_and(|i| i.audio.is_some());
        let at = pts_ns.and_then(|pts| self.audio_ticks(pts, config.rate));
        let (true, true, Some(at)) = (in_segment, carried, at) else {
            return Pushed::Skipped;
        };
        if data.is_empty() || self.pending_audio.len() >= PENDING_AUDIO_MAX {
            self.audio_dropped += 1;
            return Pushed::Skipped;
        }
        let rate = u64::from(config.rate);
        let duration = duration_ns
            .map(|d| ((u128::from(d) * u128::from(rate) + 500_000_000) / 1_000_000_000) as u64)
            .filter(|d| *d > 0 && *d <= rate)
            .unwrap_or(1024);
        // Back to back with the frame before unless half a frame or more away: a hole the
        // source left lengthens the frame before it (or starts the next part later); a frame
        // overlapping the one before is dropped.
        let half = duration.div_ceil(2);
        let at = match self.audio_next {
            Some(next) if at.saturating_add(half) <= next => {
                self.audio_dropped += 1;
                return Pushed::Skipped;
            }
            Some(next) if at < next.saturating_add(half) => next,
            Some(next) => {
                if let Some(last) = self.pending_audio.last_mut() {
                    last.duration = last.duration.saturating_add((at - next) as u32);
                }
                at
            }
            None => at,
        };
        if self.pending_audio.is_empty() {
            self.audio_base = at;
        }
        self.pending_audio.push(Sample {
            data: data.to_vec(),
            duration: duration as u32,
            key: true,
            cto: 0,
        });
        self.audio_next = Some(at.saturating_add(duration));
        Pushed::Added
    }

    /// The decode time (audio timescale `rate`) of stream time `pts` (ns), placed against the
    /// newest video frame; `None` before the first, or before the segments' start.
    fn audio_ticks(&self, pts: u64, rate: u32) -> Option<u64> {
        let (video_pts, video_ticks) = self.video_ref?;
        let ns = i128::from(video_ticks) * 1_000_000_000 / i128::from(TIMESCALE)
            + (i128::from(pts) - i128::from(video_pts));
        // Rounded to the nearest tick: stream times are whole nanoseconds.
        u64::try_from((ns * i128::from(rate) + 500_000_000).div_euclid(1_000_000_000)).ok()
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
        let mut runs = vec![Run {
            track: VIDEO_TRACK,
            base_time: self.decode_time,
            samples: &self.pending,
        }];
        if !self.pending_audio.is_empty() {
            runs.push(Run {
                track: AUDIO_TRACK,
                base_time: self.audio_base,
                samples: &self.pending_audio,
            });
        }
        let data = fmp4::fragment(self.fragment_seq, &runs);
        segment.parts.push(Part {
            data: Bytes::from(data),
            duration: ticks as f64 / f64::from(TIMESCALE),
            independent: self.pending[0].key,
        });
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        self.decode_time += ticks;
        self.pending.clear();
        self.pending_audio.clear();
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
        self.init.as_ref().map(|i| i.body.clone())
    }

    /// Whether the initialisation segment in use carries sound.
    #[cfg(test)]
    pub fn has_audio(&self) -> bool {
        self.init.as_ref().is_some_and(|i| i.audio.is_some())
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
                0,
                i % gop == 0,
                &au(i % gop == 0),
                (640, 360),
                Some(25.0),
            );
        }
    }

    #[test]
    fn parts_of_five_frames_and_segments_at_key_frames() {
        let mut p = Packager::new(25, false);
        // Delta frames before the first key frame are skipped.
        assert_eq!(
            p.push(Some(0), 0, false, &au(false), (640, 360), Some(25.0)),
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
        let mut p = Packager::new(50, false);
        run(&mut p, 50 * 20 + 1, 50);
        assert_eq!(p.target_duration(), 2);
        let s = p.segments();
        assert_eq!(s.len(), KEEP_SEGMENTS + 1);
        assert_eq!(s.back().unwrap().msn, 20);
        assert_eq!(s[0].parts.len(), 10);
    }

    #[test]
    fn new_parameter_sets_start_over() {
        let mut p = Packager::new(25, false);
        run(&mut p, 30, 25);
        let other = [SPS, &[0, 0, 1, 0x68, 0xcf], &[0, 0, 1, 0x65, 9][..]].concat();
        p.push(Some(2_000_000_000), 0, true, &other, (640, 360), Some(25.0));
        assert_eq!(p.restarts, 1);
        assert_eq!(p.segments().len(), 1);
        // Sequence numbers go on, so players do not take new segments for old ones.
        assert_eq!(p.segments()[0].msn, 2);
    }
}

#[cfg(test)]
mod audio_tests {
    use super::*;

    const KEY: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 1,
    ];
    const DELTA: &[u8] = &[0, 0, 1, 0x41, 4, 5];
    /// 48 kHz AAC: a frame of 1024 samples lasts 21.33 ms.
    const FRAME_NS: u64 = 1024 * 1_000_000_000 / 48_000;

    fn aac() -> AudioConfig {
        AudioConfig {
            rate: 48_000,
            channels: 2,
            asc: vec![0x11, 0x90],
        }
    }

    /// Video at 25 fps and AAC frames interleaved as they would come, from stream time
    /// `from_ns` for `ms` milliseconds; a key frame each second.
    fn run(p: &mut Packager, from_ns: u64, ms: u64, audio: Option<&AudioConfig>) {
        let (mut v, mut a) = (from_ns, from_ns);
        while v < from_ns + ms * 1_000_000 {
            if let Some(config) = audio {
                while a <= v {
                    p.push_audio(Some(a), Some(FRAME_NS), &[0xaa; 100], config);
                    a += FRAME_NS;
                }
            }
            let key = (v / 40_000_000) % 25 == 0;
            p.push(
                Some(v),
                0,
                key,
                if key { KEY } else { DELTA },
                (640, 360),
                Some(25.0),
            );
            v += 40_000_000;
        }
    }

    /// The audio `trun`s of every part: (base decode time, sample durations).
    fn audio_runs(p: &Packager) -> Vec<(u64, Vec<u32>)> {
        let mut out = Vec::new();
        for part in p.segments().iter().flat_map(|s| &s.parts) {
            let d = &part.data[..];
            let trafs: Vec<usize> = d
                .windows(4)
                .enumerate()
                .filter(|(_, w)| *w == b"tfhd")
                .map(|(i, _)| i)
                .collect();
            for t in trafs {
                let track = u32::from_be_bytes(d[t + 8..t + 12].try_into().unwrap());
                if track != AUDIO_TRACK {
                    continue;
                }
                // tfhd (16 bytes), tfdt v1 (20), trun: count, offset, then 16-byte entries.
                let base = u64::from_be_bytes(d[t + 24..t + 32].try_into().unwrap());
                let trun = t + 32 + 4;
                let n = u32::from_be_bytes(d[trun + 8..trun + 12].try_into().unwrap());
                let durations = (0..n as usize)
                    .map(|i| {
                        let at = trun + 16 + i * 16;
                        u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
                    })
                    .collect();
                out.push((base, durations));
            }
        }
        out
    }

    #[test]
    fn sound_rides_in_the_parts_back_to_back_on_the_video_timeline() {
        let mut p = Packager::new(25, true);
        // The first key frame waits for the sound.
        assert_eq!(
            p.push(Some(0), 0, true, KEY, (640, 360), Some(25.0)),
            Pushed::Skipped
        );
        assert!(p.init().is_none());
        // Video from 1 s on (a key frame) with sound.
        run(&mut p, 1_000_000_000, 3000, Some(&aac()));
        assert!(p.has_audio());
        let init = p.init().unwrap();
        assert!(init.windows(4).any(|w| w == b"mp4a"));
        let runs = audio_runs(&p);
        assert!(runs.len() >= 10, "{runs:?}");
        // The first audio frame placed came a frame after the first video frame (decode
        // time 0; the one before it set the configuration).
        assert_eq!(runs[0].0, 1024);
        // Back to back: each run starts where the one before ended.
        for w in runs.windows(2) {
            let end = w[0].0 + w[0].1.iter().map(|d| u64::from(*d)).sum::<u64>();
            assert_eq!(w[1].0, end, "{runs:?}");
        }
        // And on time: 3 s of sound against 3 s of video, within a frame.
        let last = runs.last().unwrap();
        let end = last.0 + last.1.iter().map(|d| u64::from(*d)).sum::<u64>();
        let video_s = p.segments().iter().map(Segment::duration).sum::<f64>();
        let audio_s = end as f64 / 48_000.0;
        assert!(
            (audio_s - video_s).abs() < 0.05,
            "audio {audio_s} s, video {video_s} s"
        );
        assert_eq!(p.audio_dropped, 0);
    }

    #[test]
    fn holes_lengthen_the_frame_before_and_overlaps_are_dropped() {
        let mut p = Packager::new(25, true);
        let config = aac();
        p.push_audio(Some(0), Some(FRAME_NS), &[1], &config);
        run(&mut p, 0, 200, None);
        // Frames at 0, 1, then 4 (a hole of two), then one overlapping frame 4.
        for (i, frame) in [(0, 0u64), (1, 1), (2, 4), (3, 4)] {
            let pushed = p.push_audio(Some(frame * FRAME_NS + 1), Some(FRAME_NS), &[i], &config);
            assert_eq!(pushed == Pushed::Added, i < 3, "frame {i}");
        }
        assert_eq!(p.audio_dropped, 1);
        run(&mut p, 200_000_000, 400, None);
        let runs = audio_runs(&p);
        assert_eq!(runs[0].0, 0);
        assert_eq!(runs[0].1, vec![1024, 1024 * 3, 1024]);
    }

    #[test]
    fn without_sound_after_two_seconds_video_goes_alone_and_sound_coming_later_starts_over() {
        let mut p = Packager::new(25, true);
        run(&mut p, 0, 4000, None);
        assert!(p.init().is_some() && !p.has_audio());
        assert_eq!(p.segments().front().unwrap().msn, 0);
        let next = p.next_part().unwrap().0;
        assert_eq!(p.init_name(), "init.mp4");
        run(&mut p, 4_000_000_000, 2000, Some(&aac()));
        assert_eq!(p.restarts, 1);
        assert!(p.has_audio());
        assert_eq!(p.init_name(), "init1.mp4");
        // Sequence numbers go on.
        assert!(p.segments().front().unwrap().msn >= next);
        assert!(!audio_runs(&p).is_empty());
        // The same configuration again changes nothing; another starts over again.
        run(&mut p, 6_000_000_000, 1000, Some(&aac()));
        assert_eq!(p.restarts, 1);
        let mono = AudioConfig {
            channels: 1,
            asc: vec![0x11, 0x88],
            ..aac()
        };
        run(&mut p, 7_000_000_000, 1000, Some(&mono));
        assert_eq!(p.restarts, 2);
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::Packager;

    proptest! {
        /// Any access units and audio frames (random bytes, start codes or not, key or not,
        /// timestamps and durations going anywhere, configurations changing): the packager
        /// answers, and what it serves can always be asked for.
        #[test]
        fn any_access_units_are_packaged_or_refused_without_a_panic(
            units in proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..300),
                    any::<bool>(),
                    proptest::option::of(any::<u64>()),
                    proptest::option::of((0u8..3, proptest::option::of(any::<u64>()))),
                ),
                0..80,
            ),
            fps in proptest::option::of(0.0f64..240.0),
            expect_audio in any::<bool>(),
        ) {
            let mut p = Packager::new(25, expect_audio);
            for (mut data, key, pts, audio) in units {
                if let Some((config, duration)) = audio {
                    let config = super::AudioConfig {
                        rate: [8_000, 48_000, 1][usize::from(config)],
                        channels: 2,
                        asc: vec![config],
                    };
                    let _ = p.push_audio(pts, duration, &data, &config);
                    continue;
                }
                if key && data.len() > 8 {
                    // Some with real-looking parameter sets and an IDR slice.
                    data.splice(0..0, [0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65]);
                }
                let _ = p.push(pts, 0, key, &data, (640, 360), fps);
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
