//! framegate: a real-time video analytics gateway.
//!
//! The modules follow the path of a frame: [`ingest`] (source → decoder) → [`frame`] (the
//! newest-frame slot) → [`process`] (processors) → [`encode`] (one H.264 encoder per stream) →
//! [`publish`] (fan-out to RTSP, RTMP, HLS, JPEG for browsers). [`stream`] supervises that
//! path for one stream; [`control`] owns the streams and serves the API, the dashboard and the
//! metrics; [`measure`] stamps and probes frames; [`app`] holds the commands; [`config`] is the
//! typed configuration.

pub mod alert;
pub mod app;
pub mod assets;
pub mod audio;
pub mod cluster;
pub mod config;
pub mod control;
pub mod elements;
pub mod encode;
pub mod frame;
mod fuzz;
pub mod hardware;
pub mod http_client;
pub mod ingest;
pub mod measure;
pub mod process;
pub mod publish;
pub mod redact;
pub mod store;
pub mod stream;
pub mod supervise;
