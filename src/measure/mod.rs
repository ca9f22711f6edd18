//! Measuring framegate from the outside: a capture-time stamp drawn into test frames, which
//! survives H.264, and the probe that reads it back from any output.

mod probe;
mod stamp;
mod ws_source;

pub use probe::{Ages, ProbeReport, probe};
pub use stamp::{STAMP_BITS, read_stamp, write_stamp};
