//! Which boxes of a detector result the tracker takes, and in which stage. Left out: boxes it
//! cannot use (not finite, empty), boxes under `low_score` (they go nowhere), a box that is one
//! object called twice by two classes of a group (the better-scored one goes on), and a box
//! drawn around a group of objects the same result boxes one by one (it is none of them). The
//! rest are high-score boxes (the first stage; from a threshold per class) or low-score ones
//! (the second). Pure: boxes in, their indices out.

use super::geometry::{covered_share, intersection, iou};
use super::tracker::{ClassGroups, Input};

/// Least overlap of two boxes of one class group for them to be one object called twice.
const TWIN_IOU: f64 = 0.6;

/// A part of a group's box (see [`Sorting::group_cover`]) is smaller than this share of it...
const GROUP_PART_AREA: f64 = 0.8;
/// ...lies at least this share inside it...
const GROUP_PART_INSIDE: f64 = 0.8;
/// ...and overlaps the other parts less than this (two boxes of one object are one part).
const GROUP_PARTS_APART: f64 = 0.5;
/// Most parts measured (the largest).
const GROUP_PARTS: usize = 8;

/// How the boxes of a result are sorted.
pub struct Sorting<'a, F: Fn(&str) -> f32> {
    /// Classes that are one object's.
    pub groups: &'a ClassGroups,
    /// Boxes under this are left out.
    pub low_score: f32,
    /// A class's first-stage score.
    pub high_score: F,
    /// A box is one around a group when at least two smaller boxes of the result, apart from
    /// each other and each lying mostly inside it, cover this share of it (above 1: never).
    pub group_cover: f64,
}

/// The indices of a result's boxes for the first stage (`.0`) and the second (`.1`).
pub fn sort<F: Fn(&str) -> f32>(
    inputs: &[Input<'_>],
    s: &Sorting<'_, F>,
) -> (Vec<usize>, Vec<usize>) {
    let usable: Vec<bool> = inputs
        .iter()
        .map(|d| {
            d.rect.iter().all(|v| v.is_finite())
                && d.rect[2] > 0.0
                && d.rect[3] > 0.0
                && d.score.is_finite()
        })
        .collect();
    let (mut high, mut low) = (Vec::new(), Vec::new());
    for (i, d) in inputs.iter().enumerate() {
        // (Boxes under `low_score` go nowhere: the pairwise checks are spared them.)
        if !usable[i]
            || d.score < s.low_score
            || twin_of_better(inputs, &usable, s.groups, i)
            || around_group(inputs, &usable, s, i)
        {
            continue;
        }
        if d.score >= (s.high_score)(d.class) {
            high.push(i);
        } else {
            low.push(i);
        }
    }
    (high, low)
}

/// Whether box `i` is one object called by two classes of a group at once (a box for `car` and
/// one for `truck`) and the other box is the better-scored (or, scored the same, the earlier).
fn twin_of_better(inputs: &[Input<'_>], usable: &[bool], groups: &ClassGroups, i: usize) -> bool {
    let d = &inputs[i];
    inputs.iter().enumerate().any(|(j, e)| {
        j != i
            && e.class != d.class
            && usable[j]
            && groups.same(e.class, d.class)
            && (e.score, std::cmp::Reverse(j)) > (d.score, std::cmp::Reverse(i))
            && iou(e.rect, d.rect) >= TWIN_IOU
    })
}

/// Whether box `i` is drawn around a group of objects the result boxes one by one (two cars
/// one behind the other): a track that followed it would count the group's crossing once more.
/// At most [`GROUP_PARTS`] parts are measured, so a result of many boxes costs O(n²).
fn around_group<F: Fn(&str) -> f32>(
    inputs: &[Input<'_>],
    usable: &[bool],
    s: &Sorting<'_, F>,
    i: usize,
) -> bool {
    let b = inputs[i].rect;
    let area = b[2] * b[3];
    let mut inner: Vec<[f64; 4]> = inputs
        .iter()
        .enumerate()
        .filter(|&(j, e)| {
            let a = e.rect[2] * e.rect[3];
            j != i
                && usable[j]
                && e.score >= s.low_score
                && a < GROUP_PART_AREA * area
                && intersection(e.rect, b) >= GROUP_PART_INSIDE * a
        })
        .map(|(_, e)| e.rect)
        .collect();
    inner.sort_by(|a, b| (b[2] * b[3]).total_cmp(&(a[2] * a[3])));
    let mut parts: Vec<[f64; 4]> = Vec::new();
    for r in inner {
        if parts.len() == GROUP_PARTS {
            break;
        }
        if parts.iter().all(|q| iou(*q, r) < GROUP_PARTS_APART) {
            parts.push(r);
        }
    }
    parts.len() >= 2 && covered_share(b, &parts) >= s.group_cover
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rect: [f64; 4], class: &str, score: f32) -> Input<'_> {
        Input { rect, class, score }
    }

    fn sorted(inputs: &[Input<'_>], cover: f64) -> (Vec<usize>, Vec<usize>) {
        let groups = ClassGroups::new(&[vec!["car".into(), "truck".into()]]);
        let s = Sorting {
            groups: &groups,
            low_score: 0.1,
            high_score: |c: &str| if c == "car" { 0.2 } else { 0.3 },
            group_cover: cover,
        };
        sort(inputs, &s)
    }

    #[test]
    fn boxes_go_to_the_stage_of_their_class_score_and_unusable_ones_nowhere() {
        let boxes = [
            input([0.0, 0.0, 50.0, 100.0], "person", 0.35),
            input([200.0, 0.0, 50.0, 100.0], "person", 0.25),
            input([400.0, 0.0, 120.0, 80.0], "car", 0.25),
            input([600.0, 0.0, 50.0, 100.0], "person", 0.05),
            input([f64::NAN, 0.0, 50.0, 100.0], "person", 0.9),
            input([800.0, 0.0, 0.0, 100.0], "person", 0.9),
            input([900.0, 0.0, 50.0, 100.0], "person", f32::NAN),
        ];
        assert_eq!(sorted(&boxes, 0.8), (vec![0, 2], vec![1]));
    }

    #[test]
    fn of_twins_the_better_scored_goes_on_and_a_box_around_two_others_is_left_out() {
        let car = [100.0, 100.0, 120.0, 80.0];
        let twins = [
            input(car, "truck", 0.4),
            input([102.0, 101.0, 118.0, 80.0], "car", 0.5),
            // A person on the car is no twin.
            input(car, "person", 0.6),
        ];
        assert_eq!(sorted(&twins, 0.8), (vec![1, 2], vec![]));
        // Two cars one behind the other, and a truck box around both.
        let group = [
            input([96.0, 96.0, 125.0, 108.0], "car", 0.5),
            input([210.0, 97.0, 124.0, 107.0], "car", 0.5),
            input([95.0, 95.0, 240.0, 110.0], "truck", 0.6),
        ];
        assert_eq!(sorted(&group, 0.8), (vec![0, 1], vec![]));
        assert_eq!(
            sorted(&group, 1.1),
            (vec![0, 1, 2], vec![]),
            "never, above 1"
        );
    }
}
