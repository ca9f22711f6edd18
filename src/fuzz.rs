//! Property tests over hostile input (proptest): every parser and reader that takes bytes from a
//! config, a request, an SDP offer, a bitstream or a frame is fed arbitrary and mutated input and
//! must answer (a value or an error) without panicking. A short run in CI (the default case
//! count); `PROPTEST_CASES=200000 cargo test --lib fuzz` for the long run of
//! docs/reliability.md. Failures found are kept by proptest in `proptest-regressions/` and
//! replayed first.
#![cfg(test)]

use proptest::prelude::*;

use crate::config::{self, SourceUrl};

/// Bytes of `base` with some replaced, inserted or removed: inputs near valid ones reach deeper
/// than random text.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec((0usize..4096, any::<u8>(), 0u8..3), 0..12).prop_map(move |edits| {
        let mut b = base.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at % (b.len() + 1);
            match op {
                0 if at < b.len() => b[at] = byte,
                1 => b.insert(at, byte),
                _ if at < b.len() => {
                    b.remove(at);
                }
                _ => {}
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    })
}

const CONFIG: &str = r#"
[server]
http = "127.0.0.1:8080"
api_token = "a token of sixteen+"
allowed_origins = ["https://wall.example"]
[server.limits]
viewers_total = 10
[[streams]]
id = "cam"
source = "rtsp://u:p@127.0.0.1:8554/x?token=abc"
stall_timeout_s = 2.5
reconnect = { initial_s = 0.5, max_s = 10 }
processors = [ { kind = "overlay" }, { kind = "watermark", id = "ABCDEFG", key = "0123456789" } ]
outputs = [ { kind = "rtsp" }, { kind = "rtmp", url = "rtmp://h/live/key", retry_max_s = 5 } ]
encoder = { bitrate_kbps = 1000, size = [640, 360] }
"#;

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\n\
    a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n\
    a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";

proptest! {
    #[test]
    fn the_config_parser_never_panics(text in mutated(CONFIG)) {
        let _ = config::parse_str(&text, std::path::Path::new("fuzz.toml"));
    }

    #[test]
    fn source_urls_never_panic(text in "\\PC{0,80}", near in mutated("rtsp://user:pw@cam.local:554/live/ch1?x=1")) {
        let _ = SourceUrl::parse(&text);
        if let Ok(u) = SourceUrl::parse(&near) {
            // What parses also prints, without its secrets.
            let _ = u.masked();
        }
    }

    #[test]
    fn sdp_offers_never_panic(text in mutated(OFFER), junk in "\\PC{0,200}") {
        let _ = gst::init();
        for offer in [text, junk] {
            if let Ok(sdp) = crate::publish::parse_offer(&offer) {
                let _ = crate::publish::h264_payload_type(&sdp);
            }
        }
    }

    #[test]
    fn redaction_never_panics_and_never_lets_a_registered_secret_through(
        text in "\\PC{0,120}",
        // A bounded set of secrets (the registry holds a few thousand, as configs do).
        n in 0usize..64,
    ) {
        let secret = format!("Fuzz{n:02}Secret");
        crate::redact::register(&secret);
        let line = format!("{text} {secret} rtmp://h/app/{secret}?token={secret}");
        let clean = crate::redact::text(&line);
        prop_assert!(!clean.contains(secret.as_str()), "{clean}");
    }

    #[test]
    fn the_stamp_reader_takes_any_frame(
        w in 1u32..400,
        h in 1u32..120,
        seed in any::<u64>(),
    ) {
        let stride = w as usize + (seed % 32) as usize;
        let luma: Vec<u8> = (0..stride * h as usize)
            .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 13) as u8)
            .collect();
        let _ = crate::measure::read_stamp(&luma, stride, w, h);
    }
}

/// Cases for the slow properties (a watermark read is a Viterbi search per window): a few in CI,
/// `PROPTEST_CASES` for the long run.
fn slow_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(slow_cases()))]

    #[test]
    fn the_watermark_reader_takes_any_frames(
        w in 1usize..300,
        h in 1usize..240,
        frames in 1usize..6,
        seed in any::<u64>(),
    ) {
        let mut reader = crate::process::watermark::Reader::new("a fuzzing key");
        let stride = w + (seed % 16) as usize;
        for f in 0..frames {
            let luma: Vec<u8> = (0..stride * h)
                .map(|i| (seed.wrapping_mul((i + f * 7919) as u64 + 1) >> 11) as u8)
                .collect();
            reader.add(&luma, stride, w, h, f as f64 / 25.0, seed % 3 == f as u64 % 3);
        }
        let (found, confidence) = reader.finish();
        prop_assert!(confidence.is_finite() || found.is_none());
    }

}
