//! Config of what framegate records and delivers: the event store (`[database]`), the alert
//! rules (`[[alerts]]`) and the media-server check of a source.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StreamId;

/// Where events are stored (`[database]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://<file>` (relative to the config file; created and migrated on start),
    /// `postgres://user:pass@host[:port]/db`, or `none` to record nothing. The built-in demo
    /// keeps its events in memory.
    #[serde(default = "default_db_url")]
    pub url: String,
    /// Days events are kept; a job deletes older ones every hour. `0` keeps them forever.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Save a JPEG of the frame with each `detection.appeared` and `alert` event
    /// (`GET /api/events/{id}/snapshot.jpg`).
    #[serde(default)]
    pub snapshots: bool,
    /// Folder of the snapshots and of the on-disk queue. Default: next to the config file,
    /// `<config name>.events/`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Most events kept on disk while the database cannot be written; newer ones are dropped
    /// (counted in `framegate_events_dropped_total` and `GET /api/store`).
    #[serde(default = "default_queue_max")]
    pub queue_max_events: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_db_url(),
            retention_days: default_retention(),
            snapshots: false,
            dir: None,
            queue_max_events: default_queue_max(),
        }
    }
}

/// A URL given as text with its password replaced by `***` (the text as it is when it is not a
/// URL).
pub fn masked_text_url(text: &str) -> String {
    crate::redact::text(text).into_owned()
}

fn default_db_url() -> String {
    "sqlite://framegate.db".into()
}
fn default_retention() -> u32 {
    30
}
fn default_queue_max() -> u64 {
    100_000
}

impl DatabaseConfig {
    /// The URL with its password replaced by `***`.
    pub fn masked_url(&self) -> String {
        masked_text_url(&self.url)
    }

    /// Checks the URL's scheme.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.url == "none"
            || self.url.starts_with("sqlite:")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://");
        if !ok {
            return Err(format!(
                "database.url `{}`: expected sqlite://<file>, postgres://user:pass@host/db or none",
                self.masked_url()
            ));
        }
        if self.queue_max_events == 0 {
            return Err("database.queue_max_events must be at least 1".into());
        }
        Ok(())
    }
}

/// An alert rule: when `class` is seen on one of `streams` (inside `zone`, if set) for
/// `min_frames` model results in a row (and `min_seconds`, if set), an alert is sent to the
/// webhook and/or the MQTT topic, at least once, through an outbox in the database. With a
/// `track` processor, a rule may instead fire per object: when one crosses the stream's line
/// `on_line` (in `direction`, if set), or when one has stayed `dwell_s` seconds in the stream's
/// zone `in_zone` (once per visit).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Name of the rule, in every alert it sends.
    pub id: String,
    /// The class that triggers it (as the model names it, e.g. `person`).
    pub class: String,
    /// The streams it watches; empty: every stream with a `detect` processor. Each must be a
    /// stream of this file, except on a node of a cluster, which also runs the cluster's
    /// cameras.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub streams: Vec<StreamId>,
    /// A polygon in frame pixels, `[[x, y], ...]` (at least 3 points): an object counts when
    /// the middle of its box's bottom edge (where a person stands) is inside.
    #[serde(default)]
    pub zone: Option<Vec<[f64; 2]>>,
    /// Model results in a row that must contain the class.
    #[serde(default = "default_min_frames")]
    pub min_frames: u32,
    /// Seconds the class must have been present without a gap, in addition to `min_frames`.
    #[serde(default)]
    pub min_seconds: Option<f64>,
    /// Fire when a tracked object of `class` crosses this line of the stream (its `lines` id;
    /// needs a `track` processor). Each crossing fires, within `cooldown_s`.
    #[serde(default)]
    pub on_line: Option<String>,
    /// With `on_line`: only crossings this way (`forward` or `backward`); unset: either.
    #[serde(default)]
    pub direction: Option<CrossingDirection>,
    /// Fire when a tracked object of `class` has stayed `dwell_s` seconds in this zone of the
    /// stream (its `zones` id; needs a `track` processor), once per visit.
    #[serde(default)]
    pub in_zone: Option<String>,
    /// With `in_zone`: the seconds of a visit that fire it (0 to one day).
    #[serde(default)]
    pub dwell_s: Option<f64>,
    /// Seconds after an alert during which the rule stays quiet on that stream.
    #[serde(default = "default_cooldown")]
    pub cooldown_s: f64,
    /// A JSON POST per alert.
    #[serde(default)]
    pub webhook: Option<WebhookTarget>,
    /// An MQTT message per alert (QoS 1).
    #[serde(default)]
    pub mqtt: Option<MqttTarget>,
}

fn default_min_frames() -> u32 {
    3
}
fn default_cooldown() -> f64 {
    30.0
}

/// Where a webhook alert goes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// `http://` or `https://` URL that receives `POST` with the alert as JSON.
    #[schemars(with = "String")]
    pub url: url::Url,
    /// With a secret, each request carries `X-Framegate-Signature: sha256=<hex>`, the
    /// HMAC-SHA256 of the body with this secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// Seconds to wait for the receiver's answer before the attempt counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
}

/// Where an MQTT alert goes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttTarget {
    /// The broker: `mqtt://[user:pass@]host[:port]` (port 1883 by default).
    #[schemars(with = "String")]
    pub url: url::Url,
    /// Topic the alert is published on, with QoS 1.
    pub topic: String,
    /// Seconds to wait for the broker's acknowledgement before the attempt counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
}

fn default_timeout() -> f64 {
    5.0
}

/// A way across a counting line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CrossingDirection {
    /// The line's forward direction (its direction turned a quarter turn counter-clockwise
    /// on screen).
    Forward,
    /// The other way.
    Backward,
}

impl AlertConfig {
    /// Whether the rule fires on tracked objects (a line or a zone's dwell) rather than on the
    /// detector's results.
    pub fn on_tracks(&self) -> bool {
        self.on_line.is_some() || self.in_zone.is_some()
    }

    /// Checks the rule on its own (stream ids are checked against the config by the loader).
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("id must not be empty".into());
        }
        if self.on_line.is_some() && self.in_zone.is_some() {
            return Err("on_line and in_zone are two rules: write one each".into());
        }
        if self.on_tracks() && self.zone.is_some() {
            return Err(
                "zone (a polygon for detections) does not go with on_line or in_zone".into(),
            );
        }
        if self.direction.is_some() && self.on_line.is_none() {
            return Err("direction needs on_line".into());
        }
        if self.in_zone.is_some() != self.dwell_s.is_some() {
            return Err("in_zone and dwell_s go together".into());
        }
        if let Some(d) = self.dwell_s {
            super::bounds::seconds("dwell_s", d, 0.0)?;
        }
        if self.webhook.is_none() && self.mqtt.is_none() {
            return Err("needs a `webhook` or an `mqtt` target (or both)".into());
        }
        if let Some(zone) = &self.zone
            && zone.len() < 3
        {
            return Err(format!("zone has {} points; a polygon needs 3", zone.len()));
        }
        if self.min_frames == 0 {
            return Err("min_frames must be at least 1".into());
        }
        super::bounds::seconds("cooldown_s", self.cooldown_s, 0.0)?;
        if let Some(s) = self.min_seconds {
            super::bounds::seconds("min_seconds", s, 0.0)?;
        }
        if let Some(w) = &self.webhook {
            if !matches!(w.url.scheme(), "http" | "https") {
                return Err(format!(
                    "webhook.url must be http:// or https://, not `{}`",
                    w.url.scheme()
                ));
            }
            super::bounds::within("webhook.timeout_s", w.timeout_s, 0.1, 300.0)?;
        }
        if let Some(m) = &self.mqtt {
            if m.url.scheme() != "mqtt" || m.url.host_str().is_none() {
                return Err("mqtt.url must be mqtt://host[:port]".into());
            }
            if m.topic.is_empty() || m.topic.contains(['+', '#']) {
                return Err("mqtt.topic must be a topic name without wildcards".into());
            }
            super::bounds::within("mqtt.timeout_s", m.timeout_s, 0.1, 300.0)?;
        }
        Ok(())
    }

    /// A copy with the webhook secret and the broker password replaced by `***`.
    pub fn masked(&self) -> AlertConfig {
        let mut a = self.clone();
        if let Some(w) = &mut a.webhook
            && w.secret.is_some()
        {
            w.secret = Some("***".into());
        }
        if let Some(m) = &mut a.mqtt {
            m.url = crate::redact::url(&m.url);
        }
        a
    }
}

/// Ask a media server's HTTP API whether the stream exists before pulling it, and poll it
/// (instead of the RTSP/RTMP port) while it does not.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaServerCheck {
    /// `http://` URL to GET; `{path}` is replaced by the source URL's path (without the leading
    /// `/`) and `{stream}` by the stream id. Example (MediaMTX):
    /// `http://127.0.0.1:9997/v3/paths/get/{path}`.
    pub url: String,
    /// Dotted path into the JSON answer (`ready`, `items.0.name`) whose value must be present
    /// and not empty, `false`, `0` or `null`. Empty: any 2xx answer means the stream exists.
    #[serde(default)]
    pub json_path: String,
    /// Seconds between checks while the stream is absent.
    #[serde(default = "default_poll")]
    pub poll_s: f64,
}

fn default_poll() -> f64 {
    2.0
}

impl MediaServerCheck {
    /// Checks the URL template.
    pub fn validate(&self) -> Result<(), String> {
        let probe = self.url.replace("{path}", "p").replace("{stream}", "s");
        match url::Url::parse(&probe) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(format!(
                    "media_server.url `{}`: expected an http:// URL",
                    self.url
                ));
            }
        }
        super::bounds::within("media_server.poll_s", self.poll_s, 0.1, 3600.0)?;
        Ok(())
    }
}
