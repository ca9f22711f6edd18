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
            if !rule.streams.is_empty() && !rule.streams.contains(&self.stream) {
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
            let mut event = Event::new(
                kind::ALERT,
                Some(self.stream.as_str()),
                serde_json::json!({ "rule": rule.id, "frames": st.hits }),
            )
            .with_object(
                &best.label,
                f64::from(best.score),
                [r.x, r.y, r.w, r.h].map(f64::from),
            );
            if rule.webhook.is_some() {
                event.deliver.push("webhook".into());
            }
            if rule.mqtt.is_some() {
                event.deliver.push("mqtt".into());
            }
            if self.sink.wants_snapshots() {
                event.picture = picture();
            }
            tracing::info!(stream = %self.stream, rule = %rule.id, class = %best.label, "alert");
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
}
