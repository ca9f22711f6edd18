//! `framegate probe`: reads any output (RTSP, RTMP, HTTP MJPEG, HLS, framegate's WebSocket),
//! decodes each frame's capture-time stamp, and reports how old frames are on arrival.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use gst::prelude::*;
use gst_video::prelude::*;
use serde::Serialize;

use super::read_stamp;
use crate::elements::{PadFilter, link_new_pads};

/// What a probe saw.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The URL probed.
    pub url: String,
    /// Seconds of reading after the first frame.
    pub seconds: f64,
    /// Frames decoded.
    pub frames: u64,
    /// Frames whose stamp was read.
    pub stamped: u64,
    /// Frames per second.
    pub fps: f64,
    /// From opening the URL to the first decoded frame, ms.
    pub first_frame_ms: Option<f64>,
    /// Age of stamped frames on arrival (now minus capture time), ms.
    pub age_ms: Option<Ages>,
}

/// Percentiles of frame ages.
#[derive(Debug, Clone, Serialize)]
pub struct Ages {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Reads `url` for `seconds` after its first frame plus `warmup` (frames in the first `warmup`
/// seconds are not counted: servers that send a backlog on connect, as RTMP servers do, are
/// measured in their steady state). Fails after `timeout` without a frame.
pub fn probe(url: &str, seconds: f64, warmup: f64, timeout: Duration) -> Result<ProbeReport> {
    let pipeline = gst::Pipeline::new();
    let convert = crate::elements::make("videoconvert")?;
    let websocket = url.starts_with("ws://");
    let mjpeg =
        (url.starts_with("http://") || url.starts_with("https://")) && !url.contains(".m3u8");
    let stop = Arc::new(AtomicBool::new(false));
    let mut ws_thread = None;
    if websocket {
        // framegate's WebSocket of JPEGs: a client thread feeds the pictures to jpegdec.
        let src = gst_app::AppSrc::builder()
            .caps(&gst::Caps::builder("image/jpeg").build())
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .build();
        let dec = crate::elements::make("jpegdec")?;
        pipeline.add_many([src.upcast_ref(), &dec, &convert])?;
        gst::Element::link_many([src.upcast_ref(), &dec, &convert])?;
        ws_thread = Some(super::ws_source::spawn(url, src, stop.clone())?);
    } else if mjpeg {
        // MJPEG over HTTP: decodebin would buffer it like a download; read it as a live stream.
        let http = crate::elements::make("souphttpsrc")?;
        http.set_property("location", url);
        http.set_property("is-live", true);
        let demux = crate::elements::make("multipartdemux")?;
        let dec = crate::elements::make("jpegdec")?;
        pipeline.add_many([&http, &demux, &dec])?;
        http.link(&demux)?;
        link_new_pads(&demux, &dec, PadFilter::Any);
        pipeline.add(&convert)?;
        dec.link(&convert)?;
    }
    let sink = crate::elements::gray8_sink();
    pipeline.add(&sink)?;
    if !mjpeg && !websocket {
        pipeline.add(&convert)?;
        // As a low-latency player would: TCP, a small jitter buffer.
        let src = crate::elements::uri_decoder(url, Some(50))?;
        pipeline.add(&src)?;
        link_new_pads(&src, &convert, PadFilter::Video);
    }
    convert.link(&sink)?;
    let opened = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .with_context(|| format!("cannot open {url}"))?;
    let bus = pipeline.bus().context("no bus")?;
    let mut first: Option<Instant> = None;
    let (mut frames, mut stamped) = (0u64, 0u64);
    let mut ages = Vec::new();
    let result = loop {
        let deadline = match first {
            Some(f) => f + Duration::from_secs_f64(warmup + seconds),
            None => opened + timeout,
        };
        let now = Instant::now();
        if now >= deadline {
            break match first {
                Some(_) => Ok(()),
                None => Err(anyhow::anyhow!("no frame from {url} within {timeout:?}")),
            };
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
            break match msg.view() {
                gst::MessageView::Error(e) => Err(anyhow::anyhow!("{url}: {}", e.error())),
                _ if first.is_some() => Ok(()),
                _ => Err(anyhow::anyhow!("{url} ended before its first frame")),
            };
        }
        let wait = (deadline - now).min(Duration::from_millis(100));
        let Some(sample) =
            sink.try_pull_sample(gst::ClockTime::from_nseconds(wait.as_nanos() as u64))
        else {
            continue;
        };
        let arrived = SystemTime::now();
        let since_first = first.get_or_insert_with(Instant::now).elapsed();
        if since_first < Duration::from_secs_f64(warmup) {
            continue;
        }
        frames += 1;
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            continue;
        };
        let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
            continue;
        };
        let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info) else {
            continue;
        };
        let stride = frame.plane_stride()[0] as usize;
        if let Ok(luma) = frame.plane_data(0)
            && let Some(t) = read_stamp(luma, stride, info.width(), info.height())
        {
            stamped += 1;
            let age = match arrived.duration_since(t) {
                Ok(d) => d.as_secs_f64() * 1000.0,
                Err(e) => -e.duration().as_secs_f64() * 1000.0,
            };
            ages.push(age);
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(t) = ws_thread {
        let _ = t.join();
    }
    result?;
    let elapsed = first.map_or(0.0, |f| (f.elapsed().as_secs_f64() - warmup).max(0.0));
    ages.sort_by(f64::total_cmp);
    let pct = |q: f64| ages[((ages.len() - 1) as f64 * q).round() as usize];
    Ok(ProbeReport {
        url: url.to_string(),
        seconds: elapsed,
        frames,
        stamped,
        fps: if elapsed > 0.0 {
            (frames.saturating_sub(1)) as f64 / elapsed
        } else {
            0.0
        },
        first_frame_ms: first.map(|f| (f - opened).as_secs_f64() * 1000.0),
        age_ms: (!ages.is_empty()).then(|| Ages {
            p50: pct(0.5),
            p95: pct(0.95),
            p99: pct(0.99),
        }),
    })
}
