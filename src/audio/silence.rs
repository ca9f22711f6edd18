//! One frame of silence in a track's own codec, made once per format: repeated with new times,
//! it keeps the track going while the source sends no audio (NO SIGNAL).
//!
//! A steady-state frame of an encoded silence decodes to silence wherever it is repeated (the
//! encoder's start-up frames, which carry its priming, are skipped). For AAC the frame comes
//! from an AAC-LC encoder at the track's rate and channels, and is sent under the track's own
//! caps: the AAC every camera and OBS send.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use gst::prelude::*;

use crate::elements::make;

use super::codec::{AudioCodec, AudioFormat};

/// A frame of silence and how long it lasts.
#[derive(Debug, Clone)]
pub struct SilentFrame {
    /// The encoded frame (no timestamps).
    pub buffer: gst::Buffer,
    /// Its duration in nanoseconds.
    pub duration: u64,
}

/// Milliseconds of silence per frame for the codecs whose frames have no fixed size.
const PCM_FRAME_MS: u64 = 20;
/// Frames encoded to reach the encoder's steady state.
const WARM_UP_FRAMES: u64 = 12;
/// The most the encoding may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A frame of silence for `format`.
pub fn frame(format: &AudioFormat) -> Result<SilentFrame> {
    let bytes_per_ms = |bytes_per_sample: u64| {
        format.rate as u64 * format.channels as u64 * bytes_per_sample * PCM_FRAME_MS / 1000
    };
    let pcm = |byte: u8, per_sample: u64| SilentFrame {
        buffer: gst::Buffer::from_mut_slice(vec![byte; bytes_per_ms(per_sample) as usize]),
        duration: PCM_FRAME_MS * 1_000_000,
    };
    match format.codec {
        // The G.711 codes of a zero sample.
        AudioCodec::Pcma => Ok(pcm(0xd5, 1)),
        AudioCodec::Pcmu => Ok(pcm(0xff, 1)),
        AudioCodec::L16 => Ok(pcm(0, 2)),
        AudioCodec::Aac | AudioCodec::Mp3 | AudioCodec::Opus => encoded(format),
    }
}

/// Encodes a short silence and keeps a frame of its steady state.
fn encoded(format: &AudioFormat) -> Result<SilentFrame> {
    let encoder_name = format
        .codec
        .encoder()
        .context("no encoder for this codec")?;
    let pipeline = gst::Pipeline::new();
    let src = make("audiotestsrc")?;
    src.set_property_from_str("wave", "silence");
    src.set_property("num-buffers", WARM_UP_FRAMES as i32);
    // 60 ms per buffer: more than any encoder's frame, so every buffer yields frames.
    src.set_property("samplesperbuffer", (format.rate * 60 / 1000) as i32);
    let raw = make("capsfilter")?;
    raw.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("format", "S16LE")
            .field("layout", "interleaved")
            .field("rate", format.rate as i32)
            .field("channels", format.channels as i32)
            .build(),
    );
    let convert = make("audioconvert")?;
    let encoder = make(encoder_name)?;
    let parse = match format.codec.parser() {
        Some(p) => make(p)?,
        None => make("identity")?,
    };
    let sink = gst_app::AppSink::builder().sync(false).build();
    let chain = [&src, &raw, &convert, &encoder, &parse, sink.upcast_ref()];
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)
        .with_context(|| format!("{encoder_name} cannot encode {}", format.describe()))?;
    pipeline.set_state(gst::State::Playing)?;
    let mut frames = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let result = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break Err(anyhow::anyhow!("encoding silence took too long"));
        }
        match sink.try_pull_sample(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) {
            Some(s) => frames.extend(s.buffer_owned()),
            None if sink.is_eos() => break Ok(()),
            None => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    // One from the middle: past the encoder's priming, before its flush at the end.
    let Some(mut buffer) = frames.get(frames.len() / 2).cloned() else {
        bail!("{encoder_name} made no frame of silence");
    };
    let duration = buffer
        .duration()
        .map(gst::ClockTime::nseconds)
        .filter(|d| *d > 0)
        .context("the silent frame has no duration")?;
    {
        let b = buffer.make_mut();
        b.set_pts(gst::ClockTime::NONE);
        b.set_dts(gst::ClockTime::NONE);
        b.set_duration(gst::ClockTime::NONE);
    }
    Ok(SilentFrame { buffer, duration })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_frames_have_the_codec_frame_length() {
        gst::init().expect("gstreamer");
        let f = |codec, rate, channels| {
            frame(&AudioFormat {
                codec,
                rate,
                channels,
            })
            .expect("a silent frame")
        };
        let aac = f(AudioCodec::Aac, 48_000, 2);
        // 1024 samples at 48 kHz.
        assert_eq!(aac.duration / 1000, 21_333);
        assert!(aac.buffer.size() > 0 && aac.buffer.pts().is_none());
        let opus = f(AudioCodec::Opus, 48_000, 1);
        assert_eq!(opus.duration, 20_000_000);
        let alaw = f(AudioCodec::Pcma, 8_000, 1);
        assert_eq!(alaw.buffer.size(), 160);
        assert!(
            alaw.buffer
                .map_readable()
                .expect("map")
                .iter()
                .all(|b| *b == 0xd5)
        );
        let mp3 = f(AudioCodec::Mp3, 44_100, 2);
        assert_eq!(mp3.duration / 1000, 26_122);
    }
}
