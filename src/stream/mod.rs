//! One stream at run time: its supervised ingest, its processing worker, its encoder and its
//! outputs, wired as in the diagram below. Streams share nothing but the RTSP server, so one
//! stream's failure never reaches another.
//!
//! ```text
//!  ingest worker ──(newest-frame slot)──→ processing worker ──→ encoder ──→ fan-out ──→ outputs
//!  (restarts the source                    (processors, then                (RTSP mount,
//!   with backoff; owns the state)           encode; fills gaps;              push workers)
//!                                            logs summaries)
//! ```

mod histogram;
mod ingest_worker;
mod process_worker;
mod slate;
mod start;
mod state;
mod stats;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::audio::AudioTrack;

use crate::config::{ServerConfig, StreamConfig, StreamId};
use crate::encode::{EncoderHealth, EncoderKind};
use crate::frame::{Frame, LatestSlot, frame_tap};
use crate::ingest::{DecodeCounters, SourceInfo};
use crate::process::{Chain, DetectHandle, Hooks, Models, TrackHandle, WatermarkHandle};
use crate::publish::{
    Fanout, HlsHub, IceSettings, JpegHub, LlHlsHub, PushOutput, RedisPublisher, RtspServer,
    VideoSwitch, WhepHub,
};
use crate::supervise::Shutdown;

pub use histogram::Histogram;
pub use state::{StateCell, StreamState};
pub use stats::StreamStats;

/// Decoded frames the processing worker may be behind by before the oldest is dropped: two
/// absorb a burst of frames decoded back to back (an RTMP relay delivers them so) without a
/// drop, and wait one frame at most, only while the worker is behind.
const FRAME_SLOT_DEPTH: usize = 2;

/// A running stream.
pub struct Stream {
    id: StreamId,
    state: Arc<StateCell>,
    stats: Arc<StreamStats>,
    source_info: Arc<Mutex<SourceInfo>>,
    encoder_kind: EncoderKind,
    encoder_health: Arc<EncoderHealth>,
    started: Instant,
    shutdown: Shutdown,
    slot: Arc<LatestSlot<Frame>>,
    ingest: Option<JoinHandle<()>>,
    processing: Option<JoinHandle<()>>,
    housekeeping: Option<JoinHandle<()>>,
    outputs: Vec<PushOutput>,
    redis: Vec<RedisPublisher>,
    fanout: Arc<Fanout>,
    audio: Arc<AudioTrack>,
    jpeg: Arc<JpegHub>,
    hls: Arc<HlsHub>,
    llhls: Arc<LlHlsHub>,
    whep: Arc<WhepHub>,
    rtsp_urls: Vec<String>,
    mounts: Vec<String>,
    detectors: Vec<Arc<DetectHandle>>,
    tracker: Option<Arc<TrackHandle>>,
    watermarks: Vec<Arc<WatermarkHandle>>,
    video: Option<Arc<VideoSwitch>>,
    decode_counters: Arc<DecodeCounters>,
}

/// How often idle outputs and vanished WebRTC peers are looked for.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

impl Stream {
    /// Starts a stream: its encoder and outputs at once, its source as soon as it can be reached.
    pub fn start(
        config: &StreamConfig,
        server: &ServerConfig,
        rtsp: Option<&RtspServer>,
        models: &Models,
        hooks: &Hooks,
    ) -> Result<Self> {
        // A setting this machine cannot meet fails the start, once, instead of every retry.
        crate::hardware::check_decoder(config.decoder.hardware).map_err(anyhow::Error::msg)?;
        let id = config.id().clone();
        let state = Arc::new(StateCell::new(id.clone(), hooks.events.clone()));
        let stats = Arc::new(StreamStats::default());
        let source_info: Arc<Mutex<SourceInfo>> = Arc::default();
        let shutdown = Shutdown::new();
        let slot = LatestSlot::newest(FRAME_SLOT_DEPTH);
        let tap = frame_tap();
        let jpeg = Arc::new(JpegHub::new(id.clone(), tap.subscribe()));

        let audio = AudioTrack::new(id.clone(), config.audio);
        let (fanout, video, encoder) = start::encoder(&id, config, &stats, &audio)?;
        let decode_counters: Arc<DecodeCounters> = Arc::default();
        let encoder_health = encoder.health().clone();
        let encoder_kind = encoder.kind();
        tracing::info!(stream = %id, encoder = %encoder_kind, "encoder ready");
        // From here, a stage that fails undoes the ones before it (guards).
        let mounts = start::Mounts::make(config, rtsp, &fanout, &audio)?;
        let (outputs, redis) = start::outputs(&id, config, &fanout, &audio, &jpeg, &hooks.fence)?;
        let hls = Arc::new(HlsHub::new(id.clone(), fanout.clone(), audio.clone()));
        let llhls = Arc::new(LlHlsHub::new(
            id.clone(),
            fanout.clone(),
            audio.clone(),
            config.encoder.keyframe_interval,
        ));
        let ice = IceSettings {
            addresses: server.webrtc.addresses(server.http),
            stun_server: server.webrtc.stun_server.clone(),
            turn_servers: server.webrtc.turn_servers.clone(),
            udp_ports: server.webrtc.udp_ports,
        };
        let whep = Arc::new(WhepHub::new(id.clone(), fanout.clone(), audio.clone(), ice));
        let shapes = crate::process::Shapes {
            lines: &config.lines,
            zones: &config.zones,
        };
        let chain = Chain::from_config(&config.processors, shapes, models, hooks);
        let detectors = chain.detectors().to_vec();
        let tracker = chain.tracker().cloned();
        let watermarks = chain.watermarks().to_vec();

        let mut workers = start::Workers::new(&shutdown, &slot);
        let ingest = ingest_worker::Context {
            config: config.clone(),
            state: state.clone(),
            stats: stats.clone(),
            slot: slot.clone(),
            shutdown: shutdown.clone(),
            seq: Arc::new(AtomicU64::new(0)),
            source_info: source_info.clone(),
            audio: audio.clone(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            video: video.clone(),
            decode_counters: decode_counters.clone(),
        };
        workers.spawn(format!("in-{id}"), "ingest", move || {
            ingest_worker::run(ingest)
        })?;
        let processing = process_worker::Context {
            id: id.clone(),
            chain,
            slot: slot.clone(),
            encoder,
            video: video.clone(),
            fanout: fanout.clone(),
            audio: audio.clone(),
            stats: stats.clone(),
            state: state.clone(),
            summary_interval: (server.summary_interval_s > 0.0)
                .then(|| Duration::from_secs_f64(server.summary_interval_s)),
            stall_timeout: Duration::from_secs_f64(config.stall_timeout_s),
            default_fps: config.encoder.fps,
            tap,
        };
        workers.spawn(format!("proc-{id}"), "processing", move || {
            process_worker::run(processing)
        })?;
        // Output housekeeping, off the frame thread: tearing down an idle HLS output or a
        // vanished WebRTC peer's pipeline takes milliseconds the video must not wait for.
        {
            let (hls, llhls, whep, audio, shutdown) = (
                hls.clone(),
                llhls.clone(),
                whep.clone(),
                audio.clone(),
                shutdown.clone(),
            );
            workers.spawn(format!("keep-{id}"), "housekeeping", move || {
                while !shutdown.wait(HOUSEKEEPING) {
                    hls.stop_if_idle();
                    llhls.stop_if_idle();
                    whep.reap();
                    audio.reap();
                }
            })?;
        }
        let mut threads = workers.keep().into_iter();
        let (ingest, processing, housekeeping) = (threads.next(), threads.next(), threads.next());
        let (mounts, rtsp_urls) = mounts.keep();
        Ok(Self {
            id,
            state,
            stats,
            source_info,
            encoder_kind,
            encoder_health,
            started: Instant::now(),
            shutdown,
            slot,
            ingest,
            processing,
            housekeeping,
            outputs,
            redis,
            hls,
            llhls,
            whep,
            fanout,
            audio,
            jpeg,
            rtsp_urls,
            mounts,
            detectors,
            tracker,
            watermarks,
            video,
            decode_counters,
        })
    }

    /// Its video switch, when it may pass the camera's video through.
    pub fn video_switch(&self) -> Option<&Arc<VideoSwitch>> {
        self.video.as_ref()
    }

    /// What the decoder's branch did while passing through.
    pub fn decode_counters(&self) -> &DecodeCounters {
        &self.decode_counters
    }

    /// Its encoder's health: why it is degraded (if it is), restarts, frames dropped meanwhile.
    pub fn encoder_health(&self) -> &Arc<EncoderHealth> {
        &self.encoder_health
    }

    /// Its watermarks (to change their ID at run time).
    pub fn watermarks(&self) -> &[Arc<WatermarkHandle>] {
        &self.watermarks
    }

    /// Its tracker (live tracks, counts per line and zone), when it has a `track` processor.
    pub fn tracker(&self) -> Option<&Arc<TrackHandle>> {
        self.tracker.as_ref()
    }

    /// Its detectors (status, current boxes, detection events).
    pub fn detectors(&self) -> &[Arc<DetectHandle>] {
        &self.detectors
    }

    /// The stream's id.
    pub fn id(&self) -> &StreamId {
        &self.id
    }

    /// Its current state.
    pub fn state(&self) -> StreamState {
        self.state.get()
    }

    /// Its state cell (state, time in it, last error).
    pub fn state_cell(&self) -> &StateCell {
        &self.state
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<StreamStats> {
        &self.stats
    }

    /// What is known about its source.
    pub fn source_info(&self) -> SourceInfo {
        self.source_info
            .lock()
            .map(|i| i.clone())
            .unwrap_or_default()
    }

    /// The encoder element it runs.
    pub fn encoder_kind(&self) -> EncoderKind {
        self.encoder_kind
    }

    /// Time since it started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Its audio track.
    pub fn audio(&self) -> &Arc<AudioTrack> {
        &self.audio
    }

    /// Access units dropped by its outputs.
    pub fn dropped_outputs(&self) -> u64 {
        self.fanout.dropped()
    }

    /// Its JPEG encoders for browser viewers (started while someone watches).
    pub fn jpeg(&self) -> &Arc<JpegHub> {
        &self.jpeg
    }

    /// Its on-demand HLS output.
    pub fn hls(&self) -> &Arc<HlsHub> {
        &self.hls
    }

    /// Its LL-HLS output (started on demand).
    pub fn llhls(&self) -> &Arc<LlHlsHub> {
        &self.llhls
    }

    /// URLs of its RTSP mounts on framegate's server.
    pub fn rtsp_urls(&self) -> &[String] {
        &self.rtsp_urls
    }

    /// Its WebRTC (WHEP) sessions.
    pub fn whep(&self) -> &Arc<WhepHub> {
        &self.whep
    }

    /// Its `redis` outputs.
    pub fn redis_outputs(&self) -> &[RedisPublisher] {
        &self.redis
    }

    /// Its push outputs.
    pub fn push_outputs(&self) -> &[PushOutput] {
        &self.outputs
    }

    /// Starts stopping, without waiting: the source stops, outputs send end-of-stream.
    pub fn begin_stop(&self) {
        self.shutdown.trigger();
        for o in &self.outputs {
            o.begin_stop();
        }
    }

    /// Removes its RTSP mounts (their viewers get end-of-stream first). Done before
    /// [`Stream::stop`], so that a stream started again under the same name can mount at once.
    pub fn unmount(&mut self, rtsp: Option<&RtspServer>) {
        self.fanout.finish();
        self.audio.finish();
        if let Some(server) = rtsp {
            for m in self.mounts.drain(..) {
                server.unmount(&m);
            }
        }
    }

    /// Stops the stream and waits for its workers (about a second, at most a few).
    pub fn stop(mut self) {
        self.stop_in_place();
    }

    /// What [`Stream::stop`] does; also what dropping a stream that was not stopped does, so
    /// that no stream's threads or camera connection outlive it.
    fn stop_in_place(&mut self) {
        if self.ingest.is_none() && self.processing.is_none() {
            return;
        }
        self.begin_stop();
        if let Some(t) = self.ingest.take() {
            let _ = t.join();
        }
        self.slot.close();
        if let Some(t) = self.processing.take() {
            let _ = t.join();
        }
        if let Some(t) = self.housekeeping.take() {
            let _ = t.join();
        }
        // Push outputs send end-of-stream to their servers as they stop.
        self.outputs.clear();
        self.fanout.finish();
        self.audio.finish();
        self.state.set(StreamState::Stopped, None);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop_in_place();
    }
}
