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
    /// Output time minus encoder time: this pipeline's timeline keeps the encoder's spacing.
    offset: std::sync::Mutex<Option<i128>>,
}

impl AppSrcFeed {
    /// A feed that holds at most `max_frames` access units before dropping.
    pub fn new(name: impl Into<String>, appsrc: &gst_app::AppSrc, max_frames: u64) -> Self {
        Self {
            name: name.into(),
            appsrc: appsrc.downgrade(),
            max_frames,
            offset: std::sync::Mutex::new(None),
        }
    }

    /// Makes an appsrc ready for this use: live, never blocking the publisher. Buffers keep
    /// the encoder's spacing, moved onto this pipeline's own timeline; until that pipeline has
    /// a clock, the appsrc stamps them on arrival.
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

impl AppSrcFeed {
    /// Moves an encoder timestamp onto this pipeline's timeline, keeping the spacing; re-anchors
    /// on this pipeline's clock when they drift apart (a backlog, a pause). `None`: let the
    /// appsrc stamp it.
    fn retime(
        &self,
        pts: Option<gst::ClockTime>,
        now: Option<gst::ClockTime>,
    ) -> Option<gst::ClockTime> {
        let (pts, now) = (pts?.nseconds() as i128, now?.nseconds() as i128);
        let mut offset = self.offset.lock().ok()?;
        let out = match *offset {
            Some(o) if (pts + o - now).unsigned_abs() <= u128::from(crate::encode::MAX_DRIFT) => {
                pts + o
            }
            _ => {
                *offset = Some(now - pts);
                now
            }
        };
        Some(gst::ClockTime::from_nseconds(out.max(0) as u64))
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
        let mut buffer = buffer;
        let out = self.retime(buffer.pts(), appsrc.current_running_time());
        {
            let b = buffer.make_mut();
            b.set_pts(out);
            b.set_dts(out);
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
