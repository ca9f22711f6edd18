//! framegate next to attackers: one test per attack of docs/security.md, each against a running
//! `framegate run` on free ports with real clients (a raw HTTP client, ffprobe, curl over TLS,
//! headless Chromium on another origin, a slowloris of 1,100 sockets).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{Response, request, request_raw, request_typed};
use common::{Framegate, free_port, wait_for, wait_for_port};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(30);
const TOKEN: &str = "a-token-for-the-security-tests";

/// framegate with `extra` lines in `[server]` and `streams` after it; its HTTP address.
fn start(extra: &str, streams: &str) -> (Framegate, String) {
    let http = free_port();
    let fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n{extra}\n\n{streams}"
    ));
    wait_for_port(http, LONG);
    (fg, format!("127.0.0.1:{http}"))
}

const PATTERN: &str =
    "[[streams]]\nid = \"cam\"\nsource = \"test://ball?width=320&height=240&fps=25\"\n";

fn live(addr: &str, id: &str, token: Option<&str>) {
    wait_for(&format!("{id} live"), LONG, || {
        let r = request(addr, "GET", &format!("/api/streams/{id}"), None, token);
        (r.status == 200 && r.json()["state"] == "live").then_some(())
    });
}

fn post_json(addr: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
    let mut h = vec![("Host", addr), ("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    request_raw(addr, "POST", path, &h, &body.to_string())
}

#[test]
fn pages_on_other_origins_and_foreign_hosts_change_nothing() {
    let (_fg, addr) = start("allowed_origins = [\"https://wall.example\"]", PATTERN);
    live(&addr, "cam", None);
    let new = json!({ "id": "added", "source": "test://smpte?width=160&height=120" });
    let evil = ("Origin", "https://evil.example");

    // A cross-site "simple" request: text/plain, another origin. Refused, nothing added.
    let r = request_raw(
        &addr,
        "POST",
        "/api/streams",
        &[("Host", &addr), evil, ("Content-Type", "text/plain")],
        &new.to_string(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "origin not allowed");
    // The same from framegate's own page but as text/plain: the type is refused.
    let own = format!("http://{addr}");
    let r = request_raw(
        &addr,
        "POST",
        "/api/streams",
        &[
            ("Host", &addr),
            ("Origin", &own),
            ("Content-Type", "text/plain"),
        ],
        &new.to_string(),
    );
    assert_eq!(r.status, 415, "{}", r.body);
    // Bodiless changes from another origin.
    for path in ["/api/streams/cam/stop", "/api/reload"] {
        let r = request_raw(&addr, "POST", path, &[("Host", &addr), evil], "");
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    assert_eq!(
        request(&addr, "GET", "/api/streams/added", None, None).status,
        404
    );
    assert_eq!(
        request(&addr, "GET", "/api/streams/cam", None, None).json()["state"],
        "live"
    );
    // A WebSocket opened by a page elsewhere (cross-site WebSocket hijacking).
    let ws = [
        ("Host", addr.as_str()),
        evil,
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade, close"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let r = request_raw(&addr, "GET", "/streams/cam/ws", &ws, "");
    assert_eq!(r.status, 403, "{}", r.body);
    // A browser pointed at framegate through a foreign name (DNS rebinding) gets nothing.
    let r = request_raw(
        &addr,
        "GET",
        "/api/streams",
        &[("Host", "rebind.evil.example:80")],
        "",
    );
    assert_eq!(r.status, 421, "{}", r.body);
    let r = request_raw(&addr, "GET", "/", &[("Host", "rebind.evil.example")], "");
    assert_eq!(r.status, 421);
    let port = addr.rsplit(':').next().unwrap();
    let local = format!("localhost:{port}");
    let r = request_raw(&addr, "GET", "/api/streams", &[("Host", &local)], "");
    assert_eq!(r.status, 200);

    // Framegate's own page, an allowed origin and a client that is no browser page may.
    let r = post_json(&addr, "/api/streams", &new, &[("Origin", &own)]);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = request_raw(
        &addr,
        "POST",
        "/api/streams/added/stop",
        &[("Host", &addr), ("Origin", "https://wall.example")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://wall.example")
    );
    assert_eq!(
        request(&addr, "DELETE", "/api/streams/added", None, None).status,
        204
    );

    // CORS: preflights for the allowed origin only; no Private-Network header unless
    // configured.
    let pre = |origin: &str| {
        request_raw(
            &addr,
            "OPTIONS",
            "/streams/cam/whep",
            &[
                ("Host", &addr),
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Private-Network", "true"),
            ],
            "",
        )
    };
    let ok = pre("https://wall.example");
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://wall.example")
    );
    assert!(ok.header("access-control-allow-private-network").is_none());
    assert_eq!(pre("https://evil.example").status, 403);
    let ll = request(&addr, "GET", "/streams/cam/llhls/index.m3u8", None, None);
    assert_eq!(ll.status, 200);
    assert!(ll.header("access-control-allow-origin").is_none());

    // The dashboard: a content security policy, no framing, no sniffing, no referrer.
    let page = request(&addr, "GET", "/", None, None);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self' 'nonce-"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(page.body.contains(&format!("<script nonce=\"{nonce}\">")));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
}

#[test]
fn hostile_numbers_are_refused_named_and_never_saved() {
    let (mut fg, addr) = start("", PATTERN);
    live(&addr, "cam", None);
    // Query numbers that used to panic the connection.
    let upgrade = [
        ("Host", addr.as_str()),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade, close"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    for path in [
        "/streams/cam/mjpeg?fps=1e-30",
        "/streams/cam/ws?fps=1e-30",
        "/streams/cam/mjpeg?fps=NaN",
        "/streams/cam/snapshot.jpg?width=99999999999",
        "/streams/cam/snapshot.jpg?quality=0",
    ] {
        let r = request_raw(&addr, "GET", path, &upgrade, "");
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid query parameter", "{path}");
    }
    // Config numbers that used to panic on start, after being saved.
    let base = || json!({ "id": "hostile", "source": "test://smpte?width=160&height=120" });
    let cases: [(&str, Value); 6] = [
        ("stall_timeout_s", json!({ "stall_timeout_s": 1e300 })),
        (
            "reconnect.initial_s",
            json!({ "reconnect": { "initial_s": 1e300, "max_s": 1e300 } }),
        ),
        (
            "reconnect.connect_timeout_s",
            json!({ "reconnect": { "connect_timeout_s": 1e-30 } }),
        ),
        (
            "media_server.poll_s",
            json!({ "media_server": { "url": "http://127.0.0.1:1/{path}", "poll_s": 1e300 } }),
        ),
        (
            "outputs.retry_max_s",
            json!({ "outputs": [{ "kind": "rtmp", "url": "rtmp://127.0.0.1:1/live/x", "retry_max_s": 1e300 }] }),
        ),
        (
            "outputs.max_fps",
            json!({ "outputs": [{ "kind": "redis", "url": "redis://127.0.0.1:1", "max_fps": 1e-30 }] }),
        ),
    ];
    for (field, extra) in cases {
        let mut body = base();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = request(&addr, "POST", "/api/streams", Some(&body.to_string()), None);
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains(field) && detail.contains("out of range"),
            "{field}: {detail}"
        );
    }
    // Strings and types a field does not take: named, refused, nothing started.
    for (field, value) in [
        ("audio", json!("loud")),
        ("audio", json!(1)),
        ("audio", json!("AUTO ")),
    ] {
        let mut body = base();
        body[field] = value.clone();
        let r = request(&addr, "POST", "/api/streams", Some(&body.to_string()), None);
        assert!(
            r.status == 400 || r.status == 422,
            "{field} = {value}: {} {}",
            r.status,
            r.body
        );
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains(field), "{field} = {value}: {detail}");
    }
    assert_eq!(
        request(&addr, "GET", "/api/streams/hostile", None, None).status,
        404
    );
    let state = fg.dir.path().join("framegate.api-state.toml");
    assert!(
        !std::fs::read_to_string(&state)
            .unwrap_or_default()
            .contains("hostile")
    );
    // A good change is saved, privately; the next start is fine.
    let r = request(
        &addr,
        "POST",
        "/api/streams",
        Some(&base().to_string()),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "state file mode {mode:o}");
    fg.restart();
    wait_for_port(addr.rsplit(':').next().unwrap().parse().unwrap(), LONG);
    live(&addr, "hostile", None);
    assert!(!fg.log().contains("panicked"));
}

/// Width and height of a baseline or progressive JPEG, from its SOF segment.
fn jpeg_size(data: &[u8]) -> (u32, u32) {
    let mut i = 2;
    while i + 9 < data.len() {
        assert_eq!(data[i], 0xFF, "not a JPEG segment at {i}");
        let marker = data[i + 1];
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([data[i + 5], data[i + 6]]);
            let w = u16::from_be_bytes([data[i + 7], data[i + 8]]);
            return (u32::from(w), u32::from(h));
        }
        i += 2 + len;
    }
    panic!("no SOF segment");
}

/// An MJPEG viewer held open (its connection is the viewer); the status line it got.
fn mjpeg_viewer(addr: &str, query: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    write!(
        s,
        "GET /streams/cam/mjpeg?{query} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).trim().to_string())
}

#[test]
fn pictures_are_never_scaled_up_and_what_clients_multiply_is_capped() {
    let (_fg, addr) = start(
        "[server.limits]\njpeg_encoders_per_stream = 2\nviewers_per_stream = 3",
        PATTERN,
    );
    live(&addr, "cam", None);
    let r = request(
        &addr,
        "GET",
        "/streams/cam/snapshot.jpg?width=7680",
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(jpeg_size(r.body_bytes()), (320, 240));
    // The snapshot's encoder stays up a moment for the next snapshot; then it stops.
    wait_for("the snapshot encoder to stop", LONG, || {
        let s = request(&addr, "GET", "/api/streams/cam", None, None).json();
        (s["jpeg_encoders"] == 0).then_some(())
    });

    // Two sizes watched: a third size finds no encoder, a watched size still plays.
    let (_a, head_a) = mjpeg_viewer(&addr, "width=64");
    let (_b, head_b) = mjpeg_viewer(&addr, "width=96");
    assert!(
        head_a.contains("200") && head_b.contains("200"),
        "{head_a} {head_b}"
    );
    let r = request(
        &addr,
        "GET",
        "/streams/cam/snapshot.jpg?width=128",
        None,
        None,
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("jpeg_encoders_per_stream")
    );
    // The third viewer of a watched size is taken; the fourth is not.
    let (_c, head_c) = mjpeg_viewer(&addr, "width=64");
    assert!(head_c.contains("200"), "{head_c}");
    let (_d, head_d) = mjpeg_viewer(&addr, "width=64");
    assert!(head_d.contains("503"), "{head_d}");
    let limits = request(&addr, "GET", "/api/limits", None, None).json();
    assert_eq!(limits["now"]["viewers"], 3, "{limits}");
    assert!(limits["now"]["viewers_refused"].as_u64().unwrap() >= 1);
    assert!(limits["now"]["jpeg_refused"].as_u64().unwrap() >= 1);
    let metrics = request(&addr, "GET", "/metrics", None, None).body;
    assert!(metrics.contains("framegate_edge_viewers 3"), "{metrics}");
    assert!(metrics.contains("framegate_edge_jpeg_refused_total"));

    // An SDP offer with an impossible payload type is a 400, not a panic.
    let pt200 = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 200\r\n\
        c=IN IP4 0.0.0.0\r\na=rtpmap:200 H264/90000\r\na=fmtp:200 packetization-mode=1\r\n";
    let r = request_typed(
        &addr,
        "POST",
        "/streams/cam/whep",
        Some(pt200),
        "application/sdp",
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("payload type"), "{}", r.body);
    assert_eq!(request(&addr, "GET", "/healthz", None, None).status, 200);
}

#[test]
fn secrets_never_appear_in_the_api_metrics_events_or_logs() {
    let key = "sk_live_StreamKey0042";
    let pass = "CamPassw0rd!";
    let token = "MediaServerT0ken";
    let wkey = "watermark secret phrase";
    let streams = format!(
        r#"
[[streams]]
id = "cam"
source = "rtsp://admin:{pass}@127.0.0.1:1/live"
reconnect = {{ initial_s = 0.2, max_s = 0.5 }}
media_server = {{ url = "http://127.0.0.1:1/v3/paths/get/{{path}}?token={token}", poll_s = 0.5 }}

[[streams]]
id = "pushed"
source = "test://ball?width=160&height=120&fps=25"
processors = [ {{ kind = "watermark", id = "VIEWER1", key = "{wkey}" }} ]
outputs = [ {{ kind = "rtmp", url = "rtmp://127.0.0.1:1/live/{key}", retry_initial_s = 0.2, retry_max_s = 0.5 }} ]
"#
    );
    let (fg, addr) = start("", &streams);
    live(&addr, "pushed", None);
    // Let the push fail a few times, so that its error texts exist.
    wait_for("the push to fail", LONG, || {
        let s = request(&addr, "GET", "/api/streams/pushed", None, None).json();
        (s["outputs"][0]["failures"].as_u64().unwrap_or(0) >= 2).then_some(())
    });
    // Write a stream back as it was read: its secrets are kept, not replaced by `***`.
    let read = request(&addr, "GET", "/api/streams/pushed", None, None).json()["config"].clone();
    assert_eq!(read["outputs"][0]["url"], "rtmp://127.0.0.1:1/live/***");
    let mut changed = read.clone();
    changed["stall_timeout_s"] = json!(3.0);
    let r = request(
        &addr,
        "PUT",
        "/api/streams/pushed",
        Some(&changed.to_string()),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    live(&addr, "pushed", None);
    let state = std::fs::read_to_string(fg.dir.path().join("framegate.api-state.toml")).unwrap();
    assert!(
        state.contains(key) && state.contains(wkey),
        "the stored secrets were lost"
    );

    let seen = [
        request(&addr, "GET", "/api/streams", None, None).body,
        request(&addr, "GET", "/metrics", None, None).body,
        request(&addr, "GET", "/api/events?limit=1000", None, None).body,
        fg.log(),
    ];
    for (what, text) in ["API", "metrics", "events", "log"].iter().zip(&seen) {
        for secret in [key, pass, token, wkey] {
            assert!(!text.contains(secret), "{what} shows `{secret}`");
        }
    }
    assert!(seen[0].contains("admin:***@127.0.0.1:1"), "{}", seen[0]);
    assert!(seen[0].contains("token=***"), "{}", seen[0]);
    assert!(seen[2].contains("config.changed"));
}

#[test]
fn with_a_token_reads_are_closed_and_viewer_tokens_open_one_stream() {
    let two = format!(
        "{PATTERN}\n[[streams]]\nid = \"other\"\nsource = \"test://smpte?width=160&height=120&fps=25\"\n"
    );
    let (_fg, addr) = start(
        &format!("api_token = \"{TOKEN}\"\n[server.limits]\nauth_failures_per_minute = 12"),
        &two,
    );
    live(&addr, "cam", Some(TOKEN));
    for path in [
        "/api/streams",
        "/metrics",
        "/streams/cam/snapshot.jpg",
        "/streams/cam/llhls/index.m3u8",
    ] {
        assert_eq!(
            request(&addr, "GET", path, None, None).status,
            401,
            "{path}"
        );
    }
    // The API token is never taken from a URL.
    let r = request(
        &addr,
        "GET",
        &format!("/streams/cam/snapshot.jpg?token={TOKEN}"),
        None,
        None,
    );
    assert_eq!(r.status, 401);
    let vt = request(
        &addr,
        "GET",
        "/api/streams/cam/view-token",
        None,
        Some(TOKEN),
    )
    .json();
    let vt = vt["token"].as_str().unwrap().to_string();
    let r = request(
        &addr,
        "GET",
        &format!("/streams/cam/snapshot.jpg?vt={vt}"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Scoped: another stream, or the API, stays closed.
    let r = request(
        &addr,
        "GET",
        &format!("/streams/other/snapshot.jpg?vt={vt}"),
        None,
        None,
    );
    assert_eq!(r.status, 401);
    let r = request(&addr, "GET", &format!("/api/streams?vt={vt}"), None, None);
    assert_eq!(r.status, 401);
    // A playlist fetched with it names every file with it, and those files open.
    let r = request(
        &addr,
        "GET",
        &format!("/streams/cam/llhls/index.m3u8?vt={vt}"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let init = format!("URI=\"init.mp4?vt={vt}\"");
    assert!(r.body.contains(&init), "{}", r.body);
    let part = r
        .body
        .lines()
        .find_map(|l| {
            l.strip_prefix("#EXT-X-PART:")
                .and_then(|p| p.split("URI=\"").nth(1))
        })
        .map(|u| u.split('"').next().unwrap().to_string())
        .unwrap();
    assert!(part.ends_with(&format!("?vt={vt}")), "{part}");
    let r = request(
        &addr,
        "GET",
        &format!("/streams/cam/llhls/{part}"),
        None,
        None,
    );
    assert_eq!(r.status, 200);
    // A forged token opens nothing, and an address that keeps failing is held off: 7 failures
    // so far, 5 more reach the limit of 12.
    let forged = format!("{}x", &vt[..vt.len() - 1]);
    for _ in 0..5 {
        let r = request(
            &addr,
            "GET",
            &format!("/streams/cam/snapshot.jpg?vt={forged}"),
            None,
            None,
        );
        assert_eq!(r.status, 401);
    }
    let r = request(&addr, "GET", "/api/streams", None, Some(TOKEN));
    assert_eq!(r.status, 429, "{}", r.body);
    // Health checks stay open.
    assert_eq!(request(&addr, "GET", "/healthz", None, None).status, 200);
}

#[test]
fn an_empty_or_short_token_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "[server]\napi_token = \"\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t.toml:2") && err.contains("api_token"),
        "{err}"
    );
}

#[test]
fn file_sources_through_the_api_stay_inside_media_dirs() {
    let media = tempfile::tempdir().unwrap();
    let clip = media.path().join("clip.mp4");
    common::make_clip(&clip, 50, 160, 120);
    let (_fg, addr) = start(
        &format!("media_dirs = [\"{}\"]", media.path().display()),
        "",
    );
    for path in ["/etc/passwd", "/nonexistent/file.mp4", "/etc/../etc/shadow"] {
        let body = json!({ "id": "f", "source": format!("file://{path}") });
        let r = request(&addr, "POST", "/api/streams", Some(&body.to_string()), None);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains("media_dirs"), "{detail}");
    }
    // A link inside the folder that leads out of it.
    std::os::unix::fs::symlink("/etc/passwd", media.path().join("link.mp4")).unwrap();
    let body =
        json!({ "id": "f", "source": format!("file://{}/link.mp4", media.path().display()) });
    assert_eq!(
        request(&addr, "POST", "/api/streams", Some(&body.to_string()), None).status,
        400
    );
    let body = json!({ "id": "f", "source": format!("file://{}", clip.display()) });
    let r = request(&addr, "POST", "/api/streams", Some(&body.to_string()), None);
    assert_eq!(r.status, 201, "{}", r.body);
    live(&addr, "f", None);
}

/// Whether the server closes `s` within `within` (reads to the end; what came is dropped).
fn closed_by_the_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut sink = Vec::new();
    s.read_to_end(&mut sink).is_ok()
}

#[test]
fn rtsp_connections_are_capped_and_those_that_never_play_are_closed() {
    let (fg, addr) = start(
        "[server.limits]\nrtsp_clients = 4\nrtsp_setup_timeout_s = 1.5",
        &format!("{PATTERN}outputs = [ {{ kind = \"rtsp\" }} ]\n"),
    );
    live(&addr, "cam", None);
    let rtsp = format!("127.0.0.1:{}", fg.rtsp_port(LONG));
    let now = |key: &str| {
        request(&addr, "GET", "/api/limits", None, None).json()["now"][key]
            .as_u64()
            .unwrap()
    };
    // A player: it sets up a session at once and plays on past the set-up time.
    let player = common::watch::Watcher::open(&format!("rtsp://{rtsp}/cam"));
    wait_for("frames at the player", LONG, || {
        (player.frame_count() > 0).then_some(())
    });
    // Three connections that never play: one silent, one asking only for OPTIONS, one that
    // speaks HTTP to the RTSP port (gst-rtsp-server answers 503 and would keep it open).
    let mut silent = TcpStream::connect(&rtsp).unwrap();
    let mut asking = TcpStream::connect(&rtsp).unwrap();
    asking
        .write_all(format!("OPTIONS rtsp://{rtsp}/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes())
        .unwrap();
    let mut http = TcpStream::connect(&rtsp).unwrap();
    http.write_all(b"GET /api/streams HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_for("four RTSP connections open", LONG, || {
        (now("rtsp_clients") == 4).then_some(())
    });
    // The cap is reached: one more is closed at once.
    let mut fifth = TcpStream::connect(&rtsp).unwrap();
    assert!(
        closed_by_the_server(&mut fifth, Duration::from_secs(5)),
        "a connection over the cap stayed open"
    );
    assert!(now("rtsp_refused") >= 1);
    // Those that set up no session are closed after the set-up time (not gst's minute).
    let t = Instant::now();
    for (what, s) in [
        ("silent", &mut silent),
        ("asking", &mut asking),
        ("http", &mut http),
    ] {
        assert!(
            closed_by_the_server(s, Duration::from_secs(10)),
            "the {what} connection stayed open"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(now("rtsp_idle_closed") >= 3);
    wait_for("only the player's connection open", LONG, || {
        (now("rtsp_clients") == 1).then_some(())
    });
    // The player plays on.
    let seen = player.frame_count();
    wait_for("the player still getting frames", LONG, || {
        (player.frame_count() > seen + 10).then_some(())
    });
    player.assert_clean("the player");
    let metrics = request(&addr, "GET", "/metrics", None, None).body;
    assert!(
        metrics.contains("framegate_edge_rtsp_clients 1"),
        "{metrics}"
    );
}

#[test]
fn the_rtsp_output_needs_its_users_credentials() {
    let rtsp = free_port();
    let http = free_port();
    let _fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = {rtsp}\n\
         [server.rtsp_auth]\nusers = [\"viewer:a-long-rtsp-password\"]\n\n\
         {PATTERN}outputs = [ {{ kind = \"rtsp\" }} ]\n"
    ));
    // The RTSP port is bound as the streams start, the HTTP one after: wait for both.
    wait_for_port(rtsp, LONG);
    wait_for_port(http, LONG);
    let addr = format!("127.0.0.1:{http}");
    live(&addr, "cam", None);
    assert!(common::ffprobe(&format!("rtsp://127.0.0.1:{rtsp}/cam")).is_none());
    assert!(
        common::ffprobe(&format!(
            "rtsp://viewer:wrong-password@127.0.0.1:{rtsp}/cam"
        ))
        .is_none()
    );
    let (codec, w, h, _) = common::ffprobe(&format!(
        "rtsp://viewer:a-long-rtsp-password@127.0.0.1:{rtsp}/cam"
    ))
    .expect("ffprobe with the credentials");
    assert_eq!((codec.as_str(), w, h), ("h264", 320, 240));
}

#[test]
fn https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (_fg, addr) = start(
        &format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"",
            cert.display(),
            key.display()
        ),
        PATTERN,
    );
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let url = format!("https://{addr}/api/streams");
    let trusted = curl(&["--cacert", cert.to_str().unwrap(), &url]);
    assert_eq!(
        String::from_utf8_lossy(&trusted.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    // Without trusting the certificate, curl refuses; plain HTTP gets no answer.
    let untrusted = curl(&[&url]);
    assert!(!untrusted.status.success());
    let plain = curl(&[&format!("http://{addr}/healthz")]);
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    let snapshot = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        &format!("https://{addr}/streams/cam/snapshot.jpg"),
    ]);
    assert_eq!(String::from_utf8_lossy(&snapshot.stdout), "200");

    // Chromium, trusting this certificate's key only: the dashboard loads and its tiles get
    // pictures over wss:.
    common::require_chromium();
    let spki = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -pubkey -noout -in '{}' | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            cert.display()
        ))
        .output()
        .unwrap();
    let spki = String::from_utf8_lossy(&spki.stdout).trim().to_string();
    assert_eq!(spki.len(), 44, "SPKI hash: {spki}");
    let port = addr.rsplit(':').next().unwrap();
    let page = common::run_browser_script(
        "tls.mjs",
        &[&format!("https://localhost:{port}/"), &spki],
        &[],
    );
    assert_eq!(page["protocol"], "https:", "{page}");
    assert_eq!(page["tiles"], 1, "{page}");
    assert_eq!(page["errors"], json!([]), "{page}");
}

/// Open files of a process.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_slowloris_does_not_stop_health_checks_and_stays_under_the_connection_cap() {
    rlimit::increase_nofile_limit(8192).unwrap();
    let (fg, addr) = start(
        "[server.limits]\nhttp_connections = 500\nheader_read_timeout_s = 20",
        PATTERN,
    );
    live(&addr, "cam", None);
    let before = open_files(fg.pid());
    // 1,100 sockets, each sending one byte of a request and then nothing.
    let mut slow = Vec::new();
    for _ in 0..1100 {
        let mut s = TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(b"G");
        slow.push(s);
    }
    // Health checks are answered at once, one after another, while the sockets stay open.
    for _ in 0..5 {
        let t = Instant::now();
        let r = request(&addr, "GET", "/healthz", None, None);
        assert_eq!(r.status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "/healthz took {:?}",
            t.elapsed()
        );
    }
    let during = open_files(fg.pid());
    assert!(
        during <= before + 500 + 16,
        "{during} open files with a cap of 500 connections (before: {before})"
    );
    let limits = request(&addr, "GET", "/api/limits", None, None).json();
    assert!(
        limits["now"]["connections_evicted"].as_u64().unwrap() > 0,
        "{limits}"
    );
    drop(slow);
}

#[test]
fn a_page_on_another_origin_is_refused_in_a_real_browser() {
    common::require_chromium();
    let (_fg, addr) = start("", PATTERN);
    live(&addr, "cam", None);
    // The attacker's page, served from another port.
    let page_port = free_port();
    let page = std::net::TcpListener::bind(("127.0.0.1", page_port)).unwrap();
    std::thread::spawn(move || {
        for s in page.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<!doctype html><title>elsewhere</title>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = common::run_browser_script(
        "cross-origin.mjs",
        &[
            &format!("http://127.0.0.1:{page_port}/"),
            &format!("http://{addr}"),
        ],
        &[],
    );
    assert_eq!(out["websocket"], "refused", "{out}");
    assert_eq!(out["whep"], "refused", "{out}");
    // The no-cors POST is opaque to the page: what counts is that nothing was added.
    let r = request(&addr, "GET", "/api/streams/evil", None, None);
    assert_eq!(r.status, 404, "the cross-origin POST added a stream");
    let limits = request(&addr, "GET", "/api/limits", None, None).json();
    assert!(
        limits["now"]["origin_refused"].as_u64().unwrap() >= 3,
        "{limits}"
    );
}

/// A browser-like WHEP offer (recvonly H.264) that no browser is behind: its ICE never connects.
fn phantom_offer() -> String {
    let fingerprint = (0..32)
        .map(|i| format!("{:02X}", (i * 7 + 3) % 256))
        .collect::<Vec<_>>()
        .join(":");
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:pHnT\r\na=ice-pwd:phantomphantomphantom123\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\n\
         a=rtcp-mux\r\na=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\n\
         a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
    )
}

#[test]
fn three_hundred_parallel_webrtc_offers_leave_the_api_responsive() {
    let (_fg, addr) = start(
        "[server.limits]\nwhep_sessions_per_stream = 6\nwhep_sessions_total = 8",
        PATTERN,
    );
    live(&addr, "cam", None);
    let offer = phantom_offer();
    let storm: Vec<_> = (0..300)
        .map(|_| {
            let (addr, offer) = (addr.clone(), offer.clone());
            std::thread::spawn(move || {
                request_typed(
                    &addr,
                    "POST",
                    "/streams/cam/whep",
                    Some(&offer),
                    "application/sdp",
                    None,
                )
                .status
            })
        })
        .collect();
    // While they are answered: the API answers, and never more sessions than the cap.
    let mut slowest = Duration::ZERO;
    let mut most = 0;
    for _ in 0..10 {
        let t = Instant::now();
        let r = request(&addr, "GET", "/api/limits", None, None);
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.status, 200);
        most = most.max(r.json()["now"]["whep_sessions"].as_u64().unwrap());
        let t = Instant::now();
        assert_eq!(
            request(&addr, "GET", "/api/streams/cam", None, None).status,
            200
        );
        slowest = slowest.max(t.elapsed());
    }
    let statuses: Vec<u16> = storm.into_iter().map(|t| t.join().unwrap()).collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    eprintln!(
        "WHEP storm: {created} sessions made, {refused} refused, at most {most} at once, slowest API answer {slowest:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 503].contains(s)),
        "unexpected answers: {statuses:?}"
    );
    // Sessions that end (no peer) free their place, so more than 6 may be made over the storm;
    // never more than the caps at once.
    assert!(created >= 1, "no session was made");
    assert!(refused >= 200, "{refused} refused");
    assert!(most <= 8, "{most} sessions with a cap of 8");
    assert!(slowest < Duration::from_secs(2), "the API took {slowest:?}");
    // The phantom viewers never connect: their sessions end by themselves.
    wait_for("the phantom sessions to end", LONG, || {
        let n = request(&addr, "GET", "/api/limits", None, None).json()["now"]["whep_sessions"]
            .as_u64()
            .unwrap();
        (n == 0).then_some(())
    });
}

#[test]
fn a_websocket_viewer_that_sends_more_than_a_kib_is_closed() {
    let (_fg, addr) = start("", PATTERN);
    live(&addr, "cam", None);
    let tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://{addr}/streams/cam/ws?width=160"), tcp).unwrap();
    let picture = |ws: &mut tungstenite::WebSocket<TcpStream>| loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => return Some(b.len()),
            Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    };
    assert!(picture(&mut ws).is_some());
    // A small message is harmless.
    ws.send(tungstenite::Message::text("hello")).unwrap();
    assert!(picture(&mut ws).is_some());
    // A large one ends the session.
    let _ = ws.send(tungstenite::Message::text("x".repeat(2048)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = false;
    while Instant::now() < deadline {
        if picture(&mut ws).is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the socket stayed open after a 2 KiB message");
}

#[test]
fn waiting_ll_hls_requests_are_capped() {
    let (_fg, addr) = start("[server.limits]\nheld_requests = 1", PATTERN);
    live(&addr, "cam", None);
    let playlist = request(&addr, "GET", "/streams/cam/llhls/index.m3u8", None, None);
    assert_eq!(playlist.status, 200);
    let msn: u64 = playlist
        .body
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let segments = playlist.body.matches("#EXTINF").count() as u64;
    // A blocking reload for the segment after the one being built: held for a second or two.
    let next = msn + segments + 1;
    let waiting = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            request(
                &addr,
                "GET",
                &format!("/streams/cam/llhls/index.m3u8?_HLS_msn={next}"),
                None,
                None,
            )
            .status
        })
    };
    wait_for("the request to be held", LONG, || {
        let l = request(&addr, "GET", "/api/limits", None, None).json();
        (l["now"]["held"] == 1).then_some(())
    });
    let r = request(
        &addr,
        "GET",
        &format!("/streams/cam/llhls/index.m3u8?_HLS_msn={next}"),
        None,
        None,
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("held_requests"));
    assert_eq!(waiting.join().unwrap(), 200);
}

/// Opens `path` and reads the answer's head only (an event stream does not end): its status
/// and the open socket.
fn open_head(addr: &str, path: &str, token: Option<&str>) -> (u16, TcpStream) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed in the head");
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, s)
}

#[test]
fn box_readers_need_a_session_a_detector_and_a_free_place() {
    let (_fg, addr) = start(
        &format!(
            "api_token = \"{TOKEN}\"\n\n[[models]]\nid = \"coco\"\npath = \"{}\"\nformat = \"centernet\"\n",
            common::shared("models/centernet.onnx").display()
        ),
        &format!(
            "{PATTERN}processors = [ {{ kind = \"detect\", model = \"coco\" }} ]\n\n\
             [[streams]]\nid = \"plain\"\nsource = \"test://ball?width=320&height=240&fps=25\"\n"
        ),
    );
    live(&addr, "cam", Some(TOKEN));
    live(&addr, "plain", Some(TOKEN));
    let offer = phantom_offer();
    let session = |id: &str| {
        let r = request_typed(
            &addr,
            "POST",
            &format!("/streams/{id}/whep"),
            Some(&offer),
            "application/sdp",
            Some(TOKEN),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.header("location").unwrap().to_string()
    };
    let cam = session("cam");
    let boxes = format!("{cam}/boxes");
    // Reading boxes is reading: the token is needed.
    assert_eq!(request(&addr, "GET", &boxes, None, None).status, 401);
    let r = request(
        &addr,
        "GET",
        "/streams/cam/whep/no-such/boxes",
        None,
        Some(TOKEN),
    );
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("no such session"))
    );
    let plain = session("plain");
    let r = request(&addr, "GET", &format!("{plain}/boxes"), None, Some(TOKEN));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("no detector"))
    );
    // Two readers a session; a third is refused until one leaves.
    let (a, first) = open_head(&addr, &boxes, Some(TOKEN));
    let (b, mut second) = open_head(&addr, &boxes, Some(TOKEN));
    assert_eq!((a, b), (200, 200));
    let r = request(&addr, "GET", &boxes, None, Some(TOKEN));
    assert_eq!(r.status, 429, "{}", r.body);
    drop(first);
    wait_for("the place of the reader that left", LONG, || {
        let (status, s) = open_head(&addr, &boxes, Some(TOKEN));
        (status == 200).then_some(s)
    });
    // The session ends: its readers' streams end.
    let r = request(&addr, "DELETE", &cam, None, None);
    assert_eq!(r.status, 204);
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).unwrap();
}
