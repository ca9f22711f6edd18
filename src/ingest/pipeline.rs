//! The ingest pipeline of one source: source → decoder → frame sink, and what it found out about
//! the source (codec, size, rate, decoder in use).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::audio::AudioTrack;
use crate::config::{Hardware, RtspTransport, SourceUrl};
use crate::frame::NATIVE_FORMATS;
use crate::hardware;

use super::passthrough::{self, Passthrough};
use super::source::{self, SourceOut};

/// How the ingest pipeline behaves.
#[derive(Clone, Default)]
pub struct IngestOptions {
    /// Pace file sources at their own frame rate (live mode). Off for `framegate process`.
    pub realtime: bool,
    /// Never drop a decoded frame: the frame sink's handoff waits for the consumer (file
    /// processing). Off in live mode, where the handoff hands frames over and returns at once.
    pub lossless: bool,
    /// Pass the source's own H.264 through beside the decoder (`None`: decode only).
    pub passthrough: Option<Passthrough>,
    /// The highest rate of decoded frames handed over (pass-through only; `None`: all).
    pub analyze_fps: Option<f64>,
}

/// What is known about a source once it plays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceInfo {
    /// The decoder element in use (`avdec_h264`, `nvh264dec`, ...); `None` for raw sources.
    pub decoder: Option<String>,
    /// Whether that decoder runs on the GPU.
    pub hardware: bool,
    /// Encoded caps as seen by the decoder (codec and profile).
    pub codec: Option<String>,
    /// Decoded width and height.
    pub size: Option<(u32, u32)>,
    /// Frame rate announced by the source, if any.
    pub fps: Option<f64>,
}

/// A running (or ready) ingest pipeline. Dropping it stops it.
pub struct Ingest {
    pipeline: gst::Pipeline,
    info: Arc<Mutex<SourceInfo>>,
}

impl Ingest {
    /// Builds the pipeline; `on_frame` gets every decoded frame and its layout, on a GStreamer
    /// thread; what
    /// is learnt about the source goes into `info` (shared, so that it outlives reconnects).
    pub fn build(
        source: &SourceUrl,
        transport: RtspTransport,
        decoder_hw: Hardware,
        opts: IngestOptions,
        info: Arc<Mutex<SourceInfo>>,
        audio: Option<Arc<AudioTrack>>,
        on_frame: impl FnMut(gst::Buffer, &gst_video::VideoInfo) + Send + 'static,
    ) -> Result<Self> {
        let audio = audio.filter(|a| a.enabled());
        hardware::check_decoder(decoder_hw).map_err(anyhow::Error::msg)?;
        let pipeline = gst::Pipeline::new();
        let convert = crate::elements::make("videoconvert")?;
        let formats = crate::elements::make("capsfilter")?;
        formats.set_property(
            "caps",
            gst_video::VideoCapsBuilder::new()
                .format_list(NATIVE_FORMATS)
                .build(),
        );
        let sink = frame_sink(opts.realtime && matches!(source, SourceUrl::File(_)))?;
        pipeline.add_many([&convert, &formats, &sink])?;
        gst::Element::link_many([&convert, &formats, &sink])?;
        install_frame_callback(&sink, &info, opts.lossless, on_frame)?;
        if let (Some(_), Some(fps), Some(pad)) = (
            &opts.passthrough,
            opts.analyze_fps,
            convert.static_pad("sink"),
        ) {
            passthrough::limit_rate(&pad, fps);
        }

        let outs = Outs {
            pipeline: pipeline.downgrade(),
            convert: convert.downgrade(),
            audio,
            audio_linked: Arc::default(),
            sync: opts.realtime && matches!(source, SourceUrl::File(_)),
            decoder_hw,
            info: info.clone(),
            passthrough: opts.passthrough.clone(),
            passthrough_out: match &opts.passthrough {
                Some(p) => Some(
                    passthrough::output(
                        &pipeline,
                        p,
                        opts.realtime && matches!(source, SourceUrl::File(_)),
                    )?
                    .downgrade(),
                ),
                None => None,
            },
            video_taken: Arc::default(),
        };
        match source::build(
            pipeline.upcast_ref(),
            source,
            transport,
            outs.audio.as_ref(),
        )? {
            SourceOut::Raw(src) => {
                if let Some(p) = &outs.passthrough {
                    p.units
                        .refused(Some("a test pattern has no video of its own".into()));
                }
                src.link(&convert)?
            }
            SourceOut::Static(src) => {
                let next = match outs.passthrough {
                    Some(_) => outs.parsebin(&pipeline)?,
                    None => outs.decodebin(&pipeline)?,
                };
                src.link(&next)
                    .context("linking the source to the decoder")?;
            }
            SourceOut::Dynamic(src) => {
                // One decodebin (or parsebin) per stream of the source: its video, its audio.
                src.connect_pad_added(move |_, pad| {
                    if let Err(e) = outs.decode_pad(pad) {
                        tracing::warn!("cannot decode a stream of the source: {e:#}");
                    }
                });
            }
        }
        Ok(Self { pipeline, info })
    }

    /// The GStreamer pipeline (to play it and watch its bus).
    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// What is known about the source so far.
    pub fn info(&self) -> SourceInfo {
        self.info.lock().map(|i| i.clone()).unwrap_or_default()
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The sink that hands decoded frames over, in its streaming thread, after the clock wait when
/// `sync` (a file played in real time): a `fakesink` whose `handoff` is the hand-over.
///
/// A frame reaches framegate with no other reference the sink could hold, so a processor that
/// draws (the overlay, the watermark) writes on it in place unless the decoder still holds it
/// (libav keeps its reference pictures' output; NVDEC's downloaded frames and raw sources are
/// not held). An appsink kept the last frame in a sample of its own until the next one, and the
/// sink itself held each frame until its handoff returned, by when the processing thread may
/// already be drawing: so a probe takes each frame before the sink and lets a stand-in with
/// the same timestamps through (the sink paces, prerolls and clips on those); the handoff then
/// gives the frame itself away.
fn frame_sink(sync: bool) -> Result<gst::Element> {
    let sink = crate::elements::make("fakesink")?;
    sink.set_property("sync", sync);
    sink.set_property("enable-last-sample", false);
    sink.set_property("silent", true);
    sink.set_property("signal-handoffs", true);
    Ok(sink)
}

/// Calls `on_frame` with each frame the sink gets, its timestamps made running times when
/// `running_times`.
fn install_frame_callback(
    sink: &gst::Element,
    info: &Arc<Mutex<SourceInfo>>,
    running_times: bool,
    on_frame: impl FnMut(gst::Buffer, &gst_video::VideoInfo) + Send + 'static,
) -> Result<()> {
    let pad = sink
        .static_pad("sink")
        .context("fakesink has no sink pad")?;
    let taken: Arc<Mutex<Option<gst::Buffer>>> = Arc::default();
    let stash = taken.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
        if let Some(gst::PadProbeData::Buffer(frame)) = probe.data.take() {
            let times = gst::BufferCopyFlags::TIMESTAMPS | gst::BufferCopyFlags::FLAGS;
            let mut stand_in = gst::Buffer::new();
            // (Should the times not copy, the frame itself goes on, shared with the sink.)
            let passed = if stand_in
                .get_mut()
                .is_some_and(|b| frame.copy_into(b, times, ..).is_ok())
            {
                *crate::supervise::lock(&stash) = Some(frame);
                stand_in
            } else {
                frame
            };
            probe.data = Some(gst::PadProbeData::Buffer(passed));
        }
        gst::PadProbeReturn::Ok
    });
    let info = info.clone();
    // Caps are parsed once per change, not once per frame.
    let state: Mutex<(_, Option<(gst::Caps, gst_video::VideoInfo)>)> = Mutex::new((on_frame, None));
    sink.connect("handoff", false, move |args| {
        let pad = args.get(2)?.get::<gst::Pad>().ok()?;
        let handed = args.get(1)?.get::<gst::Buffer>().ok()?;
        // The frame the probe took for this stand-in; else (a buffer list does not pass the
        // probe) the buffer as it came.
        let mut buffer = match crate::supervise::lock(&taken).take() {
            Some(frame) if frame.pts() == handed.pts() => frame,
            _ => handed,
        };
        let caps = pad.current_caps()?;
        let mut state = crate::supervise::lock(&state);
        let (on_frame, current) = &mut *state;
        if current
            .as_ref()
            .is_none_or(|(c, _)| c.as_ptr() != caps.as_ptr() && c != &caps)
        {
            let vi = gst_video::VideoInfo::from_caps(&caps).ok()?;
            let mut i = crate::supervise::lock(&info);
            i.size = Some((vi.width(), vi.height()));
            let fps = vi.fps();
            if fps.numer() > 0 {
                i.fps = Some(f64::from(fps.numer()) / f64::from(fps.denom()));
            }
            *current = Some((caps, vi));
        }
        let vi = &current.as_ref()?.1;
        if running_times
            && let Some(segment) = pad.sticky_event::<gst::event::Segment>(0)
            && let Some(segment) = segment.segment().downcast_ref::<gst::ClockTime>()
        {
            let b = buffer.make_mut();
            let (pts, dts) = (
                b.pts().and_then(|t| segment.to_running_time(t)),
                b.dts().and_then(|t| segment.to_running_time(t)),
            );
            b.set_pts(pts);
            b.set_dts(dts);
        }
        on_frame(buffer, vi);
        None
    });
    Ok(())
}

/// Where a decodebin's pads go: video to the converter before the appsink, the first audio
/// pad to the audio branch. Holds the pipeline weakly (callbacks must not keep it alive).
#[derive(Clone)]
struct Outs {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    convert: gst::glib::WeakRef<gst::Element>,
    audio: Option<Arc<AudioTrack>>,
    audio_linked: Arc<AtomicBool>,
    sync: bool,
    decoder_hw: Hardware,
    info: Arc<Mutex<SourceInfo>>,
    passthrough: Option<Passthrough>,
    /// Where the pass-through's units go (made with the pipeline).
    passthrough_out: Option<gst::glib::WeakRef<gst::Element>>,
    /// The source's (first) video stream has its branch.
    video_taken: Arc<AtomicBool>,
}

impl Outs {
    /// A new parsebin in `pipeline` (pass-through): its parsed streams go to
    /// [`Outs::route_parsed`].
    fn parsebin(&self, pipeline: &gst::Pipeline) -> Result<gst::Element> {
        let parsebin = crate::elements::make("parsebin")?;
        pipeline.add(&parsebin)?;
        let outs = self.clone();
        parsebin.connect_pad_added(move |_, pad| {
            if let Err(e) = outs.route_parsed(pad) {
                tracing::warn!("cannot use a stream of the source: {e:#}");
            }
        });
        Ok(parsebin)
    }

    /// A parsed stream: the first H.264 video to the pass-through and the decoder, anything
    /// else to a decodebin of its own (another video codec cannot pass through: refused).
    fn route_parsed(&self, pad: &gst::Pad) -> Result<()> {
        let (Some(pass), Some(pipeline)) = (&self.passthrough, self.pipeline.upgrade()) else {
            return Ok(());
        };
        // parsebin may expose a pad before its caps are fixed (RTP): its type is enough here.
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let s = caps.structure(0).context("empty caps")?;
        let video = s.name().starts_with("video/");
        let first_video = video && !self.video_taken.swap(true, Ordering::SeqCst);
        let decodebin = self.decodebin(&pipeline)?;
        if first_video
            && s.name() == "video/x-h264"
            && let Some(out) = self.passthrough_out.as_ref().and_then(|o| o.upgrade())
        {
            return passthrough::branch(&pipeline, pad, pass, &out, &decodebin, self.sync);
        }
        if first_video {
            pass.units.refused(Some(format!(
                "the source's video is {}, not H.264",
                codec_name(s)
            )));
            if let Some(out) = self.passthrough_out.as_ref().and_then(|o| o.upgrade()) {
                passthrough::remove_output(&pipeline, &out);
            }
        }
        // A queue of its own: the demuxer's thread must not wait in this branch's sink (its
        // preroll, its sync) while the video's branches wait for data (parsebin has no
        // multiqueue of its own).
        let queue = crate::elements::make("queue")?;
        pipeline.add(&queue)?;
        queue.link(&decodebin)?;
        decodebin.sync_state_with_parent()?;
        queue.sync_state_with_parent()?;
        let sink = queue.static_pad("sink").context("queue has no sink")?;
        pad.link(&sink)?;
        Ok(())
    }

    /// A new decodebin in `pipeline` whose pads go where they belong.
    fn decodebin(&self, pipeline: &gst::Pipeline) -> Result<gst::Element> {
        let decodebin = crate::elements::make("decodebin")?;
        // Encoded audio comes out as it is (passed through, or transcoded once downstream).
        decodebin.set_property("caps", crate::audio::decodebin_stop_caps());
        pipeline.add(&decodebin)?;
        let outs = self.clone();
        decodebin.connect_pad_added(move |_, pad| outs.route(pad));
        choose_decoders(&decodebin, self.decoder_hw, &self.info);
        Ok(decodebin)
    }

    /// A pad of rtspsrc: a decodebin (or a parsebin, to pass through) of its own, playing.
    fn decode_pad(&self, pad: &gst::Pad) -> Result<()> {
        let pipeline = self.pipeline.upgrade().context("the pipeline is gone")?;
        let decodebin = match self.passthrough {
            Some(_) => self.parsebin(&pipeline)?,
            None => self.decodebin(&pipeline)?,
        };
        decodebin.sync_state_with_parent()?;
        let sink = decodebin
            .static_pad("sink")
            .context("decodebin has no sink")?;
        pad.link(&sink)?;
        Ok(())
    }

    fn route(&self, pad: &gst::Pad) {
        let Some(caps) = pad.current_caps() else {
            return;
        };
        let name = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        if name.starts_with("video/") {
            if let Some(sink) = self.convert.upgrade().and_then(|c| c.static_pad("sink"))
                && !sink.is_linked()
                && let Err(e) = pad.link(&sink)
            {
                tracing::warn!("cannot link the video decoder: {e:?}");
            }
        } else if name.starts_with("audio/")
            && let (Some(track), Some(pipeline)) = (&self.audio, self.pipeline.upgrade())
            && !self.audio_linked.swap(true, Ordering::SeqCst)
            && let Err(e) = super::audio::link(&pipeline, pad, track.clone(), self.sync)
        {
            track.ignore(format!("the audio branch cannot be built: {e:#}"));
        }
    }
}

/// Restricts decodebin's choice of video decoder to the configured hardware, and records the
/// decoder chosen and the codec it decodes.
fn choose_decoders(decodebin: &gst::Element, decoder_hw: Hardware, info: &Arc<Mutex<SourceInfo>>) {
    if decoder_hw != Hardware::Auto {
        decodebin.connect("autoplug-select", false, move |args| {
            let factory = args.get(3)?.get::<gst::ElementFactory>().ok()?;
            let decoder = factory.has_type(gst::ElementFactoryType::DECODER);
            let skip = decoder
                && match decoder_hw {
                    Hardware::Off => hardware::is_nvidia(&factory),
                    Hardware::On => !hardware::is_nvidia(&factory),
                    Hardware::Auto => false,
                };
            select_result(if skip { SELECT_SKIP } else { SELECT_TRY })
        });
    }
    let info = info.clone();
    decodebin.connect("deep-element-added", false, move |args| {
        let element = args.get(2)?.get::<gst::Element>().ok()?;
        let factory = element.factory()?;
        if factory.has_type(gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO)
        {
            let name = factory.name().to_string();
            let hw = hardware::is_nvidia(&factory);
            if let Some(pad) = element.static_pad("sink") {
                let info = info.clone();
                pad.connect_notify(Some("caps"), move |pad, _| {
                    if let (Some(caps), Ok(mut i)) = (pad.current_caps(), info.lock()) {
                        i.codec = caps.structure(0).map(codec_name);
                    }
                });
            }
            // A live source's libav decoder threads by slices (a camera's one slice a frame
            // keeps one busy): one thread each when the streams fill the cores.
            if name.starts_with("avdec_")
                && element.find_property("max-threads").is_some()
                && crate::encode::crowded()
            {
                element.set_property("max-threads", 1i32);
            }
            if name.starts_with("avdec_") && std::env::var_os("FG_NODR").is_some() {
                element.set_property("direct-rendering", false);
            }
            tracing::info!(decoder = %name, hardware = hw, "decoder chosen");
            if let Ok(mut i) = info.lock() {
                i.decoder = Some(name);
                i.hardware = hw;
            }
        }
        None
    });
}

/// `GST_AUTOPLUG_SELECT_TRY`: let decodebin use the factory.
const SELECT_TRY: i32 = 0;
/// `GST_AUTOPLUG_SELECT_SKIP`: let decodebin try the next factory.
const SELECT_SKIP: i32 = 2;

/// An answer to decodebin's `autoplug-select`, as a value of its enum type.
fn select_result(answer: i32) -> Option<gst::glib::Value> {
    let ty = gst::glib::Type::from_name("GstAutoplugSelectResult")?;
    gst::glib::EnumClass::with_type(ty)?.to_value(answer)
}

/// A short codec description from encoded caps: `h264 (high)`, `h265 (main)`.
fn codec_name(s: &gst::StructureRef) -> String {
    let name = s.name().trim_start_matches("video/x-");
    match s.get::<&str>("profile") {
        Ok(profile) => format!("{name} ({profile})"),
        Err(_) => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A frame nothing else holds is drawn on in place: an appsink (its sample of the last
    /// frame) or a sink still holding the frame while it is handed over would make each
    /// drawing processor copy the whole picture first.
    #[test]
    fn a_frame_is_handed_over_as_its_only_reference() {
        gst::init().unwrap();
        let source = SourceUrl::parse("test://ball?width=320&height=240&fps=25").unwrap();
        let (tx, rx) = mpsc::sync_channel(64);
        let ingest = Ingest::build(
            &source,
            RtspTransport::default(),
            Hardware::Auto,
            IngestOptions {
                realtime: true,
                ..Default::default()
            },
            Arc::default(),
            None,
            move |buffer, info| {
                let sole =
                    buffer.is_writable() && buffer.memory(0).is_some_and(|m| m.is_writable());
                let _ = tx.try_send((sole, buffer.size() == info.size()));
            },
        )
        .unwrap();
        ingest.pipeline().set_state(gst::State::Playing).unwrap();
        let got: Vec<(bool, bool)> = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert!(
            got.iter().all(|(_, whole)| *whole),
            "a frame's pixels: {got:?}"
        );
        assert!(got.iter().all(|(sole, _)| *sole), "held elsewhere: {got:?}");
    }
}
