//! The picture of a tracked object: its box (with a margin) copied out of the frame, so that an
//! `object.ended` event can show the object at its best score without holding whole decoded
//! frames (the decoder's own buffers) for as long as the object stays.

use gst_video::VideoFormat;

use crate::frame::{Frame, Planes};
use crate::store::Picture;

/// The box `[x, y, w, h]` grown by a fifth on each side, cropped out of the frame as an I420
/// picture (none when the box misses the frame or the frame cannot be read).
pub fn crop(frame: &Frame, r: [f64; 4]) -> Option<Picture> {
    let (fw, fh) = (f64::from(frame.width()), f64::from(frame.height()));
    let (mx, my) = (r[2] * 0.2, r[3] * 0.2);
    let even = |v: f64, max: f64| ((v.clamp(0.0, max) as u32) / 2) * 2;
    let (x0, y0) = (even(r[0] - mx, fw), even(r[1] - my, fh));
    let (x1, y1) = (even(r[0] + r[2] + mx, fw), even(r[1] + r[3] + my, fh));
    let (w, h) = (x1.checked_sub(x0)?, y1.checked_sub(y0)?);
    if w < 16 || h < 16 {
        return None;
    }
    let planes = Planes::new(frame.buffer().as_ref(), frame.info()).ok()?;
    let info = gst_video::VideoInfo::builder(VideoFormat::I420, w, h)
        .build()
        .ok()?;
    let mut data = vec![0u8; info.size()];
    let (luma, ls) = planes.luma();
    let (u, v, cs, step) = planes.chroma();
    let (offsets, strides) = (info.offset(), info.stride());
    let (x0, y0, w, h) = (x0 as usize, y0 as usize, w as usize, h as usize);
    for row in 0..h {
        let src = luma.get((y0 + row) * ls + x0..(y0 + row) * ls + x0 + w)?;
        let at = offsets[0] + row * strides[0] as usize;
        data.get_mut(at..at + w)?.copy_from_slice(src);
    }
    for (plane, src) in [(1, u), (2, v)] {
        for row in 0..h / 2 {
            let at = offsets[plane] + row * strides[plane] as usize;
            for col in 0..w / 2 {
                let s = (y0 / 2 + row) * cs + (x0 / 2 + col) * step;
                *data.get_mut(at + col)? = *src.get(s)?;
            }
        }
    }
    Some(Picture {
        buffer: gst::Buffer::from_mut_slice(data),
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamId;
    use crate::frame::FrameMeta;

    fn frame(format: VideoFormat) -> Frame {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(format, 320, 240)
            .build()
            .unwrap();
        let mut data = vec![16u8; info.size()];
        // A bright square at (100, 60)-(140, 140) in luma.
        let ls = info.stride()[0] as usize;
        for y in 60..140 {
            for x in 100..140 {
                data[info.offset()[0] + y * ls + x] = 235;
            }
        }
        Frame::new(
            gst::Buffer::from_mut_slice(data),
            info,
            FrameMeta::new(
                StreamId::try_from("t".to_string()).unwrap(),
                0,
                std::time::SystemTime::now(),
            ),
        )
    }

    #[test]
    fn the_crop_holds_the_object_with_a_margin_in_either_layout() {
        for format in [VideoFormat::I420, VideoFormat::Nv12] {
            let f = frame(format);
            let p = crop(&f, [100.0, 60.0, 40.0, 80.0]).expect("a crop");
            assert_eq!((p.info.width(), p.info.height()), (56, 112));
            let map = p.buffer.map_readable().unwrap();
            let ls = p.info.stride()[0] as usize;
            // The margin is dark, the middle bright.
            assert_eq!(map[p.info.offset()[0] + 2 * ls + 2], 16);
            assert_eq!(map[p.info.offset()[0] + 56 * ls + 28], 235);
        }
        let f = frame(VideoFormat::I420);
        assert!(
            crop(&f, [-500.0, -500.0, 10.0, 10.0]).is_none(),
            "off the frame"
        );
        assert!(crop(&f, [f64::NAN, 0.0, 10.0, 10.0]).is_none());
        let edge = crop(&f, [300.0, 200.0, 100.0, 100.0]).expect("clipped to the frame");
        assert!(edge.info.width() <= 40 && edge.info.height() <= 60);
    }
}
