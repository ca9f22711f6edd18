//! A decoded video frame with its metadata: what travels from ingest through the processors to
//! the encoder. The pixels stay in the decoder's native 4:2:0 layout (I420 or NV12); nothing
//! converts them to RGB unless a processor asks.

mod canvas;
mod planes;
mod slot;
pub mod source_pts;
mod tap;

use std::time::SystemTime;

use gst_video::VideoInfo;

use crate::config::StreamId;

pub use canvas::{Canvas, Yuv};
pub use planes::Planes;
pub use slot::{LatestSlot, SlotRecv};
pub use tap::{FrameTap, TappedFrame, frame_tap};

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// An object found in a frame (by a detector, or given by a source).
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Detection {
    /// Where it is, in frame pixels.
    pub rect: Rect,
    /// What it is (`person`, `car`, ...).
    pub label: String,
    /// Confidence, 0 to 1.
    pub score: f32,
}

/// An object followed over frames by the `track` processor, where it is in this frame.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct TrackBox {
    /// The track's id, unique in the stream (from 1).
    pub id: u64,
    /// Where it is in this frame (predicted from its motion between detector results).
    pub rect: Rect,
    /// Its class.
    pub label: String,
    /// The score of its last detection.
    pub score: f32,
    /// Its centre's velocity, pixels per second `[vx, vy]`.
    pub velocity: [f32; 2],
    /// Seconds since it was first seen.
    pub age_s: f32,
    /// Its centre at its last detections, oldest first (for drawing its path).
    pub trail: Vec<[f32; 2]>,
}

/// Everything known about a frame besides its pixels.
#[derive(Debug, Clone)]
pub struct FrameMeta {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Frame number within the stream, from 0, counting every decoded frame (dropped ones too).
    pub seq: u64,
    /// Wall-clock time the frame left the decoder.
    pub capture_time: SystemTime,
    /// Objects found in it.
    pub detections: Vec<Detection>,
    /// The source PTS (nanoseconds) of the frame `detections` were found in: it changes when a
    /// detector's new result arrives (a result takes the model's time, so it is older than this
    /// frame).
    pub detections_pts: Option<u64>,
    /// Objects followed by the `track` processor, where they are in this frame (none: the
    /// stream has no tracker).
    pub tracks: Option<Vec<TrackBox>>,
    /// Set by `skip_similar` when the frame is too like the last processed one: the processors
    /// after it reuse their last result.
    pub similar: bool,
    /// Set by a processor that kept the frame's pixels (a `python` function past its budget):
    /// the frame goes to no output, the previous one is shown again in its place.
    pub withheld: bool,
    /// Set by [`Frame::canvas`] when it had to copy the pixels before drawing: something else
    /// (the decoder, keeping it as a reference) still held them.
    pub copied: bool,
}

impl FrameMeta {
    /// Metadata of a new frame: no detections yet.
    pub fn new(stream: StreamId, seq: u64, capture_time: SystemTime) -> Self {
        Self {
            stream,
            seq,
            capture_time,
            detections: Vec::new(),
            detections_pts: None,
            tracks: None,
            similar: false,
            withheld: false,
            copied: false,
        }
    }
}

/// A decoded frame: a GStreamer buffer in a 4:2:0 layout, its geometry and its metadata.
#[derive(Debug)]
pub struct Frame {
    buffer: gst::Buffer,
    info: VideoInfo,
    /// Metadata that processors read and extend.
    pub meta: FrameMeta,
}

/// The pixel layouts a processor may see.
pub const NATIVE_FORMATS: [gst_video::VideoFormat; 2] =
    [gst_video::VideoFormat::I420, gst_video::VideoFormat::Nv12];

impl Frame {
    /// Wraps a buffer whose layout is `info` (I420 or NV12).
    pub fn new(buffer: gst::Buffer, info: VideoInfo, meta: FrameMeta) -> Self {
        Self { buffer, info, meta }
    }

    /// Geometry and pixel layout.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.info.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.info.height()
    }

    /// The pixels, read-only.
    pub fn buffer(&self) -> &gst::Buffer {
        &self.buffer
    }

    /// A canvas to draw on. The first call copies the pixels when the decoder still holds them
    /// (it keeps decoded frames as references), so processors that only read never pay for it.
    pub fn canvas(&mut self) -> Result<Canvas<'_>, FrameError> {
        if held_elsewhere(&self.buffer) {
            self.meta.copied = true;
        }
        let buffer = self.buffer.make_mut();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &self.info)
            .map_err(|_| FrameError::Map)?;
        Canvas::new(frame)
    }

    /// The pixels, read-only, by plane (no copy).
    pub fn planes(&self) -> Result<Planes<'_>, FrameError> {
        Planes::new(self.buffer.as_ref(), &self.info)
    }

    /// Takes the pixels out (to hand them to another thread), leaving an empty buffer.
    pub fn take_buffer(&mut self) -> gst::Buffer {
        std::mem::replace(&mut self.buffer, gst::Buffer::new())
    }

    /// Puts pixels of the same layout back (after [`Frame::take_buffer`]).
    pub fn put_buffer(&mut self, buffer: gst::Buffer) {
        self.buffer = buffer;
    }

    /// The buffer, for the encoder.
    pub fn into_parts(self) -> (gst::Buffer, VideoInfo, FrameMeta) {
        (self.buffer, self.info, self.meta)
    }
}

/// Whether writing on `buffer`'s pixels would copy them first: the buffer, or its memory, is
/// also held elsewhere (a decoder keeping the picture as a reference).
pub fn held_elsewhere(buffer: &gst::Buffer) -> bool {
    !(buffer.is_writable() && buffer.is_all_memory_writable())
}

/// Why a frame's pixels could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The buffer could not be mapped.
    #[error("cannot map the frame's memory")]
    Map,
    /// The layout is not one framegate draws on.
    #[error("pixel format {0} is not supported (I420 and NV12 are)")]
    Format(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buffer: gst::Buffer, info: &VideoInfo) -> Frame {
        let id = "cam".to_string().try_into().expect("id");
        Frame::new(
            buffer,
            info.clone(),
            FrameMeta::new(id, 0, SystemTime::now()),
        )
    }

    #[test]
    fn a_canvas_copies_only_pixels_held_elsewhere() {
        gst::init().expect("gstreamer");
        let info = VideoInfo::builder(gst_video::VideoFormat::I420, 64, 48)
            .build()
            .expect("layout");
        let pixels = gst::Buffer::with_size(info.size()).expect("buffer");

        // The only reference: drawn in place.
        let mut only = frame(pixels.copy_deep().expect("copy"), &info);
        only.canvas().expect("canvas");
        assert!(!only.meta.copied);

        // The buffer held elsewhere too (a decoder's reference frame): copied first.
        let held = pixels.clone();
        let mut shared = frame(pixels.clone(), &info);
        shared.canvas().expect("canvas");
        assert!(shared.meta.copied);

        // A buffer of its own over memory held elsewhere: copied too.
        let mut over = gst::Buffer::new();
        over.get_mut()
            .expect("new")
            .append_memory(held.memory(0).expect("memory"));
        let mut memory = frame(over, &info);
        memory.canvas().expect("canvas");
        assert!(memory.meta.copied);
        drop(held);
    }
}
