//! Live view in a real browser. WebRTC (WHEP): Debian's headless Chromium posts offers to a
//! running framegate, plays the answers' video (frames counted with
//! requestVideoFrameCallback), leaves with DELETE or by closing its connection; bad offers get
//! clear errors. LL-HLS: the playlist, parts and segments as a client sees them (ffprobe reads
//! them), hls.js plays it in low-latency mode. Glass-to-glass latency of both from the stamped
//! test camera, and four WebRTC viewers share the one encoder.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::http::{request, request_typed};
use common::{
    Framegate, free_port, require_chromium, run_browser_script, testsrc, wait_for, wait_for_port,
};

/// The tests here measure video in a browser: one at a time, so that they do not starve each
/// other of the machine's cores.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    ONE_BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Posts a body of the given content type; (status, whole response).
fn post_sdp(addr: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let r = request_typed(addr, "POST", path, Some(body), content_type, None);
    (r.status, r.body)
}

#[test]
fn whep_viewers_play_the_stream_and_their_sessions_end() {
    require_chromium();
    let _browser = one_browser();
    let http = free_port();
    let _fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\
         allowed_origins = [\"https://player.example\"]\n\n[[streams]]\nid = \"cam0\"\n\
         source = \"test://ball?width=640&height=360&fps=25\"\n\
         [streams.encoder]\nkeyframe_interval = 25\n"
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, Duration::from_secs(30));

    // CORS for players on the allowed origins only.
    let preflight = |origin: &str| {
        common::http::request_raw(
            &addr,
            "OPTIONS",
            "/streams/cam0/whep",
            &[("Host", &addr), ("Origin", origin)],
            "",
        )
    };
    assert_eq!(preflight("https://elsewhere.example").status, 403);
    let pre = preflight("https://player.example");
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://player.example")
    );
    assert!(
        pre.header("access-control-expose-headers")
            .unwrap()
            .contains("Location")
    );

    // Offers framegate cannot take are named.
    let (status, body) = post_sdp(&addr, "/streams/cam0/whep", "application/json", "{}");
    assert_eq!(status, 415, "{body}");
    let (status, body) = post_sdp(&addr, "/streams/cam0/whep", "application/sdp", "hello");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not an SDP offer"), "{body}");
    let vp8 = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n";
    let (status, body) = post_sdp(&addr, "/streams/cam0/whep", "application/sdp", vp8);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("H.264"), "{body}");
    let (status, _) = post_sdp(&addr, "/streams/nope/whep", "application/sdp", vp8);
    assert_eq!(status, 404);

    // Three viewers in Chromium.
    let r = run_browser_script("whep.mjs", &[&format!("http://{addr}"), "cam0", "3"], &[]);
    let viewers = r["viewers"].as_array().unwrap();
    assert_eq!(viewers.len(), 3);
    for v in viewers {
        assert_eq!(v["status"], 201, "{r}");
        assert_eq!(v["frames"], 30, "30 frames decoded: {r}");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(640), Some(360)),
            "{r}"
        );
        assert!(
            v["location"]
                .as_str()
                .unwrap()
                .starts_with("/streams/cam0/whep/"),
            "{r}"
        );
    }
    // ICE offers the configured address only (here the HTTP server's: loopback).
    for v in viewers {
        let candidates = v["candidates"].as_array().unwrap();
        assert!(!candidates.is_empty(), "{r}");
        assert!(
            candidates.iter().all(|c| c["address"] == "127.0.0.1"),
            "{r}"
        );
    }
    let during = r["during"].as_array().unwrap();
    assert_eq!(during.len(), 3, "{r}");
    assert!(during.iter().all(|s| s["state"] == "connected"), "{r}");
    // webrtcbin's statistics per viewer.
    assert!(
        during
            .iter()
            .all(|s| s["bytes_sent"].as_u64().unwrap_or(0) > 10_000
                && s["packets_sent"].as_u64().unwrap_or(0) > 10),
        "{r}"
    );
    assert_eq!(r["deleted"], 204, "{r}");

    let sessions = request(&addr, "GET", "/api/streams/cam0/whep", None, None).json();
    eprintln!("WHEP sessions while closing: {sessions}");
    // One left with DELETE, the browser then closed the others: every session ends.
    wait_for("the sessions to end", Duration::from_secs(30), || {
        let s = request(&addr, "GET", "/api/streams/cam0/whep", None, None).json();
        s.as_array().unwrap().is_empty().then_some(())
    });
    let first: Vec<u64> = viewers
        .iter()
        .map(|v| v["firstFrameMs"].as_u64().unwrap())
        .collect();
    eprintln!("WHEP: 3 viewers, first frame {first:?} ms after the POST");
}

/// The LL-HLS playlist's preload hint: (media sequence number, part index).
fn preload_hint(playlist: &str) -> (u64, usize) {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part"))
        .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
    let name = line.split('"').nth(1).unwrap();
    let (msn, part) = name
        .trim_start_matches("part")
        .trim_end_matches(".m4s")
        .split_once('.')
        .unwrap();
    (msn.parse().unwrap(), part.parse().unwrap())
}

/// Samples listed by the `trun` boxes of fMP4 fragments (each: size, `trun`, version and flags,
/// sample count).
fn trun_samples(fragments: &[u8]) -> u64 {
    fragments
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"trun")
        .map(|(i, _)| {
            u64::from(u32::from_be_bytes(
                fragments[i + 8..i + 12].try_into().unwrap(),
            ))
        })
        .sum()
}

/// Frames ffprobe decodes in an MP4 file.
fn mp4_frames(path: &std::path::Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe on {}: {text}", path.display()))
}

#[test]
fn llhls_and_webrtc_play_with_low_latency_from_one_encode() {
    require_chromium();
    let _browser = one_browser();
    let (_cam, cam_port) = testsrc("640x360");
    let http = free_port();
    let fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n[[streams]]\nid = \"cam0\"\n\
         source = \"rtsp://127.0.0.1:{cam_port}/cam0\"\n\
         [streams.encoder]\nkeyframe_interval = 25\n"
    ));
    fg.wait_log("connecting → live", Duration::from_secs(30));
    let addr = format!("127.0.0.1:{http}");
    let ll = "/streams/cam0/llhls";

    // The playlist: LL-HLS tags, parts, a preload hint.
    let r = request(&addr, "GET", &format!("{ll}/index.m3u8"), None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    for tag in [
        "#EXT-X-PART-INF:PART-TARGET=0.200",
        "CAN-BLOCK-RELOAD=YES",
        "#EXT-X-MAP:URI=\"init.mp4\"",
        "#EXT-X-PART:DURATION=",
    ] {
        assert!(r.body.contains(tag), "{tag} missing:\n{}", r.body);
    }
    // Blocking reload: asking for the hinted part answers once the playlist lists it.
    let (msn, part) = preload_hint(&r.body);
    let r = request(
        &addr,
        "GET",
        &format!("{ll}/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&format!(
            "#EXT-X-PART:DURATION=0.20000,URI=\"part{msn}.{part}.m4s\""
        )),
        "part{msn}.{part} not listed:\n{}",
        r.body
    );
    // The part now hinted is held until complete, then served.
    let (msn, part) = preload_hint(&r.body);
    let r = request(
        &addr,
        "GET",
        &format!("{ll}/part{msn}.{part}.m4s"),
        None,
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(&r.body_bytes()[4..8], b"moof");

    // A complete segment is its parts, and decodes: one second at 25 fps.
    let playlist = wait_for("a complete segment", Duration::from_secs(10), || {
        let r = request(&addr, "GET", &format!("{ll}/index.m3u8"), None, None);
        r.body.contains("#EXTINF:").then_some(r.body)
    });
    let seg: u64 = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("seg")?.strip_suffix(".m4s")?.parse().ok())
        .next_back()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let init = request(&addr, "GET", &format!("{ll}/init.mp4"), None, None);
    assert_eq!(init.status, 200);
    let segment = request(&addr, "GET", &format!("{ll}/seg{seg}.m4s"), None, None);
    assert_eq!(segment.status, 200);
    let mut parts = Vec::new();
    for i in 0.. {
        let r = request(&addr, "GET", &format!("{ll}/part{seg}.{i}.m4s"), None, None);
        if r.status != 200 {
            break;
        }
        parts.extend_from_slice(r.body_bytes());
    }
    assert_eq!(
        parts,
        segment.body_bytes(),
        "segment {seg} is not its parts"
    );
    let file = dir.path().join("segment.mp4");
    std::fs::write(&file, [init.body_bytes(), segment.body_bytes()].concat()).unwrap();
    // Segments end at the encoder's key frames (about every 25 frames here): every sample the
    // segment's fragments list decodes.
    let samples = trun_samples(segment.body_bytes());
    assert!(
        (20..=30).contains(&samples),
        "segment {seg}: {samples} samples"
    );
    assert_eq!(mp4_frames(&file), samples, "segment {seg}");
    // ffmpeg's HLS client reads the playlist.
    let (codec, w, h, _) = common::ffprobe(&format!("http://{addr}{ll}/index.m3u8")).unwrap();
    assert_eq!((codec.as_str(), w, h), ("h264", 640, 360));

    // Mistakes get clear answers.
    for (path, status) in [
        (format!("{ll}/index.m3u8?_HLS_part=1"), 400),
        (format!("{ll}/index.m3u8?_HLS_msn={}", msn + 50), 400),
        (format!("{ll}/init.mp4?_HLS_msn=1"), 400),
        (format!("{ll}/part0.99.m4s"), 404),
        (format!("{ll}/segment1.ts"), 404),
        ("/streams/nope/llhls/index.m3u8".to_string(), 404),
    ] {
        let r = request(&addr, "GET", &path, None, None);
        assert_eq!(r.status, status, "{path}: {}", r.body);
    }

    // In Chromium: glass-to-glass latency from the camera's stamps over WebRTC with one and
    // with four viewers, and over LL-HLS with hls.js.
    let phases = r#"[{"transport":"webrtc","viewers":1,"seconds":4},
                     {"transport":"webrtc","viewers":4,"seconds":4},
                     {"transport":"llhls","viewers":1,"seconds":5}]"#;
    let r = run_browser_script(
        "latency.mjs",
        &[&format!("http://{addr}"), "cam0", phases],
        &[],
    );
    eprintln!("live view: {r}");
    let phases = r.as_array().unwrap();
    for p in phases {
        assert!(p["errors"].as_array().unwrap().is_empty(), "{p}");
        for frames in p["frames"].as_array().unwrap() {
            assert!(
                frames.as_u64().unwrap() >= 50,
                "a viewer saw few frames: {p}"
            );
        }
        assert!(p["latencyMs"]["n"].as_u64().unwrap() > 20, "{p}");
        // One encode whatever the viewers.
        assert_eq!(p["encoders"], serde_json::json!([1, 1]), "{p}");
    }
    // Loose bounds (a shared machine): the targets are measured in the benchmark.
    let p50 = |i: usize| phases[i]["latencyMs"]["p50"].as_f64().unwrap();
    assert!(p50(0) < 1000.0, "WebRTC p50 {} ms", p50(0));
    assert!(p50(1) < 1000.0, "WebRTC (4 viewers) p50 {} ms", p50(1));
    assert!(p50(2) < 5000.0, "LL-HLS p50 {} ms", p50(2));
    // Four viewers cost packetising and encryption, not encoding: CPU stays near one viewer's.
    let cpu = |i: usize| phases[i]["cpuPercent"].as_f64().unwrap();
    assert!(
        cpu(1) < 2.5 * cpu(0) + 20.0,
        "CPU {}% with 4 viewers vs {}% with 1",
        cpu(1),
        cpu(0)
    );
    eprintln!(
        "glass-to-glass p50: WebRTC {} ms (4 viewers: {} ms), LL-HLS {} ms; CPU {}% → {}%",
        p50(0),
        p50(1),
        p50(2),
        cpu(0),
        cpu(1)
    );
}

#[test]
fn webrtc_viewers_reach_framegate_through_a_turn_relay() {
    require_chromium();
    let _browser = one_browser();
    let turn = common::servers::Turn::start();
    let http = free_port();
    // Media on a range of ports a firewall could open (any 200 above a free one).
    let first = free_port().min(65_000);
    let _fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\
         [server.webrtc]\nice_addresses = [\"127.0.0.1\"]\nturn_servers = [\"{}\"]\n\
         udp_ports = [{first}, {}]\n\n\
         [[streams]]\nid = \"cam0\"\nsource = \"test://ball?width=320&height=240&fps=25\"\n\
         [streams.encoder]\nkeyframe_interval = 25\n",
        turn.url(),
        first + 199
    ));
    wait_for_port(http, Duration::from_secs(30));
    // The browser may only use the relay; framegate offers a relayed candidate too.
    let r = run_browser_script(
        "whep.mjs",
        &[&format!("http://127.0.0.1:{http}"), "cam0", "1"],
        &[("WHEP_ICE", &turn.browser_relay_only())],
    );
    let v = &r["viewers"][0];
    assert_eq!(v["status"], 201, "{r}");
    assert_eq!(v["frames"], 30, "{r}");
    assert_eq!(v["path"]["local"], "relay", "{r}");
    assert!(
        v["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "relay"),
        "no relayed candidate from framegate: {r}"
    );
    // Its own UDP candidates use the configured ports.
    let udp: Vec<u64> = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["type"] == "host" && c["transport"].as_str().unwrap().eq_ignore_ascii_case("udp")
        })
        .map(|c| c["port"].as_u64().unwrap())
        .collect();
    assert!(!udp.is_empty(), "{r}");
    assert!(
        udp.iter()
            .all(|p| (u64::from(first)..=u64::from(first) + 199).contains(p)),
        "UDP ports {udp:?} outside {first}..={}",
        first + 199
    );
}
