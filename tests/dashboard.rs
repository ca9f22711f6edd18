//! The dashboard in real browsers against a framegate with four live streams: Debian's Chromium,
//! headless, driven by playwright-core (`tests/browser/dashboard.mjs`), and Debian's Firefox ESR
//! driven by puppeteer-core over WebDriver BiDi (`tests/browser/firefox.mjs`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Framegate, free_port, require_chromium, run_browser_script, wait_for_port};

/// The API token of the Chromium test: its reads are closed, so the page works with the token
/// and viewer tokens.
const TOKEN: &str = "a-dashboard-test-token";

/// A framegate with four moving test patterns (`[server]` lines in `extra`); returns it and its
/// HTTP port.
fn four_streams(extra: &str) -> (Framegate, u16) {
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
    let fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = {rtsp}\n{extra}\n{streams}"
    ));
    wait_for_port(http, Duration::from_secs(30));
    (fg, http)
}

#[test]
fn the_camera_wall_shows_live_tiles_and_switches_without_a_blank_frame() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    require_chromium();
    let (_fg, http) = four_streams(&format!("api_token = \"{TOKEN}\""));
    let shot = root.join("target/dashboard.png");
    let url = format!("http://127.0.0.1:{http}/");
    // Closed to anyone without the token.
    let r = common::http::request(
        &format!("127.0.0.1:{http}"),
        "GET",
        "/api/streams",
        None,
        None,
    );
    assert_eq!(r.status, 401);
    let r = run_browser_script(
        "dashboard.mjs",
        &[&url, "4", "20", shot.to_str().unwrap()],
        &[("FRAMEGATE_TOKEN", TOKEN)],
    );
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
    // The large view plays WebRTC video once the selection stays, LL-HLS where forced.
    assert_eq!(r["webrtc"]["frames"], 10, "{r}");
    assert_eq!(r["llhls"]["frames"], 10, "{r}");
    eprintln!(
        "large view: {} (video after {} ms); LL-HLS fallback: native {:?}, hls.js {}",
        r["webrtc"]["label"], r["webrtc"]["shownMs"], r["llhls"]["native"], r["llhls"]["hlsJs"]
    );
    let events = &r["events"];
    assert!(events["rows"].as_u64().unwrap() >= 4, "{r}");
    assert!(events["error"].is_null(), "{r}");
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

#[test]
fn the_dashboard_works_in_firefox_and_at_phone_size() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let firefox = std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into());
    assert!(
        root.join("tests/browser/node_modules/puppeteer-core")
            .exists()
            && Path::new(&firefox).exists(),
        "firefox-esr or puppeteer-core is missing: run scripts/setup-debian.sh"
    );
    let (_fg, http) = four_streams("");
    let shot = root.join("target/dashboard-firefox.png");
    let url = format!("http://127.0.0.1:{http}/");
    let r = run_browser_script(
        "firefox.mjs",
        &[&url, "4", "8", shot.to_str().unwrap()],
        &[("FIREFOX", &firefox)],
    );
    assert_eq!(r["tiles"], 4, "{r}");
    assert_eq!(
        r["errors"],
        serde_json::json!([]),
        "errors in the page: {r}"
    );
    assert_eq!(
        r["blankAfterClick"], 0,
        "blank large view after a click: {r}"
    );
    assert_eq!(r["switches"].as_array().unwrap().len(), 8, "{r}");
    assert!(r["eventRows"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["phone"]["overflow"].as_i64().unwrap() <= 0,
        "the page is wider than a phone: {r}"
    );
    assert!(
        r["liveTransport"] == "webrtc" || r["liveTransport"] == "llhls",
        "the large view never played video: {r}"
    );
    eprintln!(
        "dashboard in {}: first tile pictures {} ms after the script started ({} after \
         navigation); switches {} ms; phone {}; large view on {}",
        r["browser"],
        r["firstFrameMs"],
        r["firstFrameNavMs"],
        r["switches"],
        r["phone"],
        r["liveTransport"]
    );
}

/// The dashboard's vendored hls.js is the npm package's file, unmodified (see its README).
#[test]
fn the_vendored_hls_js_is_the_npm_packages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let npm = root.join("tests/browser/node_modules/hls.js/dist/hls.light.min.js");
    assert!(
        npm.exists(),
        "run scripts/setup-debian.sh (npm ci in tests/browser)"
    );
    let vendored = root.join("src/control/dashboard/vendor/hls.light.min.js");
    assert!(
        std::fs::read(&npm).unwrap() == std::fs::read(&vendored).unwrap(),
        "{} differs from {}",
        vendored.display(),
        npm.display()
    );
}
