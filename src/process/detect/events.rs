//! Detection events of one stream, without tracking: an event when a class appears, and one when
//! it has been gone for `clear_after` seconds (with the best score and box seen meanwhile), not
//! one per frame. The newest events are kept in memory.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;

use crate::frame::{Detection, Rect};

/// Events kept per stream.
const KEEP: usize = 256;

/// `appeared` or `cleared`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The class was seen, and was not before.
    Appeared,
    /// The class has not been seen for `clear_after` seconds.
    Cleared,
}

/// One detection event.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DetectionEvent {
    /// Number of the event in this stream, from 1.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// The class.
    pub class: String,
    /// Best score seen (so far, for `appeared`).
    pub score: f32,
    /// Box of the best score, frame pixels `[x, y, w, h]`.
    pub rect: [f32; 4],
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// For `cleared`: how long the class was present, seconds.
    pub duration_s: Option<f64>,
}

/// A class that is present now.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Present {
    /// The class.
    pub class: String,
    /// Best score since it appeared.
    pub best_score: f32,
    /// Box of the best score, `[x, y, w, h]`.
    pub rect: [f32; 4],
    /// When it appeared, milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// How many objects of the class the last run found.
    pub count: usize,
    #[serde(skip)]
    #[schemars(skip)]
    since: Instant,
    #[serde(skip)]
    #[schemars(skip)]
    last_seen: Instant,
}

#[derive(Default)]
struct State {
    present: BTreeMap<String, Present>,
    events: VecDeque<DetectionEvent>,
    next_seq: u64,
}

/// The events of one stream.
pub struct DetectionLog {
    clear_after: Duration,
    state: Mutex<State>,
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rect(r: &Rect) -> [f32; 4] {
    [r.x, r.y, r.w, r.h]
}

impl DetectionLog {
    /// An empty log.
    pub fn new(clear_after: Duration) -> Self {
        Self {
            clear_after,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::supervise::lock(&self.state)
    }

    /// Takes the result of a model run; returns the events it caused.
    pub fn update(&self, detections: &[Detection], now: Instant) -> Vec<DetectionEvent> {
        let mut fresh = Vec::new();
        let wall = SystemTime::now();
        let mut s = self.lock();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for d in detections {
            *counts.entry(d.label.as_str()).or_default() += 1;
        }
        for (class, count) in counts {
            let best = detections
                .iter()
                .filter(|d| d.label == class)
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .expect("a counted class has a detection");
            match s.present.get_mut(class) {
                Some(p) => {
                    p.last_seen = now;
                    p.count = count;
                    if best.score > p.best_score {
                        p.best_score = best.score;
                        p.rect = rect(&best.rect);
                    }
                }
                None => {
                    let p = Present {
                        class: class.to_string(),
                        best_score: best.score,
                        rect: rect(&best.rect),
                        since_ms: epoch_ms(wall),
                        count,
                        since: now,
                        last_seen: now,
                    };
                    fresh.push(push(&mut s, EventKind::Appeared, &p, wall, None));
                    s.present.insert(class.to_string(), p);
                }
            }
        }
        for p in s.present.values_mut() {
            if !detections.iter().any(|d| d.label == p.class) {
                p.count = 0;
            }
        }
        fresh.extend(self.clear_old(&mut s, now, wall));
        fresh
    }

    /// Closes the classes gone for `clear_after` (called on every frame); returns the events.
    pub fn tick(&self, now: Instant) -> Vec<DetectionEvent> {
        let mut s = self.lock();
        self.clear_old(&mut s, now, SystemTime::now())
    }

    fn clear_old(&self, s: &mut State, now: Instant, wall: SystemTime) -> Vec<DetectionEvent> {
        let mut fresh = Vec::new();
        let gone: Vec<String> = s
            .present
            .values()
            .filter(|p| now.duration_since(p.last_seen) >= self.clear_after && p.count == 0)
            .map(|p| p.class.clone())
            .collect();
        for class in gone {
            if let Some(p) = s.present.remove(&class) {
                let lasted = p.last_seen.duration_since(p.since).as_secs_f64();
                fresh.push(push(s, EventKind::Cleared, &p, wall, Some(lasted)));
            }
        }
        fresh
    }

    /// The classes present now and the newest events (oldest first), at most `limit`.
    pub fn snapshot(&self, limit: usize) -> (Vec<Present>, Vec<DetectionEvent>) {
        let s = self.lock();
        let skip = s.events.len().saturating_sub(limit);
        (
            s.present.values().cloned().collect(),
            s.events.iter().skip(skip).cloned().collect(),
        )
    }
}

fn push(
    s: &mut State,
    kind: EventKind,
    p: &Present,
    wall: SystemTime,
    duration_s: Option<f64>,
) -> DetectionEvent {
    s.next_seq += 1;
    let event = DetectionEvent {
        seq: s.next_seq,
        kind,
        class: p.class.clone(),
        score: p.best_score,
        rect: p.rect,
        at_ms: epoch_ms(wall),
        duration_s,
    };
    tracing::debug!(class = %event.class, score = event.score, "detection {kind:?}");
    if s.events.len() == KEEP {
        s.events.pop_front();
    }
    s.events.push_back(event.clone());
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &str, score: f32) -> Detection {
        Detection {
            rect: Rect {
                x: 1.0,
                y: 2.0,
                w: 3.0,
                h: 4.0,
            },
            label: label.into(),
            score,
        }
    }

    #[test]
    fn one_event_when_a_class_appears_and_one_when_it_clears() {
        let log = DetectionLog::new(Duration::from_secs(2));
        let t0 = Instant::now();
        for i in 0..10 {
            log.update(
                &[det("person", 0.5 + i as f32 * 0.01)],
                t0 + Duration::from_millis(100 * i),
            );
        }
        let (present, events) = log.snapshot(10);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind, events[0].class.as_str()),
            (EventKind::Appeared, "person")
        );
        assert!((present[0].best_score - 0.59).abs() < 1e-6);

        // Gone, but not yet for 2 s: still present.
        let last = t0 + Duration::from_millis(900);
        log.update(&[], last + Duration::from_millis(500));
        assert_eq!(log.snapshot(10).1.len(), 1);
        log.tick(last + Duration::from_millis(2100));
        let (present, events) = log.snapshot(10);
        assert!(present.is_empty());
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].kind, EventKind::Cleared);
        assert!((events[1].score - 0.59).abs() < 1e-6);
        assert!((events[1].duration_s.expect("duration") - 0.9).abs() < 1e-6);
    }

    #[test]
    fn keeps_the_newest_events() {
        let log = DetectionLog::new(Duration::ZERO);
        let t0 = Instant::now();
        for i in 0..(KEEP as u64 + 10) {
            let at = t0 + Duration::from_millis(i * 10);
            if i % 2 == 0 {
                log.update(&[det("car", 0.9)], at);
            } else {
                log.update(&[], at);
            }
        }
        let (_, events) = log.snapshot(usize::MAX);
        assert_eq!(events.len(), KEEP);
        assert_eq!(events.last().expect("event").seq, KEEP as u64 + 10);
    }
}
