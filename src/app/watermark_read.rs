//! `framegate watermark read`: decodes a file or a live URL and reports, per window of
//! `--window` seconds of the video's own time, whether a watermark is there, its ID and the
//! confidence.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gst::prelude::*;
use gst_video::prelude::*;
use serde::Serialize;

use crate::elements::{PadFilter, error_text, link_new_pads};
use crate::process::watermark::Reader;
use crate::supervise::lock;

/// One window's result.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// Start, seconds of video time.
    pub start_s: f64,
    /// End.
    pub end_s: f64,
    /// Frames read.
    pub frames: u32,
    /// The ID found, if any.
    pub id: Option<String>,
    /// Mean |z| over the payload bits (about 0.8 without a mark).
    pub confidence: f32,
    /// Coded bits the error-correcting code corrected.
    pub corrected: usize,
}

/// `framegate watermark read`: checks the numbers, reads `source` with `key` and prints a line
/// (or a JSON object with `json`) per window, then how many carried a mark.
pub fn read_and_print(
    source: &str,
    key: &str,
    window: f64,
    seconds: Option<f64>,
    json: bool,
) -> Result<()> {
    anyhow::ensure!(
        window.is_finite() && (0.01..=3600.0).contains(&window),
        "--window must be from 0.01 to 3600 seconds (0.04: one frame at 25 fps)"
    );
    anyhow::ensure!(
        seconds.is_none_or(|s| s.is_finite() && (0.0..=1e7).contains(&s)),
        "--seconds must be from 0 to 10000000"
    );
    crate::redact::register(key);
    let limit = seconds.map(Duration::from_secs_f64);
    let reports = read_watermark(source, key, window, limit, |r| {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            let what =
                r.id.as_deref()
                    .map_or("no mark".to_string(), |id| format!("ID {id}"));
            println!(
                "{:7.1}-{:.1} s  {:3} frames  {what}  (confidence {:.2})",
                r.start_s, r.end_s, r.frames, r.confidence
            );
        }
    })?;
    let found = reports.iter().filter(|r| r.id.is_some()).count();
    if !json {
        println!("{found} of {} windows carry a mark", reports.len());
    }
    Ok(())
}

/// Presentation times of the last intra-coded pictures (key frames) given to the video decoder.
type IntraTimes = Arc<Mutex<VecDeque<gst::ClockTime>>>;

/// How many intra pictures' times are kept: far more than a decoder holds back.
const INTRA_TIMES: usize = 64;

/// Watches the coded pictures going into `decodebin`'s video decoder and keeps the times of
/// the intra-coded ones, so that the reader knows which decoded frames they became (it weighs
/// them more: they carry the mark as it was embedded).
fn watch_intra_pictures(decodebin: &gst::Element) -> IntraTimes {
    let times = IntraTimes::default();
    let kept = times.clone();
    decodebin.connect("deep-element-added", false, move |args| {
        let element = args.get(2)?.get::<gst::Element>().ok()?;
        let factory = element.factory()?;
        if factory.has_type(gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO)
            && let Some(pad) = element.static_pad("sink")
        {
            let kept = kept.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer()
                    && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
                    && let Some(pts) = buffer.pts()
                {
                    let mut times = lock(&kept);
                    if times.len() >= INTRA_TIMES {
                        times.pop_front();
                    }
                    times.push_back(pts);
                }
                gst::PadProbeReturn::Ok
            });
        }
        None
    });
    times
}

/// Reads `source` (a file path or a URL) for at most `limit` of wall time; calls `report` after
/// each window.
pub fn read_watermark(
    source: &str,
    key: &str,
    window: f64,
    limit: Option<Duration>,
    mut report: impl FnMut(&WindowReport),
) -> Result<Vec<WindowReport>> {
    super::init_media()?;
    let uri = if source.contains("://") {
        source.to_string()
    } else {
        let path = Path::new(source)
            .canonicalize()
            .with_context(|| format!("{source}: no such file"))?;
        format!("file://{}", path.display())
    };
    let pipeline = gst::Pipeline::new();
    let src = crate::elements::uri_decoder(&uri, None)?;
    let intra = watch_intra_pictures(&src);
    let convert = crate::elements::make("videoconvert")?;
    let sink = crate::elements::gray8_sink();
    pipeline.add_many([&src, &convert, sink.upcast_ref()])?;
    convert.link(&sink)?;
    link_new_pads(&src, &convert, PadFilter::Video);
    pipeline
        .set_state(gst::State::Playing)
        .with_context(|| format!("cannot open {source}"))?;
    let bus = pipeline.bus().context("no bus")?;
    let started = Instant::now();
    let mut reader = Reader::new(key);
    let mut reports = Vec::new();
    let mut current: Option<(u64, f64)> = None; // window index, first frame time
    let mut finish = |reader: &mut Reader, idx: u64, reports: &mut Vec<WindowReport>| {
        let frames = reader.frames();
        let (found, confidence) = reader.finish();
        let r = WindowReport {
            start_s: idx as f64 * window,
            end_s: (idx + 1) as f64 * window,
            frames,
            id: found.as_ref().map(|f| f.id.clone()),
            confidence,
            corrected: found.map_or(0, |f| f.corrected),
        };
        report(&r);
        reports.push(r);
    };
    let result = loop {
        if limit.is_some_and(|l| started.elapsed() >= l) {
            break Ok(());
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
            break match msg.view() {
                gst::MessageView::Error(e) => Err(anyhow::anyhow!("{source}: {}", error_text(e))),
                _ => Ok(()),
            };
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            continue;
        };
        let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
            continue;
        };
        let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info) else {
            continue;
        };
        let t = buffer.pts().map_or(0.0, |p| p.nseconds() as f64 / 1e9);
        // Live sources start at any time: windows count from the first frame.
        let origin = current.map_or(t, |c| c.1);
        let idx = ((t - origin).max(0.0) / window) as u64;
        if let Some((cur, _)) = current
            && idx != cur
        {
            finish(&mut reader, cur, &mut reports);
        }
        current = Some((idx, origin));
        let stride = frame.plane_stride()[0] as usize;
        let luma = frame.plane_data(0).unwrap_or(&[]);
        let is_intra = buffer.pts().is_some_and(|pts| {
            let mut times = lock(&intra);
            let at = times.iter().position(|p| *p == pts);
            at.and_then(|i| times.remove(i)).is_some()
        });
        reader.add(
            luma,
            stride,
            info.width() as usize,
            info.height() as usize,
            t,
            is_intra,
        );
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    if let Some((idx, _)) = current
        && reader.frames() > 0
    {
        finish(&mut reader, idx, &mut reports);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::read_and_print;

    #[test]
    fn windows_from_one_frame_to_an_hour_are_accepted_and_nothing_outside() {
        for bad in [0.0, 0.005, 3601.0, f64::NAN, f64::INFINITY, -1.0] {
            let e = read_and_print("/nonexistent.mp4", "k", bad, None, true).unwrap_err();
            assert!(e.to_string().contains("--window"), "{bad}: {e}");
        }
        // One frame at 25 fps is a window: the file is what fails.
        let e = read_and_print("/nonexistent.mp4", "k", 0.04, None, true).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }
}
