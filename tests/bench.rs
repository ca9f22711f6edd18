//! The benchmark harness in its quick mode (a few seconds per row), so that it cannot rot: every
//! part runs against the real tools (gst-launch, ffmpeg, the Python/OpenCV peer baseline,
//! nginx-rtmp, `framegate probe`) and writes its report, JSON and chart.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `scripts/<script> --quick` with the test build; its output folder and JSON report.
fn quick(script: &str, report: &str) -> (tempfile::TempDir, Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(root.join("scripts").join(script))
        .args(["--quick", "--out"])
        .arg(out.path())
        .env("FRAMEGATE_EXE", env!("CARGO_BIN_EXE_framegate"))
        .status()
        .unwrap();
    assert!(status.success(), "{script} failed");
    let text = std::fs::read_to_string(out.path().join(report)).unwrap();
    (out, serde_json::from_str(&text).unwrap())
}

#[test]
fn the_benchmark_runs_end_to_end_in_quick_mode() {
    let (out, report) = quick("bench.py", "report.json");

    // Throughput: the floor, framegate and the peer baseline, at 720p and 1080p.
    let rows = report["transcode"]["rows"].as_array().unwrap();
    for clip in ["720p", "1080p"] {
        for pipeline in [
            "gst-launch (floor)",
            "framegate + overlay",
            "peer: ffmpeg → Python/OpenCV → ffmpeg",
        ] {
            let row = rows
                .iter()
                .find(|r| r["clip"] == clip && r["pipeline"] == pipeline)
                .unwrap_or_else(|| panic!("no {pipeline} row at {clip}"));
            assert!(row["cpu_ms_per_frame"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
    // Latency: every path read stamped frames at about the camera's rate.
    let latency = report["latency"].as_object().unwrap();
    for path in [
        "framegate RTSP",
        "framegate RTMP push via nginx",
        "peer RTMP push via nginx",
        "framegate MJPEG",
        "framegate WebSocket",
    ] {
        let r = &latency[path];
        assert!(r["fps"].as_f64().unwrap() > 15.0, "{path}: {r}");
        assert!(r["added_ms"]["p50"].is_number(), "{path}: {r}");
    }
    // Scale: both sizes measured, at least one stream in real time.
    let sizes = report["scale"]["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for s in sizes {
        assert!(s["max_real_time_streams"].as_u64().unwrap() >= 1, "{s}");
    }
    let png = std::fs::read(out.path().join("report.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "report.png is not a PNG");
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("## Throughput") && md.contains("## Latency") && md.contains("## Scale"));
    assert!(md.contains("paying only for what changes pixels"), "{md}");
    pass_through_rows(&report["passthrough"]);
}

#[test]
fn the_audio_benchmark_runs_in_quick_mode() {
    let (_out, report) = quick("bench-audio.py", "audio.json");
    let rows = report["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["row"] == name)
            .unwrap_or_else(|| panic!("no {name} row: {report}"))
    };
    // Every row ran in real time; the push carried the camera's AAC only with audio on; the
    // WebRTC viewers offering audio made one Opus transcode per stream.
    for r in rows {
        assert!(r["min_fps_out"].as_f64().unwrap() > 20.0, "{r}");
    }
    assert!(row("video only")["push_audio"].is_null(), "{report}");
    assert_eq!(
        row("audio pass-through")["push_audio"]["mode"],
        "passthrough"
    );
    assert_eq!(row("audio pass-through")["transcodes"], 0);
    if common_chromium() {
        let opus = row("WebRTC, AAC -> Opus");
        assert_eq!(opus["transcodes"], opus["streams"], "{report}");
        assert_eq!(row("WebRTC, video")["transcodes"], 0, "{report}");
    }
    assert!(
        report["cost_percent_per_stream"]["audio pass-through"].is_number(),
        "{report}"
    );
}

/// The pass-through scale rows (`scripts/bench-scale.py`): each ran in real time, and the CPU
/// per frame sent to the outputs ranks as the work done predicts.
fn pass_through_rows(report: &Value) {
    let rows = report["rows"].as_array().unwrap();
    let cost = |name: &str| {
        let r = rows
            .iter()
            .find(|r| r["row"] == name)
            .unwrap_or_else(|| panic!("no {name} row: {report}"));
        assert!(
            r["most"].as_u64().unwrap() >= 1,
            "{name} not in real time: {r}"
        );
        r["at_most"]["cpu_ms_per_output_frame"].as_f64().unwrap()
    };
    let (transcode, decode, detect, keyframes) = (
        cost("transcode"),
        cost("decode"),
        cost("passthrough"),
        cost("keyframes"),
    );
    // A decode costs less than a decode and an encode; with the detector on every frame it
    // takes its own capacity, with key frames only much less.
    assert!(decode < transcode, "{report}");
    assert!(keyframes < detect, "{report}");
    // The plain transcode run as framegate's is (gst-launch pipelines reading the relay).
    assert!(cost("plain") > 0.0, "{report}");
    for floor in ["transcode", "decode"] {
        assert!(
            report["floors_ms"][floor].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
}

/// Whether Chromium is here (the WebRTC rows need it).
fn common_chromium() -> bool {
    Path::new(&std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())).exists()
}
