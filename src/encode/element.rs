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
        set_str_if_present(&enc, "rc-mode", "cbr");
        set_str_if_present(&enc, "preset", "low-latency-hp");
        return Ok((enc, EncoderKind::Nvenc));
    }
    let enc = crate::elements::make("x264enc")?;
    enc.set_property_from_str("tune", "zerolatency");
    enc.set_property_from_str("speed-preset", settings.preset.as_str());
    enc.set_property("bitrate", settings.bitrate_kbps);
    enc.set_property("key-int-max", settings.keyframe_interval);
    enc.set_property("bframes", 0u32);
    Ok((enc, EncoderKind::X264))
}

fn set_if_present<V: Into<gst::glib::Value>>(e: &gst::Element, name: &str, v: V) {
    if e.find_property(name).is_some() {
        e.set_property(name, v);
    }
}

fn set_str_if_present(e: &gst::Element, name: &str, v: &str) {
    if e.find_property(name).is_some() {
        e.set_property_from_str(name, v);
    }
}
