//! The typed configuration: one TOML file, validated once at the edge.
//!
//! Every field has a doc comment: they become the config reference in
//! `docs/config-reference.md` (generated from these types, see [`reference`]).
//! Parsing and validation live in [`load`]; errors name the file, line and field.

mod analytics;
pub mod bounds;
mod cluster;
mod events;
mod load;
mod python;
pub use load::{check_models, check_mounts, rtsp_mounts, validate_stream};
pub mod reference;
mod security;
mod source_url;
mod stream_id;
mod tracking;
mod webrtc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use analytics::{
    DetectConfig, ModelConfig, ModelFormat, ModelProvider, OnnxRuntimeConfig, SkipSimilarConfig,
    WatermarkConfig, WatermarkStrength, watermark_id_error,
};
pub use cluster::{ClusterConfig, endpoint as cluster_endpoint, node_name};
pub use events::{
    AlertConfig, CrossingDirection, DatabaseConfig, MediaServerCheck, MqttTarget, WebhookTarget,
    masked_text_url,
};
pub use load::{ConfigError, load_cameras_file, load_file, parse_str};
pub use python::{MAX_ARGS_BYTES, PythonConfig, PythonSection};
pub use security::{LimitsConfig, RtspAuthConfig, TlsConfig};
pub use source_url::{SourceUrl, TestPattern, masked_url};
pub use stream_id::StreamId;
pub use tracking::{Anchor, LineConfig, MAX_SHAPES, TrackConfig, ZoneConfig, validate_shapes};
pub use webrtc::WebRtcConfig;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// framegate's own servers.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where ONNX Runtime comes from, for the models.
    #[serde(default)]
    pub onnxruntime: OnnxRuntimeConfig,
    /// Detection models, each loaded once and shared by the streams that use it.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Where events (detections, stream states, viewers, API changes, alerts) are stored.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Alert rules: detections that are sent to a webhook or an MQTT topic.
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
    /// The embedded Python interpreter of the `python` processors.
    #[serde(default)]
    pub python: PythonSection,
    /// This node's place in a cluster of framegate nodes on etcd; unset, it runs alone.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// The streams to run, each from one source to its outputs.
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
}

/// framegate's own servers and process-wide settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address framegate's own servers listen on. Loopback by default: set `0.0.0.0` to serve
    /// other machines.
    #[serde(default = "default_bind")]
    pub bind: IpAddr,
    /// Port of framegate's own RTSP server; streams with an `rtsp` output are served at
    /// `rtsp://<bind>:<rtsp_port>/<stream id>`. `0` picks a free port (printed at start). The
    /// port is bound when the first stream with an `rtsp` output starts; on a cluster node, at
    /// start (it redirects the RTSP clients of cameras that other nodes run).
    #[serde(default = "default_rtsp_port")]
    pub rtsp_port: u16,
    /// Seconds between the one-line summaries that each stream logs (fps in and out, drops,
    /// processing and encode time per frame). `0` turns them off.
    #[serde(default = "default_summary_interval")]
    pub summary_interval_s: f64,
    /// Address and port of the REST API, the metrics (`/metrics`) and the health checks
    /// (`/healthz`, `/readyz`). Port `0` picks a free one (logged at start).
    #[serde(default = "default_http")]
    #[schemars(with = "String")]
    pub http: SocketAddr,
    /// Bearer token that API requests must carry (`Authorization: Bearer <token>`), at least
    /// 16 characters. The environment variable `FRAMEGATE_API_TOKEN` overrides it. Unset: the
    /// API is open to whoever can reach its port (loopback only by default).
    #[serde(default)]
    pub api_token: Option<String>,
    /// With a token set: whether reading (GET: status, metrics, pictures, video) stays open to
    /// anyone. Changes always need the token. Closed by default: viewers then need the token
    /// or a short-lived viewer token (`GET /api/streams/{id}/view-token`).
    #[serde(default)]
    pub api_read_open: bool,
    /// Origins (`https://host[:port]`) besides framegate's own whose pages may call the API,
    /// open pictures over WebSocket and be answered with CORS headers. Requests that change
    /// something from any other origin are refused (403).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Host names (as in the `Host` header, without the port) accepted besides loopback names
    /// and addresses and the HTTP server's own address. On a loopback-bound server any other
    /// `Host` is refused (421): a foreign name pointing at 127.0.0.1 (DNS rebinding) gets
    /// nothing. When set, they are checked on any binding.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Folders (absolute paths, no `..` parts) whose files API callers, and the cameras a
    /// cluster gives this node, may use as `file://` sources. Empty: the API accepts no
    /// `file://` source (the config file still may).
    #[serde(default)]
    pub media_dirs: Vec<PathBuf>,
    /// Answer Chromium's Private Network Access preflights (`Access-Control-Allow-Private-Network`)
    /// for the allowed origins, so that their public pages may reach framegate on a LAN.
    #[serde(default)]
    pub private_network_access: bool,
    /// Seconds a viewer token from `GET /api/streams/{id}/view-token` stays valid (10 to
    /// 86400).
    #[serde(default = "default_view_token_ttl")]
    pub view_token_ttl_s: f64,
    /// Caps on clients, and the HTTP server's timeouts.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// HTTPS instead of HTTP for the API, the dashboard and the browser outputs.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Users of framegate's own RTSP server; none: RTSP is open to whoever reaches its port.
    #[serde(default)]
    pub rtsp_auth: RtspAuthConfig,
    /// Where changes made through the API are kept so that they survive a restart. Default:
    /// next to the config file, `<config name>.api-state.toml`; the built-in demo keeps them in
    /// memory only.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// WebRTC viewers: ICE addresses, STUN and TURN servers, UDP ports.
    #[serde(default)]
    pub webrtc: WebRtcConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            rtsp_port: default_rtsp_port(),
            summary_interval_s: default_summary_interval(),
            http: default_http(),
            api_token: None,
            api_read_open: false,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            media_dirs: Vec::new(),
            private_network_access: false,
            view_token_ttl_s: default_view_token_ttl(),
            limits: LimitsConfig::default(),
            tls: None,
            rtsp_auth: RtspAuthConfig::default(),
            state_file: None,
            webrtc: WebRtcConfig::default(),
        }
    }
}

fn default_view_token_ttl() -> f64 {
    300.0
}

fn default_http() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))
}

fn default_bind() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
fn default_rtsp_port() -> u16 {
    8554
}
fn default_summary_interval() -> f64 {
    10.0
}

/// One stream: a source, the processors every frame goes through, and where the result goes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Unique name of the stream: letters, digits, `-` and `_`, at most 64 characters.
    /// Used in URLs (`rtsp://host:port/<id>`) and logs.
    #[schemars(with = "String")]
    pub id: StreamId,
    /// Where the video comes from: `rtsp://[user:pass@]host[:port]/path`, `rtsps://...`,
    /// `rtmp://host[:port]/app/key`, `file:///absolute/path.mp4` (played in real time, looped),
    /// or `test://<pattern>[?width=W&height=H&fps=F]` (a GStreamer test pattern such as `ball`
    /// or `smpte`). Credentials in the URL are never printed.
    #[schemars(with = "String")]
    pub source: SourceUrl,
    /// Whether the stream runs. `false` keeps it configured but stopped (what
    /// `POST /api/streams/{id}/stop` sets).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// RTSP transport for `rtsp://` sources: `tcp` (interleaved, the default: survives NAT and
    /// loss) or `udp` (lower overhead on clean networks).
    #[serde(default)]
    pub transport: RtspTransport,
    /// The source's sound: `auto` carries it to every output when the source has an audio
    /// track (passed through where the output carries its codec, transcoded once per codec
    /// where it does not); `off` ignores it. A source without audio gets no invented track.
    #[serde(default)]
    pub audio: AudioMode,
    /// The stream's video: `encode` (the default) decodes, processes and re-encodes every
    /// frame once (gaps filled with the last frame, key frames on demand for new viewers);
    /// `auto` passes the camera's own H.264 through to every output (no re-encode: its
    /// parameter sets, profile, bitrate, B-frames and SEI as the camera made them) when no
    /// processor changes pixels (no `overlay`, no `watermark`), `encoder.size` is unset and the
    /// source sends H.264, and encodes otherwise; `passthrough` requires it (a config that
    /// cannot pass through is refused; a source that is not H.264 is encoded, and the status
    /// says why). In pass-through a new viewer starts at the camera's next key frame and the
    /// encoder only makes the NO SIGNAL slate.
    #[serde(default)]
    pub video: VideoMode,
    /// Which frames are decoded for the processors while the video passes through: `all`, or
    /// `keyframes` (detection at the camera's key-frame rate for a near-zero decode cost; the
    /// browsers' JPEG pictures follow that rate too). Needs `video` not `encode`.
    #[serde(default)]
    pub decode: DecodeFrames,
    /// While the video passes through, the highest rate (frames per second, 0.1 to 240) at
    /// which decoded frames are converted and run through the processors (and shown as JPEG
    /// pictures); unset: every decoded frame. The outputs keep the camera's full rate.
    #[serde(default)]
    pub analyze_fps: Option<f64>,
    /// Processors applied to every frame, in order.
    #[serde(default)]
    pub processors: Vec<ProcessorConfig>,
    /// Counting lines (needs a `track` processor): objects crossing each are counted per class
    /// and direction (`line.crossed` events, `GET /api/streams/{id}/counts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineConfig>,
    /// Zones (needs a `track` processor): polygons whose visits are counted per class with
    /// dwell times (`zone.entered` / `zone.left` events).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneConfig>,
    /// Where the processed, re-encoded stream goes. All outputs share one encoder.
    #[serde(default)]
    pub outputs: Vec<OutputConfig>,
    /// How the stream is decoded.
    #[serde(default)]
    pub decoder: DecoderConfig,
    /// How the processed frames are encoded (once, for every output).
    #[serde(default)]
    pub encoder: EncoderConfig,
    /// Seconds without a new frame after which the stream counts as stalled and its outputs
    /// show the NO SIGNAL slate; a stall that lasts as long again restarts the source.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout_s: f64,
    /// How a failed source is retried.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// Ask a media server's HTTP API whether the stream exists before pulling it.
    #[serde(default)]
    pub media_server: Option<MediaServerCheck>,
}

fn default_true() -> bool {
    true
}

fn default_stall_timeout() -> f64 {
    2.0
}

/// Retry policy of a source: exponential backoff with jitter, capped.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// First delay before reopening a failed source, in seconds; doubles at each failure.
    #[serde(default = "default_retry_initial")]
    pub initial_s: f64,
    /// Longest delay between attempts, in seconds.
    #[serde(default = "default_retry_max")]
    pub max_s: f64,
    /// Random spread of each delay, as a fraction (0.2: ±20%), so that cameras behind one
    /// failed switch do not all retry at the same instant.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Seconds a source may take from opening to its first frame before the attempt counts as
    /// failed.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_s: f64,
    /// Seconds of being live after which the next failure starts again from `initial_s`.
    #[serde(default = "default_reset_after")]
    pub reset_after_s: f64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_s: default_retry_initial(),
            max_s: default_retry_max(),
            jitter: default_jitter(),
            connect_timeout_s: default_connect_timeout(),
            reset_after_s: default_reset_after(),
        }
    }
}

fn default_jitter() -> f64 {
    0.2
}
fn default_connect_timeout() -> f64 {
    10.0
}
fn default_reset_after() -> f64 {
    30.0
}

impl Config {
    /// Tells [`crate::redact`] every secret of this config (the API token, TURN credentials,
    /// the database password, alert secrets, the streams' secrets), so that none of them is
    /// ever shown in a log line, an error, a status or an event.
    pub fn register_secrets(&self) {
        if let Some(t) = &self.server.api_token {
            crate::redact::register(t);
        }
        for (_, pass) in self.server.rtsp_auth.pairs() {
            crate::redact::register(pass);
        }
        for turn in &self.server.webrtc.turn_servers {
            register_text_url(turn);
        }
        register_text_url(&self.database.url);
        for a in &self.alerts {
            if let Some(w) = &a.webhook {
                crate::redact::register_url(&w.url);
                if let Some(s) = &w.secret {
                    crate::redact::register(s);
                }
            }
            if let Some(m) = &a.mqtt {
                crate::redact::register_url(&m.url);
            }
        }
        for s in &self.streams {
            s.register_secrets();
        }
    }
}

fn register_text_url(text: &str) {
    if let Ok(u) = url::Url::parse(text) {
        crate::redact::register_url(&u);
    }
}

impl StreamConfig {
    /// Tells [`crate::redact`] this stream's secrets: the source's and the outputs'
    /// credentials, stream keys and secret query values, the media-server check's, the
    /// watermark key.
    pub fn register_secrets(&self) {
        if let SourceUrl::Rtsp(u) | SourceUrl::Rtmp(u) = &self.source {
            crate::redact::register_url(u);
        }
        for o in &self.outputs {
            match o {
                OutputConfig::Rtmp(p) | OutputConfig::RtspPush(p) => {
                    crate::redact::register_url(&p.url)
                }
                OutputConfig::Redis(r) => crate::redact::register_url(&r.url),
                OutputConfig::Rtsp(_) => {}
            }
        }
        if let Some(m) = &self.media_server {
            register_text_url(&m.url);
        }
        for p in &self.processors {
            if let ProcessorConfig::Watermark(w) = p
                && let Ok(k) = w.resolved_key()
            {
                crate::redact::register(&k);
            }
        }
    }

    /// The stream's id.
    pub fn id(&self) -> &StreamId {
        &self.id
    }

    /// Whether the stream may pass its source's video through (`Ok`), or why it must encode:
    /// the configuration alone decides here; the source's codec is known when it plays.
    pub fn passthrough_allowed(&self) -> Result<(), String> {
        if self.video == VideoMode::Encode {
            return Err("video = \"encode\"".into());
        }
        if let Some(p) = self.processors.iter().find(|p| p.changes_pixels()) {
            return Err(format!("the `{}` processor changes pixels", p.kind_name()));
        }
        if self.encoder.size.is_some() {
            return Err("encoder.size is set".into());
        }
        if matches!(self.source, SourceUrl::Test(_)) {
            return Err("a test pattern has no video of its own to pass through".into());
        }
        Ok(())
    }

    /// A copy with every secret replaced by `***` ([`crate::redact`]), for the API, the
    /// events and the logs.
    pub fn masked(&self) -> StreamConfig {
        let mut c = self.clone();
        if let Some(m) = &mut c.media_server {
            m.url = crate::redact::text(&m.url).into_owned();
        }
        if let SourceUrl::Rtsp(u) | SourceUrl::Rtmp(u) = &mut c.source {
            mask_password(u);
        }
        for o in &mut c.outputs {
            match o {
                OutputConfig::Rtmp(p) | OutputConfig::RtspPush(p) => mask_password(&mut p.url),
                OutputConfig::Redis(r) => mask_password(&mut r.url),
                OutputConfig::Rtsp(_) => {}
            }
        }
        for p in &mut c.processors {
            if let ProcessorConfig::Watermark(w) = p
                && !w.key.is_empty()
            {
                w.key = "***".into();
            }
        }
        c
    }

    /// Puts back the passwords of `old` where this config carries `***` for the same URL
    /// otherwise: a client that read a stream (masked) and writes it back keeps its secrets.
    pub fn unmask_from(&mut self, old: &StreamConfig) {
        if let (Some(new), Some(prev)) = (&mut self.media_server, &old.media_server)
            && new.url.contains(crate::redact::MASK)
            && new.url == crate::redact::text(&prev.url)
        {
            new.url = prev.url.clone();
        }
        // A watermark key given as `***` keeps the key of the old config's watermark.
        let old_key = old.processors.iter().find_map(|p| match p {
            ProcessorConfig::Watermark(w) => Some(w.key.clone()),
            _ => None,
        });
        for p in &mut self.processors {
            if let (ProcessorConfig::Watermark(w), Some(k)) = (p, &old_key)
                && w.key == "***"
            {
                w.key = k.clone();
            }
        }
        if let (
            SourceUrl::Rtsp(new) | SourceUrl::Rtmp(new),
            SourceUrl::Rtsp(prev) | SourceUrl::Rtmp(prev),
        ) = (&mut self.source, &old.source)
        {
            restore_password(new, prev);
        }
        for o in &mut self.outputs {
            let new = match o {
                OutputConfig::Rtmp(p) | OutputConfig::RtspPush(p) => &mut p.url,
                OutputConfig::Redis(r) => &mut r.url,
                OutputConfig::Rtsp(_) => continue,
            };
            for prev in &old.outputs {
                match prev {
                    OutputConfig::Rtmp(q) | OutputConfig::RtspPush(q) => {
                        restore_password(new, &q.url)
                    }
                    OutputConfig::Redis(q) => restore_password(new, &q.url),
                    OutputConfig::Rtsp(_) => {}
                }
            }
        }
    }
}

fn mask_password(u: &mut url::Url) {
    *u = crate::redact::url(u);
}

fn restore_password(new: &mut url::Url, old: &url::Url) {
    crate::redact::restore_url(new, old);
}

/// RTSP lower transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// RTP interleaved in the RTSP TCP connection.
    #[default]
    Tcp,
    /// RTP over UDP.
    Udp,
}

/// Whether a stream carries its source's audio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// Carried when the source has an audio track.
    #[default]
    Auto,
    /// Never carried: outputs are video only.
    Off,
}

/// How a stream's video reaches its outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoMode {
    /// Passed through when nothing changes pixels and the source sends H.264; encoded
    /// otherwise.
    Auto,
    /// Always the camera's own video (refused where it cannot be).
    Passthrough,
    /// Always decoded, processed and encoded once.
    #[default]
    Encode,
}

/// Which frames are decoded for the processors of a stream that passes its video through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecodeFrames {
    /// Every frame.
    #[default]
    All,
    /// Only key frames (each decodes on its own).
    Keyframes,
}

/// Whether a hardware (NVIDIA nvcodec) element may be used.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Hardware {
    /// Use the GPU when its element is available on this machine, the CPU otherwise.
    #[default]
    Auto,
    /// Require the GPU: the stream fails with a clear error where it is missing.
    On,
    /// Always use the CPU.
    Off,
}

/// Decoder settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// `auto` takes NVIDIA's NVDEC decoder (`nvh264dec`, `nvh265dec`) when it registers on this
    /// machine and libav otherwise; `on` requires it; `off` never uses it.
    #[serde(default)]
    pub hardware: Hardware,
}

/// Encoder settings: one H.264 encoder per stream, shared by all its outputs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Target bitrate in kbit/s (50 to 100000).
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u32,
    /// Frames between key frames (1 to 1000). Also the longest a new viewer waits for a picture
    /// when the encoder cannot be asked for a key frame.
    #[serde(default = "default_keyframe_interval")]
    pub keyframe_interval: u32,
    /// x264 speed preset; faster presets cost less CPU for a larger stream at the same quality.
    #[serde(default)]
    pub preset: X264Preset,
    /// `auto` takes NVIDIA's NVENC encoder (`nvh264enc`) when it registers on this machine and
    /// x264 otherwise; `on` requires it; `off` never uses it.
    #[serde(default)]
    pub hardware: Hardware,
    /// Output width and height in pixels. Unset: the size of the source's first frame. Either
    /// way the output keeps its size for its whole life (a source that comes back at another
    /// size is scaled into it). Set it to have the NO SIGNAL slate from start-up, before the
    /// source was ever reached.
    #[serde(default)]
    pub size: Option<[u32; 2]>,
    /// Output frame rate used for the slate when the source does not announce one.
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// x264 threads (0 to 16). 0: automatic, x264's own count (sliced threads, the lowest
    /// latency for one stream) while the process runs fewer encoders than the machine has
    /// CPU cores, one thread from then on (many streams share the cores better one thread
    /// each, and x264 spends less CPU per frame so).
    #[serde(default)]
    pub threads: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            bitrate_kbps: default_bitrate(),
            keyframe_interval: default_keyframe_interval(),
            preset: X264Preset::default(),
            hardware: Hardware::default(),
            size: None,
            fps: default_fps(),
            threads: 0,
        }
    }
}

fn default_fps() -> u32 {
    25
}

fn default_bitrate() -> u32 {
    2000
}
fn default_keyframe_interval() -> u32 {
    50
}

/// x264 speed presets, fastest first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum X264Preset {
    #[default]
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl X264Preset {
    /// The name x264enc's `speed-preset` property takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ultrafast => "ultrafast",
            Self::Superfast => "superfast",
            Self::Veryfast => "veryfast",
            Self::Faster => "faster",
            Self::Fast => "fast",
            Self::Medium => "medium",
            Self::Slow => "slow",
            Self::Slower => "slower",
            Self::Veryslow => "veryslow",
        }
    }
}

/// A processor in a stream's chain, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessorConfig {
    /// Draws the stream id, wall-clock time, frame number and the boxes found by detectors.
    Overlay(OverlayConfig),
    /// Finds objects with a shared `[[models]]` model; the boxes become frame metadata (drawn
    /// by a later `overlay`) and detection events.
    Detect(DetectConfig),
    /// Marks frames too similar to the last processed one, so that the processors after it
    /// reuse their last result.
    SkipSimilar(SkipSimilarConfig),
    /// Embeds an invisible 7-character ID in every frame, readable after H.264 compression
    /// with `framegate watermark read` and the key.
    Watermark(WatermarkConfig),
    /// Follows the objects of the `detect` processor before it over time (ByteTrack-style):
    /// track ids, object events, and the stream's `lines` and `zones` counted per class.
    Track(TrackConfig),
    /// Calls a Python function of the user's with each frame (numpy arrays over framegate's
    /// memory, no copy) and its metadata; it may draw, and return boxes and events.
    Python(PythonConfig),
}

impl ProcessorConfig {
    /// The processor's `kind` as written in the config.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Overlay(_) => "overlay",
            Self::Detect(_) => "detect",
            Self::SkipSimilar(_) => "skip_similar",
            Self::Watermark(_) => "watermark",
            Self::Track(_) => "track",
            Self::Python(_) => "python",
        }
    }

    /// Whether it draws on the frames (the stream must then encode its own video).
    pub fn changes_pixels(&self) -> bool {
        match self {
            Self::Overlay(_) | Self::Watermark(_) => true,
            Self::Python(p) => p.draws,
            Self::Detect(_) | Self::SkipSimilar(_) | Self::Track(_) => false,
        }
    }
}

/// Settings of the `overlay` processor.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlayConfig {
    /// An extra line of text under the stream id (for example the camera's location).
    #[serde(default)]
    pub text: Option<String>,
    /// Hide the boxes attached to the frame by detectors (shown by default).
    #[serde(default)]
    pub hide_boxes: bool,
}

/// An output of a stream, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum OutputConfig {
    /// Served by framegate's own RTSP server at `rtsp://<bind>:<rtsp_port>/<id>`.
    #[serde(rename = "rtsp")]
    Rtsp(RtspServeOutput),
    /// Pushed to an RTMP server (nginx-rtmp, MediaMTX, a CDN ingest) as FLV.
    #[serde(rename = "rtmp")]
    Rtmp(PushOutput),
    /// Pushed to an RTSP server with ANNOUNCE/RECORD (MediaMTX, gst-rtsp-server in record mode).
    #[serde(rename = "rtsp-push")]
    RtspPush(PushOutput),
    /// Published to a Redis channel, frame by frame (JPEG or raw I420) with a header; skipped
    /// while Redis is slow or down.
    #[serde(rename = "redis")]
    Redis(RedisOutput),
}

impl OutputConfig {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rtsp(_) => "rtsp",
            Self::Rtmp(_) => "rtmp",
            Self::RtspPush(_) => "rtsp-push",
            Self::Redis(_) => "redis",
        }
    }
}

/// Settings of an `rtsp` output.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RtspServeOutput {
    /// Mount path on framegate's RTSP server; `/<stream id>` by default.
    #[serde(default)]
    pub path: Option<String>,
}

/// Settings of a push output (`rtmp`, `rtsp-push`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushOutput {
    /// Where to push: `rtmp://host[:port]/app/key` for `rtmp`, `rtsp://host[:port]/path` for
    /// `rtsp-push`. Credentials in the URL are never printed.
    #[schemars(with = "String")]
    pub url: url::Url,
    /// RTSP transport for `rtsp-push` (ignored by `rtmp`).
    #[serde(default)]
    pub transport: RtspTransport,
    /// First delay before retrying after a failure, in seconds; doubles up to
    /// `retry_max_s`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_s: f64,
    /// Longest delay between retries, in seconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_s: f64,
}

/// Settings of a `redis` output.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisOutput {
    /// The server: `redis://[:password@]host[:port][/db]`.
    #[schemars(with = "String")]
    pub url: url::Url,
    /// Channel the frames are published on (`PUBLISH`). Default: `frames.<stream id>`.
    #[serde(default)]
    pub channel: Option<String>,
    /// `jpeg`, or `raw` (I420 planes, Y then U then V).
    #[serde(default)]
    pub format: RedisFormat,
    /// Picture width in pixels (the height keeps the aspect ratio). Default: the stream's.
    #[serde(default)]
    pub width: Option<u32>,
    /// JPEG quality, 1 to 100.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Most frames per second published.
    #[serde(default = "default_redis_fps")]
    pub max_fps: f64,
}

/// What a `redis` output publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisFormat {
    /// A JPEG picture.
    #[default]
    Jpeg,
    /// Raw I420.
    Raw,
}

fn default_quality() -> u8 {
    75
}
fn default_redis_fps() -> f64 {
    5.0
}

fn default_retry_initial() -> f64 {
    0.5
}
fn default_retry_max() -> f64 {
    10.0
}

/// The configuration `framegate run` uses when none is given: two moving test patterns with
/// the overlay, served on RTSP.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");
