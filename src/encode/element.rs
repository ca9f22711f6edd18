//! The H.264 encoder element: NVENC when present and allowed, x264 otherwise, both set for low
//! latency (no B-frames, no look-ahead, a key frame every `keyframe_interval` frames).

use std::fmt;

use anyhow::Result;
use gst::prelude::*;

use crate::config::EncoderConfig;
use crate::hardware;

/// Which encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// x264 on the CPU.
    X264,
    /// NVIDIA NVENC.
    Nvenc,
    /// No encoding: raw frames to a Y4M file (to measure processors apart from the codec).
    Raw,
}

impl EncoderKind {
    /// The GStreamer element name.
    pub fn element(self) -> &'static str {
        match self {
            Self::X264 => "x264enc",
            Self::Nvenc => "nvh264enc",
            Self::Raw => "y4menc",
        }
    }
}

impl fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.element())
    }
}

/// Makes and configures the encoder element.
pub(super) fn make(settings: &EncoderConfig) -> Result<(gst::Element, EncoderKind)> {
    let hw = hardware::use_hardware_encoder(settings.hardware).map_err(anyhow::Error::msg)?;
    if hw {
        let enc = crate::elements::make("nvh264enc")?;
        set_if_present(&enc, "bitrate", settings.bitrate_kbps);
        set_if_present(&enc, "gop-size", settings.keyframe_interval as i32);
        set_if_present(&enc, "bframes", 0u32);
        set_if_present(&enc, "zerolatency", true);
        // Enum values differ between GStreamer versions (1.22's presets are named, later ones
        // are p1..p7): the first value the installed element knows is taken, none if it knows
        // none of them; a name it does not know would panic.
        set_enum_if_known(&enc, "rc-mode", &["cbr-ld-hq", "cbr"]);
        set_enum_if_known(&enc, "preset", &["low-latency-hp", "p1"]);
        set_enum_if_known(&enc, "tune", &["ultra-low-latency", "low-latency"]);
        return Ok((enc, EncoderKind::Nvenc));
    }
    let enc = crate::elements::make("x264enc")?;
    enc.set_property_from_str("tune", "zerolatency");
    enc.set_property_from_str("speed-preset", settings.preset.as_str());
    enc.set_property("bitrate", settings.bitrate_kbps);
    enc.set_property("key-int-max", settings.keyframe_interval);
    enc.set_property("bframes", 0u32);
    let threads = x264_threads(settings.threads, super::crowded());
    if threads > 0 {
        enc.set_property("threads", threads);
        // One thread a frame: no slices to wait for.
        enc.set_property("sliced-threads", threads > 1);
    }
    Ok((enc, EncoderKind::X264))
}

/// The caps between an NVENC encoder and the parser: constrained baseline, the profile WebRTC
/// answers for (`profile-level-id=42e01f`) and every player decodes, where the installed
/// element can make it; `None` for an element that cannot (then it is left to choose) and for
/// x264 (the default `ultrafast` makes that profile already; a slower preset chosen in the config
/// keeps x264's profile, which browsers decode in practice, for the quality it was chosen for).
pub(super) fn output_caps(kind: EncoderKind, encoder: &gst::Element) -> Option<gst::Caps> {
    if kind != EncoderKind::Nvenc {
        return None;
    }
    constrained_baseline(encoder)
}

/// `video/x-h264, profile=constrained-baseline` if the element's output can be that.
fn constrained_baseline(encoder: &gst::Element) -> Option<gst::Caps> {
    let wanted = gst::Caps::builder("video/x-h264")
        .field("profile", "constrained-baseline")
        .build();
    let template = encoder.static_pad("src")?.pad_template_caps();
    template.can_intersect(&wanted).then_some(wanted)
}

/// The x264 threads of a new encoder: the configured count, or (0, automatic) x264's own
/// (0) unless the process is [`super::crowded`], one then.
fn x264_threads(configured: u32, crowded: bool) -> u32 {
    match configured {
        0 if crowded => 1,
        n => n,
    }
}

fn set_if_present<V: Into<gst::glib::Value>>(e: &gst::Element, name: &str, v: V) {
    if e.find_property(name).is_some() {
        e.set_property(name, v);
    }
}

/// Sets an enum property to the first of `nicks` that the element's enum has; returns it, or
/// `None` (nothing set) when the element has no such property or knows none of them.
pub(super) fn set_enum_if_known<'a>(
    e: &gst::Element,
    name: &str,
    nicks: &[&'a str],
) -> Option<&'a str> {
    let spec = e.find_property(name)?;
    let spec = spec.downcast_ref::<gst::glib::ParamSpecEnum>()?;
    let class = spec.enum_class();
    let nick = nicks
        .iter()
        .copied()
        .find(|n| class.value_by_nick(n).is_some());
    match nick {
        Some(n) => e.set_property_from_str(name, n),
        None => tracing::debug!(
            element = %e.name(),
            property = name,
            "none of {nicks:?} is known to this element: left at its default"
        ),
    }
    nick
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constrained_baseline_only_where_the_element_can_make_it() {
        gst::init().expect("gst");
        // x264enc can (its template lists the profile); a JPEG encoder's output cannot be it.
        let x264 = crate::elements::make("x264enc").expect("x264enc");
        let caps = constrained_baseline(&x264).expect("x264enc makes constrained baseline");
        assert_eq!(
            caps.structure(0)
                .and_then(|s| s.get::<&str>("profile").ok()),
            Some("constrained-baseline")
        );
        let jpeg = crate::elements::make("jpegenc").expect("jpegenc");
        assert!(constrained_baseline(&jpeg).is_none());
        // Only NVENC gets the filter: x264's own choice is kept.
        assert!(output_caps(EncoderKind::X264, &x264).is_none());
    }

    #[test]
    fn automatic_threads_go_to_one_when_crowded() {
        assert_eq!(x264_threads(0, false), 0, "x264's own");
        assert_eq!(x264_threads(0, true), 1);
        assert_eq!(x264_threads(4, true), 4, "configured: as configured");
        assert_eq!(x264_threads(2, false), 2);
    }

    #[test]
    fn an_enum_value_the_element_does_not_know_is_skipped_not_a_panic() {
        gst::init().unwrap();
        let enc = gst::ElementFactory::make("x264enc").build().unwrap();
        // The first known value is taken.
        assert_eq!(
            set_enum_if_known(&enc, "speed-preset", &["p1", "ultrafast"]),
            Some("ultrafast")
        );
        let nick = |e: &gst::Element| {
            let v = e.property_value("speed-preset");
            gst::glib::EnumValue::from_value(&v).map(|(_, ev)| ev.nick().to_string())
        };
        assert_eq!(nick(&enc).as_deref(), Some("ultrafast"));
        // None known, or no such property, or not an enum: nothing set, no panic.
        assert_eq!(set_enum_if_known(&enc, "speed-preset", &["p7"]), None);
        assert_eq!(nick(&enc).as_deref(), Some("ultrafast"));
        assert_eq!(set_enum_if_known(&enc, "no-such-property", &["x"]), None);
        assert_eq!(set_enum_if_known(&enc, "bitrate", &["x"]), None);
    }
}
