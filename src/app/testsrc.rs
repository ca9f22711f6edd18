//! `framegate testsrc`: a stand-in for a row of IP cameras. Serves K live H.264 test patterns
//! over RTSP at `rtsp://<bind>:<port>/cam0` ... `/cam{K-1}`, for trying framegate, for its tests
//! and for benchmarks. Every frame carries its capture time in its pixels (a row of blocks
//! along the bottom, see [`crate::measure`]), so `framegate probe` can tell how old a frame is
//! on arrival at any output. It can also drop every client now and then, as flaky cameras do.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use gst::prelude::*;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::elements::make;
use crate::publish::RtspServer;
use crate::supervise::Shutdown;

/// What `testsrc` serves.
#[derive(Debug, Clone)]
pub struct TestSourceArgs {
    /// Address to listen on.
    pub bind: IpAddr,
    /// RTSP port.
    pub port: u16,
    /// Number of streams.
    pub count: u32,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// `videotestsrc` pattern.
    pub pattern: String,
    /// H.264 bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Close every client connection this often (none: never).
    pub drop_clients_every: Option<Duration>,
    /// Require these credentials (user, password), as most cameras do.
    pub credentials: Option<(String, String)>,
    /// Serve H.265 instead of H.264.
    pub h265: bool,
}

/// Serves until SIGINT/SIGTERM.
pub fn run_test_source(args: &TestSourceArgs) -> Result<()> {
    super::init_media()?;
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let server = RtspServer::start(args.bind, args.port)?;
    if let Some((user, password)) = &args.credentials {
        server.require_basic_auth(user, password);
    }
    for i in 0..args.count {
        let path = format!("/cam{i}");
        let a = args.clone();
        server.mount_media(&path, Box::new(move || camera_bin(&a)))?;
        println!("{}", server.url(&path));
    }
    let stop = Shutdown::new();
    let dropper = args.drop_clients_every.map(|every| {
        let stop = stop.clone();
        let server = &server;
        move || {
            while !stop.wait(every) {
                server.disconnect_all();
            }
        }
    });
    std::thread::scope(|scope| {
        if let Some(dropper) = dropper {
            scope.spawn(dropper);
        }
        signals.forever().next();
        stop.trigger();
    });
    Ok(())
}

/// `videotestsrc (live) → caps → x264enc|x265enc (zerolatency) → rtph264pay|rtph265pay`.
fn camera_bin(a: &TestSourceArgs) -> Result<gst::Element> {
    let bin = gst::Bin::new();
    let src = make("videotestsrc")?;
    src.set_property("is-live", true);
    src.set_property_from_str("pattern", &a.pattern);
    let caps = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .width(a.width as i32)
                .height(a.height as i32)
                .framerate(gst::Fraction::new(a.fps as i32, 1))
                .build(),
        )
        .build()?;
    let (enc, pay) = if a.h265 {
        let enc = make("x265enc")?;
        enc.set_property_from_str("tune", "zerolatency");
        enc.set_property_from_str("speed-preset", "ultrafast");
        enc.set_property("bitrate", a.bitrate_kbps);
        enc.set_property("key-int-max", a.fps as i32);
        (enc, "rtph265pay")
    } else {
        let enc = make("x264enc")?;
        enc.set_property_from_str("tune", "zerolatency");
        enc.set_property_from_str("speed-preset", "ultrafast");
        enc.set_property("bitrate", a.bitrate_kbps);
        enc.set_property("key-int-max", a.fps);
        (enc, "rtph264pay")
    };
    let pay = gst::ElementFactory::make(pay)
        .name("pay0")
        .property("pt", 96u32)
        .property("config-interval", -1i32)
        .build()?;
    stamp_frames(&caps);
    bin.add_many([&src, &caps, &enc, &pay])?;
    gst::Element::link_many([&src, &caps, &enc, &pay])?;
    Ok(bin.upcast())
}

/// Draws each frame's capture time into it as it leaves the test pattern.
fn stamp_frames(caps: &gst::Element) {
    let Some(pad) = caps.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, |pad, probe| {
        let info = pad
            .current_caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok());
        if let (Some(info), Some(gst::PadProbeData::Buffer(buffer))) = (info, &mut probe.data)
            && let Ok(frame) =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), &info)
            && let Ok(mut canvas) = crate::frame::Canvas::new(frame)
        {
            crate::measure::write_stamp(&mut canvas, std::time::SystemTime::now());
        }
        gst::PadProbeReturn::Ok
    });
}
