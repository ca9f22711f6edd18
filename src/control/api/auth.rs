//! Bearer-token authentication: changes always need the token (when one is set); reads need it
//! unless `api_read_open`. Health checks and the dashboard's static files are always open.
//! Browsers cannot put headers on WebSocket or `<img>` requests, so reads also accept the
//! token as a `token` query parameter.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The middleware.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token
        && needs_token(req.method(), req.uri().path(), state.read_open)
        && !bearer_matches(&req, token)
    {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

fn needs_token(method: &Method, path: &str, read_open: bool) -> bool {
    if path == "/healthz"
        || path == "/readyz"
        || super::dashboard::PATHS.contains(&path)
        || method == Method::OPTIONS
    {
        return false;
    }
    // Joining and leaving as a WebRTC viewer is watching, not changing anything.
    let whep = path.starts_with("/streams/") && path.contains("/whep");
    let read = method == Method::GET || method == Method::HEAD || whep;
    !(read && read_open)
}

fn bearer_matches(req: &Request, token: &str) -> bool {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Only reads take the token from the query: a link must never be able to change anything.
    let query = (req.method() == Method::GET)
        .then(|| req.uri().query())
        .flatten()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        });
    match (header, query) {
        (Some(given), _) => constant_time_eq(given.as_bytes(), token.as_bytes()),
        (None, Some(given)) => constant_time_eq(given.as_bytes(), token.as_bytes()),
        (None, None) => false,
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
