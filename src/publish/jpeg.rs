//! JPEG for browsers (snapshot, MJPEG, WebSocket): one encoder per (stream, width, quality),
//! running only while someone watches, shared by every viewer of that size and quality.
//!
//! ```text
//! processing worker ─▶ frame tap (newest frame) ─▶ feeder task ─▶ appsrc → videoscale →
//!     videoconvert → capsfilter (width, aspect kept) → jpegenc → appsink ─▶ watch (newest JPEG)
//!                                                                             ├─▶ viewer 1
//!                                                                             └─▶ viewer 2 ...
//! ```
//! Encoding runs on GStreamer's threads, never on the async workers. Each viewer reads the
//! newest JPEG when it is ready for one: a slow viewer skips frames and slows nobody.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use anyhow::{Context, Result};
use bytes::Bytes;
use gst::prelude::*;
use tokio::sync::watch;

use crate::config::StreamId;
use crate::elements::make;
use crate::frame::TappedFrame;

/// What an encoder makes: output width (none: the stream's) and JPEG quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JpegKey {
    /// Output width in pixels; the height keeps the aspect ratio.
    pub width: Option<u32>,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// Raw I420 pictures instead of JPEG (for the `redis` output's `raw` format).
    pub raw: bool,
}

/// One encoded picture.
#[derive(Debug)]
pub struct JpegFrame {
    /// The JPEG file.
    pub data: Bytes,
    /// The frame's sequence number in the stream's output.
    pub seq: u64,
    /// When the frame was captured.
    pub capture_time: SystemTime,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
}

/// The newest JPEG of an encoder, for its viewers.
pub type JpegFrames = watch::Receiver<Option<Arc<JpegFrame>>>;

/// A stream's JPEG encoders.
pub struct JpegHub {
    stream: StreamId,
    tap: watch::Receiver<Option<TappedFrame>>,
    encoders: Mutex<HashMap<JpegKey, Weak<JpegEncoder>>>,
}

impl JpegHub {
    /// A hub reading the stream's frame tap.
    pub fn new(stream: StreamId, tap: watch::Receiver<Option<TappedFrame>>) -> Self {
        Self {
            stream,
            tap,
            encoders: Mutex::new(HashMap::new()),
        }
    }

    /// The encoder for `key`, started if nobody watches it yet. It stops when the last holder
    /// drops it. Call from within the tokio runtime (it feeds the encoder from a task).
    pub fn subscribe(&self, key: JpegKey) -> Result<Arc<JpegEncoder>> {
        self.subscribe_within(key, usize::MAX, usize::MAX)
            .map_err(|e| match e {
                JpegRefusal::Failed(e) => e,
                full => anyhow::anyhow!("{full}"),
            })
    }

    /// [`subscribe`](Self::subscribe), starting no encoder beyond `per_stream` for this stream
    /// or `total` in the process. A width at or above the source's is the source's (pictures
    /// are never scaled up), so it shares that encoder.
    pub fn subscribe_within(
        &self,
        mut key: JpegKey,
        per_stream: usize,
        total: usize,
    ) -> Result<Arc<JpegEncoder>, JpegRefusal> {
        if let (Some(w), Some(f)) = (key.width, self.tap.borrow().as_ref())
            && w >= f.info.width()
        {
            key.width = None;
        }
        let mut map = self.encoders.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| e.strong_count() > 0);
        if let Some(e) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(e);
        }
        if map.len() >= per_stream {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return Err(JpegRefusal::StreamFull(map.len()));
        }
        // Counted before the start, so that concurrent starts on other streams see it.
        if RUNNING.fetch_add(1, Ordering::SeqCst) >= total {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return Err(JpegRefusal::ProcessFull(total));
        }
        let e = match JpegEncoder::start(key, self.tap.clone()) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                RUNNING.fetch_sub(1, Ordering::SeqCst);
                return Err(JpegRefusal::Failed(e));
            }
        };
        tracing::debug!(stream = %self.stream, ?key, "JPEG encoder started");
        map.insert(key, Arc::downgrade(&e));
        Ok(e)
    }

    /// How many encoders run now.
    pub fn running(&self) -> usize {
        let map = self.encoders.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|e| e.strong_count() > 0).count()
    }
}

/// JPEG encoders running in the process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// Encoders refused because a cap was reached.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// JPEG encoders running in the process, and how many were refused for a cap.
pub fn jpeg_encoder_counts() -> (usize, u64) {
    (
        RUNNING.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
    )
}

/// Why no encoder was given.
#[derive(Debug, thiserror::Error)]
pub enum JpegRefusal {
    /// The stream has as many encoders as it may.
    #[error(
        "the stream has {0} JPEG encoders (sizes and qualities) running, as many as it may (server.limits.jpeg_encoders_per_stream): use one of the sizes being watched"
    )]
    StreamFull(usize),
    /// The process has as many encoders as it may.
    #[error(
        "framegate runs {0} JPEG encoders, as many as it may (server.limits.jpeg_encoders_total)"
    )]
    ProcessFull(usize),
    /// The encoder could not start.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// A running JPEG encoder.
pub struct JpegEncoder {
    out: watch::Sender<Option<Arc<JpegFrame>>>,
    pipeline: gst::Pipeline,
    feeder: tokio::task::AbortHandle,
}

/// Frames waiting in the encoder: (seq, capture time), to label what comes out.
type InFlight = Arc<Mutex<VecDeque<(u64, SystemTime)>>>;

impl JpegEncoder {
    fn start(key: JpegKey, mut tap: watch::Receiver<Option<TappedFrame>>) -> Result<Self> {
        let pipeline = gst::Pipeline::new();
        let appsrc = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(false)
            .block(false)
            .max_buffers(2)
            .build();
        let scale = make("videoscale")?;
        let convert = make("videoconvert")?;
        let size = make("capsfilter")?;
        let sink = gst_app::AppSink::builder().sync(false).build();
        let mut chain = vec![appsrc.upcast_ref(), &scale, &convert, &size];
        let enc;
        if !key.raw {
            enc = make("jpegenc")?;
            enc.set_property("quality", i32::from(key.quality.clamp(1, 100)));
            chain.push(&enc);
        }
        chain.push(sink.upcast_ref());
        pipeline.add_many(chain.iter().copied())?;
        gst::Element::link_many(chain.iter().copied())?;

        let (out, _) = watch::channel(None);
        let in_flight: InFlight = Arc::default();
        {
            let (out, in_flight) = (out.clone(), in_flight.clone());
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                            return Ok(gst::FlowSuccess::Ok);
                        };
                        let seq = buffer.pts().map_or(0, |p| p.nseconds());
                        let capture_time = label(&in_flight, seq);
                        let (width, height) = caps
                            .structure(0)
                            .map(|s| {
                                (
                                    s.get::<i32>("width").unwrap_or(0),
                                    s.get::<i32>("height").unwrap_or(0),
                                )
                            })
                            .unwrap_or_default();
                        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                        out.send_replace(Some(Arc::new(JpegFrame {
                            data: Bytes::copy_from_slice(&map),
                            seq,
                            capture_time,
                            width: width as u32,
                            height: height as u32,
                        })));
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the JPEG encoder")?;

        let feeder = tokio::spawn(async move {
            let mut last: Option<gst_video::VideoInfo> = None;
            loop {
                let frame = tap.borrow_and_update().clone();
                if let Some(f) = frame {
                    feed(&appsrc, &size, key, &mut last, &in_flight, f);
                }
                if tap.changed().await.is_err() {
                    let _ = appsrc.end_of_stream();
                    break;
                }
            }
        })
        .abort_handle();
        Ok(Self {
            out,
            pipeline,
            feeder,
        })
    }

    /// The newest JPEG (none before the first), to read or wait on.
    pub fn frames(&self) -> JpegFrames {
        self.out.subscribe()
    }
}

impl Drop for JpegEncoder {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        self.feeder.abort();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Hands one frame to the encoder, unless it is still busy with two.
fn feed(
    appsrc: &gst_app::AppSrc,
    size: &gst::Element,
    key: JpegKey,
    last: &mut Option<gst_video::VideoInfo>,
    in_flight: &InFlight,
    f: TappedFrame,
) {
    if appsrc.current_level_buffers() >= 2 {
        return;
    }
    if last.as_ref() != Some(&f.info) {
        let (w, h) = output_size(f.info.width(), f.info.height(), key.width);
        let caps = gst_video::VideoCapsBuilder::new()
            .width(w as i32)
            .height(h as i32);
        let caps = if key.raw {
            caps.format(gst_video::VideoFormat::I420)
        } else {
            caps
        };
        size.set_property("caps", caps.build());
        if let Ok(caps) = f.info.to_caps() {
            appsrc.set_caps(Some(&caps));
        }
        *last = Some(f.info.clone());
    }
    if let Ok(mut q) = in_flight.lock() {
        if q.len() > 16 {
            q.pop_front();
        }
        q.push_back((f.seq, f.capture_time));
    }
    // The sequence number rides in the timestamp: it increases, and comes out unchanged.
    let mut buffer = f.buffer;
    {
        let b = buffer.make_mut();
        b.set_pts(gst::ClockTime::from_nseconds(f.seq));
        b.set_dts(gst::ClockTime::NONE);
        b.set_duration(gst::ClockTime::NONE);
    }
    let _ = appsrc.push_buffer(buffer);
}

/// The capture time of frame `seq`, dropping older entries.
fn label(in_flight: &InFlight, seq: u64) -> SystemTime {
    let Ok(mut q) = in_flight.lock() else {
        return SystemTime::now();
    };
    while let Some((s, t)) = q.pop_front() {
        if s == seq {
            return t;
        }
        if s > seq {
            q.push_front((s, t));
            break;
        }
    }
    SystemTime::now()
}

/// Output size for a requested width: the source's aspect ratio, even dimensions.
pub fn output_size(src_w: u32, src_h: u32, width: Option<u32>) -> (u32, u32) {
    let w = width.unwrap_or(src_w).min(src_w).clamp(16, 7680) & !1;
    let h = ((u64::from(src_h) * u64::from(w) / u64::from(src_w.max(1))) as u32).max(16) & !1;
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_aspect_and_stay_even() {
        assert_eq!(output_size(1280, 720, Some(320)), (320, 180));
        assert_eq!(output_size(1280, 720, None), (1280, 720));
        assert_eq!(output_size(768, 576, Some(161)), (160, 120));
        assert_eq!(output_size(640, 360, Some(2)), (16, 16));
        // Never scaled up.
        assert_eq!(output_size(640, 360, Some(7680)), (640, 360));
    }
}
