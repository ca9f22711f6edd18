//! The measuring tools: `framegate testsrc` stamps capture times into its frames and
//! `framegate probe` reads them back from real outputs (directly, and through framegate's RTSP
//! and MJPEG outputs).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Framegate, free_port, testsrc};

const LONG: Duration = Duration::from_secs(30);

fn probe(url: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["probe", url, "--seconds", "2", "--json"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "probe {url} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sane numbers: the rate of the source, every frame stamped, ages positive and small.
fn assert_sane(r: &serde_json::Value) {
    let fps = r["fps"].as_f64().unwrap();
    assert!((20.0..=30.0).contains(&fps), "fps {fps}: {r}");
    let (frames, stamped) = (
        r["frames"].as_u64().unwrap(),
        r["stamped"].as_u64().unwrap(),
    );
    assert!(
        stamped * 10 >= frames * 9,
        "only {stamped} of {frames} frames stamped: {r}"
    );
    let p50 = r["age_ms"]["p50"].as_f64().unwrap();
    let p99 = r["age_ms"]["p99"].as_f64().unwrap();
    assert!(p50 > 0.0 && p99 < 1500.0, "ages p50 {p50} p99 {p99}: {r}");
}

#[test]
fn probe_reads_stamped_frames_directly_and_through_framegate() {
    let (_cam, cam_port) = testsrc("640x360");
    let direct = probe(&format!("rtsp://127.0.0.1:{cam_port}/cam0"));
    assert_sane(&direct);

    let (rtsp, http) = (free_port(), free_port());
    let fg = Framegate::run(&format!(
        r#"
[server]
rtsp_port = {rtsp}
http = "127.0.0.1:{http}"

[[streams]]
id = "cam"
source = "rtsp://127.0.0.1:{cam_port}/cam0"
processors = [ {{ kind = "overlay" }} ]
outputs = [ {{ kind = "rtsp" }} ]
"#
    ));
    fg.wait_log("connecting → live", LONG);
    let via_rtsp = probe(&format!("rtsp://127.0.0.1:{rtsp}/cam"));
    assert_sane(&via_rtsp);
    let via_mjpeg = probe(&format!("http://127.0.0.1:{http}/streams/cam/mjpeg"));
    assert_sane(&via_mjpeg);
    let via_ws = probe(&format!("ws://127.0.0.1:{http}/streams/cam/ws"));
    assert_sane(&via_ws);
    eprintln!(
        "age p50: direct {} ms, through framegate RTSP {} ms, MJPEG {} ms, WebSocket {} ms",
        direct["age_ms"]["p50"],
        via_rtsp["age_ms"]["p50"],
        via_mjpeg["age_ms"]["p50"],
        via_ws["age_ms"]["p50"]
    );
}
