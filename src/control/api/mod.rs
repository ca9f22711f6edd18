//! The REST API (axum): streams, reload, OpenAPI document, metrics and health checks.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/streams`, `GET /api/streams/{id}` | config and live status |
//! | `POST /api/streams` | add a stream |
//! | `PUT /api/streams/{id}` | replace a stream (restarted only if it changed) |
//! | `DELETE /api/streams/{id}` | stop and remove |
//! | `POST /api/streams/{id}/start`, `.../stop` | start or stop (kept across restarts) |
//! | `GET /api/streams/{id}/detections` | objects present now, detection events, detectors |
//! | `GET /api/streams/{id}/tracks`, `.../counts` | tracked objects; line and zone counts |
//! | `GET /api/models` | the shared detection models and their counters |
//! | `PUT /api/streams/{id}/watermark` | change the ID the stream's watermark embeds |
//! | `GET /api/events`, `GET /api/events/{id}`, `.../snapshot.jpg` | stored events |
//! | `GET /api/store` | the event store and the alert outbox |
//! | `GET /api/streams/{id}/viewers` | who watches a stream now |
//! | `POST /api/reload` | re-read the config file |
//! | `GET /api/openapi.json` | this API, described |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /streams/{id}/snapshot.jpg`, `.../mjpeg`, `.../ws` | pictures for browsers |
//! | `GET /streams/{id}/hls/index.m3u8` and segments | HLS from the stream's H.264 |
//! | `GET /streams/{id}/llhls/index.m3u8`, `init.mp4`, segments and parts | low-latency HLS (CMAF) |
//! | `POST /streams/{id}/whep`, `DELETE .../whep/{session}` | WebRTC viewers (WHEP) |
//! | `GET /api/streams/{id}/whep` | a stream's WebRTC sessions |
//! | `GET /healthz`, `GET /readyz` | process up; every enabled stream live |
//! | `GET /` | the dashboard (static files built in; not part of the API document) |

mod analytics;
mod auth;
mod boxes;
mod cluster;
pub mod counters;
mod dashboard;
mod error;
mod events;
mod guard;
mod llhls;
mod openapi;
mod params;
mod routes;
mod serve;
mod streams;
mod tokens;
mod viewers;
mod webrtc;

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, delete, get, post, put};

use crate::control::status::StreamStatus;
use crate::control::{Manager, ReloadReport};

pub use error::{ApiError, ErrorBody};
use openapi::{Doc, Op, schema};
pub use serve::{ServeOptions, serve, tls_acceptor};

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The stream manager.
    pub manager: Arc<Manager>,
    /// The API token, if one is required.
    pub token: Option<String>,
    /// Whether reads are open without the token.
    pub read_open: bool,
    /// Viewer sessions of the browser outputs.
    pub sessions: Arc<crate::control::sessions::Sessions>,
    /// Who may reach the API from where ([`guard`]).
    pub policy: Arc<guard::Policy>,
    /// Viewer tokens (`?vt=`).
    pub view_tokens: Arc<auth::ViewTokens>,
    /// Failed authentications per address.
    pub failures: Arc<auth::Failures>,
    /// Caps on clients.
    pub limits: Arc<crate::config::LimitsConfig>,
    /// Places for LL-HLS requests that wait.
    pub held: Arc<tokio::sync::Semaphore>,
    /// The cluster this node belongs to, as it last read it (`[cluster]`).
    pub cluster: Option<Arc<crate::cluster::view::ClusterView>>,
    openapi: Arc<serde_json::Value>,
}

/// Routes and their documentation, registered together.
struct Api {
    router: Router<AppState>,
    doc: Doc,
}

impl Api {
    fn route<H, T>(mut self, method: &str, path: &str, handler: H, op: Op) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let m: MethodRouter<AppState> = match method {
            "get" => get(handler),
            "post" => post(handler),
            "put" => put(handler),
            "delete" => delete(handler),
            other => unreachable!("method {other} is not used by the API"),
        };
        self.router = self.router.route(path, m);
        self.doc.add(method, path, &op);
        self
    }
}

const STREAM_ERRORS: &[u16] = &[404];
const VIEW_QUERY: &[(&str, &str, &str)] = &[
    (
        "width",
        "integer",
        "Picture width in pixels (16 to 7680, never more than the stream's: pictures are not scaled up); the height keeps the aspect ratio. Default: the stream's.",
    ),
    (
        "fps",
        "number",
        "Most pictures per second this viewer gets, 0.1 to 120. Default: every frame it can take.",
    ),
    ("quality", "integer", "JPEG quality, 1 to 100. Default 75."),
    (
        "viewer",
        "string",
        "A name for this viewer (1 to 128 characters), recorded with the session.",
    ),
    (
        "vt",
        "string",
        "A viewer token from `/api/streams/{id}/view-token`, for players that cannot send the API token in a header.",
    ),
];

fn api() -> Api {
    let api = Api {
        router: Router::new(),
        doc: Doc::default(),
    };
    let areas: [fn(Api) -> Api; 5] = [
        routes::streams,
        routes::service,
        routes::viewing,
        routes::analytics,
        routes::records,
    ];
    areas.into_iter().fold(api, |api, add| add(api))
}

/// The OpenAPI document of the API.
pub fn openapi_document() -> serde_json::Value {
    api().doc.finish()
}

/// The application: routes, auth, state. `http` is the address it is served on.
pub fn router(
    manager: Arc<Manager>,
    server: &crate::config::ServerConfig,
    token: Option<String>,
    http: std::net::SocketAddr,
    cluster: Option<Arc<crate::cluster::view::ClusterView>>,
) -> Router {
    let Api { router, doc } = api();
    let view_tokens = auth::ViewTokens::new(
        token.as_deref(),
        std::time::Duration::from_secs_f64(server.view_token_ttl_s),
    );
    let state = AppState {
        manager,
        token,
        read_open: server.api_read_open,
        sessions: Arc::new(crate::control::sessions::Sessions::with_limits(
            server.limits.viewers_per_stream,
            server.limits.viewers_total,
        )),
        policy: Arc::new(guard::Policy::new(server, http).with_cluster(cluster.clone())),
        view_tokens: Arc::new(view_tokens),
        failures: Arc::new(auth::Failures::new(server.limits.auth_failures_per_minute)),
        limits: Arc::new(server.limits.clone()),
        held: Arc::new(tokio::sync::Semaphore::new(
            server.limits.held_requests as usize,
        )),
        cluster,
        openapi: Arc::new(doc.finish()),
    };
    router
        .route("/", get(dashboard::index))
        .route("/app.js", get(dashboard::app))
        .route("/events.js", get(dashboard::events))
        .route("/live.js", get(dashboard::live))
        .route("/boxes.js", get(dashboard::boxes))
        .route("/vendor/hls.light.min.js", get(dashboard::hls_js))
        .route("/style.css", get(dashboard::style))
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not found",
                "no such route; see /api/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cluster::redirect,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        // Stream configs and SDP offers are a few KiB.
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .with_state(state)
}
