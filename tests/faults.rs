//! The fault matrix of docs/reliability.md, against real components. Each test injects one
//! fault (many times where it repeats) while a client watches framegate's RTSP output frame by
//! frame, and shows: the output kept at least 95% of its frame rate (the slate during the
//! outage), how long recovery took (p50/p99 over the cycles), and that no thread, open file or
//! memory was left behind. Each writes its row to `target/tmp/fault-matrix/<fault>.json`.
//!
//! The tests share the machine in known amounts (`common::fault::turn`): two light ones at a
//! time, a heavy one (hundreds of viewers, a database starting, a killed gateway) alone, since
//! frame rates and leak checks mean something only when what runs beside a test is small.
//! `FRAMEGATE_FAULT_CYCLES` changes how often the repeated faults are injected (the camera
//! kills default to 50).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fault::{
    Netns, Row, Sample, Share, SmallDisk, assert_frame_rate, assert_no_leak, can_admin, cycles,
    turn,
};
use common::http::request;
use common::rtsp::TestRtspServer;
use common::watch::{Watcher, is_live, is_slate};
use common::{Framegate, Nginx, camera_on, free_port, wait_for, wait_for_port};

const LONG: Duration = Duration::from_secs(30);
const FPS: f64 = 25.0;
/// The stand-in camera of most rows (`framegate testsrc`): a white 320x240 picture at 25 fps,
/// so that a watching client tells live frames (bright) from the slate (dark).
const CAMERA: [&str; 4] = ["--size", "320x240", "--pattern", "white"];

/// The URL of the stand-in camera listening on `port`.
fn camera_url(port: u16) -> String {
    format!("rtsp://127.0.0.1:{port}/cam0")
}

/// framegate with one stream `cam` from `source`, served on its RTSP port, with a quick stall
/// timeout and reconnect; `extra` is appended to the stream's table (more outputs, settings).
struct Gateway {
    fg: Framegate,
    rtsp: u16,
    api: String,
}

impl Gateway {
    fn start(source: &str, outputs: &str, extra: &str, top: &str) -> Self {
        let (rtsp, http) = (free_port(), free_port());
        let fg = Framegate::run(&format!(
            r#"{top}
[server]
rtsp_port = {rtsp}
http = "127.0.0.1:{http}"

[[streams]]
id = "cam"
source = "{source}"
stall_timeout_s = 1.0
reconnect = {{ initial_s = 0.2, max_s = 1.0 }}
outputs = [ {{ kind = "rtsp" }}{outputs} ]
{extra}
"#
        ));
        wait_for_port(http, LONG);
        Self {
            fg,
            rtsp,
            api: format!("127.0.0.1:{http}"),
        }
    }

    fn watch(&self) -> Watcher {
        wait_for_port(self.rtsp, LONG);
        Watcher::open(&format!("rtsp://127.0.0.1:{}/cam", self.rtsp))
    }

    fn status(&self) -> serde_json::Value {
        request(&self.api, "GET", "/api/streams/cam", None, None).json()
    }
}

/// Waits for the first live (white) frame at the client after `after`.
fn live_after(w: &Watcher, after: Instant, timeout: Duration) -> Instant {
    wait_for("live frames at the client", timeout, || {
        w.first_after(after, is_live)
    })
}

/// Waits for the first live frame after `after` at a client of a gateway that was just
/// started again, as a player does it: a session that fails, or gets no frame for ten seconds,
/// is given up and a new one opened. Returns the frame's time and the sessions opened (a
/// session opened in the moment between the server listening and the stream mounted fails).
fn live_at_a_new_client(gw: &Gateway, after: Instant, timeout: Duration) -> (Instant, usize) {
    let deadline = Instant::now() + timeout;
    let mut sessions = Vec::new();
    loop {
        let opened = Instant::now();
        let w = gw.watch();
        let given_up = opened + Duration::from_secs(10);
        let seen = wait_for("a live frame, or the session given up", timeout, || match w
            .first_after(after, is_live)
        {
            Some(t) => Some(Some(t)),
            None if w.failed() || Instant::now() > given_up.min(deadline) => Some(None),
            None => None,
        });
        sessions.push(format!("{} frames, failed {}", w.frame_count(), w.failed()));
        if let Some(t) = seen {
            if sessions.len() > 1 {
                eprintln!(
                    "live at the client after {} sessions: {sessions:?}",
                    sessions.len()
                );
            }
            return (t, sessions.len());
        }
        assert!(
            Instant::now() < deadline,
            "no live frames at the client within {timeout:?}: sessions {sessions:?}"
        );
    }
}

/// Waits for the slate at the client after `after`.
fn slate_after(w: &Watcher, after: Instant, timeout: Duration) -> Instant {
    wait_for("the slate at the client", timeout, || {
        w.first_after(after, is_slate)
    })
}

/// The end of a fault run: the client kept at least 95% of the frame rate since `t0` and saw
/// no error, and nothing leaked since `before`; the row is reported and returned.
fn conclude(
    gw: &Gateway,
    w: &Watcher,
    (t0, before, fps): (Instant, Sample, f64),
    (fault, cycles): (&'static str, usize),
    (recoveries, detections): (Vec<Duration>, Vec<Duration>),
    notes: String,
) -> Row {
    let kept = assert_frame_rate(w, t0, Instant::now(), fps, fault);
    w.assert_clean(fault);
    let after = assert_no_leak(&gw.fg, before, fault);
    let row = Row {
        fault,
        cycles,
        recoveries,
        detections,
        frame_rate_kept: kept,
        before,
        after,
        notes,
    };
    row.report();
    row
}

#[test]
fn a_camera_killed_and_restarted_again_and_again_recovers_every_time() {
    let _machine = turn(Share::Half);
    let n = cycles(50);
    let cam_port = free_port();
    let mut cam = Some(camera_on(cam_port, &CAMERA));
    let gw = Gateway::start(&camera_url(cam_port), "", "", "");
    let w = gw.watch();
    let t0 = live_after(&w, Instant::now(), LONG);
    // The leak check's baseline is taken after a few cycles: the first reconnections fill
    // GStreamer's and the allocator's pools, which is use, not a leak.
    let warmup = (n / 10).clamp(1, 5);
    let mut before = Sample::of(&gw.fg);
    let (mut detections, mut recoveries) = (Vec::new(), Vec::new());
    for i in 0..n {
        if i == warmup {
            before = Sample::of(&gw.fg);
        }
        drop(cam.take());
        let killed = Instant::now();
        detections.push(slate_after(&w, killed, LONG) - killed);
        cam = Some(camera_on(cam_port, &CAMERA));
        let up = Instant::now();
        recoveries.push(live_after(&w, up, LONG) - up);
    }
    let notes = format!("reconnects {}", gw.status()["reconnects"]);
    let row = conclude(
        &gw,
        &w,
        (t0, before, FPS),
        ("camera_killed", n),
        (recoveries, detections),
        notes,
    );
    assert!(
        common::fault::percentile_ms(&row.recoveries, 99.0) < 5000.0,
        "recovery p99 over 5 s"
    );
}

#[test]
fn a_camera_that_stays_connected_and_sends_nothing_shows_the_slate_and_recovers() {
    let _machine = turn(Share::Half);
    let n = cycles(50).clamp(1, 4);
    let cam_port = free_port();
    let cam = camera_on(cam_port, &CAMERA);
    let gw = Gateway::start(&camera_url(cam_port), "", "", "");
    let w = gw.watch();
    let t0 = live_after(&w, Instant::now(), LONG);
    let before = Sample::of(&gw.fg);
    // The camera's process is stopped: its connections stay open and carry nothing (a hung
    // encoder, a frozen box), then it is continued.
    let (mut detections, mut recoveries) = (Vec::new(), Vec::new());
    for _ in 0..n {
        cam.signal("-STOP");
        let frozen = Instant::now();
        let slate = slate_after(&w, frozen, LONG);
        detections.push(slate - frozen);
        wait_for("three seconds of a frozen camera", LONG, || {
            w.first_after(slate + Duration::from_secs(3), |_| true)
        });
        cam.signal("-CONT");
        let thawed = Instant::now();
        recoveries.push(live_after(&w, thawed, LONG) - thawed);
    }
    let notes = format!("reconnects {}", gw.status()["reconnects"]);
    conclude(
        &gw,
        &w,
        (t0, before, FPS),
        ("camera_frozen", n),
        (recoveries, detections),
        notes,
    );
}

/// The network between framegate and its camera is cut and mended, `n` times: the camera runs
/// in a network namespace of the test's own, behind a veth pair whose far end goes down.
fn network_cut(transport: &str) {
    let _machine = turn(Share::Half);
    if !can_admin() {
        eprintln!("skipped: a network namespace needs root and iproute2 (CI runs as root)");
        return;
    }
    let n = cycles(50).clamp(1, 4);
    let ns = Netns::create(transport);
    let cam_port = free_port();
    let _cam = ns.camera(cam_port, &CAMERA);
    let gw = Gateway::start(
        &format!("rtsp://{}:{cam_port}/cam0", ns.ns_ip),
        "",
        &format!("transport = \"{transport}\""),
        "",
    );
    let w = gw.watch();
    let t0 = live_after(&w, Instant::now(), LONG);
    let before = Sample::of(&gw.fg);
    let (mut detections, mut recoveries) = (Vec::new(), Vec::new());
    for _ in 0..n {
        ns.cut();
        let cut = Instant::now();
        let slate = slate_after(&w, cut, LONG);
        detections.push(slate - cut);
        // The cable stays out a while: reconnection attempts go unanswered meanwhile.
        wait_for("three seconds of outage", LONG, || {
            w.first_after(slate + Duration::from_secs(3), |_| true)
        });
        ns.mend();
        let mended = Instant::now();
        recoveries.push(live_after(&w, mended, LONG) - mended);
    }
    let fault = if transport == "tcp" {
        "network_cut_tcp"
    } else {
        "network_cut_udp"
    };
    let notes = format!("reconnects {}", gw.status()["reconnects"]);
    conclude(
        &gw,
        &w,
        (t0, before, FPS),
        (fault, n),
        (recoveries, detections),
        notes,
    );
}

#[test]
fn a_network_cut_to_an_rtsp_camera_over_tcp_shows_the_slate_and_heals() {
    network_cut("tcp");
}

#[test]
fn a_network_cut_to_an_rtsp_camera_over_udp_shows_the_slate_and_heals() {
    network_cut("udp");
}

#[test]
fn fifty_slow_viewers_and_a_storm_of_two_hundred_slow_nobody() {
    let _machine = turn(Share::Whole);
    let cam_port = free_port();
    // Snow: pictures of some 30 KB, which fill a viewer's buffers in a second.
    let _cam = camera_on(cam_port, &["--size", "320x240", "--pattern", "snow"]);
    let gw = Gateway::start(&camera_url(cam_port), "", "", "");
    // Room for all of them: the caps are tested in tests/security.rs.
    let opened = Instant::now();
    let w = gw.watch();
    let t0 = wait_for("frames at the client", LONG, || {
        w.first_after(opened, |_| true)
    });
    let before = Sample::of(&gw.fg);
    // Fifty viewers that never read, with small receive buffers: their sockets fill at once and
    // stay full.
    let slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            sock.connect(&gw.api.parse::<std::net::SocketAddr>().unwrap().into())
                .unwrap();
            let mut s: TcpStream = sock.into();
            write!(
                s,
                "GET /streams/cam/mjpeg?viewer=slow HTTP/1.1\r\nHost: {}\r\n\r\n",
                gw.api
            )
            .unwrap();
            s
        })
        .collect();
    // They are stuck: the pictures sent to them stop growing while the stream goes on.
    let slow_frames = || -> Vec<u64> {
        let v = request(&gw.api, "GET", "/api/streams/cam/viewers", None, None).json();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|v| v["viewer"] == "slow")
            .map(|v| v["frames"].as_u64().unwrap())
            .collect()
    };
    let mut previous = (Instant::now(), slow_frames());
    let stuck = wait_for("the fifty slow viewers stuck", LONG, || {
        if previous.0.elapsed() < Duration::from_secs(1) {
            return None;
        }
        let now = slow_frames();
        if now.len() == 50 && now == previous.1 {
            return Some(now);
        }
        previous = (Instant::now(), now);
        None
    });
    // Two hundred viewers that come, read their first picture, and leave, twenty at a time.
    let started = Instant::now();
    let mut storm = Vec::new();
    for t in 0..20 {
        let api = gw.api.clone();
        storm.push(std::thread::spawn(move || {
            let mut ok = 0;
            for i in 0..10 {
                let path = if (t + i) % 2 == 0 {
                    "/streams/cam/mjpeg"
                } else {
                    "/streams/cam/mjpeg?width=160"
                };
                let mut s = TcpStream::connect(&api).unwrap();
                s.set_read_timeout(Some(LONG)).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nHost: {api}\r\n\r\n").unwrap();
                // Read until the first JPEG's end marker has come.
                let mut got = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                while !got.windows(2).any(|w| w == [0xff, 0xd9]) {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "a storm viewer's stream ended");
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(
                    got.starts_with(b"HTTP/1.1 200"),
                    "{}",
                    String::from_utf8_lossy(&got[..40])
                );
                ok += 1;
            }
            ok
        }));
    }
    let came: usize = storm.into_iter().map(|t| t.join().unwrap()).sum();
    let storm_took = started.elapsed();
    assert_eq!(came, 200);
    // The slow ones stay a while longer with full sockets.
    wait_for("ten seconds with the slow viewers", LONG, || {
        w.first_after(t0 + Duration::from_secs(10), |_| true)
    });
    let s = gw.status();
    let t1 = Instant::now();
    let kept = assert_frame_rate(&w, t0, t1, FPS, "slow viewers and a storm");
    w.assert_clean("slow viewers and a storm");
    assert!(
        s["fps_out"].as_f64().unwrap() > 0.95 * FPS,
        "the stream slowed: {s}"
    );
    // The storm's 200 connections share the two cores with the stream: a frame may be
    // replaced by a newer one before it was processed now and then; the bound is the frame
    // rate's (95%).
    let (decoded, dropped) = (
        s["frames"]["decoded"].as_u64().unwrap(),
        s["dropped"]["ingest"].as_u64().unwrap(),
    );
    assert!(
        dropped * 100 <= decoded,
        "{dropped} of {decoded} frames dropped: {s}"
    );
    drop(slow);
    wait_for("the viewers gone", LONG, || {
        let l = request(&gw.api, "GET", "/api/limits", None, None).json();
        (l["now"]["viewers"] == 0 && l["now"]["jpeg_encoders"] == 0).then_some(())
    });
    let after = assert_no_leak(&gw.fg, before, "the viewers");
    Row {
        fault: "slow_viewers_and_storm",
        cycles: 250,
        recoveries: vec![],
        detections: vec![],
        frame_rate_kept: kept,
        before,
        after,
        notes: format!(
            "200 viewers came and left in {:.2} s; each slow viewer got {} pictures at most; \
             ingest drops {dropped} of {decoded}",
            storm_took.as_secs_f64(),
            stuck.iter().max().unwrap()
        ),
    }
    .report();
}

#[test]
fn an_rtmp_push_server_down_and_up_never_slows_the_other_outputs() {
    let _machine = turn(Share::Half);
    let n = cycles(50).clamp(1, 3);
    let cam_port = free_port();
    let _cam = camera_on(cam_port, &CAMERA);
    let nginx_port = free_port();
    let mut nginx = Some(Nginx::start_on(nginx_port));
    let push = format!("rtmp://127.0.0.1:{nginx_port}/live/cam");
    let gw = Gateway::start(
        &camera_url(cam_port),
        &format!(
            ", {{ kind = \"rtmp\", url = \"{push}\", retry_initial_s = 0.2, retry_max_s = 1.0 }}"
        ),
        "",
        "",
    );
    let w = gw.watch();
    let t0 = live_after(&w, Instant::now(), LONG);
    let pushing = |gw: &Gateway| {
        gw.status()["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "rtmp" && o["state"] == "publishing")
    };
    wait_for("the push live", LONG, || pushing(&gw).then_some(()));
    let before = Sample::of(&gw.fg);
    let (mut detections, mut recoveries) = (Vec::new(), Vec::new());
    for _ in 0..n {
        drop(nginx.take());
        let down = Instant::now();
        wait_for("the push to notice", LONG, || (!pushing(&gw)).then_some(()));
        detections.push(down.elapsed());
        wait_for("three seconds without the server", LONG, || {
            w.first_after(down + Duration::from_secs(3), |_| true)
        });
        nginx = Some(Nginx::start_on(nginx_port));
        let up = Instant::now();
        wait_for("the push live again", LONG, || pushing(&gw).then_some(()));
        recoveries.push(up.elapsed());
        // The server really gets video again.
        let probe = common::ffprobe(&push);
        assert!(
            probe.is_some_and(|p| p.0 == "h264"),
            "nothing reached the server again"
        );
    }
    conclude(
        &gw,
        &w,
        (t0, before, FPS),
        ("push_server_down", n),
        (recoveries, detections),
        "recovery: from the server listening again to the push publishing (then probed)".into(),
    );
}

/// Stops and starts a spare stream through the API `n` times: each acknowledged change is a
/// `config.changed` event. Returns how many were acknowledged.
fn acknowledged_changes(api: &str, n: usize) -> usize {
    let mut acked = 0;
    for i in 0..n {
        let action = if i % 2 == 0 { "stop" } else { "start" };
        let r = request(
            api,
            "POST",
            &format!("/api/streams/spare/{action}"),
            None,
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        acked += 1;
    }
    acked
}

/// `config.changed` events stored (fewer than 1000 in these tests).
fn stored_changes(api: &str) -> Option<usize> {
    let r = request(
        api,
        "GET",
        "/api/events?kind=config.changed&limit=1000",
        None,
        None,
    );
    (r.status == 200).then(|| r.json()["events"].as_array().unwrap().len())
}

const SPARE: &str = r#"
[[streams]]
id = "spare"
source = "test://smpte?width=64&height=48&fps=5"
"#;

#[test]
fn a_full_disk_under_the_events_loses_none_and_the_video_goes_on() {
    let _machine = turn(Share::Half);
    if !can_admin() {
        eprintln!("skipped: mounting a small disk needs root (CI runs as root)");
        return;
    }
    let disk = SmallDisk::mount("4m");
    let cam_port = free_port();
    let _cam = camera_on(cam_port, &CAMERA);
    let d = disk.dir.path().display();
    let gw = Gateway::start(
        &camera_url(cam_port),
        "",
        SPARE,
        &format!("[database]\nurl = \"sqlite://{d}/events.db\"\ndir = \"{d}/events\"\n"),
    );
    let w = gw.watch();
    let t0 = live_after(&w, Instant::now(), LONG);
    wait_for("the store writing", LONG, || {
        let s = request(&gw.api, "GET", "/api/store", None, None).json();
        (s["writing"] == true).then_some(())
    });
    // A first round of changes while the disk has room: the spare stream's restarts warm up
    // the pools that the leak check should not count.
    let warm = acknowledged_changes(&gw.api, 10);
    let stored_before = wait_for("the first changes stored", LONG, || {
        stored_changes(&gw.api).filter(|n| *n >= warm)
    });
    let before = Sample::of(&gw.fg);
    let failures = |s: &serde_json::Value| s["write_failures"].as_u64().unwrap();
    let failed_before = failures(&request(&gw.api, "GET", "/api/store", None, None).json());
    // The disk fills up: neither the database nor the on-disk queue can be written.
    let filler = disk.fill();
    let acked = acknowledged_changes(&gw.api, 40);
    // SQLite may take a later write into pages it freed (the refused transaction's, or the
    // WAL's after a checkpoint), so `writing` can be true again by now: the count of refused
    // writes is what shows that the store met the full disk.
    wait_for("the store to notice the full disk", LONG, || {
        let s = request(&gw.api, "GET", "/api/store", None, None).json();
        (failures(&s) > failed_before).then_some(())
    });
    // Room again: everything held is written.
    std::fs::remove_file(filler).unwrap();
    let freed = Instant::now();
    let stored = wait_for(
        "every acknowledged change stored",
        Duration::from_secs(60),
        || {
            let n = stored_changes(&gw.api)?;
            (n >= stored_before + acked).then_some(n)
        },
    );
    let recovery = freed.elapsed();
    let store = request(&gw.api, "GET", "/api/store", None, None).json();
    assert_eq!(store["dropped_queue_full"], 0, "{store}");
    assert_eq!(store["dropped_channel_full"], 0, "{store}");
    assert_eq!(stored, stored_before + acked, "an event was stored twice");
    conclude(
        &gw,
        &w,
        (t0, before, FPS),
        ("disk_full", 1),
        (vec![recovery], vec![]),
        format!("{acked} changes while full, all stored after; store {store}"),
    );
}

#[test]
fn postgresql_down_and_up_loses_no_event_and_the_video_goes_on() {
    let _machine = turn(Share::Whole);
    let db = common::servers::Postgres::start();
    let cam_port = free_port();
    let _cam = camera_on(cam_port, &CAMERA);
    let gw = Gateway::start(
        &camera_url(cam_port),
        "",
        SPARE,
        &format!("[database]\nurl = \"{}\"\n", db.url()),
    );
    let w = gw.watch();
    let t0 = live_after(&w, Instant::now(), LONG);
    let store = || request(&gw.api, "GET", "/api/store", None, None).json();
    wait_for("the store writing", LONG, || {
        (store()["writing"] == true).then_some(())
    });
    let warm = acknowledged_changes(&gw.api, 10);
    let stored_before = wait_for("the first changes stored", LONG, || {
        stored_changes(&gw.api).filter(|n| *n >= warm)
    });
    let before = Sample::of(&gw.fg);
    // The database goes away while changes are made: they wait in the on-disk queue.
    db.down();
    // The first event after the outage finds it out.
    let down = Instant::now();
    let mut acked = acknowledged_changes(&gw.api, 2);
    wait_for("the store to notice", LONG, || {
        (store()["writing"] == false).then_some(())
    });
    let detected = down.elapsed();
    // Its status answers at once meanwhile (it used to wait for the database three times).
    let asked = Instant::now();
    assert_eq!(store()["writing"], false);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "GET /api/store took {:?} with the database down",
        asked.elapsed()
    );
    // Reading events says at once that it cannot (503), not after the pool's timeout.
    let asked = Instant::now();
    let r = request(&gw.api, "GET", "/api/events?limit=1", None, None);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "GET /api/events took {:?} with the database down",
        asked.elapsed()
    );
    acked += acknowledged_changes(&gw.api, 38);
    db.up();
    let up = Instant::now();
    let stored = wait_for("every change stored", Duration::from_secs(60), || {
        stored_changes(&gw.api).filter(|n| *n >= stored_before + acked)
    });
    let recovery = up.elapsed();
    assert_eq!(stored, stored_before + acked, "an event was stored twice");
    let s = store();
    assert_eq!(s["dropped_queue_full"], 0, "{s}");
    assert_eq!(s["dropped_channel_full"], 0, "{s}");
    conclude(
        &gw,
        &w,
        (t0, before, FPS),
        ("database_down", 1),
        (vec![recovery], vec![detected]),
        format!("{acked} changes while PostgreSQL was down, all stored once after"),
    );
}

#[test]
fn a_webhook_receiver_down_and_up_gets_every_alert_and_the_video_goes_on() {
    let _machine = turn(Share::Half);
    let mut hooks = common::servers::WebhookReceiver::down();
    // People walking (OpenCV's clip) through the shared detector; an alert for each person seen,
    // every 2 s at most.
    let vtest = common::shared("testdata/vtest.avi");
    let model = common::shared("models/centernet.onnx");
    let gw = Gateway::start(
        &format!("file://{}", vtest.display()),
        "",
        r#"processors = [ { kind = "detect", model = "coco", min_score = 0.3 } ]"#,
        &format!(
            "[[models]]\nid = \"coco\"\npath = \"{}\"\nformat = \"centernet\"\nthreads = 1\n\n\
             [[alerts]]\nid = \"person\"\nclass = \"person\"\nstreams = [\"cam\"]\n\
             min_frames = 2\ncooldown_s = 2\nwebhook = {{ url = \"{}\", timeout_s = 2 }}\n",
            model.display(),
            hooks.url()
        ),
    );
    let opened = Instant::now();
    let w = gw.watch();
    let t0 = wait_for("frames at the client", LONG, || {
        w.first_after(opened, |_| true)
    });
    let fps = wait_for("the source's frame rate", LONG, || {
        gw.status()["source"]["fps"].as_f64()
    });
    let alerts = || {
        let r = request(
            &gw.api,
            "GET",
            "/api/events?kind=alert&limit=1000",
            None,
            None,
        );
        let ids: std::collections::BTreeSet<String> = r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["uid"].as_str().unwrap().to_string())
            .collect();
        ids
    };
    // Alerts fire while the receiver is down: they wait in the outbox. The leak check's
    // baseline is taken once the model has run (its first runs allocate what it keeps).
    let down = Instant::now();
    wait_for("a first alert", Duration::from_secs(60), || {
        (!alerts().is_empty()).then_some(())
    });
    let before = Sample::of(&gw.fg);
    wait_for(
        "three alerts with the receiver down",
        Duration::from_secs(60),
        || (alerts().len() >= 3).then_some(()),
    );
    let outage = down.elapsed();
    hooks.up();
    let up = Instant::now();
    let fired = alerts();
    wait_for(
        "every alert at the receiver",
        Duration::from_secs(60),
        || {
            let got: std::collections::BTreeSet<String> =
                hooks.hooks().into_iter().map(|h| h.id).collect();
            fired.is_subset(&got).then_some(())
        },
    );
    let recovery = up.elapsed();
    let notes = format!(
        "{} alerts fired during {:.1} s without the receiver, all delivered after; source {fps} fps",
        fired.len(),
        outage.as_secs_f64()
    );
    conclude(
        &gw,
        &w,
        (t0, before, fps),
        ("webhook_down", 1),
        (vec![recovery], vec![]),
        notes,
    );
}

#[test]
fn sigkill_loses_at_most_the_events_in_memory_and_the_output_comes_back() {
    let _machine = turn(Share::Whole);
    let n = cycles(50).clamp(1, 5);
    let cam_port = free_port();
    let _cam = camera_on(cam_port, &CAMERA);
    let mut gw = Gateway::start(&camera_url(cam_port), "", SPARE, "");
    let (mut lost, mut recoveries, mut acked_total) = (Vec::new(), Vec::new(), 0);
    let mut sessions = Vec::new();
    let mut stored = wait_for("the events readable", LONG, || stored_changes(&gw.api));
    for _ in 0..n {
        wait_for("the stream live", LONG, || {
            let r = request(&gw.api, "GET", "/api/streams/cam", None, None);
            (r.status == 200 && r.json()["state"] == "live").then_some(())
        });
        // Changes acknowledged right up to the kill.
        let acked = acknowledged_changes(&gw.api, 20);
        acked_total += acked;
        gw.fg.kill_and_restart();
        let restarted = Instant::now();
        let (live, opened) = live_at_a_new_client(&gw, restarted, LONG);
        recoveries.push(live - restarted);
        sessions.push(opened);
        let now = wait_for("the events readable", LONG, || stored_changes(&gw.api));
        assert!(
            now <= stored + acked,
            "{now} events stored for {acked} changes after {stored}"
        );
        lost.push(stored + acked - now);
        stored = now;
    }
    let lost_total: usize = lost.iter().sum();
    Row {
        fault: "sigkill",
        cycles: n,
        recoveries,
        detections: vec![],
        frame_rate_kept: f64::NAN,
        before: Sample::of(&gw.fg),
        after: Sample::of(&gw.fg),
        notes: format!(
            "config.changed events lost per kill: {lost:?} of 20 acknowledged each ({lost_total} of {acked_total}); client sessions opened until live: {sessions:?}"
        ),
    }
    .report();
    // At most the batch in memory: the writer takes events as they come, so a kill right after
    // an acknowledged change can lose the changes of the batch being written, not more.
    assert!(lost.iter().all(|l| *l <= 20), "{lost:?}");
    assert!(
        lost_total < acked_total / 2,
        "most events never reached the database: {lost:?}"
    );
}

/// Frames of the corrupted part of a publish (10 s at 25 fps).
const NOISY_FRAMES: u32 = 250;

/// ffmpeg's `noise` bitstream filter for the first `NOISY_FRAMES` packets: about one byte in
/// 10,000 changed, and one packet in 7 dropped (now and then a key frame); clean after that.
fn noise_bsf() -> String {
    format!(
        "noise=amount=if(lt(n\\,{NOISY_FRAMES})\\,10000\\,0):\
         drop=if(lt(n\\,{NOISY_FRAMES})\\,not(mod(n\\,7))\\,0)"
    )
}

/// The ffmpeg arguments of a white 320x240 picture with some grain, at 25 fps.
const WHITE: &str = "color=white:size=320x240:rate=25,noise=alls=6:allf=t";

/// What a client saw of a corrupted source: frames at the full rate throughout (picture or
/// slate), then the clean picture once the corruption stops. Returns the row.
fn watch_corruption(gw: &Gateway, fault: &'static str, end_noise: impl FnOnce()) -> Row {
    let opened = Instant::now();
    let w = &gw.watch();
    let t0 = wait_for("frames at the client", LONG, || {
        w.first_after(opened, |_| true)
    });
    let before = Sample::of(&gw.fg);
    wait_for("ten seconds of corrupted video", LONG, || {
        w.first_after(t0 + Duration::from_secs(10), |_| true)
    });
    let noisy = gw.status();
    end_noise();
    // The corruption has stopped by now (or stops within a few seconds): the clean picture.
    let clean = live_after(w, t0 + Duration::from_secs(11), LONG);
    wait_for("two seconds of clean video", LONG, || {
        w.first_after(clean + Duration::from_secs(2), |_| true)
    });
    let t1 = Instant::now();
    let kept = assert_frame_rate(w, t0, t1, FPS, fault);
    w.assert_clean(fault);
    let s = gw.status();
    assert_eq!(s["state"], "live", "{s}");
    Row {
        fault,
        cycles: 1,
        recoveries: vec![],
        detections: vec![],
        frame_rate_kept: kept,
        before,
        after: Sample::of(&gw.fg),
        notes: format!(
            "after 10 s of corruption: frames decoded {}, reconnects {}, last error {}",
            noisy["frames"]["decoded"], noisy["reconnects"], noisy["last_error"]["message"]
        ),
    }
}

/// A camera whose H.264 or H.265 is corrupted for 10 s and then clean (bytes changed and
/// access units dropped between its encoder and its RTP payloader).
fn corrupt_rtsp(codec: &str) {
    let _machine = turn(Share::Half);
    let noisy = Arc::new(AtomicBool::new(true));
    let server = TestRtspServer::corrupted("/noisy", codec == "h265", 10_000, noisy.clone());
    let gw = Gateway::start(&server.url("/noisy"), "", "", "");
    let fault = if codec == "h265" {
        "corrupt_rtsp_h265"
    } else {
        "corrupt_rtsp_h264"
    };
    let row = watch_corruption(&gw, fault, || noisy.store(false, Ordering::Relaxed));
    // The decoder is of the camera's codec (avdec_h265 on the CPU, nvh265dec on a GPU).
    let s = gw.status();
    let decoder = s["source"]["decoder"].as_str().unwrap_or_default();
    assert!(
        decoder.contains(&codec[1..]),
        "decoder {decoder} for {codec}: {s}"
    );
    row.report();
}

#[test]
fn corrupted_h264_over_rtsp_keeps_the_stream_up() {
    corrupt_rtsp("h264");
}

#[test]
fn corrupted_h265_over_rtsp_keeps_the_stream_up() {
    corrupt_rtsp("h265");
}

#[test]
fn corrupted_h264_over_rtmp_keeps_the_stream_up_and_clean_video_comes_back() {
    let _machine = turn(Share::Half);
    let nginx = Nginx::start();
    let url = nginx.url("noisy");
    // OBS on a bad link: a live publish whose H.264 loses and garbles bytes for 10 s.
    let _publisher = common::ffmpeg_publish_rtmp_from(&url, WHITE, &["-bsf:v", &noise_bsf()]);
    let gw = Gateway::start(&url, "", "", "");
    watch_corruption(&gw, "corrupt_rtmp_h264", || {}).report();
}
