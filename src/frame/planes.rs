//! Read-only access to a frame's 4:2:0 planes (I420 or NV12), for processors that analyse the
//! picture without drawing on it (no copy, no conversion).

use gst_video::VideoFrameRef;
use gst_video::prelude::*;

use super::FrameError;

/// A frame's planes, mapped for reading.
pub struct Planes<'a> {
    frame: VideoFrameRef<&'a gst::BufferRef>,
    nv12: bool,
}

impl<'a> Planes<'a> {
    /// Maps a buffer whose layout is `info` (I420 or NV12).
    pub fn new(
        buffer: &'a gst::BufferRef,
        info: &gst_video::VideoInfo,
    ) -> Result<Self, FrameError> {
        let nv12 = match info.format() {
            gst_video::VideoFormat::I420 => false,
            gst_video::VideoFormat::Nv12 => true,
            other => return Err(FrameError::Format(other.to_str().to_string())),
        };
        let frame =
            VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| FrameError::Map)?;
        Ok(Self { frame, nv12 })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.frame.width() as usize
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.frame.height() as usize
    }

    /// The luma plane and its stride.
    pub fn luma(&self) -> (&[u8], usize) {
        (
            self.frame.plane_data(0).unwrap_or(&[]),
            self.frame.plane_stride()[0] as usize,
        )
    }

    /// The chroma planes: `(u, v, stride, step)` where the sample of chroma pixel `(cx, cy)` is at
    /// `cy * stride + cx * step` in `u` and in `v` (NV12 interleaves them: `v` is `u` moved by one).
    pub fn chroma(&self) -> (&[u8], &[u8], usize, usize) {
        let strides = self.frame.plane_stride();
        if self.nv12 {
            let uv = self.frame.plane_data(1).unwrap_or(&[]);
            (uv, uv.get(1..).unwrap_or(&[]), strides[1] as usize, 2)
        } else {
            (
                self.frame.plane_data(1).unwrap_or(&[]),
                self.frame.plane_data(2).unwrap_or(&[]),
                strides[1] as usize,
                1,
            )
        }
    }
}
