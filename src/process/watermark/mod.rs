//! The `watermark` processor: a 7-character ID embedded invisibly in the luma of every frame,
//! before encoding, placed by a secret key; and the blind reader that finds it again in a
//! recording (`framegate watermark read`). See `docs/decisions/0014-watermark.md` for the
//! method and docs/benchmarks.md for what it survives.

mod embed;
mod layout;
mod motion;
mod payload;
mod read;

use std::sync::{Arc, Mutex};

use crate::config::{WatermarkConfig, WatermarkStrength, watermark_id_error};
use crate::frame::Frame;

use super::Processor;
use crate::supervise::lock;

pub use embed::{AUTO_STRENGTH, MIN_PSNR_DB, apply, heights, sign};
pub use layout::Layout;
pub use payload::{BITS, decode, encode};
pub use read::{Found, MIN_CONFIDENCE, Reader};

/// The ID a running watermark embeds, changeable at run time.
pub struct WatermarkHandle {
    id: Mutex<String>,
}

impl WatermarkHandle {
    /// The ID embedded now.
    pub fn id(&self) -> String {
        lock(&self.id).clone()
    }

    /// Embeds `id` from the next frame on.
    pub fn set_id(&self, id: &str) -> Result<(), String> {
        if let Some(e) = watermark_id_error(id) {
            return Err(e);
        }
        *lock(&self.id) = id.to_string();
        Ok(())
    }
}

/// Embeds the ID in every frame.
pub struct Watermark {
    key: String,
    strength: WatermarkStrength,
    handle: Arc<WatermarkHandle>,
    bits: (String, [bool; BITS]),
    layout: Option<Layout>,
    heights: Vec<f32>,
    frames: u64,
}

/// Frames between two measurements of the cells' texture.
const HEIGHTS_EVERY: u64 = 5;

impl Watermark {
    /// A watermark with these settings.
    pub fn new(config: &WatermarkConfig) -> Self {
        Self {
            // Checked when the config was; a key file emptied since gives an empty key,
            // which marks nothing readable.
            key: config.resolved_key().unwrap_or_default(),
            strength: config.strength,
            handle: Arc::new(WatermarkHandle {
                id: Mutex::new(config.id.clone()),
            }),
            bits: (config.id.clone(), encode(&config.id)),
            layout: None,
            heights: Vec::new(),
            frames: 0,
        }
    }

    /// The handle that changes its ID.
    pub fn handle(&self) -> Arc<WatermarkHandle> {
        self.handle.clone()
    }
}

impl Processor for Watermark {
    fn name(&self) -> &'static str {
        "watermark"
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let id = self.handle.id();
        if id != self.bits.0 {
            self.bits = (id.clone(), encode(&id));
        }
        // Video time (the stream's own timestamps): the reader sees the same clock.
        let time = frame
            .buffer()
            .pts()
            .map_or(frame.meta.seq as f64 / 25.0, |p| p.nseconds() as f64 / 1e9);
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let mut canvas = frame.canvas()?;
        let (luma, stride) = canvas.luma_mut();
        self.mark_luma(luma, stride, w, h, time);
        Ok(())
    }
}

impl Watermark {
    /// Marks a luma plane (`width` x `height`, rows `stride` apart) shown at `time` seconds:
    /// what [`Processor::process`] does to every frame, open to benchmarks.
    pub fn mark_luma(&mut self, luma: &mut [u8], stride: usize, w: usize, h: usize, time: f64) {
        if self.layout.as_ref().is_none_or(|l| l.size != (w, h)) {
            self.layout = Some(Layout::new(&self.key, w, h));
        }
        let Some(layout) = &self.layout else {
            return;
        };
        let (strength, auto) = match self.strength {
            WatermarkStrength::Auto => (AUTO_STRENGTH, true),
            WatermarkStrength::Fixed(s) => (s, false),
        };
        // Texture changes slowly: the heights are measured on every few frames only.
        if self.frames.is_multiple_of(HEIGHTS_EVERY)
            || self.heights.len() != layout.cols * layout.rows
        {
            self.heights = heights(luma, stride, layout, strength, auto);
        }
        self.frames += 1;
        let mut amp = self.heights.clone();
        sign(&mut amp, layout, &self.bits.1, embed::sign_at(time));
        apply(luma, stride, layout, &amp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A textured picture that moves each frame (a pan over random blobs with fine grain).
    fn scene(w: usize, h: usize, t: usize) -> Vec<u8> {
        const BLOB: usize = 24;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let bw = (w + 400) / BLOB + 1;
        let blobs: Vec<u8> = (0..bw * (h / BLOB + 1))
            .map(|_| rng.random_range(60..180))
            .collect();
        (0..h)
            .flat_map(|y| {
                let blobs = &blobs;
                (0..w).map(move |x| {
                    let grain = ((x * 7 + y * 13 + t * 5) % 11) as u8;
                    blobs[(y / BLOB) * bw + (x + 6 * t) / BLOB] + grain
                })
            })
            .collect()
    }

    fn mark(frame: &mut [u8], w: usize, h: usize, key: &str, id: &str, time: f64) {
        let layout = Layout::new(key, w, h);
        let mut amp = heights(frame, w, &layout, AUTO_STRENGTH, true);
        sign(&mut amp, &layout, &encode(id), embed::sign_at(time));
        apply(frame, w, &layout, &amp);
    }

    fn read(key: &str, frames: &[Vec<u8>], w: usize, h: usize) -> (Option<Found>, f32) {
        let mut r = Reader::new(key);
        for (t, f) in frames.iter().enumerate() {
            r.add(f, w, w, h, t as f64 / 25.0, false);
        }
        r.finish()
    }

    #[test]
    fn marks_are_faint_and_read_back_with_the_key_only() {
        let (w, h) = (640, 360);
        let clean: Vec<Vec<u8>> = (0..50).map(|t| scene(w, h, t)).collect();
        let mut marked = clean.clone();
        for (t, f) in marked.iter_mut().enumerate() {
            mark(f, w, h, "a secret phrase", "CAM0042", t as f64 / 25.0);
        }
        let mse: f64 = marked[0]
            .iter()
            .zip(&clean[0])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            / (w * h) as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse).log10();
        assert!(psnr >= 43.0, "PSNR {psnr:.1} dB");

        let (found, confidence) = read("a secret phrase", &marked, w, h);
        assert_eq!(
            found.map(|f| f.id).as_deref(),
            Some("CAM0042"),
            "confidence {confidence}"
        );
        // The wrong key and unmarked video: nothing, and a confidence at noise level.
        for (key, frames) in [("another phrase", &marked), ("a secret phrase", &clean)] {
            let (found, confidence) = read(key, frames, w, h);
            assert_eq!(found, None);
            assert!(confidence < 0.85, "{key}: {confidence}");
        }
    }

    /// What a codec at a low bitrate leaves of the mark on a moving picture, taken to the
    /// extreme: all of it in the key frames (one every second), none in the others (x264 at
    /// 500 kbit/s on a pan keeps 0.6-0.8 and 0.1-0.2). Weighed as any frame, the two key
    /// frames are lost among the moving picture's 60; weighed as intra pictures, with their
    /// differences from the frame before, they give the ID.
    #[test]
    fn key_frames_carry_the_mark_where_the_codec_keeps_it_nowhere_else() {
        let (w, h) = (640, 360);
        let key = "a secret phrase";
        let frames: Vec<(Vec<u8>, bool)> = (0..60)
            .map(|t| {
                let mut f = scene(w, h, t);
                let intra = t % 25 == 10;
                if intra {
                    mark(&mut f, w, h, key, "CAM0042", t as f64 / 25.0);
                }
                (f, intra)
            })
            .collect();
        let read = |use_intra: bool| {
            let mut r = Reader::new(key);
            for (t, (f, intra)) in frames.iter().enumerate() {
                r.add(f, w, w, h, t as f64 / 25.0, *intra && use_intra);
            }
            r.finish()
        };
        let (found, confidence) = read(true);
        assert_eq!(
            found.map(|f| f.id).as_deref(),
            Some("CAM0042"),
            "confidence {confidence}"
        );
        let (found, confidence) = read(false);
        assert_eq!(
            found, None,
            "read without knowing the key frames: {confidence}"
        );
    }

    /// A key frame and the one before it, a pan of fine texture apart (5 pixels, about a cell
    /// at this size): the difference reads only with the picture before moved as the camera
    /// moved; unmoved, the texture's own change drowns the mark.
    #[test]
    fn a_key_frame_is_read_against_the_frame_before_moved_with_the_camera() {
        let (w, h) = (640, 360);
        let key = "a secret phrase";
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let cw = w + 20;
        let canvas: Vec<u8> = (0..cw * h).map(|_| rng.random_range(40..200)).collect();
        let view = |ox: usize| -> Vec<u8> {
            (0..h)
                .flat_map(|y| canvas[y * cw + ox..y * cw + ox + w].iter().copied())
                .collect()
        };
        let before = view(0);
        let mut key_frame = view(5);
        mark(&mut key_frame, w, h, key, "CAM0042", 0.4);
        let mut r = Reader::new(key);
        r.add(&before, w, w, h, 0.36, false);
        r.add(&key_frame, w, w, h, 0.4, true);
        let (found, confidence) = r.finish();
        assert_eq!(
            found.map(|f| f.id).as_deref(),
            Some("CAM0042"),
            "confidence {confidence}"
        );
        // A picture before that no translation aligns (the texture turned upside down): the
        // difference is mostly picture, and two frames give no ID.
        let mut r = Reader::new(key);
        let flipped: Vec<u8> = before.iter().rev().copied().collect();
        r.add(&flipped, w, w, h, 0.36, false);
        r.add(&key_frame, w, w, h, 0.4, true);
        assert_eq!(r.finish().0, None);
    }

    #[test]
    fn a_new_id_takes_effect_on_the_next_frame() {
        let config = WatermarkConfig {
            id: "AAAAAAA".into(),
            key: "a secret phrase".into(),
            key_file: None,
            key_env: None,
            strength: WatermarkStrength::Auto,
        };
        let wm = Watermark::new(&config);
        let h = wm.handle();
        assert!(h.set_id("short").is_err());
        h.set_id("BBBBBBB").expect("valid id");
        assert_eq!(h.id(), "BBBBBBB");
    }
}
