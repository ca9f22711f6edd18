//! Low-latency HLS from the stream's one H.264 encode, packaged in Rust and served from
//! memory: CMAF (fMP4) segments of about a second, each made of ~200 ms parts.
//!
//! ```text
//! fan-out ─▶ LlHlsSink ─▶ Packager: Annex B → fMP4 fragment per part, segments at key frames
//! AAC ─────▶ LlHlsSink ─▶    │ (the audio frames of each part in the same fragment;
//!                            │  newest six segments in memory)
//!                            └─▶ index.m3u8 (EXT-X-PART, EXT-X-PRELOAD-HINT), init.mp4,
//!                                seg{N}.m4s, part{N}.{i}.m4s
//! ```
//! The sound is the source's AAC as it is, or the stream's one AAC transcode of any other
//! codec. An output started before the source's sound came takes it when it comes (the
//! packager starts over with a new initialisation segment, `init{N}.mp4`).
//! Started by the first request, stopped after [`IDLE`] without one. A playlist request with
//! `_HLS_msn` / `_HLS_part` is held until that segment or part exists (blocking reload), and a
//! request for the part being built (the preload hint) is held until it is complete, so a
//! player learns of each part as soon as it exists.

mod fmp4;
mod h264;
mod packager;
mod playlist;
pub use playlist::with_query;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::audio::{AudioCodec, AudioFormat, AudioTrack};
use crate::config::StreamId;
use crate::supervise::lock;

use super::fanout::{EncodedSink, Fanout, Offer};
use fmp4::AudioConfig;
use packager::{Packager, Pushed};

/// An LL-HLS output nobody asked for this long stops.
const IDLE: Duration = Duration::from_secs(30);
/// How long the first playlist request waits for the first part.
const FIRST_PART: Duration = Duration::from_secs(10);

/// A file of the LL-HLS output, from its name in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlHlsFile {
    /// `index.m3u8`
    Playlist,
    /// `init.mp4`, and `init{N}.mp4` after `N` restarts
    Init(u64),
    /// `seg{msn}.m4s`
    Segment(u64),
    /// `part{msn}.{index}.m4s`
    Part(u64, usize),
}

impl LlHlsFile {
    /// The file a name stands for; `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match name {
            "index.m3u8" => Some(Self::Playlist),
            "init.mp4" => Some(Self::Init(0)),
            _ => {
                if let Some(n) = name
                    .strip_prefix("init")
                    .and_then(|r| r.strip_suffix(".mp4"))
                {
                    return digits(n).then(|| n.parse().ok().map(Self::Init))?;
                }
                let stem = name.strip_suffix(".m4s")?;
                if let Some(n) = stem.strip_prefix("seg") {
                    return digits(n).then(|| n.parse().ok().map(Self::Segment))?;
                }
                let (msn, index) = stem.strip_prefix("part")?.split_once('.')?;
                (digits(msn) && digits(index))
                    .then(|| Some(Self::Part(msn.parse().ok()?, index.parse().ok()?)))?
            }
        }
    }
}

/// Why a request got no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlHlsError {
    /// Not (or no longer) there.
    NotFound,
    /// Asked for a segment too far ahead of the live edge.
    TooFar,
    /// What was asked for did not come in time (the stream is not producing).
    Timeout,
}

/// The LL-HLS output of a running stream.
pub struct LlHls {
    packager: Mutex<Packager>,
    /// Bumped at each completed part: held requests look again.
    changed: tokio::sync::watch::Sender<u64>,
}

impl LlHls {
    fn new(keyframe_interval: u32, expect_audio: bool) -> Self {
        Self {
            packager: Mutex::new(Packager::new(keyframe_interval, expect_audio)),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Waits (up to `timeout`) until `f` finds what it looks for in the packager.
    async fn wait<T>(&self, timeout: Duration, f: impl Fn(&Packager) -> Option<T>) -> Option<T> {
        let mut rx = self.changed.subscribe();
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = f(&lock(&self.packager)) {
                return Some(v);
            }
            match tokio::time::timeout_at(end, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// How long a held request may wait: three target durations.
    fn hold(&self) -> Duration {
        Duration::from_secs(3 * lock(&self.packager).target_duration().max(1))
    }

    /// The playlist; with `msn` (and `part`), once it holds that segment (or part).
    pub async fn playlist(
        &self,
        msn: Option<u64>,
        part: Option<usize>,
    ) -> Result<String, LlHlsError> {
        let Some(msn) = msn else {
            return self
                .wait(FIRST_PART, playlist::render)
                .await
                .ok_or(LlHlsError::Timeout);
        };
        if let Some((next_msn, _)) = lock(&self.packager).next_part()
            && msn > next_msn + 1
        {
            return Err(LlHlsError::TooFar);
        }
        let hold = self.hold();
        self.wait(hold, |p| {
            p.has(msn, part).then(|| playlist::render(p)).flatten()
        })
        .await
        .ok_or(LlHlsError::Timeout)
    }

    /// A file other than the playlist; the part being built is waited for.
    pub async fn file(&self, file: LlHlsFile) -> Result<Bytes, LlHlsError> {
        match file {
            LlHlsFile::Playlist => Err(LlHlsError::NotFound),
            LlHlsFile::Init(generation) => {
                let p = lock(&self.packager);
                (p.restarts == generation)
                    .then(|| p.init())
                    .flatten()
                    .ok_or(LlHlsError::NotFound)
            }
            LlHlsFile::Segment(msn) => lock(&self.packager)
                .segment(msn)
                .ok_or(LlHlsError::NotFound),
            LlHlsFile::Part(msn, index) => {
                let upcoming = {
                    let p = lock(&self.packager);
                    if let Some(data) = p.part(msn, index) {
                        return Ok(data);
                    }
                    // The part being built, or the first of the next segment.
                    p.next_part().is_some_and(|(m, i)| {
                        (m, i) == (msn, index) || (m + 1 == msn && index == 0)
                    })
                };
                if !upcoming {
                    return Err(LlHlsError::NotFound);
                }
                let hold = self.hold();
                self.wait(hold, |p| p.part(msn, index))
                    .await
                    .ok_or(LlHlsError::Timeout)
            }
        }
    }

    fn push(&self, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let (size, fps) = sample
            .caps()
            .and_then(|c| c.structure(0))
            .map(|s| {
                let size = (
                    s.get::<i32>("width").unwrap_or(0).max(0) as u32,
                    s.get::<i32>("height").unwrap_or(0).max(0) as u32,
                );
                let fps = s
                    .get::<gst::Fraction>("framerate")
                    .ok()
                    .filter(|f| f.numer() > 0 && f.denom() > 0)
                    .map(|f| f64::from(f.numer()) / f64::from(f.denom()));
                (size, fps)
            })
            .unwrap_or(((0, 0), None));
        let dts = buffer.dts_or_pts().map(gst::ClockTime::nseconds);
        let cto = match (buffer.pts(), buffer.dts()) {
            (Some(p), Some(d)) if p > d => (p - d).nseconds(),
            _ => 0,
        };
        let pushed = lock(&self.packager).push(dts, cto, key, &map, size, fps);
        if pushed == Pushed::Completed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    fn push_audio(&self, sample: &gst::Sample) {
        let (Some(buffer), Some(config)) = (sample.buffer(), sample.caps().and_then(aac_config))
        else {
            return;
        };
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let pts = buffer.pts().map(gst::ClockTime::nseconds);
        let duration = buffer.duration().map(gst::ClockTime::nseconds);
        lock(&self.packager).push_audio(pts, duration, &map, &config);
    }
}

/// The configuration of raw AAC caps with their AudioSpecificConfig; `None` for any other
/// audio (or an implausible configuration: more than 64 bytes, no rate or channels, a rate
/// above 96 kHz).
fn aac_config(caps: &gst::CapsRef) -> Option<AudioConfig> {
    let format = AudioFormat::from_caps(caps)?;
    let s = caps.structure(0)?;
    if format.codec != AudioCodec::Aac || s.get::<&str>("stream-format").ok()? != "raw" {
        return None;
    }
    let asc = s.get::<gst::Buffer>("codec_data").ok()?;
    let asc = asc.map_readable().ok()?.to_vec();
    // AAC runs at 96 kHz at most.
    let plausible = !asc.is_empty() && asc.len() <= 64 && format.rate <= 96_000;
    plausible.then_some(AudioConfig {
        rate: format.rate,
        channels: format.channels,
        asc,
    })
}

/// A fan-out's feed into a packager, video or sound: packaging is a copy per access unit,
/// done in place.
struct LlHlsSink {
    name: String,
    out: Weak<LlHls>,
    audio: bool,
}

impl EncodedSink for LlHlsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn offer(&self, sample: &gst::Sample) -> Offer {
        match self.out.upgrade() {
            Some(out) if self.audio => {
                out.push_audio(sample);
                Offer::Taken
            }
            Some(out) => {
                out.push(sample);
                Offer::Taken
            }
            None => Offer::Gone,
        }
    }
}

/// A stream's LL-HLS output, started on demand.
pub struct LlHlsHub {
    stream: StreamId,
    fanout: Arc<Fanout>,
    audio: Arc<AudioTrack>,
    keyframe_interval: u32,
    running: Mutex<Option<Running>>,
}

struct Running {
    out: Arc<LlHls>,
    sink: Arc<dyn EncodedSink>,
    /// The source's sound format the output last followed (tried once per format).
    followed: Option<AudioFormat>,
    audio: Option<AudioFeed>,
    last_request: Instant,
}

/// The sound fed into a running output: its fan-out (the source's or a transcode's) and the
/// feed.
struct AudioFeed {
    fanout: Arc<Fanout>,
    sink: Arc<dyn EncodedSink>,
}

impl LlHlsHub {
    /// A hub for a stream's fan-out, its audio track and its encoder's key frame interval
    /// (frames).
    pub fn new(
        stream: StreamId,
        fanout: Arc<Fanout>,
        audio: Arc<AudioTrack>,
        keyframe_interval: u32,
    ) -> Self {
        Self {
            stream,
            fanout,
            audio,
            keyframe_interval,
            running: Mutex::new(None),
        }
    }

    /// The output, started if needed.
    pub fn get(&self) -> Arc<LlHls> {
        let mut running = lock(&self.running);
        let r = running.get_or_insert_with(|| {
            let expect_audio = self.audio.format().is_some();
            let out = Arc::new(LlHls::new(self.keyframe_interval, expect_audio));
            let sink: Arc<dyn EncodedSink> = Arc::new(LlHlsSink {
                name: format!("llhls {}", self.stream),
                out: Arc::downgrade(&out),
                audio: false,
            });
            self.fanout.add(sink.clone());
            tracing::info!(stream = %self.stream, "LL-HLS output started");
            let mut r = Running {
                out,
                sink,
                followed: None,
                audio: None,
                last_request: Instant::now(),
            };
            self.follow_audio(&mut r);
            r
        });
        r.last_request = Instant::now();
        r.out.clone()
    }

    /// Feeds the output the stream's sound as AAC: from when it appears, and again when the
    /// source's format changes.
    fn follow_audio(&self, r: &mut Running) {
        let source = self.audio.format();
        if r.followed == source {
            return;
        }
        r.followed = source;
        if let Some(old) = r.audio.take() {
            old.fanout.remove(&old.sink);
        }
        let Some(feed) = self
            .audio
            .feed(|f| f.codec == AudioCodec::Aac, AudioCodec::Aac)
        else {
            return;
        };
        lock(&r.out.packager).expect_audio();
        let sink: Arc<dyn EncodedSink> = Arc::new(LlHlsSink {
            name: format!("llhls {} audio", self.stream),
            out: Arc::downgrade(&r.out),
            audio: true,
        });
        feed.fanout.add(sink.clone());
        r.audio = Some(AudioFeed {
            fanout: feed.fanout,
            sink,
        });
    }

    /// Stops the output when nobody asked for it for a while, and keeps its sound following
    /// the source's (called periodically).
    pub fn stop_if_idle(&self) {
        let mut running = lock(&self.running);
        if running
            .as_ref()
            .is_some_and(|r| r.last_request.elapsed() > IDLE)
            && let Some(r) = running.take()
        {
            self.fanout.remove(&r.sink);
            if let Some(a) = r.audio {
                a.fanout.remove(&a.sink);
            }
            tracing::info!(stream = %self.stream, "LL-HLS output stopped (no viewer)");
        } else if let Some(r) = running.as_mut() {
            self.follow_audio(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_own_file_names_are_taken() {
        assert_eq!(LlHlsFile::parse("index.m3u8"), Some(LlHlsFile::Playlist));
        assert_eq!(LlHlsFile::parse("init.mp4"), Some(LlHlsFile::Init(0)));
        assert_eq!(LlHlsFile::parse("init3.mp4"), Some(LlHlsFile::Init(3)));
        assert_eq!(LlHlsFile::parse("seg42.m4s"), Some(LlHlsFile::Segment(42)));
        assert_eq!(
            LlHlsFile::parse("part42.3.m4s"),
            Some(LlHlsFile::Part(42, 3))
        );
        for bad in [
            "seg.m4s",
            "part4.m4s",
            "part4..m4s",
            "part.1.m4s",
            "seg-1.m4s",
            "../init.mp4",
            "seg1.ts",
            "seg99999999999999999999999.m4s",
            "init-1.mp4",
            "init.m4s",
            "initx.mp4",
        ] {
            assert_eq!(LlHlsFile::parse(bad), None, "{bad}");
        }
    }
}
