//! The writer task: takes events from the channel in batches, saves their snapshots, and writes
//! them to the database; while the database cannot be written, they go to the on-disk queue,
//! which is written first once it answers again. Also runs the retention job.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Shared;
use super::db::Db;
use super::event::{Event, epoch_ms};
use super::spool::Spool;
use crate::supervise::LogGate;

/// Most events written in one transaction.
const BATCH: usize = 500;
/// How often the writer wakes without events (retries, retention).
const TICK: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// The same cause of a full queue, a refusing disk or a lost snapshot is logged once in this time.
pub(super) const LOG_EVERY: Duration = Duration::from_secs(60);
/// Longest a batch may take to write before the database counts as down.
const SLOW: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

pub(super) struct Writer {
    pub url: String,
    pub retention_days: u32,
    pub dir: Option<PathBuf>,
    pub spool: Spool,
    pub shared: Arc<Shared>,
    /// One line per cause of a full event queue or a failed snapshot, per minute.
    pub logged: LogGate,
    /// One line per cause of a disk that refuses the queue, per minute.
    pub disk_logged: LogGate,
}

struct Link {
    db: Option<Db>,
    /// When the database may be tried again after a failure.
    retry_at: Instant,
    backoff: Duration,
}

impl Writer {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut stop: watch::Receiver<bool>) {
        let mut link = Link {
            db: None,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(500),
        };
        let mut retention_at = Instant::now();
        loop {
            let mut batch = Vec::new();
            let stopping = tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => { batch.push(e); false }
                    None => true,
                },
                _ = tokio::time::sleep(TICK) => false,
                _ = stop.changed() => true,
            };
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
                if batch.len() >= BATCH && !stopping {
                    break;
                }
            }
            self.save_snapshots(&mut batch).await;
            self.write(&mut link, batch).await;
            if let Some(db) = &link.db
                && self.retention_days > 0
                && Instant::now() >= retention_at
            {
                retention_at = Instant::now() + RETENTION_EVERY;
                self.retention(db).await;
            }
            if stopping {
                break;
            }
        }
        if let Some(db) = link.db {
            db.close().await;
        }
    }

    async fn connect(&self, link: &mut Link) {
        if link.db.is_some() || Instant::now() < link.retry_at {
            return;
        }
        match Db::connect(&self.url).await {
            Ok(db) => {
                tracing::info!(backend = db.backend(), "event store connected");
                *super::lock(&self.shared.db) = Some(db.clone());
                link.db = Some(db);
                link.backoff = Duration::from_millis(500);
            }
            Err(e) => self.failed(link, &e),
        }
    }

    fn failed(&self, link: &mut Link, e: &anyhow::Error) {
        let message = format!("{e:#}");
        self.shared.failures.fetch_add(1, Ordering::Relaxed);
        let mut last = super::lock(&self.shared.last_error);
        if last.as_deref() != Some(&message) {
            tracing::warn!(
                queued = self.spool.len(),
                "event store cannot write, queueing events on disk: {message}"
            );
        }
        *last = Some(message);
        link.retry_at = Instant::now() + link.backoff;
        link.backoff = (link.backoff * 2).min(RETRY_MAX);
    }

    /// Writes the queue (if any) then `batch`; what cannot be written is queued.
    async fn write(&mut self, link: &mut Link, batch: Vec<Event>) {
        self.connect(link).await;
        let healthy = Instant::now() >= link.retry_at;
        if let (Some(db), true) = (link.db.clone(), healthy) {
            if !self.spool.is_empty() {
                match self.drain(&db).await {
                    Ok(n) => {
                        tracing::info!(events = n, "queued events written to the event store");
                        *super::lock(&self.shared.last_error) = None;
                    }
                    Err(e) => self.failed(link, &e),
                }
            }
            if self.spool.is_empty() && !batch.is_empty() {
                // A database that is slow is treated like one that is down: the batch goes to
                // the queue (if it was written after all, writing it again is harmless).
                let written = tokio::time::timeout(SLOW, db.insert(&batch))
                    .await
                    .unwrap_or_else(|_| {
                        Err(anyhow::anyhow!(
                            "the database took more than {} s to write {} events",
                            SLOW.as_secs(),
                            batch.len()
                        ))
                    });
                match written {
                    Ok(()) => {
                        self.written(batch.len());
                        link.backoff = Duration::from_millis(500);
                        if super::lock(&self.shared.last_error).take().is_some() {
                            tracing::info!("event store writes again");
                        }
                        return;
                    }
                    Err(e) => self.failed(link, &e),
                }
            }
        }
        if batch.is_empty() && self.spool.held() == 0 {
            return;
        }
        let over = self.spool.append(&batch);
        if over > 0 {
            self.shared
                .dropped
                .queue_full
                .fetch_add(over, Ordering::Relaxed);
            if self.logged.admit("queue full") {
                tracing::warn!(dropped = over, "event queue full: newest events dropped");
            }
        }
        self.disk_state();
        self.shared
            .queued
            .store(self.spool.len(), Ordering::Relaxed);
    }

    /// Logs (once per cause) that the disk refuses the queue, and when it takes it again.
    fn disk_state(&mut self) {
        let error = self.spool.disk_error().map(str::to_string);
        match &error {
            Some(e) if self.disk_logged.admit(e) => tracing::error!(
                held = self.spool.held(),
                "the event queue cannot be written to disk, holding events in memory \
                 (at most {}): {e}",
                super::spool::HELD_MAX
            ),
            None if self.disk_logged.reset() => {
                tracing::info!("the event queue is written to disk again");
            }
            _ => {}
        }
        self.shared.held.store(self.spool.held(), Ordering::Relaxed);
        *super::lock(&self.shared.queue_error) = error;
    }

    async fn drain(&mut self, db: &Db) -> anyhow::Result<usize> {
        let events = self.spool.read()?;
        for chunk in events.chunks(BATCH) {
            db.insert(chunk).await?;
        }
        self.spool.clear()?;
        self.shared.queued.store(0, Ordering::Relaxed);
        self.disk_state();
        self.written(events.len());
        Ok(events.len())
    }

    fn written(&self, n: usize) {
        self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
        self.shared.changed.send_modify(|v| *v += 1);
    }

    /// Saves the pictures of the batch as JPEG files next to the database.
    async fn save_snapshots(&mut self, batch: &mut [Event]) {
        for e in batch.iter_mut() {
            let Some(picture) = e.picture.take() else {
                continue;
            };
            let Some(dir) = self.dir.clone() else {
                continue;
            };
            let rel = format!(
                "snapshots/{}/{}.jpg",
                e.stream.as_deref().unwrap_or("_"),
                e.uid
            );
            let path = dir.join(&rel);
            let saved = tokio::task::spawn_blocking(move || super::snapshot::save(&picture, &path))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r);
            match saved {
                Ok(()) => e.snapshot = Some(rel),
                Err(err) => {
                    let why = format!("{err:#}");
                    // The cause without the file's name, which differs with each event.
                    let cause = why.rsplit(": ").next().unwrap_or(&why).to_string();
                    if self.logged.admit(&cause) {
                        tracing::warn!("snapshot not saved (logged once a minute): {why}");
                    }
                }
            }
        }
    }

    async fn retention(&self, db: &Db) {
        let keep = Duration::from_secs(u64::from(self.retention_days) * 86_400);
        let before = epoch_ms(SystemTime::now() - keep);
        match db.delete_before(before).await {
            Ok((deleted, files)) => {
                if let Some(dir) = &self.dir {
                    for f in &files {
                        let _ = std::fs::remove_file(dir.join(f));
                    }
                }
                if deleted > 0 {
                    tracing::info!(
                        deleted,
                        "events older than {} days deleted",
                        self.retention_days
                    );
                }
            }
            Err(e) => tracing::warn!("retention job failed: {e:#}"),
        }
    }
}
