//! Pass-through: a stream whose processors change no pixels sends the camera's own H.264 to its
//! outputs, access unit for access unit; the NO SIGNAL slate covers an outage and the camera
//! takes over again, with a playable output throughout; the processors decode only what they
//! need (`decode = "keyframes"`, `analyze_fps`). The cameras are an ffmpeg-made clip (x264
//! with B-frames, AAC) pushed to nginx-rtmp as OBS would, and served by gst-rtsp-server; the
//! outputs are read with ffmpeg.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::stream_status as status;
use common::rtsp::TestRtspServer;
use common::{Framegate, Nginx, ffmpeg_publish_rtmp_file, free_port, wait_for, wait_for_port};

const LIVE: Duration = Duration::from_secs(30);

/// A camera's clip: 640x360 25 fps, x264 `veryfast` with two B-frames and a key frame every
/// second, AAC, in Matroska (what [`TestRtspServer::clip_on`] serves).
fn camera_clip(dir: &Path, secs: u32) -> PathBuf {
    let path = dir.join("camera.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-bf", "2",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&path)
        .status()
        .expect("ffmpeg is not installed");
    assert!(status.success(), "ffmpeg could not make the clip");
    path
}

/// The NAL units of an Annex B byte stream, without their start codes (and without the zero
/// byte a four-byte start code leaves at the end of the unit before it).
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
            let mut unit = &data[s..end];
            while let [rest @ .., 0] = unit {
                unit = rest;
            }
            unit
        })
        .filter(|u| !u.is_empty())
        .collect()
}

/// The coded slices (NAL types 1 and 5) and SEI messages (6) of a byte stream: what an encoder
/// made for each picture, as opposed to parameter sets and delimiters a parser may add.
fn pictures(data: &[u8]) -> Vec<Vec<u8>> {
    nal_units(data)
        .into_iter()
        .filter(|u| matches!(u[0] & 0x1f, 1 | 5 | 6))
        .map(<[u8]>::to_vec)
        .collect()
}

/// The clip's video as an Annex B byte stream (ffmpeg, no re-encode).
fn source_stream(clip: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(clip)
        .args([
            "-map",
            "0:v",
            "-c",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `secs` of an RTSP output's video as it came, an Annex B byte stream (ffmpeg, no re-encode),
/// and what ffmpeg said.
fn output_stream(url: &str, secs: u32) -> (Vec<u8>, String) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url])
        .args([
            "-map",
            "0:v",
            "-t",
            &secs.to_string(),
            "-c",
            "copy",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .unwrap();
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config(http: u16, rtsp: u16, streams: &str) -> String {
    format!("[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = {rtsp}\n\n{streams}",)
}

#[test]
fn the_cameras_own_access_units_go_out_and_the_slate_covers_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let clip = camera_clip(dir.path(), 60);
    // OBS pushing to nginx-rtmp: the camera's H.264 (B-frames) and AAC, copied.
    let nginx = Nginx::start();
    let camera = ffmpeg_publish_rtmp_file(&clip, &nginx.url("cam"));
    let (http, rtsp) = (free_port(), free_port());
    let fg = Framegate::run(&config(
        http,
        rtsp,
        &format!(
            "[[streams]]\nid = \"cam\"\nsource = \"{}\"\n\
             video = \"passthrough\"\nstall_timeout_s = 1.0\nprocessors = [ {{ kind = \"skip_similar\" }} ]\n\
             outputs = [ {{ kind = \"rtsp\" }} ]\n\
             [streams.reconnect]\ninitial_s = 0.2\nmax_s = 0.5\n",
            nginx.url("cam")
        ),
    ));
    wait_for_port(http, LIVE);
    wait_for("the camera's video on the outputs", LIVE, || {
        let s = status(http, "cam");
        (s["video"]["on"] == "camera" && s["video"]["camera_units"].as_u64() > Some(25))
            .then_some(())
    });
    let url = format!("rtsp://127.0.0.1:{rtsp}/cam");

    // Every picture of the output is one of the camera's, byte for byte: slices and SEI.
    let source: HashSet<Vec<u8>> = pictures(&source_stream(&clip)).into_iter().collect();
    let (stream, said) = output_stream(&url, 6);
    let out = pictures(&stream);
    let found = out.iter().filter(|p| source.contains(*p)).count();
    println!(
        "pass-through: {found} of {} output slices and SEI are the camera's",
        out.len()
    );
    assert!(
        out.len() >= 100,
        "only {} pictures in 6 s; ffmpeg said: {said}",
        out.len()
    );
    assert!(
        found * 100 >= out.len() * 99,
        "{found} of {} output pictures are the camera's: re-encoded?",
        out.len()
    );
    let s = status(http, "cam");
    assert_eq!(s["video"]["mode"], "passthrough", "{s}");
    assert_eq!(s["frames"]["encoded"], 0, "something was encoded: {s}");
    assert!(s["frames"]["processed"].as_u64() > Some(0), "{s}");

    // A player reads through an outage: the camera goes, the slate comes, the camera is back.
    let mut reader = Command::new("ffmpeg")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", &url])
        .args(["-map", "0:v", "-t", "14", "-f", "framemd5", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, first_rx) = std::sync::mpsc::channel();
    let frames = std::thread::spawn({
        let stdout = reader.stdout.take().unwrap();
        move || {
            use std::io::BufRead;
            let mut n = 0usize;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.starts_with("0,") {
                    n += 1;
                    if n == 25 {
                        let _ = first.send(());
                    }
                }
            }
            n
        }
    });
    first_rx
        .recv_timeout(LIVE)
        .expect("the reader decoded its first second");
    drop(camera);
    let before = status(http, "cam")["video"]["switches"].as_u64().unwrap();
    wait_for("the slate", LIVE, || {
        let s = status(http, "cam");
        (s["video"]["on"] == "encoder" && s["frames"]["slate"].as_u64() > Some(10)).then_some(())
    });
    let back = Instant::now();
    let _camera = ffmpeg_publish_rtmp_file(&clip, &nginx.url("cam"));
    wait_for("the camera back on the outputs", LIVE, || {
        let s = status(http, "cam");
        (s["video"]["on"] == "camera").then_some(())
    });
    println!(
        "camera back on the outputs {:.1} s after it returned",
        back.elapsed().as_secs_f64()
    );
    let s = status(http, "cam");
    assert!(
        s["video"]["switches"].as_u64().unwrap() >= before + 2,
        "{s}"
    );
    let read = reader.wait_with_output().unwrap();
    let frames = frames.join().unwrap();
    let errors: Vec<_> = String::from_utf8_lossy(&read.stderr)
        .lines()
        // RTP carries no decode times: ffmpeg guesses them for B-frames and says so.
        .filter(|l| !l.contains("non monotonically increasing dts") && !l.contains("Last message"))
        .map(str::to_string)
        .collect();
    println!("the reader decoded {frames} frames in 14 s through the outage; {errors:?}");
    assert!(errors.is_empty(), "the reader saw errors: {errors:?}");
    // 14 s at 25 fps, less the stall timeout (1 s) without pictures.
    assert!(frames >= 14 * 25 * 3 / 4, "only {frames} frames in 14 s");
    drop(fg);
}

#[test]
fn analytics_decode_only_key_frames_or_at_their_own_rate() {
    let dir = tempfile::tempdir().unwrap();
    let clip = camera_clip(dir.path(), 60);
    let cam_port = free_port();
    let _camera = TestRtspServer::clip_on(cam_port, "/cam", &clip, "aacparse ! rtpmp4gpay");
    let (http, rtsp) = (free_port(), free_port());
    let source = format!("rtsp://127.0.0.1:{cam_port}/cam");
    let _fg = Framegate::run(&config(
        http,
        rtsp,
        &format!(
            "[[streams]]\nid = \"keys\"\nsource = \"{source}\"\nvideo = \"auto\"\ndecode = \"keyframes\"\n\
             outputs = [ {{ kind = \"rtsp\" }} ]\n\n\
             [[streams]]\nid = \"five\"\nsource = \"{source}\"\nvideo = \"auto\"\nanalyze_fps = 5\n\
             outputs = [ {{ kind = \"rtsp\" }} ]\n"
        ),
    ));
    wait_for_port(http, LIVE);
    for id in ["keys", "five"] {
        wait_for(&format!("{id} live"), LIVE, || {
            (status(http, id)["video"]["camera_units"].as_u64() > Some(25)).then_some(())
        });
    }
    let (k0, f0, t0) = (status(http, "keys"), status(http, "five"), Instant::now());
    wait_for("4 s of video", LIVE, || {
        (t0.elapsed() >= Duration::from_secs(4)).then_some(())
    });
    let (k1, f1, secs) = (
        status(http, "keys"),
        status(http, "five"),
        t0.elapsed().as_secs_f64(),
    );
    let delta = |a: &serde_json::Value, b: &serde_json::Value, path: [&str; 2]| {
        b[path[0]][path[1]].as_u64().unwrap() - a[path[0]][path[1]].as_u64().unwrap()
    };
    // Key frames only: one picture in 25 decoded (the clip's GOP), all 25 sent.
    let (decoded, units) = (
        delta(&k0, &k1, ["frames", "decoded"]),
        delta(&k0, &k1, ["video", "camera_units"]),
    );
    println!("decode = keyframes: {decoded} frames decoded, {units} units sent in {secs:.1} s");
    assert!(decoded >= 2, "no key frame decoded: {k1}");
    assert!(
        decoded * 10 <= units,
        "{decoded} decoded for {units} units: {k1}"
    );
    assert!(
        delta(&k0, &k1, ["video", "skipped_units"]) >= units * 8 / 10,
        "{k1}"
    );
    assert!(
        units as f64 >= secs * 20.0,
        "the outputs lost frames: {units} in {secs:.1} s"
    );
    // At most 5 frames a second analysed, the outputs at the camera's 25.
    let (processed, passed) = (
        delta(&f0, &f1, ["frames", "processed"]),
        delta(&f0, &f1, ["frames", "passed"]),
    );
    println!("analyze_fps = 5: {processed} processed, {passed} passed in {secs:.1} s");
    assert!(
        processed as f64 <= secs * 5.5 + 1.0,
        "{processed} in {secs:.1} s: {f1}"
    );
    assert!(
        processed as f64 >= secs * 3.0,
        "{processed} in {secs:.1} s: {f1}"
    );
    assert!(
        passed as f64 >= secs * 20.0,
        "{passed} in {secs:.1} s: {f1}"
    );
}

#[test]
fn a_source_that_is_not_h264_is_encoded_and_says_why() {
    // The street scene is MPEG-4 part 2: `video = "auto"` cannot pass it through.
    let footage = common::shared("testdata/vtest.avi");
    let (http, rtsp) = (free_port(), free_port());
    let _fg = Framegate::run(&config(
        http,
        rtsp,
        &format!(
            "[[streams]]\nid = \"street\"\nsource = \"file://{}\"\nvideo = \"auto\"\n\
             outputs = [ {{ kind = \"rtsp\" }} ]\n",
            footage.display()
        ),
    ));
    wait_for_port(http, LIVE);
    let s = wait_for("the encoder's video on the outputs", LIVE, || {
        let s = status(http, "street");
        (s["video"]["on"] == "encoder" && s["video"]["encoder_units"].as_u64() > Some(10))
            .then_some(s)
    });
    assert_eq!(s["video"]["mode"], "encode", "{s}");
    let why = s["video"]["encode_reason"].as_str().unwrap_or_default();
    assert!(why.contains("not H.264"), "{s}");
    assert_eq!(s["video"]["camera_units"], 0, "{s}");
    // The outputs carry the encode.
    let url = format!("rtsp://127.0.0.1:{rtsp}/street");
    let probed = wait_for("the RTSP output", LIVE, || common::ffprobe(&url));
    assert_eq!(probed.0, "h264", "{probed:?}");
}
