//! Alert rules at run time: the configured rules (replaced on reload), and per stream the state
//! that decides when a rule fires.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{AlertConfig, StreamId};
use crate::frame::Detection;
use crate::store::{Event, EventSink, Picture, kind};

/// The alert rules of the process.
#[derive(Default)]
pub struct AlertRules {
    rules: RwLock<Arc<Vec<AlertConfig>>>,
}

impl AlertRules {
    /// Rules from the config.
    pub fn new(rules: Vec<AlertConfig>) -> Arc<Self> {
        Arc::new(Self {
            rules: RwLock::new(Arc::new(rules)),
        })
    }

    /// Replaces the rules (config reload); streams pick them up with their next result.
    pub fn set(&self, rules: Vec<AlertConfig>) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
    }

    /// The rules now.
    pub fn current(&self) -> Arc<Vec<AlertConfig>> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A rule by id.
    pub fn get(&self, id: &str) -> Option<AlertConfig> {
        self.current().iter().find(|r| r.id == id).cloned()
    }
}

#[derive(Default)]
struct RuleState {
    hits: u32,
    since: Option<Instant>,
    last_fired: Option<Instant>,
}

/// The rules as one stream's detector applies them to each model result.
pub struct StreamAlerts {
    stream: StreamId,
    rules: Arc<AlertRules>,
    sink: EventSink,
    state: HashMap<String, RuleState>,
}

impl StreamAlerts {
    /// Alerts of `stream`, recorded through `sink` (which writes them and their outbox rows).
    pub fn new(stream: StreamId, rules: Arc<AlertRules>, sink: EventSink) -> Self {
        Self {
            stream,
            rules,
            sink,
            state: HashMap::new(),
        }
    }

    /// Takes a model result; returns the alerts it fired (already recorded).
    pub fn observe(
        &mut self,
        detections: &[Detection],
        now: Instant,
        picture: impl Fn() -> Option<Picture>,
    ) -> Vec<Event> {
        let rules = self.rules.current();
        let mut fired = Vec::new();
        for rule in rules.iter() {
            if rule.on_tracks() || !rule.streams.is_empty() && !rule.streams.contains(&self.stream)
            {
                continue;
            }
            let st = self.state.entry(rule.id.clone()).or_default();
            let best = detections
                .iter()
                .filter(|d| d.label == rule.class)
                .filter(|d| rule.zone.as_deref().is_none_or(|z| inside(z, foot(d))))
                .max_by(|a, b| a.score.total_cmp(&b.score));
            let Some(best) = best else {
                st.hits = 0;
                st.since = None;
                continue;
            };
            st.hits += 1;
            let since = *st.since.get_or_insert(now);
            let long_enough = rule
                .min_seconds
                .is_none_or(|s| now.duration_since(since) >= Duration::from_secs_f64(s));
            let cooled = st
                .last_fired
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs_f64(rule.cooldown_s));
            if st.hits < rule.min_frames || !long_enough || !cooled {
                continue;
            }
            st.last_fired = Some(now);
            let r = &best.rect;
            let event = alert_event(
                &self.stream,
                rule,
                serde_json::json!({ "rule": rule.id, "frames": st.hits }),
                (&best.label, best.score, [r.x, r.y, r.w, r.h].map(f64::from)),
                self.sink.wants_snapshots().then(&picture).flatten(),
            );
            fired.push(event.clone());
            self.sink.record(event);
        }
        fired
    }
}

/// An `alert` event of `rule` about an object `(class, score, box)`, with its delivery
/// targets.
fn alert_event(
    stream: &StreamId,
    rule: &AlertConfig,
    data: serde_json::Value,
    (class, score, rect): (&str, f32, [f64; 4]),
    picture: Option<Picture>,
) -> Event {
    let mut event = Event::new(kind::ALERT, Some(stream.as_str()), data).with_object(
        class,
        f64::from(score),
        rect,
    );
    if rule.webhook.is_some() {
        event.deliver.push("webhook".into());
    }
    if rule.mqtt.is_some() {
        event.deliver.push("mqtt".into());
    }
    event.picture = picture;
    tracing::info!(stream = %stream, rule = %rule.id, class, "alert");
    event
}

/// What a tracked object did, for the rules on lines and zones.
#[derive(Debug, Clone, Copy)]
pub enum TrackedDeed<'a> {
    /// It crossed line `line`, forward or not.
    Crossed {
        /// The line's id.
        line: &'a str,
        /// Which way.
        forward: bool,
    },
    /// It has been in zone `zone` for `dwell_s` seconds so far (said at every result).
    Dwelling {
        /// The zone's id.
        zone: &'a str,
        /// Seconds inside.
        dwell_s: f64,
    },
    /// It left zone `zone` (or ended in it).
    Left {
        /// The zone's id.
        zone: &'a str,
    },
}

/// A tracked object: its track id, class, score and box.
#[derive(Debug, Clone, Copy)]
pub struct Tracked<'a> {
    /// The track's id.
    pub id: u64,
    /// Its class.
    pub class: &'a str,
    /// Its last score.
    pub score: f32,
    /// Its box `[x, y, w, h]`.
    pub rect: [f64; 4],
}

/// The rules on lines and zones as one stream's tracker applies them.
pub struct TrackAlerts {
    stream: StreamId,
    rules: Arc<AlertRules>,
    sink: EventSink,
    last_fired: HashMap<String, Instant>,
    /// (rule, track, zone) visits that already fired.
    dwelt: std::collections::HashSet<(String, u64, String)>,
}

impl TrackAlerts {
    /// Alerts of `stream`, recorded through `sink`.
    pub fn new(stream: StreamId, rules: Arc<AlertRules>, sink: EventSink) -> Self {
        Self {
            stream,
            rules,
            sink,
            last_fired: HashMap::new(),
            dwelt: Default::default(),
        }
    }

    /// Takes what an object did; returns the alerts it fired (already recorded).
    pub fn observe(
        &mut self,
        object: Tracked<'_>,
        deed: TrackedDeed<'_>,
        now: Instant,
        picture: impl Fn() -> Option<Picture>,
    ) -> Vec<Event> {
        let rules = self.rules.current();
        let mut fired = Vec::new();
        for rule in rules.iter() {
            if !rule.on_tracks()
                || rule.class != object.class
                || !rule.streams.is_empty() && !rule.streams.contains(&self.stream)
            {
                continue;
            }
            let data = match deed {
                TrackedDeed::Crossed { line, forward } => {
                    let way = if forward {
                        crate::config::CrossingDirection::Forward
                    } else {
                        crate::config::CrossingDirection::Backward
                    };
                    if rule.on_line.as_deref() != Some(line)
                        || rule.direction.is_some_and(|d| d != way)
                    {
                        continue;
                    }
                    serde_json::json!({
                        "rule": rule.id, "track": object.id, "line": line,
                        "direction": if forward { "forward" } else { "backward" },
                    })
                }
                TrackedDeed::Dwelling { zone, dwell_s } => {
                    if rule.in_zone.as_deref() != Some(zone)
                        || rule.dwell_s.is_none_or(|d| dwell_s < d)
                        || !self
                            .dwelt
                            .insert((rule.id.clone(), object.id, zone.to_string()))
                    {
                        continue;
                    }
                    serde_json::json!({
                        "rule": rule.id, "track": object.id, "zone": zone,
                        "dwell_s": (dwell_s * 1000.0).round() / 1000.0,
                    })
                }
                TrackedDeed::Left { zone } => {
                    self.dwelt
                        .remove(&(rule.id.clone(), object.id, zone.to_string()));
                    continue;
                }
            };
            let cooled = self
                .last_fired
                .get(&rule.id)
                .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs_f64(rule.cooldown_s));
            if !cooled {
                continue;
            }
            self.last_fired.insert(rule.id.clone(), now);
            let event = alert_event(
                &self.stream,
                rule,
                data,
                (object.class, object.score, object.rect),
                self.sink.wants_snapshots().then(&picture).flatten(),
            );
            fired.push(event.clone());
            self.sink.record(event);
        }
        fired
    }
}

/// The middle of a box's bottom edge: where a person or a vehicle stands.
fn foot(d: &Detection) -> [f64; 2] {
    [
        f64::from(d.rect.x + d.rect.w / 2.0),
        f64::from(d.rect.y + d.rect.h),
    ]
}

pub use crate::process::track::geometry::inside;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Rect;

    fn person(x: f32, score: f32) -> Detection {
        Detection {
            rect: Rect {
                x,
                y: 100.0,
                w: 50.0,
                h: 100.0,
            },
            label: "person".into(),
            score,
        }
    }

    fn rule(min_frames: u32, cooldown_s: f64, zone: Option<Vec<[f64; 2]>>) -> AlertConfig {
        let text = format!(
            r#"id = "door"
class = "person"
min_frames = {min_frames}
cooldown_s = {cooldown_s}
webhook = {{ url = "http://127.0.0.1:9/hook" }}"#
        );
        let mut r: AlertConfig = toml::from_str(&text).expect("rule");
        r.zone = zone;
        r
    }

    fn alerts(r: AlertConfig) -> StreamAlerts {
        StreamAlerts::new(
            StreamId::try_from("cam0".to_string()).expect("id"),
            AlertRules::new(vec![r]),
            EventSink::disabled(),
        )
    }

    #[test]
    fn fires_after_min_frames_in_a_row_then_keeps_quiet_for_the_cooldown() {
        let mut a = alerts(rule(3, 10.0, None));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(a.observe(&[person(0.0, 0.9)], at(0), || None).is_empty());
        assert!(
            a.observe(&[], at(100), || None).is_empty(),
            "a gap resets the count"
        );
        assert!(a.observe(&[person(0.0, 0.9)], at(200), || None).is_empty());
        assert!(a.observe(&[person(0.0, 0.8)], at(300), || None).is_empty());
        let fired = a.observe(&[person(0.0, 0.7), person(9.0, 0.95)], at(400), || None);
        assert_eq!(fired.len(), 1);
        let e = &fired[0];
        assert_eq!(
            (e.kind.as_str(), e.class.as_deref()),
            ("alert", Some("person"))
        );
        assert_eq!(
            e.score,
            Some(f64::from(0.95f32)),
            "the best detection is reported"
        );
        assert_eq!(e.deliver, ["webhook"]);
        assert_eq!(e.data["rule"], "door");
        assert!(
            a.observe(&[person(0.0, 0.9)], at(5_000), || None)
                .is_empty()
        );
        assert_eq!(a.observe(&[person(0.0, 0.9)], at(10_500), || None).len(), 1);
    }

    #[test]
    fn min_seconds_needs_an_unbroken_presence_that_long() {
        let mut r = rule(1, 0.0, None);
        r.min_seconds = Some(1.0);
        let mut a = alerts(r);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(a.observe(&[person(0.0, 0.9)], at(0), || None).is_empty());
        assert!(a.observe(&[person(0.0, 0.9)], at(900), || None).is_empty());
        assert!(a.observe(&[], at(950), || None).is_empty());
        assert!(
            a.observe(&[person(0.0, 0.9)], at(1000), || None).is_empty(),
            "the gap restarted it"
        );
        assert_eq!(a.observe(&[person(0.0, 0.9)], at(2000), || None).len(), 1);
    }

    #[test]
    fn a_zone_counts_objects_standing_in_it() {
        let zone = vec![[0.0, 0.0], [100.0, 0.0], [100.0, 300.0], [0.0, 300.0]];
        let mut a = alerts(rule(1, 0.0, Some(zone)));
        let t0 = Instant::now();
        // Feet at x = 25 + 0 (inside) and x = 25 + 200 (outside).
        assert!(a.observe(&[person(200.0, 0.9)], t0, || None).is_empty());
        assert_eq!(a.observe(&[person(0.0, 0.9)], t0, || None).len(), 1);
    }

    #[test]
    fn point_in_polygon() {
        let tri = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        assert!(inside(&tri, [2.0, 2.0]));
        assert!(!inside(&tri, [8.0, 8.0]));
        assert!(!inside(&tri, [-1.0, 1.0]));
    }

    fn tracked_rule(extra: &str) -> AlertConfig {
        toml::from_str(&format!(
            "id = \"r\"\nclass = \"person\"\ncooldown_s = 0\n{extra}\nwebhook = {{ url = \"http://127.0.0.1:9/hook\" }}"
        ))
        .expect("rule")
    }

    fn track_alerts(r: AlertConfig) -> TrackAlerts {
        TrackAlerts::new(
            StreamId::try_from("cam0".to_string()).expect("id"),
            AlertRules::new(vec![r]),
            EventSink::disabled(),
        )
    }

    const WALKER: Tracked<'static> = Tracked {
        id: 4,
        class: "person",
        score: 0.8,
        rect: [1.0, 2.0, 3.0, 4.0],
    };

    #[test]
    fn a_line_rule_fires_on_its_line_in_its_direction_only() {
        let mut a = track_alerts(tracked_rule("on_line = \"door\"\ndirection = \"forward\""));
        let now = Instant::now();
        let crossed = |line, forward| TrackedDeed::Crossed { line, forward };
        assert!(
            a.observe(WALKER, crossed("door", false), now, || None)
                .is_empty()
        );
        assert!(
            a.observe(WALKER, crossed("gate", true), now, || None)
                .is_empty()
        );
        let car = Tracked {
            class: "car",
            ..WALKER
        };
        assert!(
            a.observe(car, crossed("door", true), now, || None)
                .is_empty()
        );
        let fired = a.observe(WALKER, crossed("door", true), now, || None);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].data["direction"], "forward");
        assert_eq!(fired[0].data["track"], 4);
        assert_eq!(fired[0].deliver, vec!["webhook".to_string()]);
        // A detector-result rule's loop leaves it alone.
        let mut d = alerts(tracked_rule("on_line = \"door\""));
        assert!(d.observe(&[person(0.0, 0.9)], now, || None).is_empty());
    }

    #[test]
    fn a_dwell_rule_fires_once_per_visit() {
        let mut a = track_alerts(tracked_rule("in_zone = \"lobby\"\ndwell_s = 10"));
        let now = Instant::now();
        let dwelling = |dwell_s| TrackedDeed::Dwelling {
            zone: "lobby",
            dwell_s,
        };
        assert!(a.observe(WALKER, dwelling(9.9), now, || None).is_empty());
        assert_eq!(a.observe(WALKER, dwelling(10.0), now, || None).len(), 1);
        assert!(
            a.observe(WALKER, dwelling(12.0), now, || None).is_empty(),
            "once"
        );
        let other = Tracked { id: 5, ..WALKER };
        assert_eq!(a.observe(other, dwelling(11.0), now, || None).len(), 1);
        // Left and back in: a new visit.
        a.observe(WALKER, TrackedDeed::Left { zone: "lobby" }, now, || None);
        assert_eq!(a.observe(WALKER, dwelling(10.5), now, || None).len(), 1);
    }

    #[test]
    fn tracked_rules_that_cannot_work_are_refused() {
        for extra in [
            "on_line = \"a\"\nin_zone = \"b\"\ndwell_s = 1",
            "direction = \"forward\"",
            "in_zone = \"b\"",
            "dwell_s = 3",
            "in_zone = \"b\"\ndwell_s = 1e300",
            "on_line = \"a\"\nzone = [[0, 0], [1, 0], [0, 1]]",
        ] {
            assert!(tracked_rule(extra).validate().is_err(), "{extra}");
        }
        assert!(
            tracked_rule("in_zone = \"b\"\ndwell_s = 30")
                .validate()
                .is_ok()
        );
    }
}
