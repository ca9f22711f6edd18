//! The `redis` output: the stream's processed pictures `PUBLISH`ed on a Redis channel, for
//! previews and latency checks elsewhere.
//!
//! Each message is a 4-byte big-endian length, a JSON header of that length (`stream`, `seq`,
//! `capture_ms`, `width`, `height`, `format`), then the picture (a JPEG, or raw I420 planes).
//! The pictures come from the stream's shared JPEG encoders ([`super::JpegHub`]); a task
//! publishes the newest one at most `max_fps` times a second. While Redis is slow (no answer
//! within a second) or down, pictures are skipped and counted; the stream never waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio::time::Instant;

use crate::config::{RedisFormat, RedisOutput, StreamId, masked_url};
use crate::supervise::lock;

use super::{JpegEncoder, JpegHub, JpegKey, OutputState, PushStatus};

/// Longest a `PUBLISH` or a connection may take before Redis counts as slow.
const PATIENCE: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Counters of a `redis` output.
#[derive(Debug, Default)]
pub struct RedisCounters {
    /// Pictures published.
    pub published: AtomicU64,
    /// Pictures skipped while Redis was slow or down.
    pub skipped: AtomicU64,
}

/// A running `redis` output.
pub struct RedisPublisher {
    url: String,
    channel: String,
    status: Arc<Mutex<PushStatus>>,
    counters: Arc<RedisCounters>,
    task: tokio::task::AbortHandle,
    _encoder: Arc<JpegEncoder>,
}

impl RedisPublisher {
    /// Starts publishing (on the current tokio runtime); Redis itself is reached later, and
    /// again whenever it was lost.
    pub fn start(stream: &StreamId, config: &RedisOutput, hub: &JpegHub) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str())
            .with_context(|| format!("redis output: bad URL {}", masked_url(&config.url)))?;
        let encoder = hub.subscribe(JpegKey {
            width: config.width,
            quality: config.quality,
            raw: config.format == RedisFormat::Raw,
        })?;
        let channel = config
            .channel
            .clone()
            .unwrap_or_else(|| format!("frames.{stream}"));
        let status = Arc::new(Mutex::new(PushStatus {
            state: OutputState::Connecting,
            ..PushStatus::default()
        }));
        let counters = Arc::new(RedisCounters::default());
        let task = tokio::spawn(publish(Job {
            stream: stream.to_string(),
            client,
            channel: channel.clone(),
            format: config.format,
            interval: Duration::from_secs_f64(1.0 / config.max_fps),
            encoder: encoder.clone(),
            status: status.clone(),
            counters: counters.clone(),
        }))
        .abort_handle();
        Ok(Self {
            url: masked_url(&config.url),
            channel,
            status,
            counters,
            task,
            _encoder: encoder,
        })
    }

    /// Where it publishes, password masked, with the channel.
    pub fn url(&self) -> String {
        format!("{} {}", self.url, self.channel)
    }

    /// The connection's state.
    pub fn status(&self) -> PushStatus {
        lock(&self.status).clone()
    }

    /// Published and skipped pictures.
    pub fn counters(&self) -> &RedisCounters {
        &self.counters
    }
}

impl Drop for RedisPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Job {
    stream: String,
    client: redis::Client,
    channel: String,
    format: RedisFormat,
    interval: Duration,
    encoder: Arc<JpegEncoder>,
    status: Arc<Mutex<PushStatus>>,
    counters: Arc<RedisCounters>,
}

impl Job {
    fn failed(&self, what: String) {
        let mut st = lock(&self.status);
        if st.state != OutputState::Retrying {
            tracing::warn!(stream = %self.stream, channel = %self.channel, "redis output: {what}; skipping pictures until it answers");
        }
        st.state = OutputState::Retrying;
        st.failures += 1;
        st.last_error = Some((what, SystemTime::now()));
    }
}

async fn publish(job: Job) {
    let mut frames = job.encoder.frames();
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut retry_at = Instant::now();
    let mut backoff = Duration::from_millis(250);
    let mut last_seq = None;
    let mut due = Instant::now();
    loop {
        tokio::time::sleep_until(due).await;
        // The newest picture not yet sent.
        let picture = loop {
            if let Some(p) = frames.borrow_and_update().clone()
                && last_seq.is_none_or(|s| p.seq > s)
            {
                break p;
            }
            if frames.changed().await.is_err() {
                return;
            }
        };
        last_seq = Some(picture.seq);
        due = (due + job.interval).max(Instant::now());
        if conn.is_none() {
            if Instant::now() < retry_at {
                job.counters.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match tokio::time::timeout(PATIENCE, job.client.get_multiplexed_async_connection())
                .await
            {
                Ok(Ok(c)) => {
                    conn = Some(c);
                    backoff = Duration::from_millis(250);
                    let mut st = lock(&job.status);
                    if st.state == OutputState::Retrying {
                        tracing::info!(stream = %job.stream, channel = %job.channel, "redis output: publishing again");
                    }
                    st.state = OutputState::Publishing;
                }
                Ok(Err(e)) => job.failed(format!("cannot connect: {e}")),
                Err(_) => job.failed("no answer to the connection".into()),
            }
            if conn.is_none() {
                job.counters.skipped.fetch_add(1, Ordering::Relaxed);
                retry_at = Instant::now() + backoff;
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let capture_ms = picture
            .capture_time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let header = serde_json::json!({
            "stream": job.stream,
            "seq": picture.seq,
            "capture_ms": capture_ms,
            "width": picture.width,
            "height": picture.height,
            "format": match job.format { RedisFormat::Jpeg => "jpeg", RedisFormat::Raw => "i420" },
        })
        .to_string();
        let mut msg = Vec::with_capacity(4 + header.len() + picture.data.len());
        msg.extend_from_slice(&(header.len() as u32).to_be_bytes());
        msg.extend_from_slice(header.as_bytes());
        msg.extend_from_slice(&picture.data);
        let sent = tokio::time::timeout(
            PATIENCE,
            redis::cmd("PUBLISH")
                .arg(&job.channel)
                .arg(msg)
                .query_async::<i64>(c),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                job.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                job.counters.skipped.fetch_add(1, Ordering::Relaxed);
                job.failed(format!("PUBLISH failed: {e}"));
                conn = None;
            }
            Err(_) => {
                job.counters.skipped.fetch_add(1, Ordering::Relaxed);
                job.failed("PUBLISH got no answer within 1 s".into());
                conn = None;
            }
        }
    }
}
