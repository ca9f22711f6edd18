//! The sound of `framegate process`'s input, muxed into its MP4 beside the processed video.
//!
//! ```text
//! input ─ filesrc → parsebin ─ video ─▶ dropped (the video is decoded by the ingest path)
//!                             └ audio ─▶ aacparse | mpegaudioparse          (AAC, MP3 as they are)
//!                                        | decodebin → audioconvert → audioresample
//!                                          → avenc_aac → aacparse       (anything else → AAC)
//!                                        ─▶ the encoder's mp4mux `audio_%u`
//! ```
//! The branch lives in the encoder's pipeline: the muxer interleaves by time, so the sound is
//! read as fast as the video is processed, nothing is dropped, and both keep the file's own
//! timestamps. The first audio stream is taken. The sound ends where the picture does
//! ([`Cut`]): a run stopped early by a signal does not read the rest of the file's sound.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::audio::{AudioCodec, encoder_priming_ns, is_audio, target_rate};
use crate::elements::{error_text, make};

/// How long finding the input's streams may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// A pad of `parsebin` nobody reads from: its data is dropped where it leaves. (A sink would
/// wait for the pipeline to preroll, which waits for the muxer, which waits for the sound.)
fn discard(pad: &gst::Pad) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        |_, _| crate::elements::DROP_BUFFER,
    );
}

fn pad_caps(pad: &gst::Pad) -> gst::Caps {
    pad.current_caps().unwrap_or_else(|| pad.query_caps(None))
}

/// How long after the first stream the others may take to show, where the demuxer does not
/// list them (an elementary stream has no demuxer).
const LATER_STREAMS: Duration = Duration::from_secs(2);

/// What reading the input's streams saw.
enum Seen {
    /// An audio stream, parsed.
    Audio(gst::Caps),
    /// Some other stream.
    Other,
    /// All the streams are known (`no-more-pads`).
    All,
}

/// The caps of the input's first audio stream (parsed, not decoded); `None` when it has none:
/// the demuxer's list of streams has no audio, or no audio stream showed within
/// [`LATER_STREAMS`] of the first stream.
pub fn probe(input: &Path) -> Result<Option<gst::Caps>> {
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property(
        "location",
        input.to_str().context("the input path is not UTF-8")?,
    );
    let parse = make("parsebin")?;
    pipeline.add_many([&src, &parse])?;
    src.link(&parse)?;
    let (tx, rx) = mpsc::channel::<Seen>();
    {
        let tx = Mutex::new(tx.clone());
        parse.connect_pad_added(move |_, pad| {
            let caps = pad_caps(pad);
            let seen = if is_audio(&caps) {
                Seen::Audio(caps)
            } else {
                Seen::Other
            };
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(seen);
            }
            discard(pad);
        });
    }
    {
        let tx = Mutex::new(tx);
        parse.connect_no_more_pads(move |_| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(Seen::All);
            }
        });
    }
    pipeline
        .set_state(gst::State::Paused)
        .context("reading the input's streams")?;
    let bus = pipeline.bus().context("no bus")?;
    let mut deadline = Instant::now() + PROBE_TIMEOUT;
    // Whether the demuxer listed an audio stream, and whether any stream showed.
    let (mut listed_audio, mut saw_stream) = (false, false);
    let found = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Seen::Audio(caps)) => break Ok(Some(caps)),
            Ok(Seen::All) => break Ok(None),
            Ok(Seen::Other) => {
                saw_stream = true;
                if !listed_audio {
                    deadline = deadline.min(Instant::now() + LATER_STREAMS);
                }
            }
            _ => {}
        }
        let wanted = [
            gst::MessageType::Error,
            gst::MessageType::Eos,
            gst::MessageType::StreamCollection,
        ];
        if let Some(msg) = bus.pop_filtered(&wanted) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    break Err(anyhow::anyhow!(
                        "reading the input's streams: {}",
                        error_text(e)
                    ));
                }
                gst::MessageView::StreamCollection(c) => {
                    let audio = c
                        .stream_collection()
                        .iter()
                        .any(|s| s.stream_type().contains(gst::StreamType::AUDIO));
                    if !audio {
                        break Ok(None);
                    }
                    // Its pad comes once parsed: wait for it.
                    listed_audio = true;
                    deadline = Instant::now() + PROBE_TIMEOUT;
                }
                _ => break Ok(None),
            }
        }
        if Instant::now() > deadline {
            break if saw_stream && !listed_audio {
                Ok(None)
            } else {
                Err(anyhow::anyhow!(
                    "reading the input's streams took more than {PROBE_TIMEOUT:?}"
                ))
            };
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    found
}

/// Where the sound ends: set when the picture has ended, at its end.
#[derive(Clone, Default)]
pub struct Cut(Arc<Mutex<Option<gst::ClockTime>>>);

impl Cut {
    /// The sound ends at `end` (stream time): later packets are dropped and the branch ends.
    pub fn at(&self, end: gst::ClockTime) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(end);
    }

    fn get(&self) -> Option<gst::ClockTime> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sound of `input` (whose first audio stream has `caps`) as AAC or MP3 for an MP4: a bin
/// with one `src` pad, ended at `cut` once that is set.
pub fn branch(input: &Path, caps: &gst::Caps, cut: &Cut) -> Result<gst::Bin> {
    let bin = gst::Bin::with_name("input-audio");
    let src = make("filesrc")?;
    src.set_property(
        "location",
        input.to_str().context("the input path is not UTF-8")?,
    );
    let parse = make("parsebin")?;
    // The AAC encoder's priming is taken off the transcode's times (its first frame, silence
    // before the first sample, is dropped).
    let mut priming = 0;
    let chain = match AudioCodec::from_caps(caps) {
        Some(AudioCodec::Aac) => vec![make("aacparse")?],
        Some(AudioCodec::Mp3) => vec![make("mpegaudioparse")?],
        _ => {
            let rate = caps
                .structure(0)
                .and_then(|s| s.get::<i32>("rate").ok())
                .map_or(0, |r| r.max(0) as u32);
            let rate = target_rate(AudioCodec::Aac, rate);
            priming = encoder_priming_ns(AudioCodec::Aac, rate);
            let filter = make("capsfilter")?;
            filter.set_property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("rate", rate as i32)
                    .build(),
            );
            vec![
                make("decodebin")?,
                make("audioconvert")?,
                make("audioresample")?,
                filter,
                make("avenc_aac")?,
                make("aacparse")?,
            ]
        }
    };
    bin.add_many([&src, &parse])?;
    bin.add_many(&chain)?;
    src.link(&parse)?;
    for pair in chain.windows(2) {
        if pair[0].static_pad("src").is_some() {
            pair[0].link(&pair[1])?;
        } else {
            crate::elements::link_new_pads(&pair[0], &pair[1], crate::elements::PadFilter::Any);
        }
    }
    let (first, last) = (&chain[0], &chain[chain.len() - 1]);
    let out = last
        .static_pad("src")
        .context("the audio chain has no output")?;
    let ghost = gst::GhostPad::with_target(&out)?;
    bin.add_pad(&ghost)?;
    let (cut, ended) = (cut.clone(), std::sync::atomic::AtomicBool::new(false));
    let priming = gst::ClockTime::from_nseconds(priming);
    ghost.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        if priming > gst::ClockTime::ZERO {
            let Some(pts) = pts.checked_sub(priming) else {
                return crate::elements::DROP_BUFFER;
            };
            if let Some(b) = info.buffer_mut() {
                b.make_mut().set_pts(pts);
                b.make_mut().set_dts(pts);
            }
        }
        let pts = info.buffer().and_then(|b| b.pts());
        match (cut.get(), pts) {
            (Some(end), Some(pts)) if pts >= end => {
                if !ended.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    pad.push_event(gst::event::Eos::new());
                }
                crate::elements::DROP_BUFFER
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
    let taken = Arc::new(Mutex::new(false));
    let first = first.downgrade();
    parse.connect_pad_added(move |_, pad| {
        let mut taken = taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sinkpad = first.upgrade().and_then(|f| f.static_pad("sink"));
        if !*taken
            && is_audio(&pad_caps(pad))
            && let Some(sinkpad) = sinkpad
            && pad.link(&sinkpad).is_ok()
        {
            *taken = true;
        } else {
            discard(pad);
        }
    });
    Ok(bin)
}
