//! Plane geometry in frame pixels (x right, y down): box overlap, which side of a line a point
//! is on, whether a step crosses a line segment, whether a point is in a polygon.

/// A point `[x, y]`.
pub type Point = [f64; 2];

/// The area two boxes `[x, y, w, h]` share.
pub fn intersection(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    ix.max(0.0) * iy.max(0.0)
}

/// Intersection over union of two boxes `[x, y, w, h]` (0 when either is empty).
pub fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let inter = intersection(a, b);
    if inter <= 0.0 {
        return 0.0;
    }
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// The share of a box `[x, y, w, h]` inside a frame of `[width, height]`.
pub fn share_in_frame(r: [f64; 4], frame: [f64; 2]) -> f64 {
    intersection(r, [0.0, 0.0, frame[0], frame[1]]) / (r[2] * r[3]).max(1e-9)
}

/// The part of a box `[x, y, w, h]` inside a frame of `[width, height]`: its edges moved into
/// the frame (a box wholly outside becomes a line or a point on the frame's edge).
pub fn clip_to_frame(r: [f64; 4], frame: [f64; 2]) -> [f64; 4] {
    let x0 = r[0].clamp(0.0, frame[0]);
    let y0 = r[1].clamp(0.0, frame[1]);
    let x1 = (r[0] + r[2]).clamp(x0, frame[0].max(x0));
    let y1 = (r[1] + r[3]).clamp(y0, frame[1].max(y0));
    [x0, y0, x1 - x0, y1 - y0]
}

/// Whether a box `[x, y, w, h]` reaches within `margin` of an edge of a frame of
/// `[width, height]` (or past it).
pub fn touches_frame_edge(r: [f64; 4], frame: [f64; 2], margin: f64) -> bool {
    r[0] <= margin
        || r[1] <= margin
        || r[0] + r[2] >= frame[0] - margin
        || r[1] + r[3] >= frame[1] - margin
}

/// How much of box `b` the union of `parts` (boxes `[x, y, w, h]`) covers, from 0 to 1: the
/// parts clipped to `b`, their area counted once where they overlap (on the grid of their
/// edges).
pub fn covered_share(b: [f64; 4], parts: &[[f64; 4]]) -> f64 {
    let area = b[2] * b[3];
    if area <= 0.0 {
        return 0.0;
    }
    let inside: Vec<[f64; 4]> = parts
        .iter()
        .map(|r| {
            let (x0, y0) = (r[0].max(b[0]), r[1].max(b[1]));
            let (x1, y1) = (
                (r[0] + r[2]).min(b[0] + b[2]),
                (r[1] + r[3]).min(b[1] + b[3]),
            );
            [x0, y0, x1, y1]
        })
        .filter(|r| r[2] > r[0] && r[3] > r[1])
        .collect();
    let edges = |lo: usize, hi: usize| {
        let mut v: Vec<f64> = inside.iter().flat_map(|r| [r[lo], r[hi]]).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys) = (edges(0, 2), edges(1, 3));
    let mut covered = 0.0;
    for x in xs.windows(2) {
        for y in ys.windows(2) {
            let (cx, cy) = ((x[0] + x[1]) / 2.0, (y[0] + y[1]) / 2.0);
            if inside
                .iter()
                .any(|r| r[0] <= cx && cx <= r[2] && r[1] <= cy && cy <= r[3])
            {
                covered += (x[1] - x[0]) * (y[1] - y[0]);
            }
        }
    }
    (covered / area).min(1.0)
}

/// Overlap of two boxes each grown by `buffer` times its width and height on every side (the
/// buffered IoU of C-BIoU): boxes a little apart still overlap, which matches objects that
/// moved further between two results than their own size allows plain IoU to follow.
pub fn buffered_iou(a: [f64; 4], b: [f64; 4], buffer: f64) -> f64 {
    let grow = |r: [f64; 4]| {
        let (dx, dy) = (r[2] * buffer, r[3] * buffer);
        [r[0] - dx, r[1] - dy, r[2] + 2.0 * dx, r[3] + 2.0 * dy]
    };
    iou(grow(a), grow(b))
}

/// `(b - a) x (p - a)`, whose sign says the side of the line `p` is on ([`signed_distance`]).
fn cross(a: Point, b: Point, p: Point) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// The distance of `p` from the line through `a` and `b`, signed: positive on the side from
/// which a `forward` crossing starts. With y pointing down, turning the line's direction
/// `b - a` a quarter turn counter-clockwise on screen gives the forward direction: a line drawn
/// top to bottom has forward = left to right, one drawn left to right has forward = upwards.
pub fn signed_distance(a: Point, b: Point, p: Point) -> f64 {
    let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
    if len > 0.0 { cross(a, b, p) / len } else { 0.0 }
}

/// Whether the step from `p` to `q` meets the segment from `a` to `b` (touching counts).
pub fn segments_meet(p: Point, q: Point, a: Point, b: Point) -> bool {
    let d1 = cross(a, b, p);
    let d2 = cross(a, b, q);
    let d3 = cross(p, q, a);
    let d4 = cross(p, q, b);
    let opposite = |x: f64, y: f64| (x <= 0.0 && y >= 0.0) || (x >= 0.0 && y <= 0.0);
    opposite(d1, d2) && opposite(d3, d4)
}

/// Whether `p` is inside the polygon (even-odd rule; the polygon closes itself).
pub fn inside(polygon: &[Point], p: Point) -> bool {
    let mut inside = false;
    let n = polygon.len();
    for i in 0..n {
        let (a, b) = (polygon[i], polygon[(i + 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// The distance from `p` to the nearest edge of the polygon.
pub fn edge_distance(polygon: &[Point], p: Point) -> f64 {
    let n = polygon.len();
    (0..n)
        .map(|i| segment_distance(polygon[i], polygon[(i + 1) % n], p))
        .fold(f64::INFINITY, f64::min)
}

fn segment_distance(a: Point, b: Point, p: Point) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((a[0] + t * dx - p[0]).powi(2) + (a[1] + t * dy - p[1]).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_a_box_its_parts_cover_counts_their_overlap_once() {
        let b = [0.0, 0.0, 100.0, 100.0];
        assert_eq!(covered_share(b, &[]), 0.0);
        assert_eq!(covered_share(b, &[[0.0, 0.0, 100.0, 50.0]]), 0.5);
        // Two halves overlapping by a quarter: three quarters.
        let two = [[0.0, 0.0, 100.0, 50.0], [0.0, 25.0, 100.0, 50.0]];
        assert!((covered_share(b, &two) - 0.75).abs() < 1e-9);
        // Parts reaching outside count only inside; an L of two boxes.
        let l = [[-50.0, -50.0, 100.0, 150.0], [0.0, 50.0, 200.0, 100.0]];
        assert!(
            (covered_share(b, &l) - 0.75).abs() < 1e-9,
            "{}",
            covered_share(b, &l)
        );
        assert_eq!(covered_share([0.0, 0.0, 0.0, 10.0], &two), 0.0);
    }

    #[test]
    fn overlap_of_boxes() {
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 10.0, 10.0]), 0.0);
        let half = iou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0]);
        assert!((half - 50.0 / 150.0).abs() < 1e-12);
        assert_eq!(iou([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]), 0.0);
        // Apart by a quarter of their width: no plain overlap, a buffered one.
        let (a, b) = ([0.0, 0.0, 40.0, 80.0], [50.0, 0.0, 40.0, 80.0]);
        assert_eq!(iou(a, b), 0.0);
        let buffered = buffered_iou(a, b, 0.25);
        assert!((buffered - 10.0 / 110.0).abs() < 1e-12, "{buffered}");
    }

    #[test]
    fn forward_is_left_to_right_across_a_line_drawn_downwards() {
        let (a, b) = ([640.0, 0.0], [640.0, 720.0]);
        assert!(
            signed_distance(a, b, [100.0, 360.0]) > 0.0,
            "left starts forward"
        );
        assert!(signed_distance(a, b, [900.0, 360.0]) < 0.0);
        assert!((signed_distance(a, b, [600.0, 10.0]) - 40.0).abs() < 1e-9);
        // A line drawn left to right: forward is upwards (from below to above it).
        let (a, b) = ([0.0, 300.0], [800.0, 300.0]);
        assert!(signed_distance(a, b, [400.0, 500.0]) > 0.0);
        assert!(signed_distance(a, b, [400.0, 100.0]) < 0.0);
    }

    #[test]
    fn a_box_is_clipped_to_the_frame_and_one_outside_lies_on_its_edge() {
        let frame = [1280.0, 720.0];
        assert_eq!(
            clip_to_frame([10.0, 20.0, 30.0, 40.0], frame),
            [10.0, 20.0, 30.0, 40.0]
        );
        assert_eq!(
            clip_to_frame([600.0, 640.0, 40.0, 120.0], frame),
            [600.0, 640.0, 40.0, 80.0]
        );
        assert_eq!(
            clip_to_frame([-20.0, -10.0, 40.0, 30.0], frame),
            [0.0, 0.0, 20.0, 20.0]
        );
        // Wholly below: a line on the bottom edge, under the box.
        assert_eq!(
            clip_to_frame([100.0, 800.0, 40.0, 80.0], frame),
            [100.0, 720.0, 40.0, 0.0]
        );
        assert_eq!(
            clip_to_frame([-100.0, 10.0, 40.0, 80.0], frame),
            [0.0, 10.0, 0.0, 80.0]
        );
    }

    #[test]
    fn a_step_crosses_a_segment_only_within_its_ends() {
        let (a, b) = ([640.0, 100.0], [640.0, 400.0]);
        assert!(segments_meet([600.0, 200.0], [700.0, 220.0], a, b));
        assert!(
            !segments_meet([600.0, 500.0], [700.0, 520.0], a, b),
            "below its end"
        );
        assert!(
            !segments_meet([600.0, 200.0], [630.0, 220.0], a, b),
            "short of it"
        );
        assert!(
            segments_meet([640.0, 200.0], [700.0, 200.0], a, b),
            "from on it"
        );
    }

    #[test]
    fn inside_a_polygon_and_distance_to_its_edge() {
        let square = [[0.0, 0.0], [400.0, 0.0], [400.0, 300.0], [0.0, 300.0]];
        assert!(inside(&square, [10.0, 10.0]));
        assert!(!inside(&square, [410.0, 10.0]));
        assert!(!inside(&square, [-1.0, 150.0]));
        let concave = [
            [0.0, 0.0],
            [100.0, 0.0],
            [100.0, 100.0],
            [50.0, 50.0],
            [0.0, 100.0],
        ];
        assert!(!inside(&concave, [50.0, 90.0]), "in the notch");
        assert!(inside(&concave, [50.0, 20.0]));
        assert!((edge_distance(&square, [410.0, 10.0]) - 10.0).abs() < 1e-9);
        assert!((edge_distance(&square, [200.0, 150.0]) - 150.0).abs() < 1e-9);
    }
}
