//! Pass-through in the ingest pipeline: the source's own H.264 access units go out as they
//! are, beside the decoder that feeds the processors.
//!
//! ```text
//! source ─▶ parsebin ─ video/x-h264 ─▶ tee ─┬▶ queue ─▶ h264parse (SPS/PPS before every key
//!                                           │           frame, byte-stream, one unit a buffer)
//!                                           │           ─▶ appsink ─▶ AccessUnits (the outputs)
//!                                           └▶ queue (bounded; key frames only if asked)
//!                                                ─▶ decodebin ─▶ frames (the processors)
//!                    ─ other video ─▶ decodebin (the stream encodes: `refused`)
//!                    ─ audio ───────▶ decodebin (stops at encoded audio) ─▶ audio branch
//! ```
//! The decoder's branch never holds the camera's units back: when decoding falls behind by
//! [`DECODE_BACKLOG`] units, the branch drops units up to the next key frame (the processors
//! skip a GOP; the outputs lose nothing), counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::config::DecodeFrames;
use crate::elements::make;

/// Where the camera's own access units go.
pub trait AccessUnits: Send + Sync {
    /// One access unit (H.264 byte-stream, SPS/PPS before key frames), with the source's times.
    fn access_unit(&self, sample: &gst::Sample);
    /// Whether the source's video can pass through: `Some(why)` when it cannot (its codec),
    /// `None` when an H.264 stream was found.
    fn refused(&self, why: Option<String>);
}

/// A stream's pass-through: where the units go and what the decoder gets.
#[derive(Clone)]
pub struct Passthrough {
    /// The camera's access units.
    pub units: Arc<dyn AccessUnits>,
    /// Which frames are decoded for the processors.
    pub decode: DecodeFrames,
    /// Counters of the decoder's branch.
    pub counters: Arc<DecodeCounters>,
}

/// What the decoder's branch of a pass-through did.
#[derive(Debug, Default)]
pub struct DecodeCounters {
    /// Access units given to the decoder.
    pub decoded: AtomicU64,
    /// Access units not decoded: delta frames with `decode = "keyframes"`, or skipped while
    /// the decoder was behind.
    pub skipped: AtomicU64,
}

/// Units waiting for the decoder after which its branch skips to the next key frame.
pub const DECODE_BACKLOG: u32 = 25;

/// The pass-through's output, made with the pipeline (a sink added later would run before the
/// pipeline's clock starts, as fast as data comes): a bin of queue → h264parse (SPS/PPS before
/// every key frame) → appsink (byte-stream, one unit a buffer) → [`AccessUnits`], which
/// [`branch`] links the parsed video to, or [`remove_output`] takes away when the source's
/// video cannot pass through. `sync`: units are handed over at their time (a file played in
/// real time).
pub(super) fn output(
    pipeline: &gst::Pipeline,
    pass: &Passthrough,
    sync: bool,
) -> Result<gst::Element> {
    let bin = gst::Bin::with_name("passthrough");
    let queue = make("queue")?;
    let parse = make("h264parse")?;
    parse.set_property("config-interval", -1i32);
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        )
        .sync(sync)
        .build();
    bin.add_many([&queue, &parse, sink.upcast_ref()])?;
    gst::Element::link_many([&queue, &parse, sink.upcast_ref()])?;
    let pad = queue.static_pad("sink").context("queue has no sink pad")?;
    bin.add_pad(&gst::GhostPad::with_target(&pad)?)?;
    pipeline.add(&bin)?;
    let units = pass.units.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                units.access_unit(&sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(bin.upcast())
}

/// Takes the pass-through's output away (the source's video is not H.264): a sink that never
/// gets data would hold a file's pipeline back from playing.
pub(super) fn remove_output(pipeline: &gst::Pipeline, output: &gst::Element) {
    let _ = output.set_state(gst::State::Null);
    if let Err(e) = pipeline.remove(output) {
        tracing::debug!("removing the pass-through's output: {e}");
    }
}

/// Links a parsed H.264 pad to the pass-through's `output` and to the decoder (`decodebin`,
/// made by the caller, not yet linked) through a tee. `sync`: a file played in real time.
pub(super) fn branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    pass: &Passthrough,
    output: &gst::Element,
    decodebin: &gst::Element,
    sync: bool,
) -> Result<()> {
    let tee = make("tee")?;
    let dec_queue = make("queue")?;
    // Bounded by the probe below in units, not by the queue's own limits.
    dec_queue.set_property("max-size-buffers", 0u32);
    dec_queue.set_property("max-size-bytes", 0u32);
    dec_queue.set_property("max-size-time", 0u64);
    pipeline.add_many([&tee, &dec_queue])?;
    tee.link(output)?;
    gst::Element::link_many([&tee, &dec_queue, decodebin])?;
    // A file played in real time reads ahead into the queue by design: no skipping there.
    let backlog = if sync { u32::MAX } else { DECODE_BACKLOG };
    gate_decoder(&dec_queue, pass.decode, backlog, pass.counters.clone())?;
    if pass.decode == DecodeFrames::Keyframes {
        drain_after_each(&dec_queue)?;
    }
    for e in [decodebin, &dec_queue, &tee] {
        e.sync_state_with_parent()?;
    }
    let sink_pad = tee.static_pad("sink").context("tee has no sink pad")?;
    pad.link(&sink_pad).context("linking the parsed video")?;
    pass.units.refused(None);
    Ok(())
}

/// Lets through the decoder's queue only what is to be decoded: key frames only when asked,
/// and nothing up to the next key frame once [`DECODE_BACKLOG`] units wait.
fn gate_decoder(
    queue: &gst::Element,
    decode: DecodeFrames,
    backlog: u32,
    counters: Arc<DecodeCounters>,
) -> Result<()> {
    let pad = queue.static_pad("sink").context("queue has no sink pad")?;
    let level = queue.downgrade();
    let skipping = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let waiting = level
            .upgrade()
            .map_or(0, |q| q.property::<u32>("current-level-buffers"));
        let pass = if decode == DecodeFrames::Keyframes && !key {
            false
        } else if skipping.load(Ordering::Relaxed) {
            let resume = key && waiting < backlog / 2;
            if resume {
                skipping.store(false, Ordering::Relaxed);
            }
            resume
        } else if waiting >= backlog {
            skipping.store(true, Ordering::Relaxed);
            tracing::debug!("the decoder fell behind: skipping to the next key frame");
            false
        } else {
            true
        };
        if pass {
            counters.decoded.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        } else {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            crate::elements::DROP_BUFFER
        }
    });
    Ok(())
}

/// Has the decoder give out each key frame's picture at once: a decoder holds pictures back
/// for the frames that follow (reordering, frame threads), which with key frames only would be
/// GOPs late. The segment says key units only (the trick mode decoders know) and a gap after
/// each unit drains the decoder.
fn drain_after_each(queue: &gst::Element) -> Result<()> {
    let pad = queue.static_pad("src").context("queue has no src pad")?;
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        let Some(gst::PadProbeData::Event(event)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        if let gst::EventView::Segment(s) = event.view()
            && let Some(segment) = s.segment().downcast_ref::<gst::ClockTime>()
        {
            let mut segment = segment.clone();
            segment.set_flags(segment.flags() | gst::SegmentFlags::TRICKMODE_KEY_UNITS);
            info.data = Some(gst::PadProbeData::Event(gst::event::Segment::new(&segment)));
        }
        gst::PadProbeReturn::Ok
    });
    let inside = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        // The unit pushed from here comes through this probe again: let it pass.
        if inside.load(Ordering::Relaxed) {
            return gst::PadProbeReturn::Ok;
        }
        let Some(buffer) = info.take_buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let (pts, duration) = (buffer.pts(), buffer.duration());
        inside.store(true, Ordering::Relaxed);
        let flow = pad.push(buffer);
        inside.store(false, Ordering::Relaxed);
        if let (Ok(_), Some(pts)) = (flow, pts) {
            pad.push_event(gst::event::Gap::builder(pts).duration(duration).build());
        }
        info.flow_res = flow;
        gst::PadProbeReturn::Handled
    });
    Ok(())
}

/// Drops decoded frames that come sooner than `1 / fps` after the last one let through (with
/// a tenth of an interval of slack for jitter), before they are converted.
pub(super) fn limit_rate(pad: &gst::Pad, fps: f64) {
    let interval = (1e9 / fps) as u64;
    let slack = interval / 10;
    let last = std::sync::Mutex::new(None::<u64>);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(pts) = info
            .buffer()
            .and_then(|b| b.pts())
            .map(gst::ClockTime::nseconds)
        else {
            return gst::PadProbeReturn::Ok;
        };
        let mut last = crate::supervise::lock(&last);
        match *last {
            // A time that went back (a restart, a loop): start again from it.
            Some(l) if pts >= l && pts - l + slack < interval => crate::elements::DROP_BUFFER,
            _ => {
                *last = Some(pts);
                gst::PadProbeReturn::Ok
            }
        }
    });
}
