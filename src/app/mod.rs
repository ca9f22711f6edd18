//! The commands a user runs: `run` (the gateway), `process` (a file, as fast as possible),
//! `testsrc` (stand-in cameras) and `check` (validate a config).

mod arenas;
mod check;
mod cluster;
mod file_audio;
mod probe;
mod process_file;
mod run;
mod testsrc;
mod track_replay;
mod watermark_read;

pub use arenas::bound_malloc_arenas;
pub use check::{check, check_and_report};
pub use cluster::{import as cluster_import, print_status as print_cluster_status};
pub use probe::probe;
pub use process_file::{ProcessArgs, ProcessReport, process_file};
pub use run::{run, run_command};
pub use testsrc::{TestSourceArgs, run_test_source};
pub use track_replay::{ReplayReport, replay as replay_tracks};
pub use watermark_read::{WindowReport, read_and_print, read_watermark};

/// Initialises GStreamer and logs which hardware codecs this machine has.
pub fn init_media() -> anyhow::Result<()> {
    gst::init().map_err(|e| anyhow::anyhow!("cannot initialise GStreamer: {e}"))?;
    crate::hardware::capabilities();
    Ok(())
}
