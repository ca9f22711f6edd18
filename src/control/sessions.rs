//! Viewer sessions of the browser outputs (MJPEG, WebSocket): who watches what now, for the
//! API and the dashboard, and in the event store a `viewer.started` / `viewer.ended` pair per
//! session plus one `viewer_minutes` row per minute watched (address, viewer name, watermark
//! ID given).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::Serialize;

use crate::store::{Event, EventSink, epoch_ms, kind, new_uid};
use crate::supervise::lock;

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ViewerStatus {
    /// Session id (also in its events).
    pub session: String,
    /// The stream watched.
    pub stream: String,
    /// `mjpeg` or `websocket`.
    pub transport: String,
    /// The viewer's address.
    pub ip: Option<String>,
    /// The name the viewer gave (`?viewer=`), if any.
    pub viewer: Option<String>,
    /// The watermark ID the stream carried when the session started.
    pub watermark: Option<String>,
    /// When it started, milliseconds since the epoch.
    pub started_ms: i64,
    /// Pictures sent.
    pub frames: u64,
    /// Bytes sent.
    pub bytes: u64,
}

struct Live {
    status: ViewerStatus,
    frames: AtomicU64,
    bytes: AtomicU64,
    /// The last minute recorded, ms since the epoch.
    minute: AtomicI64,
}

/// The sessions of the process, capped per stream and in total.
pub struct Sessions {
    live: Mutex<BTreeMap<String, Arc<Live>>>,
    per_stream: usize,
    total: usize,
    /// Viewers refused because a cap was reached.
    pub refused: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_limits(u32::MAX, u32::MAX)
    }
}

/// A viewer refused because the stream or the process has as many as it takes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Full(pub String);

/// One viewer's session; ends (and is recorded) when dropped.
pub struct Session {
    live: Arc<Live>,
    sessions: Arc<Sessions>,
    events: EventSink,
}

/// Who is starting to watch.
pub struct Viewer {
    /// The stream.
    pub stream: String,
    /// `mjpeg` or `websocket`.
    pub transport: &'static str,
    /// Their address.
    pub ip: Option<IpAddr>,
    /// The name they gave.
    pub viewer: Option<String>,
    /// The stream's watermark ID.
    pub watermark: Option<String>,
}

impl Sessions {
    /// No session yet; at most `per_stream` per stream and `total` in all.
    pub fn with_limits(per_stream: u32, total: u32) -> Self {
        Self {
            live: Mutex::default(),
            per_stream: per_stream as usize,
            total: total as usize,
            refused: AtomicU64::new(0),
        }
    }

    /// Starts a session and records `viewer.started`; refused when a cap is reached.
    pub fn start(self: &Arc<Self>, v: Viewer, events: EventSink) -> Result<Session, Full> {
        let status = ViewerStatus {
            session: new_uid(),
            stream: v.stream,
            transport: v.transport.into(),
            ip: v.ip.map(|i| i.to_string()),
            viewer: v.viewer,
            watermark: v.watermark,
            started_ms: epoch_ms(SystemTime::now()),
            frames: 0,
            bytes: 0,
        };
        let started = Event::new(
            kind::VIEWER_STARTED,
            Some(&status.stream),
            describe(&status),
        );
        let live = Arc::new(Live {
            status,
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            minute: AtomicI64::new(i64::MIN),
        });
        {
            let mut all = lock(&self.live);
            let stream = &live.status.stream;
            let on_stream = all.values().filter(|l| &l.status.stream == stream).count();
            if all.len() >= self.total || on_stream >= self.per_stream {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Full(if all.len() >= self.total {
                    format!(
                        "framegate has {} viewers, as many as it takes (server.limits.viewers_total)",
                        all.len()
                    )
                } else {
                    format!(
                        "stream `{stream}` has {on_stream} viewers, as many as it takes (server.limits.viewers_per_stream)"
                    )
                }));
            }
            all.insert(live.status.session.clone(), live.clone());
        }
        events.record(started);
        Ok(Session {
            live,
            sessions: self.clone(),
            events,
        })
    }

    /// How many viewers watch now.
    pub fn count(&self) -> usize {
        lock(&self.live).len()
    }

    /// The sessions of a stream (all streams: `None`), oldest first.
    pub fn list(&self, stream: Option<&str>) -> Vec<ViewerStatus> {
        let mut out: Vec<ViewerStatus> = lock(&self.live)
            .values()
            .filter(|l| stream.is_none_or(|s| l.status.stream == s))
            .map(|l| l.snapshot())
            .collect();
        out.sort_by_key(|s| s.started_ms);
        out
    }
}

impl Live {
    fn snapshot(&self) -> ViewerStatus {
        let mut s = self.status.clone();
        s.frames = self.frames.load(Ordering::Relaxed);
        s.bytes = self.bytes.load(Ordering::Relaxed);
        s
    }
}

fn describe(s: &ViewerStatus) -> serde_json::Value {
    serde_json::json!({
        "session": s.session,
        "transport": s.transport,
        "ip": s.ip,
        "viewer": s.viewer,
        "watermark": s.watermark,
    })
}

impl Session {
    /// Counts a picture sent; records the minute when a new one starts.
    pub fn sent(&self, bytes: usize) {
        let l = &self.live;
        l.frames.fetch_add(1, Ordering::Relaxed);
        l.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let now = epoch_ms(SystemTime::now());
        let minute = now - now.rem_euclid(60_000);
        if l.minute.swap(minute, Ordering::Relaxed) != minute {
            let mut e = Event::new(
                kind::VIEWER_MINUTE,
                Some(&l.status.stream),
                describe(&l.status),
            );
            e.at_ms = minute;
            self.events.record(e);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        lock(&self.sessions.live).remove(&self.live.status.session);
        let s = self.live.snapshot();
        let mut data = describe(&s);
        let ended = epoch_ms(SystemTime::now());
        data["started_ms"] = s.started_ms.into();
        data["duration_s"] = ((ended - s.started_ms) as f64 / 1000.0).into();
        data["frames"] = s.frames.into();
        data["bytes"] = s.bytes.into();
        self.events
            .record(Event::new(kind::VIEWER_ENDED, Some(&s.stream), data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_listed_while_it_lasts() {
        let sessions = Arc::new(Sessions::default());
        let s = sessions
            .start(
                Viewer {
                    stream: "cam0".into(),
                    transport: "mjpeg",
                    ip: Some([127, 0, 0, 1].into()),
                    viewer: Some("alice".into()),
                    watermark: Some("CAM0042".into()),
                },
                EventSink::disabled(),
            )
            .expect("room");
        s.sent(1000);
        s.sent(500);
        let list = sessions.list(Some("cam0"));
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].frames, list[0].bytes), (2, 1500));
        assert_eq!(list[0].viewer.as_deref(), Some("alice"));
        assert!(sessions.list(Some("other")).is_empty());
        drop(s);
        assert!(sessions.list(None).is_empty());
    }

    #[test]
    fn viewers_are_capped_per_stream_and_in_total() {
        let sessions = Arc::new(Sessions::with_limits(2, 3));
        let viewer = |stream: &str| Viewer {
            stream: stream.into(),
            transport: "mjpeg",
            ip: None,
            viewer: None,
            watermark: None,
        };
        let a = sessions
            .start(viewer("a"), EventSink::disabled())
            .expect("1");
        let _b = sessions
            .start(viewer("a"), EventSink::disabled())
            .expect("2");
        assert!(sessions.start(viewer("a"), EventSink::disabled()).is_err());
        let _c = sessions
            .start(viewer("b"), EventSink::disabled())
            .expect("3");
        assert!(sessions.start(viewer("b"), EventSink::disabled()).is_err());
        drop(a);
        assert!(sessions.start(viewer("b"), EventSink::disabled()).is_ok());
        assert_eq!(sessions.refused.load(Ordering::Relaxed), 2);
    }
}
