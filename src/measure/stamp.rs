//! A capture-time stamp in the pixels: a row of black and white blocks along the bottom edge of
//! the frame, big enough to survive H.264 at low bitrates and scaling.
//!
//! ```text
//! | 1 0 | 48 bits: Unix time in ms | 8 bits: CRC-8 | 0 1 |  → 60 blocks across the width,
//!                                                           each (width / 60) wide, 1/24 of the height tall
//! ```
//! The start and end markers and the CRC make a misread practically impossible: a frame whose
//! stamp does not check out (the NO SIGNAL slate, a frame torn by the decoder) reads as none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::frame::{Canvas, Yuv};

/// Blocks in a stamp.
pub const STAMP_BITS: u32 = 60;

/// Block height as a fraction of the frame height.
const HEIGHT_DIV: u32 = 24;

fn crc8(data: u64) -> u8 {
    // CRC-8/ATM (polynomial 0x07) over the 6 bytes of the timestamp.
    let mut crc = 0u8;
    for i in (0..6).rev() {
        crc ^= (data >> (i * 8)) as u8;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn bits(t: SystemTime) -> Vec<bool> {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64 & ((1 << 48) - 1);
    let crc = crc8(ms);
    let mut b = vec![true, false];
    b.extend((0..48).rev().map(|i| ms >> i & 1 == 1));
    b.extend((0..8).rev().map(|i| crc >> i & 1 == 1));
    b.extend([false, true]);
    b
}

/// Geometry of the stamp in a frame: (block width, top, height).
fn geometry(width: u32, height: u32) -> (u32, u32, u32) {
    let bw = width / STAMP_BITS;
    let bh = (height / HEIGHT_DIV).max(4).min(height);
    (bw, height - bh, bh)
}

/// Draws the stamp for `t` along the bottom of the frame.
pub fn write_stamp(canvas: &mut Canvas<'_>, t: SystemTime) {
    let (bw, top, bh) = geometry(canvas.width(), canvas.height());
    for (i, bit) in bits(t).into_iter().enumerate() {
        let color = if bit { Yuv::WHITE } else { Yuv::BLACK };
        canvas.fill_rect(
            (i as u32 * bw) as i32,
            top as i32,
            bw as i32,
            bh as i32,
            color,
        );
    }
}

/// Reads a stamp from a luma plane (`stride` bytes per row); `None` when there is none or it
/// does not check out.
pub fn read_stamp(luma: &[u8], stride: usize, width: u32, height: u32) -> Option<SystemTime> {
    let (bw, top, bh) = geometry(width, height);
    // Too small to carry a stamp (found by the fuzzer: a frame 3 rows high).
    if bw < 2 || bh < 4 {
        return None;
    }
    let bit = |i: u32| -> Option<bool> {
        // The mean of the block's middle half: robust to ringing at the edges.
        let (x0, x1) = (i * bw + bw / 4, i * bw + 3 * bw / 4);
        let (y0, y1) = (top + bh / 4, top + 3 * bh / 4);
        let mut sum = 0u64;
        let mut n = 0u64;
        for y in y0..y1.max(y0 + 1) {
            let row = luma.get(y as usize * stride..)?;
            for x in x0..x1.max(x0 + 1) {
                sum += u64::from(*row.get(x as usize)?);
                n += 1;
            }
        }
        let mean = sum / n.max(1);
        // Blocks must be clearly black or white.
        match mean {
            0..=80 => Some(false),
            170..=255 => Some(true),
            _ => None,
        }
    };
    let b: Vec<bool> = (0..STAMP_BITS).map(bit).collect::<Option<_>>()?;
    let markers = [b[0], b[1], b[58], b[59]];
    if markers != [true, false, false, true] {
        return None;
    }
    let ms = b[2..50]
        .iter()
        .fold(0u64, |acc, x| acc << 1 | u64::from(*x));
    let crc = b[50..58].iter().fold(0u8, |acc, x| acc << 1 | u8::from(*x));
    (crc8(ms) == crc).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::*;
    use gst_video::prelude::*;

    fn luma(buf: &gst::BufferRef, info: &gst_video::VideoInfo) -> (Vec<u8>, usize) {
        let f = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info).unwrap();
        (
            f.plane_data(0).unwrap().to_vec(),
            f.plane_stride()[0] as usize,
        )
    }

    #[test]
    fn round_trips_in_raw_frames_and_rejects_other_pictures() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 1280, 720)
            .build()
            .unwrap();
        let mut buf = gst::Buffer::with_size(info.size()).unwrap();
        buf.get_mut().unwrap().map_writable().unwrap().fill(100);
        let t = UNIX_EPOCH + Duration::from_millis(1_795_290_862_123);
        {
            let f =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buf.get_mut().unwrap(), &info)
                    .unwrap();
            let mut c = crate::frame::Canvas::new(f).unwrap();
            write_stamp(&mut c, t);
        }
        let (y, stride) = luma(buf.as_ref(), &info);
        assert_eq!(read_stamp(&y, stride, 1280, 720), Some(t));
        // A grey frame has no stamp; a frame with a flipped bit fails its check.
        assert_eq!(read_stamp(&vec![100; y.len()], stride, 1280, 720), None);
        let mut flipped = y.clone();
        let (bw, top, bh) = geometry(1280, 720);
        for row in top..top + bh {
            for x in 10 * bw..11 * bw {
                let p = &mut flipped[row as usize * stride + x as usize];
                *p = if *p > 128 { 16 } else { 235 };
            }
        }
        assert_eq!(read_stamp(&flipped, stride, 1280, 720), None);
    }

    /// The stamp survives x264 at 500 kbit/s on a moving 720p picture.
    #[test]
    fn survives_h264_at_500_kbits() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc pattern=snow num-buffers=50 ! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 \
             ! identity name=stamp ! x264enc speed-preset=ultrafast tune=zerolatency bitrate=500 key-int-max=50 \
             ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! appsink name=out sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 1280, 720)
            .build()
            .unwrap();
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stamp = pipeline.by_name("stamp").unwrap();
        {
            let (sent, info) = (sent.clone(), info.clone());
            stamp.static_pad("src").unwrap().add_probe(
                gst::PadProbeType::BUFFER,
                move |_, probe| {
                    if let Some(gst::PadProbeData::Buffer(buf)) = &mut probe.data {
                        let n = sent.lock().unwrap().len() as u64;
                        let t = UNIX_EPOCH + Duration::from_millis(1_795_290_862_000 + n * 40);
                        let f = gst_video::VideoFrameRef::from_buffer_ref_writable(
                            buf.make_mut(),
                            &info,
                        )
                        .unwrap();
                        let mut c = crate::frame::Canvas::new(f).unwrap();
                        write_stamp(&mut c, t);
                        sent.lock().unwrap().push(t);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        let sink = pipeline
            .by_name("out")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut read = Vec::new();
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
            let (y, stride) = luma(sample.buffer().unwrap(), &info);
            read.push(read_stamp(&y, stride, 1280, 720));
        }
        pipeline.set_state(gst::State::Null).unwrap();
        let sent = sent.lock().unwrap().clone();
        assert_eq!(read.len(), sent.len());
        let ok = read
            .iter()
            .zip(&sent)
            .filter(|(r, s)| **r == Some(**s))
            .count();
        let wrong = read
            .iter()
            .zip(&sent)
            .filter(|(r, s)| r.is_some_and(|r| r != **s))
            .count();
        assert_eq!(wrong, 0, "a stamp read wrong");
        assert_eq!(ok, sent.len(), "{ok} of {} stamps read back", sent.len());
    }
}
