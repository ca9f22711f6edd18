//! A feed into an `appsrc` of another pipeline (an RTSP mount, a push output): the appsrc's
//! queue is the feed's buffer, bounded in frames.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::fanout::{EncodedSink, Offer};

/// Pushes access units into an appsrc, holding it weakly: when its pipeline goes away, the feed
/// reports itself gone.
pub struct AppSrcFeed {
    name: String,
    appsrc: gst::glib::WeakRef<gst_app::AppSrc>,
    max_frames: u64,
    timing: Timing,
}

/// How a feed stamps what it pushes.
enum Timing {
    /// Moved onto the pipeline's clock; `anchors`: this feed may set or move the offset (video
    /// does; audio follows the offset the video set, so that the two stay together).
    Retimed {
        retimer: Arc<Retimer>,
        anchors: bool,
    },
    /// Kept as they are (a pipeline that does not run on a clock: an audio transcode).
    Kept,
}

/// The offset between the encoder's timeline and one output pipeline's clock, shared by the
/// feeds of that pipeline (its video and its audio).
#[derive(Debug, Default)]
pub struct Retimer {
    /// Output time minus encoder time.
    offset: Mutex<Option<i128>>,
}

impl Retimer {
    /// A retimer for one output pipeline.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Moves an encoder timestamp onto the pipeline's timeline, keeping the spacing; re-anchors
    /// on the pipeline's clock when they drift apart (a backlog, a pause), when `anchors`.
    fn retime(&self, pts: i128, now: i128, anchors: bool) -> i128 {
        let mut offset = crate::supervise::lock(&self.offset);
        match *offset {
            Some(o) if !anchors => pts + o,
            Some(o) if (pts + o - now).unsigned_abs() <= u128::from(crate::encode::MAX_DRIFT) => {
                pts + o
            }
            _ => {
                *offset = Some(now - pts);
                now
            }
        }
    }
}

impl AppSrcFeed {
    /// A feed that holds at most `max_frames` access units before dropping, with a timeline
    /// of its own.
    pub fn new(name: impl Into<String>, appsrc: &gst_app::AppSrc, max_frames: u64) -> Self {
        Self::sharing(name, appsrc, max_frames, &Retimer::new(), true)
    }

    /// A feed on a timeline shared with the other feeds of its pipeline; only a feed that
    /// `anchors` moves it.
    pub fn sharing(
        name: impl Into<String>,
        appsrc: &gst_app::AppSrc,
        max_frames: u64,
        retimer: &Arc<Retimer>,
        anchors: bool,
    ) -> Self {
        Self {
            name: name.into(),
            appsrc: appsrc.downgrade(),
            max_frames,
            timing: Timing::Retimed {
                retimer: retimer.clone(),
                anchors,
            },
        }
    }

    /// A feed that keeps the encoder's timestamps (its pipeline runs on no clock).
    pub fn keeping_times(
        name: impl Into<String>,
        appsrc: &gst_app::AppSrc,
        max_frames: u64,
    ) -> Self {
        Self {
            name: name.into(),
            appsrc: appsrc.downgrade(),
            max_frames,
            timing: Timing::Kept,
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

    /// An appsrc like [`AppSrcFeed::appsrc`] for audio: its caps come with the first packet
    /// when they are not known yet.
    pub fn audio_appsrc(caps: Option<&gst::Caps>) -> gst_app::AppSrc {
        let b = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(true)
            .block(false);
        match caps {
            Some(c) => b.caps(c).build(),
            None => b.build(),
        }
    }
}

impl AppSrcFeed {
    /// This pipeline's time for an encoder timestamp. `None`: let the appsrc stamp it (no
    /// clock yet).
    fn retime(
        &self,
        pts: Option<gst::ClockTime>,
        now: Option<gst::ClockTime>,
    ) -> Option<gst::ClockTime> {
        let Timing::Retimed { retimer, anchors } = &self.timing else {
            return pts;
        };
        let (pts, now) = (pts?.nseconds() as i128, now?.nseconds() as i128);
        let out = retimer.retime(pts, now, *anchors);
        Some(gst::ClockTime::from_nseconds(out.max(0) as u64))
    }
}

/// The appsrc's running time now, once its pipeline is playing: `None` before (the appsrc then
/// stamps buffers itself, in its streaming thread, which runs only once playing). While a
/// pipeline starts, its elements get the clock before their base time: read in that window,
/// the running time is the clock's own time (the machine's uptime), an anchor that leaves the
/// output's sink waiting for hours on the first buffer while the feed stays full.
fn running_time(appsrc: &gst_app::AppSrc) -> Option<gst::ClockTime> {
    if appsrc.current_state() != gst::State::Playing {
        return None;
    }
    appsrc.current_running_time()
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
        let out = self.retime(buffer.pts(), running_time(&appsrc));
        // A camera's B-frames (passed through) decode before they show: the decode time keeps
        // its distance to the presentation time.
        // (Sound has no reordering: an encoder's priming taken off its PTS only.)
        let video = sample
            .caps()
            .and_then(|c| c.structure(0))
            .is_some_and(|s| s.name().starts_with("video/"));
        let reorder = match (buffer.pts(), buffer.dts()) {
            (Some(p), Some(d)) if video && d < p => p - d,
            _ => gst::ClockTime::ZERO,
        };
        {
            let b = buffer.make_mut();
            b.set_pts(out);
            b.set_dts(out.map(|t| t.saturating_sub(reorder)));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Between getting the clock and getting its base time, an element of a starting pipeline
    /// reports the clock's own time as its running time; the feed reads none until playing.
    #[test]
    fn no_running_time_is_taken_before_the_output_plays() {
        gst::init().unwrap();
        let appsrc = AppSrcFeed::appsrc(None);
        let sink = gst::ElementFactory::make("fakesink")
            .property("async", false)
            .build()
            .unwrap();
        let pipeline = gst::Pipeline::new();
        pipeline.add_many([appsrc.upcast_ref(), &sink]).unwrap();
        appsrc.link(&sink).unwrap();
        let clock = gst::SystemClock::obtain();
        appsrc.set_clock(Some(&clock)).unwrap();
        let raw = appsrc.current_running_time().unwrap();
        assert!(raw + gst::ClockTime::SECOND >= clock.time(), "{raw}");
        assert_eq!(running_time(&appsrc), None);

        pipeline.set_state(gst::State::Playing).unwrap();
        let (done, state, _) = pipeline.state(gst::ClockTime::from_seconds(10));
        assert!(
            done.is_ok() && state == gst::State::Playing,
            "{done:?} {state:?}"
        );
        let playing = running_time(&appsrc).unwrap();
        assert!(
            Duration::from(playing) < Duration::from_secs(10),
            "{playing}"
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
