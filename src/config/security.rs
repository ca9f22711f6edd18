//! `[server]` settings that decide who may reach framegate and how much any one client may
//! take: allowed origins and host names, the folders API callers may read, viewer tokens,
//! caps and timeouts (`[server.limits]`), HTTPS (`[server.tls]`) and RTSP users
//! (`[server.rtsp_auth]`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds::within;

/// Caps on what clients can multiply, and the HTTP server's timeouts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most HTTP connections open at once; the next ones wait in the kernel's backlog until
    /// one closes.
    #[serde(default = "default_connections")]
    pub http_connections: u32,
    /// Seconds a client has to send a request's headers, and to finish a TLS handshake (slow
    /// clients are cut off). A keep-alive connection that sends no next request within it is
    /// closed too.
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_s: f64,
    /// Most JPEG encoders (distinct `width`/`quality` pairs) per stream.
    #[serde(default = "default_jpeg_per_stream")]
    pub jpeg_encoders_per_stream: u32,
    /// Most JPEG encoders in the whole process.
    #[serde(default = "default_jpeg_total")]
    pub jpeg_encoders_total: u32,
    /// Most MJPEG and WebSocket viewers per stream.
    #[serde(default = "default_viewers_per_stream")]
    pub viewers_per_stream: u32,
    /// Most MJPEG and WebSocket viewers in the whole process.
    #[serde(default = "default_viewers_total")]
    pub viewers_total: u32,
    /// Most WebRTC (WHEP) sessions per stream.
    #[serde(default = "default_whep_per_stream")]
    pub whep_sessions_per_stream: u32,
    /// Most WebRTC (WHEP) sessions in the whole process, including offers being answered.
    #[serde(default = "default_whep_total")]
    pub whep_sessions_total: u32,
    /// Most LL-HLS requests held at once (blocking playlist reloads and hinted parts).
    #[serde(default = "default_held")]
    pub held_requests: u32,
    /// Failed authentications from one address within a minute after which that address is
    /// refused (429) for the rest of the minute.
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_minute: u32,
    /// Most connections to framegate's RTSP server at once (each RTSP viewer holds one); one
    /// more is closed as soon as it connects.
    #[serde(default = "default_rtsp_clients")]
    pub rtsp_clients: u32,
    /// Seconds an RTSP connection may stay open without setting up a session: players do it
    /// within a second; a connection that sends nothing, or only asks and never plays, is
    /// closed after this (a 302 or 401 answer counts as asking).
    #[serde(default = "default_rtsp_setup_timeout")]
    pub rtsp_setup_timeout_s: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            http_connections: default_connections(),
            header_read_timeout_s: default_header_timeout(),
            jpeg_encoders_per_stream: default_jpeg_per_stream(),
            jpeg_encoders_total: default_jpeg_total(),
            viewers_per_stream: default_viewers_per_stream(),
            viewers_total: default_viewers_total(),
            whep_sessions_per_stream: default_whep_per_stream(),
            whep_sessions_total: default_whep_total(),
            held_requests: default_held(),
            auth_failures_per_minute: default_auth_failures(),
            rtsp_clients: default_rtsp_clients(),
            rtsp_setup_timeout_s: default_rtsp_setup_timeout(),
        }
    }
}

fn default_connections() -> u32 {
    1000
}
fn default_header_timeout() -> f64 {
    10.0
}
fn default_jpeg_per_stream() -> u32 {
    4
}
fn default_jpeg_total() -> u32 {
    64
}
fn default_viewers_per_stream() -> u32 {
    100
}
fn default_viewers_total() -> u32 {
    500
}
fn default_whep_per_stream() -> u32 {
    16
}
fn default_whep_total() -> u32 {
    64
}
fn default_held() -> u32 {
    256
}
fn default_auth_failures() -> u32 {
    20
}
fn default_rtsp_clients() -> u32 {
    512
}
fn default_rtsp_setup_timeout() -> f64 {
    10.0
}

impl LimitsConfig {
    /// Checks every cap and timeout against its range.
    pub fn validate(&self) -> Result<(), String> {
        let count = |field: &str, v: u32, max: u32| {
            within(
                &format!("server.limits.{field}"),
                f64::from(v),
                1.0,
                f64::from(max),
            )
        };
        count("http_connections", self.http_connections, 100_000)?;
        count(
            "jpeg_encoders_per_stream",
            self.jpeg_encoders_per_stream,
            64,
        )?;
        count("jpeg_encoders_total", self.jpeg_encoders_total, 4096)?;
        count("viewers_per_stream", self.viewers_per_stream, 10_000)?;
        count("viewers_total", self.viewers_total, 100_000)?;
        count(
            "whep_sessions_per_stream",
            self.whep_sessions_per_stream,
            1000,
        )?;
        count("whep_sessions_total", self.whep_sessions_total, 10_000)?;
        count("held_requests", self.held_requests, 100_000)?;
        count(
            "auth_failures_per_minute",
            self.auth_failures_per_minute,
            100_000,
        )?;
        count("rtsp_clients", self.rtsp_clients, 100_000)?;
        within(
            "server.limits.header_read_timeout_s",
            self.header_read_timeout_s,
            0.1,
            600.0,
        )?;
        within(
            "server.limits.rtsp_setup_timeout_s",
            self.rtsp_setup_timeout_s,
            0.5,
            600.0,
        )?;
        Ok(())
    }
}

/// HTTPS for the API, the dashboard and the browser outputs (`[server.tls]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM (relative to the config file).
    pub cert: PathBuf,
    /// The private key, PEM: PKCS#8, PKCS#1 or SEC1 (relative to the config file).
    pub key: PathBuf,
}

/// Users of framegate's own RTSP server (`[server.rtsp_auth]`): with any set, every RTSP
/// client must log in (Basic authentication).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RtspAuthConfig {
    /// `user:password` pairs, for example `["viewer:a long password"]`. The passwords are never
    /// shown.
    #[serde(default)]
    pub users: Vec<String>,
}

impl RtspAuthConfig {
    /// The `(user, password)` pairs.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.users
            .iter()
            .filter_map(|u| u.split_once(':'))
            .collect()
    }

    /// Checks each pair.
    pub fn validate(&self) -> Result<(), String> {
        for (i, u) in self.users.iter().enumerate() {
            match u.split_once(':') {
                Some((user, pass)) if !user.is_empty() && pass.len() >= 8 && u.len() <= 512 => {
                    if user.contains(|c: char| c.is_control()) {
                        return Err(format!(
                            "server.rtsp_auth.users[{i}]: the user name has control characters"
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "server.rtsp_auth.users[{i}]: expected `user:password` with a password of at least 8 characters"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks an origin as written in `server.allowed_origins`: `scheme://host[:port]`, nothing
/// more.
pub fn origin_error(origin: &str) -> Option<String> {
    let ok = url::Url::parse(origin).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.path() == "/"
            && u.query().is_none()
            && u.username().is_empty()
            && !origin.ends_with('/')
    });
    (!ok).then(|| {
        format!("server.allowed_origins: `{origin}` is not an origin (`https://host[:port]`)")
    })
}

/// Checks the folders of `server.media_dirs`: absolute, and without `..` parts (a source path
/// with `..` in it is refused, so such a folder would silently allow nothing).
pub fn media_dirs_error(dirs: &[PathBuf]) -> Option<String> {
    dirs.iter().find_map(|d| {
        if !d.is_absolute() {
            Some(format!(
                "server.media_dirs: `{}` is not an absolute path",
                d.display()
            ))
        } else if d
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            Some(format!(
                "server.media_dirs: `{}` has a `..` part (write the folder it leads to)",
                d.display()
            ))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_port() {
        assert!(origin_error("https://wall.example").is_none());
        assert!(origin_error("http://10.0.0.5:8080").is_none());
        assert!(origin_error("https://wall.example/").is_some());
        assert!(origin_error("https://wall.example/x").is_some());
        assert!(origin_error("*").is_some());
        assert!(origin_error("file:///x").is_some());
    }

    #[test]
    fn media_dirs_are_absolute_and_lead_nowhere_else() {
        let dirs = |d: &str| vec![PathBuf::from(d)];
        assert!(media_dirs_error(&dirs("/srv/media")).is_none());
        let relative = media_dirs_error(&dirs("media")).unwrap();
        assert!(
            relative.contains("`media` is not an absolute path"),
            "{relative}"
        );
        let up = media_dirs_error(&dirs("/srv/x/../media")).unwrap();
        assert!(up.contains("`/srv/x/../media` has a `..` part"), "{up}");
    }

    #[test]
    fn rtsp_users_need_real_passwords() {
        let ok = RtspAuthConfig {
            users: vec!["viewer:longenough".into()],
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.pairs(), vec![("viewer", "longenough")]);
        for bad in ["viewer", "viewer:short", ":longenough"] {
            let c = RtspAuthConfig {
                users: vec![bad.into()],
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert!(LimitsConfig::default().validate().is_ok());
        let c = LimitsConfig {
            header_read_timeout_s: 1e300,
            ..LimitsConfig::default()
        };
        assert!(c.validate().is_err());
        let c = LimitsConfig {
            viewers_total: 0,
            ..LimitsConfig::default()
        };
        assert!(c.validate().is_err());
        for (c, field) in [
            (
                LimitsConfig {
                    rtsp_clients: 0,
                    ..LimitsConfig::default()
                },
                "server.limits.rtsp_clients",
            ),
            (
                LimitsConfig {
                    rtsp_setup_timeout_s: f64::NAN,
                    ..LimitsConfig::default()
                },
                "server.limits.rtsp_setup_timeout_s",
            ),
            (
                LimitsConfig {
                    rtsp_setup_timeout_s: 0.0,
                    ..LimitsConfig::default()
                },
                "server.limits.rtsp_setup_timeout_s",
            ),
        ] {
            let e = c.validate().expect_err(field);
            assert!(e.contains(field), "{e}");
        }
    }
}
