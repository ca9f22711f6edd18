//! Small helpers for building GStreamer pipelines with typed element builders.

use anyhow::{Context, Result};

/// Creates an element, with an error that names the missing plugin package.
pub fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory).build().with_context(|| {
        format!(
            "GStreamer element `{factory}` is missing: install the GStreamer plugins \
             (scripts/setup-debian.sh)"
        )
    })
}

/// Posts nothing and waits for nothing: sets a pipeline to NULL, logging a failure.
pub fn stop(pipeline: &gst::Pipeline) {
    use gst::prelude::*;
    if let Err(e) = pipeline.set_state(gst::State::Null) {
        tracing::debug!("stopping a pipeline: {e}");
    }
}

/// The message of a bus error with the element that posted it, for logs and status.
pub fn error_text(err: &gst::message::Error) -> String {
    use gst::prelude::*;
    let src = err
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    format!("{src}: {}", err.error())
}
