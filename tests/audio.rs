//! Sound: camera and OBS audio through framegate's outputs, in sync with the video. Sources are
//! ffmpeg-made clips with a beep on every white flash, served by gst-rtsp-server (AAC, G.711
//! A-law, Opus) and pushed through nginx-rtmp (AAC); every output is read back with ffmpeg,
//! which finds flashes and beeps and gives their offset.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::av::{self, sync_clip};
use common::http::{request, stream_status};
use common::rtsp::TestRtspServer;
use common::{Framegate, Nginx, ffmpeg_publish_rtmp_file, free_port, wait_for, wait_for_port};

const LIVE: Duration = Duration::from_secs(30);
/// The A/V offset every output must keep (the issue's bound).
const BOUND_MS: f64 = 40.0;
/// Seconds of each output measured, and flashes (one a second) required in them: enough of
/// them that one or two moved by a loaded machine's jitter buffer (its skew estimate wanders
/// by a few tens of milliseconds when the two cores are busy) do not decide the verdict.
const MEASURE_S: u32 = 12;
const FLASHES: usize = 8;

/// The tests here run one at a time: each decodes several outputs at once, and two at a time
/// on a two-core machine drop frames (a held frame moves a flash by a frame interval).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until ffprobe finds these codecs at `url` (ordered as found), and returns them.
fn wait_streams(url: &str, want: &[&str]) -> Vec<String> {
    wait_for(&format!("{want:?} at {url}"), LIVE, || {
        let found = av::streams(url);
        let mut codecs: Vec<&str> = found.iter().filter_map(|s| s.split(' ').next()).collect();
        // (HLS lists its streams twice: in its program and on their own.)
        codecs.sort_unstable();
        codecs.dedup();
        let mut w = want.to_vec();
        w.sort_unstable();
        (codecs == w).then_some(found)
    })
}

/// Reads these outputs (what, URL) at the same time, `MEASURE_S` each, and asserts each in
/// sync. Three at most at once: more decoders beside framegate starve a 2-core machine, and a
/// starved reader moves flashes and beeps apart by itself.
fn assert_in_sync_read_at_once(outputs: &[(&str, String)]) {
    assert!(outputs.len() <= 3, "{} readers at once", outputs.len());
    std::thread::scope(|s| {
        let readers: Vec<_> = outputs
            .iter()
            .map(|(what, url)| s.spawn(move || (what, av::measure(url, MEASURE_S))))
            .collect();
        for reader in readers {
            let (what, report) = reader.join().unwrap();
            report.assert_in_sync(what, FLASHES, BOUND_MS);
        }
    });
}

#[test]
fn camera_audio_reaches_rtsp_and_rtmp_outputs_in_sync() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let aac = sync_clip(dir.path(), "aac.mkv", 120, &["-c:a", "aac", "-b:a", "96k"]);
    let opus = sync_clip(dir.path(), "opus.mkv", 120, &["-c:a", "libopus"]);
    let cams = TestRtspServer::clip("/aac", &aac, "aacparse ! rtpmp4gpay");
    // A G.711 camera: its A-law encoded live from the clip's sound (8 kHz mono), as a camera's
    // encoder does (Matroska's millisecond block times would jitter stored PCM by 10 ms).
    cams.add_clip(
        "/pcma",
        &aac,
        "aacparse ! avdec_aac ! audioconvert ! audioresample ! \
         audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay",
    );
    cams.add_clip("/opus", &opus, "opusparse ! rtpopuspay");
    let nginx = Nginx::start();
    // A RECORD server the Opus camera is pushed on to, writing what it gets to a file.
    let recorded = dir.path().join("pushed.mkv");
    let (record, pushed_frames) =
        TestRtspServer::record_av("/in", ("rtpopusdepay", "opusparse"), &recorded);
    let rtsp = free_port();
    let (fg, http) = gateway(
        rtsp,
        &format!(
            r#"
[[streams]]
id = "aac"
source = "{aac_url}"
processors = [ {{ kind = "overlay" }} ]
outputs = [ {{ kind = "rtsp" }}, {{ kind = "rtmp", url = "{out_aac}" }} ]

[[streams]]
id = "pcma"
source = "{pcma_url}"
outputs = [ {{ kind = "rtsp" }}, {{ kind = "rtmp", url = "{out_pcma}" }} ]

[[streams]]
id = "opus"
source = "{opus_url}"
outputs = [ {{ kind = "rtsp" }}, {{ kind = "rtsp-push", url = "{push}" }} ]
"#,
            aac_url = cams.url("/aac"),
            pcma_url = cams.url("/pcma"),
            opus_url = cams.url("/opus"),
            out_aac = nginx.url("out-aac"),
            out_pcma = nginx.url("out-pcma"),
            push = record.url("/in"),
        ),
    );
    let out = |id: &str| format!("rtsp://127.0.0.1:{rtsp}/{id}");

    // framegate's RTSP passes every codec through as the camera sent it.
    assert_eq!(
        wait_streams(&out("aac"), &["h264", "aac"])[1..],
        ["aac 48000 2"]
    );
    assert!(wait_streams(&out("pcma"), &["h264", "pcm_alaw"]).contains(&"pcm_alaw 8000 1".into()));
    wait_streams(&out("opus"), &["h264", "opus"]);
    // RTMP carries AAC as it is; G.711 becomes AAC (one transcode).
    wait_streams(&nginx.url("out-aac"), &["h264", "aac"]);
    wait_streams(&nginx.url("out-pcma"), &["h264", "aac"]);

    // The offsets.
    let urls = [
        ("rtsp aac", out("aac")),
        ("rtsp pcma", out("pcma")),
        ("rtsp opus", out("opus")),
        ("rtmp aac", nginx.url("out-aac")),
        ("rtmp pcma→aac", nginx.url("out-pcma")),
    ];
    // Measured in two groups (framegate's RTSP, then the RTMP pushes): five decoders at once
    // beside three streams, a RECORD server and the cameras starve a 2-core machine, and a
    // starved reader moves flashes and beeps apart by itself.
    for group in urls.chunks(3) {
        assert_in_sync_read_at_once(group);
    }
    // The RTSP push carries the Opus as it is, from its first connection (it waited for the
    // stream's sound to be known): the server got one publish, in sync.
    wait_for("10 s pushed to the RECORD server", LIVE, || {
        (pushed_frames.load(Ordering::Relaxed) >= 250).then_some(())
    });
    let file = recorded.to_str().unwrap();
    assert_eq!(
        av::streams(file)
            .iter()
            .filter_map(|s| s.split(' ').next())
            .collect::<Vec<_>>(),
        ["h264", "opus"]
    );
    av::measure(file, MEASURE_S).assert_in_sync("rtsp push opus", FLASHES, BOUND_MS);
    let st = stream_status(http, "opus");
    assert_eq!(st["outputs"][1]["failures"], 0, "{st}");
    assert_eq!(st["outputs"][1]["audio"]["mode"], "passthrough", "{st}");
    assert!(
        !fg.log().contains("reconnecting to send it"),
        "a push output connected before the stream's sound was known"
    );

    // Status: the source's format, and what each output sends.
    let st = stream_status(http, "pcma");
    assert_eq!(st["audio"]["source"]["codec"], "pcma", "{st}");
    assert_eq!(st["audio"]["source"]["rate"], 8000, "{st}");
    assert_eq!(st["audio"]["transcodes"][0]["codec"], "aac", "{st}");
    let rtmp = &st["outputs"][1];
    assert_eq!(rtmp["audio"]["codec"], "aac", "{st}");
    assert_eq!(rtmp["audio"]["mode"], "transcoded", "{st}");
    assert_eq!(st["outputs"][0]["audio"]["mode"], "passthrough", "{st}");
    assert!(st["audio"]["packets"].as_u64().unwrap() > 100, "{st}");
    let st = stream_status(http, "aac");
    assert_eq!(st["outputs"][1]["audio"]["mode"], "passthrough", "{st}");
    assert_eq!(st["audio"]["transcodes"], serde_json::json!([]), "{st}");
    let metrics = request(&format!("127.0.0.1:{http}"), "GET", "/metrics", None, None);
    let metrics = String::from_utf8_lossy(metrics.body_bytes()).to_string();
    assert!(
        metrics.contains("framegate_audio_transcodes_total{stream=\"pcma\"} 1"),
        "{metrics}"
    );
    drop(fg);
}

#[test]
fn obs_push_keeps_its_sound_through_framegate_and_a_source_without_audio_gets_none() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let clip = sync_clip(dir.path(), "obs.mkv", 120, &["-c:a", "aac", "-b:a", "128k"]);
    let nginx = Nginx::start();
    // OBS-style: H.264 and AAC 48 kHz stereo in FLV, in real time.
    let _obs = ffmpeg_publish_rtmp_file(&clip, &nginx.url("obs"));
    let rtsp = free_port();
    let (fg, http) = gateway(
        rtsp,
        &format!(
            r#"
[[streams]]
id = "obs"
source = "{src}"
processors = [ {{ kind = "overlay" }} ]
outputs = [ {{ kind = "rtmp", url = "{out}" }} ]

[[streams]]
id = "silent"
source = "test://ball?width=160&height=120&fps=25"
outputs = [ {{ kind = "rtsp" }} ]

[[streams]]
id = "muted"
source = "{src}"
audio = "off"
outputs = [ {{ kind = "rtsp" }} ]
"#,
            src = nginx.url("obs"),
            out = nginx.url("out"),
        ),
    );
    // The push, HLS (MPEG-TS) and LL-HLS (fMP4, packaged by framegate) carry the AAC as it is,
    // in sync; the three are read at once, as the first test's groups are.
    let urls = [
        ("rtmp push", nginx.url("out")),
        (
            "hls",
            format!("http://127.0.0.1:{http}/streams/obs/hls/index.m3u8"),
        ),
        (
            "ll-hls",
            format!("http://127.0.0.1:{http}/streams/obs/llhls/index.m3u8"),
        ),
    ];
    for (_, url) in &urls {
        wait_streams(url, &["h264", "aac"]);
    }
    assert_in_sync_read_at_once(&urls);
    // No invented track: a test pattern, and a source whose audio is turned off.
    wait_streams(&format!("rtsp://127.0.0.1:{rtsp}/silent"), &["h264"]);
    wait_streams(&format!("rtsp://127.0.0.1:{rtsp}/muted"), &["h264"]);
    let st = stream_status(http, "muted");
    assert!(st["audio"]["source"].is_null(), "{st}");
    drop(fg);
}

/// framegate on a free API port with these streams (TOML) and its RTSP server on `rtsp` (0:
/// a free one), its API answering; returns it and the API port.
fn gateway(rtsp: u16, streams: &str) -> (Framegate, u16) {
    let http = free_port();
    let fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = {rtsp}\n{streams}"
    ));
    wait_for_port(http, LIVE);
    (fg, http)
}

#[test]
fn no_signal_keeps_the_audio_going_with_silence_and_sync_comes_back() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let clip = sync_clip(dir.path(), "cam.mkv", 120, &["-c:a", "aac"]);
    let nginx = Nginx::start();
    let camera = ffmpeg_publish_rtmp_file(&clip, &nginx.url("cam"));
    let (fg, http) = gateway(
        0,
        &format!(
            r#"
[[streams]]
id = "cam"
source = "{src}"
stall_timeout_s = 1.0
reconnect = {{ initial_s = 0.2, max_s = 0.5 }}
outputs = [ {{ kind = "rtmp", url = "{out}" }} ]
"#,
            src = nginx.url("cam"),
            out = nginx.url("out"),
        ),
    );
    wait_streams(&nginx.url("out"), &["h264", "aac"]);
    // The camera goes away: the push keeps its audio track, filled with silence.
    drop(camera);
    wait_for("silence on the audio track", LIVE, || {
        let st = stream_status(http, "cam");
        (st["audio"]["silent_packets"].as_u64().unwrap_or(0) > 100).then_some(())
    });
    let st = stream_status(http, "cam");
    assert_eq!(st["outputs"][0]["state"], "publishing", "{st}");
    assert_eq!(st["outputs"][0]["failures"], 0, "{st}");
    wait_streams(&nginx.url("out"), &["h264", "aac"]);
    // Back: sound and picture in sync again, on the same push.
    let _camera = ffmpeg_publish_rtmp_file(&clip, &nginx.url("cam"));
    fg.wait_log("live frames are back", LIVE);
    av::measure(&nginx.url("out"), MEASURE_S).assert_in_sync(
        "rtmp push after NO SIGNAL",
        FLASHES,
        BOUND_MS,
    );
    let st = stream_status(http, "cam");
    assert_eq!(st["outputs"][0]["failures"], 0, "{st}");
}

#[test]
fn chromium_hears_the_stream_over_webrtc_and_the_dashboard_unmutes_it_over_webrtc_and_llhls() {
    let _serial = serial();
    common::require_chromium();
    let dir = tempfile::tempdir().unwrap();
    let clip = sync_clip(dir.path(), "obs.mkv", 120, &["-c:a", "aac"]);
    let nginx = Nginx::start();
    let _obs = ffmpeg_publish_rtmp_file(&clip, &nginx.url("obs"));
    let (fg, http) = gateway(
        0,
        &format!(
            r#"
[[streams]]
id = "obs"
source = "{src}"
"#,
            src = nginx.url("obs"),
        ),
    );
    wait_for("the stream's audio", LIVE, || {
        stream_status(http, "obs")["audio"]["source"]["codec"]
            .as_str()
            .map(str::to_string)
    });
    // The source's AAC becomes Opus (one transcode) for the browser.
    let r = common::run_browser_script(
        "whep-audio.mjs",
        &[&format!("http://127.0.0.1:{http}"), "obs", "5"],
        &[],
    );
    assert_eq!(r["status"], 201, "{r}");
    eprintln!("WebRTC audio, 5 s after 2 s of start-up: {r}");
    assert_eq!(r["answerHasAudio"], true, "{r}");
    assert!(r["frames"].as_u64().unwrap() > 50, "{r}");
    let audio = &r["audio"];
    assert_eq!(audio["codec"], "audio/opus", "{r}");
    // After start-up: about 50 packets a second of 20 ms, and little concealed (played as
    // made up) sound.
    assert!(audio["packets"].as_u64().unwrap() > 150, "{r}");
    let (samples, concealed) = (
        audio["samples"].as_f64().unwrap(),
        audio["concealed"].as_f64().unwrap(),
    );
    assert!(
        samples > 0.0 && concealed / samples < 0.05,
        "concealed {concealed} of {samples} samples: {r}"
    );
    let st = stream_status(http, "obs");
    assert_eq!(st["audio"]["transcodes"][0]["codec"], "opus", "{st}");

    // The dashboard's large view: muted at first (autoplay), sound on with a click; over
    // WebRTC, and over LL-HLS (hls.js), where the AAC is decoded along with the picture.
    let dashboard = format!("http://127.0.0.1:{http}/");
    let r = common::run_browser_script("dashboard-sound.mjs", &[&dashboard, "obs", "webrtc"], &[]);
    assert_unmuted(&r);
    assert_eq!(r["before"]["audioTracks"], 1, "{r}");
    assert_eq!(r["before"]["trackLive"], true, "{r}");
    let r = common::run_browser_script("dashboard-sound.mjs", &[&dashboard, "obs", "llhls"], &[]);
    eprintln!("dashboard over LL-HLS: {r}");
    assert_unmuted(&r);
    let bytes = |when: &str| r[when]["audioBytes"].as_u64().unwrap();
    assert!(bytes("after") > bytes("before"), "no audio decoded: {r}");
    drop(fg);
}

/// The dashboard's sound test found the large view muted at first and playing with sound
/// after the click, without a script error.
fn assert_unmuted(r: &serde_json::Value) {
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert_eq!(r["before"]["muted"], true, "{r}");
    assert_eq!(r["after"]["muted"], false, "{r}");
    assert_eq!(r["after"]["paused"], false, "{r}");
    assert!(
        r["after"]["button"]
            .as_str()
            .unwrap()
            .starts_with("Sound on"),
        "{r}"
    );
}

#[test]
fn process_writes_the_input_sound_into_the_mp4_in_sync() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // AAC in MP4 goes in as it is; G.711 in Matroska is transcoded to AAC. The meter reads
    // sound in windows of 240 samples: 5 ms at 48 kHz, 30 ms at G.711's 8 kHz, which bounds
    // how exactly the input's offset is known.
    for (name, audio, tolerance_ms) in [
        ("aac.mp4", &["-c:a", "aac"][..], 5.0),
        (
            "pcma.mkv",
            &["-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"][..],
            15.0,
        ),
    ] {
        let input = sync_clip(dir.path(), name, 10, audio);
        let output = dir.path().join(format!("{name}.out.mp4"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_framegate"))
            .args(["process", "--processor", "overlay", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = output.to_str().unwrap();
        let streams = av::streams(path);
        assert!(
            streams.iter().any(|s| s.starts_with("h264"))
                && streams.iter().any(|s| s.starts_with("aac")),
            "{name}: {streams:?}"
        );
        // As in sync as the input was (both measured the same way).
        let (before, after) = (
            av::measure(input.to_str().unwrap(), 8),
            av::measure(path, 8),
        );
        after.assert_in_sync(&format!("process {name}"), 7, BOUND_MS);
        let moved = after.median().unwrap() - before.median().unwrap();
        assert!(
            moved.abs() <= tolerance_ms,
            "{name}: the offset moved by {moved:.1} ms ({before:?} → {after:?})"
        );
    }
}
