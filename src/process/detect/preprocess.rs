//! Pre-processing: the native 4:2:0 frame straight into the model's input tensor, scaled
//! (bilinear) and converted to RGB in one pass, with no full-size RGB copy.

use crate::frame::Planes;

/// How a model wants its input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `[1, H, W, 3]` (true) or `[1, 3, H, W]` (false).
    pub nhwc: bool,
    /// Multiplier of 0..255 values (1 or 1/255).
    pub scale: f32,
    /// Keep the aspect ratio and pad (grey), or stretch to the input size.
    pub letterbox: bool,
}

impl InputSpec {
    /// Number of values in one input.
    pub fn values(&self) -> usize {
        self.width * self.height * 3
    }
}

/// Maps model input pixels back to frame pixels: `frame = (model - offset) / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Horizontal scale (model pixels per frame pixel).
    pub sx: f32,
    /// Vertical scale.
    pub sy: f32,
    /// Horizontal padding, model pixels.
    pub ox: f32,
    /// Vertical padding.
    pub oy: f32,
    /// Frame size, to clamp boxes to.
    pub frame: (f32, f32),
}

impl Transform {
    /// A model-space box in frame pixels, clamped to the frame: (x, y, w, h).
    pub fn to_frame(&self, x1: f32, y1: f32, x2: f32, y2: f32) -> (f32, f32, f32, f32) {
        let (fw, fh) = self.frame;
        let fx = |x: f32| ((x - self.ox) / self.sx).clamp(0.0, fw);
        let fy = |y: f32| ((y - self.oy) / self.sy).clamp(0.0, fh);
        let (l, t, r, b) = (fx(x1), fy(y1), fx(x2), fy(y2));
        (l, t, (r - l).max(0.0), (b - t).max(0.0))
    }
}

/// YUV to RGB coefficients for a colorimetry.
#[derive(Debug, Clone, Copy)]
struct Matrix {
    y_off: f32,
    y_mul: f32,
    c_mul: f32,
    rv: f32,
    gu: f32,
    gv: f32,
    bu: f32,
}

impl Matrix {
    fn new(bt709: bool, full_range: bool) -> Self {
        let (kr, kb): (f32, f32) = if bt709 {
            (0.2126, 0.0722)
        } else {
            (0.299, 0.114)
        };
        let kg = 1.0 - kr - kb;
        let (y_off, y_mul, c_mul) = if full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        Self {
            y_off,
            y_mul,
            c_mul,
            rv: 2.0 * (1.0 - kr),
            gu: -2.0 * (1.0 - kb) * kb / kg,
            gv: -2.0 * (1.0 - kr) * kr / kg,
            bu: 2.0 * (1.0 - kb),
        }
    }
}

/// Bilinear taps along one axis: for each output position, the two source indices and the
/// weight of the second.
fn taps(out: usize, offset: f32, step: f32, len: usize) -> Vec<(usize, usize, f32)> {
    let last = len.saturating_sub(1) as f32;
    (0..out)
        .map(|o| {
            let s = ((o as f32 + 0.5) * step - 0.5 + offset).clamp(0.0, last);
            let i = s.floor();
            let i0 = i as usize;
            (i0, (i0 + 1).min(len.saturating_sub(1)), s - i)
        })
        .collect()
}

/// How a frame of `w` x `h` lands in the model's input.
pub fn transform(w: usize, h: usize, spec: &InputSpec) -> Transform {
    let (sw, sh) = (spec.width as f32, spec.height as f32);
    let (wf, hf) = (w as f32, h as f32);
    let (sx, sy, ox, oy) = if spec.letterbox {
        let r = (sw / wf).min(sh / hf);
        (r, r, (sw - wf * r) / 2.0, (sh - hf * r) / 2.0)
    } else {
        (sw / wf, sh / hf, 0.0, 0.0)
    };
    Transform {
        sx,
        sy,
        ox,
        oy,
        frame: (wf, hf),
    }
}

/// Fills `out` (`spec.values()` values) from the frame and returns how to map boxes back.
pub fn fill(
    planes: &Planes<'_>,
    bt709: bool,
    full_range: bool,
    spec: &InputSpec,
    out: &mut [f32],
) -> Transform {
    let (w, h) = (planes.width(), planes.height());
    let (sw, sh) = (spec.width, spec.height);
    let t = transform(w, h, spec);
    let (sx, sy, ox, oy) = (t.sx, t.sy, t.ox, t.oy);
    // The area of the input the picture covers (all of it unless letterboxed).
    let (x0, y0) = (ox.round() as usize, oy.round() as usize);
    let (pw, ph) = (
        ((w as f32 * sx).round() as usize).min(sw - x0),
        ((h as f32 * sy).round() as usize).min(sh - y0),
    );
    let pad = 114.0 * spec.scale;
    out.fill(pad);

    let m = Matrix::new(bt709, full_range);
    let (luma, ls) = planes.luma();
    let (u, v, cs, step) = planes.chroma();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // Luma taps, and chroma taps at half resolution (chroma sits between luma pairs).
    let lx = taps(pw, 0.0, w as f32 / pw as f32, w);
    let ly = taps(ph, 0.0, h as f32 / ph as f32, h);
    let cx = taps(pw, 0.0, cw as f32 / pw as f32, cw);
    let cy = taps(ph, 0.0, ch as f32 / ph as f32, ch);
    let plane = sw * sh;
    // Separable bilinear: blend the two source rows into a row of floats, then sample it.
    let mut yrow = vec![0.0f32; w];
    let mut urow = vec![0.0f32; cw];
    let mut vrow = vec![0.0f32; cw];
    let row = |p: &'_ [u8], start: usize, len: usize, step: usize| -> Option<Vec<u8>> {
        let end = start + (len - 1) * step + 1;
        p.get(start..end)
            .map(|r| r.iter().step_by(step).copied().collect())
    };
    for (oy_i, (&(ya, yb, wy), &(ca, cb, wc))) in ly.iter().zip(&cy).enumerate() {
        let (Some(la), Some(lb), Some(ua), Some(ub), Some(va), Some(vb)) = (
            luma.get(ya * ls..ya * ls + w),
            luma.get(yb * ls..yb * ls + w),
            row(u, ca * cs, cw, step),
            row(u, cb * cs, cw, step),
            row(v, ca * cs, cw, step),
            row(v, cb * cs, cw, step),
        ) else {
            continue;
        };
        for (o, (a, b)) in yrow.iter_mut().zip(la.iter().zip(lb)) {
            *o = f32::from(*a) + (f32::from(*b) - f32::from(*a)) * wy;
        }
        for (o, (a, b)) in urow.iter_mut().zip(ua.iter().zip(&ub)) {
            *o = f32::from(*a) + (f32::from(*b) - f32::from(*a)) * wc - 128.0;
        }
        for (o, (a, b)) in vrow.iter_mut().zip(va.iter().zip(&vb)) {
            *o = f32::from(*a) + (f32::from(*b) - f32::from(*a)) * wc - 128.0;
        }
        let py = y0 + oy_i;
        for (ox_i, (&(xa, xb, wx), &(ca, cb, wu))) in lx.iter().zip(&cx).enumerate() {
            let yv = yrow[xa] + (yrow[xb] - yrow[xa]) * wx;
            let uu = (urow[ca] + (urow[cb] - urow[ca]) * wu) * m.c_mul;
            let vv = (vrow[ca] + (vrow[cb] - vrow[ca]) * wu) * m.c_mul;
            let yy = (yv - m.y_off) * m.y_mul;
            let rgb = [
                (yy + m.rv * vv).clamp(0.0, 255.0) * spec.scale,
                (yy + m.gu * uu + m.gv * vv).clamp(0.0, 255.0) * spec.scale,
                (yy + m.bu * uu).clamp(0.0, 255.0) * spec.scale,
            ];
            let px = x0 + ox_i;
            if spec.nhwc {
                let i = (py * sw + px) * 3;
                out[i..i + 3].copy_from_slice(&rgb);
            } else {
                let i = py * sw + px;
                out[i] = rgb[0];
                out[plane + i] = rgb[1];
                out[2 * plane + i] = rgb[2];
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    /// An I420 frame of one colour.
    fn solid(w: u32, h: u32, yuv: [u8; 3]) -> (gst::Buffer, gst_video::VideoInfo) {
        gst::init().expect("gstreamer");
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
            .build()
            .expect("info");
        let mut buf = gst::Buffer::with_size(info.size()).expect("buffer");
        {
            let b = buf.get_mut().expect("writable");
            let mut f = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info).expect("map");
            for (p, v) in yuv.iter().enumerate() {
                f.plane_data_mut(p as u32).expect("plane").fill(*v);
            }
        }
        (buf, info)
    }

    #[test]
    fn colour_and_layout() {
        // Limited-range BT.601 pure red is about Y 81, U 90, V 240.
        let (buf, info) = solid(64, 48, [81, 90, 240]);
        let planes = Planes::new(buf.as_ref(), &info).expect("planes");
        let spec = InputSpec {
            width: 8,
            height: 8,
            nhwc: true,
            scale: 1.0,
            letterbox: false,
        };
        let mut out = vec![0.0; spec.values()];
        let t = fill(&planes, false, false, &spec, &mut out);
        assert!(
            out[0] > 250.0 && out[1] < 5.0 && out[2] < 5.0,
            "{:?}",
            &out[..3]
        );
        assert_eq!((t.sx, t.sy), (8.0 / 64.0, 8.0 / 48.0));
        // A box over the whole input is the whole frame.
        assert_eq!(t.to_frame(0.0, 0.0, 8.0, 8.0), (0.0, 0.0, 64.0, 48.0));
    }

    #[test]
    fn letterbox_pads_and_maps_back() {
        let (buf, info) = solid(64, 32, [235, 128, 128]);
        let planes = Planes::new(buf.as_ref(), &info).expect("planes");
        let spec = InputSpec {
            width: 16,
            height: 16,
            nhwc: false,
            scale: 1.0 / 255.0,
            letterbox: true,
        };
        let mut out = vec![0.0; spec.values()];
        let t = fill(&planes, false, false, &spec, &mut out);
        // Rows 0..4 and 12..16 are padding; the middle is white.
        let grey = 114.0 / 255.0;
        assert!((out[0] - grey).abs() < 1e-6);
        assert!((out[8 * 16 + 8] - 1.0).abs() < 1e-3, "{}", out[8 * 16 + 8]);
        assert!((out[15 * 16] - grey).abs() < 1e-6);
        assert_eq!((t.ox, t.oy), (0.0, 4.0));
        assert_eq!(t.to_frame(0.0, 4.0, 16.0, 12.0), (0.0, 0.0, 64.0, 32.0));
    }
}
