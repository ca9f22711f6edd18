//! An encoder that restarts itself: when the encoder pipeline reports an error (or refuses
//! frames), it is torn down and started again with backoff, at the same output size, while the
//! stream says it is degraded and why. Frames that come meanwhile are dropped and counted; the
//! outputs keep their connections (they are fed by the fan-out, not by the encoder).
//!
//! The processing worker owns it ([`Supervised`]); everyone else sees its [`Health`]: the
//! stream's status, `/readyz`, the metrics, and the fan-out's key frame requests, which reach
//! whichever encoder runs now.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Result;
use gst::prelude::*;

use super::{EncodeSink, Encoder, EncoderKind};
use crate::config::EncoderConfig;
use crate::supervise::{Backoff, LogGate, lock};

/// Makes the sink of each encoder started (the first and every restart).
pub type SinkFactory = Box<dyn Fn() -> EncodeSink + Send>;

/// What the rest of the stream sees of its encoder.
#[derive(Default)]
pub struct Health {
    current: Mutex<Weak<Encoder>>,
    degraded: Mutex<Option<String>>,
    restarts: AtomicU64,
    dropped: AtomicU64,
}

impl Health {
    /// Asks the encoder running now for a key frame (rate-limited by the encoder).
    pub fn request_keyframe(&self) {
        if let Some(e) = lock(&self.current).upgrade() {
            e.request_keyframe();
        }
    }

    /// Why the encoder is not encoding now, if it is not.
    pub fn degraded(&self) -> Option<String> {
        lock(&self.degraded).clone()
    }

    /// Encoders started again after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Frames dropped while no encoder ran.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The encoder of a live stream, restarted when it fails.
pub struct Supervised {
    stream: String,
    settings: EncoderConfig,
    make_sink: SinkFactory,
    current: Option<Arc<Encoder>>,
    health: Arc<Health>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Encoders started so far: a new one has a new timeline.
    generation: u64,
    kind: EncoderKind,
    /// One line per cause and 10 s.
    logged: LogGate,
}

/// The first restart comes this soon after a failure; then doubling.
const RESTART_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between restarts.
const RESTART_MAX: Duration = Duration::from_secs(10);
/// The same failure is logged at most once in this time.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Supervised {
    /// Starts the first encoder; an encoder that cannot start at all fails the stream's start.
    pub fn start(stream: &str, settings: &EncoderConfig, make_sink: SinkFactory) -> Result<Self> {
        let first = Arc::new(Encoder::start(settings, make_sink(), true)?);
        let health = Arc::new(Health::default());
        *lock(&health.current) = Arc::downgrade(&first);
        Ok(Self {
            stream: stream.to_string(),
            settings: settings.clone(),
            kind: first.kind(),
            make_sink,
            current: Some(first),
            health,
            backoff: Backoff::new(RESTART_FIRST, RESTART_MAX),
            retry_at: None,
            generation: 1,
            logged: LogGate::new(LOG_EVERY),
        })
    }

    /// What the others see.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Which encoder element runs.
    pub fn kind(&self) -> EncoderKind {
        self.kind
    }

    /// Changes with every encoder started: the caller starts a new timeline then.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The output size, once the first frame has fixed it.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.current
            .as_ref()
            .and_then(|e| e.output_size())
            .or(self.settings.size.map(|[w, h]| (w, h)))
    }

    /// The running time of the encoder running now (zero while none runs).
    pub fn running_time(&self) -> gst::ClockTime {
        self.current
            .as_ref()
            .map_or(gst::ClockTime::ZERO, |e| e.running_time())
    }

    /// Looks at the encoder's bus: an error tears it down and schedules a restart; a restart
    /// that is due is tried. Call often (every frame or poll).
    pub fn check(&mut self) {
        let error = self.current.as_ref().and_then(|e| {
            let bus = e.pipeline().bus()?;
            let mut first = None;
            while let Some(msg) =
                bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning])
            {
                match msg.view() {
                    gst::MessageView::Error(err) if first.is_none() => {
                        first = Some(crate::elements::error_text(err));
                    }
                    gst::MessageView::Warning(w) => {
                        tracing::debug!(stream = %self.stream, "encoder warning: {}", w.error());
                    }
                    _ => {}
                }
            }
            first
        });
        if let Some(why) = error {
            self.failed(why);
        }
        if self.current.is_none() && self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.restart();
        }
    }

    /// Encodes a frame, or drops it (counted) while no encoder runs. A refused frame counts as
    /// a failure of the encoder.
    pub fn push(
        &mut self,
        buffer: gst::Buffer,
        info: &gst_video::VideoInfo,
        pts: Option<gst::ClockTime>,
    ) -> bool {
        let Some(e) = &self.current else {
            self.health.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match e.push(buffer, info, pts) {
            Ok(()) => {
                if self.retry_at.is_some() {
                    self.recovered();
                }
                true
            }
            Err(flow) => {
                self.failed(format!("the encoder refused a frame ({flow:?})"));
                false
            }
        }
    }

    /// Asks the running encoder for a key frame (rate-limited by the encoder).
    pub fn request_keyframe(&self) {
        self.health.request_keyframe();
    }

    /// Flushes the running encoder (end of the stream).
    pub fn finish(&self, timeout: Duration) -> Result<()> {
        match &self.current {
            Some(e) => e.finish(timeout),
            None => Ok(()),
        }
    }

    fn failed(&mut self, why: String) {
        let delay = self.backoff.next_delay();
        if self.logged.admit(&why) {
            tracing::error!(
                stream = %self.stream,
                "encoder failed: {why}; starting it again in {:.1} s",
                delay.as_secs_f64()
            );
        }
        *lock(&self.health.degraded) = Some(format!("encoder: {why}"));
        // Keep the output size: a new encoder must not renegotiate the outputs.
        if let Some(size) = self.current.as_ref().and_then(|e| e.output_size()) {
            self.settings.size = Some([size.0, size.1]);
        }
        self.current = None;
        self.retry_at = Some(Instant::now() + delay);
    }

    fn restart(&mut self) {
        match Encoder::start(&self.settings, (self.make_sink)(), true) {
            Ok(e) => {
                let e = Arc::new(e);
                *lock(&self.health.current) = Arc::downgrade(&e);
                e.request_keyframe();
                self.current = Some(e);
                self.generation += 1;
                self.health.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::info!(stream = %self.stream, "encoder started again");
                // Degraded until it has taken a frame.
            }
            Err(err) => {
                let delay = self.backoff.next_delay();
                *lock(&self.health.degraded) = Some(format!("encoder: cannot start: {err:#}"));
                self.retry_at = Some(Instant::now() + delay);
            }
        }
    }

    fn recovered(&mut self) {
        self.retry_at = None;
        self.backoff.reset();
        *lock(&self.health.degraded) = None;
        tracing::info!(stream = %self.stream, "encoder encoding again");
    }

    /// Makes the running encoder fail as a broken element would: an error on its bus (for the
    /// tests of the supervision, which use real encoders).
    #[doc(hidden)]
    pub fn inject_error(&self, text: &str) {
        if let Some(e) = &self.current {
            let msg = gst::message::Error::builder(gst::CoreError::Failed, text)
                .src(e.pipeline())
                .build();
            let _ = e.pipeline().post_message(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(info: &gst_video::VideoInfo) -> gst::Buffer {
        gst::Buffer::from_mut_slice(vec![16u8; info.size()])
    }

    #[test]
    fn a_failed_encoder_is_started_again_and_the_stream_says_so_meanwhile() {
        gst::init().expect("gstreamer");
        let encoded = Arc::new(AtomicU64::new(0));
        let count = encoded.clone();
        let settings = EncoderConfig {
            hardware: crate::config::Hardware::Off,
            ..EncoderConfig::default()
        };
        let mut enc = Supervised::start(
            "test",
            &settings,
            Box::new(move || {
                let count = count.clone();
                EncodeSink::Samples(Box::new(move |_, _| {
                    count.fetch_add(1, Ordering::Relaxed);
                }))
            }),
        )
        .expect("encoder");
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 64, 48)
            .fps(gst::Fraction::new(25, 1))
            .build()
            .expect("info");
        let feed = |enc: &mut Supervised, n: usize| {
            for _ in 0..n {
                enc.check();
                enc.push(frame(&info), &info, None);
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        feed(&mut enc, 20);
        let deadline = Instant::now() + Duration::from_secs(10);
        while encoded.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            feed(&mut enc, 1);
        }
        assert!(encoded.load(Ordering::Relaxed) > 0, "nothing encoded");
        assert!(enc.health().degraded().is_none());

        enc.inject_error("the element broke");
        enc.check();
        let why = enc.health().degraded().expect("degraded");
        assert!(why.contains("the element broke"), "{why}");
        // Frames meanwhile are dropped, not queued.
        enc.push(frame(&info), &info, None);
        assert!(enc.health().dropped() >= 1);
        let generation = enc.generation();
        // Within the first backoff (about 0.5 s) it runs again and encodes.
        let before = encoded.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while (enc.health().degraded().is_some() || encoded.load(Ordering::Relaxed) <= before)
            && Instant::now() < deadline
        {
            feed(&mut enc, 1);
        }
        assert!(enc.health().degraded().is_none(), "still degraded");
        assert!(
            encoded.load(Ordering::Relaxed) > before,
            "nothing encoded after the restart"
        );
        assert_eq!(enc.generation(), generation + 1);
        assert_eq!(enc.health().restarts(), 1);
        assert_eq!(enc.output_size(), Some((64, 48)));
    }
}
