//! Settings of the `track` processor and of a stream's counting lines and zones.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds::within;

/// Most lines, and most zones, per stream.
pub const MAX_SHAPES: usize = 32;
/// Most corners of a zone.
pub const MAX_CORNERS: usize = 64;
/// Largest coordinate of a line's or zone's point (frame pixels; 8K is 7680).
pub const MAX_COORD: f64 = 16384.0;

/// Settings of the `track` processor: ByteTrack-style multi-object tracking over the boxes of
/// the `detect` processor before it. Give `detect` a `min_score` at or below `low_score` so that
/// the low-score boxes that keep tracks through occlusion reach the tracker. The score
/// thresholds are ByteTrack's, for a detector whose true boxes score high; a model whose
/// scores run lower needs lower ones, per class where it scores classes differently (the
/// shared CenterNet: `high_score = 0.3`, `new_track_score = 0.5`,
/// `new_track_scores = { car = 0.3, truck = 0.3 }`, `high_scores = { car = 0.2, truck = 0.2 }`;
/// docs/benchmarks.md says how to pick them).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackConfig {
    /// Boxes scoring at least this are matched first and may start tracks (0 to 1).
    #[serde(default = "default_high")]
    pub high_score: f32,
    /// Boxes below this are ignored; between it and `high_score` they only keep existing tracks
    /// alive (0 to 1).
    #[serde(default = "default_low")]
    pub low_score: f32,
    /// An unmatched box starts a new track when it scores at least this (0 to 1).
    #[serde(default = "default_new")]
    pub new_track_score: f32,
    /// Least overlap (IoU, 0 to 1) of a box with a track's predicted box for them to match.
    #[serde(default = "default_match_iou")]
    pub match_iou: f64,
    /// Seconds a track missed by the detector is kept (predicted; shown for `show_lost_s`)
    /// before it ends (0.1 to 60). Two seconds outlast an object passing in front of another.
    /// While kept, its predicted path crosses lines (an object hidden as it crosses is
    /// counted, once its track is seen beyond the line or ends; seen back on its own side, it
    /// is not); zones take only where a track was seen.
    #[serde(default = "default_max_lost")]
    pub max_lost_s: f64,
    /// Seconds a track the detector missed is still shown where its motion puts it (0 to
    /// `max_lost_s`), so that short misses do not make boxes blink.
    #[serde(default = "default_show_lost")]
    pub show_lost_s: f64,
    /// Seconds a track is kept while the boxes that match it all score under what starts a
    /// track (`new_track_score`, or the class's own), 0 to 600; 0 keeps it for as long as they
    /// come. Low-score boxes keep a track through occlusion; a detector's steady false box (a
    /// post, a sign scored 0.2 as a person) would otherwise keep a track that walked past it
    /// alive for ever, and hand it to the next person passing.
    #[serde(default = "default_unsure")]
    pub unsure_s: f64,
    /// Matches that confirm a new track (1 to 10): until then it is not shown and makes no
    /// events.
    #[serde(default = "default_confirm")]
    pub confirm_hits: u32,
    /// Points of each track's trail that `overlay` draws (0 to 256).
    #[serde(default = "default_trail")]
    pub trail: u32,
    /// The point of a box that lines and zones test: `bottom` (the middle of its lower edge,
    /// where people and cars touch the ground) or `center`, of the box's part inside the
    /// picture (a line drawn to the picture's edge counts someone whose feet are out of view).
    #[serde(default)]
    pub anchor: Anchor,
    /// Groups of classes a detector confuses for one object (a pickup is a `car` in one frame,
    /// a `truck` in the next): boxes of classes of one group follow the same track, whose class
    /// is the one its boxes said most (by score). `[]`: every class keeps its own tracks. At
    /// most 16 groups of 2 to 16 classes, a class in one group only.
    #[serde(default = "default_class_groups")]
    pub class_groups: Vec<Vec<String>>,
    /// Per class, the score at which an unmatched box of that class starts a track, instead of
    /// `new_track_score` (0 to 1): for a detector that scores one class lower than another
    /// (`{ car = 0.3, truck = 0.3 }` with `new_track_score = 0.5`). Tracks start from boxes
    /// at or above `high_score`, so a value under it acts as `high_score`. At most 64 classes.
    #[serde(default)]
    pub new_track_scores: std::collections::BTreeMap<String, f32>,
    /// Per class, the score from which a box of that class is matched in the first stage,
    /// instead of `high_score` (`low_score` to 1): for a detector that scores a class lower
    /// than the others (the shared CenterNet scores a car it sees well 0.2-0.3 for seconds at
    /// a time): its boxes then keep and bring back tracks as the others' do. At most 64
    /// classes.
    #[serde(default)]
    pub high_scores: std::collections::BTreeMap<String, f32>,
}

/// Most classes in `new_track_scores`, and in `high_scores`.
pub const MAX_CLASS_SCORES: usize = 64;

/// Most class groups, and most classes in one.
pub const MAX_CLASS_GROUPS: usize = 16;

/// The point of a box that lines and zones test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The middle of the box's lower edge.
    #[default]
    Bottom,
    /// The box's centre.
    Center,
}

impl Default for TrackConfig {
    fn default() -> Self {
        Self {
            high_score: default_high(),
            low_score: default_low(),
            new_track_score: default_new(),
            match_iou: default_match_iou(),
            max_lost_s: default_max_lost(),
            show_lost_s: default_show_lost(),
            unsure_s: default_unsure(),
            confirm_hits: default_confirm(),
            trail: default_trail(),
            anchor: Anchor::default(),
            class_groups: default_class_groups(),
            new_track_scores: Default::default(),
            high_scores: Default::default(),
        }
    }
}

/// A class name: 1 to 64 printable characters.
fn is_class_name(c: &str) -> bool {
    !c.is_empty() && c.chars().count() <= 64 && !c.chars().any(char::is_control)
}

fn default_class_groups() -> Vec<Vec<String>> {
    vec![["car", "truck", "bus"].map(String::from).to_vec()]
}

fn default_high() -> f32 {
    0.5
}
fn default_low() -> f32 {
    0.1
}
fn default_new() -> f32 {
    0.6
}
fn default_match_iou() -> f64 {
    0.2
}
fn default_max_lost() -> f64 {
    2.0
}
fn default_show_lost() -> f64 {
    0.5
}
fn default_unsure() -> f64 {
    3.0
}
fn default_confirm() -> u32 {
    2
}
fn default_trail() -> u32 {
    32
}

/// Checks a per-class score map: at most [`MAX_CLASS_SCORES`] class names, each score from
/// `least` to 1.
fn validate_class_scores(
    field: &str,
    scores: &std::collections::BTreeMap<String, f32>,
    least: f32,
) -> Result<(), String> {
    if scores.len() > MAX_CLASS_SCORES {
        return Err(format!(
            "track.{field} has {} classes (at most {MAX_CLASS_SCORES})",
            scores.len()
        ));
    }
    for (c, v) in scores {
        if !is_class_name(c) {
            return Err(format!(
                "track.{field}: {c:?} is not a class name (1 to 64 printable characters)"
            ));
        }
        within(
            &format!("track.{field}.{c}"),
            f64::from(*v),
            f64::from(least),
            1.0,
        )?;
    }
    Ok(())
}

impl TrackConfig {
    /// Checks the settings beyond their types; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, v) in [
            ("track.high_score", self.high_score),
            ("track.low_score", self.low_score),
            ("track.new_track_score", self.new_track_score),
        ] {
            within(field, f64::from(v), 0.0, 1.0)?;
        }
        if self.low_score > self.high_score {
            return Err(format!(
                "track.low_score = {} must not be above high_score = {}",
                self.low_score, self.high_score
            ));
        }
        within("track.match_iou", self.match_iou, 0.01, 1.0)?;
        within("track.max_lost_s", self.max_lost_s, 0.1, 60.0)?;
        within("track.show_lost_s", self.show_lost_s, 0.0, self.max_lost_s)?;
        within("track.unsure_s", self.unsure_s, 0.0, 600.0)?;
        if !(1..=10).contains(&self.confirm_hits) {
            return Err(format!(
                "track.confirm_hits = {} is out of range (1 to 10)",
                self.confirm_hits
            ));
        }
        if self.trail > 256 {
            return Err(format!(
                "track.trail = {} is out of range (0 to 256)",
                self.trail
            ));
        }
        self.validate_class_groups()?;
        validate_class_scores("new_track_scores", &self.new_track_scores, 0.0)?;
        validate_class_scores("high_scores", &self.high_scores, self.low_score)
    }

    fn validate_class_groups(&self) -> Result<(), String> {
        if self.class_groups.len() > MAX_CLASS_GROUPS {
            return Err(format!(
                "track.class_groups has {} groups (at most {MAX_CLASS_GROUPS})",
                self.class_groups.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, g) in self.class_groups.iter().enumerate() {
            if !(2..=MAX_CLASS_GROUPS).contains(&g.len()) {
                return Err(format!(
                    "track.class_groups[{i}] has {} classes (2 to {MAX_CLASS_GROUPS})",
                    g.len()
                ));
            }
            for c in g {
                if !is_class_name(c) {
                    return Err(format!(
                        "track.class_groups[{i}]: {c:?} is not a class name (1 to 64 printable characters)"
                    ));
                }
                if !seen.insert(c.as_str()) {
                    return Err(format!(
                        "track.class_groups[{i}]: {c:?} is already in another group"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A counting line of a stream: objects crossing it are counted per class and direction.
/// `forward` is the direction of the line (first point to second) turned a quarter turn
/// counter-clockwise on screen: for a line drawn top to bottom, left to right; for one drawn left
/// to right, upwards.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Its id (letters, digits, `-`, `_`; at most 64), unique among the stream's lines.
    pub id: String,
    /// Its two ends, `[[x, y], [x, y]]` in frame pixels.
    pub points: Vec<[f64; 2]>,
    /// Classes it counts (empty: all).
    #[serde(default)]
    pub classes: Vec<String>,
}

/// A zone of a stream: a polygon whose visits are counted per class, with dwell times.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Its id (letters, digits, `-`, `_`; at most 64), unique among the stream's zones.
    pub id: String,
    /// Its corners in order, `[[x, y], ...]` in frame pixels (3 to 64).
    pub points: Vec<[f64; 2]>,
    /// Classes it counts (empty: all).
    #[serde(default)]
    pub classes: Vec<String>,
}

fn shape_id(what: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}.id `{}` must be 1 to 64 letters, digits, `-` or `_`",
            id.escape_debug()
                .to_string()
                .chars()
                .take(80)
                .collect::<String>()
        ))
    }
}

fn points(what: &str, id: &str, points: &[[f64; 2]]) -> Result<(), String> {
    for p in points {
        for v in p {
            within(&format!("{what} `{id}` points"), *v, 0.0, MAX_COORD)?;
        }
    }
    Ok(())
}

fn classes(what: &str, id: &str, classes: &[String]) -> Result<(), String> {
    if classes.len() > 100 || !classes.iter().all(|c| is_class_name(c)) {
        return Err(format!(
            "{what} `{id}` classes: at most 100 names of 1 to 64 printable characters"
        ));
    }
    Ok(())
}

/// Checks a stream's lines and zones: ids, counts, points in range, no degenerate shape.
pub fn validate_shapes(lines: &[LineConfig], zones: &[ZoneConfig]) -> Result<(), String> {
    if lines.len() > MAX_SHAPES || zones.len() > MAX_SHAPES {
        return Err(format!(
            "at most {MAX_SHAPES} lines and {MAX_SHAPES} zones per stream"
        ));
    }
    for (i, l) in lines.iter().enumerate() {
        shape_id("lines", &l.id)?;
        if lines[..i].iter().any(|o| o.id == l.id) {
            return Err(format!("lines.id `{}` is used twice", l.id));
        }
        if l.points.len() != 2 {
            return Err(format!(
                "lines `{}` points: a line has 2 points, not {}",
                l.id,
                l.points.len()
            ));
        }
        points("lines", &l.id, &l.points)?;
        if l.points[0] == l.points[1] {
            return Err(format!(
                "lines `{}` points: its two ends are the same point",
                l.id
            ));
        }
        classes("lines", &l.id, &l.classes)?;
    }
    for (i, z) in zones.iter().enumerate() {
        shape_id("zones", &z.id)?;
        if zones[..i].iter().any(|o| o.id == z.id) {
            return Err(format!("zones.id `{}` is used twice", z.id));
        }
        if !(3..=MAX_CORNERS).contains(&z.points.len()) {
            return Err(format!(
                "zones `{}` points: a zone has 3 to {MAX_CORNERS} corners, not {}",
                z.id,
                z.points.len()
            ));
        }
        points("zones", &z.id, &z.points)?;
        let area2: f64 = (0..z.points.len())
            .map(|k| {
                let (a, b) = (z.points[k], z.points[(k + 1) % z.points.len()]);
                a[0] * b[1] - b[0] * a[1]
            })
            .sum();
        if area2.abs() < 2.0 {
            return Err(format!("zones `{}` points: the polygon has no area", z.id));
        }
        classes("zones", &z.id, &z.classes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, points: Vec<[f64; 2]>) -> LineConfig {
        LineConfig {
            id: id.into(),
            points,
            classes: vec![],
        }
    }

    fn zone(id: &str, points: Vec<[f64; 2]>) -> ZoneConfig {
        ZoneConfig {
            id: id.into(),
            points,
            classes: vec![],
        }
    }

    #[test]
    fn hostile_shapes_are_refused_with_their_name() {
        let ok_line = line("door", vec![[640.0, 0.0], [640.0, 720.0]]);
        let ok_zone = zone("lobby", vec![[0.0, 0.0], [400.0, 0.0], [400.0, 300.0]]);
        assert!(
            validate_shapes(
                std::slice::from_ref(&ok_line),
                std::slice::from_ref(&ok_zone)
            )
            .is_ok()
        );
        let err = |l: Vec<LineConfig>, z: Vec<ZoneConfig>| validate_shapes(&l, &z).unwrap_err();
        assert!(err(vec![line("door", vec![[0.0, 0.0]])], vec![]).contains("2 points, not 1"));
        assert!(err(vec![line("d", vec![[1.0, 1.0], [1.0, 1.0]])], vec![]).contains("same point"));
        assert!(
            err(vec![line("d", vec![[f64::NAN, 1.0], [2.0, 1.0]])], vec![]).contains("`d` points")
        );
        assert!(
            err(vec![line("d", vec![[1e300, 1.0], [2.0, 1.0]])], vec![]).contains("out of range")
        );
        assert!(err(vec![line("../x", vec![[0.0, 0.0], [1.0, 1.0]])], vec![]).contains("lines.id"));
        assert!(err(vec![ok_line.clone(), ok_line.clone()], vec![]).contains("used twice"));
        assert!(
            err(
                vec![],
                vec![zone("z", vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])]
            )
            .contains("no area")
        );
        assert!(err(vec![], vec![zone("z", vec![[0.0, 0.0]; 65])]).contains("3 to 64"));
        let with_classes = |classes: Vec<String>| LineConfig {
            classes,
            ..ok_line.clone()
        };
        for bad in [
            vec![String::new()],
            vec!["x".repeat(65)],
            vec!["a\u{1b}[2J".into()],
        ] {
            assert!(
                err(vec![with_classes(bad)], vec![]).contains("lines `door` classes"),
                "a bad class name is refused"
            );
        }
        assert!(err(vec![with_classes(vec!["person".into(); 101])], vec![]).contains("classes"));
        assert!(validate_shapes(&[with_classes(vec!["é".repeat(64)])], &[]).is_ok());
        assert!(err(vec![ok_line; 33], vec![]).contains("at most 32"));
    }

    #[test]
    fn tracker_settings_are_bounded() {
        assert!(TrackConfig::default().validate().is_ok());
        let bad = [
            TrackConfig {
                high_score: 1.5,
                ..TrackConfig::default()
            },
            TrackConfig {
                low_score: 0.9,
                ..TrackConfig::default()
            },
            TrackConfig {
                max_lost_s: 1e9,
                ..TrackConfig::default()
            },
            TrackConfig {
                max_lost_s: f64::NAN,
                ..TrackConfig::default()
            },
            TrackConfig {
                unsure_s: -1.0,
                ..TrackConfig::default()
            },
            TrackConfig {
                unsure_s: f64::INFINITY,
                ..TrackConfig::default()
            },
            TrackConfig {
                confirm_hits: 0,
                ..TrackConfig::default()
            },
            TrackConfig {
                trail: 100_000,
                ..TrackConfig::default()
            },
            TrackConfig {
                match_iou: 0.0,
                ..TrackConfig::default()
            },
            TrackConfig {
                new_track_scores: [("car".to_string(), f32::NAN)].into(),
                ..TrackConfig::default()
            },
            TrackConfig {
                new_track_scores: [("car".to_string(), 1.5)].into(),
                ..TrackConfig::default()
            },
            TrackConfig {
                new_track_scores: [(String::new(), 0.3)].into(),
                ..TrackConfig::default()
            },
            TrackConfig {
                new_track_scores: (0..65).map(|i| (format!("c{i}"), 0.3)).collect(),
                ..TrackConfig::default()
            },
            // Under low_score (0.1): such boxes are dropped before any stage.
            TrackConfig {
                high_scores: [("car".to_string(), 0.05)].into(),
                ..TrackConfig::default()
            },
            TrackConfig {
                high_scores: [("car".to_string(), f32::INFINITY)].into(),
                ..TrackConfig::default()
            },
            TrackConfig {
                high_scores: [("\u{7}".to_string(), 0.3)].into(),
                ..TrackConfig::default()
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
        let groups = |g: Vec<Vec<&str>>| {
            TrackConfig {
                class_groups: g
                    .into_iter()
                    .map(|g| g.into_iter().map(String::from).collect())
                    .collect(),
                ..TrackConfig::default()
            }
            .validate()
        };
        assert!(groups(vec![]).is_ok());
        assert!(groups(vec![vec!["person", "rider"], vec!["car", "van"]]).is_ok());
        assert!(
            groups(vec![vec!["car"]])
                .unwrap_err()
                .contains("class_groups[0] has 1")
        );
        assert!(
            groups(vec![vec!["car", "van"], vec!["van", "bus"]])
                .unwrap_err()
                .contains("\"van\" is already in another group")
        );
        assert!(
            groups(vec![vec!["car", ""]])
                .unwrap_err()
                .contains("not a class name")
        );
        assert!(
            groups(vec![vec!["car", "x\n"]])
                .unwrap_err()
                .contains("not a class name")
        );
        let long = "x".repeat(65);
        assert!(groups(vec![vec!["car", &long]]).is_err());
        assert!(
            groups(vec![vec!["a", "b"]; 17])
                .unwrap_err()
                .contains("at most 16")
        );
    }
}
