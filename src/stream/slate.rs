//! The NO SIGNAL slate: what a stream's outputs show while its source is lost or stalled, at the
//! output's size and frame rate, so viewers and media servers stay connected.

use std::time::SystemTime;

use crate::config::StreamId;
use crate::frame::{Canvas, Frame, FrameMeta, Yuv};
use crate::process::utc_timestamp;

/// Background luma of the slate: dark grey, distinct from black video.
const BACKGROUND: Yuv = Yuv {
    y: 40,
    u: 128,
    v: 128,
};
/// Colour of the headline.
const HEADLINE: Yuv = Yuv::from_rgb(255, 200, 0);

/// Renders the slate: "NO SIGNAL", the stream id, since when, and the time now.
pub fn render(
    info: &gst_video::VideoInfo,
    stream: &StreamId,
    since: SystemTime,
    now: SystemTime,
) -> Option<gst::Buffer> {
    let buffer = gst::Buffer::with_size(info.size()).ok()?;
    let mut frame = Frame::new(buffer, info.clone(), FrameMeta::new(stream.clone(), 0, now));
    {
        let mut c = frame.canvas().ok()?;
        let (w, h) = (c.width() as i32, c.height() as i32);
        c.fill_rect(0, 0, w, h, BACKGROUND);
        let big = (h / 90).max(2);
        let small = (h / 270).max(1);
        let headline = "NO SIGNAL";
        let (tw, th) = Canvas::text_size(headline, big);
        let y = h / 2 - th;
        c.draw_text((w - tw) / 2, y, big, headline, HEADLINE);
        let since = format!("since {} UTC", utc_timestamp(since));
        let now = format!("now   {} UTC", utc_timestamp(now));
        let mut line_y = y + th + 3 * small * 8 / 2;
        for line in [stream.as_str(), since.as_str(), now.as_str()] {
            let (lw, lh) = Canvas::text_size(line, small);
            c.draw_text((w - lw) / 2, line_y, small, line, Yuv::WHITE);
            line_y += lh + small * 4;
        }
    }
    Some(frame.into_parts().0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_video::prelude::*;

    #[test]
    fn draws_a_dark_slate_with_a_headline() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 640, 360)
            .build()
            .unwrap();
        let id: StreamId = "cam7".to_string().try_into().unwrap();
        let buf = render(&info, &id, SystemTime::now(), SystemTime::now()).unwrap();
        let f = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
        let y = f.plane_data(0).unwrap();
        let stride = f.plane_stride()[0] as usize;
        assert_eq!(y[10 * stride + 10], BACKGROUND.y);
        let headline_row = 360 / 2 - 8 * (360 / 90) + 8;
        let lit = (0..640)
            .filter(|x| y[headline_row * stride + x] == HEADLINE.y)
            .count();
        assert!(lit > 40, "no headline: {lit} pixels");
    }

    #[test]
    fn renders_in_nv12_too_for_nvdec_streams() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Nv12, 320, 240)
            .build()
            .unwrap();
        let id: StreamId = "gpu".to_string().try_into().unwrap();
        let buf = render(&info, &id, SystemTime::now(), SystemTime::now()).unwrap();
        let f = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
        assert_eq!(f.plane_data(0).unwrap()[0], BACKGROUND.y);
        assert_eq!(f.plane_data(1).unwrap()[0], BACKGROUND.u);
    }
}
