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

/// The sample with its buffer's PTS and DTS passed through `f` (a time `f` maps to `None` is
/// left unset), its caps kept and its segment left out.
pub fn retimed(
    sample: gst::Sample,
    f: impl Fn(gst::ClockTime) -> Option<gst::ClockTime>,
) -> gst::Sample {
    let Some(mut buffer) = sample.buffer_owned() else {
        return sample;
    };
    {
        let b = buffer.make_mut();
        let (pts, dts) = (b.pts().and_then(&f), b.dts().and_then(&f));
        b.set_pts(pts);
        b.set_dts(dts);
    }
    let caps = sample.caps_owned();
    let mut out = gst::Sample::builder().buffer(&buffer);
    if let Some(caps) = &caps {
        out = out.caps(caps);
    }
    out.build()
}

/// What a buffer probe returns to drop the buffer: `Handled` (the probe consumed it, and the
/// binding releases it). `Drop` would have GStreamer 1.22 release it a second time, as
/// nothing: a critical warning per dropped buffer.
pub const DROP_BUFFER: gst::PadProbeReturn = gst::PadProbeReturn::Handled;

/// Which dynamic pads [`link_new_pads`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadFilter {
    /// Any pad.
    Any,
    /// Only pads whose caps are `video/...`.
    Video,
}

/// Links the pads `src` adds later (demuxers, decodebin, rtspsrc) to `dest`'s sink pad, the
/// first matching one only; `dest` is held weakly, so no reference cycle is made.
pub fn link_new_pads(src: &gst::Element, dest: &gst::Element, filter: PadFilter) {
    use gst::prelude::*;
    let dest = dest.downgrade();
    src.connect_pad_added(move |src, pad| {
        let wanted = filter == PadFilter::Any
            || pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
        let Some(dest) = dest.upgrade() else { return };
        if let Some(sinkpad) = dest.static_pad("sink")
            && wanted
            && !sinkpad.is_linked()
            && let Err(e) = pad.link(&sinkpad)
        {
            tracing::warn!("cannot link {} to {}: {e:?}", src.name(), dest.name());
        }
    });
}

/// `uridecodebin` for a URL or `file://` URI, reading RTSP over TCP as a player would, with a
/// jitter buffer of `rtsp_latency_ms` when given.
pub fn uri_decoder(uri: &str, rtsp_latency_ms: Option<u32>) -> Result<gst::Element> {
    use gst::prelude::*;
    let src = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .build()
        .context("GStreamer element `uridecodebin` is missing")?;
    src.connect("source-setup", false, move |args| {
        if let Some(source) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
            && source.find_property("protocols").is_some()
        {
            source.set_property_from_str("protocols", "tcp");
            if let Some(ms) = rtsp_latency_ms
                && source.find_property("latency").is_some()
            {
                source.set_property("latency", ms);
            }
        }
        None
    });
    Ok(src)
}

/// An appsink taking 8-bit grey frames (luma), as fast as they come (the readers of stamps and
/// watermarks look at luma only).
pub fn gray8_sink() -> gst_app::AppSink {
    gst_app::AppSink::builder()
        .caps(
            &gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::Gray8)
                .build(),
        )
        .sync(false)
        .build()
}
