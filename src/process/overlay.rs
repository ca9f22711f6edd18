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
        let hide = self.settings.hide_boxes;
        // With a tracker, its tracks (ids, trails) replace the detector's raw boxes.
        let tracks = if hide {
            None
        } else {
            frame.meta.tracks.clone()
        };
        let boxes = if hide || tracks.is_some() {
            Vec::new()
        } else {
            frame.meta.detections.clone()
        };
        let mut canvas = frame.canvas()?;
        draw_lines(&mut canvas, scale, &lines);
        for d in &boxes {
            let label = format!("{} {:.2}", d.label, d.score);
            labelled_box(&mut canvas, scale, &d.rect, &label, BOX);
        }
        for t in tracks.iter().flatten() {
            let color = TRACK_COLORS[(t.id % TRACK_COLORS.len() as u64) as usize];
            let thickness = (scale / 2).max(2);
            for pair in t.trail.windows(2) {
                canvas.line(pair[0], pair[1], thickness, color);
            }
            let label = format!("#{} {}", t.id, t.label);
            labelled_box(&mut canvas, scale, &t.rect, &label, color);
        }
        Ok(())
    }
}

/// Colours of tracks, by id: each object keeps its colour.
const TRACK_COLORS: [Yuv; 6] = [
    Yuv::from_rgb(0, 230, 64),
    Yuv::from_rgb(255, 200, 0),
    Yuv::from_rgb(0, 200, 255),
    Yuv::from_rgb(255, 90, 200),
    Yuv::from_rgb(255, 120, 40),
    Yuv::from_rgb(170, 130, 255),
];

/// A box outline with a label above it (inside it at the top edge of the frame).
fn labelled_box(
    canvas: &mut Canvas<'_>,
    scale: i32,
    r: &crate::frame::Rect,
    label: &str,
    color: Yuv,
) {
    let (x, y, w, h) = (r.x as i32, r.y as i32, r.w as i32, r.h as i32);
    canvas.outline_rect(x, y, w, h, scale.max(2), color);
    // Labels are smaller than the header text: boxes can be many and close together.
    let ls = (scale + 1) / 2;
    let (tw, th) = Canvas::text_size(label, ls);
    let ly = if y >= th + 2 * ls { y - th - 2 * ls } else { y };
    canvas.fill_rect(x, ly, tw + 2 * ls, th + 2 * ls, color);
    canvas.draw_text(x + ls, ly + ls, ls, label, Yuv::BLACK);
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
                detections_pts: None,
                tracks: None,
                similar: false,
                withheld: false,
                copied: false,
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
    fn tracks_replace_raw_boxes_with_their_colour_and_trail() {
        let mut frame = gray_frame(640, 360);
        frame.meta.tracks = Some(vec![crate::frame::TrackBox {
            id: 3,
            rect: Rect {
                x: 300.0,
                y: 100.0,
                w: 60.0,
                h: 120.0,
            },
            label: "person".into(),
            score: 0.9,
            velocity: [10.0, 0.0],
            age_s: 1.0,
            trail: vec![[100.0, 300.0], [200.0, 300.0], [330.0, 160.0]],
        }]);
        Overlay::new(OverlayConfig::default())
            .process(&mut frame)
            .expect("overlay");
        let color = TRACK_COLORS[3];
        assert_eq!(luma_at(&frame, 300, 180), color.y, "the track's box");
        assert_eq!(luma_at(&frame, 150, 300), color.y, "its trail");
        // The detector's raw box (at x = 100, y = 200..) is not drawn beside the track.
        assert_eq!(luma_at(&frame, 100, 260), 128);
        // Hostile points draw nothing and break nothing.
        frame.meta.tracks.as_mut().unwrap()[0].trail = vec![[f32::NAN, 0.0], [1e30, -1e30]];
        Overlay::new(OverlayConfig::default())
            .process(&mut frame)
            .expect("overlay");
    }

    #[test]
    fn scale_follows_height() {
        assert_eq!(Overlay::scale_for(360), 2);
        assert_eq!(Overlay::scale_for(720), 3);
        assert_eq!(Overlay::scale_for(1080), 4);
        assert_eq!(Overlay::scale_for(120), 1);
    }
}
