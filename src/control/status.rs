//! What the API says about a stream: its config (passwords masked) and its live status. These
//! types are the API's response bodies and, through their JSON schema, its OpenAPI document.

use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;

use crate::audio::{AudioStatus, OutputAudio};
use crate::config::StreamConfig;
use crate::process::detect::DetectStatus;
use crate::process::utc_timestamp;
use crate::publish::{OutputState, VideoOn};
use crate::stream::{Histogram, Stream, StreamState};

/// A stream: its config and, while it runs, its live status.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StreamStatus {
    /// The stream's id.
    pub id: String,
    /// The cluster node that runs it (`[cluster]`), for a camera from etcd; absent for a
    /// stream of the node's own config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Where the node that runs it serves its API and media (`http://host:port`), when another
    /// node of the cluster runs it: clients that cannot follow redirects (WebSockets) connect
    /// there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_url: Option<String>,
    /// The revision of the camera's owner key in etcd while this node holds it: it grows with
    /// every change of owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i64>,
    /// Where the stream is; `degraded`: the source is live but the encoder failed and is
    /// being started again (see `degraded`).
    pub state: StreamPhase,
    /// Why the stream is degraded, while it is.
    pub degraded: Option<String>,
    /// Times its encoder was started again after a failure.
    pub encoder_restarts: u64,
    /// Seconds in the current state.
    pub state_for_s: f64,
    /// While reconnecting: the attempt number and the delay before it.
    pub reconnect: Option<ReconnectInfo>,
    /// Seconds since the stream (re)started; none while stopped.
    pub uptime_s: Option<f64>,
    /// What is known about the source.
    pub source: SourceStatus,
    /// Decoded frames per second, over the last second.
    pub fps_in: f64,
    /// Encoded frames per second, over the last second.
    pub fps_out: f64,
    /// Frame counts since the stream started.
    pub frames: FrameCounts,
    /// Frames dropped, per stage.
    pub dropped: Drops,
    /// Time per frame in each stage, in milliseconds.
    pub latency_ms: StageLatencies,
    /// Times the source was reopened.
    pub reconnects: u64,
    /// The last time the source failed or stalled, and why.
    pub last_error: Option<ErrorInfo>,
    /// Why the stream could not start, if it could not.
    pub start_error: Option<String>,
    /// The H.264 encoder in use (`x264enc` or `nvh264enc`).
    pub encoder: Option<String>,
    /// The stream's outputs and their state.
    pub outputs: Vec<OutputStatus>,
    /// The stream's video path: the camera's own video passed through, or encoded, and why.
    pub video: VideoStatus,
    /// The stream's sound: the source's format, transcodes running, packet counts.
    pub audio: AudioStatus,
    /// JPEG encoders running for browser viewers (one per width and quality being watched).
    pub jpeg_encoders: usize,
    /// The stream's detectors (`detect` processors): model, provider, counters, current boxes.
    pub detect: Vec<DetectStatus>,
    /// The stream's config, passwords replaced by `***`.
    pub config: StreamConfig,
}

/// Reconnection in progress.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReconnectInfo {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Delay before it, in seconds.
    pub delay_s: f64,
}

/// The source as seen by the decoder.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct SourceStatus {
    /// The source URL, password masked.
    pub url: String,
    /// `rtsp`, `rtmp`, `file` or `test`.
    pub kind: String,
    /// The codec, e.g. `h264 (high)`; none for raw test patterns.
    pub codec: Option<String>,
    /// Frame width.
    pub width: Option<u32>,
    /// Frame height.
    pub height: Option<u32>,
    /// Frame rate the source announces.
    pub fps: Option<f64>,
    /// The decoder element (`avdec_h264`, `nvh264dec`, ...).
    pub decoder: Option<String>,
    /// Whether the decoder runs on the GPU.
    pub hardware: bool,
}

/// How the stream's video reaches its outputs.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct VideoStatus {
    /// `passthrough`: the camera's own H.264 goes out (the encoder makes only the NO SIGNAL
    /// slate); `encode`: every frame is decoded, processed and encoded once.
    pub mode: VideoPath,
    /// Why the stream encodes, when it does (`video = "encode"`, a processor that changes
    /// pixels, a source that is not H.264, ...).
    pub encode_reason: Option<String>,
    /// What the outputs get now: `camera`, `encoder` (the slate, or every frame), `nothing`
    /// (no key frame yet).
    pub on: String,
    /// The camera's access units sent to the outputs.
    pub camera_units: u64,
    /// The encoder's access units sent to the outputs.
    pub encoder_units: u64,
    /// Access units not sent: waiting for a key frame to switch on.
    pub switch_dropped: u64,
    /// Changes between the camera and the encoder (into and out of the slate).
    pub switches: u64,
    /// The camera's access units given to the decoder for the processors (pass-through).
    pub decoded_units: u64,
    /// The camera's access units not decoded: `decode = "keyframes"`, or skipped to the next
    /// key frame while the decoder was behind.
    pub skipped_units: u64,
}

/// A stream's video path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoPath {
    /// The camera's own video.
    Passthrough,
    /// Decoded, processed, encoded.
    #[default]
    Encode,
}

/// Frame counts.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct FrameCounts {
    /// Decoded from the source.
    pub decoded: u64,
    /// Encoded for the outputs (live, held and slate frames).
    pub encoded: u64,
    /// The camera's own access units sent to the outputs (pass-through).
    pub passed: u64,
    /// Last frames repeated through short gaps.
    pub held: u64,
    /// NO SIGNAL slate frames.
    pub slate: u64,
    /// Through the processors.
    pub processed: u64,
    /// Processed frames that `skip_similar` found like the last processed one (the processors
    /// after it reused their last result).
    pub similar: u64,
    /// Processed frames whose pixels a drawing processor (overlay, watermark, a `python`
    /// function writing the picture) had to copy before drawing: the decoder still held them
    /// as a reference frame (libav does). Frames from raw sources are drawn in place (decision
    /// 0034).
    pub copied: u64,
    /// Frames a processor kept from the outputs (a `python` function past its budget; the
    /// previous frame was shown again in their place).
    pub withheld: u64,
}

/// Dropped frames per stage.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Drops {
    /// Decoded frames replaced by a newer one before processing (the machine is behind).
    pub ingest: u64,
    /// Encoded frames outputs could not take (slow viewers or servers).
    pub outputs: u64,
    /// Processed frames dropped while the encoder had failed and was being started again.
    pub encoder: u64,
    /// Live frames whose slot on the output's frame grid the previous frame had taken: the
    /// source runs faster than the rate it announces (or bunched its timestamps).
    pub early: u64,
}

/// Median and 99th percentile of a stage's time per frame.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Percentiles {
    /// Median, milliseconds.
    pub p50: Option<f64>,
    /// 99th percentile, milliseconds.
    pub p99: Option<f64>,
}

/// Time per frame in each stage.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct StageLatencies {
    /// From the decoder to the start of processing.
    pub queue: Percentiles,
    /// In the processors.
    pub process: Percentiles,
    /// In the encoder.
    pub encode: Percentiles,
}

/// A failure and when it happened.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorInfo {
    /// What went wrong.
    pub message: String,
    /// When, UTC (`2026-11-21 19:54:22.123`).
    pub at: String,
    /// Seconds ago.
    pub ago_s: f64,
}

/// Where a stream is, as the API shows it: the stream's state, with `degraded` for a live
/// stream whose encoder is being started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamPhase {
    /// Opening the source.
    Connecting,
    /// Frames are flowing.
    Live,
    /// Live, but the encoder failed and is being started again.
    Degraded,
    /// Connected, but no frame for the stall timeout: outputs show the slate.
    Stalled,
    /// Waiting before the next attempt to open the source.
    Reconnecting,
    /// Stopped (on purpose, disabled, or it could not start).
    Stopped,
    /// A camera of the cluster that another node runs (see `owner`; its status is that
    /// node's), or that no node runs yet.
    Elsewhere,
}

impl StreamPhase {
    /// The phase of a running stream's state.
    pub fn of(state: &StreamState) -> Self {
        match state {
            StreamState::Connecting => Self::Connecting,
            StreamState::Live => Self::Live,
            StreamState::Stalled => Self::Stalled,
            StreamState::Reconnecting { .. } => Self::Reconnecting,
            StreamState::Stopped => Self::Stopped,
        }
    }
}

/// An output of a stream.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OutputStatus {
    /// `rtsp`, `rtmp`, `rtsp-push` or `redis`.
    pub kind: String,
    /// Where to watch it (`rtsp`) or where it is pushed (password masked).
    pub url: String,
    /// `serving` (rtsp), `connecting`, `publishing` or `retrying`.
    pub state: OutputState,
    /// Failed connections so far.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<ErrorInfo>,
    /// The audio it sends: format, and whether passed through or transcoded. None: video
    /// only (the stream has no audio, or had none when the output connected).
    pub audio: Option<OutputAudio>,
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e5).round() / 100.0)
}

fn percentiles(h: &Histogram) -> Percentiles {
    Percentiles {
        p50: ms(h.quantile(0.5)),
        p99: ms(h.quantile(0.99)),
    }
}

fn error_info((message, at): (String, SystemTime)) -> ErrorInfo {
    ErrorInfo {
        message: crate::redact::text(&message).into_owned(),
        at: utc_timestamp(at),
        ago_s: at.elapsed().unwrap_or_default().as_secs_f64(),
    }
}

/// The video path of a running stream; `config_reason`: why its config makes it encode.
fn video_status(s: &Stream, config_reason: Option<String>) -> VideoStatus {
    use std::sync::atomic::Ordering::Relaxed;
    let dec = s.decode_counters();
    let Some(v) = s.video_switch() else {
        return VideoStatus {
            encode_reason: config_reason,
            on: "encoder".into(),
            ..VideoStatus::default()
        };
    };
    let refused = v.refused();
    let st = v.stats();
    VideoStatus {
        mode: if refused.is_none() {
            VideoPath::Passthrough
        } else {
            VideoPath::Encode
        },
        encode_reason: refused,
        on: match v.on() {
            VideoOn::Nothing => "nothing",
            VideoOn::Camera => "camera",
            VideoOn::Encoder => "encoder",
        }
        .into(),
        camera_units: st.camera_units.load(Relaxed),
        encoder_units: st.encoder_units.load(Relaxed),
        switch_dropped: st.dropped.load(Relaxed),
        switches: st.switches.load(Relaxed),
        decoded_units: dec.decoded.load(Relaxed),
        skipped_units: dec.skipped.load(Relaxed),
    }
}

/// The status of a configured stream, running (`Some`) or not.
pub fn status(
    config: &StreamConfig,
    running: Option<&Stream>,
    start_error: Option<&str>,
) -> StreamStatus {
    let masked = config.masked();
    let mut st = StreamStatus {
        id: config.id().to_string(),
        owner: None,
        owner_url: None,
        fencing_token: None,
        state: StreamPhase::Stopped,
        degraded: None,
        encoder_restarts: 0,
        state_for_s: 0.0,
        reconnect: None,
        uptime_s: None,
        source: SourceStatus {
            url: masked.source.masked(),
            kind: config.source.kind().into(),
            ..SourceStatus::default()
        },
        fps_in: 0.0,
        fps_out: 0.0,
        frames: FrameCounts::default(),
        dropped: Drops::default(),
        latency_ms: StageLatencies::default(),
        reconnects: 0,
        last_error: None,
        start_error: start_error.map(|e| crate::redact::text(e).into_owned()),
        encoder: None,
        outputs: Vec::new(),
        video: VideoStatus {
            encode_reason: config.passthrough_allowed().err(),
            ..VideoStatus::default()
        },
        audio: AudioStatus::default(),
        jpeg_encoders: 0,
        detect: Vec::new(),
        config: masked,
    };
    let Some(s) = running else { return st };
    let state = s.state();
    st.state = StreamPhase::of(&state);
    if let StreamState::Reconnecting { attempt, delay } = state {
        st.reconnect = Some(ReconnectInfo {
            attempt,
            delay_s: delay.as_secs_f64(),
        });
    }
    st.degraded = s.encoder_health().degraded();
    st.encoder_restarts = s.encoder_health().restarts();
    if st.degraded.is_some() && st.state == StreamPhase::Live {
        st.state = StreamPhase::Degraded;
    }
    st.state_for_s = s.state_cell().since().as_secs_f64();
    st.uptime_s = Some(s.uptime().as_secs_f64());
    let info = s.source_info();
    st.source.codec = info.codec;
    st.source.width = info.size.map(|(w, _)| w);
    st.source.height = info.size.map(|(_, h)| h);
    st.source.fps = info.fps;
    st.source.decoder = info.decoder;
    st.source.hardware = info.hardware;
    let stats = s.stats();
    (st.fps_in, st.fps_out) = stats.rates();
    let snap = stats.snapshot(s.dropped_outputs());
    st.frames = FrameCounts {
        decoded: snap.frames_in,
        encoded: snap.frames_out,
        passed: snap.frames_passed,
        held: snap.frames_held,
        slate: snap.frames_slate,
        processed: snap.frames_processed,
        similar: stats
            .frames_similar
            .load(std::sync::atomic::Ordering::Relaxed),
        copied: stats
            .frames_copied
            .load(std::sync::atomic::Ordering::Relaxed),
        withheld: stats
            .frames_withheld
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    st.dropped = Drops {
        ingest: snap.dropped_ingest,
        outputs: snap.dropped_outputs,
        encoder: s.encoder_health().dropped(),
        early: stats
            .dropped_early
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    st.latency_ms = StageLatencies {
        queue: percentiles(&stats.queue_latency),
        process: percentiles(&stats.process_latency),
        encode: percentiles(&stats.encode_latency),
    };
    st.reconnects = snap.reconnects;
    st.last_error = s.state_cell().last_error().map(error_info);
    st.encoder = Some(s.encoder_kind().to_string());
    st.jpeg_encoders = s.jpeg().running();
    st.detect = s.detectors().iter().map(|d| d.status()).collect();
    st.audio = s.audio().status();
    st.video = video_status(s, st.video.encode_reason.take());
    // framegate's RTSP carries the source's audio as it is, in any codec.
    let rtsp_audio = st.audio.source.map(|format| OutputAudio {
        format,
        mode: "passthrough",
    });
    st.outputs = s
        .rtsp_urls()
        .iter()
        .map(|u| OutputStatus {
            kind: "rtsp".into(),
            url: u.clone(),
            state: OutputState::Serving,
            failures: 0,
            last_error: None,
            audio: rtsp_audio.clone(),
        })
        .chain(s.push_outputs().iter().map(|o| {
            let ps = o.status();
            OutputStatus {
                kind: o.kind().into(),
                url: o.url().into(),
                state: ps.state,
                failures: ps.failures,
                last_error: ps.last_error.map(error_info),
                audio: ps.audio,
            }
        }))
        .chain(s.redis_outputs().iter().map(|o| {
            let ps = o.status();
            OutputStatus {
                kind: "redis".into(),
                url: o.url(),
                state: ps.state,
                failures: ps.failures,
                last_error: ps.last_error.map(error_info),
                audio: None,
            }
        }))
        .collect();
    st
}
