//! HLS from the stream's one H.264 encode (no second encode), for players that need it:
//! started by the first playlist request, stopped after a while without requests.
//!
//! ```text
//! fan-out ─▶ AppSrcFeed ─▶ appsrc → h264parse → hlssink2 (MPEG-TS segments + index.m3u8, temp dir)
//! audio (AAC, MP3; else the AAC transcode) ─▶ appsrc → parser ↗
//! ```
//! Segments are cut at the encoder's key frames: one per `encoder.keyframe_interval` frames
//! (2 s at the defaults), at least [`SEGMENT_S`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::config::StreamId;
use crate::elements::make;

use super::audio::AudioInput;
use super::fanout::{EncodedSink, Fanout};
use super::feed::{AppSrcFeed, Retimer};
use crate::audio::{AudioCodec, AudioFormat, AudioTrack};

/// Shortest segment, seconds (segments end on the first key frame after it).
const SEGMENT_S: u32 = 1;
/// Segments in the playlist.
const PLAYLIST_LENGTH: u32 = 5;
/// An HLS output nobody asked for this long stops.
const IDLE: Duration = Duration::from_secs(30);
/// Access units the HLS feed may hold before it drops and waits for a key frame.
const QUEUE_FRAMES: u64 = 50;

/// A stream's HLS output, started on demand.
pub struct HlsHub {
    stream: StreamId,
    fanout: Arc<Fanout>,
    audio: Arc<AudioTrack>,
    session: Mutex<Option<(HlsSession, Instant)>>,
}

impl HlsHub {
    /// A hub for a stream's fan-out (nothing runs until a playlist is asked for).
    pub fn new(stream: StreamId, fanout: Arc<Fanout>, audio: Arc<AudioTrack>) -> Self {
        Self {
            stream,
            fanout,
            audio,
            session: Mutex::new(None),
        }
    }

    /// The directory segments and playlist are written to, starting the output if needed.
    pub fn dir(&self) -> Result<PathBuf> {
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            *s = Some((
                HlsSession::start(&self.stream, &self.fanout, &self.audio)?,
                Instant::now(),
            ));
            tracing::info!(stream = %self.stream, "HLS output started");
        }
        let (session, last) = s.as_mut().context("no HLS session")?;
        *last = Instant::now();
        Ok(session.dir.clone())
    }

    /// Stops the output when nobody asked for it for a while (called periodically).
    pub fn stop_if_idle(&self) {
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if s.as_ref().is_some_and(|(_, last)| last.elapsed() > IDLE) {
            *s = None;
            tracing::info!(stream = %self.stream, "HLS output stopped (no viewer)");
        }
    }
}

struct HlsSession {
    pipeline: gst::Pipeline,
    dir: PathBuf,
    fanout: Arc<Fanout>,
    sink: Arc<dyn EncodedSink>,
    audio: Option<AudioInput>,
}

impl HlsSession {
    fn start(stream: &StreamId, fanout: &Arc<Fanout>, track: &AudioTrack) -> Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "framegate-hls-{}-{stream}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pipeline = gst::Pipeline::new();
        let appsrc = AppSrcFeed::appsrc(fanout.caps().as_ref());
        let parse = make("h264parse")?;
        let sink = make("hlssink2")?;
        sink.set_property("location", path_str(&dir.join("segment%05d.ts"))?);
        sink.set_property("playlist-location", path_str(&dir.join("index.m3u8"))?);
        sink.set_property("target-duration", SEGMENT_S);
        sink.set_property("playlist-length", PLAYLIST_LENGTH);
        sink.set_property("max-files", PLAYLIST_LENGTH * 2);
        // Segments end on the encoder's own key frames: asking for more here would change the
        // stream's GOP for every other output too.
        sink.set_property("send-keyframe-requests", false);
        pipeline.add_many([appsrc.upcast_ref(), &parse, &sink])?;
        gst::Element::link_many([appsrc.upcast_ref(), &parse])?;
        parse
            .link_pads(None, &sink, Some("video"))
            .context("linking the video to hlssink2")?;
        // MPEG-TS carries AAC and MP3 as they are; other sound becomes the stream's AAC.
        let name = format!("hls {stream}");
        let retimer = Retimer::new();
        let carries = |f: &AudioFormat| matches!(f.codec, AudioCodec::Aac | AudioCodec::Mp3);
        let audio = AudioInput::new(&name, track, carries, AudioCodec::Aac, &retimer);
        if let Some(a) = &audio {
            let aparse = make(a.codec.parser().unwrap_or("identity"))?;
            pipeline.add_many([a.appsrc.upcast_ref(), &aparse])?;
            a.appsrc.link(&aparse)?;
            aparse
                .link_pads(None, &sink, Some("audio"))
                .context("linking the audio to hlssink2")?;
        }
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the HLS output")?;
        let sink: Arc<dyn EncodedSink> = Arc::new(AppSrcFeed::sharing(
            name,
            &appsrc,
            QUEUE_FRAMES,
            &retimer,
            true,
        ));
        fanout.add(sink.clone());
        if let Some(a) = &audio {
            a.attach();
        }
        Ok(Self {
            pipeline,
            dir,
            fanout: fanout.clone(),
            sink,
            audio,
        })
    }
}

impl Drop for HlsSession {
    fn drop(&mut self) {
        self.fanout.remove(&self.sink);
        if let Some(a) = &self.audio {
            a.detach();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("temporary directory path is not UTF-8")
}

/// Whether a file name is one HLS serves (the playlist or a segment), so that requests cannot
/// reach anything else.
pub fn is_hls_file(name: &str) -> bool {
    name == "index.m3u8"
        || name
            .strip_prefix("segment")
            .and_then(|r| r.strip_suffix(".ts"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_playlist_and_segments_are_served() {
        assert!(super::is_hls_file("index.m3u8"));
        assert!(super::is_hls_file("segment00042.ts"));
        assert!(!super::is_hls_file("segment.ts"));
        assert!(!super::is_hls_file("../etc/passwd"));
        assert!(!super::is_hls_file("segment1.ts/../../x"));
    }
}
