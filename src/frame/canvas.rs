//! Drawing on a 4:2:0 frame in place (I420 or NV12): filled and shaded rectangles, outlines and
//! bitmap text. Only the pixels drawn on are touched; nothing is converted to RGB.

use font8x8::UnicodeFonts;
use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};

use super::FrameError;

/// A colour in limited-range BT.601 YUV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuv {
    /// Luma, 16 to 235.
    pub y: u8,
    /// Blue-difference chroma, 16 to 240.
    pub u: u8,
    /// Red-difference chroma, 16 to 240.
    pub v: u8,
}

impl Yuv {
    /// White.
    pub const WHITE: Yuv = Yuv {
        y: 235,
        u: 128,
        v: 128,
    };
    /// Black.
    pub const BLACK: Yuv = Yuv {
        y: 16,
        u: 128,
        v: 128,
    };

    /// Converts 8-bit RGB to limited-range BT.601 YUV.
    pub const fn from_rgb(r: u8, g: u8, b: u8) -> Yuv {
        let (r, g, b) = (r as i32, g as i32, b as i32);
        Yuv {
            y: (16 + ((66 * r + 129 * g + 25 * b + 128) >> 8)) as u8,
            u: (128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8)) as u8,
            v: (128 + ((112 * r - 94 * g - 18 * b + 128) >> 8)) as u8,
        }
    }
}

#[derive(Clone, Copy)]
enum Layout {
    I420,
    Nv12,
}

/// A writable view of a frame's pixels.
pub struct Canvas<'a> {
    frame: VideoFrameRef<&'a mut gst::BufferRef>,
    layout: Layout,
    width: i32,
    height: i32,
}

impl<'a> Canvas<'a> {
    /// A canvas over a writable, mapped frame (I420 or NV12).
    pub fn new(frame: VideoFrameRef<&'a mut gst::BufferRef>) -> Result<Self, FrameError> {
        let layout = match frame.format() {
            VideoFormat::I420 => Layout::I420,
            VideoFormat::Nv12 => Layout::Nv12,
            other => return Err(FrameError::Format(other.to_str().to_string())),
        };
        let (width, height) = (frame.width() as i32, frame.height() as i32);
        Ok(Self {
            frame,
            layout,
            width,
            height,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width as u32
    }

    /// The luma plane, writable, and its stride (for processors that work on every pixel).
    pub fn luma_mut(&mut self) -> (&mut [u8], usize) {
        let stride = self.frame.plane_stride()[0] as usize;
        (self.frame.plane_data_mut(0).unwrap_or(&mut []), stride)
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// Clips a rectangle to the frame; `None` when nothing is left.
    fn clip(&self, x: i32, y: i32, w: i32, h: i32) -> Option<(usize, usize, usize, usize)> {
        let (x0, y0) = (x.max(0), y.max(0));
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        (x1 > x0 && y1 > y0).then_some((x0 as usize, y0 as usize, x1 as usize, y1 as usize))
    }

    /// Fills a rectangle with a colour.
    pub fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, color: Yuv) {
        let Some((x0, y0, x1, y1)) = self.clip(x, y, w, h) else {
            return;
        };
        self.luma_rows(y0, y1, |row| row[x0..x1].fill(color.y));
        self.chroma(x0, y0, x1, y1, |u, v| {
            *u = color.u;
            *v = color.v;
        });
    }

    /// Darkens a rectangle and takes most of its colour out: a backdrop that keeps text legible
    /// over any picture while the scene still shows through.
    pub fn shade_rect(&mut self, x: i32, y: i32, w: i32, h: i32) {
        let Some((x0, y0, x1, y1)) = self.clip(x, y, w, h) else {
            return;
        };
        self.luma_rows(y0, y1, |row| {
            for p in &mut row[x0..x1] {
                *p = 16 + (*p).saturating_sub(16) / 4;
            }
        });
        self.chroma(x0, y0, x1, y1, |u, v| {
            *u = (128 + (*u as i16 - 128) / 4) as u8;
            *v = (128 + (*v as i16 - 128) / 4) as u8;
        });
    }

    /// Draws a straight line from `a` to `b` (pixels; points far outside the frame are clipped
    /// to a frame's width beyond it), `thickness` pixels wide.
    pub fn line(&mut self, a: [f32; 2], b: [f32; 2], thickness: i32, color: Yuv) {
        let (w, h) = (self.width as f32, self.height as f32);
        let clamp = |p: [f32; 2]| {
            if p.iter().any(|v| !v.is_finite()) {
                return None;
            }
            Some([p[0].clamp(-w, 2.0 * w), p[1].clamp(-h, 2.0 * h)])
        };
        let (Some(a), Some(b)) = (clamp(a), clamp(b)) else {
            return;
        };
        let t = thickness.max(1);
        let steps = (b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil().max(1.0) as i32;
        for i in 0..=steps {
            let f = i as f32 / steps as f32;
            let (x, y) = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f);
            self.fill_rect(x as i32 - t / 2, y as i32 - t / 2, t, t, color);
        }
    }

    /// Draws the outline of a rectangle, `thickness` pixels wide, inside its edges.
    pub fn outline_rect(&mut self, x: i32, y: i32, w: i32, h: i32, thickness: i32, color: Yuv) {
        let t = thickness.max(1).min(w / 2).min(h / 2).max(1);
        self.fill_rect(x, y, w, t, color);
        self.fill_rect(x, y + h - t, w, t, color);
        self.fill_rect(x, y + t, t, h - 2 * t, color);
        self.fill_rect(x + w - t, y + t, t, h - 2 * t, color);
    }

    /// Size in pixels of `text` drawn at `scale` (each glyph is 8x8 pixels times `scale`).
    pub fn text_size(text: &str, scale: i32) -> (i32, i32) {
        (text.chars().count() as i32 * 8 * scale, 8 * scale)
    }

    /// Draws `text` with its top-left corner at (`x`, `y`), each font pixel `scale` pixels wide.
    /// Characters the built-in font lacks are drawn as `?`.
    pub fn draw_text(&mut self, x: i32, y: i32, scale: i32, text: &str, color: Yuv) {
        let scale = scale.max(1);
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::LATIN_FONTS.get(ch))
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            let gx = x + i as i32 * 8 * scale;
            if gx >= self.width {
                break;
            }
            for (row, bits) in glyph.iter().enumerate() {
                let mut col = 0;
                while col < 8 {
                    if bits & (1 << col) == 0 {
                        col += 1;
                        continue;
                    }
                    // Draw runs of set bits as one rectangle.
                    let start = col;
                    while col < 8 && bits & (1 << col) != 0 {
                        col += 1;
                    }
                    self.fill_rect(
                        gx + start * scale,
                        y + row as i32 * scale,
                        (col - start) * scale,
                        scale,
                        color,
                    );
                }
            }
        }
    }

    fn luma_rows(&mut self, y0: usize, y1: usize, mut f: impl FnMut(&mut [u8])) {
        let stride = self.frame.plane_stride()[0] as usize;
        let Ok(plane) = self.frame.plane_data_mut(0) else {
            return;
        };
        for row in plane.chunks_mut(stride).take(y1).skip(y0) {
            f(row);
        }
    }

    /// Calls `f(u, v)` for every chroma sample covering the rectangle.
    fn chroma(
        &mut self,
        x0: usize,
        y0: usize,
        x1: usize,
        y1: usize,
        mut f: impl FnMut(&mut u8, &mut u8),
    ) {
        let (cx0, cy0, cx1, cy1) = (x0 / 2, y0 / 2, x1.div_ceil(2), y1.div_ceil(2));
        match self.layout {
            Layout::Nv12 => {
                let stride = self.frame.plane_stride()[1] as usize;
                let Ok(plane) = self.frame.plane_data_mut(1) else {
                    return;
                };
                for row in plane.chunks_mut(stride).take(cy1).skip(cy0) {
                    for uv in row[cx0 * 2..cx1 * 2].chunks_exact_mut(2) {
                        let (u, v) = uv.split_at_mut(1);
                        f(&mut u[0], &mut v[0]);
                    }
                }
            }
            Layout::I420 => {
                let (su, sv) = (
                    self.frame.plane_stride()[1] as usize,
                    self.frame.plane_stride()[2] as usize,
                );
                let [_, pu, pv, _] = self.frame.planes_data_mut();
                for cy in cy0..cy1 {
                    let us = &mut pu[cy * su + cx0..cy * su + cx1];
                    let vs = &mut pv[cy * sv + cx0..cy * sv + cx1];
                    for (u, v) in us.iter_mut().zip(vs.iter_mut()) {
                        f(u, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(format: VideoFormat, w: u32, h: u32) -> (gst::Buffer, gst_video::VideoInfo) {
        gst::init().expect("gstreamer");
        let info = gst_video::VideoInfo::builder(format, w, h)
            .build()
            .expect("info");
        let mut buf = gst::Buffer::with_size(info.size()).expect("buffer");
        buf.get_mut()
            .expect("writable")
            .map_writable()
            .expect("map")
            .fill(128);
        (buf, info)
    }

    fn luma(buf: &gst::Buffer, info: &gst_video::VideoInfo, x: usize, y: usize) -> u8 {
        let f =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), info).expect("map");
        f.plane_data(0).expect("plane")[y * f.plane_stride()[0] as usize + x]
    }

    #[test]
    fn draws_in_both_layouts() {
        for format in [VideoFormat::I420, VideoFormat::Nv12] {
            let (mut buf, info) = frame(format, 64, 32);
            {
                let f = gst_video::VideoFrameRef::from_buffer_ref_writable(
                    buf.get_mut().expect("writable"),
                    &info,
                )
                .expect("map");
                let mut c = Canvas::new(f).expect("canvas");
                c.fill_rect(-4, -4, 10, 10, Yuv::WHITE);
                c.shade_rect(40, 0, 100, 100);
                c.draw_text(8, 16, 1, "H", Yuv::BLACK);
            }
            assert_eq!(luma(&buf, &info, 0, 0), 235, "{format:?}");
            assert_eq!(
                luma(&buf, &info, 6, 6),
                128,
                "{format:?} clipped rect spilled"
            );
            assert_eq!(luma(&buf, &info, 63, 31), 16 + 112 / 4, "{format:?}");
            // Rows of "H" are 0x33: columns 0, 1, 4 and 5 of the glyph are set.
            assert_eq!(luma(&buf, &info, 8, 17), 16, "{format:?}");
            assert_eq!(luma(&buf, &info, 10, 17), 128, "{format:?}");
            assert_eq!(luma(&buf, &info, 12, 17), 16, "{format:?}");
        }
    }

    #[test]
    fn white_and_black_convert_exactly() {
        assert_eq!(Yuv::from_rgb(255, 255, 255), Yuv::WHITE);
        assert_eq!(Yuv::from_rgb(0, 0, 0), Yuv::BLACK);
    }
}
