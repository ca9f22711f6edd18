//! The audio input of an output pipeline: an appsrc beside the video one, fed from the stream's
//! audio (the source's packets or a transcode) on the same output timeline as the video.

use std::sync::Arc;

use crate::audio::{AudioCodec, AudioFormat, AudioTrack, OutputAudio};

use super::fanout::{EncodedSink, Fanout};
use super::feed::{AppSrcFeed, Retimer};

/// Audio packets an output may hold before it drops (about a second).
pub const AUDIO_QUEUE_PACKETS: u64 = 50;

/// An output pipeline's audio appsrc and its feed (not fed until [`AudioInput::attach`]).
pub struct AudioInput {
    /// The appsrc to link into the pipeline.
    pub appsrc: gst_app::AppSrc,
    /// What it sends, for status.
    pub status: OutputAudio,
    /// Its codec (what the pipeline must payload or mux).
    pub codec: AudioCodec,
    fanout: Arc<Fanout>,
    feed: Arc<dyn EncodedSink>,
}

impl AudioInput {
    /// The audio for output `name`, which `carries` some formats and takes `target` otherwise;
    /// its timeline is the video's (`retimer`). `None` when the stream has no audio (yet).
    pub fn new(
        name: &str,
        track: &AudioTrack,
        carries: impl Fn(&AudioFormat) -> bool,
        target: AudioCodec,
        retimer: &Arc<Retimer>,
    ) -> Option<Self> {
        let feed = track.feed(carries, target)?;
        let appsrc = AppSrcFeed::audio_appsrc(feed.caps.as_ref());
        let sink: Arc<dyn EncodedSink> = Arc::new(AppSrcFeed::sharing(
            format!("{name} audio"),
            &appsrc,
            AUDIO_QUEUE_PACKETS,
            retimer,
            false,
        ));
        Some(Self {
            appsrc,
            status: OutputAudio::from(&feed),
            codec: feed.format.codec,
            fanout: feed.fanout,
            feed: sink,
        })
    }

    /// Starts feeding it.
    pub fn attach(&self) {
        self.fanout.add(self.feed.clone());
    }

    /// Stops feeding it.
    pub fn detach(&self) {
        self.fanout.remove(&self.feed);
    }
}
