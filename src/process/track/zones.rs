//! Lines and zones over tracks: which track crossed which line in which direction, who entered
//! or left which zone and how long they stayed, and the counts per class. A pure state
//! machine: tracks' positions in, happenings and counts out, no clock of its own.
//!
//! A track's position is its anchor (the middle of its box's bottom edge by default: where a
//! person or a car touches the ground). Jitter around a line or an edge counts nothing: a side
//! of a line, or being in or out of a zone, is only taken once the anchor is far enough away,
//! and a crossing is counted when the taken side changes and the anchor's path between the two
//! taken positions meets the line's segment (not its extension). Far enough is a tenth of the
//! box's extent across the line (its width for an upright line, its height for a level one;
//! at least 2 px), about three times the jitter of a detector's box edges: an object that stops
//! on a line is counted once.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::Serialize;

use super::geometry::{Point, edge_distance, inside, segments_meet, signed_distance};

/// A counting line: `points[0]` to `points[1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its id.
    pub id: String,
    /// Its two ends.
    pub points: [Point; 2],
    /// Classes it counts (empty: all).
    pub classes: Vec<String>,
}

/// A zone: a polygon.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Its id.
    pub id: String,
    /// Its corners, in order.
    pub points: Vec<Point>,
    /// Classes it counts (empty: all).
    pub classes: Vec<String>,
}

fn counts_class(classes: &[String], class: &str) -> bool {
    classes.is_empty() || classes.iter().any(|c| c == class)
}

/// Crossings of one line by one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LineCount {
    /// Crossings in the line's forward direction.
    pub forward: u64,
    /// Crossings the other way.
    pub backward: u64,
}

/// Visits of one zone by one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ZoneCount {
    /// Objects that entered it.
    pub entered: u64,
    /// Objects inside it now.
    pub inside: u64,
}

/// A box's width and height for the margins: finite, not negative.
fn margins_size(size: [f64; 2]) -> [f64; 2] {
    size.map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 })
}

/// Counts a crossing of line `line` by an object of `class`.
fn count_crossing(counts: &mut Counts, line: &str, class: &str, forward: bool) {
    let c = counts
        .lines
        .entry(line.to_string())
        .or_default()
        .entry(class.to_string())
        .or_default();
    if forward {
        c.forward += 1;
    } else {
        c.backward += 1;
    }
}

/// What is remembered of track `id`, new if it was not yet.
fn remembered<'a>(
    tracks: &'a mut HashMap<u64, Memory>,
    id: u64,
    class: &str,
    (lines, zones): (usize, usize),
) -> &'a mut Memory {
    tracks.entry(id).or_insert_with(|| Memory {
        class: class.to_string(),
        sides: vec![None; lines],
        held: vec![None; lines],
        inside: vec![None; zones],
    })
}

/// Counts per line and zone, per class: what `GET /api/streams/{id}/counts` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Counts {
    /// Line id → class → crossings.
    pub lines: BTreeMap<String, BTreeMap<String, LineCount>>,
    /// Zone id → class → visits.
    pub zones: BTreeMap<String, BTreeMap<String, ZoneCount>>,
}

/// Something a track did.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// It crossed line `line` (index) forward or backward.
    Crossed {
        /// The line's index.
        line: usize,
        /// Which way.
        forward: bool,
    },
    /// It entered zone `zone` (index).
    Entered {
        /// The zone's index.
        zone: usize,
    },
    /// It left zone `zone` (index) after `dwell_s` seconds in it (or ended inside it).
    Left {
        /// The zone's index.
        zone: usize,
        /// Seconds it spent inside.
        dwell_s: f64,
    },
}

/// What is remembered of one track.
#[derive(Debug, Clone)]
struct Memory {
    class: String,
    /// Per line: the side taken (+1 / -1) and where the anchor was when last on it.
    sides: Vec<Option<(i8, Point)>>,
    /// Per line: a crossing on the track's predicted path (forward or not), held until the
    /// track is seen again or ends.
    held: Vec<Option<bool>>,
    /// Per zone: since when the track has been inside.
    inside: Vec<Option<f64>>,
}

/// The lines and zones of one stream with the tracks' state over them.
pub struct Counter {
    lines: Vec<Line>,
    zones: Vec<Zone>,
    tracks: HashMap<u64, Memory>,
    counts: Counts,
}

impl Counter {
    /// Counting over these lines and zones.
    pub fn new(lines: Vec<Line>, zones: Vec<Zone>) -> Self {
        let mut counts = Counts::default();
        for l in &lines {
            counts.lines.insert(l.id.clone(), BTreeMap::new());
        }
        for z in &zones {
            counts.zones.insert(z.id.clone(), BTreeMap::new());
        }
        Self {
            lines,
            zones,
            tracks: HashMap::new(),
            counts,
        }
    }

    /// The lines.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Whether there is anything to count.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.zones.is_empty()
    }

    /// Track `id` of `class` was seen with its anchor at `p` at stream time `t`; `size` is its
    /// box's width and height (for the margins).
    pub fn observe(
        &mut self,
        id: u64,
        class: &str,
        p: Point,
        size: [f64; 2],
        t: f64,
    ) -> Vec<Happening> {
        let mut out = self.cross(id, class, p, size, true);
        let [w, h] = margins_size(size);
        let shapes = (self.lines.len(), self.zones.len());
        let memory = remembered(&mut self.tracks, id, class, shapes);
        for (i, zone) in self.zones.iter().enumerate() {
            if !counts_class(&zone.classes, class) {
                continue;
            }
            if edge_distance(&zone.points, p) < (0.05 * (w + h)).max(2.0_f64) {
                continue;
            }
            let now_inside = inside(&zone.points, p);
            let count = self
                .counts
                .zones
                .entry(zone.id.clone())
                .or_default()
                .entry(class.to_string())
                .or_default();
            match (memory.inside[i], now_inside) {
                (None, true) => {
                    memory.inside[i] = Some(t);
                    count.entered += 1;
                    count.inside += 1;
                    out.push(Happening::Entered { zone: i });
                }
                (Some(since), false) => {
                    memory.inside[i] = None;
                    count.inside = count.inside.saturating_sub(1);
                    out.push(Happening::Left {
                        zone: i,
                        dwell_s: (t - since).max(0.0),
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// Track `id` of `class` is not seen, but thought to have its anchor at `p` (its box's
    /// size `size`): a lost track's box predicted while it is kept. A crossing on its predicted
    /// path counts though the object was hidden while it crossed, but only once the track is
    /// seen again beyond the line, or ends: an object that stopped, or turned, while hidden
    /// is predicted across a line it never crossed, and seen again on its own side (counting
    /// the guess would count it twice, once each way). Zones only take what was seen
    /// ([`Counter::observe`]): a guess that left a zone would end a visit and start another.
    pub fn cross_lines(
        &mut self,
        id: u64,
        class: &str,
        p: Point,
        size: [f64; 2],
    ) -> Vec<Happening> {
        self.cross(id, class, p, size, false)
    }

    /// The lines' part of a position taken, `seen` or guessed.
    fn cross(
        &mut self,
        id: u64,
        class: &str,
        p: Point,
        size: [f64; 2],
        seen: bool,
    ) -> Vec<Happening> {
        let [w, h] = margins_size(size);
        let shapes = (self.lines.len(), self.zones.len());
        let memory = remembered(&mut self.tracks, id, class, shapes);
        let mut out = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            if !counts_class(&line.classes, class) {
                continue;
            }
            let [a, b] = line.points;
            let len = (b[0] - a[0]).hypot(b[1] - a[1]).max(1e-9);
            // The unit normal's parts weigh the box's width and height across the line.
            let (nx, ny) = ((b[1] - a[1]) / len, (b[0] - a[0]) / len);
            let margin = (0.1 * (nx.abs() * w + ny.abs() * h)).max(2.0);
            let d = signed_distance(a, b, p);
            if d.abs() < margin {
                continue;
            }
            let side: i8 = if d > 0.0 { 1 } else { -1 };
            let crossed = match memory.sides[i] {
                // Back on the side it was on before a held crossing: the guess was wrong.
                Some((before, _)) if before != side && memory.held[i].is_some() => {
                    memory.held[i] = None;
                    None
                }
                Some((before, from)) if before != side && segments_meet(from, p, a, b) => {
                    Some(before > 0)
                }
                _ => None,
            };
            let counted = match (crossed, seen) {
                (Some(forward), false) => {
                    memory.held[i] = Some(forward);
                    None
                }
                (Some(forward), true) => Some(forward),
                // Seen on the far side of a held crossing: it happened.
                (None, true) => memory.held[i].take(),
                (None, false) => None,
            };
            if let Some(forward) = counted {
                count_crossing(&mut self.counts, &line.id, class, forward);
                out.push(Happening::Crossed { line: i, forward });
            }
            memory.sides[i] = Some((side, p));
        }
        out
    }

    /// Track `id` ended at stream time `t`: it leaves the zones it was in, and the crossings
    /// held on its predicted path count.
    pub fn ended(&mut self, id: u64, t: f64) -> Vec<Happening> {
        let Some(memory) = self.tracks.remove(&id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // Crossings on the predicted path of a track that ended lost: the object crossed
        // hidden and was not seen again.
        for (i, held) in memory.held.iter().enumerate() {
            if let Some(forward) = *held {
                count_crossing(&mut self.counts, &self.lines[i].id, &memory.class, forward);
                out.push(Happening::Crossed { line: i, forward });
            }
        }
        for (i, since) in memory.inside.iter().enumerate() {
            if let Some(since) = since {
                if let Some(c) = self
                    .counts
                    .zones
                    .get_mut(&self.zones[i].id)
                    .and_then(|z| z.get_mut(&memory.class))
                {
                    c.inside = c.inside.saturating_sub(1);
                }
                out.push(Happening::Left {
                    zone: i,
                    dwell_s: (t - since).max(0.0),
                });
            }
        }
        out
    }

    /// The tracks inside zones now: `(track, zone index, class, seconds inside)`.
    pub fn dwelling(&self, t: f64) -> impl Iterator<Item = (u64, usize, &str, f64)> {
        self.tracks.iter().flat_map(move |(id, m)| {
            m.inside.iter().enumerate().filter_map(move |(z, since)| {
                since.map(|s| (*id, z, m.class.as_str(), (t - s).max(0.0)))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door() -> Line {
        Line {
            id: "door".into(),
            points: [[640.0, 0.0], [640.0, 720.0]],
            classes: vec![],
        }
    }

    fn lobby() -> Zone {
        Zone {
            id: "lobby".into(),
            points: vec![[0.0, 0.0], [400.0, 0.0], [400.0, 300.0], [0.0, 300.0]],
            classes: vec![],
        }
    }

    #[test]
    fn left_to_right_across_a_line_drawn_downwards_is_forward() {
        let mut c = Counter::new(vec![door()], vec![]);
        let mut seen = Vec::new();
        for (i, x) in (500..800).step_by(10).enumerate() {
            seen.extend(c.observe(
                1,
                "person",
                [x as f64, 400.0],
                [40.0, 100.0],
                i as f64 * 0.1,
            ));
        }
        assert_eq!(
            seen,
            vec![Happening::Crossed {
                line: 0,
                forward: true
            }]
        );
        for (i, x) in (500..800).step_by(10).rev().enumerate() {
            c.observe(2, "car", [x as f64, 400.0], [40.0, 100.0], i as f64 * 0.1);
        }
        let door = &c.counts().lines["door"];
        assert_eq!(
            door["person"],
            LineCount {
                forward: 1,
                backward: 0
            }
        );
        assert_eq!(
            door["car"],
            LineCount {
                forward: 0,
                backward: 1
            }
        );
    }

    #[test]
    fn jitter_on_the_line_counts_once_and_passing_beyond_its_end_counts_nothing() {
        let mut c = Counter::new(vec![door()], vec![]);
        // Wobbling ±3 px around x = 640 on the way across (margin 5 px for a 50 px wide box).
        let path = [
            600.0, 630.0, 642.0, 637.0, 643.0, 638.0, 641.0, 660.0, 700.0,
        ];
        for (i, x) in path.iter().enumerate() {
            c.observe(1, "person", [*x, 300.0], [50.0, 100.0], i as f64);
        }
        assert_eq!(c.counts().lines["door"]["person"].forward, 1);
        assert_eq!(c.counts().lines["door"]["person"].backward, 0);
        // Below the line's lower end (y > 720): no crossing.
        let mut c = Counter::new(vec![door()], vec![]);
        for (i, x) in (500..800).step_by(20).enumerate() {
            c.observe(1, "person", [x as f64, 800.0], [50.0, 100.0], i as f64);
        }
        assert!(c.counts().lines["door"].is_empty());
    }

    #[test]
    fn a_visit_to_a_zone_has_a_dwell_time_and_ending_inside_leaves_it() {
        let mut c = Counter::new(vec![], vec![lobby()]);
        let mut seen = Vec::new();
        for (i, x) in [500.0, 300.0, 200.0, 100.0, 500.0].iter().enumerate() {
            seen.extend(c.observe(7, "person", [*x, 150.0], [50.0, 100.0], i as f64 * 2.0));
        }
        assert_eq!(
            seen,
            vec![
                Happening::Entered { zone: 0 },
                Happening::Left {
                    zone: 0,
                    dwell_s: 6.0
                }
            ]
        );
        c.observe(8, "person", [200.0, 150.0], [50.0, 100.0], 10.0);
        let z = c.counts().zones["lobby"]["person"];
        assert_eq!((z.entered, z.inside), (2, 1));
        assert_eq!(
            c.dwelling(13.0).collect::<Vec<_>>(),
            vec![(8, 0, "person", 3.0)]
        );
        assert_eq!(
            c.ended(8, 14.0),
            vec![Happening::Left {
                zone: 0,
                dwell_s: 4.0
            }]
        );
        assert_eq!(c.counts().zones["lobby"]["person"].inside, 0);
        assert!(c.ended(8, 15.0).is_empty(), "once");
    }

    #[test]
    fn a_crossing_on_a_predicted_path_counts_once_seen_beyond_or_ended_not_when_seen_back() {
        let mut c = Counter::new(vec![door()], vec![]);
        let size = [50.0, 100.0];
        let crossed = |forward| vec![Happening::Crossed { line: 0, forward }];
        // 1: seen left of the line, lost, predicted across, seen again beyond it.
        assert!(c.observe(1, "person", [600.0, 300.0], size, 0.0).is_empty());
        assert!(c.cross_lines(1, "person", [680.0, 300.0], size).is_empty());
        assert!(
            c.counts().lines["door"].is_empty(),
            "not counted on a guess"
        );
        assert_eq!(
            c.observe(1, "person", [700.0, 300.0], size, 1.0),
            crossed(true)
        );
        // 2: predicted across, then seen back where it stopped, on its own side: nothing,
        // and not a crossing back either.
        c.observe(2, "person", [600.0, 300.0], size, 0.0);
        assert!(c.cross_lines(2, "person", [680.0, 300.0], size).is_empty());
        assert!(c.observe(2, "person", [610.0, 300.0], size, 1.0).is_empty());
        assert!(c.ended(2, 2.0).is_empty());
        // 3: predicted across (right to left), never seen again: counted when it ends.
        c.observe(3, "person", [700.0, 300.0], size, 0.0);
        assert!(c.cross_lines(3, "person", [600.0, 300.0], size).is_empty());
        assert_eq!(c.ended(3, 2.0), crossed(false));
        assert_eq!(
            c.counts().lines["door"]["person"],
            LineCount {
                forward: 1,
                backward: 1
            }
        );
    }

    #[test]
    fn classes_a_line_does_not_count_leave_it_alone() {
        let mut line = door();
        line.classes = vec!["car".into()];
        let mut c = Counter::new(vec![line], vec![]);
        for (i, x) in (500..800).step_by(10).enumerate() {
            c.observe(1, "person", [x as f64, 400.0], [40.0, 100.0], i as f64);
        }
        assert!(c.counts().lines["door"].is_empty());
    }
}
