//! The `python` processor: the users' own per-frame code, in framegate's embedded CPython.
//!
//! The function runs on the processor's own thread and sees the frame's planes as numpy arrays
//! over framegate's memory (no copy). The stream hands it each frame and waits for it up to
//! `budget_ms`: a quick function draws on the very frames that go out. A call that overruns the
//! budget keeps its frame (the output shows the previous one again in its place) and the
//! processor goes *behind*: frames no longer wait, the function gets a reference to the newest
//! frame whenever it is free (its drawing is not shown, its boxes and events still count), until
//! five calls in a row fit in half the budget. The GIL is held only during the calls. What the
//! function returns (boxes, events) joins the detection path: the frame's detections, the
//! detection log and events, the alert rules, the status and the dashboard's boxes.

mod interp;
mod memory;
mod results;
mod worker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use super::detect::{DetectHandle, Found, Sink};
use super::{Hooks, Processor};
use crate::config::{PythonConfig, PythonSection};
use crate::frame::{Detection, Frame};
use crate::store::{Event, kind};
use crate::supervise::lock;

pub use interp::{changed, load};
use worker::{CallMeta, Done, Job, Outcome};

/// Distinct errors logged with their traceback per processor (later ones are only counted).
const MAX_LOGGED_ERRORS: usize = 32;
/// Calls in a row within half the budget that bring a processor that fell behind back in line.
const BACK_IN_LINE: u32 = 5;

/// Counters of one `python` processor.
#[derive(Debug, Default)]
pub struct PythonStats {
    file: String,
    calls: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    late: AtomicU64,
    copied: AtomicU64,
    call_ns: AtomicU64,
    max_call_ns: AtomicU64,
    behind: AtomicBool,
    hung: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// What a stream's status shows of a `python` processor.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PythonStatus {
    /// The file.
    pub file: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that raised (or returned something that is not boxes and events).
    pub errors: u64,
    /// Frames that went by while the function was busy.
    pub skipped: u64,
    /// Calls that overran `budget_ms` (their frame was shown undrawn: the previous one again).
    pub late: u64,
    /// Frames copied because the function kept a view of their memory after returning.
    pub copied: u64,
    /// Mean time of a call, milliseconds.
    pub mean_call_ms: f64,
    /// Longest call, milliseconds.
    pub max_call_ms: f64,
    /// Whether the function is slower than its budget now (frames go on without it; it reads
    /// the newest one whenever it is free).
    pub behind: bool,
    /// Whether a call has been running for longer than `hang_s`.
    pub hung: bool,
    /// The last error (type, place and message).
    pub last_error: Option<String>,
}

impl PythonStats {
    /// The status for the API.
    pub fn status(&self) -> PythonStatus {
        let calls = self.calls.load(Ordering::Relaxed);
        PythonStatus {
            file: self.file.clone(),
            calls,
            errors: self.errors.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            copied: self.copied.load(Ordering::Relaxed),
            mean_call_ms: self.call_ns.load(Ordering::Relaxed) as f64 / 1e6 / calls.max(1) as f64,
            max_call_ms: self.max_call_ns.load(Ordering::Relaxed) as f64 / 1e6,
            behind: self.behind.load(Ordering::Relaxed),
            hung: self.hung.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
        }
    }
}

/// Runs a user's Python function on a stream's frames.
pub struct PythonProcessor {
    config: PythonConfig,
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    /// When the call under way started (none: the function is free).
    busy_since: Option<Instant>,
    quick_calls: u32,
    stats: Arc<PythonStats>,
    handle: Arc<DetectHandle>,
    sink: Sink,
    current: Vec<Detection>,
    current_pts: Option<u64>,
    logged: HashSet<String>,
    /// Set when the function could not be imported: frames pass untouched.
    unusable: Option<String>,
}

impl PythonProcessor {
    /// A processor for one stream; the function is imported now (from the cache when the file
    /// did not change since the config was checked).
    pub fn new(config: &PythonConfig, section: &PythonSection, hooks: &Hooks) -> Self {
        let file = config.file.display().to_string();
        let stats = Arc::new(PythonStats {
            file: file.clone(),
            ..PythonStats::default()
        });
        let loaded = load(section.venv.as_deref(), &config.file, &config.function);
        let source = format!("python:{file}");
        let handle = Arc::new(DetectHandle::new(
            &source,
            None,
            Some("python".into()),
            loaded.as_ref().err().cloned(),
            Duration::from_secs(2),
            Some(stats.clone()),
        ));
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(1);
        let (done_tx, done) = mpsc::channel::<Done>();
        let unusable = match loaded {
            Ok(l) => {
                interp::running(&config.file, l.hash);
                let callee = worker::Callee {
                    function: l.function,
                    args: config.args.clone(),
                    draws: config.draws,
                };
                let name = format!("py-{}", hooks.stream.as_ref().map_or("", |s| s.as_str()));
                std::thread::Builder::new()
                    .name(name.chars().take(15).collect())
                    .spawn(move || worker::run(callee, job_rx, done_tx))
                    .err()
                    .map(|e| format!("cannot start its thread: {e}"))
            }
            Err(e) => Some(e),
        };
        if let Some(e) = &unusable {
            tracing::error!(file = %file, "python processor unusable, frames pass untouched: {e}");
        }
        Self {
            config: config.clone(),
            jobs,
            done,
            busy_since: None,
            quick_calls: 0,
            sink: Sink::new(handle.clone(), &source, hooks),
            handle,
            stats,
            current: Vec::new(),
            current_pts: None,
            logged: HashSet::new(),
            unusable,
        }
    }

    /// The readable side (status, boxes, detection events).
    pub fn handle(&self) -> Arc<DetectHandle> {
        self.handle.clone()
    }

    /// Whether the function fell behind: frames do not wait for it.
    fn behind(&self) -> bool {
        self.stats.behind.load(Ordering::Relaxed)
    }

    fn budget(&self) -> Duration {
        Duration::from_millis(u64::from(self.config.budget_ms))
    }

    /// Takes a finished call's results; returns the frame when it came back.
    fn finish(&mut self, done: Done, frame: &Frame, now: Instant) -> Option<gst::Buffer> {
        self.busy_since = None;
        self.stats.hung.store(false, Ordering::Relaxed);
        let s = &self.stats;
        let took = done.took.as_nanos() as u64;
        s.calls.fetch_add(1, Ordering::Relaxed);
        s.call_ns.fetch_add(took, Ordering::Relaxed);
        s.max_call_ns.fetch_max(took, Ordering::Relaxed);
        let c = self.handle.counters();
        c.completed.fetch_add(1, Ordering::Relaxed);
        c.latency_ns.fetch_add(took, Ordering::Relaxed);
        if done.retained && s.copied.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                file = %s.file,
                "process() keeps views of its frame (frame.y, ...) after returning: such frames are copied; keep copies (frame.y.copy()) instead"
            );
        }
        self.pace(done.took);
        match done.outcome {
            Outcome::Returned(json) => {
                match results::parse(json.as_deref(), frame.width(), frame.height()) {
                    Ok(r) => self.take(r, done.pts_ns, frame, now),
                    Err(e) => self.error(&format!("its result: {e}"), None),
                }
            }
            Outcome::Raised { key, traceback } => self.error(&key, Some(&traceback)),
            Outcome::Failed(e) => self.error(&e, None),
        }
        done.buffer
    }

    /// Follows the function's pace: behind after a late call, back in line after quick ones.
    fn pace(&mut self, took: Duration) {
        if !self.behind() {
            return;
        }
        if took * 2 <= self.budget() {
            self.quick_calls += 1;
            if self.quick_calls >= BACK_IN_LINE {
                self.stats.behind.store(false, Ordering::Relaxed);
                tracing::info!(file = %self.stats.file, "python processor is quick again: frames wait for it");
            }
        } else {
            self.quick_calls = 0;
        }
    }

    fn error(&mut self, key: &str, traceback: Option<&str>) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.handle
            .counters()
            .failed
            .fetch_add(1, Ordering::Relaxed);
        *lock(&self.stats.last_error) = Some(key.chars().take(300).collect());
        if self.logged.len() < MAX_LOGGED_ERRORS && self.logged.insert(key.to_string()) {
            tracing::warn!(
                file = %self.stats.file,
                "python processor: {key} (logged once; later ones are counted){}",
                traceback.map(|t| format!("\n{t}")).unwrap_or_default()
            );
        }
    }

    /// Boxes and events the function returned for the frame of source time `pts`.
    fn take(&mut self, r: results::Results, pts: Option<u64>, frame: &Frame, now: Instant) {
        if let Some(boxes) = r.boxes {
            self.sink.accept(&boxes, frame, now);
            if let Some(source_pts) = pts {
                self.handle.live.publish(|| Found {
                    source_pts,
                    width: frame.width(),
                    height: frame.height(),
                    boxes: boxes.clone(),
                    tracks: Vec::new(),
                });
            }
            self.current = boxes;
            self.current_pts = pts;
        } else {
            self.sink.tick(frame, now);
        }
        for e in r.events {
            let mut data = e.data;
            data.insert("name".into(), e.name.into());
            let mut event = Event::new(
                kind::PYTHON_EVENT,
                self.sink.stream(),
                serde_json::Value::Object(data),
            );
            if let Some(d) = e.object {
                event = event.with_object(
                    &d.label,
                    f64::from(d.score),
                    [d.rect.x, d.rect.y, d.rect.w, d.rect.h].map(f64::from),
                );
            }
            self.sink.events().record(event);
        }
    }

    fn meta(&self, frame: &Frame) -> CallMeta {
        CallMeta {
            stream: frame.meta.stream.to_string(),
            pts_ns: frame.buffer().pts().map(gst::ClockTime::nseconds),
            capture_ms: super::detect::epoch_ms(frame.meta.capture_time),
            detections: frame.meta.detections.clone(),
            tracks: frame.meta.tracks.clone(),
        }
    }

    /// Hands the frame over and waits up to the budget; `false` when the call overran it (the
    /// frame stays with Python: it is withheld from the outputs).
    fn call_in_place(&mut self, frame: &mut Frame, now: Instant) -> bool {
        let job = Job {
            buffer: frame.take_buffer(),
            info: frame.info().clone(),
            meta: self.meta(frame),
            in_place: true,
        };
        if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
            self.jobs.try_send(job)
        {
            frame.put_buffer(job.buffer);
            return true;
        }
        self.busy_since = Some(now);
        self.handle
            .counters()
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        match self.done.recv_timeout(self.budget()) {
            Ok(done) => {
                let copied = done.copied;
                if let Some(b) = self.finish(done, frame, now) {
                    frame.put_buffer(b);
                    frame.meta.copied |= copied;
                    true
                } else {
                    false
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                self.stats.late.fetch_add(1, Ordering::Relaxed);
                self.quick_calls = 0;
                self.stats.behind.store(true, Ordering::Relaxed);
                tracing::info!(
                    file = %self.stats.file,
                    budget_ms = self.config.budget_ms,
                    "python processor overran its budget: frames go on without waiting for it"
                );
                false
            }
        }
    }

    /// Offers the function a reference to the frame, without waiting.
    fn call_behind(&mut self, frame: &Frame, now: Instant) {
        let job = Job {
            buffer: frame.buffer().clone(),
            info: frame.info().clone(),
            meta: self.meta(frame),
            in_place: false,
        };
        if self.jobs.try_send(job).is_ok() {
            self.busy_since = Some(now);
            self.handle
                .counters()
                .submitted
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Processor for PythonProcessor {
    fn name(&self) -> &'static str {
        "python"
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        if self.unusable.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        // A call that finished in the background: its results (its frame is not shown).
        while let Ok(done) = self.done.try_recv() {
            self.finish(done, frame, now);
        }
        match self.busy_since {
            Some(since) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                self.handle
                    .counters()
                    .dropped
                    .fetch_add(1, Ordering::Relaxed);
                if now.duration_since(since).as_secs_f64() >= self.config.hang_s
                    && !self.stats.hung.swap(true, Ordering::Relaxed)
                {
                    tracing::error!(
                        file = %self.stats.file,
                        "python processor: a call has not returned for {:.0} s (hung, maybe in C code); the stream goes on without it",
                        self.config.hang_s
                    );
                }
            }
            None if frame.meta.similar => {}
            None if self.behind() => self.call_behind(frame, now),
            None => {
                if !self.call_in_place(frame, now) {
                    frame.meta.withheld = true;
                }
            }
        }
        frame.meta.detections.extend(self.current.iter().cloned());
        if !self.current.is_empty() {
            frame.meta.detections_pts = self.current_pts;
        }
        Ok(())
    }
}

/// Starts the interpreter and imports the file, for checking a config: the error names the
/// file and line.
pub fn check(config: &PythonConfig, section: &PythonSection) -> Result<(), String> {
    load(section.venv.as_deref(), &config.file, &config.function).map(|_| ())
}
