//! Low-latency HLS from the stream's one H.264 encode, packaged in Rust and served from
//! memory: CMAF (fMP4) segments of about a second, each made of ~200 ms parts.
//!
//! ```text
//! fan-out ─▶ LlHlsSink ─▶ Packager: Annex B → fMP4 fragment per part, segments at key frames
//!                            │ (newest six segments in memory)
//!                            └─▶ index.m3u8 (EXT-X-PART, EXT-X-PRELOAD-HINT), init.mp4,
//!                                seg{N}.m4s, part{N}.{i}.m4s
//! ```
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

use crate::config::StreamId;
use crate::supervise::lock;

use super::fanout::{EncodedSink, Fanout, Offer};
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
    /// `init.mp4`
    Init,
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
            "init.mp4" => Some(Self::Init),
            _ => {
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
    fn new(keyframe_interval: u32) -> Self {
        Self {
            packager: Mutex::new(Packager::new(keyframe_interval)),
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
            LlHlsFile::Init => lock(&self.packager).init().ok_or(LlHlsError::NotFound),
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
        let pts = buffer.dts_or_pts().map(gst::ClockTime::nseconds);
        let pushed = lock(&self.packager).push(pts, key, &map, size, fps);
        if pushed == Pushed::Completed {
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

/// The fan-out's feed into a packager: packaging is a copy per access unit, done in place.
struct LlHlsSink {
    name: String,
    out: Weak<LlHls>,
}

impl EncodedSink for LlHlsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn offer(&self, sample: &gst::Sample) -> Offer {
        match self.out.upgrade() {
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
    keyframe_interval: u32,
    running: Mutex<Option<Running>>,
}

struct Running {
    out: Arc<LlHls>,
    sink: Arc<dyn EncodedSink>,
    last_request: Instant,
}

impl LlHlsHub {
    /// A hub for a stream's fan-out and its encoder's key frame interval (frames).
    pub fn new(stream: StreamId, fanout: Arc<Fanout>, keyframe_interval: u32) -> Self {
        Self {
            stream,
            fanout,
            keyframe_interval,
            running: Mutex::new(None),
        }
    }

    /// The output, started if needed.
    pub fn get(&self) -> Arc<LlHls> {
        let mut running = lock(&self.running);
        let r = running.get_or_insert_with(|| {
            let out = Arc::new(LlHls::new(self.keyframe_interval));
            let sink: Arc<dyn EncodedSink> = Arc::new(LlHlsSink {
                name: format!("llhls {}", self.stream),
                out: Arc::downgrade(&out),
            });
            self.fanout.add(sink.clone());
            tracing::info!(stream = %self.stream, "LL-HLS output started");
            Running {
                out,
                sink,
                last_request: Instant::now(),
            }
        });
        r.last_request = Instant::now();
        r.out.clone()
    }

    /// Stops the output when nobody asked for it for a while (called periodically).
    pub fn stop_if_idle(&self) {
        let mut running = lock(&self.running);
        if running
            .as_ref()
            .is_some_and(|r| r.last_request.elapsed() > IDLE)
            && let Some(r) = running.take()
        {
            self.fanout.remove(&r.sink);
            tracing::info!(stream = %self.stream, "LL-HLS output stopped (no viewer)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_own_file_names_are_taken() {
        assert_eq!(LlHlsFile::parse("index.m3u8"), Some(LlHlsFile::Playlist));
        assert_eq!(LlHlsFile::parse("init.mp4"), Some(LlHlsFile::Init));
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
        ] {
            assert_eq!(LlHlsFile::parse(bad), None, "{bad}");
        }
    }
}
