//! What the machine offers: NVIDIA's nvcodec elements register only where a driver is present,
//! so they are looked up at run time, never required. The choice is logged once at start.

use std::sync::OnceLock;

use gst::prelude::*;

use crate::config::Hardware;

/// Hardware codec elements found on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `nvh264dec` (NVDEC) is registered.
    pub nvdec_h264: bool,
    /// `nvh265dec` (NVDEC) is registered.
    pub nvdec_h265: bool,
    /// `nvh264enc` (NVENC) is registered.
    pub nvenc_h264: bool,
}

impl Capabilities {
    /// Whether any NVIDIA decoder is present.
    pub fn nvdec(&self) -> bool {
        self.nvdec_h264 || self.nvdec_h265
    }
}

/// Looks the elements up once (GStreamer must be initialised).
pub fn capabilities() -> Capabilities {
    static CAPS: OnceLock<Capabilities> = OnceLock::new();
    *CAPS.get_or_init(|| {
        let has = |name| gst::ElementFactory::find(name).is_some();
        let caps = Capabilities {
            nvdec_h264: has("nvh264dec"),
            nvdec_h265: has("nvh265dec"),
            nvenc_h264: has("nvh264enc"),
        };
        if caps.nvdec() {
            // decodebin picks decoders by rank: make sure NVDEC wins over libav wherever it
            // exists. Streams with `decoder.hardware = "off"` skip it explicitly.
            for name in ["nvh264dec", "nvh265dec"] {
                if let Some(f) = gst::ElementFactory::find(name) {
                    f.set_rank(gst::Rank::PRIMARY + 10);
                }
            }
        }
        tracing::info!(
            nvdec_h264 = caps.nvdec_h264,
            nvdec_h265 = caps.nvdec_h265,
            nvenc_h264 = caps.nvenc_h264,
            "hardware codecs: decode on {}, encode on {}",
            if caps.nvdec() {
                "NVDEC when the codec has one"
            } else {
                "CPU (libav)"
            },
            if caps.nvenc_h264 {
                "NVENC (nvh264enc)"
            } else {
                "CPU (x264)"
            },
        );
        caps
    })
}

/// Whether a decoder factory is one of NVIDIA's.
pub fn is_nvidia(factory: &gst::ElementFactory) -> bool {
    let name = factory.name();
    name.starts_with("nv") || name.starts_with("cuda")
}

/// Decides whether the hardware encoder is used, or says why the setting cannot be met.
pub fn use_hardware_encoder(setting: Hardware) -> Result<bool, String> {
    let available = capabilities().nvenc_h264;
    match setting {
        Hardware::Auto => Ok(available),
        Hardware::Off => Ok(false),
        Hardware::On if available => Ok(true),
        Hardware::On => Err(
            "encoder.hardware = \"on\" but NVIDIA's encoder (nvh264enc) is not available on this \
             machine (no NVIDIA driver, or a GPU without NVENC)"
                .into(),
        ),
    }
}

/// Checks that a decoder setting can be met on this machine.
pub fn check_decoder(setting: Hardware) -> Result<(), String> {
    if setting == Hardware::On && !capabilities().nvdec() {
        return Err(
            "decoder.hardware = \"on\" but no NVIDIA decoder (nvh264dec/nvh265dec) is available \
             on this machine"
                .into(),
        );
    }
    Ok(())
}
