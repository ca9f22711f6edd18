//! The stages of starting a stream, each undone if a later one fails: the encoder and its
//! fan-out, the RTSP mounts (unmounted), the push and Redis outputs (stopped when dropped), the
//! worker threads (told to stop and joined). A stream that cannot start leaves nothing behind.

use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use crate::audio::AudioTrack;
use crate::config::{OutputConfig, StreamConfig, StreamId};
use crate::encode::{EncodeSink, EncoderHealth, Supervised};
use crate::frame::{Frame, LatestSlot};
use crate::publish::{Fanout, JpegHub, PushOutput, RedisPublisher, RtspServer, VideoSwitch};
use crate::supervise::Shutdown;

use super::StreamStats;

/// The stream's encoder, started, feeding a new fan-out (through the video switch when the
/// stream may pass the camera's video through); the fan-out asks the encoder (the current one,
/// through its restarts) for key frames when a viewer joins.
pub(super) fn encoder(
    id: &StreamId,
    config: &StreamConfig,
    stats: &Arc<StreamStats>,
    audio: &Arc<AudioTrack>,
) -> Result<(Arc<Fanout>, Option<Arc<VideoSwitch>>, Supervised)> {
    let health_cell: Arc<OnceLock<Weak<EncoderHealth>>> = Arc::default();
    let fanout = {
        let cell = health_cell.clone();
        Fanout::new(move || {
            if let Some(h) = cell.get().and_then(Weak::upgrade) {
                h.request_keyframe();
            }
        })
    };
    let switch = match config.passthrough_allowed() {
        Ok(()) => Some(VideoSwitch::new(fanout.clone(), audio.clone())),
        Err(why) => {
            tracing::debug!(stream = %id, "video encoded: {why}");
            None
        }
    };
    let encoder = {
        let (fanout, switch, stats) = (fanout.clone(), switch.clone(), stats.clone());
        // Each encoder started (the first, and each restart after a failure) feeds the same
        // fan-out.
        let sinks: crate::encode::SinkFactory = Box::new(move || {
            let (fanout, switch, stats) = (fanout.clone(), switch.clone(), stats.clone());
            EncodeSink::Samples(Box::new(move |sample, spent| {
                stats.record_encoded(spent);
                match &switch {
                    Some(s) => s.encoded(&sample),
                    None => fanout.publish(&sample),
                }
            }))
        });
        Supervised::start(id.as_str(), &config.encoder, sinks)
            .with_context(|| format!("stream `{id}`: starting the encoder"))?
    };
    let _ = health_cell.set(Arc::downgrade(encoder.health()));
    Ok((fanout, switch, encoder))
}

/// RTSP mounts made so far; unmounted when dropped unless [`Mounts::keep`] took them.
pub(super) struct Mounts<'a> {
    server: Option<&'a RtspServer>,
    paths: Vec<String>,
    urls: Vec<String>,
}

impl<'a> Mounts<'a> {
    /// Mounts every `rtsp` output of the stream on the server.
    pub fn make(
        config: &StreamConfig,
        server: Option<&'a RtspServer>,
        fanout: &Arc<Fanout>,
        audio: &Arc<AudioTrack>,
    ) -> Result<Self> {
        let mut m = Self {
            server,
            paths: Vec::new(),
            urls: Vec::new(),
        };
        for path in crate::config::rtsp_mounts(config) {
            let server = server.context("an `rtsp` output needs the RTSP server")?;
            server.mount(&path, fanout.clone(), audio.clone())?;
            m.urls.push(server.url(&path));
            m.paths.push(path);
        }
        Ok(m)
    }

    /// The stream keeps them: (mounted paths, their URLs).
    pub fn keep(mut self) -> (Vec<String>, Vec<String>) {
        (
            std::mem::take(&mut self.paths),
            std::mem::take(&mut self.urls),
        )
    }
}

impl Drop for Mounts<'_> {
    fn drop(&mut self) {
        if let Some(server) = self.server {
            for p in self.paths.drain(..) {
                server.unmount(&p);
            }
        }
    }
}

/// The push outputs (RTMP, RTSP push) and Redis outputs of the stream, started; each stops
/// when dropped.
pub(super) fn outputs(
    id: &StreamId,
    config: &StreamConfig,
    fanout: &Arc<Fanout>,
    audio: &Arc<AudioTrack>,
    jpeg: &Arc<JpegHub>,
    fence: &crate::cluster::fence::Fence,
) -> Result<(Vec<PushOutput>, Vec<RedisPublisher>)> {
    let mut push = Vec::new();
    for o in &config.outputs {
        if let Some(out) = PushOutput::start(id, o, fanout.clone(), audio.clone(), fence.clone()) {
            push.push(out?);
        }
    }
    let mut redis = Vec::new();
    for o in &config.outputs {
        if let OutputConfig::Redis(r) = o {
            redis.push(RedisPublisher::start(id, r, jpeg)?);
        }
    }
    Ok((push, redis))
}

/// Worker threads started so far; if dropped before [`Workers::keep`], they are told to stop
/// (the shutdown signal, the frame slot closed) and joined.
pub(super) struct Workers {
    shutdown: Shutdown,
    slot: Arc<LatestSlot<Frame>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn new(shutdown: &Shutdown, slot: &Arc<LatestSlot<Frame>>) -> Self {
        Self {
            shutdown: shutdown.clone(),
            slot: slot.clone(),
            threads: Vec::new(),
        }
    }

    /// Starts a named worker thread.
    pub fn spawn(
        &mut self,
        name: String,
        what: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<()> {
        let t = std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .with_context(|| format!("starting the {what} thread"))?;
        self.threads.push(t);
        Ok(())
    }

    /// The stream keeps them, in the order they were started.
    pub fn keep(mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.threads)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.shutdown.trigger();
        self.slot.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use crate::frame::SlotRecv;

    #[test]
    fn mounts_a_failed_start_did_not_keep_are_unmounted() {
        gst::init().expect("gst");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = RtspServer::start("127.0.0.1".parse().expect("ip"), port).expect("server");
        let config: StreamConfig = toml::from_str(
            r#"id = "cam"
source = "test://ball"
outputs = [ { kind = "rtsp" }, { kind = "rtsp", path = "/second" } ]"#,
        )
        .expect("config");
        let fanout = Fanout::new(|| {});
        let audio = AudioTrack::new(config.id().clone(), crate::config::AudioMode::Auto);
        // Kept: still mounted.
        let (paths, urls) = Mounts::make(&config, Some(&server), &fanout, &audio)
            .expect("mounted")
            .keep();
        assert_eq!(paths, ["/cam", "/second"]);
        assert!(urls[1].ends_with(&format!(":{port}/second")), "{urls:?}");
        assert!(paths.iter().all(|p| server.is_mounted(p)));
        for p in &paths {
            server.unmount(p);
        }
        // Not kept (a later stage failed): unmounted.
        drop(Mounts::make(&config, Some(&server), &fanout, &audio).expect("mounted"));
        assert!(!server.is_mounted("/cam") && !server.is_mounted("/second"));
    }

    #[test]
    fn workers_a_failed_start_did_not_keep_are_stopped_and_joined() {
        let shutdown = Shutdown::new();
        let slot: Arc<LatestSlot<Frame>> = LatestSlot::new();
        let (by_signal, by_slot) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut workers = Workers::new(&shutdown, &slot);
        {
            let (shutdown, done) = (shutdown.clone(), by_signal.clone());
            workers
                .spawn("t-signal".into(), "test", move || {
                    while !shutdown.wait(Duration::from_millis(10)) {}
                    done.store(true, Ordering::SeqCst);
                })
                .expect("spawn");
        }
        {
            let (slot, done) = (slot.clone(), by_slot.clone());
            workers
                .spawn("t-slot".into(), "test", move || {
                    while !matches!(
                        slot.recv_timeout(Duration::from_millis(10)),
                        SlotRecv::Closed
                    ) {}
                    done.store(true, Ordering::SeqCst);
                })
                .expect("spawn");
        }
        // Dropping them (as a failed start does) must end both, and return: watched.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(workers);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the workers were stopped and joined");
        assert!(by_signal.load(Ordering::SeqCst) && by_slot.load(Ordering::SeqCst));
    }
}
