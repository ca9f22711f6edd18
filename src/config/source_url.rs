//! Source URLs: the wire string is turned into a typed [`SourceUrl`] once, when the config is
//! read, so the rest of framegate never parses URLs again.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

/// Where a stream's video comes from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourceUrl {
    /// An RTSP camera or server (`rtsp://` or `rtsps://`).
    Rtsp(Url),
    /// An RTMP server (`rtmp://` or `rtmps://`), e.g. nginx-rtmp fed by OBS.
    Rtmp(Url),
    /// A local media file, played in real time and looped.
    File(PathBuf),
    /// A GStreamer test pattern.
    Test(TestPattern),
}

/// A generated test pattern (`test://ball?width=1280&height=720&fps=25&speed=0`).
#[derive(Debug, Clone, PartialEq)]
pub struct TestPattern {
    /// The `videotestsrc` pattern nick (`ball`, `smpte`, ...).
    pub pattern: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Horizontal scroll speed in pixels per frame (makes static patterns move).
    pub speed: i32,
}

/// The `videotestsrc` patterns framegate accepts.
const PATTERNS: &[&str] = &[
    "smpte",
    "snow",
    "black",
    "white",
    "red",
    "green",
    "blue",
    "checkers-1",
    "checkers-2",
    "checkers-4",
    "checkers-8",
    "circular",
    "blink",
    "smpte75",
    "zone-plate",
    "gamut",
    "chroma-zone-plate",
    "ball",
    "smpte100",
    "bar",
    "pinwheel",
    "spokes",
    "gradient",
    "colors",
];

impl SourceUrl {
    /// Parses a source URL; the error says what is wrong and what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = Url::parse(s).map_err(|e| format!("`{}` is not a URL: {e}", mask(s)))?;
        match url.scheme() {
            "rtsp" | "rtsps" => {
                require_host(&url)?;
                Ok(Self::Rtsp(url))
            }
            "rtmp" | "rtmps" => {
                require_host(&url)?;
                Ok(Self::Rtmp(url))
            }
            "file" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(format!(
                        "`{s}`: a file URL needs an absolute path, `file:///path/to/clip.mp4`"
                    ));
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| format!("`{s}` is not a valid file path"))?;
                Ok(Self::File(path))
            }
            "test" => Ok(Self::Test(TestPattern::from_url(&url)?)),
            other => Err(format!(
                "unsupported scheme `{other}` in `{}`: use rtsp://, rtsps://, rtmp://, rtmps://, \
                 file:/// or test://",
                mask(s)
            )),
        }
    }

    /// The URL with any password replaced by `***`, for logs and status.
    pub fn masked(&self) -> String {
        match self {
            Self::Rtsp(u) | Self::Rtmp(u) => masked_url(u),
            Self::File(p) => format!("file://{}", p.display()),
            Self::Test(t) => t.to_string(),
        }
    }

    /// The kind of source, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rtsp(_) => "rtsp",
            Self::Rtmp(_) => "rtmp",
            Self::File(_) => "file",
            Self::Test(_) => "test",
        }
    }
}

fn require_host(url: &Url) -> Result<(), String> {
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("`{}` has no host", masked_url(url))),
    }
}

/// A URL without its secrets (password, RTMP stream key, secret query values): see
/// [`crate::redact::url`].
pub fn masked_url(url: &Url) -> String {
    crate::redact::url_text(url)
}

/// Masks the secrets of a string that may not parse as a URL.
fn mask(s: &str) -> String {
    crate::redact::text(s).into_owned()
}

impl TestPattern {
    fn from_url(url: &Url) -> Result<Self, String> {
        let pattern = url.host_str().unwrap_or_default().to_string();
        if !PATTERNS.contains(&pattern.as_str()) {
            return Err(format!(
                "unknown test pattern `{pattern}`: use one of {}",
                PATTERNS.join(", ")
            ));
        }
        let mut t = Self {
            pattern,
            width: 1280,
            height: 720,
            fps: 25,
            speed: 0,
        };
        for (k, v) in url.query_pairs() {
            let num = |max: u32| -> Result<u32, String> {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        format!("test source: `{k}={v}` must be a number from 1 to {max}")
                    })
            };
            match k.as_ref() {
                "width" => t.width = num(7680)?,
                "height" => t.height = num(4320)?,
                "fps" => t.fps = num(240)?,
                "speed" => {
                    t.speed = v
                        .parse()
                        .map_err(|_| format!("test source: `speed={v}` must be an integer"))?
                }
                other => {
                    return Err(format!(
                        "test source: unknown parameter `{other}` (use width, height, fps, speed)"
                    ));
                }
            }
        }
        if !t.width.is_multiple_of(2) || !t.height.is_multiple_of(2) {
            return Err("test source: width and height must be even".into());
        }
        Ok(t)
    }
}

impl fmt::Display for TestPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "test://{}?width={}&height={}&fps={}",
            self.pattern, self.width, self.height, self.fps
        )?;
        if self.speed != 0 {
            write!(f, "&speed={}", self.speed)?;
        }
        Ok(())
    }
}

impl TryFrom<String> for SourceUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SourceUrl> for String {
    fn from(s: SourceUrl) -> Self {
        match s {
            SourceUrl::Rtsp(u) | SourceUrl::Rtmp(u) => u.to_string(),
            SourceUrl::File(p) => format!("file://{}", p.display()),
            SourceUrl::Test(t) => t.to_string(),
        }
    }
}

impl fmt::Display for SourceUrl {
    /// Always masked: a source's password never reaches a log through `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        assert!(matches!(
            SourceUrl::parse("rtsp://cam.local:554/stream1"),
            Ok(SourceUrl::Rtsp(_))
        ));
        assert!(matches!(
            SourceUrl::parse("rtmp://127.0.0.1/live/cam0"),
            Ok(SourceUrl::Rtmp(_))
        ));
        assert_eq!(
            SourceUrl::parse("file:///tmp/a.mp4"),
            Ok(SourceUrl::File("/tmp/a.mp4".into()))
        );
        let SourceUrl::Test(t) =
            SourceUrl::parse("test://ball?width=640&height=360&fps=30").expect("test url")
        else {
            panic!("not a test source")
        };
        assert_eq!(
            (t.width, t.height, t.fps, t.pattern.as_str()),
            (640, 360, 30, "ball")
        );
    }

    #[test]
    fn rejects_bad_sources_with_a_reason() {
        let e = SourceUrl::parse("http://x/y").unwrap_err();
        assert!(e.contains("unsupported scheme `http`"), "{e}");
        let e = SourceUrl::parse("test://nope").unwrap_err();
        assert!(e.contains("unknown test pattern `nope`"), "{e}");
        let e = SourceUrl::parse("test://ball?width=0").unwrap_err();
        assert!(e.contains("width=0"), "{e}");
        let e = SourceUrl::parse("file://host/a.mp4").unwrap_err();
        assert!(e.contains("absolute path"), "{e}");
        assert!(SourceUrl::parse("not a url").is_err());
    }

    #[test]
    fn passwords_never_show() {
        let s = SourceUrl::parse("rtsp://admin:hunter2@10.0.0.5/live").expect("valid");
        assert_eq!(s.to_string(), "rtsp://admin:***@10.0.0.5/live");
        let e = SourceUrl::parse("ftp://admin:hunter2@10.0.0.5/live").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(mask("bad://u:p@h"), "bad://u:***@h");
    }
}
