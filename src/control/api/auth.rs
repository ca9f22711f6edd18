//! Who may do what, when an API token is set.
//!
//! - Changes always need `Authorization: Bearer <api token>`.
//! - Reads need it too unless `api_read_open`; health checks and the dashboard's static files
//!   are always open.
//! - Viewing URLs (`/streams/{id}/...`: snapshot, MJPEG, WebSocket, HLS, LL-HLS, WHEP) and event
//!   snapshots also take a viewer token, `?vt=`, for players that cannot send headers (`<img>`,
//!   native HLS, VLC): short-lived, scoped to one stream (or to all, `*`), signed with a key
//!   derived from the API token (HMAC-SHA256) so that it needs no storage and fails the moment
//!   it expires. The API token itself is never taken from a URL: URLs end up in logs, histories
//!   and `Referer` headers.
//! - An address whose authentications keep failing is refused for the rest of the minute (429).
//!
//! Ending a WebRTC session needs the token or that session's own unguessable URL (128 random
//! bits; the session listing does not show it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AppState;
use super::counters::{EDGE, count};
use super::error::ApiError;

/// The scope of a viewer token for every stream.
pub const ALL_STREAMS: &str = "*";

/// Issues and checks viewer tokens.
pub struct ViewTokens {
    key: [u8; 32],
    ttl: Duration,
}

impl ViewTokens {
    /// Tokens signed with a key derived from the API token (or a random one when there is
    /// none), valid for `ttl`.
    pub fn new(api_token: Option<&str>, ttl: Duration) -> Self {
        let key = match api_token {
            Some(t) => {
                let mut h = Sha256::new();
                h.update(b"framegate view token v1\0");
                h.update(t.as_bytes());
                h.finalize().into()
            }
            None => rand::random(),
        };
        Self { key, ttl }
    }

    /// How long a token stays valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self, scope: &str, expires: u64) -> Vec<u8> {
        // The key is 32 bytes: HMAC takes any length, so this cannot fail.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC key");
        m.update(b"view\0");
        m.update(scope.as_bytes());
        m.update(b"\0");
        m.update(expires.to_string().as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// A token for `scope` (a stream id or [`ALL_STREAMS`]) and its expiry (Unix seconds).
    pub fn issue(&self, scope: &str) -> (String, u64) {
        let expires = unix_now() + self.ttl.as_secs();
        let sig = URL_SAFE_NO_PAD.encode(self.mac(scope, expires));
        let scope_b64 = URL_SAFE_NO_PAD.encode(scope);
        (format!("v1.{scope_b64}.{expires}.{sig}"), expires)
    }

    /// Whether `token` is valid now for `stream` (`None`: any stream's pictures, for event
    /// snapshots, which only an all-streams token opens).
    pub fn check(&self, token: &str, stream: Option<&str>) -> bool {
        let mut parts = token.splitn(4, '.');
        let (Some("v1"), Some(scope), Some(expires), Some(sig)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Some(scope) = URL_SAFE_NO_PAD
            .decode(scope)
            .ok()
            .and_then(|s| String::from_utf8(s).ok())
        else {
            return false;
        };
        let Ok(expires) = expires.parse::<u64>() else {
            return false;
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        let in_scope = scope == ALL_STREAMS || stream.is_some_and(|s| s == scope);
        expires >= unix_now()
            && in_scope
            && crate::redact::same_secret(&sig, &self.mac(&scope, expires))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Failed authentications per address, in one-minute windows.
pub struct Failures {
    limit: u32,
    window: Mutex<(Instant, HashMap<IpAddr, u32>)>,
}

/// Most addresses remembered per window (a flood of addresses cannot grow the map further).
const MAX_ADDRESSES: usize = 100_000;

impl Failures {
    /// At most `limit` failures per address and minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            window: Mutex::new((Instant::now(), HashMap::new())),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<IpAddr, u32>) -> T) -> T {
        let mut w = crate::supervise::lock(&self.window);
        if w.0.elapsed() >= Duration::from_secs(60) {
            *w = (Instant::now(), HashMap::new());
        }
        f(&mut w.1)
    }

    /// Whether `ip` has failed too often this minute.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        self.with(|m| m.get(&ip).is_some_and(|n| *n >= self.limit))
    }

    /// Counts a failure of `ip`.
    pub fn fail(&self, ip: IpAddr) {
        count(&EDGE.auth_failed);
        self.with(|m| {
            if m.len() < MAX_ADDRESSES || m.contains_key(&ip) {
                *m.entry(ip).or_default() += 1;
            }
        });
    }
}

/// The middleware.
pub async fn require_token(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.token else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if !needs_token(req.method(), path, state.read_open) {
        return next.run(req).await;
    }
    let ip = peer.map(|p| p.0.0.ip());
    if let Some(ip) = ip
        && state.failures.blocked(ip)
    {
        count(&EDGE.auth_blocked);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentications",
            "this address failed to authenticate too often; try again in a minute",
        )
        .into_response();
    }
    if bearer_matches(&req, token) || viewer_token_matches(&state, &req) {
        return next.run(req).await;
    }
    if let Some(ip) = ip {
        state.failures.fail(ip);
    }
    ApiError::unauthorized().into_response()
}

fn needs_token(method: &Method, path: &str, read_open: bool) -> bool {
    if path == "/healthz"
        || path == "/readyz"
        || super::dashboard::PATHS.contains(&path)
        || method == Method::OPTIONS
    {
        return false;
    }
    // Ending a WebRTC session needs only its URL: the session id in it is the viewer's secret.
    if method == Method::DELETE && whep_session_path(path) {
        return false;
    }
    // Joining and leaving as a WebRTC viewer is watching, not changing anything.
    let read = method == Method::GET || method == Method::HEAD || whep_path(path);
    !(read && read_open)
}

/// `/streams/{id}/whep/{session}`.
fn whep_session_path(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(parts.as_slice(), ["streams", _, "whep", session] if !session.is_empty())
}

fn whep_path(path: &str) -> bool {
    path.starts_with("/streams/") && path.contains("/whep")
}

fn bearer_matches(req: &Request, token: &str) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .is_some_and(|given| crate::redact::same_secret(given.as_bytes(), token.as_bytes()))
}

/// What a viewer token may open: the viewing URLs of its stream (`GET`, WHEP offers and
/// session ends) and, for an all-streams token, event snapshots.
fn viewer_token_matches(state: &AppState, req: &Request) -> bool {
    let path = req.uri().path();
    let viewing = req.method() == Method::GET || whep_path(path);
    if !viewing {
        return false;
    }
    let stream = if let Some(rest) = path.strip_prefix("/streams/") {
        rest.split('/').next()
    } else if path.starts_with("/api/events/") && path.ends_with("/snapshot.jpg") {
        None
    } else {
        return false;
    };
    query_value(req, "vt").is_some_and(|vt| state.view_tokens.check(&vt, stream))
}

/// The value of query parameter `name`.
fn query_value(req: &Request, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_may_be_open_changes_never_are() {
        assert!(!needs_token(&Method::GET, "/api/streams", true));
        assert!(needs_token(&Method::GET, "/api/streams", false));
        assert!(needs_token(&Method::POST, "/api/streams", true));
        assert!(needs_token(&Method::DELETE, "/api/streams/x", true));
        assert!(!needs_token(&Method::GET, "/healthz", false));
        assert!(!needs_token(&Method::POST, "/streams/cam/whep", true));
        assert!(needs_token(&Method::POST, "/streams/cam/whep", false));
        assert!(!needs_token(&Method::OPTIONS, "/streams/cam/whep", false));
        assert!(!needs_token(
            &Method::DELETE,
            "/streams/cam/whep/0123abcd",
            false
        ));
        assert!(needs_token(&Method::DELETE, "/streams/cam/whep", false));
        assert!(needs_token(&Method::DELETE, "/api/streams/cam", false));
    }

    #[test]
    fn viewer_tokens_are_scoped_signed_and_expire() {
        let t = ViewTokens::new(Some("an api token of some length"), Duration::from_secs(60));
        let (cam, exp) = t.issue("cam1");
        assert!(exp > unix_now());
        assert!(t.check(&cam, Some("cam1")));
        assert!(!t.check(&cam, Some("cam2")));
        assert!(!t.check(&cam, None));
        let (all, _) = t.issue(ALL_STREAMS);
        assert!(t.check(&all, Some("cam2")));
        assert!(t.check(&all, None));
        // Another key (another API token) does not accept it.
        let other = ViewTokens::new(Some("another api token"), Duration::from_secs(60));
        assert!(!other.check(&cam, Some("cam1")));
        // Tampered scope or expiry.
        let parts: Vec<&str> = cam.split('.').collect();
        let widened = format!(
            "v1.{}.{}.{}",
            URL_SAFE_NO_PAD.encode("*"),
            parts[2],
            parts[3]
        );
        assert!(!t.check(&widened, Some("cam2")));
        let later = format!("v1.{}.{}.{}", parts[1], exp + 1000, parts[3]);
        assert!(!t.check(&later, Some("cam1")));
        // Expired.
        let expired = ViewTokens::new(Some("an api token of some length"), Duration::ZERO);
        let (old, e) = expired.issue("cam1");
        let stale = old.replace(&format!(".{e}."), &format!(".{}.", e - 5));
        assert!(!expired.check(&stale, Some("cam1")));
        for junk in ["", "v1", "v1.a.b.c", "v2.Y2Ft.1.x", "v1.%%%.1.x"] {
            assert!(!t.check(junk, Some("cam1")), "{junk}");
        }
    }

    #[test]
    fn failures_block_an_address_for_the_minute() {
        let f = Failures::new(3);
        let ip: IpAddr = "10.1.2.3".parse().expect("ip");
        let other: IpAddr = "10.1.2.4".parse().expect("ip");
        for _ in 0..3 {
            assert!(!f.blocked(ip));
            f.fail(ip);
        }
        assert!(f.blocked(ip));
        assert!(!f.blocked(other));
    }
}
