//! Embedding: each cell of the layout gets a smooth bump (a half-sine in x times one in y, no
//! edges to see) added to its luma, of sign chip x bit and of a height that follows the cell's
//! texture: low on flat areas, where the eye would see it, higher where detail masks it. With
//! `auto` strength the heights are scaled down when the frame's luma PSNR would fall under
//! 43.5 dB.

use super::layout::Layout;
use super::payload::BITS;

/// Strength `auto` starts from.
pub const AUTO_STRENGTH: f32 = 2.4;
/// Lowest luma PSNR `auto` allows, dB.
pub const MIN_PSNR_DB: f32 = 43.5;
/// The mark changes sign every this many seconds of video time: a still picture then cancels
/// out at the reader (which demodulates), while the mark adds up.
pub const SIGN_SEGMENT_S: f64 = 0.4;

/// The mark's sign at `time` seconds.
pub fn sign_at(time: f64) -> f32 {
    // Whole milliseconds: frame times like 0.4 s must not fall on either side by rounding.
    let ms = (time * 1000.0).round() as i64;
    if ms.div_euclid((SIGN_SEGMENT_S * 1000.0) as i64) % 2 == 0 {
        1.0
    } else {
        -1.0
    }
}

/// Mean square of the bump over a cell (a product of two half-sines squared: 1/2 x 1/2).
const BUMP_ENERGY: f32 = 0.25;

/// The unsigned height of each cell's bump, from the cell's texture.
pub fn heights(luma: &[u8], stride: usize, layout: &Layout, strength: f32, auto: bool) -> Vec<f32> {
    let (w, h) = layout.size;
    let n = layout.cols * layout.rows;
    // Texture: standard deviation of each cell's luma, from every other pixel and row.
    let (mut sum, mut sq, mut count) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    for y in (0..h).step_by(2) {
        let row = &luma[y * stride..y * stride + w];
        let base = layout.y.cell[y] as usize * layout.cols;
        for x in (0..w).step_by(2) {
            let c = base + layout.x.cell[x] as usize;
            let v = f32::from(row[x]);
            sum[c] += v;
            sq[c] += v * v;
            count[c] += 1.0;
        }
    }
    let mut amp: Vec<f32> = (0..n)
        .map(|c| {
            let k = count[c].max(1.0);
            let mean = sum[c] / k;
            let sd = (sq[c] / k - mean * mean).max(0.0).sqrt();
            (strength * (0.5 + 0.2 * sd)).clamp(0.7, 5.0 * strength)
        })
        .collect();
    if auto {
        let mse = amp.iter().map(|a| a * a).sum::<f32>() / n as f32 * BUMP_ENERGY;
        let limit = 255.0f32 * 255.0 / 10f32.powf(MIN_PSNR_DB / 10.0);
        if mse > limit {
            let scale = (limit / mse).sqrt();
            amp.iter_mut().for_each(|a| *a *= scale);
        }
    }
    amp
}

/// Gives each cell's height its sign: chip x bit x the mark's sign at this time.
pub fn sign(amp: &mut [f32], layout: &Layout, bits: &[bool; BITS], time_sign: f32) {
    for (c, a) in amp.iter_mut().enumerate() {
        let bit = bits[layout.bit_of[c] as usize];
        *a *= layout.chips[c] * if bit { time_sign } else { -time_sign };
    }
}

/// Adds the mark to the luma plane in place.
pub fn apply(luma: &mut [u8], stride: usize, layout: &Layout, amp: &[f32]) {
    let (w, h) = layout.size;
    // The horizontal profile of a row of cells, made once per row of cells; each pixel row
    // then only scales it by its own vertical weight (a loop the compiler vectorises).
    let mut profile = vec![0f32; w];
    let mut profile_row = usize::MAX;
    for y in 0..h {
        let cell_row = layout.y.cell[y] as usize;
        if cell_row != profile_row {
            let base = cell_row * layout.cols;
            for (x, p) in profile.iter_mut().enumerate() {
                *p = amp[base + layout.x.cell[x] as usize] * layout.x.weight[x];
            }
            profile_row = cell_row;
        }
        let wy = layout.y.weight[y];
        let Some(row) = luma.get_mut(y * stride..y * stride + w) else {
            break;
        };
        for (p, r) in row.iter_mut().zip(&profile) {
            *p = (f32::from(*p) + r * wy + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
}
