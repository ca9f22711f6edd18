//! One transcode of a stream's audio to another codec, shared by every output that needs that
//! codec (all WebRTC viewers of a stream share one Opus encode):
//!
//! ```text
//! source fan-out ─▶ appsrc (times kept) → decodebin → audioconvert → audioresample
//!                 → capsfilter (rate, ≤ 2 channels) → encoder → parser → appsink ─▶ its fan-out
//! ```
//! Timestamps go through unchanged (the pipeline does not run on a clock), so the transcoded
//! packets sit on the same output timeline as the video.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::elements::{PadFilter, link_new_pads, make, retimed};
use crate::publish::{AppSrcFeed, EncodedSink, Fanout};

use super::codec::{AudioCodec, AudioFormat, target_rate};

/// How far an encoder's output times may stray from its input's before it takes them again.
const RESYNC_TOLERANCE_NS: i64 = 10_000_000;

/// Packets a transcode may have waiting before it drops (about a second).
const QUEUE_PACKETS: u64 = 50;

/// A running transcode.
pub struct Transcoder {
    from: AudioFormat,
    target: AudioFormat,
    out: Arc<Fanout>,
    source: Arc<Fanout>,
    feed: Arc<dyn EncodedSink>,
    pipeline: gst::Pipeline,
}

impl Transcoder {
    /// Starts transcoding what `source` carries (`from`) to `target`; its packets go to `out`
    /// (kept across restarts, so that outputs need not follow) and are counted in `packets`.
    pub fn start(
        stream: &str,
        source: &Arc<Fanout>,
        from: AudioFormat,
        target: AudioCodec,
        out: Arc<Fanout>,
        packets: Arc<AtomicU64>,
    ) -> Result<Self> {
        let channels = from.channels.clamp(1, 2);
        let rate = target_rate(target, from.rate);
        let encoder_name = target.encoder().context("no encoder makes this codec")?;
        let pipeline = gst::Pipeline::new();
        let appsrc = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(false)
            .block(false)
            .build();
        if let Some(caps) = source.caps() {
            appsrc.set_caps(Some(&caps));
        }
        let decode = make("decodebin")?;
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let filter = make("capsfilter")?;
        filter.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", rate as i32)
                .field("channels", channels as i32)
                .build(),
        );
        let encoder = make(encoder_name)?;
        // The encoder counts samples from the time it last took from its input, until that
        // time and its count differ by more than this: 40 ms by default, which let the sound
        // drift that far behind the picture as the video's offset moved under it.
        if encoder.find_property("tolerance").is_some() {
            encoder.set_property("tolerance", RESYNC_TOLERANCE_NS);
        }
        let parse = match target.parser() {
            Some(p) => make(p)?,
            None => make("identity")?,
        };
        let sink = gst_app::AppSink::builder().sync(false).build();
        // decodebin's pad is linked to the rest when it appears.
        let rest = [
            &convert,
            &resample,
            &filter,
            &encoder,
            &parse,
            sink.upcast_ref(),
        ];
        pipeline.add_many([appsrc.upcast_ref(), &decode])?;
        pipeline.add_many(rest)?;
        appsrc.link(&decode)?;
        gst::Element::link_many(rest)
            .with_context(|| format!("{encoder_name} cannot encode {rate} Hz"))?;
        link_new_pads(&decode, &convert, PadFilter::Any);
        let priming = super::codec::encoder_priming_ns(target, rate);
        {
            let out = out.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let mut sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        packets.fetch_add(1, Ordering::Relaxed);
                        if priming > 0 {
                            sample = retimed(sample, |t| {
                                Some(gst::ClockTime::from_nseconds(
                                    t.nseconds().saturating_sub(priming),
                                ))
                            });
                        }
                        out.publish(&sample);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline
            .set_state(gst::State::Playing)
            .context("cannot start the audio transcode")?;
        let feed: Arc<dyn EncodedSink> = Arc::new(AppSrcFeed::keeping_times(
            format!(
                "audio transcode {stream} {} → {}",
                from.codec.name(),
                target.name()
            ),
            &appsrc,
            QUEUE_PACKETS,
        ));
        source.add(feed.clone());
        tracing::info!(
            stream,
            "audio: transcoding {} to {} at {rate} Hz",
            from.describe(),
            target.name()
        );
        Ok(Self {
            from,
            target: AudioFormat {
                codec: target,
                rate,
                channels,
            },
            out,
            source: source.clone(),
            feed,
            pipeline,
        })
    }

    /// What it takes.
    pub fn source_format(&self) -> AudioFormat {
        self.from
    }

    /// What it makes.
    pub fn target(&self) -> AudioFormat {
        self.target
    }

    /// Where its packets go.
    pub fn out(&self) -> &Arc<Fanout> {
        &self.out
    }

    /// Whether it failed (its pipeline posted an error).
    pub fn failed(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Some(crate::elements::error_text(e));
            }
        }
        None
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        self.source.remove(&self.feed);
        crate::elements::stop(&self.pipeline);
    }
}
