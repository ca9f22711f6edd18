//! A stream's sound: the source's audio packets, placed on the video's output timeline and
//! shared by every output, passed through where the output carries the codec and transcoded
//! once per codec where it does not.
//!
//! ```text
//! ingest: decodebin (stops at encoded audio) → parser → appsink
//!            │ packet, source time
//!            ▼
//!      AudioTrack::push ── time = source time + the video's offset (timeline.rs); a packet
//!            │             that cannot be placed is dropped and counted
//!            ▼                                       ▲ silence while the source sends none
//!      source fan-out (the source's codec) ─────┬────┘ (process worker, behind the video)
//!            │                                  └─▶ transcode → Opus fan-out (WebRTC)
//!            │                                  └─▶ transcode → AAC fan-out (RTMP, HLS)
//!            ▼
//!      outputs: an audio appsrc beside the video one, on the same output timeline
//! ```

mod codec;
mod follow;
mod silence;
mod timeline;
mod transcode;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{AudioMode, StreamId};
use crate::publish::Fanout;
use crate::supervise::lock;

pub use codec::{
    AudioCodec, AudioFormat, decodebin_stop_caps, encoder_priming_ns, is_audio, opus_rate,
    rtp_encoding_carried, target_rate,
};
pub use follow::VideoOffset;
pub use silence::SilentFrame;
pub use timeline::{AudioTimeline, Dropped, Placed};
use transcode::Transcoder;

/// How long after the first live video frame a source without audio is taken to have none.
pub const AUDIO_SETTLES: Duration = Duration::from_secs(1);
/// A transcode without outputs for this long is stopped.
const TRANSCODE_IDLE: Duration = Duration::from_secs(5);

/// Counters of a stream's audio.
#[derive(Debug, Default)]
pub struct AudioStats {
    /// Packets from the source placed on the output timeline.
    pub packets: AtomicU64,
    /// Silent packets sent while the source sent none.
    pub silent: AtomicU64,
    /// Source packets dropped (before the video set the timeline, off the clock, overlapping).
    pub dropped: AtomicU64,
    /// Transcodes started.
    pub transcodes: AtomicU64,
    /// Packets out of transcodes.
    pub transcoded: Arc<AtomicU64>,
}

/// What an output takes its audio from.
pub struct AudioFeed {
    /// Where the packets are published.
    pub fanout: Arc<Fanout>,
    /// Their caps, when known (a transcode's come with its first packet).
    pub caps: Option<gst::Caps>,
    /// Their format.
    pub format: AudioFormat,
    /// Whether it is a transcode (else the source's own packets).
    pub transcoded: bool,
}

/// The audio of an output, for status.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct OutputAudio {
    /// The format sent.
    #[serde(flatten)]
    pub format: AudioFormat,
    /// `passthrough` (the source's own packets) or `transcoded`.
    pub mode: &'static str,
}

impl From<&AudioFeed> for OutputAudio {
    fn from(f: &AudioFeed) -> Self {
        Self {
            format: f.format,
            mode: if f.transcoded {
                "transcoded"
            } else {
                "passthrough"
            },
        }
    }
}

/// A stream's audio, for status.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct AudioStatus {
    /// The source's audio as carried; absent while none came (or with `audio = "off"`).
    pub source: Option<AudioFormat>,
    /// Why the source's audio is not carried, when it is not.
    pub ignored: Option<String>,
    /// Transcodes running (one per codec some output needs).
    pub transcodes: Vec<AudioFormat>,
    /// Source packets carried.
    pub packets: u64,
    /// Silent packets sent while the source sent none.
    pub silent_packets: u64,
    /// Source packets dropped.
    pub dropped_packets: u64,
}

/// Where the video timeline stood when it last placed a frame.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Output minus source time, if the source stamps its frames.
    offset: Option<i128>,
    /// The encoder's clock then.
    clock: u64,
    at: Instant,
}

#[derive(Default)]
struct State {
    format: Option<AudioFormat>,
    caps: Option<gst::Caps>,
    anchor: Option<Anchor>,
    /// When the first live video frame was placed.
    first_live: Option<Instant>,
    /// The video frames' offset the audio follows.
    offset: VideoOffset,
    timeline: AudioTimeline,
    last_arrival: Option<Instant>,
    /// The silent frame for `format` (`None` inside: it could not be made).
    silence: Option<(AudioFormat, Option<SilentFrame>)>,
    ignored: Option<String>,
    /// Drops not logged yet (one line per second at most).
    unlogged_drops: u64,
    last_drop_log: Option<Instant>,
}

struct Running {
    transcoder: Transcoder,
    idle_since: Option<Instant>,
}

/// A stream's audio track.
pub struct AudioTrack {
    id: StreamId,
    mode: AudioMode,
    source: Arc<Fanout>,
    state: Mutex<State>,
    transcodes: Mutex<Vec<Running>>,
    stats: AudioStats,
}

impl AudioTrack {
    /// The track of stream `id`.
    pub fn new(id: StreamId, mode: AudioMode) -> Arc<Self> {
        Arc::new(Self {
            id,
            mode,
            source: Fanout::new(|| {}),
            state: Mutex::default(),
            transcodes: Mutex::default(),
            stats: AudioStats::default(),
        })
    }

    /// Whether the stream carries audio at all (`audio = "auto"`).
    pub fn enabled(&self) -> bool {
        self.mode == AudioMode::Auto
    }

    /// Its counters.
    pub fn stats(&self) -> &AudioStats {
        &self.stats
    }

    /// The source's format, once a packet came.
    pub fn format(&self) -> Option<AudioFormat> {
        lock(&self.state).format
    }

    /// The source has audio framegate does not carry: said once, shown in status.
    pub fn ignore(&self, why: String) {
        let mut s = lock(&self.state);
        if s.ignored.as_ref() != Some(&why) {
            tracing::warn!(stream = %self.id, "audio not carried: {why}");
            s.ignored = Some(why);
        }
    }

    /// A packet from the source (parsed, stamped with the source's time), on an ingest thread.
    pub fn push(&self, mut buffer: gst::Buffer, caps: &gst::Caps) {
        let Some(format) = AudioFormat::from_caps(caps) else {
            self.ignore(format!("cannot read the audio format of {caps}"));
            return;
        };
        let mut s = lock(&self.state);
        s.last_arrival = Some(Instant::now());
        if s.caps.as_ref() != Some(caps) {
            if s.format != Some(format) {
                tracing::info!(stream = %self.id, "audio: {}", format.describe());
            }
            s.format = Some(format);
            s.caps = Some(caps.clone());
            s.ignored = None;
        }
        let (Some(src), Some(duration)) = (buffer.pts(), packet_duration(&buffer, &format)) else {
            self.dropped(&mut s, "a packet without a time or duration");
            return;
        };
        let (offset, clock) = match s.anchor {
            Some(a) => (a.offset, a.clock + a.at.elapsed().as_nanos() as u64),
            None => (None, 0),
        };
        match s.timeline.place(src.nseconds(), duration, offset, clock) {
            Ok(placed) => {
                let b = buffer.make_mut();
                stamp(b, placed.at, duration);
                if placed.discont {
                    b.set_flags(gst::BufferFlags::DISCONT);
                }
                self.stats.packets.fetch_add(1, Ordering::Relaxed);
                let sample = gst::Sample::builder().buffer(&buffer).caps(caps).build();
                // Under the lock: silence and source packets go out in the order of their times.
                self.source.publish(&sample);
            }
            Err(why) => self.dropped(
                &mut s,
                match why {
                    Dropped::NoVideo => "no video frame placed yet",
                    Dropped::OffClock => "too far from the video's timeline",
                    Dropped::Overlap => "overlapping the audio already sent",
                },
            ),
        }
    }

    fn dropped(&self, s: &mut State, why: &str) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        s.unlogged_drops += 1;
        if s.last_drop_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::debug!(
                stream = %self.id,
                dropped = s.unlogged_drops,
                "audio packets dropped: {why}"
            );
            s.unlogged_drops = 0;
            s.last_drop_log = Some(Instant::now());
        }
    }

    /// The video timeline placed a frame: its output time minus its source time, and the
    /// encoder's clock now. Called by the processing worker for every live frame. Frames are
    /// snapped to the output's fixed frame grid (up to half an interval and a quarter from their
    /// own times, wherever the source's phase sits), so the audio follows their average
    /// ([`VideoOffset`]); `interval` is the grid's (none without a known rate).
    pub fn video_anchor(&self, offset: Option<i128>, interval: Option<u64>, clock: u64) {
        let mut s = lock(&self.state);
        let offset = s.offset.frame(offset, interval);
        s.anchor = Some(Anchor {
            offset,
            clock,
            at: Instant::now(),
        });
        s.first_live.get_or_insert_with(Instant::now);
    }

    /// Whether the stream's audio is known: its format came, or the source has sent live
    /// video for [`AUDIO_SETTLES`] without any (or the stream carries none). A push output
    /// waits for this before it first connects, so that the server gets both tracks at once.
    pub fn settled(&self) -> bool {
        let s = lock(&self.state);
        !self.enabled()
            || s.format.is_some()
            || s.ignored.is_some()
            || s.first_live.is_some_and(|t| t.elapsed() >= AUDIO_SETTLES)
    }

    /// The encoder restarted: a new clock, a new timeline.
    pub fn reset_clock(&self) {
        let mut s = lock(&self.state);
        s.anchor = None;
        s.offset.reset();
        s.timeline.reset();
    }

    /// The video reached `video` (ns, output timeline): sends the silence due while the source
    /// sends no audio. Called by the processing worker after every frame it sends.
    pub fn follow_video(&self, video: u64) {
        if !self.enabled() {
            return;
        }
        let format = {
            let s = lock(&self.state);
            match (s.format, &s.silence) {
                (None, _) => return,
                (Some(f), Some((made, _))) if *made == f => None,
                (Some(f), _) => Some(f),
            }
        };
        // A new format: its silent frame is made outside the lock (an encoder runs briefly).
        if let Some(f) = format {
            let frame = silence::frame(&f)
                .map_err(
                    |e| tracing::warn!(stream = %self.id, "no silence for {}: {e:#}", f.describe()),
                )
                .ok();
            lock(&self.state).silence = Some((f, frame));
        }
        let mut s = lock(&self.state);
        let quiet = s
            .last_arrival
            .map_or(u64::MAX, |t| t.elapsed().as_nanos() as u64);
        let (Some((_, Some(frame))), Some(caps)) = (s.silence.clone(), s.caps.clone()) else {
            return;
        };
        for pts in s.timeline.silence(video, frame.duration, quiet) {
            let mut buffer = frame.buffer.clone();
            stamp(buffer.make_mut(), pts, frame.duration);
            self.stats.silent.fetch_add(1, Ordering::Relaxed);
            let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
            self.source.publish(&sample);
        }
    }

    /// Audio for an output that `carries` some formats, `target` being the codec it takes
    /// when it cannot carry the source's: the source's own packets, or a transcode (started
    /// now if none runs). `None` while the source has sent no audio, with `audio = "off"`, or
    /// when the transcode cannot run (logged).
    pub fn feed(
        &self,
        carries: impl Fn(&AudioFormat) -> bool,
        target: AudioCodec,
    ) -> Option<AudioFeed> {
        if !self.enabled() {
            return None;
        }
        let (format, caps) = {
            let s = lock(&self.state);
            (s.format?, s.caps.clone())
        };
        if carries(&format) {
            return Some(AudioFeed {
                fanout: self.source.clone(),
                caps,
                format,
                transcoded: false,
            });
        }
        let mut running = lock(&self.transcodes);
        running.retain(|r| r.transcoder.source_format() == format);
        if let Some(r) = running
            .iter_mut()
            .find(|r| r.transcoder.target().codec == target)
        {
            r.idle_since = None;
            return Some(AudioFeed {
                fanout: r.transcoder.out().clone(),
                caps: r.transcoder.out().caps(),
                format: r.transcoder.target(),
                transcoded: true,
            });
        }
        let t = Transcoder::start(
            self.id.as_str(),
            &self.source,
            format,
            target,
            Fanout::new(|| {}),
            self.stats.transcoded.clone(),
        )
        .map_err(|e| {
            tracing::warn!(
                stream = %self.id,
                "audio: cannot transcode {} to {}: {e:#}",
                format.describe(),
                target.name()
            )
        })
        .ok()?;
        self.stats.transcodes.fetch_add(1, Ordering::Relaxed);
        let feed = AudioFeed {
            fanout: t.out().clone(),
            caps: None,
            format: t.target(),
            transcoded: true,
        };
        running.push(Running {
            transcoder: t,
            idle_since: None,
        });
        Some(feed)
    }

    /// Stops transcodes that no output used for a while, and failed ones (housekeeping).
    pub fn reap(&self) {
        let mut running = lock(&self.transcodes);
        running.retain_mut(|r| {
            if let Some(e) = r.transcoder.failed() {
                tracing::warn!(stream = %self.id, "audio transcode failed: {e}");
                return false;
            }
            if r.transcoder.out().feeds() > 0 {
                r.idle_since = None;
                return true;
            }
            let since = *r.idle_since.get_or_insert_with(Instant::now);
            since.elapsed() < TRANSCODE_IDLE
        });
    }

    /// Its status.
    pub fn status(&self) -> AudioStatus {
        let (source, ignored) = {
            let s = lock(&self.state);
            (s.format, s.ignored.clone())
        };
        AudioStatus {
            source: source.filter(|_| self.enabled()),
            ignored,
            transcodes: lock(&self.transcodes)
                .iter()
                .map(|r| r.transcoder.target())
                .collect(),
            packets: self.stats.packets.load(Ordering::Relaxed),
            silent_packets: self.stats.silent.load(Ordering::Relaxed),
            dropped_packets: self.stats.dropped.load(Ordering::Relaxed),
        }
    }

    /// The stream ends: outputs get end-of-stream.
    pub fn finish(&self) {
        self.source.finish();
        for r in lock(&self.transcodes).iter() {
            r.transcoder.out().finish();
        }
    }
}

/// Sets a packet's times.
fn stamp(b: &mut gst::BufferRef, pts: u64, duration: u64) {
    b.set_pts(gst::ClockTime::from_nseconds(pts));
    b.set_dts(gst::ClockTime::from_nseconds(pts));
    b.set_duration(gst::ClockTime::from_nseconds(duration));
    // The source's sample counts: payloaders would take them for RTP times over the PTS.
    b.set_offset(gst::format::Buffers::OFFSET_NONE);
    b.set_offset_end(gst::format::Buffers::OFFSET_NONE);
    b.unset_flags(gst::BufferFlags::DELTA_UNIT | gst::BufferFlags::DISCONT);
}

/// A packet's duration: as its parser set it, else from the codec's frame length (AAC, MP3)
/// or its size (PCM).
fn packet_duration(buffer: &gst::BufferRef, format: &AudioFormat) -> Option<u64> {
    if let Some(d) = buffer.duration().filter(|d| d.nseconds() > 0) {
        return Some(d.nseconds());
    }
    let samples = |n: u64| (format.rate > 0).then(|| n * 1_000_000_000 / format.rate as u64);
    let bytes_per_sample = match format.codec {
        AudioCodec::Pcma | AudioCodec::Pcmu => 1,
        AudioCodec::L16 => 2,
        // An AAC-LC frame; a raw frame from a demuxer carries no duration of its own.
        AudioCodec::Aac => return samples(1024),
        // MPEG-1 layer III frames hold 1152 samples, MPEG-2 and 2.5 (under 32 kHz) 576.
        AudioCodec::Mp3 => return samples(if format.rate >= 32_000 { 1152 } else { 576 }),
        AudioCodec::Opus => return None,
    };
    let per_second = format.rate as u64 * format.channels as u64 * bytes_per_sample;
    (buffer.size() > 0 && per_second > 0).then(|| buffer.size() as u64 * 1_000_000_000 / per_second)
}
