//! `framegate process`: the live path (decode → processors → encode) run over a file as fast as
//! the machine allows, with no frame dropped, written to an MP4 with the input's sound (or, for
//! a `.y4m` name, the processed frames unencoded).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use gst::prelude::*;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{EncoderConfig, Hardware, ProcessorConfig, RtspTransport, SourceUrl, StreamId};
use crate::elements::error_text;
use crate::encode::{EncodeSink, Encoder};
use crate::frame::{Frame, FrameMeta};
use crate::ingest::{Ingest, IngestOptions};
use crate::process::Chain;

use std::io::Write as _;

use super::file_audio;
use crate::supervise::lock;

/// What to process and how.
pub struct ProcessArgs {
    /// The input file (any container and codec GStreamer decodes).
    pub input: PathBuf,
    /// The MP4 to write.
    pub output: PathBuf,
    /// The processors to run, in order.
    pub processors: Vec<ProcessorConfig>,
    /// Encoder settings.
    pub encoder: EncoderConfig,
    /// Decoder hardware setting.
    pub decoder_hardware: Hardware,
    /// Pace the file at its own frame rate instead of as fast as possible.
    pub realtime: bool,
    /// The models `detect` processors use.
    pub models: crate::process::Models,
    /// The counting lines and zones of a `track` processor.
    pub lines: Vec<crate::config::LineConfig>,
    /// The zones.
    pub zones: Vec<crate::config::ZoneConfig>,
    /// Where to write each frame's tracks (JSON lines `{"pts": s, "tracks": [...]}`).
    pub tracks_out: Option<PathBuf>,
    /// The embedded interpreter's settings (for `python` processors).
    pub python: crate::config::PythonSection,
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct ProcessReport {
    /// Frames decoded, processed and encoded.
    pub frames: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Processes a file; returns when the MP4 is complete.
pub fn process_file(args: &ProcessArgs) -> Result<ProcessReport> {
    super::init_media()?;
    if !args.input.is_file() {
        anyhow::bail!("input {} is not a readable file", args.input.display());
    }
    let started = Instant::now();
    let cut = file_audio::Cut::default();
    let encoder = Arc::new(
        Encoder::start(&args.encoder, output_sink(args, &cut)?, false)
            .context("starting the encoder")?,
    );
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Where the picture ends (the last frame's end), where the sound is cut.
    let video_end: Arc<Mutex<Option<gst::ClockTime>>> = Arc::default();
    let shapes = crate::process::Shapes {
        lines: &args.lines,
        zones: &args.zones,
    };
    // The tracker's events go with each frame's tracks when those are written.
    let (events, happened) = crate::store::EventSink::channel(super::track_replay::MAX_EVENTS);
    let hooks = crate::process::Hooks {
        python: args.python.clone(),
        events: if args.tracks_out.is_some() {
            events
        } else {
            crate::store::EventSink::disabled()
        },
        ..Default::default()
    };
    let processing = Arc::new(Mutex::new(Processing {
        chain: Chain::from_config(&args.processors, shapes, &args.models, &hooks),
        tracks_out: match &args.tracks_out {
            Some(path) => Some(std::io::LineWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            )),
            None => None,
        },
        happened,
        last_result: None,
    }));
    let on_frame = {
        let processing = processing.clone();
        let (encoder, failure, frames) = (encoder.clone(), failure.clone(), frames.clone());
        let video_end = video_end.clone();
        let stream: StreamId = "file".to_string().try_into().map_err(anyhow::Error::msg)?;
        move |buffer: gst::Buffer, info: &gst_video::VideoInfo| {
            let seq = frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut frame = Frame::new(
                buffer,
                info.clone(),
                FrameMeta::new(stream.clone(), seq, SystemTime::now()),
            );
            {
                let mut p = lock(&processing);
                let report = p.chain.run(&mut frame);
                for (name, e) in report.errors {
                    tracing::warn!(processor = name, frame = seq, "processor failed: {e:#}");
                }
                if report.withheld {
                    // A `python` function past its budget kept this frame: the file goes on
                    // without it.
                    return;
                }
                if let Err(e) = p.write_tracks(&frame)
                    && let Ok(mut f) = failure.lock()
                {
                    f.get_or_insert_with(|| format!("writing the tracks: {e}"));
                }
            }
            let (buffer, info, _) = frame.into_parts();
            if let (Some(pts), Ok(mut end)) = (buffer.pts(), video_end.lock()) {
                let frame_end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                *end = Some(end.map_or(frame_end, |e| e.max(frame_end)));
            }
            if let Err(e) = encoder.push(buffer, &info, None)
                && let Ok(mut f) = failure.lock()
            {
                f.get_or_insert_with(|| format!("the encoder refused frame {seq}: {e:?}"));
            }
        }
    };
    let ingest = Ingest::build(
        &SourceUrl::File(args.input.clone()),
        RtspTransport::Tcp,
        args.decoder_hardware,
        IngestOptions {
            realtime: args.realtime,
            lossless: true,
            ..IngestOptions::default()
        },
        Arc::default(),
        None,
        on_frame,
    )?;
    let pipeline = ingest.pipeline();
    pipeline
        .set_state(gst::State::Playing)
        .context("starting the decoder")?;
    let bus = pipeline.bus().context("no bus")?;
    // SIGINT/SIGTERM end the input early: what was processed so far is written out as a
    // complete MP4. A second signal exits at once.
    let signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let handle = signals.handle();
    let watcher = {
        let weak = pipeline.downgrade();
        let mut signals = signals;
        std::thread::spawn(move || {
            let mut it = signals.forever();
            if it.next().is_some() {
                tracing::info!(
                    "stopping: finishing the output file (a second signal exits at once)"
                );
                if let Some(p) = weak.upgrade() {
                    p.send_event(gst::event::Eos::new());
                }
                if it.next().is_some() {
                    std::process::exit(130);
                }
            }
        })
    };
    let _stop_watcher = scopeguard(move || {
        handle.close();
        let _ = watcher.join();
    });
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                anyhow::bail!("reading {}: {}", args.input.display(), error_text(e))
            }
            _ => {}
        }
    }
    drop(ingest);
    if let Some(f) = failure.lock().ok().and_then(|f| f.clone()) {
        anyhow::bail!(f);
    }
    // The input ended: the tracks still open end at the last frame's time; the tracker's
    // counts (and what ending them made) go after the last frame's tracks.
    let mut p = lock(&processing);
    p.chain.finish();
    if let Some(path) = &args.tracks_out {
        p.write_end()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    drop(p);
    if let Some(end) = video_end.lock().ok().and_then(|e| *e) {
        cut.at(end);
    }
    encoder
        .finish(Duration::from_secs(120))
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(ProcessReport {
        frames: frames.load(std::sync::atomic::Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// The processors and where their results go: taken by the decoder's thread for every frame,
/// then once more at the end of the input.
struct Processing {
    chain: Chain,
    /// The tracks file, when asked for.
    tracks_out: Option<std::io::LineWriter<std::fs::File>>,
    /// The tracker's events, written with the frame (or the end) that made them.
    happened: tokio::sync::mpsc::Receiver<crate::store::Event>,
    /// The source PTS of the detector's result last written.
    last_result: Option<u64>,
}

impl Processing {
    /// Writes `frame`'s tracks line (when there is a tracks file): its tracks, the detector's
    /// new result once with the time of the frame it was found in (so that a detector's
    /// recall can be scored apart from the tracker's), and the tracker's events.
    fn write_tracks(&mut self, frame: &Frame) -> std::io::Result<()> {
        let Some(out) = &mut self.tracks_out else {
            return Ok(());
        };
        let mut line = serde_json::json!({
            "pts": frame.buffer().pts().map(|p| p.nseconds() as f64 / 1e9),
            "tracks": frame.meta.tracks.as_deref().unwrap_or_default(),
        });
        if frame.meta.detections_pts.is_some() && frame.meta.detections_pts != self.last_result {
            self.last_result = frame.meta.detections_pts;
            line["detections"] = serde_json::json!({
                "pts": frame.meta.detections_pts.map(|p| p as f64 / 1e9),
                "boxes": frame.meta.detections,
            });
        }
        super::track_replay::attach_events(&mut line, &mut self.happened);
        writeln!(out, "{line}")
    }

    /// Writes the tracks file's last line (when there is a tracks file and a tracker): the
    /// counts, and the events of the tracks the input's end ended.
    fn write_end(&mut self) -> std::io::Result<()> {
        let (Some(out), Some(tracker)) = (&mut self.tracks_out, self.chain.tracker()) else {
            return Ok(());
        };
        let mut line = serde_json::json!({ "counts": tracker.counts() });
        super::track_replay::attach_events(&mut line, &mut self.happened);
        writeln!(out, "{line}")?;
        out.flush()
    }
}

/// An MP4 with the input's sound (when it has some), or raw frames when the name ends in
/// `.y4m`.
fn output_sink(args: &ProcessArgs, cut: &file_audio::Cut) -> Result<EncodeSink> {
    let path = &args.output;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("y4m"))
    {
        return Ok(EncodeSink::Y4m(path.clone()));
    }
    let audio = match file_audio::probe(&args.input)? {
        Some(caps) => {
            tracing::info!("the input's sound ({caps}) goes into the MP4");
            Some(file_audio::branch(&args.input, &caps, cut)?.upcast())
        }
        None => None,
    };
    Ok(EncodeSink::Mp4(path.clone(), audio))
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
