//! The invisible watermark end to end: marked with `framegate process --config --stream`,
//! compressed by x264 at low bitrates, read back with `framegate watermark read` from the file
//! and from a live RTSP output while the ID is changed through the API.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::http::request;
use common::{Framegate, Proc, free_port, wait_for, wait_for_port};
use serde_json::Value;

const KEY: &str = "a secret phrase";
const LONG: Duration = Duration::from_secs(60);

fn framegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_framegate"))
}

/// A camera pan across a real photo: `seconds` of WxH at 25 fps; with `noise`, fresh sensor
/// noise on every frame (ffmpeg's `noise`, uniform up to that many levels).
fn pan_clip(dir: &Path, w: u32, h: u32, seconds: u32, noise: u32) -> PathBuf {
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/horses.jpg");
    let out = dir.join(format!("pan-{w}x{h}-{noise}.mp4"));
    let mut filter = format!(
        "scale={}:-2,crop={w}:{h}:'min(t*{},iw-{w})':'(ih-{h})/2+{}*sin(t)'",
        w * 2,
        w / 20,
        h / 18
    );
    if noise > 0 {
        filter += &format!(",noise=alls={noise}:allf=t");
    }
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-loop", "1", "-i"])
        .arg(&photo)
        .args(["-vf", &filter, "-t", &seconds.to_string(), "-r", "25"])
        .args([
            "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "fast", "-crf", "16", "-y",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// A config file `<name>.toml` in `dir`: one stream, marked or not, encoded at `bitrate`.
fn config(dir: &Path, name: &str, bitrate: u32, watermark: bool) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let processors = if watermark {
        format!(r#"{{ kind = "watermark", id = "CAM0042", key = "{KEY}" }}"#)
    } else {
        String::new()
    };
    std::fs::write(
        &path,
        format!(
            "[[streams]]\nid = \"cam\"\nsource = \"test://ball\"\nprocessors = [ {processors} ]\n\
             encoder = {{ bitrate_kbps = {bitrate}, keyframe_interval = 50 }}\n"
        ),
    )
    .unwrap();
    path
}

fn process(input: &Path, output: &Path, config: &Path) {
    common::succeeded(
        framegate()
            .args(["process", "--input"])
            .arg(input)
            .arg("--output")
            .arg(output)
            .arg("--config")
            .arg(config)
            .args(["--stream", "cam"]),
    );
}

/// The reader's windows: (ID or none, confidence).
fn read(source: &Path, key: &str) -> Vec<(Option<String>, f64)> {
    let out = common::succeeded(
        framegate()
            .args(["watermark", "read"])
            .arg(source)
            .env("FRAMEGATE_WATERMARK_KEY", key)
            .arg("--json"),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().map(str::to_string),
                v["confidence"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Luma PSNR between two Y4M files of the same frames, the worst frame.
fn worst_luma_psnr(a: &Path, b: &Path, w: usize, h: usize) -> f64 {
    let frames = |p: &Path| -> Vec<Vec<u8>> {
        let data = std::fs::read(p).unwrap();
        let mut out = Vec::new();
        let mut at = data.iter().position(|c| *c == b'\n').unwrap() + 1;
        let size = w * h * 3 / 2;
        while at < data.len() {
            at += data[at..].iter().position(|c| *c == b'\n').unwrap() + 1;
            out.push(data[at..at + w * h].to_vec());
            at += size;
        }
        out
    };
    let (fa, fb) = (frames(a), frames(b));
    assert_eq!(fa.len(), fb.len());
    fa.iter()
        .zip(&fb)
        .map(|(x, y)| {
            let mse = x
                .iter()
                .zip(y)
                .map(|(p, q)| (f64::from(*p) - f64::from(*q)).powi(2))
                .sum::<f64>()
                / (w * h) as f64;
            10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Marks `clip` as case `name` at `bitrate` and reads it back: every 2 s window gives the ID,
/// none a wrong one; at 1000 kbit/s the wrong key reads nothing.
fn every_window_reads_the_id(dir: &Path, name: &str, clip: &Path, bitrate: u32) {
    let marked = dir.join(format!("marked-{name}.mp4"));
    process(clip, &marked, &config(dir, name, bitrate, true));
    let windows = read(&marked, KEY);
    eprintln!(
        "{name} ({}) at {bitrate} kbit/s: {windows:?}",
        clip.display()
    );
    assert_eq!(windows.len(), 3, "{name}");
    let read_back = windows
        .iter()
        .filter(|w| w.0.as_deref() == Some("CAM0042"))
        .count();
    assert!(
        windows
            .iter()
            .all(|w| w.0.is_none() || w.0.as_deref() == Some("CAM0042")),
        "a wrong ID in {name} at {bitrate} kbit/s: {windows:?}"
    );
    // Every window, the noisy pan's at 500 kbit/s too (the key frames carry it there).
    assert_eq!(read_back, 3, "{name} at {bitrate} kbit/s: {windows:?}");
    if bitrate == 1000 {
        // The wrong key reads nothing, and sees only noise.
        let wrong = read(&marked, "not the secret");
        assert!(
            wrong.iter().all(|w| w.0.is_none() && w.1 < 0.85),
            "{wrong:?}"
        );
    }
}

#[test]
fn the_id_survives_x264_and_only_the_key_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    // The cases run two at a time (each `process` keeps about one core busy), every one with
    // files of its own.
    let (clip, noisy) = std::thread::scope(|s| {
        let noisy = s.spawn(|| pan_clip(dir.path(), 1280, 720, 6, 6));
        let clip = pan_clip(dir.path(), 1280, 720, 6, 0);
        (clip, noisy.join().unwrap())
    });
    let cases = [
        ("clean-500", &clip, 500),
        ("noisy-500", &noisy, 500),
        ("clean-1000", &clip, 1000),
        ("clean-2000", &clip, 2000),
    ];
    let root = dir.path();
    for pair in cases.chunks(2) {
        std::thread::scope(|s| {
            for &(name, clip, bitrate) in pair {
                s.spawn(move || every_window_reads_the_id(root, name, clip, bitrate));
            }
        });
    }
    // Unmarked video: nothing.
    let clean = read(&clip, KEY);
    assert!(
        clean.iter().all(|w| w.0.is_none() && w.1 < 0.85),
        "{clean:?}"
    );

    // The mark's own distortion, without the codec: raw frames out.
    let (raw_marked, raw_clean) = (dir.path().join("m.y4m"), dir.path().join("c.y4m"));
    std::thread::scope(|s| {
        s.spawn(|| {
            process(
                &clip,
                &raw_marked,
                &config(dir.path(), "raw-marked", 2000, true),
            )
        });
        process(
            &clip,
            &raw_clean,
            &config(dir.path(), "raw-clean", 2000, false),
        );
    });
    let psnr = worst_luma_psnr(&raw_marked, &raw_clean, 1280, 720);
    eprintln!("worst-frame luma PSNR {psnr:.1} dB");
    assert!(psnr >= 43.0, "luma PSNR {psnr:.1} dB");
}

#[test]
fn a_new_id_shows_in_the_live_output_within_a_window_and_the_key_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    let clip = pan_clip(dir.path(), 640, 360, 20, 0);
    let (http, rtsp) = (free_port(), free_port());
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = {rtsp}

[[streams]]
id = "cam"
source = "file://{clip}"
processors = [ {{ kind = "watermark", id = "AAAAAAA", key = "{KEY}" }} ]
outputs = [ {{ kind = "rtsp" }} ]
encoder = {{ bitrate_kbps = 1000 }}
"#,
        clip = clip.display()
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);
    fg.wait_log("connecting → live", LONG);
    let st = request(&addr, "GET", "/api/streams/cam", None, None).json();
    assert_eq!(st["config"]["processors"][0]["key"], "***");
    assert!(!fg.log().contains(KEY), "the key was logged");

    // The key from a file: it does not show in `ps`.
    let key_file = fg.dir.path().join("watermark.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let reader = Proc(
        framegate()
            .args(["watermark", "read", &format!("rtsp://127.0.0.1:{rtsp}/cam")])
            .arg("--key-file")
            .arg(&key_file)
            .args(["--window", "1", "--json", "--seconds", "40"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut reader = reader;
    let stdout = reader.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap();
            if tx.send(v["id"].as_str().map(str::to_string)).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(LONG).expect("a window from the reader");
    wait_for("the first ID in the live output", LONG, || {
        (next().as_deref() == Some("AAAAAAA")).then_some(())
    });
    let r = request(
        &addr,
        "PUT",
        "/api/streams/cam/watermark",
        Some(r#"{"id": "BBBBBBB"}"#),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The window being read may straddle the change; the one after carries the new ID.
    let after: Vec<Option<String>> = (0..3).map(|_| next()).collect();
    assert!(
        after[1..].contains(&Some("BBBBBBB".to_string())),
        "windows after the change: {after:?}"
    );
    assert!(
        !after.contains(&Some("AAAAAAA".to_string())) || after[0].as_deref() == Some("AAAAAAA")
    );
    // A bad ID is refused with the reason.
    let r = request(
        &addr,
        "PUT",
        "/api/streams/cam/watermark",
        Some(r#"{"id": "short"}"#),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("7 printable ASCII"), "{}", r.body);
}
