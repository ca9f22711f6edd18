//! What is recorded: one [`Event`] per thing that happened, and the [`EventSink`] that anyone
//! on the video path hands them to without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::cluster::fence::Fence;

/// The kinds of event, as stored in the `kind` column.
pub mod kind {
    /// A class was seen on a stream, and was not before.
    pub const DETECTION_APPEARED: &str = "detection.appeared";
    /// A class has not been seen for the detector's `clear_after`.
    pub const DETECTION_CLEARED: &str = "detection.cleared";
    /// The `track` processor confirmed a new object (with its snapshot).
    pub const OBJECT_STARTED: &str = "object.started";
    /// A tracked object has not been seen for the tracker's `max_lost_s` (with its best
    /// snapshot, its duration and best score).
    pub const OBJECT_ENDED: &str = "object.ended";
    /// A tracked object crossed a counting line (`line`, `direction`).
    pub const LINE_CROSSED: &str = "line.crossed";
    /// A tracked object entered a zone (`zone`).
    pub const ZONE_ENTERED: &str = "zone.entered";
    /// A tracked object left a zone, or ended inside it (`zone`, `dwell_s`).
    pub const ZONE_LEFT: &str = "zone.left";
    /// A stream changed state (live, stalled, reconnecting, ...), with the reason.
    pub const STREAM_STATE: &str = "stream.state";
    /// A viewer started watching.
    pub const VIEWER_STARTED: &str = "viewer.started";
    /// A viewer stopped watching.
    pub const VIEWER_ENDED: &str = "viewer.ended";
    /// The configuration was changed through the API.
    pub const CONFIG_CHANGED: &str = "config.changed";
    /// An alert rule fired (delivered through the outbox).
    pub const ALERT: &str = "alert";
    /// A minute of a viewer's session (stored in `viewer_minutes`, not with the events).
    pub const VIEWER_MINUTE: &str = "viewer.minute";
    /// A `python` processor returned an event (`data.name`, the rest of what it returned in
    /// `data`).
    pub const PYTHON_EVENT: &str = "python.event";
    /// Every kind, for validating queries.
    pub const ALL: &[&str] = &[
        DETECTION_APPEARED,
        DETECTION_CLEARED,
        OBJECT_STARTED,
        OBJECT_ENDED,
        LINE_CROSSED,
        ZONE_ENTERED,
        ZONE_LEFT,
        STREAM_STATE,
        VIEWER_STARTED,
        VIEWER_ENDED,
        CONFIG_CHANGED,
        ALERT,
        PYTHON_EVENT,
    ];
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Database id (absent until stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Unique id made where the event happened (32 hex digits): the same event written twice
    /// (after a retry) is stored once, and alert receivers drop duplicates by it.
    pub uid: String,
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The stream, when it concerns one.
    pub stream: Option<String>,
    /// What happened (`detection.appeared`, `stream.state`, `alert`, ...).
    pub kind: String,
    /// Object class, for detections and alerts.
    pub class: Option<String>,
    /// Best score, for detections and alerts.
    pub score: Option<f64>,
    /// Box `[x, y, w, h]` in frame pixels, for detections and alerts.
    #[serde(rename = "box")]
    pub rect: Option<[f64; 4]>,
    /// Details, by kind (state and reason, viewer address, rule, ...).
    pub data: serde_json::Value,
    /// Snapshot file, relative to the events folder, when one was saved.
    pub snapshot: Option<String>,
    /// The camera owner's fencing token, for a camera run for a cluster (the revision of its
    /// owner key in etcd): the database refuses to deliver alerts of an older owner once a newer
    /// one has written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i64>,
    /// With the fencing token: the order of the event among those its process recorded for
    /// cluster cameras (camera, fencing token and sequence name an event once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Alert targets to deliver to through the outbox (`webhook`, `mqtt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliver: Vec<String>,
    /// A picture to save as the snapshot (never serialized).
    #[serde(skip)]
    #[schemars(skip)]
    pub picture: Option<Picture>,
}

/// Pixels to save as an event's snapshot.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The frame (a reference, not a copy).
    pub buffer: gst::Buffer,
    /// Its layout.
    pub info: gst_video::VideoInfo,
}

impl PartialEq for Picture {
    fn eq(&self, other: &Self) -> bool {
        self.buffer.as_ptr() == other.buffer.as_ptr()
    }
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fresh unique id: 128 random bits in hex.
pub fn new_uid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Redacts every string of a JSON value, in place.
fn scrub(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = crate::redact::text(s) {
                *s = clean;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
        serde_json::Value::Object(o) => o.values_mut().for_each(scrub),
        _ => {}
    }
}

impl Event {
    /// An event of `kind` happening now. Every text in `data` is scrubbed of secrets
    /// ([`crate::redact::text`]) on the way in.
    pub fn new(kind: &str, stream: Option<&str>, mut data: serde_json::Value) -> Self {
        scrub(&mut data);
        Self {
            id: None,
            uid: new_uid(),
            at_ms: epoch_ms(SystemTime::now()),
            stream: stream.map(str::to_string),
            kind: kind.to_string(),
            class: None,
            score: None,
            rect: None,
            data,
            snapshot: None,
            fencing_token: None,
            seq: None,
            deliver: Vec::new(),
            picture: None,
        }
    }

    /// Sets the class, score and box.
    pub fn with_object(mut self, class: &str, score: f64, rect: [f64; 4]) -> Self {
        self.class = Some(class.to_string());
        self.score = Some(score);
        self.rect = Some(rect);
        self
    }
}

/// Counters of events that never reached the writer or its queue.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Dropped because the in-memory channel to the writer was full.
    pub channel_full: AtomicU64,
    /// Dropped because the on-disk queue was full.
    pub queue_full: AtomicU64,
    /// Dropped because they were recorded for a cluster camera past its node's fence (the
    /// node could no longer be sure it still owned the camera).
    pub fenced: AtomicU64,
}

/// What a cluster camera's events carry: its owner's fencing token and a sequence, and the
/// node's fence that stops them being recorded once the node may have lost the camera.
struct Stamp {
    token: i64,
    fence: Fence,
}

/// Sequence numbers of cluster cameras' events: one counter for the process, so that a camera
/// let go and taken up again under the same owner key (same token) never repeats one.
static SEQ: AtomicI64 = AtomicI64::new(0);

/// Hands events to the store; never blocks. Cheap to clone; a disabled sink drops everything.
#[derive(Clone, Default)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Event>>,
    dropped: Arc<Dropped>,
    snapshots: bool,
    camera: Option<Arc<Stamp>>,
}

impl EventSink {
    /// A sink that records nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// A sink whose events the caller takes from the receiver (a tool that runs processors
    /// without a store); past `capacity` waiting, events are dropped.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::new(tx, Arc::default(), false), rx)
    }

    pub(super) fn new(tx: mpsc::Sender<Event>, dropped: Arc<Dropped>, snapshots: bool) -> Self {
        Self {
            tx: Some(tx),
            dropped,
            snapshots,
            camera: None,
        }
    }

    /// The sink of a camera run for a cluster under the owner key whose revision is `token`:
    /// its events carry the token and a sequence, and none is recorded while `fence` is
    /// closed.
    pub fn for_camera(&self, token: i64, fence: Fence) -> Self {
        Self {
            camera: Some(Arc::new(Stamp { token, fence })),
            ..self.clone()
        }
    }

    /// Whether events go anywhere.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether detection events should carry a picture.
    pub fn wants_snapshots(&self) -> bool {
        self.snapshots && self.enabled()
    }

    /// Records an event; if the writer is that far behind, the event is dropped and counted.
    pub fn record(&self, mut event: Event) {
        let Some(tx) = &self.tx else { return };
        if let Some(stamp) = &self.camera {
            if !stamp.fence.allows() {
                let n = self.dropped.fenced.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        stream = event.stream.as_deref().unwrap_or(""),
                        "event not recorded past the node's fence ({} so far)",
                        n + 1
                    );
                }
                return;
            }
            event.fencing_token = Some(stamp.token);
            event.seq = Some(SEQ.fetch_add(1, Ordering::Relaxed) + 1);
        }
        if tx.try_send(event).is_err() {
            let n = self.dropped.channel_full.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!("event writer behind: {} events dropped", n + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn sink() -> (EventSink, mpsc::Receiver<Event>, Arc<Dropped>) {
        let (tx, rx) = mpsc::channel(16);
        let dropped = Arc::new(Dropped::default());
        (EventSink::new(tx, dropped.clone(), false), rx, dropped)
    }

    #[test]
    fn a_cluster_camera_s_events_carry_its_token_and_a_rising_sequence() {
        let (sink, mut rx, _) = sink();
        let camera = sink.for_camera(42, Fence::open());
        camera.record(Event::new(
            kind::STREAM_STATE,
            Some("cam"),
            serde_json::json!({}),
        ));
        camera.record(Event::new(
            kind::STREAM_STATE,
            Some("cam"),
            serde_json::json!({}),
        ));
        sink.record(Event::new(
            kind::CONFIG_CHANGED,
            None,
            serde_json::json!({}),
        ));
        let (a, b, c) = (
            rx.try_recv().unwrap(),
            rx.try_recv().unwrap(),
            rx.try_recv().unwrap(),
        );
        assert_eq!((a.fencing_token, b.fencing_token), (Some(42), Some(42)));
        assert!(b.seq.unwrap() > a.seq.unwrap());
        // The node's own events carry neither.
        assert_eq!((c.fencing_token, c.seq), (None, None));
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("fencing_token").is_none() && json.get("seq").is_none());
    }

    #[test]
    fn nothing_is_recorded_for_a_cluster_camera_past_the_fence() {
        let (sink, mut rx, dropped) = sink();
        let fence = Fence::closed();
        fence.extend(Instant::now() + Duration::from_secs(60));
        let camera = sink.for_camera(7, fence.clone());
        camera.record(Event::new(
            kind::STREAM_STATE,
            Some("cam"),
            serde_json::json!({}),
        ));
        fence.close();
        camera.record(Event::new(
            kind::STREAM_STATE,
            Some("cam"),
            serde_json::json!({}),
        ));
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
        assert_eq!(dropped.fenced.load(Ordering::Relaxed), 1);
    }
}
