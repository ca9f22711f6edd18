//! The processed-frame tap: the newest frame a stream sends to its encoder (live, held or
//! slate), for consumers that want pictures rather than H.264 (JPEG for browsers). A watch
//! channel: it keeps only the newest frame, and a slow reader simply sees fewer.

use std::time::SystemTime;

use tokio::sync::watch;

/// A frame as sent to the encoder.
#[derive(Debug, Clone)]
pub struct TappedFrame {
    /// The pixels (a reference, not a copy).
    pub buffer: gst::Buffer,
    /// Their layout.
    pub info: gst_video::VideoInfo,
    /// Increases with every frame sent.
    pub seq: u64,
    /// When the frame was captured (for held and slate frames: when it was sent).
    pub capture_time: SystemTime,
}

/// The sending side, owned by the processing worker.
pub type FrameTap = watch::Sender<Option<TappedFrame>>;

/// A new tap and nothing in it.
pub fn frame_tap() -> FrameTap {
    watch::Sender::new(None)
}
