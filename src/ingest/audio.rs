//! The audio branch of an ingest pipeline: decodebin's audio pad (encoded, as the source sent
//! it) → a parser that frames it → an appsink whose packets go to the stream's audio track.
//!
//! ```text
//! decodebin ─ audio/mpeg (AAC) ──▶ aacparse → raw AAC frames ─┐
//!           ─ audio/mpeg (MP3) ──▶ mpegaudioparse ────────────┤
//!           ─ audio/x-opus ──────▶ opusparse ─────────────────┼─▶ appsink ─▶ AudioTrack::push
//!           ─ audio/x-alaw|mulaw ─────────────────────────────┤
//!           ─ audio/x-raw ───────▶ audioconvert → S16BE (L16) ┘
//! ```

use std::sync::Arc;

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::audio::{AudioCodec, AudioTrack};
use crate::elements::make;

/// Packets the audio appsink holds before it drops the oldest (about a second).
const MAX_PACKETS: u32 = 50;

/// Links an audio pad to a new branch that ends in `track`; `sync`: packets are handed over at
/// their time (a file played in real time), else as they come.
pub(super) fn link(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    track: Arc<AudioTrack>,
    sync: bool,
) -> Result<()> {
    let caps = pad.current_caps().context("the audio pad has no caps")?;
    let Some(codec) = AudioCodec::from_caps(&caps) else {
        track.ignore(format!("its codec is not carried ({caps})"));
        return Ok(());
    };
    let mut chain: Vec<gst::Element> = Vec::new();
    match codec {
        AudioCodec::L16 => {
            chain.push(make("audioconvert")?);
            chain.push(filter(
                gst::Caps::builder("audio/x-raw")
                    .field("format", "S16BE")
                    .field("layout", "interleaved")
                    .build(),
            )?);
        }
        AudioCodec::Aac => {
            chain.push(make("aacparse")?);
            chain.push(filter(
                gst::Caps::builder("audio/mpeg")
                    .field("stream-format", "raw")
                    .build(),
            )?);
        }
        other => chain.extend(other.parser().map(make).transpose()?),
    }
    let sink = gst_app::AppSink::builder()
        .sync(sync)
        .max_buffers(MAX_PACKETS)
        .drop(true)
        .build();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let (Some(caps), Some(buffer)) = (sample.caps_owned(), sample.buffer_owned()) {
                    drop(sample);
                    track.push(buffer, &caps);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    chain.push(sink.upcast());
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    for e in chain.iter().rev() {
        e.sync_state_with_parent()?;
    }
    let first = chain.first().and_then(|e| e.static_pad("sink"));
    pad.link(&first.context("the audio branch has no input")?)
        .context("linking the audio branch")?;
    Ok(())
}

fn filter(caps: gst::Caps) -> Result<gst::Element> {
    let f = make("capsfilter")?;
    f.set_property("caps", caps);
    Ok(f)
}
