//! The browser-safety layer in front of every route: who is asking (the `Host` a browser was
//! pointed at, the `Origin` of the page that sends the request), in what form (the declared
//! content types), and the headers every answer carries (CORS for allowed origins only,
//! `nosniff`, no referrer).
//!
//! - A loopback-bound framegate answers only to loopback names and addresses, its own address
//!   and `server.allowed_hosts` (421 otherwise): a page whose DNS name was re-pointed at
//!   127.0.0.1 (DNS rebinding) reaches nothing.
//! - A request that changes something (any method but GET, HEAD, OPTIONS) and every WebSocket
//!   handshake must come from framegate's own origin, from `server.allowed_origins`, or from
//!   no browser page at all (no `Origin`); others get 403. `Origin: null` is refused.
//! - `POST`/`PUT` bodies must be declared as what the route takes (`application/json`;
//!   `application/sdp` for WHEP), else 415: a cross-site form cannot forge a JSON request. That
//!   check is the [`Declared`] extractor of those handlers, so that it comes after
//!   authentication (401 first) and routing (405 for a method a path does not take).
//! - Preflights (`OPTIONS`) are answered here: 204 with CORS headers for an allowed origin,
//!   403 for any other.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::counters::{EDGE, count};
use super::error::ApiError;

/// Who may reach the API, built once from `[server]` and the address it listens on.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Enforce the `Host` check (loopback binding, or `allowed_hosts` configured).
    check_host: bool,
    /// The listening address, accepted as a `Host`.
    own_ip: Option<IpAddr>,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    private_network: bool,
    /// The cluster this node belongs to: the pages of the other nodes (their dashboards) are
    /// allowed origins, so that a wall served by one node plays the cameras of all.
    cluster: Option<Arc<crate::cluster::view::ClusterView>>,
}

impl Policy {
    /// The policy of `server`, listening on `http`.
    pub fn new(server: &crate::config::ServerConfig, http: std::net::SocketAddr) -> Self {
        Self {
            check_host: http.ip().is_loopback() || !server.allowed_hosts.is_empty(),
            own_ip: Some(http.ip()),
            allowed_hosts: server
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            allowed_origins: server
                .allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            private_network: server.private_network_access,
            cluster: None,
        }
    }

    /// The same policy, allowing the origins of `cluster`'s other nodes.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::view::ClusterView>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Whether `origin` (lowercase) is the origin of another node of the cluster.
    fn a_peer(&self, origin: &str) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.peer_origins().iter().any(|o| o == origin))
    }

    /// Whether a `Host` header value (`name[:port]`) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        if !self.check_host {
            return true;
        }
        let name = host_name(host).to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            return ip.is_loopback() || Some(ip) == self.own_ip;
        }
        self.allowed_hosts.contains(&name)
    }

    /// Whether `origin` (an `Origin` header) is framegate's own (its authority is the `Host`
    /// the request was sent to) or an allowed one.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.allowed_origins.contains(&origin) || self.a_peer(&origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        match (authority, host) {
            (Some(a), Some(h)) => a == h.to_ascii_lowercase(),
            _ => false,
        }
    }

    /// Whether a cross-origin page may read answers (CORS) from `origin`.
    fn cors_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.allowed_origins.contains(&origin) || self.a_peer(&origin)
    }
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(n, _)| &n[1..]);
    }
    match host.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    }
}

fn text(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The content type a `POST`/`PUT` to `path` must declare, and whether it must have a body
/// (also what the API document says of the route's request body).
pub fn declared(method: &Method, path: &str) -> Option<(&'static str, bool)> {
    if *method != Method::POST && *method != Method::PUT {
        return None;
    }
    if path.starts_with("/streams/") && path.ends_with("/whep") {
        return Some(("application/sdp", true));
    }
    let takes_body = *method == Method::PUT || path == "/api/streams";
    Some(("application/json", takes_body))
}

/// The request declares the content type its route takes ([`declared`]); 415 otherwise.
pub struct Declared;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Declared {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Response> {
        let Some((want, needs_body)) = declared(&parts.method, parts.uri.path()) else {
            return Ok(Self);
        };
        let given = text(&parts.headers, header::CONTENT_TYPE).map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let ok = match &given {
            Some(t) => t == want,
            None => !needs_body,
        };
        if ok {
            return Ok(Self);
        }
        count(&EDGE.content_type_refused);
        Err(refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
            format!("send this request with `Content-Type: {want}`"),
        ))
    }
}

fn refused(status: StatusCode, error: &str, detail: String) -> Response {
    ApiError::new(status, error, detail).into_response()
}

/// The middleware.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let policy = &state.policy;
    let headers = req.headers();
    let host = text(headers, header::HOST);
    if let Some(h) = host
        && !policy.host_allowed(h)
    {
        count(&EDGE.host_refused);
        return refused(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown host",
            format!(
                "this server does not answer to `{}`; add it to server.allowed_hosts",
                crate::redact::text(h)
            ),
        );
    }
    let origin = text(headers, header::ORIGIN).map(str::to_string);
    let method = req.method().clone();
    let websocket =
        text(headers, header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if method == Method::OPTIONS {
        return preflight(policy, origin.as_deref(), headers);
    }
    let changes = !(method == Method::GET || method == Method::HEAD);
    if let Some(o) = &origin
        && (changes || websocket)
        && !policy.origin_allowed(o, host)
    {
        count(&EDGE.origin_refused);
        return refused(
            StatusCode::FORBIDDEN,
            "origin not allowed",
            format!(
                "requests from pages on `{}` may not do this; add the origin to server.allowed_origins",
                crate::redact::text(o)
            ),
        );
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(o) = &origin
        && policy.cors_allowed(o)
    {
        cors_headers(h, o);
    }
    r
}

fn cors_headers(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, X-Frame-Seq, X-Capture-Time"),
    );
}

/// `OPTIONS`: a CORS preflight, answered for allowed origins only.
fn preflight(policy: &Policy, origin: Option<&str>, headers: &HeaderMap) -> Response {
    let Some(origin) = origin.filter(|o| policy.cors_allowed(o)) else {
        count(&EDGE.origin_refused);
        return refused(
            StatusCode::FORBIDDEN,
            "origin not allowed",
            "cross-origin requests are answered for server.allowed_origins only".into(),
        );
    };
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    cors_headers(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    let pna = text(
        headers,
        header::HeaderName::from_static("access-control-request-private-network"),
    )
    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if pna && policy.private_network {
        h.insert(
            header::HeaderName::from_static("access-control-allow-private-network"),
            HeaderValue::from_static("true"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Policy {
        let server = crate::config::ServerConfig {
            allowed_origins: vec!["https://wall.example".into()],
            ..Default::default()
        };
        Policy::new(&server, "127.0.0.1:8080".parse().expect("address"))
    }

    #[test]
    fn a_loopback_server_answers_loopback_names_only() {
        let p = loopback();
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "localhost",
            "[::1]:8080",
            "127.0.0.5",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
        let lan = crate::config::ServerConfig::default();
        let open = Policy::new(&lan, "0.0.0.0:8080".parse().expect("address"));
        assert!(open.host_allowed("cams.lan:8080"));
    }

    #[test]
    fn origins_are_the_servers_own_or_allowed() {
        let p = loopback();
        assert!(p.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(p.origin_allowed("https://wall.example", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("https://evil.example", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        assert!(p.cors_allowed("https://wall.example"));
        assert!(!p.cors_allowed("http://127.0.0.1:8080"));
    }

    #[test]
    fn bodies_must_be_declared() {
        assert_eq!(
            declared(&Method::POST, "/api/streams"),
            Some(("application/json", true))
        );
        assert_eq!(
            declared(&Method::POST, "/api/streams/a/stop"),
            Some(("application/json", false))
        );
        assert_eq!(
            declared(&Method::POST, "/streams/a/whep"),
            Some(("application/sdp", true))
        );
        assert_eq!(declared(&Method::GET, "/api/streams"), None);
        assert_eq!(declared(&Method::DELETE, "/api/streams/a"), None);
    }
}
