//! Push outputs (`rtmp`, `rtsp-push`): each runs in its own pipeline and worker thread, fed from
//! the stream's fan-out, and reconnects with backoff when the server is down or goes away. A
//! failing output never touches the stream or its other outputs.
//!
//! ```text
//! rtmp:      appsrc → h264parse → flvmux (streamable) → rtmp2sink
//!            appsrc (AAC or MP3: the source's, else a shared AAC transcode) → parser ↗
//! rtsp-push: appsrc → h264parse → rtspclientsink (ANNOUNCE/RECORD)
//!            appsrc (the source's audio, any codec) → parser ↗
//! ```
//! An output connects again, at once, when the stream's audio appears or changes codec: what
//! it announced to the server must change.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::cluster::fence::Fence;
use crate::config::masked_url as masked;
use crate::config::{OutputConfig, PushOutput as PushConfig, RtspTransport, StreamId};
use crate::elements::{error_text, make, stop};
use crate::supervise::{Backoff, Shutdown};

use super::audio::AudioInput;
use super::fanout::{EncodedSink, Fanout};
use super::feed::{AppSrcFeed, Retimer};
use crate::audio::{AudioCodec, AudioFormat, AudioTrack, OutputAudio};

/// How often a fenced output looks whether the fence opened again.
const FENCE_POLL: Duration = Duration::from_millis(100);
/// Access units a push output may hold before it drops and waits for a key frame.
const PUSH_QUEUE_FRAMES: u64 = 25;
/// An output that stayed up this long starts its next retry from the first delay.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a stopping output waits for end-of-stream to reach the server.
const EOS_TIMEOUT: Duration = Duration::from_millis(1500);
/// The longest the first connection waits for the stream's audio to be known (a source that
/// is down at start).
const AUDIO_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rtmp,
    RtspPush,
}

/// Where an output is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputState {
    /// Opening its connection.
    #[default]
    Connecting,
    /// Sending.
    Publishing,
    /// Waiting before the next attempt, after a failure.
    Retrying,
    /// Served to clients that connect (framegate's own RTSP).
    Serving,
    /// Not connected: the node may no longer hold this camera for the cluster (its lease
    /// could not be renewed in time).
    Fenced,
}

/// Where a push output is, for status and metrics.
#[derive(Debug, Clone, Default)]
pub struct PushStatus {
    /// Its state.
    pub state: OutputState,
    /// The last failure and when it happened.
    pub last_error: Option<(String, SystemTime)>,
    /// Connections that failed.
    pub failures: u64,
    /// The audio it sends (none: video only).
    pub audio: Option<OutputAudio>,
}

/// A push output and its worker.
pub struct PushOutput {
    name: String,
    kind: &'static str,
    url: String,
    status: Arc<Mutex<PushStatus>>,
    stop: Shutdown,
    worker: Option<JoinHandle<()>>,
}

impl PushOutput {
    /// Starts pushing; returns `None` for outputs that are not push outputs.
    pub fn start(
        stream: &StreamId,
        config: &OutputConfig,
        fanout: Arc<Fanout>,
        audio: Arc<AudioTrack>,
        fence: Fence,
    ) -> Option<Result<Self>> {
        let (kind, cfg) = match config {
            OutputConfig::Rtmp(c) => (Kind::Rtmp, c.clone()),
            OutputConfig::RtspPush(c) => (Kind::RtspPush, c.clone()),
            OutputConfig::Rtsp(_) | OutputConfig::Redis(_) => return None,
        };
        let url = masked(&cfg.url);
        let name = format!("{} {url}", config.kind());
        let stop = Shutdown::new();
        let status = Arc::new(Mutex::new(PushStatus {
            state: OutputState::Connecting,
            ..PushStatus::default()
        }));
        let worker = {
            let (name, stop, stream, status) =
                (name.clone(), stop.clone(), stream.clone(), status.clone());
            std::thread::Builder::new()
                .name(format!("out-{stream}"))
                .spawn(move || {
                    let w = Worker {
                        stream: &stream,
                        name: &name,
                        kind,
                        cfg: &cfg,
                        fanout: &fanout,
                        audio: &audio,
                        stop: &stop,
                        status: &status,
                        fence: &fence,
                    };
                    w.run();
                })
                .context("starting an output thread")
        };
        Some(worker.map(|w| Self {
            name,
            kind: config.kind(),
            url,
            status,
            stop,
            worker: Some(w),
        }))
    }

    /// The output's name for logs (`rtmp rtmp://host/live/x`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The output's `kind`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Where it pushes to (password masked).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its current status.
    pub fn status(&self) -> PushStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Signals the worker to finish (end-of-stream to the server) without waiting.
    pub fn begin_stop(&self) {
        self.stop.trigger();
    }
}

impl Drop for PushOutput {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The output's worker: everything it needs, borrowed for its thread's life.
struct Worker<'a> {
    stream: &'a StreamId,
    name: &'a str,
    kind: Kind,
    cfg: &'a PushConfig,
    fanout: &'a Arc<Fanout>,
    audio: &'a AudioTrack,
    stop: &'a Shutdown,
    status: &'a Mutex<PushStatus>,
    fence: &'a Fence,
}

impl Worker<'_> {
    fn set(&self, f: impl FnOnce(&mut PushStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn run(&self) {
        let mut backoff = Backoff::from_secs(self.cfg.retry_initial_s, self.cfg.retry_max_s);
        // The first connection waits (a while at most) until the stream's audio is known: a
        // server that takes one publish per stream then gets both tracks at once, not a
        // video-only stream replaced a moment later.
        let until = Instant::now() + AUDIO_WAIT;
        while !self.audio.settled() && Instant::now() < until {
            if self.stop.wait(Duration::from_millis(20)) {
                return;
            }
        }
        while !self.stop.is_set() {
            // A camera the node may no longer hold for the cluster: no connection at all.
            if !self.fence.allows() {
                self.set(|s| s.state = OutputState::Fenced);
                if self.stop.wait(FENCE_POLL) {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            self.set(|s| s.state = OutputState::Connecting);
            let error = match self.run_once() {
                Ok(Ended::Stopped) => return,
                Ok(Ended::AudioChanged) => continue,
                Ok(Ended::Fenced) => {
                    tracing::warn!(stream = %self.stream, output = self.name, "fenced: the node may no longer hold this camera; output closed");
                    continue;
                }
                Err(e) => format!("{e:#}"),
            };
            if started.elapsed() > STABLE_AFTER {
                backoff.reset();
            }
            let attempt = backoff.attempt();
            let delay = backoff.next_delay();
            tracing::warn!(
                stream = %self.stream,
                output = self.name,
                attempt,
                "output failed: {error}; retrying in {:.1} s",
                delay.as_secs_f64()
            );
            self.set(|s| {
                s.state = OutputState::Retrying;
                s.failures += 1;
                s.last_error = Some((error, SystemTime::now()));
            });
            if self.stop.wait(delay) {
                return;
            }
        }
    }

    /// Runs one connection until it fails (`Err`), the output is stopped, or the stream's
    /// audio changed (it appeared, or changed codec: the server must be told).
    fn run_once(&self) -> Result<Ended> {
        let retimer = Retimer::new();
        let source_audio = self.audio.format();
        let audio = match self.kind {
            Kind::Rtmp => AudioInput::new(
                self.name,
                self.audio,
                flv_carries,
                AudioCodec::Aac,
                &retimer,
            ),
            Kind::RtspPush => {
                AudioInput::new(self.name, self.audio, |_| true, AudioCodec::Aac, &retimer)
            }
        };
        let (pipeline, appsrc) = build(
            self.kind,
            self.cfg,
            self.fanout.caps().as_ref(),
            audio.as_ref(),
        )?;
        let _guard = PipelineGuard(pipeline.clone());
        // The last check before data leaves the process: a buffer that reaches the network
        // element after the fence closed (the process was stopped past its lease, and resumed)
        // is dropped there.
        fence_sink_pads(&pipeline, self.fence);
        let sink: Arc<dyn EncodedSink> = Arc::new(AppSrcFeed::sharing(
            self.name,
            &appsrc,
            PUSH_QUEUE_FRAMES,
            &retimer,
            true,
        ));
        pipeline
            .set_state(gst::State::Playing)
            .context("cannot start the output pipeline")?;
        self.fanout.add(sink.clone());
        let _feed = FeedGuard(self.fanout.clone(), sink);
        let _audio_feed = audio.as_ref().map(|a| {
            a.attach();
            AudioGuard(a)
        });
        self.set(|s| s.audio = audio.as_ref().map(|a| a.status.clone()));
        let bus = pipeline.bus().context("output pipeline has no bus")?;
        let mut live = false;
        loop {
            if !self.fence.allows() {
                // No end-of-stream: not one more byte goes out.
                return Ok(Ended::Fenced);
            }
            if self.stop.is_set() {
                let _ = appsrc.end_of_stream();
                if let Some(a) = &audio {
                    let _ = a.appsrc.end_of_stream();
                }
                wait_eos(&bus, EOS_TIMEOUT);
                tracing::info!(stream = %self.stream, output = self.name, "output stopped");
                return Ok(Ended::Stopped);
            }
            if self.audio.enabled() && self.audio.format() != source_audio {
                tracing::info!(
                    stream = %self.stream,
                    output = self.name,
                    "the stream's audio changed ({}): reconnecting to send it",
                    self.audio.format().map_or("none".into(), |f| f.describe())
                );
                return Ok(Ended::AudioChanged);
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(e) => {
                    anyhow::bail!("{}", error_text(e));
                }
                gst::MessageView::Eos(_) if self.stop.is_set() => {
                    // The stream is ending and its end-of-stream went through.
                    tracing::info!(stream = %self.stream, output = self.name, "output stopped");
                    return Ok(Ended::Stopped);
                }
                gst::MessageView::Eos(_) => anyhow::bail!("the server ended the stream"),
                gst::MessageView::StateChanged(s)
                    if !live
                        && s.current() == gst::State::Playing
                        && msg.src() == Some(pipeline.upcast_ref()) =>
                {
                    live = true;
                    self.set(|s| s.state = OutputState::Publishing);
                    tracing::info!(stream = %self.stream, output = self.name, "output publishing");
                }
                _ => {}
            }
        }
    }
}

/// How one connection ended, when it did not fail.
enum Ended {
    /// The output was stopped.
    Stopped,
    /// The stream's audio changed: connect again at once, with it.
    AudioChanged,
    /// The fence closed: the connection was dropped without a goodbye.
    Fenced,
}

/// Drops every buffer at the network element's inputs while `fence` is closed.
fn fence_sink_pads(pipeline: &gst::Pipeline, fence: &Fence) {
    let sinks = pipeline.iterate_sinks().into_iter().flatten();
    for sink in sinks {
        for pad in sink.sink_pads() {
            let fence = fence.clone();
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, _| {
                    if fence.allows() {
                        gst::PadProbeReturn::Ok
                    } else {
                        gst::PadProbeReturn::Drop
                    }
                },
            );
        }
    }
}

/// What FLV carries as it is: AAC, and MP3 at FLV's rates. Anything else becomes AAC.
/// How long the FLV muxer waits for the track that is behind (see `build`).
const FLV_INTERLEAVE_WAIT: gst::ClockTime = gst::ClockTime::from_mseconds(150);

fn flv_carries(f: &AudioFormat) -> bool {
    match f.codec {
        AudioCodec::Aac => true,
        AudioCodec::Mp3 => [5_512, 8_000, 11_025, 22_050, 44_100].contains(&f.rate),
        _ => false,
    }
}

fn build(
    kind: Kind,
    cfg: &PushConfig,
    caps: Option<&gst::Caps>,
    audio: Option<&AudioInput>,
) -> Result<(gst::Pipeline, gst_app::AppSrc)> {
    let pipeline = gst::Pipeline::new();
    let appsrc = AppSrcFeed::appsrc(caps);
    let parse = make("h264parse")?;
    pipeline.add_many([appsrc.upcast_ref(), &parse])?;
    appsrc.link(&parse)?;
    // The audio, parsed again (its caps complete for the muxer or payloader).
    let audio_out = match audio {
        Some(a) => {
            let parse = match a.codec.parser() {
                Some(p) => make(p)?,
                None => make("identity")?,
            };
            pipeline.add_many([a.appsrc.upcast_ref(), &parse])?;
            a.appsrc.link(&parse)?;
            Some(parse)
        }
        None => None,
    };
    match kind {
        Kind::Rtmp => {
            let mux = make("flvmux")?;
            mux.set_property("streamable", true);
            if audio_out.is_some() {
                // FLV interleaves by time and never goes back: sound that comes later than the
                // picture of the same instant (a transcode's encoder holds a frame or two)
                // would be stamped with the picture's later time. The muxer waits this long
                // for the other track before it writes.
                mux.set_property("latency", FLV_INTERLEAVE_WAIT.nseconds());
            }
            let sink = make("rtmp2sink")?;
            sink.set_property("location", cfg.url.as_str());
            pipeline.add_many([&mux, &sink])?;
            parse
                .link_pads(None, &mux, Some("video"))
                .context("linking the video to flvmux")?;
            mux.link(&sink)?;
            if let Some(a) = &audio_out {
                a.link_pads(None, &mux, Some("audio"))
                    .context("linking the audio to flvmux")?;
            }
        }
        Kind::RtspPush => {
            let sink = make("rtspclientsink")?;
            sink.set_property("location", cfg.url.as_str());
            sink.set_property("latency", 0u32);
            sink.set_property_from_str(
                "protocols",
                match cfg.transport {
                    RtspTransport::Tcp => "tcp",
                    RtspTransport::Udp => "udp",
                },
            );
            pipeline.add(&sink)?;
            parse.link(&sink)?;
            if let Some(a) = &audio_out {
                a.link(&sink)
                    .context("linking the audio to rtspclientsink")?;
            }
        }
    }
    Ok((pipeline, appsrc))
}

fn wait_eos(bus: &gst::Bus, timeout: Duration) {
    let _ = bus.timed_pop_filtered(
        gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
}

struct PipelineGuard(gst::Pipeline);
impl Drop for PipelineGuard {
    fn drop(&mut self) {
        stop(&self.0);
    }
}

struct AudioGuard<'a>(&'a AudioInput);
impl Drop for AudioGuard<'_> {
    fn drop(&mut self) {
        self.0.detach();
    }
}

struct FeedGuard(Arc<Fanout>, Arc<dyn EncodedSink>);
impl Drop for FeedGuard {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}
