//! ByteTrack's association, in stream time: every detection result is matched to the tracks in
//! two stages, high-score boxes first (against tracked and recently lost tracks), then the
//! low-score boxes that detectors would throw away (against the tracks still unmatched, which
//! keeps objects through partial occlusion), then tentative tracks against what is left. A track
//! is confirmed after `confirm_hits` matches, lost when a result misses it, and ended after
//! `max_lost_s` without a match. Boxes only ever match tracks of their own class, or of a class
//! of the same group (classes a detector confuses for one object, such as car and truck: a
//! pickup is called one, then the other); a track's class is the one its boxes said most,
//! weighed by their scores.
//!
//! Results come when the model has finished, not on every frame: [`Tracker::update`] takes the
//! time of the frame the boxes were found in, and [`Tracker::at`] predicts every track to any
//! later frame's time, so boxes follow objects between results.
//!
//! The assignment of each stage maximises the summed overlap (Hungarian method, from the
//! `pathfinding` crate) over the pairs whose overlap reaches the stage's minimum.

use std::collections::{HashMap, VecDeque};

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use super::geometry::{
    Point, buffered_iou, clip_to_frame, intersection, share_in_frame, touches_frame_edge,
};
use super::inputs::{self, Sorting};
use super::kalman::{BoxFilter, Cxcywh};

/// The thresholds of the tracker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Boxes scoring at least this are matched first, and may start tracks.
    pub high_score: f32,
    /// Boxes below this are ignored; between it and `high_score` they only keep tracks alive.
    pub low_score: f32,
    /// An unmatched box starts a track when it scores at least this.
    pub new_track_score: f32,
    /// Least overlap of a high-score box with a track's predicted box.
    pub match_iou: f64,
    /// Boxes are grown by this fraction of their size on each side before the overlap of the
    /// high-score and tentative stages is measured (buffered IoU): results come a few frames
    /// apart, and an object may have moved by more than its size allows plain IoU to match.
    pub buffer: f64,
    /// Least overlap of a low-score box with a track's predicted box.
    pub low_match_iou: f64,
    /// Least overlap of a box with a tentative track.
    pub tentative_iou: f64,
    /// Seconds a lost track is kept for matching before it ends.
    pub max_lost_s: f64,
    /// Seconds a lost track is still shown, predicted by its motion (short misses of the
    /// detector do not make boxes blink).
    pub show_lost_s: f64,
    /// Matches that confirm a new track (1: at once).
    pub confirm_hits: u32,
    /// Centre points kept per track for drawing its trail.
    pub trail: usize,
    /// Seconds a confirmed track is kept while only boxes scoring less than what starts a
    /// track match it (0: for ever). Low-score boxes keep a track through occlusion; a
    /// detector's steady false box (a post, a sign scored 0.2 as a person) would keep a track
    /// that reached it for ever.
    pub unsure_s: f64,
    /// Weight, in the first stage, of a box's agreement with the way a track is heading
    /// (times the box's score; agreement runs from -0.5 to 0.5) beside its overlap.
    pub heading_weight: f64,
    /// A box is taken for one around a group, and left out, when at least two smaller boxes
    /// of the same result, apart from each other and each lying mostly inside it, cover this
    /// share of it (above 1: never).
    pub group_cover: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_iou: 0.2,
            buffer: 0.25,
            low_match_iou: 0.5,
            tentative_iou: 0.3,
            max_lost_s: 2.0,
            show_lost_s: 0.5,
            confirm_hits: 2,
            trail: 32,
            unsure_s: 3.0,
            heading_weight: 0.1,
            group_cover: 0.8,
        }
    }
}

/// Where a track stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Seen fewer than `confirm_hits` times: not shown, no events.
    Tentative,
    /// Matched by the last result.
    Tracked,
    /// Missed by the last result; still matched for `max_lost_s`.
    Lost,
}

/// A box given to the tracker: `[x, y, w, h]` in pixels, its class and score.
#[derive(Debug, Clone, PartialEq)]
pub struct Input<'a> {
    /// The box.
    pub rect: [f64; 4],
    /// Its class.
    pub class: &'a str,
    /// Its score.
    pub score: f32,
}

/// One object followed over time.
#[derive(Debug, Clone)]
pub struct Track {
    /// Its id, unique in the stream, from 1.
    pub id: u64,
    /// Its class.
    pub class: String,
    /// Where it stands.
    pub state: State,
    /// Score of its last match.
    pub score: f32,
    /// Best score of its matches.
    pub best_score: f32,
    /// Matches so far.
    pub hits: u32,
    /// Stream time it was first seen, seconds.
    pub born: f64,
    /// Stream time of its last match, seconds.
    pub last_seen: f64,
    /// Stream time of its last match by a box that scored enough to start a track.
    sure_at: f64,
    /// Its centre at its last matches, oldest first.
    pub trail: VecDeque<Point>,
    /// The centres of its last matched boxes (of the whole object) with their times, oldest
    /// first: the way it is heading.
    seen: VecDeque<(f64, Point)>,
    /// The classes its boxes said, with their summed scores.
    votes: Vec<(String, f32)>,
    filter: BoxFilter,
    /// Stream time the filter is at.
    t: f64,
    /// Its usual size `[w, h]`, learnt from the boxes that showed all of it.
    usual: [f64; 2],
    /// Since when its boxes have shown only part of it (see [`partial_view`]), if they do.
    partial_since: Option<f64>,
}

impl Track {
    /// The whole object's box (centre, size) for a box `[x, y, w, h]` found now, which may
    /// show part of it (see [`partial_view`]).
    fn whole(&self, rect: [f64; 4]) -> Cxcywh {
        let seen = cxcywh(rect);
        partial_view(self.filter.state(), self.usual, seen).unwrap_or(seen)
    }

    /// Whether the object seen whole at `c` (see [`Track::whole`]) can be this object by where
    /// its motion put it: its centre within [`GATE_DISTANCE2`] of the prediction. Overlap
    /// alone lets a track leave its object for another one that overlaps the prediction from a
    /// side it could not have moved to (one walking in where it walked out, half a body lower).
    fn could_be(&self, c: Cxcywh) -> bool {
        self.filter.centre_distance2([c[0], c[1]]) <= GATE_DISTANCE2
    }

    /// The unit vector of the way its boxes moved over their last [`HEADING_SPAN_S`]; `None`
    /// while that is shorter than [`HEADING_MIN_SPAN_S`] or it moved less than
    /// [`HEADING_MIN_MOVE`] of its width (standing, its heading is noise).
    fn heading(&self) -> Option<Point> {
        let &(t1, last) = self.seen.back()?;
        let &(t0, first) = self.seen.iter().find(|(t, _)| t1 - t <= HEADING_SPAN_S)?;
        let v = [last[0] - first[0], last[1] - first[1]];
        let len = v[0].hypot(v[1]);
        (t1 - t0 >= HEADING_MIN_SPAN_S && len >= HEADING_MIN_MOVE * self.usual[0])
            .then(|| [v[0] / len, v[1] / len])
    }

    /// How well the object seen whole at `c` (see [`Track::whole`]) agrees with the way the
    /// track is heading: the angle between its heading and the step from where it was last
    /// seen to `c`'s centre, from 0.5 (straight ahead) to -0.5 (straight back); 0 without a
    /// heading or a step to speak of. OC-SORT's momentum term.
    fn agreement(&self, c: Cxcywh) -> f64 {
        let (Some(h), Some(&(_, last))) = (self.heading(), self.seen.back()) else {
            return 0.0;
        };
        let step = [c[0] - last[0], c[1] - last[1]];
        let len = step[0].hypot(step[1]);
        if len < HEADING_MIN_STEP * self.usual[0] {
            return 0.0;
        }
        let cos = ((h[0] * step[0] + h[1] * step[1]) / len).clamp(-1.0, 1.0);
        (std::f64::consts::FRAC_PI_2 - cos.acos()) / std::f64::consts::PI
    }

    /// Its filtered box `[x, y, w, h]` at its last result.
    pub fn rect(&self) -> [f64; 4] {
        xywh(self.filter.state())
    }

    /// Its box predicted to stream time `t` (no further than `horizon` past its last match).
    pub fn rect_at(&self, t: f64, horizon: f64) -> [f64; 4] {
        let until = t.min(self.last_seen + horizon);
        xywh(self.filter.ahead(until - self.t))
    }

    /// Its centre's velocity, pixels per second.
    pub fn velocity(&self) -> [f64; 2] {
        self.filter.velocity()
    }

    /// Whether it was ever confirmed (shown, with events).
    pub fn confirmed(&self) -> bool {
        self.state != State::Tentative
    }

    /// Counts a box's class; the track takes the class said most (by summed score). A tie
    /// keeps the class it has.
    fn vote(&mut self, class: &str, score: f32) {
        let weight = score.clamp(0.01, 1.0);
        if let Some((_, w)) = self.votes.iter_mut().find(|(c, _)| c == class) {
            *w += weight;
        } else if self.votes.len() < MAX_VOTES {
            self.votes.push((class.to_string(), weight));
        } else {
            return;
        }
        let mine = self
            .votes
            .iter()
            .find(|(c, _)| *c == self.class)
            .map_or(0.0, |v| v.1);
        if let Some((best, w)) = self.votes.iter().max_by(|a, b| a.1.total_cmp(&b.1))
            && *w > mine
        {
            self.class = best.clone();
        }
    }
}

/// Seconds of matches a track's heading is taken over.
const HEADING_SPAN_S: f64 = 0.5;
/// The least time between the two matches a heading is taken from.
const HEADING_MIN_SPAN_S: f64 = 0.15;
/// Least move over the span, as a share of the track's width, for it to have a heading.
const HEADING_MIN_MOVE: f64 = 0.1;
/// Least step from the last seen centre to a box's, as a share of the track's width, for the
/// box to agree or disagree with the heading.
const HEADING_MIN_STEP: f64 = 0.02;
/// Matched centres a track keeps for its heading.
const SEEN_KEPT: usize = 16;

/// Most classes a track remembers votes for.
const MAX_VOTES: usize = 8;

/// Which classes may share a track: each class of a group names the group's index.
#[derive(Debug, Clone, Default)]
pub struct ClassGroups(HashMap<String, usize>);

impl ClassGroups {
    /// Groups of classes a detector confuses for one object (`[["car", "truck", "bus"]]`).
    pub fn new(groups: &[Vec<String>]) -> Self {
        let mut map = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            for c in g {
                map.entry(c.clone()).or_insert(i);
            }
        }
        Self(map)
    }

    /// Whether a box of class `a` may match a track of class `b`.
    pub fn same(&self, a: &str, b: &str) -> bool {
        a == b || matches!((self.0.get(a), self.0.get(b)), (Some(x), Some(y)) if x == y)
    }
}

/// What one result changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Tracks confirmed by this result (ids).
    pub started: Vec<u64>,
    /// Confirmed tracks matched by this result (ids, with the index of their box).
    pub matched: Vec<(u64, usize)>,
    /// Confirmed tracks that ended (lost for `max_lost_s`).
    pub ended: Vec<Track>,
}

/// The tracks of one stream.
pub struct Tracker {
    params: Params,
    groups: ClassGroups,
    /// Per class, the score that starts a track instead of `params.new_track_score`.
    new_track_scores: std::collections::BTreeMap<String, f32>,
    /// Per class, the score that makes a box high-score instead of `params.high_score`.
    high_scores: std::collections::BTreeMap<String, f32>,
    tracks: Vec<Track>,
    next_id: u64,
    last_t: Option<f64>,
    /// The frame's width and height, once known: shown boxes are clipped to it.
    frame: Option<[f64; 2]>,
}

/// The farthest a matched box's centre may lie from its track's prediction: the squared
/// Mahalanobis distance, chi-squared with two degrees of freedom: its 99.9% quantile.
const GATE_DISTANCE2: f64 = 13.8;

/// Along an axis, a box whose extent shrank to under this fraction of what it did along the
/// other axis (against the track's usual size) shows part of the object on that axis.
const PARTIAL_RATIO: f64 = 0.85;
/// The least share of such a box within the track's box (of its usual size).
const PARTIAL_INSIDE: f64 = 0.8;
/// How far each whole view moves a track's usual size towards the size seen.
const SIZE_LEARNING: f64 = 0.25;

/// The whole object's box when a matched box `seen` shows only part of it, or `None` when it
/// shows the whole. An object passing behind another (or leaving the picture) is boxed by what
/// is left of it: taken as it is, the filter would shrink the track towards a sliver and learn a
/// shrinking speed, and the object, whole again, would no longer overlap its own track. A part
/// is told from a change of size by its shape: an object moving away shrinks along both axes,
/// one hidden in part along one. So a box within the track's predicted box (of the track's
/// usual size `usual`, `[w, h]`) that shrank along one axis much more than along the other keeps
/// the usual extent on that axis and is placed by its edge that agrees with the prediction (the
/// hidden side is the other one).
fn partial_view(predicted: Cxcywh, usual: [f64; 2], seen: Cxcywh) -> Option<Cxcywh> {
    let track = [predicted[0], predicted[1], usual[0], usual[1]];
    let (t, s) = (xywh(track), xywh(seen));
    if intersection(t, s) < PARTIAL_INSIDE * s[2] * s[3] {
        return None;
    }
    let ratio = [seen[2] / usual[0], seen[3] / usual[1]];
    // Shrunk along an axis, and much more than along the other.
    let shrunk = |a: usize| ratio[a] < PARTIAL_RATIO * ratio[1 - a].min(1.0);
    let axis = match (shrunk(0), shrunk(1)) {
        (true, false) => 0,
        (false, true) => 1,
        _ => return None,
    };
    let extent = usual[axis];
    let (t0, t1) = (t[axis], t[axis] + t[2 + axis]);
    let (s0, s1) = (s[axis], s[axis] + s[2 + axis]);
    let mut whole = seen;
    whole[axis] = if (s0 - t0).abs() <= (s1 - t1).abs() {
        s0 + extent / 2.0
    } else {
        s1 - extent / 2.0
    };
    whole[2 + axis] = extent;
    Some(whole)
}

fn xywh(b: Cxcywh) -> [f64; 4] {
    [b[0] - b[2] / 2.0, b[1] - b[3] / 2.0, b[2], b[3]]
}

fn cxcywh(r: [f64; 4]) -> Cxcywh {
    [r[0] + r[2] / 2.0, r[1] + r[3] / 2.0, r[2], r[3]]
}

/// How one stage of the association weighs a pair.
#[derive(Debug, Clone, Copy)]
struct Stage {
    /// Least overlap of a pair.
    min_iou: f64,
    /// Boxes grown by this share of their size on each side before their overlap is taken.
    buffer: f64,
    /// Weight of a box's agreement with its track's heading (times the box's score).
    heading: f64,
}

/// Pairs of (track index, input index) that maximise the summed weight among pairs of one
/// class (or group) whose overlap reaches the stage's least; the rest stays unmatched. A pair
/// weighs its overlap plus `heading` times the box's score times its agreement with the way
/// the track is heading: where two people cross, each box goes on with the one walking its way.
fn associate(
    groups: &ClassGroups,
    tracks: &[Track],
    track_ids: &[usize],
    inputs: &[Input<'_>],
    input_ids: &[usize],
    stage: Stage,
) -> Vec<(usize, usize)> {
    let Stage {
        min_iou,
        buffer,
        heading,
    } = stage;
    if track_ids.is_empty() || input_ids.is_empty() {
        return Vec::new();
    }
    // Overlaps scaled to integers (the solver wants an exact, ordered weight).
    let weight = |t: usize, d: usize| -> i64 {
        let (track, input) = (&tracks[t], &inputs[d]);
        if !groups.same(input.class, &track.class) {
            return 0;
        }
        let o = buffered_iou(track.rect(), input.rect, buffer);
        // The whole object's box, taken once for the gate and the heading.
        let Some(whole) = (o >= min_iou && o > 0.0)
            .then(|| track.whole(input.rect))
            .filter(|&w| track.could_be(w))
        else {
            return 0;
        };
        let agreement = if heading > 0.0 {
            heading * f64::from(input.score.clamp(0.0, 1.0)) * track.agreement(whole)
        } else {
            0.0
        };
        // Never 0: an eligible pair stays eligible.
        ((o + agreement) * 1e6).round().max(1.0) as i64
    };
    // The solver needs no more rows than columns: put the shorter side in the rows.
    let transposed = track_ids.len() > input_ids.len();
    let (rows, cols) = if transposed {
        (input_ids, track_ids)
    } else {
        (track_ids, input_ids)
    };
    let mut values = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        for &c in cols {
            values.push(if transposed {
                weight(c, r)
            } else {
                weight(r, c)
            });
        }
    }
    let Ok(matrix) = Matrix::from_vec(rows.len(), cols.len(), values) else {
        return Vec::new();
    };
    let (_, assignment) = kuhn_munkres(&matrix);
    assignment
        .iter()
        .enumerate()
        .filter(|&(r, &c)| *matrix.get((r, c)).unwrap_or(&0) > 0)
        .map(|(r, &c)| {
            if transposed {
                (cols[c], rows[r])
            } else {
                (rows[r], cols[c])
            }
        })
        .collect()
}

impl Tracker {
    /// No tracks yet.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            groups: ClassGroups::default(),
            new_track_scores: Default::default(),
            high_scores: Default::default(),
            tracks: Vec::new(),
            next_id: 1,
            last_t: None,
            frame: None,
        }
    }

    /// Lets the classes of each group share tracks.
    pub fn with_class_groups(mut self, groups: ClassGroups) -> Self {
        self.groups = groups;
        self
    }

    /// Gives classes their own score for starting a track (the others keep
    /// `new_track_score`): a detector can score one class lower than another.
    pub fn with_new_track_scores(
        mut self,
        scores: std::collections::BTreeMap<String, f32>,
    ) -> Self {
        self.new_track_scores = scores;
        self
    }

    /// Gives classes their own score for the first stage (the others keep `high_score`): a
    /// detector can score one class lower than another.
    pub fn with_high_scores(mut self, scores: std::collections::BTreeMap<String, f32>) -> Self {
        self.high_scores = scores;
        self
    }

    /// The score from which a box of `class` is matched in the first stage (and may start a
    /// track).
    fn high_score(&self, class: &str) -> f32 {
        self.high_scores
            .get(class)
            .copied()
            .unwrap_or(self.params.high_score)
    }

    /// The score at which an unmatched box of `class` starts a track.
    fn new_track_score(&self, class: &str) -> f32 {
        self.new_track_scores
            .get(class)
            .copied()
            .unwrap_or(self.params.new_track_score)
    }

    /// Tells the frame's size: shown boxes are clipped to the frame, and a lost track last seen
    /// at the frame's edge, or whose predicted box has left the frame by half, is no longer
    /// shown (the detector's boxes of an object leaving the picture shrink with it, its
    /// prediction does not).
    pub fn set_frame(&mut self, width: u32, height: u32) {
        self.frame = (width > 0 && height > 0).then_some([f64::from(width), f64::from(height)]);
    }

    /// The thresholds.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Every track (tentative and lost ones too).
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Ends every track (the stream's time started again): returns the confirmed ones.
    pub fn clear(&mut self) -> Vec<Track> {
        self.last_t = None;
        std::mem::take(&mut self.tracks)
            .into_iter()
            .filter(Track::confirmed)
            .collect()
    }

    /// Takes the boxes found in the frame of stream time `t` (seconds; not before the last
    /// result's).
    pub fn update(&mut self, inputs: &[Input<'_>], t: f64) -> Changes {
        let p = self.params;
        let t = self.last_t.map_or(t, |last| t.max(last));
        self.last_t = Some(t);
        for track in &mut self.tracks {
            track.filter.predict(t - track.t);
            track.t = t;
        }
        let sorting = Sorting {
            groups: &self.groups,
            low_score: p.low_score,
            high_score: |class: &str| self.high_score(class),
            group_cover: p.group_cover,
        };
        let (high, low) = inputs::sort(inputs, &sorting);
        let of_state = |tracks: &[Track], states: &[State]| -> Vec<usize> {
            (0..tracks.len())
                .filter(|&i| states.contains(&tracks[i].state))
                .collect()
        };
        let mut matched: Vec<(usize, usize)> = Vec::new();
        // 1. High-score boxes against tracked and lost tracks.
        // A lost track predicted half out of the picture has left it: a box at the edge is
        // someone coming in.
        let frame = self.frame;
        let gone = |tr: &Track| {
            tr.state == State::Lost && frame.is_some_and(|f| share_in_frame(tr.rect(), f) < 0.5)
        };
        let pool: Vec<usize> = of_state(&self.tracks, &[State::Tracked, State::Lost])
            .into_iter()
            .filter(|&i| !gone(&self.tracks[i]))
            .collect();
        let g = &self.groups;
        let first = associate(
            g,
            &self.tracks,
            &pool,
            inputs,
            &high,
            Stage {
                min_iou: p.match_iou,
                buffer: p.buffer,
                heading: p.heading_weight,
            },
        );
        matched.extend(&first);
        let taken = |pairs: &[(usize, usize)], i: usize, side: fn(&(usize, usize)) -> usize| {
            pairs.iter().any(|pair| side(pair) == i)
        };
        let high_left: Vec<usize> = high
            .iter()
            .copied()
            .filter(|&d| !taken(&first, d, |p| p.1))
            .collect();
        // 2. Low-score boxes against the tracked tracks still unmatched.
        let tracked_left: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&t| self.tracks[t].state == State::Tracked && !taken(&first, t, |p| p.0))
            .collect();
        matched.extend(associate(
            g,
            &self.tracks,
            &tracked_left,
            inputs,
            &low,
            Stage {
                min_iou: p.low_match_iou,
                buffer: 0.0,
                heading: 0.0,
            },
        ));
        // 3. Tentative tracks against the high-score boxes left.
        let tentative = of_state(&self.tracks, &[State::Tentative]);
        let third = associate(
            g,
            &self.tracks,
            &tentative,
            inputs,
            &high_left,
            Stage {
                min_iou: p.tentative_iou,
                buffer: p.buffer,
                heading: 0.0,
            },
        );
        matched.extend(&third);

        let mut changes = Changes::default();
        // Boxes that score enough to start a track keep a track sure of its object.
        let sure: Vec<bool> = inputs
            .iter()
            .map(|d| d.score >= self.new_track_score(d.class))
            .collect();
        let mut hit = vec![false; self.tracks.len()];
        for &(ti, di) in &matched {
            hit[ti] = true;
            let d = &inputs[di];
            let track = &mut self.tracks[ti];
            let seen = cxcywh(d.rect);
            // A box cut by the picture's edge is the object leaving or entering: its track is
            // let go at the edge (see `at`), not kept whole.
            let at_edge = frame.is_some_and(|f| touches_frame_edge(d.rect, f, 1.0));
            let whole = (!at_edge)
                .then(|| partial_view(track.filter.state(), track.usual, seen))
                .flatten();
            if track.seen.len() >= SEEN_KEPT {
                track.seen.pop_front();
            }
            let centre = whole.unwrap_or(seen);
            track.seen.push_back((t, [centre[0], centre[1]]));
            match whole {
                // Hidden in part for longer than a lost track is kept: what the detector sees
                // is the object's size now.
                Some(whole) if t - *track.partial_since.get_or_insert(t) <= p.max_lost_s => {
                    track.filter.update(whole);
                }
                _ => {
                    track.partial_since = None;
                    for (u, s) in track.usual.iter_mut().zip([seen[2], seen[3]]) {
                        *u += SIZE_LEARNING * (s.max(1.0) - *u);
                    }
                    track.filter.update(seen);
                }
            }
            track.hits = track.hits.saturating_add(1);
            track.score = d.score;
            track.best_score = track.best_score.max(d.score);
            track.last_seen = t;
            if sure[di] {
                track.sure_at = t;
            }
            track.vote(d.class, d.score);
            let c = track.filter.state();
            if track.trail.len() >= p.trail.max(1) {
                track.trail.pop_front();
            }
            track.trail.push_back([c[0], c[1]]);
            if track.state == State::Tentative {
                if track.hits >= p.confirm_hits {
                    track.state = State::Tracked;
                    changes.started.push(track.id);
                    changes.matched.push((track.id, di));
                }
            } else {
                track.state = State::Tracked;
                changes.matched.push((track.id, di));
            }
        }
        // Unmatched: tentative tracks go, tracked ones are lost, lost ones end in time.
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (track, hit) in std::mem::take(&mut self.tracks).into_iter().zip(hit) {
            // Matched for `unsure_s` by nothing that would start a track: what keeps it is
            // not the object any more (see `Params::unsure_s`).
            if p.unsure_s > 0.0 && track.confirmed() && t - track.sure_at > p.unsure_s {
                changes.ended.push(track);
                continue;
            }
            if hit {
                kept.push(track);
                continue;
            }
            match track.state {
                State::Tentative => {}
                State::Tracked | State::Lost if t - track.last_seen > p.max_lost_s => {
                    changes.ended.push(track);
                }
                State::Tracked | State::Lost => kept.push(Track {
                    state: State::Lost,
                    ..track
                }),
            }
        }
        self.tracks = kept;
        // New tracks from the high-score boxes nobody took.
        let used: Vec<usize> = third.iter().map(|p| p.1).collect();
        for &di in high_left.iter().filter(|d| !used.contains(d)) {
            let d = &inputs[di];
            if d.score < self.new_track_score(d.class) {
                continue;
            }
            let filter = BoxFilter::new(cxcywh(d.rect));
            let c = filter.state();
            let mut track = Track {
                id: self.next_id,
                class: d.class.to_string(),
                state: State::Tentative,
                score: d.score,
                best_score: d.score,
                hits: 1,
                born: t,
                last_seen: t,
                sure_at: t,
                trail: VecDeque::from([[c[0], c[1]]]),
                seen: VecDeque::from([(t, [c[0], c[1]])]),
                votes: Vec::new(),
                filter,
                t,
                usual: [d.rect[2], d.rect[3]],
                partial_since: None,
            };
            track.vote(d.class, d.score);
            self.next_id += 1;
            if p.confirm_hits <= 1 {
                track.state = State::Tracked;
                changes.started.push(track.id);
                changes.matched.push((track.id, di));
            }
            self.tracks.push(track);
        }
        changes
    }

    /// The confirmed tracks to show at stream time `t`, with their boxes predicted to it: those
    /// matched by the last result, and lost ones for `show_lost_s` after their last match.
    pub fn at(&self, t: f64) -> impl Iterator<Item = (&Track, [f64; 4])> {
        self.placed(t, self.params.show_lost_s)
    }

    /// The tracks missed by the last result and still kept (`max_lost_s`), with their boxes
    /// predicted to stream time `t`, shown or not; as [`Tracker::at`] places them, so not
    /// those that left the picture. Where lines take them to be.
    pub fn lost_at(&self, t: f64) -> impl Iterator<Item = (&Track, [f64; 4])> {
        self.placed(t, self.params.max_lost_s)
            .filter(|(track, _)| track.state == State::Lost)
    }

    /// The confirmed tracks at stream time `t`: those matched by the last result, and lost ones
    /// for `show` seconds after their last match, clipped to the frame.
    fn placed(&self, t: f64, show: f64) -> impl Iterator<Item = (&Track, [f64; 4])> {
        let (horizon, frame) = (self.params.max_lost_s, self.frame);
        self.tracks
            .iter()
            .filter(move |tr| match tr.state {
                State::Tracked => true,
                State::Lost => t - tr.last_seen <= show,
                State::Tentative => false,
            })
            .filter_map(move |tr| {
                let r = tr.rect_at(t, horizon);
                let Some([w, h]) = frame else {
                    return Some((tr, r));
                };
                let clipped = clip_to_frame(r, [w, h]);
                if clipped[2] <= 0.0 || clipped[3] <= 0.0 {
                    return None;
                }
                if tr.state == State::Tracked {
                    return Some((tr, clipped));
                }
                // A lost track last seen at the frame's edge has most likely left the picture.
                let at_edge = touches_frame_edge(tr.rect(), [w, h], 2.0);
                (!at_edge && share_in_frame(r, [w, h]) >= 0.5).then_some((tr, clipped))
            })
    }

    /// A confirmed track by id.
    pub fn get(&self, id: u64) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn input(x: f64, y: f64, class: &str, score: f32) -> Input<'_> {
        Input {
            rect: [x, y, 40.0, 80.0],
            class,
            score,
        }
    }

    #[test]
    fn a_track_is_confirmed_on_its_second_match_and_keeps_its_id() {
        let mut tr = Tracker::new(Params::default());
        let c = tr.update(&[input(100.0, 100.0, "person", 0.9)], 0.0);
        assert!(c.started.is_empty(), "tentative first");
        assert_eq!(tr.at(0.0).count(), 0);
        let c = tr.update(&[input(104.0, 100.0, "person", 0.9)], 0.1);
        assert_eq!(c.started, vec![1]);
        for i in 2..20 {
            let c = tr.update(
                &[input(100.0 + 4.0 * i as f64, 100.0, "person", 0.9)],
                0.1 * i as f64,
            );
            assert_eq!(c.matched, vec![(1, 0)]);
        }
        let (track, rect) = tr.at(1.9).next().expect("a track");
        assert_eq!(track.id, 1);
        assert!(
            (track.velocity()[0] - 40.0).abs() < 4.0,
            "{:?}",
            track.velocity()
        );
        // Half a second later without a result the box has moved on by itself.
        let (_, later) = tr.at(2.4).next().expect("a track");
        assert!(later[0] - rect[0] > 15.0, "{rect:?} → {later:?}");
    }

    #[test]
    fn low_score_boxes_keep_a_track_through_occlusion_and_never_start_one() {
        let mut tr = Tracker::new(Params::default());
        for i in 0..5 {
            tr.update(
                &[input(100.0 + 5.0 * i as f64, 50.0, "car", 0.8)],
                0.1 * i as f64,
            );
        }
        // Half hidden: the detector's score falls to 0.3 for a while.
        for i in 5..15 {
            let c = tr.update(
                &[input(100.0 + 5.0 * i as f64, 50.0, "car", 0.3)],
                0.1 * i as f64,
            );
            assert_eq!(c.matched, vec![(1, 0)], "step {i}");
        }
        // A low-score box alone never starts a track.
        let mut fresh = Tracker::new(Params::default());
        for i in 0..5 {
            fresh.update(&[input(10.0, 10.0, "car", 0.3)], 0.1 * i as f64);
        }
        assert!(fresh.tracks().is_empty());
    }

    #[test]
    fn a_track_kept_only_by_a_steady_false_box_ends_after_unsure_s() {
        // Someone walks to a post that the detector scores 0.25 as a person, and out of view.
        let run = |unsure_s: f64| {
            let mut tr = Tracker::new(Params {
                unsure_s,
                ..Params::default()
            });
            let mut ended_at = None;
            for i in 0..100 {
                let t = 0.1 * f64::from(i);
                let boxes = if i < 10 {
                    vec![input(100.0 + 5.0 * f64::from(i), 50.0, "person", 0.8)]
                } else {
                    vec![input(150.0, 50.0, "person", 0.25)]
                };
                let c = tr.update(&boxes, t);
                if c.ended.iter().any(|e| e.id == 1) {
                    ended_at = Some(t);
                }
            }
            ended_at
        };
        // Last sure match at 0.9 s: the track ends 3 s later (the result at 3.9 s or the next).
        let ended = run(3.0).expect("the track ends");
        assert!((3.85..=4.05).contains(&ended), "{ended}");
        // Unset, the false box keeps it for as long as it comes.
        assert_eq!(run(0.0), None);
    }

    #[test]
    fn a_box_around_two_cars_boxed_one_by_one_starts_and_keeps_no_track() {
        // Two cars one behind the other, each boxed, and one box around both (as CenterNet
        // draws now and then); a third car with someone standing in front of it (one box
        // inside another is no group).
        let car = |rect: [f64; 4], score: f32| Input {
            rect,
            class: "car",
            score,
        };
        let frame = |group: f32| {
            vec![
                car([100.0, 100.0, 190.0, 80.0], 0.8),
                car([105.0, 170.0, 180.0, 115.0], 0.8),
                car([100.0, 100.0, 192.0, 183.0], group),
                car([500.0, 100.0, 190.0, 80.0], 0.8),
                input(600.0, 100.0, "person", 0.8),
            ]
        };
        let mut tr = Tracker::new(Params::default());
        for i in 0..5 {
            tr.update(&frame(0.9), 0.1 * f64::from(i));
        }
        let tall = |tr: &Tracker| tr.tracks().iter().filter(|t| t.rect()[3] > 150.0).count();
        assert_eq!(tr.tracks().len(), 4, "{:?}", tr.tracks());
        assert_eq!(tall(&tr), 0);
        // With the check off, the box around both is a track of its own.
        let mut off = Tracker::new(Params {
            group_cover: 2.0,
            ..Params::default()
        });
        for i in 0..5 {
            off.update(&frame(0.9), 0.1 * f64::from(i));
        }
        assert_eq!(tall(&off), 1);
    }

    #[test]
    fn of_two_boxes_beside_a_walking_track_it_takes_the_one_ahead_of_it() {
        // Someone walks right at 100 px/s; the next result has two boxes beside the prediction,
        // one a little ahead of it, one a little nearer it but behind where they were last seen.
        let run = |heading_weight: f64| {
            let mut tr = Tracker::new(Params {
                heading_weight,
                ..Params::default()
            });
            for i in 0..8 {
                let x = 100.0 + 10.0 * f64::from(i);
                tr.update(&[input(x, 50.0, "person", 0.8)], 0.1 * f64::from(i));
            }
            let t = 0.8;
            let predicted = tr.tracks()[0].rect_at(t, 1.0);
            let (behind, ahead) = (predicted[0] - 15.0, predicted[0] + 16.0);
            // The box behind is behind the last seen box (x = 170).
            assert!(behind < 170.0 && ahead > 170.0, "{behind} {ahead}");
            let c = tr.update(
                &[
                    input(behind, 50.0, "person", 0.8),
                    input(ahead, 50.0, "person", 0.8),
                ],
                t,
            );
            c.matched
        };
        assert_eq!(run(0.1), vec![(1, 1)], "the box ahead");
        // By overlap alone the nearer box, behind, is taken.
        assert_eq!(run(0.0), vec![(1, 0)]);
    }

    #[test]
    fn a_lost_track_comes_back_with_its_id_and_ends_after_max_lost() {
        let mut tr = Tracker::new(Params::default());
        for i in 0..5 {
            tr.update(&[input(100.0, 100.0, "person", 0.9)], 0.1 * i as f64);
        }
        // Missed for 0.5 s, then found again: the same track.
        for i in 5..10 {
            let c = tr.update(&[], 0.1 * i as f64);
            assert!(c.ended.is_empty());
        }
        assert_eq!(tr.at(0.9).count(), 1, "shown for show_lost_s");
        assert_eq!(tr.at(1.0).count(), 0, "then hidden");
        let c = tr.update(&[input(100.0, 100.0, "person", 0.9)], 1.0);
        assert_eq!(c.matched, vec![(1, 0)]);
        // Gone for longer than max_lost_s: it ends, once.
        let mut ended = Vec::new();
        for i in 11..40 {
            ended.extend(tr.update(&[], 0.1 * i as f64).ended);
        }
        assert_eq!(ended.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1]);
        assert!(tr.tracks().is_empty());
    }

    #[test]
    fn a_box_showing_part_of_the_object_keeps_the_track_s_size_on_its_seen_side() {
        let track = [200.0, 100.0, 180.0, 90.0]; // cx, cy, w, h: x from 110 to 290
        let usual = [180.0, 90.0];
        // Its front hidden: the box of its rear, from 110 to 200.
        let rear = [155.0, 100.0, 90.0, 90.0];
        let whole = partial_view(track, usual, rear).expect("a part");
        assert_eq!(whole, [200.0, 100.0, 180.0, 90.0]);
        // Its rear hidden: placed by the front edge.
        let front = [260.0, 100.0, 60.0, 90.0];
        assert_eq!(partial_view(track, usual, front), Some(track));
        // Its lower half hidden (behind a nearer object): placed by its top.
        let top = [200.0, 77.5, 180.0, 45.0];
        assert_eq!(partial_view(track, usual, top), Some(track));
        // Smaller along both axes (moving away), or a little moved: taken as it is.
        assert_eq!(
            partial_view(track, usual, [200.0, 100.0, 270.0, 90.0]),
            None,
            "grown"
        );
        assert_eq!(
            partial_view(track, usual, [200.0, 100.0, 120.0, 60.0]),
            None
        );
        assert_eq!(
            partial_view(track, usual, [204.0, 101.0, 170.0, 86.0]),
            None
        );
        // A small box mostly outside the track's: not a part of it.
        assert_eq!(partial_view(track, usual, [330.0, 100.0, 60.0, 90.0]), None);
    }

    /// One person walking out of a 640x480 picture and another walking in, a result every
    /// 0.08 s: `out(t)` and `comes_in(t)` are their boxes where the detector sees them. Asserts
    /// that both were tracked and that no track of the first matched the second.
    fn out_and_in(
        steps: u32,
        out: impl Fn(f64) -> Option<[f64; 4]>,
        comes_in: impl Fn(f64) -> Option<[f64; 4]>,
    ) {
        let mut tr = Tracker::new(Params::default());
        tr.set_frame(640, 480);
        let (mut firsts, mut seconds) = (BTreeSet::new(), BTreeSet::new());
        for i in 0..steps {
            let t = 0.08 * f64::from(i);
            let seen: Vec<(bool, [f64; 4])> = [(true, out(t)), (false, comes_in(t))]
                .into_iter()
                .filter_map(|(first, rect)| rect.map(|r| (first, r)))
                .collect();
            let inputs: Vec<Input<'_>> = seen
                .iter()
                .map(|&(_, rect)| Input {
                    rect,
                    class: "person",
                    score: 0.9,
                })
                .collect();
            for (id, di) in tr.update(&inputs, t).matched {
                if seen[di].0 {
                    &mut firsts
                } else {
                    &mut seconds
                }
                .insert(id);
            }
        }
        assert!(
            !firsts.is_empty() && !seconds.is_empty(),
            "both were tracked"
        );
        assert!(
            firsts.is_disjoint(&seconds),
            "the first's track took the second: {firsts:?} {seconds:?}"
        );
    }

    #[test]
    fn someone_coming_in_where_someone_went_out_gets_a_track_of_their_own() {
        // One walks out at the right edge at 100 px/s, missed by the detector from the moment
        // they touch it; a quarter of a second later another walks in there.
        let clip = |x: f64| {
            let (x0, x1) = (x.max(0.0), (x + 40.0).min(640.0));
            (x1 - x0 >= 4.0).then_some([x0, 200.0, x1 - x0, 80.0])
        };
        out_and_in(
            30,
            |t| (t <= 0.8).then(|| clip(520.0 + 100.0 * t)).flatten(),
            |t| {
                (t >= 1.04)
                    .then(|| clip(628.0 - 100.0 * (t - 1.04)))
                    .flatten()
            },
        );
    }

    #[test]
    fn a_track_does_not_jump_to_someone_overlapping_it_from_where_it_could_not_have_gone() {
        // One walks right at 100 px/s and is missed from t = 0.88 on, a few pixels from the
        // right edge; another walks in there, 60 px lower, overlapping the first's prediction.
        out_and_in(
            25,
            |t| (t <= 0.8).then_some([510.0 + 100.0 * t, 200.0, 40.0, 100.0]),
            |t| {
                (t >= 0.88).then(|| {
                    let x = 610.0 - 100.0 * (t - 0.88);
                    [x, 260.0, (640.0 - x).min(40.0), 100.0]
                })
            },
        );
    }

    #[test]
    fn a_car_passing_behind_a_person_keeps_its_track() {
        // A car 180 px long drives right at 200 px/s behind a person standing over x 300..360:
        // the detector boxes what it sees of the car (its rear while the front is hidden),
        // misses it while it is mostly hidden, and boxes it whole once past.
        let mut tr = Tracker::new(Params::default());
        let mut ids = BTreeSet::new();
        for i in 0..40 {
            let t = 0.08 * f64::from(i);
            let x = 20.0 + 200.0 * t;
            let (x0, x1) = (x, x + 180.0);
            let seen = if x1 <= 300.0 || x0 >= 360.0 {
                Some([x0, 300.0, 180.0, 90.0])
            } else if 300.0 - x0 >= 60.0 {
                Some([x0, 300.0, 300.0 - x0, 90.0])
            } else if x1 - 360.0 >= 120.0 {
                Some([360.0, 300.0, x1 - 360.0, 90.0])
            } else {
                None
            };
            let inputs: Vec<Input<'_>> = seen
                .map(|rect| Input {
                    rect,
                    class: "car",
                    score: 0.8,
                })
                .into_iter()
                .collect();
            tr.update(&inputs, t);
            ids.extend(tr.at(t).map(|(t, _)| t.id));
        }
        assert_eq!(ids.len(), 1, "one car, one track: {ids:?}");
        let car = &tr.tracks()[0];
        assert!(
            (car.rect()[2] - 180.0).abs() < 10.0,
            "its size kept: {:?}",
            car.rect()
        );
    }

    #[test]
    fn a_class_with_its_own_new_track_score_starts_tracks_where_the_others_do_not() {
        let scores: std::collections::BTreeMap<String, f32> = [("car".to_string(), 0.3)].into();
        let params = Params {
            high_score: 0.3,
            ..Params::default()
        };
        let mut tr = Tracker::new(params).with_new_track_scores(scores);
        let mut shown = std::collections::BTreeSet::new();
        for i in 0..6 {
            let t = 0.08 * i as f64;
            let x = 100.0 + 50.0 * t;
            // Both are high-score boxes, both under new_track_score (0.6); the car's own is 0.3.
            let boxes = [
                input(x, 100.0, "person", 0.55),
                input(x, 400.0, "car", 0.35),
            ];
            tr.update(&boxes, t);
            shown.extend(tr.at(t).map(|(t, _)| t.class.clone()));
        }
        assert_eq!(
            shown.into_iter().collect::<Vec<_>>(),
            vec!["car".to_string()]
        );
    }

    #[test]
    fn a_class_with_its_own_high_score_is_found_again_by_boxes_the_others_would_not_match() {
        let params = Params {
            high_score: 0.3,
            new_track_score: 0.3,
            ..Params::default()
        };
        // A car seen well, missed for 0.4 s, then seen again scored 0.25 (as the shared
        // CenterNet scores cars for seconds at a time): under `high_score`, such boxes only
        // keep tracks the detector did not miss.
        let run = |tr: &mut Tracker| {
            let mut after = std::collections::BTreeSet::new();
            for i in 0..16 {
                let t = 0.08 * i as f64;
                let x = 100.0 + 100.0 * t;
                let boxes = match i {
                    0..5 => vec![input(x, 300.0, "car", 0.6)],
                    5..10 => vec![],
                    _ => vec![input(x, 300.0, "car", 0.25)],
                };
                tr.update(&boxes, t);
                if i >= 12 {
                    after.extend(tr.at(t).map(|(t, _)| t.id));
                }
            }
            after
        };
        let scores: std::collections::BTreeMap<String, f32> = [("car".to_string(), 0.2)].into();
        let mut own = Tracker::new(params).with_high_scores(scores);
        assert_eq!(run(&mut own).into_iter().collect::<Vec<_>>(), vec![1]);
        let mut shared = Tracker::new(params);
        assert!(run(&mut shared).is_empty(), "lost, and never found again");
    }

    #[test]
    fn a_car_the_detector_calls_truck_now_and_then_keeps_one_track_with_the_class_said_most() {
        let groups = ClassGroups::new(&[vec!["car".into(), "truck".into(), "bus".into()]]);
        let labels = [
            "car", "truck", "car", "truck", "truck", "car", "car", "truck", "car",
        ];
        let run = |tr: &mut Tracker| {
            let mut ids = std::collections::BTreeSet::new();
            for (i, label) in labels.iter().enumerate() {
                let t = 0.08 * i as f64;
                tr.update(&[input(100.0 + 100.0 * t, 300.0, label, 0.8)], t);
                ids.extend(tr.at(t).map(|(t, _)| t.id));
            }
            ids
        };
        let mut grouped = Tracker::new(Params::default()).with_class_groups(groups.clone());
        assert_eq!(run(&mut grouped).len(), 1, "one object, one track");
        assert_eq!(grouped.tracks()[0].class, "car", "5 of 9 boxes said car");
        // Without the group, each flicker starts over: several tracks for one car.
        let mut strict = Tracker::new(Params::default());
        assert!(run(&mut strict).len() > 1);
        // Called car and truck in the same result (two boxes on one object): still one track,
        // and the person beside it keeps its own.
        let mut twins = Tracker::new(Params::default()).with_class_groups(groups.clone());
        let mut ids = std::collections::BTreeSet::new();
        for i in 0..8 {
            let t = 0.08 * i as f64;
            let x = 100.0 + 100.0 * t;
            let car = input(x, 300.0, "car", 0.7);
            let truck = input(x + 3.0, 302.0, "truck", 0.6);
            let person = input(x + 2.0, 305.0, "person", 0.6);
            twins.update(&[truck, car, person], t);
            ids.extend(twins.at(t).map(|(t, _)| (t.id, t.class.clone())));
        }
        assert_eq!(ids.len(), 2, "{ids:?}");
        // A person is never in the cars' group.
        assert!(groups.same("truck", "car") && groups.same("bus", "bus"));
        assert!(!groups.same("person", "car") && !groups.same("dog", "cat"));
    }

    #[test]
    fn classes_never_share_a_track_and_crossing_paths_keep_their_ids() {
        let mut tr = Tracker::new(Params::default());
        // A person walking right and a car at the same place are two tracks.
        for i in 0..4 {
            let t = 0.1 * i as f64;
            tr.update(
                &[
                    input(100.0, 100.0, "person", 0.9),
                    input(100.0, 100.0, "car", 0.9),
                ],
                t,
            );
        }
        let classes: Vec<_> = tr.at(0.3).map(|(t, _)| t.class.clone()).collect();
        assert_eq!(classes.len(), 2);
        // Two people walking towards each other along one row swap sides; the motion model
        // keeps each on its own track through the crossing.
        let mut tr = Tracker::new(Params::default());
        let mut ids = Vec::new();
        for i in 0..40 {
            let t = 0.04 * i as f64;
            let a = input(100.0 + 200.0 * t, 100.0, "person", 0.9);
            let b = input(420.0 - 200.0 * t, 104.0, "person", 0.9);
            let c = tr.update(&[a, b], t);
            if i == 39 {
                ids = c.matched.clone();
            }
        }
        ids.sort();
        assert_eq!(ids, vec![(1, 0), (2, 1)], "no switch");
    }

    #[test]
    fn boxes_are_clipped_to_the_frame_and_lost_tracks_at_its_edge_are_hidden() {
        let mut tr = Tracker::new(Params::default());
        tr.set_frame(320, 240);
        // Leaving on the right: its box crosses the edge (clipped), then the detector loses it.
        for i in 0..5 {
            tr.update(
                &[input(250.0 + 10.0 * i as f64, 100.0, "person", 0.9)],
                0.1 * i as f64,
            );
        }
        let (_, r) = tr.at(0.4).next().expect("shown");
        assert!((r[0] + r[2] - 320.0).abs() < 1e-9, "clipped: {r:?}");
        tr.update(&[], 0.5);
        assert_eq!(tr.at(0.5).count(), 0, "lost at the edge: not shown");
        // Lost in the middle of the picture: shown for show_lost_s.
        let mut tr = Tracker::new(Params::default());
        tr.set_frame(320, 240);
        for i in 0..5 {
            tr.update(&[input(100.0, 100.0, "person", 0.9)], 0.1 * i as f64);
        }
        tr.update(&[], 0.5);
        assert_eq!(tr.at(0.6).count(), 1);
    }

    #[test]
    fn hostile_boxes_are_ignored_and_time_never_runs_back() {
        let mut tr = Tracker::new(Params::default());
        let bad = [
            Input {
                rect: [f64::NAN, 0.0, 10.0, 10.0],
                class: "x",
                score: 0.9,
            },
            Input {
                rect: [0.0, 0.0, -5.0, 10.0],
                class: "x",
                score: 0.9,
            },
            Input {
                rect: [0.0, 0.0, 5.0, 10.0],
                class: "x",
                score: f32::NAN,
            },
        ];
        tr.update(&bad, 0.0);
        tr.update(&bad, 0.1);
        assert!(tr.tracks().is_empty());
        tr.update(&[input(0.0, 0.0, "x", 0.9)], 5.0);
        tr.update(&[input(0.0, 0.0, "x", 0.9)], 1.0);
        assert_eq!(tr.tracks()[0].last_seen, 5.0);
    }
}
