//! End-to-end tests of `framegate run` against real servers and clients: an RTSP camera served
//! by gst-rtsp-server, nginx with the RTMP module, ffmpeg/ffprobe, and a RECORD-mode RTSP server.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::rtsp::TestRtspServer;
use common::{
    Framegate, Nginx, ffmpeg_publish_rtmp, ffprobe, free_port, grab_frames, wait_for, wait_for_port,
};

const LIVE: Duration = Duration::from_secs(30);

#[test]
fn rtsp_camera_to_rtsp_output_keeps_format_and_draws_the_overlay() {
    let camera = TestRtspServer::camera("/cam", "smpte", 640, 360, 25);
    let port = free_port();
    // Credentials in the source URL must never reach the log.
    let source = format!("rtsp://viewer:s3cr3t-pw@127.0.0.1:{}/cam", camera.port);
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}
summary_interval_s = 1

[[streams]]
id = "cam0"
source = "{source}"
processors = [ {{ kind = "overlay" }} ]
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    fg.wait_log("connecting → live", LIVE);
    let out_url = format!("rtsp://127.0.0.1:{port}/cam0");

    let (codec, w, h, rate) = wait_for("ffprobe to read the output", LIVE, || ffprobe(&out_url));
    assert_eq!(
        (codec.as_str(), w, h, rate.as_str()),
        ("h264", 640, 360, "25/1"),
        "ffprobe"
    );

    // The last of 30 frames: well after the first key frame, so fully decoded.
    let src = grab_frames(&camera.url("/cam"), 30, LIVE);
    let out = grab_frames(&out_url, 30, LIVE);
    let (a, b) = (&src[29], &out[29]);
    assert_eq!((b.width, b.height), (640, 360));
    // The overlay's backdrop and text sit in the top-left corner: there the output differs
    // strongly from the source; away from it, only by compression noise.
    let overlay = a.diff(b, 0, 0, 200, 20);
    // (The bars; the pattern's bottom-right corner is noise.)
    let elsewhere = a.diff(b, 0, 80, 560, 140);
    assert!(
        overlay > 40.0,
        "no overlay in the output: mean difference {overlay:.1}"
    );
    assert!(
        elsewhere < 8.0,
        "picture differs away from the overlay: {elsewhere:.1}"
    );
    // Frames flow: the frame counter and clock change from frame to frame.
    let changed = out[0].diff(&out[29], 0, 0, 300, 40);
    assert!(changed > 0.5, "output frames do not change: {changed:.2}");

    fg.wait_log("fps in", LIVE);
    let log = fg.log();
    assert!(
        !log.contains("s3cr3t-pw"),
        "the source password leaked into the log"
    );
    assert!(
        log.contains("decoder chosen") && log.contains(common::expect::h264_decoder()),
        "decoder not logged"
    );
}

#[test]
fn rtmp_in_and_out_through_nginx() {
    let nginx = Nginx::start();
    let _obs = ffmpeg_publish_rtmp(&nginx.url("in"), "640x360");
    let rtsp_port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {rtsp_port}

[[streams]]
id = "obs"
source = "{src}"
processors = [ {{ kind = "overlay" }} ]
outputs = [ {{ kind = "rtmp", url = "{dst}" }} ]
"#,
        src = nginx.url("in"),
        dst = nginx.url("out"),
    ));
    fg.wait_log("connecting → live", LIVE);
    fg.wait_log("output publishing", LIVE);
    let (codec, w, h, _) = wait_for("the pushed stream on nginx", LIVE, || {
        ffprobe(&nginx.url("out")).filter(|p| p.0 == "h264")
    });
    assert_eq!((codec.as_str(), w, h), ("h264", 640, 360));
    let frames = grab_frames(&nginx.url("out"), 10, LIVE);
    assert_eq!((frames[9].width, frames[9].height), (640, 360));
}

#[test]
fn rtsp_push_reaches_a_record_server_and_a_dead_output_harms_nothing() {
    let (server, frames, size) = TestRtspServer::record("/ingest");
    let rtsp_port = free_port();
    let dead = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {rtsp_port}

[[streams]]
id = "pushed"
source = "test://ball?width=320&height=240&fps=25"
processors = [ {{ kind = "overlay" }} ]
outputs = [
  {{ kind = "rtsp-push", url = "rtsp://127.0.0.1:{dead}/nobody", retry_initial_s = 0.2, retry_max_s = 0.5 }},
  {{ kind = "rtsp-push", url = "{url}" }},
  {{ kind = "rtsp" }},
]
"#,
        url = server.url("/ingest"),
    ));
    wait_for("frames at the RECORD server", LIVE, || {
        (frames.load(Ordering::Relaxed) > 25).then_some(())
    });
    assert_eq!(*size.lock().unwrap(), Some((320, 240)));
    // The output with no server keeps retrying, and the stream's other outputs still serve.
    fg.wait_log("output failed", LIVE);
    wait_for_port(rtsp_port, LIVE);
    let served = grab_frames(&format!("rtsp://127.0.0.1:{rtsp_port}/pushed"), 5, LIVE);
    assert_eq!(served[0].width, 320);
    let before = frames.load(Ordering::Relaxed);
    wait_for("more frames while the dead output retries", LIVE, || {
        (frames.load(Ordering::Relaxed) > before + 25).then_some(())
    });
}
