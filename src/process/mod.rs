//! Processors: the Rust stages every frame goes through between decoder and encoder.
//!
//! A processor is a small trait object with its settings and its per-stream state. Adding one is
//! one file here, one variant in [`crate::config::ProcessorConfig`], and one arm in
//! [`Chain::from_config`].

mod clock;
pub mod detect;
mod overlay;
pub mod python;
mod skip_similar;
pub mod track;
pub mod watermark;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ProcessorConfig;
use crate::frame::Frame;

pub use clock::{parse_utc, utc_timestamp};
pub use detect::{DetectHandle, Models};
pub use overlay::Overlay;
pub use skip_similar::SkipSimilar;
pub use track::{Track, TrackHandle};
pub use watermark::{Watermark, WatermarkHandle};

/// A stage that sees every frame of one stream, in its native layout, and may draw on it or add
/// metadata.
pub trait Processor: Send {
    /// The processor's `kind`, for logs and stats.
    fn name(&self) -> &'static str;

    /// Processes one frame in place. An error is logged and counted by the caller; the frame
    /// goes on to the next processor and the encoder regardless.
    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()>;

    /// The input ended for good (a file or a replay ran out): ends what lasts over frames, as
    /// of the last frame processed. Not called for a live stream, whose camera may come back.
    fn finish(&mut self) {}
}

/// What a stream's processors report to beyond the frame: the stream's id, the event store
/// and the alert rules. The default reports nowhere (`framegate process`, tests).
#[derive(Clone, Default)]
pub struct Hooks {
    /// The stream the chain runs for.
    pub stream: Option<crate::config::StreamId>,
    /// Where detection events and alerts go.
    pub events: crate::store::EventSink,
    /// The alert rules.
    pub alerts: Option<Arc<crate::alert::AlertRules>>,
    /// The embedded interpreter's settings (for `python` processors).
    pub python: crate::config::PythonSection,
    /// Whether the stream's pushes may send (closed when the node may have lost a cluster
    /// camera it held; always open for the node's own streams).
    pub fence: crate::cluster::fence::Fence,
}

/// A stream's counting lines and zones (what its `track` processor counts).
#[derive(Clone, Copy, Default)]
pub struct Shapes<'a> {
    /// The lines.
    pub lines: &'a [crate::config::LineConfig],
    /// The zones.
    pub zones: &'a [crate::config::ZoneConfig],
}

/// A stream's processors, in order.
pub struct Chain {
    processors: Vec<Box<dyn Processor>>,
    detectors: Vec<Arc<DetectHandle>>,
    watermarks: Vec<Arc<WatermarkHandle>>,
    tracker: Option<Arc<TrackHandle>>,
}

/// What one pass through the chain did.
#[derive(Debug, Default)]
pub struct ChainReport {
    /// Time spent in all processors.
    pub elapsed: Duration,
    /// Processors that failed on this frame, with their error.
    pub errors: Vec<(&'static str, anyhow::Error)>,
    /// Whether `skip_similar` found the frame like the last processed one.
    pub similar: bool,
    /// Whether a processor had to copy the frame's pixels before drawing on them.
    pub copied: bool,
    /// Whether a processor kept the frame (it must not go to the outputs: the previous one is
    /// shown again in its place).
    pub withheld: bool,
}

impl Chain {
    /// Builds the chain a stream's config asks for; detectors take their model from `models`
    /// (a model that cannot be loaded leaves its detector idle, with the reason in its status).
    pub fn from_config(
        configs: &[ProcessorConfig],
        shapes: Shapes<'_>,
        models: &Models,
        hooks: &Hooks,
    ) -> Self {
        let mut detectors = Vec::new();
        let mut watermarks = Vec::new();
        let mut tracker = None;
        let processors = configs
            .iter()
            .map(|c| -> Box<dyn Processor> {
                match c {
                    ProcessorConfig::Overlay(o) => Box::new(Overlay::new(o.clone())),
                    ProcessorConfig::SkipSimilar(k) => Box::new(SkipSimilar::new(k)),
                    ProcessorConfig::Detect(d) => {
                        let model = models.get(&d.model);
                        if let Err(e) = &model {
                            tracing::error!(
                                "detect: model `{}` unusable, no detections: {e}",
                                d.model
                            );
                        }
                        let p = detect::Detect::new(d, model, hooks);
                        detectors.push(p.handle());
                        Box::new(p)
                    }
                    ProcessorConfig::Watermark(w) => {
                        let p = Watermark::new(w);
                        watermarks.push(p.handle());
                        Box::new(p)
                    }
                    ProcessorConfig::Track(t) => {
                        let p = Track::new(t, shapes.lines, shapes.zones, hooks);
                        tracker = Some(p.handle());
                        Box::new(p)
                    }
                    ProcessorConfig::Python(c) => {
                        let p = python::PythonProcessor::new(c, &hooks.python, hooks);
                        detectors.push(p.handle());
                        Box::new(p)
                    }
                }
            })
            .collect();
        Self {
            processors,
            detectors,
            watermarks,
            tracker,
        }
    }

    /// The tracker's readable side, when the chain has a `track` processor.
    pub fn tracker(&self) -> Option<&Arc<TrackHandle>> {
        self.tracker.as_ref()
    }

    /// The watermarks' handles (to change their ID), in chain order.
    pub fn watermarks(&self) -> &[Arc<WatermarkHandle>] {
        &self.watermarks
    }

    /// The detectors' readable sides, in chain order.
    pub fn detectors(&self) -> &[Arc<DetectHandle>] {
        &self.detectors
    }

    /// Runs every processor on the frame.
    pub fn run(&mut self, frame: &mut Frame) -> ChainReport {
        let start = Instant::now();
        let mut report = ChainReport::default();
        for p in &mut self.processors {
            // A processor that panics loses this frame's work, not the stream.
            let result = crate::supervise::caught(|| p.process(frame))
                .unwrap_or_else(|what| Err(anyhow::anyhow!("panicked: {what}")));
            if let Err(e) = result {
                report.errors.push((p.name(), e));
            }
            if frame.meta.withheld {
                break;
            }
        }
        report.similar = frame.meta.similar;
        report.copied = frame.meta.copied;
        report.withheld = frame.meta.withheld;
        report.elapsed = start.elapsed();
        report
    }

    /// The input ended for good: every processor's [`Processor::finish`], in order.
    pub fn finish(&mut self) {
        for p in &mut self.processors {
            if let Err(what) = crate::supervise::caught(|| p.finish()) {
                tracing::warn!(processor = p.name(), "panicked finishing: {what}");
            }
        }
    }
}
