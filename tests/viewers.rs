//! Browser outputs against the real server: snapshots and MJPEG read with a plain HTTP client,
//! JPEGs checked for what they are, and slow viewers that must not slow anything.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::request;
use common::{Framegate, free_port, wait_for, wait_for_port};

const LONG: Duration = Duration::from_secs(30);

/// Width and height from a JPEG's start-of-frame header; panics if it is not a JPEG.
fn jpeg_size(data: &[u8]) -> (u32, u32) {
    assert_eq!(&data[..2], [0xFF, 0xD8], "not a JPEG");
    assert_eq!(&data[data.len() - 2..], [0xFF, 0xD9], "JPEG not complete");
    let mut i = 2;
    while i + 9 < data.len() {
        assert_eq!(data[i], 0xFF, "broken JPEG marker at {i}");
        let marker = data[i + 1];
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if matches!(marker, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([data[i + 5], data[i + 6]]) as u32;
            let w = u16::from_be_bytes([data[i + 7], data[i + 8]]) as u32;
            return (w, h);
        }
        i += 2 + len;
    }
    panic!("no start-of-frame in the JPEG");
}

/// An MJPEG connection read part by part.
struct Mjpeg {
    reader: BufReader<TcpStream>,
}

impl Mjpeg {
    fn open(addr: &str, path: &str) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if line.to_lowercase().starts_with("content-type:") {
                content_type = line;
            }
        }
        assert!(
            content_type.contains("multipart/x-mixed-replace; boundary=framegate"),
            "{content_type}"
        );
        Self { reader }
    }

    /// The next part's sequence number and JPEG. The body is chunked: chunk sizes are skipped.
    fn next(&mut self) -> (u64, Vec<u8>) {
        let mut len = None;
        let mut seq = None;
        let mut in_headers = false;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "the stream ended");
            let l = line.trim_end();
            if l == "--framegate" {
                in_headers = true;
            } else if in_headers && l.is_empty() {
                break;
            } else if let Some(v) = l.strip_prefix("Content-Length: ") {
                len = v.parse().ok();
            } else if let Some(v) = l.strip_prefix("X-Frame-Seq: ") {
                seq = v.parse().ok();
            }
        }
        let mut data = vec![0; len.unwrap()];
        // Chunk boundaries may fall inside the JPEG: read through them.
        let mut got = 0;
        while got < data.len() {
            let n = self.reader.read(&mut data[got..]).unwrap();
            assert!(n > 0);
            got += n;
            if got < data.len() {
                // A chunk ended: drop its "\r\n<size>\r\n" framing if it is there.
                let buf = self.reader.fill_buf().unwrap().to_vec();
                if buf.starts_with(b"\r\n") {
                    let mut framing = String::new();
                    self.reader.read_line(&mut framing).unwrap();
                    framing.clear();
                    self.reader.read_line(&mut framing).unwrap();
                }
            }
        }
        (seq.unwrap(), data)
    }
}

fn start() -> (Framegate, String) {
    let http = free_port();
    let rtsp = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = {rtsp}

[[streams]]
id = "cam"
source = "test://smpte?width=640&height=360&fps=25&speed=4"
processors = [ {{ kind = "overlay" }} ]

[[streams]]
id = "off"
source = "test://ball"
enabled = false
"#
    ));
    wait_for_port(http, LONG);
    (fg, format!("127.0.0.1:{http}"))
}

fn status(addr: &str) -> serde_json::Value {
    request(addr, "GET", "/api/streams/cam", None, None).json()
}

#[test]
fn snapshots_are_jpegs_of_the_asked_width_at_once() {
    let (_fg, addr) = start();
    wait_for("the stream to be live", LONG, || {
        (status(&addr)["state"] == "live").then_some(())
    });
    // A test pattern's frames come as their only reference: the overlay draws on them in
    // place, never on a copy (decision 0034).
    let frames = wait_for("50 frames processed", LONG, || {
        let st = status(&addr);
        (st["frames"]["processed"].as_u64() > Some(50)).then_some(st["frames"].clone())
    });
    assert_eq!(frames["copied"], 0, "{frames}");
    // The dashboard page names the running streams, so tiles can connect at once.
    let page = request(&addr, "GET", "/", None, None);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains(r#"window.framegateStreams = ["cam"];"#),
        "{}",
        page.body
    );
    let r = request(&addr, "GET", "/streams/cam/snapshot.jpg", None, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert!(r.header("x-frame-seq").is_some());
    assert_eq!(jpeg_size(r.body_bytes()), (640, 360));
    let r = request(
        &addr,
        "GET",
        "/streams/cam/snapshot.jpg?width=320&quality=50",
        None,
        None,
    );
    assert_eq!(jpeg_size(r.body_bytes()), (320, 180));

    let r = request(
        &addr,
        "GET",
        "/streams/cam/snapshot.jpg?width=3",
        None,
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].as_str().unwrap().contains("width=3"));
    assert_eq!(
        request(&addr, "GET", "/streams/nope/snapshot.jpg", None, None).status,
        404
    );
    let r = request(&addr, "GET", "/streams/off/snapshot.jpg", None, None);
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap()),
        (409, "stream is stopped")
    );
}

#[test]
fn mjpeg_viewers_share_one_encoder_and_slow_ones_slow_nobody() {
    let (_fg, addr) = start();
    wait_for("the stream to be live", LONG, || {
        (status(&addr)["state"] == "live").then_some(())
    });

    // Two viewers that never read: their sockets fill up and stay full.
    let slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(
                s,
                "GET /streams/cam/mjpeg?width=320 HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    // One viewer that reads as fast as it can, at the same size: the same encoder.
    let mut fast = Mjpeg::open(&addr, "/streams/cam/mjpeg?width=320");
    let (first_seq, jpeg) = fast.next();
    assert_eq!(jpeg_size(&jpeg), (320, 180));
    assert_eq!(
        status(&addr)["jpeg_encoders"],
        1,
        "viewers of one size must share one encoder"
    );

    let start = Instant::now();
    let mut n = 0;
    let mut last = first_seq;
    while start.elapsed() < Duration::from_secs(3) {
        let (seq, jpeg) = fast.next();
        assert!(seq > last, "pictures out of order: {seq} after {last}");
        assert_eq!(jpeg_size(&jpeg), (320, 180));
        last = seq;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert!(
        rate > 15.0,
        "the reading viewer got {rate:.1} pictures/s beside two stuck ones"
    );
    let s = status(&addr);
    assert!(
        s["fps_out"].as_f64().unwrap() > 22.0,
        "the stream slowed down: {s}"
    );
    assert_eq!(s["dropped"]["ingest"].as_u64().unwrap(), 0, "{s}");

    // Another size is another encoder; `fps` caps one viewer only.
    let mut capped = Mjpeg::open(&addr, "/streams/cam/mjpeg?width=160&fps=5");
    let t = Instant::now();
    for _ in 0..6 {
        let (_, jpeg) = capped.next();
        assert_eq!(jpeg_size(&jpeg), (160, 90));
    }
    let took = t.elapsed();
    assert!(
        took > Duration::from_millis(800),
        "fps=5 gave 6 pictures in {took:?}"
    );
    assert_eq!(status(&addr)["jpeg_encoders"], 2);

    // Nobody watching: no JPEG work.
    drop((slow, fast, capped));
    wait_for("the JPEG encoders to stop", LONG, || {
        (status(&addr)["jpeg_encoders"] == 0).then_some(())
    });
}

/// A WebSocket client reading server messages (enough of RFC 6455 for this test).
struct Ws {
    reader: BufReader<TcpStream>,
}

impl Ws {
    fn open(addr: &str, path: &str) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 101 "), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Self { reader }
    }

    /// The next binary message.
    fn next_binary(&mut self) -> Vec<u8> {
        loop {
            let mut h = [0u8; 2];
            self.reader.read_exact(&mut h).unwrap();
            let opcode = h[0] & 0x0F;
            let mut len = u64::from(h[1] & 0x7F);
            if len == 126 {
                let mut b = [0u8; 2];
                self.reader.read_exact(&mut b).unwrap();
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.reader.read_exact(&mut b).unwrap();
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0; len as usize];
            self.reader.read_exact(&mut payload).unwrap();
            if opcode == 2 {
                return payload;
            }
        }
    }
}

#[test]
fn websocket_pushes_jpegs_with_a_json_header() {
    let (_fg, addr) = start();
    wait_for("the stream to be live", LONG, || {
        (status(&addr)["state"] == "live").then_some(())
    });
    let mut ws = Ws::open(&addr, "/streams/cam/ws?width=256&quality=60");
    let mut last = None;
    for _ in 0..5 {
        let msg = ws.next_binary();
        let n = u32::from_be_bytes(msg[..4].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&msg[4..4 + n]).unwrap();
        let jpeg = &msg[4 + n..];
        assert_eq!(jpeg_size(jpeg), (256, 144));
        assert_eq!(
            (header["width"].as_u64(), header["height"].as_u64()),
            (Some(256), Some(144))
        );
        let seq = header["seq"].as_u64().unwrap();
        assert!(last.is_none_or(|l| seq > l), "{header}");
        last = Some(seq);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let age = now_ms.saturating_sub(header["capture_ms"].as_u64().unwrap());
        assert!(age < 5_000, "picture {age} ms old");
    }
}

#[test]
fn hls_playlist_and_segments_are_valid() {
    let (_fg, addr) = start();
    wait_for("the stream to be live", LONG, || {
        (status(&addr)["state"] == "live").then_some(())
    });
    let r = request(&addr, "GET", "/streams/cam/hls/index.m3u8", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert!(r.body.starts_with("#EXTM3U"), "{}", r.body);
    let segment = r
        .body
        .lines()
        .find(|l| l.ends_with(".ts"))
        .unwrap()
        .to_string();
    let seg = request(
        &addr,
        "GET",
        &format!("/streams/cam/hls/{segment}"),
        None,
        None,
    );
    assert_eq!(
        (seg.status, seg.header("content-type")),
        (200, Some("video/mp2t"))
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("segment.ts");
    std::fs::write(&file, seg.body_bytes()).unwrap();
    let probe = |target: &str| {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["stream=codec_name,width,height", "-of", "csv=p=0", target])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(probe(file.to_str().unwrap()), "h264,640,360");
    // A real HLS client, through the playlist.
    assert_eq!(
        probe(&format!("http://{addr}/streams/cam/hls/index.m3u8")),
        "h264,640,360"
    );
    assert_eq!(
        request(
            &addr,
            "GET",
            "/streams/cam/hls/..%2Fetc%2Fpasswd",
            None,
            None
        )
        .status,
        404
    );
    assert_eq!(
        request(&addr, "GET", "/streams/cam/hls/segment99999.ts", None, None).status,
        404
    );
}
