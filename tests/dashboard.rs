//! The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (`tests/browser/dashboard.mjs`), against a framegate with four live streams.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Framegate, free_port, wait_for_port};

#[test]
fn the_camera_wall_shows_live_tiles_and_switches_without_a_blank_frame() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/dashboard.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists()
            && Path::new("/usr/bin/chromium").exists(),
        "chromium or playwright-core is missing: run scripts/setup-debian.sh"
    );
    let http = free_port();
    let rtsp = free_port();
    let streams: String = ["ball", "smpte", "snow", "pinwheel"]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "\n[[streams]]\nid = \"cam{i}\"\nsource = \"test://{p}?width=640&height=360&fps=25&speed=3\"\n\
                 processors = [ {{ kind = \"overlay\" }} ]\n"
            )
        })
        .collect();
    let _fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = {rtsp}\n{streams}"
    ));
    wait_for_port(http, Duration::from_secs(30));
    let shot = root.join("target/dashboard.png");
    let out = Command::new("node")
        .arg(&script)
        .args([&format!("http://127.0.0.1:{http}/"), "4", "20"])
        .arg(&shot)
        .output()
        .expect("node is not installed");
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap()).unwrap();
    assert_eq!(r["tiles"], 4, "{r}");
    assert_eq!(
        r["errors"],
        serde_json::json!([]),
        "errors in the page: {r}"
    );
    assert_eq!(
        r["blankAfterClick"], 0,
        "the large view was blank right after a click: {r}"
    );
    let events = &r["events"];
    assert!(events["rows"].as_u64().unwrap() >= 4, "{r}");
    assert!(events["error"].is_null(), "{r}");
    assert!(
        events["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "stream.state"),
        "{r}"
    );
    let first: Vec<u64> = r["firstFrameMs"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(first.len(), 4);
    let mut switches: Vec<u64> = r["switches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(switches.len(), 20, "{r}");
    switches.sort_unstable();
    eprintln!(
        "dashboard: first tile pictures at {first:?} ms after load; switch to a full-size picture \
         p50 {} ms, p95 {} ms, max {} ms (20 switches); screenshot {}",
        switches[10],
        switches[18],
        switches[19],
        shot.display()
    );
    assert!(shot.exists());
}
