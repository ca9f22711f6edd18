//! Ingest: a GStreamer pipeline per source that ends in raw 4:2:0 frames handed to Rust.
//!
//! ```text
//! rtspsrc (latency 0, TCP|UDP) ─┐
//! rtmp2src ─────────────────────┼→ decodebin (NVDEC or libav) → videoconvert* → fakesink → on_frame
//! filesrc ──────────────────────┘
//! videotestsrc (is-live) → capsfilter ─────────────────────────→ videoconvert* → fakesink → on_frame
//!                                   * passthrough unless the decoder's layout is not I420/NV12
//!                                decodebin's audio pad (encoded) → parser → appsink → audio track
//! ```
//! A stream that passes its video through puts parsebin first: its H.264 goes out as it is
//! and to the decoder (`passthrough.rs`).
//! decodebin stops at encoded audio (`audio.rs`): audio is never decoded here. An RTSP source's
//! streams each get a decodebin of their own.

mod audio;
mod passthrough;
mod pipeline;
pub mod presence;
mod source;

pub use passthrough::{AccessUnits, DecodeCounters, Passthrough};
pub use pipeline::{Ingest, IngestOptions, SourceInfo};
