//! Source elements per kind of URL, up to the point where encoded (or raw) video leaves them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use crate::elements::make;
use gst::prelude::*;

use crate::audio::{AudioTrack, rtp_encoding_carried};
use crate::config::{RtspTransport, SourceUrl, TestPattern};

/// How a source's output reaches the decoder.
pub(super) enum SourceOut {
    /// Encoded video on a static pad: link it to decodebin.
    Static(gst::Element),
    /// Encoded video on pads that appear later (rtspsrc): decodebin is linked on `pad-added`.
    Dynamic(gst::Element),
    /// Raw video already (test patterns): no decoder.
    Raw(gst::Element),
}

/// Makes the elements for a source and adds them to `bin`.
pub(super) fn build(
    bin: &gst::Bin,
    source: &SourceUrl,
    transport: RtspTransport,
    audio: Option<&Arc<AudioTrack>>,
) -> Result<SourceOut> {
    match source {
        SourceUrl::Rtsp(url) => {
            // Credentials go in properties, not in the location, so GStreamer's own logs never
            // print them.
            let mut location = url.clone();
            let user = url.username().to_string();
            let password = url.password().map(str::to_string);
            let _ = location.set_username("");
            let _ = location.set_password(None);
            let src = make("rtspsrc")?;
            src.set_property("location", location.as_str());
            if !user.is_empty() {
                src.set_property("user-id", percent_decode(&user));
            }
            if let Some(pw) = password {
                src.set_property("user-pw", percent_decode(&pw));
            }
            // Low delay: no jitter-buffer latency, and late packets dropped rather than waited for.
            src.set_property("latency", 0u32);
            src.set_property("drop-on-latency", true);
            src.set_property_from_str(
                "protocols",
                match transport {
                    RtspTransport::Tcp => "tcp",
                    RtspTransport::Udp => "udp",
                },
            );
            // The camera's video streams are set up, and its first audio stream when the stream
            // carries audio in a codec framegate carries (no other sockets, no unlinked pads).
            let audio = audio.cloned();
            let audio_taken = AtomicBool::new(false);
            src.connect("select-stream", false, move |args| {
                let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
                let s = caps.as_ref().and_then(|c| c.structure(0));
                let field = |name| s.and_then(|s| s.get::<&str>(name).ok()).unwrap_or("");
                let take = match field("media") {
                    "video" => true,
                    "audio" => match &audio {
                        Some(track) if rtp_encoding_carried(field("encoding-name")) => {
                            !audio_taken.swap(true, Ordering::SeqCst)
                        }
                        Some(track) => {
                            track.ignore(format!(
                                "the camera sends {}, which framegate does not carry",
                                field("encoding-name")
                            ));
                            false
                        }
                        None => false,
                    },
                    _ => false,
                };
                Some(take.to_value())
            });
            bin.add(&src)?;
            Ok(SourceOut::Dynamic(src))
        }
        SourceUrl::Rtmp(url) => {
            let src = make("rtmp2src")?;
            src.set_property("location", url.as_str());
            bin.add(&src)?;
            Ok(SourceOut::Static(src))
        }
        SourceUrl::File(path) => {
            if !path.exists() {
                anyhow::bail!("file {} does not exist", path.display());
            }
            let src = make("filesrc")?;
            src.set_property("location", path.to_string_lossy().as_ref());
            bin.add(&src)?;
            Ok(SourceOut::Static(src))
        }
        SourceUrl::Test(t) => Ok(SourceOut::Raw(test_source(bin, t)?)),
    }
}

fn test_source(bin: &gst::Bin, t: &TestPattern) -> Result<gst::Element> {
    let src = make("videotestsrc")?;
    src.set_property("is-live", true);
    src.set_property_from_str("pattern", &t.pattern);
    if t.speed != 0 {
        src.set_property("horizontal-speed", t.speed);
    }
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::I420)
        .width(t.width as i32)
        .height(t.height as i32)
        .framerate(gst::Fraction::new(t.fps as i32, 1))
        .build();
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &caps)
        .build()?;
    bin.add_many([&src, &filter])?;
    src.link(&filter)?;
    Ok(filter)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_percent_escapes_in_credentials() {
        assert_eq!(super::percent_decode("p%40ss%3Aw"), "p@ss:w");
        assert_eq!(super::percent_decode("plain%"), "plain%");
    }
}
