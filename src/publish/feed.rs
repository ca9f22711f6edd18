//! A feed into an `appsrc` of another pipeline (an RTSP mount, a push output): the appsrc's
//! queue is the feed's buffer, bounded in frames.

use gst::prelude::*;

use super::fanout::{EncodedSink, Offer};

/// Pushes access units into an appsrc, holding it weakly: when its pipeline goes away, the feed
/// reports itself gone.
pub struct AppSrcFeed {
    name: String,
    appsrc: gst::glib::WeakRef<gst_app::AppSrc>,
    max_frames: u64,
}

impl AppSrcFeed {
    /// A feed that holds at most `max_frames` access units before dropping.
    pub fn new(name: impl Into<String>, appsrc: &gst_app::AppSrc, max_frames: u64) -> Self {
        Self {
            name: name.into(),
            appsrc: appsrc.downgrade(),
            max_frames,
        }
    }

    /// Makes an appsrc ready for this use: live, time-stamped by its own pipeline clock on
    /// arrival (each output pipeline has its own timeline), never blocking the publisher.
    pub fn appsrc(caps: Option<&gst::Caps>) -> gst_app::AppSrc {
        let default_caps = gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build();
        gst_app::AppSrc::builder()
            .caps(caps.unwrap_or(&default_caps))
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(true)
            .block(false)
            .build()
    }
}

impl EncodedSink for AppSrcFeed {
    fn name(&self) -> &str {
        &self.name
    }

    fn offer(&self, sample: &gst::Sample) -> Offer {
        let Some(appsrc) = self.appsrc.upgrade() else {
            return Offer::Gone;
        };
        if appsrc.current_level_buffers() >= self.max_frames {
            return Offer::Full;
        }
        let Some(buffer) = sample.buffer_owned() else {
            return Offer::Taken;
        };
        if let Some(caps) = sample.caps()
            && appsrc.caps().as_ref().is_none_or(|c| c.as_ref() != caps)
        {
            appsrc.set_caps(Some(&caps.to_owned()));
        }
        // Timestamps of the encoder's timeline mean nothing to this pipeline: clear them so the
        // appsrc stamps the buffer with its own running time.
        let mut buffer = buffer;
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::NONE);
            b.set_dts(gst::ClockTime::NONE);
        }
        match appsrc.push_buffer(buffer) {
            Ok(_) => Offer::Taken,
            Err(gst::FlowError::Eos) => Offer::Gone,
            Err(_) => Offer::Full,
        }
    }

    fn finish(&self) {
        if let Some(appsrc) = self.appsrc.upgrade() {
            let _ = appsrc.end_of_stream();
        }
    }
}
