//! The `overlay` processor: stream id, wall-clock time, frame number, an optional line of text,
//! and the boxes detectors attached to the frame, drawn with a built-in bitmap font whose size
//! follows the frame height (legible from 360p to 4K).

use crate::config::OverlayConfig;
use crate::frame::{Canvas, Frame, Yuv};

use super::{Processor, utc_timestamp};

/// Colour of detection boxes.
const BOX: Yuv = Yuv::from_rgb(0, 230, 64);

/// Draws the stream's identity, time and detections onto each frame.
pub struct Overlay {
    settings: OverlayConfig,
}

impl Overlay {
    /// An overlay with these settings.
    pub fn new(settings: OverlayConfig) -> Self {
        Self { settings }
    }

    /// Font scale for a frame height: 8 pixels per glyph at 240p, 16 at 360p, 24 at 720p, 32 at
    /// 1080p.
    pub fn scale_for(height: u32) -> i32 {
        (height.div_ceil(270) as i32).max(1)
    }
}

impl Processor for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let scale = Self::scale_for(frame.height());
        let mut lines = vec![
            format!(
                "{}  {} UTC",
                frame.meta.stream,
                utc_timestamp(frame.meta.capture_time)
            ),
            format!("frame {}", frame.meta.seq),
        ];
        if let Some(text) = &self.settings.text {
            lines.push(text.clone());
        }
        let boxes = if self.settings.hide_boxes {
            Vec::new()
        } else {
            frame.meta.detections.clone()
        };
        let mut canvas = frame.canvas()?;
        draw_lines(&mut canvas, scale, &lines);
        for d in &boxes {
            let (x, y, w, h) = (
                d.rect.x as i32,
                d.rect.y as i32,
                d.rect.w as i32,
                d.rect.h as i32,
            );
            canvas.outline_rect(x, y, w, h, scale.max(2), BOX);
            // Labels are smaller than the header text: boxes can be many and close together.
            let ls = (scale + 1) / 2;
            let label = format!("{} {:.2}", d.label, d.score);
            let (tw, th) = Canvas::text_size(&label, ls);
            let ly = if y >= th + 2 * ls { y - th - 2 * ls } else { y };
            canvas.fill_rect(x, ly, tw + 2 * ls, th + 2 * ls, BOX);
            canvas.draw_text(x + ls, ly + ls, ls, &label, Yuv::BLACK);
        }
        Ok(())
    }
}

/// Draws lines of text on a shaded backdrop in the top-left corner.
fn draw_lines(canvas: &mut Canvas<'_>, scale: i32, lines: &[String]) {
    let pad = 2 * scale;
    let line_h = 8 * scale + scale;
    let width = lines
        .iter()
        .map(|l| Canvas::text_size(l, scale).0)
        .max()
        .unwrap_or(0);
    let height = line_h * lines.len() as i32;
    canvas.shade_rect(0, 0, width + 2 * pad, height + 2 * pad - scale);
    for (i, line) in lines.iter().enumerate() {
        canvas.draw_text(pad, pad + i as i32 * line_h, scale, line, Yuv::WHITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Detection, FrameMeta, Rect};
    use gst_video::prelude::*;

    fn gray_frame(w: u32, h: u32) -> Frame {
        gst::init().expect("gstreamer");
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
            .build()
            .expect("info");
        let mut buf = gst::Buffer::with_size(info.size()).expect("buffer");
        buf.get_mut()
            .expect("writable")
            .map_writable()
            .expect("map")
            .fill(128);
        Frame::new(
            buf,
            info,
            FrameMeta {
                stream: "cam0".to_string().try_into().expect("id"),
                seq: 42,
                capture_time: std::time::SystemTime::now(),
                detections: vec![Detection {
                    rect: Rect {
                        x: 100.0,
                        y: 200.0,
                        w: 80.0,
                        h: 120.0,
                    },
                    label: "person".into(),
                    score: 0.9,
                }],
                similar: false,
            },
        )
    }

    fn luma_at(frame: &Frame, x: usize, y: usize) -> u8 {
        let f = gst_video::VideoFrameRef::from_buffer_ref_readable(
            frame.buffer().as_ref(),
            frame.info(),
        )
        .expect("map");
        f.plane_data(0).expect("luma")[y * f.plane_stride()[0] as usize + x]
    }

    #[test]
    fn draws_text_backdrop_and_boxes() {
        let mut frame = gray_frame(640, 360);
        Overlay::new(OverlayConfig::default())
            .process(&mut frame)
            .expect("overlay");
        // The backdrop darkens the top-left corner.
        assert!(luma_at(&frame, 1, 1) < 60);
        // The box's left edge is drawn in the box colour; its inside is untouched.
        assert_eq!(luma_at(&frame, 100, 260), BOX.y);
        assert_eq!(luma_at(&frame, 140, 260), 128);
        // Somewhere in the first line there is white text.
        let bright = (0..300).filter(|x| luma_at(&frame, *x, 12) == 235).count();
        assert!(bright > 10, "no text found: {bright}");
    }

    #[test]
    fn scale_follows_height() {
        assert_eq!(Overlay::scale_for(360), 2);
        assert_eq!(Overlay::scale_for(720), 3);
        assert_eq!(Overlay::scale_for(1080), 4);
        assert_eq!(Overlay::scale_for(120), 1);
    }
}
