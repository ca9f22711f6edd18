//! Turning a detection model's output tensor into boxes, for the two common layouts:
//! CenterNet-style `[1, N, 6]` rows and YOLO v5/v8/11 exports (with NMS).

/// A box in the model's input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawBox {
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
    /// Confidence, 0 to 1.
    pub score: f32,
    /// Class index.
    pub class: usize,
}

/// `[1, N, 6]` rows of x1, y1, x2, y2, score, class; rows under `min_score` are dropped.
pub fn centernet(dims: &[i64], data: &[f32], min_score: f32) -> anyhow::Result<Vec<RawBox>> {
    anyhow::ensure!(
        dims.len() == 3 && dims[2] == 6,
        "a centernet output is [1, N, 6], this one is {dims:?}"
    );
    Ok(data
        .chunks_exact(6)
        .filter(|r| r[4] >= min_score && r[4].is_finite() && r[5] >= 0.0)
        .map(|r| RawBox {
            x1: r[0],
            y1: r[1],
            x2: r[2],
            y2: r[3],
            score: r[4],
            class: r[5] as usize,
        })
        .collect())
}

/// A YOLO output: `[1, 4 + C, N]` (v8/11: centre x, centre y, width, height, then C class
/// scores, one column per candidate) or `[1, N, 5 + C]` (v5: the same per row with an
/// objectness score before the classes). Keeps the best class of each candidate above
/// `min_score`, then applies per-class NMS at `iou`.
pub fn yolo(dims: &[i64], data: &[f32], min_score: f32, iou: f32) -> anyhow::Result<Vec<RawBox>> {
    anyhow::ensure!(
        dims.len() == 3 && dims[1] > 4 && dims[2] > 4 && dims[1] != dims[2],
        "a yolo output is [1, 4 + classes, N] or [1, N, 5 + classes], this one is {dims:?}"
    );
    let (a, b) = (dims[1] as usize, dims[2] as usize);
    anyhow::ensure!(
        data.len() >= a * b,
        "the output holds fewer values than {dims:?}"
    );
    let mut boxes = Vec::new();
    let mut push = |cx: f32, cy: f32, w: f32, h: f32, score: f32, class: usize| {
        if score >= min_score && score.is_finite() {
            boxes.push(RawBox {
                x1: cx - w / 2.0,
                y1: cy - h / 2.0,
                x2: cx + w / 2.0,
                y2: cy + h / 2.0,
                score,
                class,
            });
        }
    };
    if a < b {
        // v8/11: transposed, one candidate per column.
        let n = b;
        for i in 0..n {
            let at = |row: usize| data[row * n + i];
            let (class, score) = best((4..a).map(at));
            push(at(0), at(1), at(2), at(3), score, class);
        }
    } else {
        // v5: one candidate per row, objectness then class scores.
        for r in data.chunks_exact(b) {
            let (class, score) = best(r[5..].iter().copied());
            push(r[0], r[1], r[2], r[3], score * r[4], class);
        }
    }
    Ok(nms(boxes, iou))
}

/// Index and value of the largest score.
fn best(scores: impl Iterator<Item = f32>) -> (usize, f32) {
    scores.enumerate().fold(
        (0, f32::MIN),
        |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
    )
}

/// Non-maximum suppression per class: of two boxes of a class overlapping more than `iou`,
/// the weaker goes. The result is sorted by score, best first.
pub fn nms(mut boxes: Vec<RawBox>, iou: f32) -> Vec<RawBox> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<RawBox> = Vec::new();
    for b in boxes {
        if kept
            .iter()
            .all(|k| k.class != b.class || overlap(k, &b) <= iou)
        {
            kept.push(b);
        }
    }
    kept
}

/// Intersection over union of two boxes.
pub fn overlap(a: &RawBox, b: &RawBox) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = w * h;
    let area = |r: &RawBox| (r.x2 - r.x1).max(0.0) * (r.y2 - r.y1).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centernet_rows() {
        let data = [
            10.0, 20.0, 110.0, 220.0, 0.9, 0.0, //
            5.0, 5.0, 50.0, 50.0, 0.2, 16.0, //
            1.0, 2.0, 3.0, 4.0, 0.5, 2.0,
        ];
        let boxes = centernet(&[1, 3, 6], &data, 0.35).expect("decode");
        assert_eq!(boxes.len(), 2);
        assert_eq!(boxes[0].class, 0);
        assert_eq!((boxes[0].x1, boxes[0].y2), (10.0, 220.0));
        assert_eq!(boxes[1].class, 2);
        assert!(centernet(&[1, 3, 5], &data, 0.35).is_err());
    }

    /// A v8 output with 3 classes and 4 candidates: two overlapping boxes of class 1 (NMS keeps
    /// the stronger), one of class 2 overlapping them (kept: another class), one weak.
    fn v8_output() -> (Vec<i64>, Vec<f32>) {
        let candidates = [
            // cx, cy, w, h, scores of classes 0..3
            [100.0, 100.0, 50.0, 80.0, 0.1, 0.80, 0.0],
            [104.0, 102.0, 50.0, 80.0, 0.1, 0.70, 0.0],
            [100.0, 100.0, 50.0, 80.0, 0.0, 0.10, 0.60],
            [300.0, 300.0, 20.0, 20.0, 0.2, 0.10, 0.1],
        ];
        // Real exports have thousands of candidates (more columns than rows): pad with empty ones.
        let n = 10;
        let mut data = vec![0.0; 7 * n];
        for (i, c) in candidates.iter().enumerate() {
            for (row, v) in c.iter().enumerate() {
                data[row * n + i] = *v;
            }
        }
        (vec![1, 7, n as i64], data)
    }

    #[test]
    fn yolo_v8_with_nms() {
        let (dims, data) = v8_output();
        let boxes = yolo(&dims, &data, 0.25, 0.45).expect("decode");
        assert_eq!(boxes.len(), 2, "{boxes:?}");
        assert_eq!((boxes[0].class, boxes[0].score), (1, 0.80));
        assert_eq!(
            (boxes[0].x1, boxes[0].y1, boxes[0].x2, boxes[0].y2),
            (75.0, 60.0, 125.0, 140.0)
        );
        assert_eq!((boxes[1].class, boxes[1].score), (2, 0.60));
        // Without the overlap rule the second class-1 box comes back.
        assert_eq!(yolo(&dims, &data, 0.25, 0.99).expect("decode").len(), 3);
    }

    #[test]
    fn yolo_v5_rows_use_objectness() {
        // Two candidates, 2 classes: objectness 0.5 x class 0.9 = 0.45 kept; 0.2 x 0.9 dropped.
        let data = [
            50.0, 50.0, 20.0, 20.0, 0.5, 0.9, 0.1, //
            80.0, 80.0, 20.0, 20.0, 0.2, 0.9, 0.1, //
            10.0, 10.0, 4.0, 4.0, 0.1, 0.1, 0.1, //
            10.0, 10.0, 4.0, 4.0, 0.1, 0.1, 0.1, //
            10.0, 10.0, 4.0, 4.0, 0.1, 0.1, 0.1, //
            10.0, 10.0, 4.0, 4.0, 0.1, 0.1, 0.1, //
            10.0, 10.0, 4.0, 4.0, 0.1, 0.1, 0.1, //
            10.0, 10.0, 4.0, 4.0, 0.1, 0.1, 0.1,
        ];
        let boxes = yolo(&[1, 8, 7], &data, 0.25, 0.45).expect("decode");
        assert_eq!(boxes.len(), 1);
        assert!((boxes[0].score - 0.45).abs() < 1e-6);
        assert_eq!((boxes[0].x1, boxes[0].class), (40.0, 0));
    }

    #[test]
    fn overlap_of_boxes() {
        let a = RawBox {
            x1: 0.0,
            y1: 0.0,
            x2: 10.0,
            y2: 10.0,
            score: 1.0,
            class: 0,
        };
        let b = RawBox {
            x1: 5.0,
            y1: 0.0,
            x2: 15.0,
            y2: 10.0,
            ..a
        };
        assert!((overlap(&a, &b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(
            overlap(
                &a,
                &RawBox {
                    x1: 20.0,
                    x2: 30.0,
                    ..a
                }
            ),
            0.0
        );
    }
}
