//! Reading, blind (no original needed): per frame, the bump-weighted mean luma of every cell,
//! minus the mean of its four neighbours (the picture is smooth at this scale, the mark is not:
//! this removes most of the picture and keeps most of the mark), summed over the frames of a
//! window per phase of the embedder's sign changes, then demodulated (every phase tried; what
//! does not change sign, a still picture, cancels).
//!
//! Decoded video carries the mark unevenly: an intra-coded picture (a key frame) holds it as it
//! was embedded, less quantisation; a predicted picture holds what motion compensation carried
//! from its references, where a moving camera has moved the mark with the content and a low
//! bitrate leaves no residual to draw it back (measured at 500 kbit/s on a pan: 0.6-0.8 of the
//! mark in key frames, 0.1-0.2 in the others). So intra pictures count [`INTRA_WEIGHT`] times in
//! the sum, and each one's difference from the picture just before it (a frame of motion apart,
//! where the sum's halves are 0.4 s apart) is a second estimate, demodulated the same way and
//! added to the first with equal weight after each is scaled to unit spread. The picture before
//! is first moved by the camera's translation between the two ([`motion::translation`]): on a
//! pan, the content's change in one frame outweighs the mark several times over, and moving it
//! back leaves mostly the mark and the codec's noise. Per coded bit, the cells that carry it are
//! correlated with their chips; the ratio to the spread across those cells is a z-score (about
//! N(0, 1) when there is no mark, or a wrong key). The code's soft decoder finds the codeword
//! that agrees best with the z-scores; a window reports an ID only when that agreement is far
//! above what the best codeword reaches on noise and the CRC checks out.

use super::layout::Layout;
use super::motion::{self, Plane};
use super::payload::{BITS, decode};

/// Agreement (mean z x sign of the decoded codeword) below which nothing is reported. On
/// unmarked video or with a wrong key the best codeword reaches about 0.65, spread 0.04 a
/// window: this is more than 6 spreads away. A mark that decodes at all agrees at 1.1 or more.
pub const MIN_CONFIDENCE: f32 = 0.9;

/// What one window showed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Found {
    /// The ID.
    pub id: String,
    /// Agreement of the coded bits' z-scores with the codeword (0.65 is noise; 2 and more is a
    /// clear mark).
    pub confidence: f32,
    /// Coded bits the code corrected.
    pub corrected: usize,
}

/// Accumulates frames of one window.
pub struct Reader {
    key: String,
    layout: Option<Layout>,
    /// Per phase bucket, per cell: the sum of the high-passed cell means.
    acc: Vec<Vec<f32>>,
    /// Frames per phase bucket.
    counts: Vec<f32>,
    frames: u32,
    /// Per phase bucket, per cell: the sum of intra pictures' differences from the picture
    /// before them.
    fresh: Vec<Vec<f32>>,
    /// The previous picture (kept across windows): its high-passed cell means and its luma
    /// (rows packed).
    prev: Option<(Vec<f32>, Vec<u8>)>,
}

/// How much more an intra-coded picture counts in the sum than a predicted one.
pub const INTRA_WEIGHT: f32 = 5.0;

impl Reader {
    /// A reader for `key`.
    pub fn new(key: &str) -> Self {
        Self {
            key: key.to_string(),
            layout: None,
            acc: vec![Vec::new(); BUCKETS],
            counts: vec![0.0; BUCKETS],
            frames: 0,
            fresh: vec![Vec::new(); BUCKETS],
            prev: None,
        }
    }

    /// Frames in the current window.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Adds a frame's luma (`width` x `height`, rows `stride` apart) shown at `time` seconds;
    /// `intra`: it was decoded from an intra-coded picture (a key frame). Raw frames, never
    /// encoded, are added as not intra.
    pub fn add(
        &mut self,
        luma: &[u8],
        stride: usize,
        width: usize,
        height: usize,
        time: f64,
        intra: bool,
    ) {
        if self
            .layout
            .as_ref()
            .is_none_or(|l| l.size != (width, height))
        {
            self.layout = Some(Layout::new(&self.key, width, height));
            self.prev = None;
            self.reset();
        }
        let Some(layout) = &self.layout else { return };
        let (cols, rows) = (layout.cols, layout.rows);
        let hp = high_passed(&cell_means(luma, stride, layout), cols, rows);
        let bucket = bucket_of(time);
        let weight = if intra { INTRA_WEIGHT } else { 1.0 };
        self.counts[bucket] += weight;
        add_scaled(&mut self.acc[bucket], &hp, weight);
        let cur = Plane {
            data: luma,
            stride,
            width,
            height,
        };
        if intra && let Some((prev_hp, prev_luma)) = &self.prev {
            // The picture before, moved as the camera moved (a pan), so that the difference
            // keeps the mark and loses the content.
            let before = Plane {
                data: prev_luma,
                stride: width,
                width,
                height,
            };
            let (dx, dy) = motion::translation(cur, before);
            let moved_hp;
            let prev_hp = if (dx, dy) == (0, 0) {
                prev_hp
            } else {
                let moved = motion::moved(before, dx, dy);
                moved_hp = high_passed(&cell_means(&moved, width, layout), cols, rows);
                &moved_hp
            };
            let fresh = &mut self.fresh[bucket];
            add_scaled(fresh, &hp, 1.0);
            add_scaled(fresh, prev_hp, -1.0);
        }
        self.prev = cur.complete().then(|| {
            let packed = (0..height)
                .flat_map(|y| &luma[y * stride..y * stride + width])
                .copied()
                .collect();
            (hp, packed)
        });
        self.frames += 1;
    }

    fn reset(&mut self) {
        self.acc
            .iter_mut()
            .for_each(|a| a.iter_mut().for_each(|v| *v = 0.0));
        self.counts.iter_mut().for_each(|c| *c = 0.0);
        self.fresh.iter_mut().for_each(Vec::clear);
        self.frames = 0;
    }

    /// Ends the window: the ID if one is clearly there, and the confidence either way.
    pub fn finish(&mut self) -> (Option<Found>, f32) {
        // The phase of the embedder's sign changes is unknown: try each, keep the clearest.
        let mut best: (Option<Found>, f32) = (None, 0.0);
        for phase in 0..BUCKETS {
            let r = self.decide(phase);
            if r.0.is_some() {
                best = r;
                break;
            }
            if r.1 > best.1 {
                best = r;
            }
        }
        self.reset();
        best
    }

    fn decide(&self, phase: usize) -> (Option<Found>, f32) {
        let Some(layout) = &self.layout else {
            return (None, 0.0);
        };
        if self.frames == 0 {
            return (None, 0.0);
        }
        // Demodulate: the embedder's sign in each bucket for this phase, less its frame-weighted
        // mean so that whatever does not change sign (a still picture) cancels exactly. The
        // intra pictures' differences need no such mean: a still picture is gone from them.
        let signs: Vec<f32> = (0..BUCKETS).map(|k| sign_at(k + phase)).collect();
        let total: f32 = self.counts.iter().sum();
        let mean = signs
            .iter()
            .zip(&self.counts)
            .map(|(w, n)| w * n)
            .sum::<f32>()
            / total.max(1.0);
        let weights: Vec<f32> = signs.iter().map(|w| w - mean).collect();
        let n_cells = layout.cols * layout.rows;
        let mut demod = demodulate(&self.acc, &weights, n_cells);
        let fresh = demodulate(&self.fresh, &signs, n_cells);
        // Each estimate scaled to unit spread, then added (an all-zero one adds nothing).
        let (a, b) = (rms(&demod), rms(&fresh));
        if b > 0.0 {
            let a = if a > 0.0 { 1.0 / a } else { 0.0 };
            for (d, f) in demod.iter_mut().zip(&fresh) {
                *d = *d * a + f / b;
            }
        }
        let (mut s, mut sq, mut n) = ([0f64; BITS], [0f64; BITS], [0f64; BITS]);
        for (c, a) in demod.iter().enumerate() {
            let t = f64::from(a * layout.chips[c]);
            let b = layout.bit_of[c] as usize;
            s[b] += t;
            sq[b] += t * t;
            n[b] += 1.0;
        }
        let z: [f32; BITS] = std::array::from_fn(|b| {
            // A frame too small to give every coded bit cells says nothing about that bit.
            if n[b] < 2.0 {
                return 0.0;
            }
            let mean = s[b] / n[b].max(1.0);
            let var = (sq[b] / n[b].max(1.0) - mean * mean).max(1e-12);
            (s[b] / (n[b] * var).sqrt()) as f32
        });
        let decoded = decode(&z);
        let confidence = decoded.agreement;
        match decoded.id {
            Some(id) if confidence >= MIN_CONFIDENCE => {
                let corrected = decoded.corrected;
                (
                    Some(Found {
                        id,
                        confidence,
                        corrected,
                    }),
                    confidence,
                )
            }
            _ => (None, confidence),
        }
    }
}

/// The sum over buckets of each bucket's cells times its weight (buckets without cells skipped).
fn demodulate(buckets: &[Vec<f32>], weights: &[f32], n_cells: usize) -> Vec<f32> {
    let mut out = vec![0f32; n_cells];
    for (acc, w) in buckets.iter().zip(weights) {
        if acc.len() == n_cells {
            add_scaled(&mut out, acc, *w);
        }
    }
    out
}

/// `acc += k * v`, `acc` grown to `v`'s length first.
fn add_scaled(acc: &mut Vec<f32>, v: &[f32], k: f32) {
    if acc.len() < v.len() {
        acc.resize(v.len(), 0.0);
    }
    acc.iter_mut().zip(v).for_each(|(a, x)| *a += k * x);
}

/// Root mean square.
fn rms(v: &[f32]) -> f32 {
    (v.iter().map(|x| x * x).sum::<f32>() / v.len().max(1) as f32).sqrt()
}

/// Each cell's mean less the mean of its four neighbours (the edges repeat the border cells).
fn high_passed(means: &[f32], cols: usize, rows: usize) -> Vec<f32> {
    let mut hp = vec![0f32; cols * rows];
    for r in 0..rows {
        for c in 0..cols {
            let at = |rr: usize, cc: usize| means[rr * cols + cc];
            let up = at(r.saturating_sub(1), c);
            let down = at((r + 1).min(rows - 1), c);
            let left = at(r, c.saturating_sub(1));
            let right = at(r, (c + 1).min(cols - 1));
            hp[r * cols + c] = at(r, c) - (up + down + left + right) / 4.0;
        }
    }
    hp
}

/// Phase buckets over one period of the embedder's sign changes.
const BUCKETS: usize = 20;

/// The bucket of a frame shown at `time` seconds.
fn bucket_of(time: f64) -> usize {
    let period_ms = (2000.0 * super::embed::SIGN_SEGMENT_S) as i64;
    let ms = (time * 1000.0).round() as i64;
    (ms.rem_euclid(period_ms) as usize * BUCKETS / period_ms as usize).min(BUCKETS - 1)
}

/// The embedder's sign in bucket `k` (taken modulo a period): + in the first half.
fn sign_at(k: usize) -> f32 {
    if k % BUCKETS < BUCKETS / 2 { 1.0 } else { -1.0 }
}

/// Bump-weighted mean luma of every cell (every other pixel and row).
fn cell_means(luma: &[u8], stride: usize, layout: &Layout) -> Vec<f32> {
    let (w, h) = layout.size;
    let n = layout.cols * layout.rows;
    let (mut sum, mut weight) = (vec![0f32; n], vec![0f32; n]);
    for y in (0..h).step_by(2) {
        let Some(row) = luma.get(y * stride..y * stride + w) else {
            break;
        };
        let base = layout.y.cell[y] as usize * layout.cols;
        let wy = layout.y.weight[y];
        for x in (0..w).step_by(2) {
            let c = base + layout.x.cell[x] as usize;
            let k = layout.x.weight[x] * wy;
            sum[c] += k * f32::from(row[x]);
            weight[c] += k;
        }
    }
    sum.iter()
        .zip(&weight)
        .map(|(s, k)| s / k.max(1e-6))
        .collect()
}
