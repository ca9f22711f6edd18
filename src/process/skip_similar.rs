//! The `skip_similar` processor (dynamic frame rate): a frame whose small luma thumbnail differs
//! from the last processed frame's by less than the threshold is marked `similar`, and the
//! expensive processors after it (the detector) reuse their last result. Frames still reach the
//! outputs at full rate.

use crate::config::SkipSimilarConfig;
use crate::frame::{Frame, Planes};

use super::Processor;

/// Thumbnail size: 32x18 cells, each the mean of a 4x4 grid of samples.
const COLS: usize = 32;
const ROWS: usize = 18;
const TAPS: usize = 4;

/// Marks frames that look like the last processed one.
pub struct SkipSimilar {
    threshold: f32,
    last: Option<Vec<u8>>,
}

impl SkipSimilar {
    /// A processor with these settings.
    pub fn new(config: &SkipSimilarConfig) -> Self {
        Self {
            threshold: config.threshold,
            last: None,
        }
    }
}

impl Processor for SkipSimilar {
    fn name(&self) -> &'static str {
        "skip_similar"
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let thumb = thumbnail(&frame.planes()?);
        let similar = match &self.last {
            // A different size is a different picture.
            Some(last) if last.len() == thumb.len() => difference(last, &thumb) < self.threshold,
            _ => false,
        };
        if !similar {
            self.last = Some(thumb);
        }
        frame.meta.similar = similar;
        Ok(())
    }
}

/// The luma thumbnail of a frame.
pub fn thumbnail(planes: &Planes<'_>) -> Vec<u8> {
    let (luma, stride) = planes.luma();
    let (w, h) = (planes.width(), planes.height());
    let mut out = Vec::with_capacity(COLS * ROWS);
    for r in 0..ROWS {
        for c in 0..COLS {
            let mut sum = 0u32;
            for ty in 0..TAPS {
                let y = ((r * TAPS + ty) * 2 + 1) * h / (ROWS * TAPS * 2);
                let row = y * stride;
                for tx in 0..TAPS {
                    let x = ((c * TAPS + tx) * 2 + 1) * w / (COLS * TAPS * 2);
                    sum += u32::from(luma.get(row + x).copied().unwrap_or(0));
                }
            }
            out.push((sum / (TAPS * TAPS) as u32) as u8);
        }
    }
    out
}

/// Mean absolute difference of two thumbnails, 0 to 1.
pub fn difference(a: &[u8], b: &[u8]) -> f32 {
    let total: u32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u32::from(x.abs_diff(*y)))
        .sum();
    total as f32 / (a.len().max(1) as f32 * 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameMeta;

    /// Frames of a moving test pattern, decoded by GStreamer.
    fn frames(pattern: &str, n: usize) -> Vec<Frame> {
        use gst::prelude::*;
        gst::init().expect("gstreamer");
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc pattern={pattern} num-buffers={n} ! video/x-raw,format=I420,width=320,height=180 ! appsink name=sink sync=false"
        ))
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
        let sink = pipeline
            .by_name("sink")
            .expect("sink")
            .downcast::<gst_app::AppSink>()
            .expect("appsink");
        pipeline.set_state(gst::State::Playing).expect("play");
        let mut out = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            let info = gst_video::VideoInfo::from_caps(sample.caps().expect("caps")).expect("info");
            let meta = FrameMeta::new(
                "cam0".to_string().try_into().expect("id"),
                out.len() as u64,
                std::time::SystemTime::now(),
            );
            out.push(Frame::new(
                sample.buffer_owned().expect("buffer"),
                info,
                meta,
            ));
        }
        pipeline.set_state(gst::State::Null).expect("stop");
        out
    }

    fn similar_count(pattern: &str) -> usize {
        let mut p = SkipSimilar::new(&SkipSimilarConfig { threshold: 0.02 });
        frames(pattern, 20)
            .iter_mut()
            .map(|f| {
                p.process(f).expect("process");
                f.meta.similar
            })
            .filter(|s| *s)
            .count()
    }

    #[test]
    fn skips_a_still_scene() {
        // Every frame after the first is the same picture.
        assert_eq!(similar_count("smpte"), 19);
    }

    #[test]
    fn does_not_skip_motion() {
        // Noise changes everywhere; panning bars move the whole picture.
        assert_eq!(similar_count("snow"), 0);
        assert_eq!(similar_count("smpte horizontal-speed=8"), 0);
    }

    #[test]
    fn difference_is_normalised() {
        assert_eq!(difference(&[0, 0], &[255, 255]), 1.0);
        assert_eq!(difference(&[10, 20], &[10, 20]), 0.0);
    }
}
