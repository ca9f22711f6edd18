//! A stream never dies of its source: slate while the camera is gone, reconnect with backoff,
//! outputs that outlive their servers, bad input, and clean shutdown. Real processes throughout:
//! the camera is `framegate testsrc` (killed and restarted like a real one), nginx-rtmp, ffmpeg.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::watch::{Watcher, is_live, is_slate};
use common::{
    Framegate, Nginx, Proc, count_frames, ffprobe, free_port, grab_frames, make_clip, wait_for,
    wait_for_port,
};

const LONG: Duration = Duration::from_secs(30);

/// A stand-in camera: `framegate testsrc` serving a 320x240 `/cam0` on `port`.
fn camera(port: u16, pattern: &str) -> Proc {
    camera_with(port, pattern, &["--size", "320x240"])
}

/// A stand-in camera with more `testsrc` arguments.
fn camera_with(port: u16, pattern: &str, args: &[&str]) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["testsrc", "--rtsp-port", &port.to_string()])
        .args(args)
        .args(["--pattern", pattern])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, LONG);
    Proc(child)
}

#[test]
fn output_shows_the_slate_while_the_camera_is_gone_and_live_again_without_reconnecting() {
    let cam_port = free_port();
    let mut cam = Some(camera(cam_port, "white"));
    let port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}
summary_interval_s = 1

[[streams]]
id = "cam0"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
stall_timeout_s = 1.0
reconnect = {{ initial_s = 0.2, max_s = 1.0 }}
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    fg.wait_log("connecting → live", LONG);
    wait_for_port(port, LONG);
    let watcher = Watcher::open(&format!("rtsp://127.0.0.1:{port}/cam0"));
    let start = Instant::now();
    wait_for("live frames at the client", LONG, || {
        watcher.first_after(start, is_live)
    });

    // The camera dies: within the stall timeout (plus decode and delivery) the slate shows.
    drop(cam.take());
    let killed = Instant::now();
    let slate_at = wait_for("the slate at the client", LONG, || {
        watcher.first_after(killed, is_slate)
    });
    let delay = slate_at - killed;
    assert!(delay < Duration::from_millis(2500), "slate after {delay:?}");
    // The output keeps its frame rate while the source is down.
    wait_for("two seconds of slate", LONG, || {
        watcher.first_after(slate_at + Duration::from_secs(2), |_| true)
    });
    let slate_frames = watcher.frames_between(slate_at, slate_at + Duration::from_secs(2));
    assert!(
        slate_frames >= 40,
        "only {slate_frames} slate frames in 2 s"
    );

    // The camera comes back, at another size: live frames replace the slate on the same
    // connection, scaled to the output's size.
    let _cam = camera_with(cam_port, "white", &["--size", "640x480"]);
    let back = Instant::now();
    let live_again = wait_for("live frames after the camera returned", LONG, || {
        watcher.first_after(back, is_live)
    });
    assert!(
        live_again - back < Duration::from_secs(5),
        "back after {:?}",
        live_again - back
    );
    watcher.assert_clean("the camera's outage");
    let widths: Vec<u32> = watcher.widths.lock().unwrap().iter().map(|w| w.1).collect();
    assert!(
        widths.iter().all(|w| *w == 320),
        "the output changed size: {widths:?}"
    );
    fg.wait_log("size=Some((640, 480))", LONG);
    let log = fg.log();
    let order = [
        "connecting → live",
        "reconnecting (attempt 1",
        "showing the NO SIGNAL slate",
        "slate off",
    ];
    let mut pos = 0;
    for step in order {
        let found = log[pos..]
            .find(step)
            .unwrap_or_else(|| panic!("no `{step}` after the previous step in:\n{log}"));
        pos += found;
    }
    // Frames never stopped: over the whole run the client got the output's full rate.
    let (first, last, n) = {
        let f = watcher.frames.lock().unwrap();
        (f[0].0, f[f.len() - 1].0, f.len())
    };
    let expected = (last - first).as_secs_f64() * 25.0;
    assert!(
        n as f64 > 0.8 * expected,
        "{n} frames where {expected:.0} were due"
    );
}

#[test]
fn a_camera_that_is_down_at_start_comes_up_by_itself() {
    let cam_port = free_port();
    let port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}

[[streams]]
id = "late"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
reconnect = {{ initial_s = 0.1, max_s = 0.5 }}
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    fg.wait_log("reconnecting (attempt 2", LONG);
    assert!(!fg.log().contains("→ live"));
    let _cam = camera(cam_port, "smpte");
    fg.wait_log("connecting → live", LONG);
    let frames = grab_frames(&format!("rtsp://127.0.0.1:{port}/late"), 5, LONG);
    assert_eq!(frames[0].width, 320);
}

#[test]
fn rtmp_push_resumes_after_the_server_restarts() {
    let nginx_port = free_port();
    let nginx = Nginx::start_on(nginx_port);
    let rtsp_port = free_port();
    let url = nginx.url("cam0");
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {rtsp_port}

[[streams]]
id = "pushed"
source = "test://smpte?width=320&height=240&fps=25"
outputs = [ {{ kind = "rtmp", url = "{url}", retry_initial_s = 0.2, retry_max_s = 1.0 }} ]
"#
    ));
    fg.wait_log("output publishing", LONG);
    wait_for("the stream on nginx", LONG, || {
        ffprobe(&url).filter(|p| p.0 == "h264")
    });
    drop(nginx);
    fg.wait_log("output failed", LONG);
    let restarted = Nginx::start_on(nginx_port);
    let (codec, w, h, _) = wait_for("the push to resume", LONG, || {
        ffprobe(&restarted.url("cam0")).filter(|p| p.0 == "h264")
    });
    assert_eq!((codec.as_str(), w, h), ("h264", 320, 240));
    assert_eq!(
        fg.log().matches("output publishing").count(),
        2,
        "{}",
        fg.log()
    );
}

#[test]
fn bad_sources_fail_with_a_reason_and_leave_the_good_stream_alone() {
    let cam_port = free_port();
    let _cam = camera(cam_port, "smpte");
    let dir = tempfile::tempdir().unwrap();
    // A clip whose NAL units are damaged: garbage over most of each packet.
    let clip = dir.path().join("corrupt.h264");
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=100", "pattern=ball", "!"])
        .args([
            "video/x-raw,width=320,height=240",
            "!",
            "x264enc",
            "key-int-max=25",
            "!",
        ])
        .args(["video/x-h264,stream-format=byte-stream", "!", "filesink"])
        .arg(format!("location={}", clip.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let mut bytes = std::fs::read(&clip).unwrap();
    let mut x = 12345u32;
    for b in bytes.iter_mut().skip(2000) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        if x.is_multiple_of(7) {
            *b = (x >> 16) as u8;
        }
    }
    std::fs::write(&clip, bytes).unwrap();

    let port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}

[[streams]]
id = "good"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
outputs = [ {{ kind = "rtsp" }} ]

[[streams]]
id = "missing"
source = "rtsp://127.0.0.1:{cam_port}/no-such-path"
reconnect = {{ initial_s = 0.2, max_s = 1.0 }}

[[streams]]
id = "nohost"
source = "rtsp://no-such-host.invalid/cam"
reconnect = {{ initial_s = 0.2, max_s = 1.0 }}

[[streams]]
id = "corrupt"
source = "file://{clip}"
reconnect = {{ initial_s = 0.2, max_s = 1.0 }}
outputs = [ {{ kind = "rtsp" }} ]
"#,
        clip = clip.display()
    ));
    fg.wait_log("stream=good", LONG);
    let line_of = |id: &str, needle: &str| {
        let log = fg.log();
        log.lines()
            .find(|l| l.contains(&format!("stream={id}")) && l.contains(needle))
            .map(str::to_string)
    };
    let missing = wait_for("the 404 stream to fail", LONG, || {
        line_of("missing", "→ reconnecting")
    });
    assert!(missing.to_lowercase().contains("not found"), "{missing}");
    let nohost = wait_for("the unknown host to fail", LONG, || {
        line_of("nohost", "→ reconnecting")
    });
    assert!(nohost.contains("rtspsrc"), "{nohost}");
    // The good stream still serves while the others keep failing.
    let frames = grab_frames(&format!("rtsp://127.0.0.1:{port}/good"), 25, LONG);
    assert_eq!(frames[24].width, 320);
    let log = fg.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        line_of("good", "→ reconnecting").is_none(),
        "the good stream was disturbed:\n{log}"
    );
}

#[test]
fn sigterm_exits_zero_within_three_seconds() {
    let nginx = Nginx::start();
    let port = free_port();
    let mut fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}

[[streams]]
id = "a"
source = "test://ball?width=320&height=240"
outputs = [ {{ kind = "rtsp" }}, {{ kind = "rtmp", url = "{url}" }} ]
"#,
        url = nginx.url("a")
    ));
    fg.wait_log("output publishing", LONG);
    let opened = Instant::now();
    let viewer = Watcher::open(&format!("rtsp://127.0.0.1:{port}/a"));
    wait_for("the viewer's first frame", LONG, || {
        viewer.first_after(opened, |_| true)
    });
    let sent = Instant::now();
    let status = fg.terminate(Duration::from_secs(10)).unwrap();
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(fg.log().contains("output stopped"), "{}", fg.log());
    // The RTSP viewer was told the stream ended, rather than losing its connection.
    wait_for("end-of-stream at the RTSP viewer", LONG, || {
        viewer.eos.load(Ordering::Relaxed).then_some(())
    });
}

#[test]
fn sigterm_during_process_leaves_a_playable_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.mp4");
    let output = dir.path().join("out.mp4");
    make_clip(&input, 3000, 320, 180);
    // Slow the run down to real time so that the signal lands in the middle of it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["process", "--processor", "overlay", "--realtime", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the output file to grow", LONG, || {
        std::fs::metadata(&output)
            .ok()
            .filter(|m| m.len() > 50_000)
            .map(|_| ())
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_for("process to exit", LONG, || child.try_wait().ok().flatten());
    assert!(status.success(), "{status:?}");
    let frames = count_frames(&output);
    assert!(
        frames > 10 && frames < 3000,
        "{frames} frames in the interrupted MP4"
    );
}

#[test]
fn an_h265_camera_is_decoded_and_republished_as_h264() {
    let cam_port = free_port();
    let _cam = camera_with(cam_port, "smpte", &["--size", "320x240", "--h265"]);
    let port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}

[[streams]]
id = "hevc"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    fg.wait_log(
        &format!("decoder=\"{}\"", common::expect::h265_decoder()),
        LONG,
    );
    let (codec, w, h, _) = wait_for("the H.264 output", LONG, || {
        ffprobe(&format!("rtsp://127.0.0.1:{port}/hevc"))
    });
    assert_eq!((codec.as_str(), w, h), ("h264", 320, 240));
}

#[test]
fn a_frozen_camera_goes_stalled_then_is_reopened_and_recovers() {
    let cam_port = free_port();
    let cam = camera(cam_port, "smpte");
    let port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}

[[streams]]
id = "frozen"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
stall_timeout_s = 1.0
reconnect = {{ initial_s = 0.2, max_s = 1.0, connect_timeout_s = 2.0 }}
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    fg.wait_log("connecting → live", LONG);
    // The camera stops sending but keeps its connection open (a hung encoder, a frozen box).
    cam.signal("-STOP");
    fg.wait_log("live → stalled: no frame for", LONG);
    fg.wait_log("stalled → reconnecting (attempt 1", LONG);
    fg.wait_log("showing the NO SIGNAL slate", LONG);
    cam.signal("-CONT");
    wait_for("the stream to be live again", LONG, || {
        (fg.log().matches("connecting → live").count() >= 2).then_some(())
    });
}

#[test]
fn credentials_reach_the_camera_and_a_wrong_password_gets_a_clear_401() {
    let cam_port = free_port();
    let _cam = camera_with(
        cam_port,
        "smpte",
        &["--size", "320x240", "--credentials", "admin:s3cret"],
    );
    let fg = Framegate::run(&format!(
        r#"
[[streams]]
id = "right"
source = "rtsp://admin:s3cret@127.0.0.1:{cam_port}/cam0"

[[streams]]
id = "wrong"
source = "rtsp://admin:n0pe-n0pe@127.0.0.1:{cam_port}/cam0"
reconnect = {{ initial_s = 0.2, max_s = 1.0 }}
"#
    ));
    wait_for("the right password to go live", LONG, || {
        fg.log()
            .lines()
            .find(|l| l.contains("stream=right") && l.contains("connecting → live"))
            .map(|_| ())
    });
    let wrong = wait_for("the wrong password to fail", LONG, || {
        fg.log()
            .lines()
            .find(|l| l.contains("stream=wrong") && l.contains("→ reconnecting"))
            .map(str::to_string)
    });
    assert!(wrong.to_lowercase().contains("unauthorized"), "{wrong}");
    let log = fg.log();
    assert!(
        !log.contains("s3cret") && !log.contains("n0pe-n0pe"),
        "a password leaked:\n{log}"
    );
}

#[test]
fn a_server_that_accepts_but_never_answers_times_out_and_is_retried() {
    // Accepts TCP connections and says nothing, like a camera whose RTSP service hung.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let fg = Framegate::run(&format!(
        r#"
[[streams]]
id = "silent"
source = "rtsp://127.0.0.1:{silent_port}/cam0"
reconnect = {{ initial_s = 0.2, max_s = 0.5, connect_timeout_s = 1.0 }}
"#
    ));
    fg.wait_log("no frame within 1.0 s of opening the source", LONG);
    fg.wait_log("reconnecting (attempt 2", LONG);
}

#[test]
fn reconnect_cycles_leave_memory_and_threads_flat() {
    // A camera that drops its clients every 200 ms: each drop is a full disconnect and
    // reconnect of the source pipeline.
    let cam_port = free_port();
    let _cam = camera_with(
        cam_port,
        "ball",
        &["--size", "320x240", "--drop-clients-every-ms", "200"],
    );
    let port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}

[[streams]]
id = "flaky"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
reconnect = {{ initial_s = 0.01, max_s = 0.02 }}
processors = [ {{ kind = "overlay" }} ]
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    let cycles = || fg.log().matches("connecting → live").count();
    let long = Duration::from_secs(240);
    wait_for("30 reconnect cycles", long, || {
        (cycles() >= 30).then_some(())
    });
    let (rss_before, threads_before) = fg.rss_and_threads();
    wait_for("230 reconnect cycles", long, || {
        (cycles() >= 230).then_some(())
    });
    let (rss_after, threads_after) = fg.rss_and_threads();
    eprintln!(
        "after 30 cycles: {rss_before} KiB, {threads_before} threads; \
         after 230: {rss_after} KiB, {threads_after} threads"
    );
    assert!(
        threads_after <= threads_before + 2,
        "threads grew from {threads_before} to {threads_after}"
    );
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB over 200 cycles"
    );
}

#[test]
fn rtsp_over_udp_works_too() {
    let cam_port = free_port();
    let _cam = camera(cam_port, "smpte");
    let port = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {port}

[[streams]]
id = "udp"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
transport = "udp"
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    fg.wait_log("connecting → live", LONG);
    let frames = grab_frames(&format!("rtsp://127.0.0.1:{port}/udp"), 10, LONG);
    assert_eq!(frames[9].width, 320);
}
