//! Each result of a stream's detector as it comes, with the source time of the frame it was
//! found in: what a viewer needs to draw the boxes over that very frame
//! (`GET /streams/{id}/whep/{session}/boxes`). Readers that fall behind skip results; the
//! detector never waits for them.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::frame::{Detection, TrackBox};

/// Results kept for a reader that is late: under a second of any detector's output.
const BACKLOG: usize = 16;

/// One result: the boxes found in the frame of source PTS `source_pts`.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The frame's source PTS, nanoseconds.
    pub source_pts: u64,
    /// The frame's size, which the boxes are in.
    pub width: u32,
    /// The frame's height.
    pub height: u32,
    /// What was found (none: the frame is empty of the wanted classes).
    pub boxes: Vec<Detection>,
    /// From a tracker: the tracks in that frame (ids, boxes, trails), instead of `boxes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackBox>,
}

/// The results of one detector, offered to whoever listens.
pub struct LiveResults(broadcast::Sender<Arc<Found>>);

impl Default for LiveResults {
    fn default() -> Self {
        Self(broadcast::channel(BACKLOG).0)
    }
}

impl LiveResults {
    /// Offers a result, made only when somebody listens.
    pub fn publish(&self, found: impl FnOnce() -> Found) {
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(Arc::new(found()));
        }
    }

    /// Results from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Found>> {
        self.0.subscribe()
    }
}
