//! The `detect` processor: object detection with a model shared by all streams.
//!
//! Per stream, a due frame (every Nth, at most `max_fps`, not marked `similar`) is scaled and
//! converted straight from YUV into the model's input and queued for the model's batching
//! thread; the processor does not wait. Every frame carries the newest result the stream has,
//! so boxes follow the model's pace while the video keeps its own. A due frame that finds the
//! stream's previous input still queued or running is dropped (counted).

mod batcher;
mod cuda_libs;
mod decode;
mod events;
mod labels;
mod live;
mod model;
mod preprocess;
mod runtime;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use crate::config::{DetectConfig, ModelFormat};
use crate::frame::{Detection, Frame, Planes, Rect};

use super::{Hooks, Processor};
use crate::alert::StreamAlerts;
use crate::store::{Event, EventSink, Picture, kind};
use crate::supervise::lock;

pub use batcher::{Backend, BatchStats, Batcher, Output};
pub use decode::{RawBox, centernet, nms, yolo};
pub(crate) use events::epoch_ms;
pub use events::{DetectionEvent, DetectionLog, EventKind, Present};
pub use labels::COCO80;
pub use live::{Found, LiveResults};
pub use model::{Model, ModelStatus, Models};
pub use preprocess::{InputSpec, Transform, fill, transform};

/// Counters of one stream's detector.
#[derive(Debug, Default)]
pub struct DetectCounters {
    /// Frames sent to the model.
    pub submitted: AtomicU64,
    /// Results received.
    pub completed: AtomicU64,
    /// Due frames dropped because the stream's last frame was still with the model.
    pub dropped: AtomicU64,
    /// Runs that failed.
    pub failed: AtomicU64,
    /// Time from submitting to the result, nanoseconds (total over `completed`).
    pub latency_ns: AtomicU64,
    /// Time spent pre-processing, nanoseconds (total over `submitted`).
    pub preprocess_ns: AtomicU64,
}

/// What a stream's status shows of its detector.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DetectStatus {
    /// The model's id.
    pub model: String,
    /// Where the model runs (`cpu`, `cuda`), or null when it could not be loaded.
    pub provider: Option<String>,
    /// Why the model could not be loaded.
    pub error: Option<String>,
    /// Frames sent to the model.
    pub submitted: u64,
    /// Results received.
    pub completed: u64,
    /// Due frames dropped while the model was busy with this stream's last frame.
    pub dropped: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Panics the shared model caught (in any stream's input): it went on after each.
    pub model_panics: u64,
    /// Times the shared model's loop was started again after a panic.
    pub model_restarts: u64,
    /// Mean time from a frame's submission to its result, milliseconds.
    pub mean_latency_ms: f64,
    /// Mean pre-processing time per submitted frame, milliseconds.
    pub mean_preprocess_ms: f64,
    /// The boxes of the newest result.
    pub current: Vec<Detection>,
    /// For a `python` processor's boxes: its calls, errors and pace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python: Option<crate::process::python::PythonStatus>,
}

/// The shared, readable side of a stream's detector (for the API).
pub struct DetectHandle {
    model_id: String,
    /// The shared model, for its health (none when it could not be loaded).
    model: Option<Arc<Model>>,
    provider: Option<String>,
    error: Option<String>,
    counters: DetectCounters,
    current: Mutex<Vec<Detection>>,
    /// The stream's detection events.
    pub log: DetectionLog,
    /// Each result as it comes, for viewers that draw the boxes.
    pub live: LiveResults,
    /// For a `python` processor: its own counters.
    python: Option<Arc<crate::process::python::PythonStats>>,
}

impl DetectHandle {
    /// The readable side of a source of boxes: `model_id` names it, `provider` says where it
    /// runs, `error` why it cannot.
    pub fn new(
        model_id: &str,
        model: Option<Arc<Model>>,
        provider: Option<String>,
        error: Option<String>,
        clear_after: Duration,
        python: Option<Arc<crate::process::python::PythonStats>>,
    ) -> Self {
        Self {
            model_id: model_id.to_string(),
            model,
            provider,
            error,
            counters: DetectCounters::default(),
            current: Mutex::default(),
            log: DetectionLog::new(clear_after),
            live: LiveResults::default(),
            python,
        }
    }

    /// The counters, for a source of boxes other than a model.
    pub fn counters(&self) -> &DetectCounters {
        &self.counters
    }

    /// The status for the API.
    pub fn status(&self) -> DetectStatus {
        let c = &self.counters;
        let completed = c.completed.load(Ordering::Relaxed);
        let submitted = c.submitted.load(Ordering::Relaxed);
        let ms = |ns: &AtomicU64, n: u64| ns.load(Ordering::Relaxed) as f64 / 1e6 / n.max(1) as f64;
        let (model_panics, model_restarts) = self.model.as_ref().map_or((0, 0), |m| m.health());
        DetectStatus {
            model: self.model_id.clone(),
            provider: self.provider.clone(),
            error: self.error.clone(),
            submitted,
            completed,
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            model_panics,
            model_restarts,
            mean_latency_ms: ms(&c.latency_ns, completed),
            mean_preprocess_ms: ms(&c.preprocess_ns, submitted),
            current: lock(&self.current).clone(),
            python: self.python.as_ref().map(|p| p.status()),
        }
    }
}

/// The newest result of a stream, written by the model's thread.
#[derive(Default)]
struct Inbox {
    busy: bool,
    /// The boxes of a result, with the source PTS of the frame they were found in.
    result: Option<(Vec<Detection>, Option<u64>)>,
}

/// Finds objects in frames with a shared model.
pub struct Detect {
    config: DetectConfig,
    model: Option<Arc<Model>>,
    handle: Arc<DetectHandle>,
    inbox: Arc<Mutex<Inbox>>,
    current: Vec<Detection>,
    /// The source PTS of the frame `current` was found in.
    current_pts: Option<u64>,
    frames: u64,
    last_run: Option<Instant>,
    sink: Sink,
}

/// Where a stream's results go besides its frames: the detection log and its events, the alert
/// rules, the current boxes of the status (shared by `detect` and the `python` processor).
pub struct Sink {
    handle: Arc<DetectHandle>,
    source: String,
    stream: Option<String>,
    events: EventSink,
    alerts: Option<StreamAlerts>,
}

impl Sink {
    /// The sink of `handle`'s results; `source` names them in events (the model's id).
    pub fn new(handle: Arc<DetectHandle>, source: &str, hooks: &Hooks) -> Self {
        Self {
            handle,
            source: source.to_string(),
            stream: hooks.stream.as_ref().map(|s| s.to_string()),
            events: hooks.events.clone(),
            alerts: match (&hooks.stream, &hooks.alerts) {
                (Some(id), Some(rules)) => Some(StreamAlerts::new(
                    id.clone(),
                    rules.clone(),
                    hooks.events.clone(),
                )),
                _ => None,
            },
        }
    }

    /// Takes a new result, found in (or shown on) `frame`.
    pub fn accept(&mut self, new: &[Detection], frame: &Frame, now: Instant) {
        let fresh = self.handle.log.update(new, now);
        self.record(fresh, frame);
        if let Some(alerts) = &mut self.alerts {
            alerts.observe(new, now, || Some(picture(frame)));
        }
        *lock(&self.handle.current) = new.to_vec();
    }

    /// A frame without a new result: classes gone long enough are cleared.
    pub fn tick(&mut self, frame: &Frame, now: Instant) {
        let fresh = self.handle.log.tick(now);
        self.record(fresh, frame);
    }

    /// The event store, for other events of the same source.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// The stream's id, for events.
    pub fn stream(&self) -> Option<&str> {
        self.stream.as_deref()
    }

    /// Stores the log's new events, with a snapshot of `frame` for those that appear.
    fn record(&self, fresh: Vec<DetectionEvent>, frame: &Frame) {
        for d in fresh {
            let (k, picture) = match d.kind {
                EventKind::Appeared => (
                    kind::DETECTION_APPEARED,
                    self.events.wants_snapshots().then(|| picture(frame)),
                ),
                EventKind::Cleared => (kind::DETECTION_CLEARED, None),
            };
            let mut e = Event::new(
                k,
                self.stream.as_deref(),
                serde_json::json!({ "seq": d.seq, "duration_s": d.duration_s, "model": self.source }),
            )
            .with_object(&d.class, f64::from(d.score), d.rect.map(f64::from));
            e.at_ms = d.at_ms as i64;
            e.picture = picture;
            self.events.record(e);
        }
    }
}

impl Detect {
    /// A detector for one stream; `model` is the shared model, or why it could not be loaded
    /// (the stream then runs without detections, and its status says why).
    pub fn new(config: &DetectConfig, model: Result<Arc<Model>, String>, hooks: &Hooks) -> Self {
        let (model, error) = match model {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(e)),
        };
        let handle = Arc::new(DetectHandle::new(
            &config.model,
            model.clone(),
            model.as_ref().map(|m| m.provider().to_string()),
            error,
            Duration::from_secs_f64(config.clear_after),
            None,
        ));
        Self {
            config: config.clone(),
            model,
            sink: Sink::new(handle.clone(), &config.model, hooks),
            handle,
            inbox: Arc::default(),
            current: Vec::new(),
            current_pts: None,
            frames: 0,
            last_run: None,
        }
    }

    /// The readable side, for the stream's status.
    pub fn handle(&self) -> Arc<DetectHandle> {
        self.handle.clone()
    }

    /// Whether this frame should go to the model.
    fn due(&mut self, frame: &Frame, now: Instant) -> bool {
        if frame.meta.similar {
            return false;
        }
        self.frames += 1;
        if !(self.frames - 1).is_multiple_of(u64::from(self.config.every)) {
            return false;
        }
        if let (Some(max), Some(last)) = (self.config.max_fps, self.last_run)
            && now.duration_since(last).as_secs_f64() < 1.0 / max
        {
            return false;
        }
        true
    }

    fn submit(&mut self, model: &Arc<Model>, frame: &Frame, now: Instant) {
        {
            let mut inbox = lock(&self.inbox);
            if inbox.busy {
                self.handle.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            inbox.busy = true;
        }
        self.last_run = Some(now);
        let spec = *model.spec();
        let transform = transform(frame.width() as usize, frame.height() as usize, &spec);
        self.handle
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        // The model's thread reads the pixels (a reference to the buffer, no copy): the stream's
        // thread goes on at once. A later processor that draws gets its own copy.
        let (buffer, info) = (frame.buffer().clone(), frame.info().clone());
        let (source_pts, width, height) = (
            buffer.pts().map(gst::ClockTime::nseconds),
            frame.width(),
            frame.height(),
        );
        let handle = self.handle.clone();
        let prepare = Box::new(move || -> anyhow::Result<Vec<f32>> {
            let started = Instant::now();
            let mut input = vec![0.0f32; spec.values()];
            let colorimetry = info.colorimetry();
            fill(
                &Planes::new(buffer.as_ref(), &info)?,
                colorimetry.matrix() == gst_video::VideoColorMatrix::Bt709,
                colorimetry.range() == gst_video::VideoColorRange::Range0_255,
                &spec,
                &mut input,
            );
            handle
                .counters
                .preprocess_ns
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            Ok(input)
        });
        let (inbox, handle) = (self.inbox.clone(), self.handle.clone());
        let labels = model.labels().clone();
        let (format, iou) = (model.config().format, model.config().iou_threshold);
        let (min_score, classes) = (self.config.min_score, self.config.classes.clone());
        model.submit(
            prepare,
            Box::new(move |out| {
                let c = &handle.counters;
                let decoded = out.map_err(anyhow::Error::msg).and_then(|o| {
                    let raw = match format {
                        ModelFormat::Centernet => centernet(&o.dims, &o.data, min_score)?,
                        ModelFormat::Yolo => yolo(&o.dims, &o.data, min_score, iou)?,
                    };
                    Ok(to_detections(&raw, &transform, &labels, &classes))
                });
                let mut inbox = lock(&inbox);
                inbox.busy = false;
                match decoded {
                    Ok(d) => {
                        c.completed.fetch_add(1, Ordering::Relaxed);
                        c.latency_ns
                            .fetch_add(now.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        if let Some(source_pts) = source_pts {
                            handle.live.publish(|| Found {
                                source_pts,
                                width,
                                height,
                                boxes: d.clone(),
                                tracks: Vec::new(),
                            });
                        }
                        inbox.result = Some((d, source_pts));
                    }
                    Err(e) => {
                        if c.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!(model = %handle.model_id, "detection failed: {e:#}");
                        }
                    }
                }
            }),
        );
    }
}

/// The frame's pixels, for a snapshot (a reference, no copy).
pub fn picture(frame: &Frame) -> Picture {
    Picture {
        buffer: frame.buffer().clone(),
        info: frame.info().clone(),
    }
}

/// Model boxes in frame pixels with their names, keeping the wanted classes.
fn to_detections(
    raw: &[RawBox],
    t: &Transform,
    labels: &[String],
    keep: &[String],
) -> Vec<Detection> {
    raw.iter()
        .filter_map(|b| {
            let label = labels
                .get(b.class)
                .cloned()
                .unwrap_or_else(|| format!("class {}", b.class));
            if !keep.is_empty() && !keep.contains(&label) {
                return None;
            }
            let (x, y, w, h) = t.to_frame(b.x1, b.y1, b.x2, b.y2);
            (w > 0.0 && h > 0.0).then_some(Detection {
                rect: Rect { x, y, w, h },
                label,
                score: b.score,
            })
        })
        .collect()
}

impl Processor for Detect {
    fn name(&self) -> &'static str {
        "detect"
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let now = Instant::now();
        let Some(model) = self.model.clone() else {
            return Ok(());
        };
        let result = lock(&self.inbox).result.take();
        if let Some((new, pts)) = result {
            self.current_pts = pts;
            self.sink.accept(&new, frame, now);
            self.current = new;
        } else {
            self.sink.tick(frame, now);
        }
        if self.due(frame, now) {
            self.submit(&model, frame, now);
        }
        frame.meta.detections.extend(self.current.iter().cloned());
        frame.meta.detections_pts = self.current_pts;
        Ok(())
    }
}
