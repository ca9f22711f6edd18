//! The camera's motion between two consecutive frames, as one translation in whole pixels: what
//! the reader needs to take the previous frame's picture away from a key frame's (a pan moves
//! textured content several pixels a frame, far more than the mark's cells can ignore).
//!
//! Coarse to fine: a search of ±[`COARSE_RANGE`] steps on both frames reduced 4x (box means),
//! then ±[`FINE_RANGE`] pixels around it at full size on every other pixel and row. Both
//! minimise the mean absolute difference over the frames' inner part; no shift at all is always
//! a candidate, so a zoom, a cut or a still picture gives (0, 0) or what fits better.

/// Reduction of the coarse search.
const SCALE: usize = 4;
/// Coarse search range, in reduced pixels (±32 full pixels a frame: a fast pan).
const COARSE_RANGE: isize = 8;
/// Fine search range around the coarse answer, in full pixels.
const FINE_RANGE: isize = 3;

/// A grey picture: `width` x `height` bytes, rows `stride` apart.
#[derive(Clone, Copy)]
pub struct Plane<'a> {
    /// The bytes.
    pub data: &'a [u8],
    /// Bytes between rows.
    pub stride: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in rows.
    pub height: usize,
}

impl Plane<'_> {
    /// Whether `data` holds every row.
    pub fn complete(&self) -> bool {
        self.height == 0
            || self.stride >= self.width
                && self
                    .data
                    .len()
                    .checked_sub(self.width)
                    .is_some_and(|n| n / self.stride >= self.height - 1)
    }
}

/// The translation `(dx, dy)` that best maps `prev` onto `cur`: `cur(x, y) ≈ prev(x - dx, y -
/// dy)`. `(0, 0)` for frames too small to search or of different sizes.
pub fn translation(cur: Plane, prev: Plane) -> (isize, isize) {
    let (w, h) = (cur.width, cur.height);
    let margin = (COARSE_RANGE as usize + 1) * SCALE + FINE_RANGE as usize;
    if (w, h) != (prev.width, prev.height)
        || w < 4 * margin
        || h < 4 * margin
        || !cur.complete()
        || !prev.complete()
    {
        return (0, 0);
    }
    let (a, b) = (reduce(cur), reduce(prev));
    let (rw, rh) = (w / SCALE, h / SCALE);
    let m = COARSE_RANGE as usize;
    let coarse = best_shift(
        (-COARSE_RANGE..=COARSE_RANGE)
            .flat_map(|dy| (-COARSE_RANGE..=COARSE_RANGE).map(move |dx| (dx, dy))),
        |dx, dy| {
            sad(m..rw - m, m..rh - m, 1, |x, y| {
                (a[y * rw + x], b[shifted(y, dy) * rw + shifted(x, dx)])
            })
        },
    );
    let (cx, cy) = (coarse.0 * SCALE as isize, coarse.1 * SCALE as isize);
    let fine = (-FINE_RANGE..=FINE_RANGE)
        .flat_map(|dy| (-FINE_RANGE..=FINE_RANGE).map(move |dx| (cx + dx, cy + dy)))
        .chain([(0, 0)]);
    best_shift(fine, |dx, dy| {
        sad(margin..w - margin, margin..h - margin, 2, |x, y| {
            (
                cur.data[y * cur.stride + x],
                prev.data[shifted(y, dy) * prev.stride + shifted(x, dx)],
            )
        })
    })
}

/// The plane moved by `(dx, dy)`, rows packed: `out(x, y) = p(x - dx, y - dy)`, the edge pixels
/// repeated where that falls outside. Needs a [complete](Plane::complete) plane.
pub fn moved(p: Plane, dx: isize, dy: isize) -> Vec<u8> {
    let clamp = |i: usize, d: isize, n: usize| {
        (i as isize - d).clamp(0, n.saturating_sub(1) as isize) as usize
    };
    let cols: Vec<usize> = (0..p.width).map(|x| clamp(x, dx, p.width)).collect();
    let mut out = Vec::with_capacity(p.width * p.height);
    for y in 0..p.height {
        let row = &p.data[clamp(y, dy, p.height) * p.stride..];
        out.extend(cols.iter().map(|x| row[*x]));
    }
    out
}

/// `i - d`, for an `i` at least the search's margin from the edge.
fn shifted(i: usize, d: isize) -> usize {
    i.wrapping_add_signed(-d)
}

/// The candidate with the least cost (the first of equals).
fn best_shift(
    candidates: impl Iterator<Item = (isize, isize)>,
    cost: impl Fn(isize, isize) -> u64,
) -> (isize, isize) {
    candidates
        .map(|(dx, dy)| (cost(dx, dy), dx, dy))
        .min_by_key(|c| c.0)
        .map_or((0, 0), |c| (c.1, c.2))
}

/// Sum of absolute differences of the pixel pairs `pair(x, y)` over a grid.
fn sad<T: Into<i32>>(
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
    step: usize,
    pair: impl Fn(usize, usize) -> (T, T),
) -> u64 {
    let mut total = 0u64;
    for y in ys.step_by(step) {
        for x in xs.clone().step_by(step) {
            let (p, q) = pair(x, y);
            total += u64::from((p.into() - q.into()).unsigned_abs());
        }
    }
    total
}

/// The plane reduced `SCALE` times each way (box means; partial blocks at the edges dropped).
fn reduce(p: Plane) -> Vec<u16> {
    let (rw, rh) = (p.width / SCALE, p.height / SCALE);
    let mut out = vec![0u16; rw * rh];
    for y in 0..rh * SCALE {
        let row = &p.data[y * p.stride..y * p.stride + rw * SCALE];
        let dst = &mut out[(y / SCALE) * rw..(y / SCALE + 1) * rw];
        for (d, block) in dst.iter_mut().zip(row.chunks_exact(SCALE)) {
            *d += block.iter().map(|v| u16::from(*v)).sum::<u16>();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A textured picture (blobs and grain) seen through a window at `(ox, oy)`.
    fn view(ox: usize, oy: usize, w: usize, h: usize) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (cw, ch) = (w + 100, h + 100);
        let canvas: Vec<u8> = (0..cw * ch).map(|_| rng.random_range(0..40)).collect();
        let blob = |x: usize, y: usize| ((x / 9 * 31 + y / 7 * 17) % 120) as u8;
        (0..h)
            .flat_map(|y| {
                let canvas = &canvas;
                (0..w).map(move |x| {
                    let (cx, cy) = (x + ox, y + oy);
                    blob(cx, cy) + canvas[cy * cw + cx]
                })
            })
            .collect()
    }

    fn whole(data: &[u8], width: usize, height: usize) -> Plane<'_> {
        Plane {
            data,
            stride: width,
            width,
            height,
        }
    }

    #[test]
    fn a_pan_is_found_to_the_pixel_and_a_still_picture_gives_none() {
        let (w, h) = (320, 180);
        let prev = &view(50, 50, w, h);
        // The camera moves right and down by (7, 3): the content moves by (-7, -3).
        for (dx, dy) in [(-7isize, -3isize), (5, 0), (0, 0), (-19, 11)] {
            let cur = &view((50 - dx) as usize, (50 - dy) as usize, w, h);
            assert_eq!(translation(whole(cur, w, h), whole(prev, w, h)), (dx, dy));
        }
        // Too small, or sizes that differ: no search.
        let small = view(0, 0, 40, 30);
        let p = whole(&small, 40, 30);
        assert_eq!(translation(p, p), (0, 0));
        assert_eq!(translation(whole(prev, w, h), p), (0, 0));
        // A plane whose bytes end early is not read past its end.
        let short = Plane {
            data: &prev[..prev.len() - 1],
            ..whole(prev, w, h)
        };
        assert_eq!(translation(short, whole(prev, w, h)), (0, 0));
    }

    #[test]
    fn a_moved_plane_repeats_its_edges() {
        let p = Plane {
            data: &[1, 2, 3, 0, 4, 5, 6, 0],
            stride: 4,
            width: 3,
            height: 2,
        };
        assert_eq!(moved(p, 0, 0), [1, 2, 3, 4, 5, 6]);
        assert_eq!(moved(p, 1, 0), [1, 1, 2, 4, 4, 5]);
        assert_eq!(moved(p, -1, 1), [2, 3, 3, 2, 3, 3]);
        assert_eq!(moved(p, 9, -9), [4, 4, 4, 4, 4, 4]);
    }
}
