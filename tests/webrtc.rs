//! WebRTC viewers (WHEP) in a real browser: Debian's headless Chromium posts offers to a running
//! framegate, plays the answers' video (frames counted with requestVideoFrameCallback), leaves
//! with DELETE or by closing its connection; bad offers get clear errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::http::{request, request_typed};
use common::{Framegate, free_port, require_chromium, run_browser_script, wait_for, wait_for_port};

/// Posts a body of the given content type; (status, whole response).
fn post_sdp(addr: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let r = request_typed(addr, "POST", path, Some(body), content_type, None);
    (r.status, r.body)
}

#[test]
fn whep_viewers_play_the_stream_and_their_sessions_end() {
    require_chromium();
    let http = free_port();
    let _fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n[[streams]]\nid = \"cam0\"\n\
         source = \"test://ball?width=640&height=360&fps=25\"\n\
         [streams.encoder]\nkeyframe_interval = 25\n"
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, Duration::from_secs(30));

    // CORS for players on other origins.
    let pre = request(&addr, "OPTIONS", "/streams/cam0/whep", None, None);
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
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
