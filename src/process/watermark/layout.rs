//! Where the mark goes, decided by the key: the frame is divided into a grid of cells (220
//! across, rows in proportion, so the same grid is found at any resolution of the same
//! picture); each cell carries one coded bit of the payload with a sign (a chip), both drawn from a
//! generator seeded with SHA-256 of the key. Without the key the cells of a bit and their signs
//! are unknown: the mark can be neither read nor written.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};

use super::payload::BITS;

/// Cells across the frame.
pub const COLS: usize = 220;

/// Cell index and weight (a half-sine bump, 0 at the cell's edges, 1 in its middle) of each
/// pixel along one axis.
pub struct Axis {
    /// The cell of each pixel.
    pub cell: Vec<u16>,
    /// The bump's weight at each pixel.
    pub weight: Vec<f32>,
}

impl Axis {
    fn new(len: usize, cells: usize) -> Self {
        let mut cell = Vec::with_capacity(len);
        let mut weight = Vec::with_capacity(len);
        for c in 0..cells {
            let (a, b) = (c * len / cells, (c + 1) * len / cells);
            let n = (b - a).max(1) as f32;
            for i in a..b {
                cell.push(c as u16);
                weight.push((std::f32::consts::PI * ((i - a) as f32 + 0.5) / n).sin());
            }
        }
        Self { cell, weight }
    }
}

/// The key's layout for one frame size.
pub struct Layout {
    /// Cells across.
    pub cols: usize,
    /// Cells down.
    pub rows: usize,
    /// Per cell: +1 or -1.
    pub chips: Vec<f32>,
    /// Per cell: the payload bit it carries.
    pub bit_of: Vec<u8>,
    /// Horizontal cells and weights.
    pub x: Axis,
    /// Vertical cells and weights.
    pub y: Axis,
    /// Frame width and height it was made for.
    pub size: (usize, usize),
}

impl Layout {
    /// The layout of `key` for a `width` x `height` frame.
    pub fn new(key: &str, width: usize, height: usize) -> Self {
        let cols = COLS.min(width.max(1));
        let rows = ((COLS * height) as f64 / width.max(1) as f64)
            .round()
            .clamp(1.0, height.max(1) as f64) as usize;
        let mut h = Sha256::new();
        h.update(b"framegate watermark v2\0");
        h.update(key.as_bytes());
        h.update((cols as u32).to_be_bytes());
        h.update((rows as u32).to_be_bytes());
        let mut rng = StdRng::from_seed(h.finalize().into());
        let n = cols * rows;
        let chips = (0..n)
            .map(|_| {
                if rand::Rng::random::<bool>(&mut rng) {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let bit_of = order.into_iter().map(|i| (i % BITS) as u8).collect();
        Self {
            cols,
            rows,
            chips,
            bit_of,
            x: Axis::new(width, cols),
            y: Axis::new(height, rows),
            size: (width, height),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_decides_the_layout_and_the_grid_follows_the_picture() {
        let a = Layout::new("a secret phrase", 1280, 720);
        let b = Layout::new("a secret phrase", 640, 360);
        let c = Layout::new("another phrase!", 1280, 720);
        assert_eq!((a.cols, a.rows), (220, 124));
        assert_eq!((a.chips.clone(), a.bit_of.clone()), (b.chips, b.bit_of));
        assert_ne!(a.chips, c.chips);
        // Every bit has its share of cells.
        let mut per_bit = [0; BITS];
        for b in &a.bit_of {
            per_bit[*b as usize] += 1;
        }
        assert!(per_bit.iter().all(|n| *n >= 186), "{per_bit:?}");
        assert_eq!(a.x.cell.len(), 1280);
        assert_eq!(*a.y.cell.last().unwrap_or(&0) as usize, a.rows - 1);
    }
}
