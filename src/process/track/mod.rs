//! The `track` processor: follows the objects of the `detect` processor before it over time,
//! gives each an id, and counts the stream's lines and zones.
//!
//! A detector's result arrives a model run after the frame it was found in, and not on every
//! frame. The tracker takes each result at the time of its own frame ([`tracker`]), then every
//! frame gets the confirmed tracks predicted to its time, so boxes and ids follow the objects at
//! the video's rate. Each result also moves the tracks over the lines and zones ([`zones`]),
//! which makes the events (`object.started` / `object.ended`, `line.crossed`, `zone.entered` /
//! `zone.left`) and the counts (`GET /api/streams/{id}/counts`, `/metrics`).

pub mod geometry;
mod inputs;
mod kalman;
mod snapshot;
pub mod tracker;
pub mod zones;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

use crate::config::{Anchor, LineConfig, TrackConfig, ZoneConfig};
use crate::frame::{Frame, Rect, TrackBox};
use crate::store::{Event, EventSink, Picture, kind};
use crate::supervise::lock;

use super::detect::{Found, LiveResults};

use super::{Hooks, Processor};
use crate::alert::{TrackAlerts, Tracked, TrackedDeed};
pub use tracker::{Input, Params, Tracker};
pub use zones::{Counter, Counts, Happening, Line, LineCount, Zone, ZoneCount};

/// A stream time that jumps back by more than this (seconds) means the source started again:
/// the tracks end and start afresh.
const TIME_RESET_S: f64 = 5.0;

/// What the API shows of a stream's tracker.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TrackStatus {
    /// Tracks confirmed since the stream started.
    pub started: u64,
    /// Tracks ended since the stream started.
    pub ended: u64,
    /// Detector results taken.
    pub updates: u64,
    /// Mean time per result (association, lines, zones), milliseconds.
    pub mean_update_ms: f64,
    /// The live tracks, as in the newest frame.
    pub tracks: Vec<TrackBox>,
}

/// The readable side of a stream's tracker (for the API and the metrics).
#[derive(Default)]
pub struct TrackHandle {
    tracks: Mutex<Vec<TrackBox>>,
    counts: Mutex<Counts>,
    started: AtomicU64,
    ended: AtomicU64,
    updates: AtomicU64,
    update_ns: AtomicU64,
    /// The stream's lines, as configured.
    pub lines: Vec<LineConfig>,
    /// The stream's zones, as configured.
    pub zones: Vec<ZoneConfig>,
    /// The tracks at each detector result, with its frame's source PTS, for viewers that draw
    /// them (`GET /streams/{id}/whep/{session}/boxes`).
    pub live: LiveResults,
}

impl TrackHandle {
    /// The live tracks and the counters.
    pub fn status(&self) -> TrackStatus {
        let updates = self.updates.load(Ordering::Relaxed);
        TrackStatus {
            started: self.started.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
            updates,
            mean_update_ms: self.update_ns.load(Ordering::Relaxed) as f64
                / 1e6
                / updates.max(1) as f64,
            tracks: lock(&self.tracks).clone(),
        }
    }

    /// The counts per line and zone, per class.
    pub fn counts(&self) -> Counts {
        lock(&self.counts).clone()
    }
}

/// Follows objects over frames.
pub struct Track {
    anchor: Anchor,
    tracker: Tracker,
    counter: Counter,
    handle: std::sync::Arc<TrackHandle>,
    /// The detections' source PTS the tracker last took.
    last_pts: Option<u64>,
    /// Stream time of the last frame processed, seconds (where the input's end is).
    last_frame_t: Option<f64>,
    stream: Option<String>,
    events: EventSink,
    /// The alert rules on lines and zones, when the stream has rules.
    alerts: Option<TrackAlerts>,
    /// Per confirmed track: the best picture of it so far (a crop), for `object.ended`.
    best: HashMap<u64, (f32, Picture)>,
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn rect(r: [f64; 4]) -> Rect {
    Rect {
        x: r[0] as f32,
        y: r[1] as f32,
        w: r[2] as f32,
        h: r[3] as f32,
    }
}

impl Track {
    /// A tracker for one stream, with its lines and zones.
    pub fn new(
        config: &TrackConfig,
        lines: &[LineConfig],
        zones: &[ZoneConfig],
        hooks: &Hooks,
    ) -> Self {
        let params = Params {
            high_score: config.high_score,
            low_score: config.low_score,
            new_track_score: config.new_track_score,
            match_iou: config.match_iou,
            max_lost_s: config.max_lost_s,
            show_lost_s: config.show_lost_s,
            unsure_s: config.unsure_s,
            confirm_hits: config.confirm_hits,
            trail: config.trail as usize,
            ..Params::default()
        };
        let point = |p: &[f64; 2]| [p[0], p[1]];
        let counter = Counter::new(
            lines
                .iter()
                .map(|l| Line {
                    id: l.id.clone(),
                    points: [point(&l.points[0]), point(&l.points[1])],
                    classes: l.classes.clone(),
                })
                .collect(),
            zones
                .iter()
                .map(|z| Zone {
                    id: z.id.clone(),
                    points: z.points.iter().map(point).collect(),
                    classes: z.classes.clone(),
                })
                .collect(),
        );
        let handle = TrackHandle {
            counts: Mutex::new(counter.counts().clone()),
            lines: lines.to_vec(),
            zones: zones.to_vec(),
            ..TrackHandle::default()
        };
        Self {
            anchor: config.anchor,
            tracker: Tracker::new(params)
                .with_class_groups(tracker::ClassGroups::new(&config.class_groups))
                .with_new_track_scores(config.new_track_scores.clone())
                .with_high_scores(config.high_scores.clone()),
            counter,
            handle: std::sync::Arc::new(handle),
            last_pts: None,
            last_frame_t: None,
            stream: hooks.stream.as_ref().map(|s| s.to_string()),
            events: hooks.events.clone(),
            alerts: match (&hooks.stream, &hooks.alerts) {
                (Some(id), Some(rules)) => Some(TrackAlerts::new(
                    id.clone(),
                    rules.clone(),
                    hooks.events.clone(),
                )),
                _ => None,
            },
            best: HashMap::new(),
        }
    }

    /// The readable side.
    pub fn handle(&self) -> std::sync::Arc<TrackHandle> {
        self.handle.clone()
    }

    /// The point of box `r` that lines and zones test, taken from the part of the box in the
    /// picture (`frame`: width and height): an object partly out of view is seen only up to the
    /// picture's edge, and a line drawn to that edge counts it whether its feet are just in
    /// view or just below it.
    fn anchor(&self, r: [f64; 4], frame: [f64; 2]) -> [f64; 2] {
        let r = geometry::clip_to_frame(r, frame);
        match self.anchor {
            Anchor::Bottom => [r[0] + r[2] / 2.0, r[1] + r[3]],
            Anchor::Center => [r[0] + r[2] / 2.0, r[1] + r[3] / 2.0],
        }
    }

    fn event(&self, k: &str, track: &tracker::Track, data: serde_json::Value) -> Event {
        let mut data = data;
        data["track"] = track.id.into();
        Event::new(k, self.stream.as_deref(), data).with_object(
            &track.class,
            f64::from(track.score),
            track.rect(),
        )
    }

    /// Records (and alerts on) what `track` did; `frame`, where there is one, gives the
    /// alerts' pictures.
    fn happenings(
        &mut self,
        frame: Option<&Frame>,
        track: &tracker::Track,
        happenings: Vec<Happening>,
    ) {
        for h in &happenings {
            self.alert(frame, track, h);
        }
        for h in happenings {
            let e = match h {
                Happening::Crossed { line, forward } => self.event(
                    kind::LINE_CROSSED,
                    track,
                    serde_json::json!({
                        "line": self.counter.lines()[line].id,
                        "direction": if forward { "forward" } else { "backward" },
                    }),
                ),
                Happening::Entered { zone } => self.event(
                    kind::ZONE_ENTERED,
                    track,
                    serde_json::json!({ "zone": self.counter.zones()[zone].id }),
                ),
                Happening::Left { zone, dwell_s } => self.event(
                    kind::ZONE_LEFT,
                    track,
                    serde_json::json!({
                        "zone": self.counter.zones()[zone].id,
                        "dwell_s": (dwell_s * 1000.0).round() / 1000.0,
                    }),
                ),
            };
            self.events.record(e);
        }
    }

    /// Applies the alert rules on lines and zones to what a track did.
    fn alert(&mut self, frame: Option<&Frame>, track: &tracker::Track, h: &Happening) {
        let Some(alerts) = &mut self.alerts else {
            return;
        };
        let deed = match h {
            Happening::Crossed { line, forward } => TrackedDeed::Crossed {
                line: &self.counter.lines()[*line].id,
                forward: *forward,
            },
            Happening::Left { zone, .. } => TrackedDeed::Left {
                zone: &self.counter.zones()[*zone].id,
            },
            Happening::Entered { .. } => return,
        };
        let object = Tracked {
            id: track.id,
            class: &track.class,
            score: track.score,
            rect: track.rect(),
        };
        alerts.observe(object, deed, Instant::now(), || {
            frame.and_then(|f| snapshot::crop(f, track.rect()))
        });
    }

    /// Applies the dwell rules to the tracks inside zones at stream time `t`.
    fn dwell_alerts(&mut self, frame: &Frame, t: f64) {
        let Some(alerts) = &mut self.alerts else {
            return;
        };
        for (id, zone, _, dwell_s) in self.counter.dwelling(t) {
            let Some(track) = self.tracker.get(id) else {
                continue;
            };
            let object = Tracked {
                id,
                class: &track.class,
                score: track.score,
                rect: track.rect(),
            };
            let deed = TrackedDeed::Dwelling {
                zone: &self.counter.zones()[zone].id,
                dwell_s,
            };
            alerts.observe(object, deed, Instant::now(), || {
                snapshot::crop(frame, track.rect())
            });
        }
    }

    /// Takes a detector result found in the frame of source PTS `pts` (nanoseconds).
    fn update(&mut self, frame: &Frame, pts: u64) {
        let t = seconds(pts);
        let started = Instant::now();
        if let Some(last) = self
            .tracker
            .tracks()
            .iter()
            .map(|t| t.last_seen)
            .reduce(f64::max)
            && t + TIME_RESET_S < last
        {
            for gone in self.tracker.clear() {
                self.end(Some(frame), &gone, last);
            }
        }
        let inputs: Vec<Input<'_>> = frame
            .meta
            .detections
            .iter()
            .map(|d| Input {
                rect: [d.rect.x, d.rect.y, d.rect.w, d.rect.h].map(f64::from),
                class: &d.label,
                score: d.score,
            })
            .collect();
        let changes = self.tracker.update(&inputs, t);
        let snapshots = self.events.wants_snapshots();
        for id in &changes.started {
            if let Some(track) = self.tracker.get(*id).cloned() {
                let mut e = self.event(kind::OBJECT_STARTED, &track, serde_json::json!({}));
                if snapshots {
                    e.picture = snapshot::crop(frame, track.rect());
                }
                self.events.record(e);
                self.handle.started.fetch_add(1, Ordering::Relaxed);
            }
        }
        let picture = [frame.width(), frame.height()].map(f64::from);
        for (id, _) in &changes.matched {
            let Some(track) = self.tracker.get(*id).cloned() else {
                continue;
            };
            let r = track.rect();
            let found = self.counter.observe(
                track.id,
                &track.class,
                self.anchor(r, picture),
                [r[2], r[3]],
                t,
            );
            self.happenings(Some(frame), &track, found);
            let better = self
                .best
                .get(id)
                .is_none_or(|(score, _)| track.score > score + 0.02);
            if snapshots
                && better
                && let Some(p) = snapshot::crop(frame, r)
            {
                self.best.insert(*id, (track.score, p));
            }
        }
        // Lost tracks, while kept: their predicted boxes cross lines (an object hidden by
        // another, or missed by the detector, while it crosses). A track is copied only for
        // the events of a crossing.
        let guessed: Vec<(u64, [f64; 4])> = if self.counter.lines().is_empty() {
            Vec::new()
        } else {
            self.tracker
                .lost_at(t)
                .map(|(track, r)| (track.id, r))
                .collect()
        };
        for (id, r) in guessed {
            let p = self.anchor(r, picture);
            let Some(track) = self.tracker.get(id) else {
                continue;
            };
            let found = self.counter.cross_lines(id, &track.class, p, [r[2], r[3]]);
            if !found.is_empty() {
                let track = track.clone();
                self.happenings(Some(frame), &track, found);
            }
        }
        for gone in changes.ended {
            self.end(Some(frame), &gone, t);
        }
        self.dwell_alerts(frame, t);
        *lock(&self.handle.counts) = self.counter.counts().clone();
        let (width, height) = (frame.width(), frame.height());
        self.handle.live.publish(|| Found {
            source_pts: pts,
            width,
            height,
            boxes: Vec::new(),
            tracks: self.boxes_at(t),
        });
        self.handle.updates.fetch_add(1, Ordering::Relaxed);
        self.handle
            .update_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// The tracks to show at stream time `t`.
    fn boxes_at(&self, t: f64) -> Vec<TrackBox> {
        let trail = self.tracker.params().trail;
        self.tracker
            .at(t)
            .map(|(track, r)| {
                let v = track.velocity();
                TrackBox {
                    id: track.id,
                    rect: rect(r),
                    label: track.class.clone(),
                    score: track.score,
                    velocity: [v[0] as f32, v[1] as f32],
                    age_s: (t - track.born).max(0.0) as f32,
                    trail: track
                        .trail
                        .iter()
                        .skip(track.trail.len().saturating_sub(trail))
                        .map(|p| [p[0] as f32, p[1] as f32])
                        .collect(),
                }
            })
            .collect()
    }

    /// Ends `track` at stream time `t`: its zone visits end, crossings held on its predicted
    /// path count, and its `object.ended` is recorded.
    fn end(&mut self, frame: Option<&Frame>, track: &tracker::Track, t: f64) {
        let left = self.counter.ended(track.id, t);
        self.happenings(frame, track, left);
        let mut e = self.event(
            kind::OBJECT_ENDED,
            track,
            serde_json::json!({
                "duration_s": ((track.last_seen - track.born) * 1000.0).round() / 1000.0,
                "best_score": track.best_score,
            }),
        );
        e.score = Some(f64::from(track.best_score));
        e.picture = self.best.remove(&track.id).map(|(_, p)| p);
        self.events.record(e);
        self.handle.ended.fetch_add(1, Ordering::Relaxed);
    }
}

impl Processor for Track {
    fn name(&self) -> &'static str {
        "track"
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        self.tracker.set_frame(frame.width(), frame.height());
        let now_pts = frame.buffer().pts().map(gst::ClockTime::nseconds);
        if let Some(pts) = frame.meta.detections_pts
            && self.last_pts != Some(pts)
        {
            self.last_pts = Some(pts);
            self.update(frame, pts);
        }
        let Some(t) = now_pts.or(self.last_pts).map(seconds) else {
            return Ok(());
        };
        self.last_frame_t = Some(self.last_frame_t.map_or(t, |last| last.max(t)));
        let tracks = self.boxes_at(t);
        lock(&self.handle.tracks).clone_from(&tracks);
        frame.meta.tracks = Some(tracks);
        Ok(())
    }

    /// Ends every track at the last frame's time: whoever is still in a zone leaves it with
    /// their dwell so far, a crossing held on a predicted path counts (the object crossed
    /// hidden and the input ended before it was seen again), and each confirmed track gets
    /// its `object.ended`.
    fn finish(&mut self) {
        let Some(t) = self.last_frame_t else {
            return;
        };
        for gone in self.tracker.clear() {
            self.end(None, &gone, t);
        }
        *lock(&self.handle.counts) = self.counter.counts().clone();
        lock(&self.handle.tracks).clear();
    }
}
