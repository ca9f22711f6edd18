//! RTSP servers inside the test process (gst-rtsp-server): a camera-like source, and a
//! RECORD-mode server that receives pushed streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::free_port;

/// The last frame size a RECORD mount decoded.
pub type FrameSize = Arc<std::sync::Mutex<Option<(i32, i32)>>>;

/// An RTSP server on a free port, with its own main loop thread.
pub struct TestRtspServer {
    pub port: u16,
    server: gst_rtsp_server::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    _source: glib::SourceId,
}

impl TestRtspServer {
    fn start() -> Self {
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Self {
        gst::init().unwrap();
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let ctx = glib::MainContext::new();
        let source = server.attach(Some(&ctx)).unwrap();
        let main_loop = glib::MainLoop::new(Some(&ctx), false);
        let ml = main_loop.clone();
        let thread = std::thread::spawn(move || {
            ctx.with_thread_default(|| ml.run()).unwrap();
        });
        Self {
            port,
            server,
            main_loop,
            thread: Some(thread),
            _source: source,
        }
    }

    /// Serves an H.264 camera-like stream of a test pattern at `path`:
    /// `videotestsrc pattern=<pattern> ! WxH@fps ! x264enc ! rtph264pay`.
    pub fn camera(path: &str, pattern: &str, width: u32, height: u32, fps: u32) -> Self {
        let s = Self::start();
        s.add_camera(path, pattern, width, height, fps);
        s
    }

    /// Adds another camera mount.
    pub fn add_camera(&self, path: &str, pattern: &str, width: u32, height: u32, fps: u32) {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( videotestsrc is-live=true pattern={pattern} ! \
               video/x-raw,width={width},height={height},framerate={fps}/1 ! \
               x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=3000 ! \
               rtph264pay name=pay0 pt=96 config-interval=-1 )"
        ));
        factory.set_shared(true);
        self.server
            .mount_points()
            .unwrap()
            .add_factory(path, factory);
    }

    /// A camera whose bitstream is corrupted while `noisy` is set, as a bad link would: a
    /// live white picture encoded to H.264 (or H.265), with about one byte in `one_in` of each
    /// access unit changed and one access unit in seven dropped (the same as ffmpeg's `noise`
    /// bitstream filter with `amount` and `drop`), between the parser and the payloader.
    pub fn corrupted(path: &str, h265: bool, one_in: u32, noisy: Arc<AtomicBool>) -> Self {
        let s = Self::start();
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        let codec = if h265 {
            "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h265parse name=parse ! \
             rtph265pay name=pay0 pt=96 config-interval=-1"
        } else {
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h264parse name=parse ! \
             rtph264pay name=pay0 pt=96 config-interval=-1"
        };
        factory.set_launch(&format!(
            "( videotestsrc is-live=true pattern=white ! \
               video/x-raw,width=320,height=240,framerate=25/1 ! {codec} )"
        ));
        factory.set_shared(true);
        factory.connect_media_configure(move |_, media| {
            let bin = media.element().downcast::<gst::Bin>().unwrap();
            let parse = bin.by_name_recurse_up("parse").unwrap();
            let noisy = noisy.clone();
            // (access units seen, xorshift64 state): the same noise on every run.
            let state = std::sync::Mutex::new((0u64, 0x9e37_79b9_7f4a_7c15u64));
            parse.static_pad("src").unwrap().add_probe(
                gst::PadProbeType::BUFFER,
                move |_, info| {
                    if !noisy.load(Ordering::Relaxed) {
                        return gst::PadProbeReturn::Ok;
                    }
                    let mut st = state.lock().unwrap();
                    let (n, rng) = &mut *st;
                    *n += 1;
                    if *n % 7 == 0 {
                        return gst::PadProbeReturn::Drop;
                    }
                    if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
                        let buffer = buffer.make_mut();
                        let mut map = buffer.map_writable().unwrap();
                        for byte in map.iter_mut() {
                            *rng ^= *rng << 13;
                            *rng ^= *rng >> 7;
                            *rng ^= *rng << 17;
                            if *rng % u64::from(one_in) == 0 {
                                *byte ^= (*rng >> 32) as u8 | 1;
                            }
                        }
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        });
        s.server.mount_points().unwrap().add_factory(path, factory);
        s
    }

    /// Serves a Matroska (or, `.mov`, MP4) clip (H.264 video and one audio track) at `path` as a camera with a
    /// microphone would, in real time: `audio_pay` is the audio's payloader chain
    /// (`aacparse ! rtpmp4gpay`, `opusparse ! rtpopuspay`, or an encoder and its payloader).
    pub fn clip(path: &str, clip: &std::path::Path, audio_pay: &str) -> Self {
        let s = Self::start();
        s.add_clip(path, clip, audio_pay);
        s
    }

    /// Like [`TestRtspServer::clip`], on a given port (a camera that comes back).
    pub fn clip_on(port: u16, path: &str, clip: &std::path::Path, audio_pay: &str) -> Self {
        let s = Self::start_on(port);
        s.add_clip(path, clip, audio_pay);
        s
    }

    /// Adds another clip mount (see [`TestRtspServer::clip`]).
    pub fn add_clip(&self, path: &str, clip: &std::path::Path, audio_pay: &str) {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( filesrc location={} ! matroskademux name=d                d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1                d.audio_0 ! queue ! {audio_pay} name=pay1 pt=97 )",
            clip.display()
        ));
        factory.set_shared(true);
        self.server
            .mount_points()
            .unwrap()
            .add_factory(path, factory);
    }

    /// A RECORD-mode mount at `path` that accepts a pushed H.264 stream and counts its
    /// decoded frames; returns the counter and the last frame size seen.
    pub fn record(path: &str) -> (Self, Arc<AtomicU64>, FrameSize) {
        let s = Self::start();
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_transport_mode(gst_rtsp_server::RTSPTransportMode::RECORD);
        factory.set_launch(
            "( rtph264depay name=depay0 ! h264parse ! avdec_h264 ! appsink name=sink sync=false )",
        );
        let frames = Arc::new(AtomicU64::new(0));
        let size = Arc::new(std::sync::Mutex::new(None));
        let (f, sz) = (frames.clone(), size.clone());
        factory.connect_media_configure(move |_, media| {
            let bin = media.element().downcast::<gst::Bin>().unwrap();
            let sink = bin
                .by_name_recurse_up("sink")
                .unwrap()
                .downcast::<gst_app::AppSink>()
                .unwrap();
            let (f, sz) = (f.clone(), sz.clone());
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(s) = sample.caps().and_then(|c| c.structure(0)) {
                            *sz.lock().unwrap() = Some((
                                s.get::<i32>("width").unwrap_or(0),
                                s.get::<i32>("height").unwrap_or(0),
                            ));
                        }
                        f.fetch_add(1, Ordering::Relaxed);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        });
        s.server.mount_points().unwrap().add_factory(path, factory);
        (s, frames, size)
    }

    /// A RECORD-mode mount at `path` that accepts pushed H.264 with sound (`depay` and
    /// `parse`: the depayloader and parser of its codec, e.g. `rtpopusdepay`, `opusparse`) and writes
    /// both to `file` (streamable Matroska, readable while it grows); returns the count of
    /// video frames received. The streams are taken in the order framegate announces them:
    /// the sound first (its caps are known when the output starts, the video's with its first
    /// frame).
    pub fn record_av(
        path: &str,
        (depay, parse): (&str, &str),
        file: &std::path::Path,
    ) -> (Self, Arc<AtomicU64>) {
        let s = Self::start();
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_transport_mode(gst_rtsp_server::RTSPTransportMode::RECORD);
        factory.set_launch(&format!(
            "( rtph264depay name=depay1 ! h264parse ! queue ! matroskamux name=m streamable=true \
               ! filesink location={} \
               {depay} name=depay0 ! {parse} ! queue ! m. )",
            file.display()
        ));
        let frames = Arc::new(AtomicU64::new(0));
        let f = frames.clone();
        factory.connect_media_configure(move |_, media| {
            let bin = media.element().downcast::<gst::Bin>().unwrap();
            let depay = bin.by_name_recurse_up("depay1").unwrap();
            let f = f.clone();
            depay
                .static_pad("src")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    f.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
        });
        s.server.mount_points().unwrap().add_factory(path, factory);
        (s, frames)
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for TestRtspServer {
    fn drop(&mut self) {
        // Quit from the loop's own thread: a quit before its `run` began would be lost.
        let ml = self.main_loop.clone();
        glib::idle_source_new(None, glib::Priority::HIGH, move || {
            ml.quit();
            glib::ControlFlow::Break
        })
        .attach(Some(&self.main_loop.context()));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one RTSP DESCRIBE of `url` to `addr` (with an `Authorization` header when given);
/// returns the status code and the `Location` and `WWW-Authenticate` headers of the answer.
pub fn describe(
    addr: &str,
    url: &str,
    authorization: Option<&str>,
) -> (u16, Option<String>, Option<String>) {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n{auth}\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(s).lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let (mut location, mut challenge) = (None, None);
    for line in lines {
        let line = line.unwrap();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "location" => location = Some(value.trim().to_string()),
                "www-authenticate" => challenge = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    (status, location, challenge)
}
