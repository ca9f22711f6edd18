//! Encode: one H.264 encoder per stream, fed with processed frames, whose output is shared by
//! all the stream's outputs (or written to an MP4 file by `framegate process`).
//!
//! ```text
//! frames → (pushed in the caller's thread) → videoscale → videoconvert → capsfilter (the
//!          stream's output size)
//!        → x264enc (zerolatency) | nvh264enc → h264parse (SPS/PPS with every key frame)
//!        → appsink (byte-stream, one access unit per buffer) → fan-out
//!        | mp4mux → filesink                                  (file mode)
//!            ▲ audio_0: the input file's sound (`framegate process`)
//! ```
//! The output size is fixed by the first frame: a source that comes back at another size is
//! scaled into it, so viewers never see the stream renegotiate.
//!
//! Frames go in through a pad of the encoder's own, pushed by the thread that processed them:
//! the frame is converted and encoded before `push` returns. No queue and no thread of its own
//! (an appsrc's) stand between the two: with many streams on few cores, each handoff was
//! a wake-up and a switch more per frame, and a frame waiting in a queue is latency.

mod element;
mod supervised;
mod timeline;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::config::EncoderConfig;
use crate::elements::make;

pub use element::EncoderKind;
pub use supervised::{Health as EncoderHealth, SinkFactory, Supervised};
pub use timeline::{MAX_DRIFT, Slot, Timeline};

/// Where encoded video goes.
pub enum EncodeSink {
    /// Every encoded access unit is handed to a callback, with the time the frame spent in the
    /// encoder.
    Samples(Box<dyn FnMut(gst::Sample, Option<Duration>) + Send>),
    /// An MP4 file, with the sound that the element's `src` pad gives when there is one.
    Mp4(std::path::PathBuf, Option<gst::Element>),
    /// A Y4M file of the raw frames (no encoding).
    Y4m(std::path::PathBuf),
}

/// H.264 encoders running in this process (one per stream, whatever its viewers).
static RUNNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many H.264 encoders run in this process now.
pub fn running_encoders() -> u64 {
    RUNNING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether a new stream's codecs should take one thread each: the process runs at least as
/// many streams (one encoder each, running or on standby) as the machine has CPU cores, with
/// the new one. Many streams then share the cores better one thread each, and the codecs
/// spend less CPU per frame so; below that, their own thread counts keep one stream's latency
/// lowest.
pub fn crowded() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    running_encoders() + 1 >= cores
}

/// A running encoder pipeline.
pub struct Encoder {
    pipeline: gst::Pipeline,
    /// Where frames go in: linked to the first element, pushed by [`Encoder::push`]'s caller.
    input: gst::Pad,
    size_filter: gst::Element,
    encoder: gst::Element,
    kind: EncoderKind,
    live: bool,
    state: Mutex<PushState>,
    in_flight: Arc<Mutex<VecDeque<(gst::ClockTime, Instant)>>>,
    /// When a key frame was last asked for, and whether one more is owed (asked for too soon
    /// after the last: sent with the first frame the interval allows).
    last_key_request: Mutex<(Option<Instant>, bool)>,
}

#[derive(Default)]
struct PushState {
    /// The format of the frames, once its caps (and, after the first ones, the segment) went
    /// through.
    info: Option<gst_video::VideoInfo>,
    out_size: Option<(u32, u32)>,
}

/// The shortest time between two key frames asked for by new viewers.
const KEY_REQUEST_INTERVAL: Duration = Duration::from_millis(1000);

impl Encoder {
    /// Builds and starts an encoder. `live`: frames are stamped with the encoder's own running
    /// time as they arrive (a continuous timeline whatever the source does); otherwise the
    /// source's timestamps are kept (file mode).
    pub fn start(settings: &EncoderConfig, sink: EncodeSink, live: bool) -> Result<Self> {
        let pipeline = gst::Pipeline::new();
        let scale = make("videoscale")?;
        let convert = make("videoconvert")?;
        let size_filter = make("capsfilter")?;
        let raw = matches!(sink, EncodeSink::Y4m(_));
        let (encoder, kind) = if raw {
            (make("y4menc")?, EncoderKind::Raw)
        } else {
            element::make(settings)?
        };
        // For Y4M the second element is only the file writer's queue.
        let parse = if raw {
            make("queue")?
        } else {
            let p = make("h264parse")?;
            p.set_property("config-interval", -1i32);
            p
        };
        pipeline.add_many([&scale, &convert, &size_filter, &encoder, &parse])?;
        gst::Element::link_many([&scale, &convert, &size_filter, &encoder])?;
        let input = gst::Pad::builder(gst::PadDirection::Src)
            .name("frames")
            .build();
        input
            .link(
                &scale
                    .static_pad("sink")
                    .context("videoscale has no sink pad")?,
            )
            .context("linking the encoder's input")?;
        match element::output_caps(kind, &encoder) {
            Some(caps) => encoder.link_filtered(&parse, &caps)?,
            None => encoder.link(&parse)?,
        }

        let in_flight: Arc<Mutex<VecDeque<(gst::ClockTime, Instant)>>> = Arc::default();
        match sink {
            EncodeSink::Samples(mut on_sample) => {
                let appsink = gst_app::AppSink::builder()
                    .caps(
                        &gst::Caps::builder("video/x-h264")
                            .field("stream-format", "byte-stream")
                            .field("alignment", "au")
                            .build(),
                    )
                    .sync(false)
                    // Nothing prerolls: the pipeline plays (its clock runs) from the start,
                    // as a live source would make it.
                    .property("async", false)
                    .build();
                pipeline.add(&appsink)?;
                parse.link(&appsink)?;
                let in_flight = in_flight.clone();
                appsink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            // The encoder shifts timestamps (x264enc by 1000 h, in its
                            // segment): outputs get running times, the times the frames went
                            // in with, on which the stream's audio is placed too.
                            let sample = to_running_time(sample);
                            let spent = sample
                                .buffer()
                                .and_then(|b| b.pts())
                                .and_then(|rt| time_in_encoder(&in_flight, rt));
                            tracing::trace!(?spent, "encoded");
                            on_sample(sample, spent);
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                );
            }
            EncodeSink::Y4m(path) => {
                let file = make("filesink")?;
                file.set_property("location", path_str(&path)?);
                pipeline.add(&file)?;
                parse.link(&file)?;
            }
            EncodeSink::Mp4(path, audio) => {
                let mux = make("mp4mux")?;
                let file = make("filesink")?;
                file.set_property("location", path_str(&path)?);
                pipeline.add_many([&mux, &file])?;
                gst::Element::link_many([&parse, &mux, &file])?;
                if let Some(audio) = audio {
                    pipeline.add(&audio)?;
                    let pad = mux
                        .request_pad_simple("audio_%u")
                        .context("mp4mux gave no audio pad")?;
                    audio
                        .static_pad("src")
                        .context("the sound source has no src pad")?
                        .link(&pad)
                        .context("linking the sound to mp4mux")?;
                }
            }
        }
        let mut state = PushState::default();
        if let Some([w, h]) = settings.size {
            size_filter.set_property(
                "caps",
                gst_video::VideoCapsBuilder::new()
                    .width(w as i32)
                    .height(h as i32)
                    .build(),
            );
            state.out_size = Some((w, h));
        }
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the encoder pipeline")?;
        input
            .set_active(true)
            .context("activating the encoder's input")?;
        if !input.push_event(gst::event::StreamStart::new("framegate-encoder")) {
            anyhow::bail!("the encoder refused its stream start");
        }
        RUNNING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            pipeline,
            input,
            size_filter,
            encoder,
            kind,
            live,
            state: Mutex::new(state),
            in_flight,
            last_key_request: Mutex::new((None, false)),
        })
    }

    /// Which encoder element runs.
    pub fn kind(&self) -> EncoderKind {
        self.kind
    }

    /// The output size, once the first frame has fixed it.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.state.lock().ok().and_then(|s| s.out_size)
    }

    /// The encoder pipeline (to watch its bus).
    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// The encoder pipeline's running time now (the clock live timestamps are on).
    pub fn running_time(&self) -> gst::ClockTime {
        self.pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO)
    }

    /// Encodes one frame. In live mode it is stamped `pts` (on [`Encoder::running_time`]'s
    /// clock; now when `None`); in file mode it keeps its own timestamps. The frame is
    /// converted and encoded in the calling thread before this returns (its access unit handed
    /// to the sink), which is what lets the stage before it keep only the newest frame. Called
    /// from one thread at a time (the stream's processing worker owns its encoder).
    pub fn push(
        &self,
        buffer: gst::Buffer,
        info: &gst_video::VideoInfo,
        pts: Option<gst::ClockTime>,
    ) -> Result<(), gst::FlowError> {
        self.send_owed_keyframe_request();
        let mut buffer = buffer;
        {
            let mut st = self.state.lock().map_err(|_| gst::FlowError::Error)?;
            if st.out_size.is_none() {
                let caps = gst_video::VideoCapsBuilder::new()
                    .width(info.width() as i32)
                    .height(info.height() as i32)
                    .build();
                self.size_filter.set_property("caps", &caps);
                st.out_size = Some((info.width(), info.height()));
            }
            if st.info.as_ref() != Some(info) {
                let caps = info.to_caps().map_err(|_| gst::FlowError::NotNegotiated)?;
                if !self.input.push_event(gst::event::Caps::new(&caps)) {
                    return Err(gst::FlowError::NotNegotiated);
                }
                // The segment follows the first caps (stream start, caps, segment).
                if st.info.is_none() {
                    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
                    if !self.input.push_event(gst::event::Segment::new(&segment)) {
                        return Err(gst::FlowError::Error);
                    }
                }
                st.info = Some(info.clone());
            }
        }
        if self.live {
            let now = pts.unwrap_or_else(|| self.running_time());
            let b = buffer.make_mut();
            b.set_pts(now);
            b.set_dts(now);
            let fps = info.fps();
            if fps.numer() > 0 {
                b.set_duration(
                    gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64),
                );
            }
        }
        if let (Some(pts), Ok(mut q)) = (buffer.pts(), self.in_flight.lock()) {
            if q.len() > 64 {
                q.pop_front();
            }
            q.push_back((pts, Instant::now()));
        }
        self.input.push(buffer).map(|_| ())
    }

    /// Asks for a key frame soon (a viewer joined or fell behind). Rate-limited, so that many
    /// joining viewers cannot flood the stream with key frames: a request too soon after the
    /// last one is kept, and sent as soon as the interval has passed.
    pub fn request_keyframe(&self) {
        if let Ok(mut k) = self.last_key_request.lock() {
            k.1 = true;
        }
        self.send_owed_keyframe_request();
    }

    /// Sends the owed key frame request, if any, when the interval allows.
    fn send_owed_keyframe_request(&self) {
        let Ok(mut k) = self.last_key_request.lock() else {
            return;
        };
        if !k.1 || k.0.is_some_and(|t| t.elapsed() < KEY_REQUEST_INTERVAL) {
            return;
        }
        *k = (Some(Instant::now()), false);
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(pad) = self.encoder.static_pad("src") {
            pad.send_event(event);
        }
    }

    /// Sends end-of-stream and waits (up to `timeout`) until it has gone through, so that files
    /// and servers downstream are closed cleanly.
    pub fn finish(&self, timeout: Duration) -> Result<()> {
        let _ = self.input.push_event(gst::event::Eos::new());
        let bus = self.pipeline.bus().context("encoder pipeline has no bus")?;
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(left.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) else {
                break;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(e) => {
                    anyhow::bail!("encoder: {} ({:?})", e.error(), e.debug())
                }
                _ => {}
            }
        }
        anyhow::bail!("encoder did not finish within {timeout:?}")
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The sample with its buffer's times as running times of its segment (what went into the
/// encoder), the segment left out.
fn to_running_time(sample: gst::Sample) -> gst::Sample {
    match sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned())
    {
        Some(segment) => crate::elements::retimed(sample, |t| segment.to_running_time(t)),
        None => sample,
    }
}

fn time_in_encoder(
    in_flight: &Mutex<VecDeque<(gst::ClockTime, Instant)>>,
    pts: gst::ClockTime,
) -> Option<Duration> {
    let mut q = in_flight.lock().ok()?;
    // Frames the encoder dropped are skipped; a match within a millisecond counts.
    let slack = gst::ClockTime::from_mseconds(1);
    while let Some((p, t)) = q.front().copied() {
        if p + slack < pts {
            q.pop_front();
        } else if p <= pts + slack {
            q.pop_front();
            return Some(t.elapsed());
        } else {
            return None;
        }
    }
    None
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not valid UTF-8", path.display()))
}
