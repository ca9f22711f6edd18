//! The audio codecs framegate carries, what each output can take, and the elements that parse,
//! payload and make each one.

/// An audio codec as it travels between framegate's pipelines (parsed, one frame per buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    /// AAC (MPEG-4 or MPEG-2), raw frames with their `codec_data`.
    Aac,
    /// MPEG-1 audio layer III.
    Mp3,
    /// Opus.
    Opus,
    /// G.711 A-law.
    Pcma,
    /// G.711 µ-law.
    Pcmu,
    /// Uncompressed 16-bit big-endian PCM (RTP's L16; raw audio from any source becomes this).
    L16,
}

impl AudioCodec {
    /// The codec of parsed audio caps; `None` for audio framegate does not carry as it is.
    pub fn from_caps(caps: &gst::CapsRef) -> Option<Self> {
        let s = caps.structure(0)?;
        match s.name().as_str() {
            "audio/mpeg" => match s.get::<i32>("mpegversion").ok()? {
                2 | 4 => Some(Self::Aac),
                1 if s.get::<i32>("layer").ok() == Some(3) => Some(Self::Mp3),
                _ => None,
            },
            "audio/x-opus" => Some(Self::Opus),
            "audio/x-alaw" => Some(Self::Pcma),
            "audio/x-mulaw" => Some(Self::Pcmu),
            "audio/x-raw" => Some(Self::L16),
            _ => None,
        }
    }

    /// Its name in status, metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aac => "aac",
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
            Self::Pcma => "pcma",
            Self::Pcmu => "pcmu",
            Self::L16 => "l16",
        }
    }

    /// The RTP payloader of the codec (framegate's RTSP server).
    pub fn payloader(self) -> &'static str {
        match self {
            Self::Aac => "rtpmp4gpay",
            Self::Mp3 => "rtpmpapay",
            Self::Opus => "rtpopuspay",
            Self::Pcma => "rtppcmapay",
            Self::Pcmu => "rtppcmupay",
            Self::L16 => "rtpL16pay",
        }
    }

    /// The parser that frames it and completes its caps, where one is needed.
    pub fn parser(self) -> Option<&'static str> {
        match self {
            Self::Aac => Some("aacparse"),
            Self::Mp3 => Some("mpegaudioparse"),
            Self::Opus => Some("opusparse"),
            Self::Pcma | Self::Pcmu | Self::L16 => None,
        }
    }

    /// The encoder that makes it from raw audio (transcoding, and the silence of outages).
    pub fn encoder(self) -> Option<&'static str> {
        match self {
            Self::Aac => Some("avenc_aac"),
            Self::Mp3 => Some("lamemp3enc"),
            Self::Opus => Some("opusenc"),
            Self::Pcma => Some("alawenc"),
            Self::Pcmu => Some("mulawenc"),
            Self::L16 => None,
        }
    }
}

/// The sample rates an Opus encoder takes.
const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// The rate a transcode to `target` runs at, from a source at `rate`.
pub fn target_rate(target: AudioCodec, rate: u32) -> u32 {
    match target {
        AudioCodec::Opus => 48_000,
        // 44.1 or 48 kHz, what platforms take: at a camera's 8 kHz an AAC frame would last
        // 128 ms, and the encoder's delay several of them.
        AudioCodec::Aac if rate == 44_100 => rate,
        AudioCodec::Aac => 48_000,
        AudioCodec::Pcma | AudioCodec::Pcmu => 8_000,
        AudioCodec::Mp3 | AudioCodec::L16 if rate == 0 => 48_000,
        AudioCodec::Mp3 | AudioCodec::L16 => rate,
    }
}

/// The encoder's priming, nanoseconds: its first frame holds this much silence before the
/// first sample in, and its times do not say so (avenc_aac: 1024 samples).
pub fn encoder_priming_ns(target: AudioCodec, rate: u32) -> u64 {
    match target {
        AudioCodec::Aac if rate > 0 => 1024 * 1_000_000_000 / u64::from(rate),
        _ => 0,
    }
}

/// Whether an Opus encoder can run at `rate` without resampling.
pub fn opus_rate(rate: u32) -> bool {
    OPUS_RATES.contains(&rate)
}

/// The format of an audio track: its codec, sample rate and channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct AudioFormat {
    /// The codec.
    pub codec: AudioCodec,
    /// Samples per second.
    pub rate: u32,
    /// Channels.
    pub channels: u32,
}

impl AudioFormat {
    /// The format of parsed audio caps.
    pub fn from_caps(caps: &gst::CapsRef) -> Option<Self> {
        let codec = AudioCodec::from_caps(caps)?;
        let s = caps.structure(0)?;
        let rate = s.get::<i32>("rate").ok().filter(|r| *r > 0)? as u32;
        let channels = s
            .get::<i32>("channels")
            .ok()
            .filter(|c| *c > 0)
            .unwrap_or(1) as u32;
        Some(Self {
            codec,
            rate,
            channels,
        })
    }

    /// `aac 48000 Hz 2 ch`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} Hz {} ch",
            self.codec.name(),
            self.rate,
            self.channels
        )
    }
}

/// The caps at which decodebin stops: raw video (decoded), and audio as framegate carries it
/// (encoded, or raw). Audio in any other codec (MP2, AC-3, ...) is decoded to raw, and so
/// carried as L16.
pub fn decodebin_stop_caps() -> gst::Caps {
    "video/x-raw(ANY); audio/x-raw(ANY); audio/mpeg, mpegversion=(int){2,4}; \
     audio/mpeg, mpegversion=(int)1, layer=(int)3; audio/x-opus; audio/x-alaw; audio/x-mulaw"
        .parse()
        .unwrap_or_else(|_| gst::Caps::new_any())
}

/// Whether an RTSP stream's encoding (`a=rtpmap` name) is audio framegate can depayload and
/// carry. A camera's audio in another codec is not set up (one log line says so).
pub fn rtp_encoding_carried(encoding: &str) -> bool {
    matches!(
        encoding.to_ascii_uppercase().as_str(),
        "MPEG4-GENERIC" | "MP4A-LATM" | "PCMA" | "PCMU" | "OPUS" | "L16" | "MPA"
    )
}

/// Whether caps are audio.
pub fn is_audio(caps: &gst::CapsRef) -> bool {
    caps.structure(0)
        .is_some_and(|s| s.name().starts_with("audio/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(s: &str) -> gst::Caps {
        gst::init().expect("gstreamer");
        s.parse().expect("caps")
    }

    #[test]
    fn codecs_are_read_from_parsed_caps() {
        let aac = caps("audio/mpeg, mpegversion=(int)4, rate=(int)48000, channels=(int)2");
        assert_eq!(
            AudioFormat::from_caps(&aac),
            Some(AudioFormat {
                codec: AudioCodec::Aac,
                rate: 48000,
                channels: 2
            })
        );
        let mp3 = caps("audio/mpeg, mpegversion=(int)1, layer=(int)3, rate=(int)44100");
        assert_eq!(AudioCodec::from_caps(&mp3), Some(AudioCodec::Mp3));
        // MPEG-1 layer II is not carried as it is (it is decoded to raw upstream).
        let mp2 = caps("audio/mpeg, mpegversion=(int)1, layer=(int)2, rate=(int)44100");
        assert_eq!(AudioCodec::from_caps(&mp2), None);
        let alaw = caps("audio/x-alaw, rate=(int)8000, channels=(int)1");
        assert_eq!(
            AudioFormat::from_caps(&alaw).map(|f| f.describe()),
            Some("pcma 8000 Hz 1 ch".to_string())
        );
        assert_eq!(AudioCodec::from_caps(&caps("video/x-h264")), None);
        // No rate: no format (nothing could be made of it downstream).
        assert_eq!(AudioFormat::from_caps(&caps("audio/x-opus")), None);
    }

    #[test]
    fn transcode_rates_are_ones_the_encoders_take() {
        gst::init().expect("gstreamer");
        assert_eq!(target_rate(AudioCodec::Opus, 44_100), 48_000);
        assert_eq!(target_rate(AudioCodec::Aac, 8_000), 48_000);
        assert_eq!(target_rate(AudioCodec::Aac, 44_100), 44_100);
        assert_eq!(target_rate(AudioCodec::Aac, 96_000), 48_000);
        assert!(opus_rate(16_000) && !opus_rate(44_100));
        assert!(rtp_encoding_carried("mpeg4-generic") && !rtp_encoding_carried("G726-32"));
        assert!(decodebin_stop_caps().can_intersect(&caps("audio/x-alaw, rate=(int)8000")));
    }
}
