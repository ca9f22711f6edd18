//! The event store: what happened on the cameras, kept in SQLite (default) or PostgreSQL.
//!
//! ```text
//!  processing threads, stream supervisors, API ──record()──▶ bounded channel (never waits)
//!        ──▶ writer task ──▶ database (batched transactions)
//!                      └──▶ on-disk queue while the database cannot be written
//!                           (written first when it answers again; bounded, overflow counted)
//! ```
//! Video never waits for the database: recording an event is a `try_send`; a full channel or a
//! full queue drops the event and counts it (`framegate_events_dropped_total`).

mod db;
mod event;
mod migrations;
mod snapshot;
mod spool;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::config::DatabaseConfig;

pub use db::{Db, Delivery, EventQuery, OutboxCounts, masked};
pub use event::{Dropped, Event, EventSink, Picture, epoch_ms, kind, new_uid};

/// Events the channel to the writer holds.
const CHANNEL: usize = 8192;

pub(crate) use crate::supervise::lock;

/// State shared by the writer and the readers.
struct Shared {
    db: Mutex<Option<Db>>,
    written: AtomicU64,
    queued: AtomicU64,
    dropped: Arc<Dropped>,
    last_error: Mutex<Option<String>>,
    /// Writes (or connections) the database refused.
    failures: AtomicU64,
    /// Events of the queue held in memory while the disk refuses them.
    held: AtomicU64,
    queue_error: Mutex<Option<String>>,
    /// Counts batches written: wakes live views and the alert outbox.
    changed: watch::Sender<u64>,
}

impl Shared {
    /// Nothing written yet, `queued` events waiting in the on-disk queue.
    fn new(queued: u64) -> Self {
        Self {
            db: Mutex::new(None),
            written: AtomicU64::new(0),
            queued: AtomicU64::new(queued),
            dropped: Arc::default(),
            last_error: Mutex::new(None),
            failures: AtomicU64::new(0),
            held: AtomicU64::new(0),
            queue_error: Mutex::new(None),
            changed: watch::Sender::new(0),
        }
    }
}

/// The event store of the process.
pub struct Store {
    sink: EventSink,
    shared: Arc<Shared>,
    url: String,
    dir: Option<PathBuf>,
    stop: watch::Sender<bool>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What `GET /api/store` shows.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StoreStatus {
    /// Whether events are recorded at all (`database.url = "none"` turns it off).
    pub enabled: bool,
    /// The database URL, password masked.
    pub url: String,
    /// `sqlite` or `postgres`, once connected.
    pub backend: Option<String>,
    /// Whether the last write succeeded.
    pub writing: bool,
    /// Writes (and connections) the database refused since start. A database that is full or
    /// flaky may refuse one write and take the next, so `writing` can be back to `true` by the
    /// time anyone looks: this counter keeps the evidence.
    pub write_failures: u64,
    /// Events written since start.
    pub written: u64,
    /// Events waiting in the on-disk queue for the database.
    pub queued: u64,
    /// Events dropped because the writer's channel was full.
    pub dropped_channel_full: u64,
    /// Events dropped because the on-disk queue was full.
    pub dropped_queue_full: u64,
    /// Events of cluster cameras not recorded because the node was past its fence.
    pub dropped_fenced: u64,
    /// Events of the queue held in memory because the disk refuses them (full, read-only).
    pub held_in_memory: u64,
    /// Why the disk refuses the queue's writes, while it does.
    pub queue_error: Option<String>,
    /// Why the database cannot be written now.
    pub error: Option<String>,
}

impl Store {
    /// Starts the writer on the current tokio runtime. `default_dir` is where snapshots and the
    /// queue go when the config does not say (none: in memory, no snapshots).
    pub fn start(config: &DatabaseConfig, default_dir: Option<&Path>) -> Result<Arc<Self>> {
        if config.url == "none" {
            return Ok(Self::disabled());
        }
        let dir = config
            .dir
            .clone()
            .or_else(|| default_dir.map(Path::to_path_buf));
        let spool = spool::Spool::open(dir.as_deref(), config.queue_max_events)?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let shared = Arc::new(Shared::new(spool.len()));
        let (stop, stop_rx) = watch::channel(false);
        let writer = writer::Writer {
            url: config.url.clone(),
            retention_days: config.retention_days,
            dir: dir.clone(),
            spool,
            shared: shared.clone(),
            logged: crate::supervise::LogGate::new(writer::LOG_EVERY),
            disk_logged: crate::supervise::LogGate::new(writer::LOG_EVERY),
        };
        let handle = tokio::spawn(writer.run(rx, stop_rx));
        tracing::info!(url = %masked(&config.url), "event store starting");
        Ok(Arc::new(Self {
            sink: EventSink::new(
                tx,
                shared.dropped.clone(),
                config.snapshots && dir.is_some(),
            ),
            shared,
            url: config.url.clone(),
            dir,
            stop,
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// A store that records nothing.
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self {
            sink: EventSink::disabled(),
            shared: Arc::new(Shared::new(0)),
            url: "none".into(),
            dir: None,
            stop: watch::Sender::new(false),
            writer: Mutex::new(None),
        })
    }

    /// Where events are handed in.
    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// The database, once connected.
    pub fn db(&self) -> Option<Db> {
        lock(&self.shared.db).clone()
    }

    /// The database, waiting up to `patience` while the first connection is being made (not
    /// when it already failed).
    pub async fn db_soon(&self, patience: std::time::Duration) -> Option<Db> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let db = self.db();
            if db.is_some()
                || !self.sink.enabled()
                || lock(&self.shared.last_error).is_some()
                || tokio::time::Instant::now() >= deadline
            {
                return db;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Changes with every batch written (for live views and the outbox).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// The file of a snapshot named by an event.
    pub fn snapshot_file(&self, rel: &str) -> Option<PathBuf> {
        let safe = !rel.split('/').any(|p| p == ".." || p.is_empty());
        self.dir.as_ref().filter(|_| safe).map(|d| d.join(rel))
    }

    /// The writer's counters.
    pub fn status(&self) -> StoreStatus {
        let s = &self.shared;
        let error = lock(&s.last_error).clone();
        StoreStatus {
            enabled: self.sink.enabled(),
            url: masked(&self.url),
            backend: self.db().map(|d| d.backend().to_string()),
            writing: self.sink.enabled() && error.is_none() && self.db().is_some(),
            written: s.written.load(Ordering::Relaxed),
            write_failures: s.failures.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Relaxed),
            dropped_channel_full: s.dropped.channel_full.load(Ordering::Relaxed),
            dropped_queue_full: s.dropped.queue_full.load(Ordering::Relaxed),
            dropped_fenced: s.dropped.fenced.load(Ordering::Relaxed),
            held_in_memory: s.held.load(Ordering::Relaxed),
            queue_error: lock(&s.queue_error).clone(),
            error,
        }
    }

    /// Writes what is in the channel (to the database, or the on-disk queue) and stops the
    /// writer.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        let handle = lock(&self.writer).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }
}

/// The JSON an alert receiver gets (webhook body, MQTT payload). A rule on tracked objects adds
/// `track` and `line` with `direction`, or `zone` with `dwell_s`.
pub fn alert_payload(e: &Event) -> serde_json::Value {
    let mut payload = serde_json::json!({
        "id": e.uid,
        "rule": e.data.get("rule"),
        "stream": e.stream,
        "class": e.class,
        "score": e.score,
        "box": e.rect,
        "at_ms": e.at_ms,
        "frames": e.data.get("frames"),
        "snapshot": e.snapshot,
    });
    if let (Some(token), Some(seq)) = (e.fencing_token, e.seq) {
        payload["fencing_token"] = token.into();
        payload["seq"] = seq.into();
    }
    for key in ["track", "line", "direction", "zone", "dwell_s"] {
        if let Some(v) = e.data.get(key) {
            payload[key] = v.clone();
        }
    }
    payload
}
