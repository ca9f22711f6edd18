//! The dashboard: static files built into the binary, served at `/`. The page needs no
//! token to load (it holds no data); it asks for one when the API answers 401.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};

use crate::publish::{JpegHub, JpegKey};

use super::AppState;
use super::streams::blocking;
use super::viewers::{newest_kept_warm, start_encoder};

const INDEX: &str = include_str!("../dashboard/index.html");
const APP: &str = include_str!("../dashboard/app.js");
const STYLE: &str = include_str!("../dashboard/style.css");
const EVENTS: &str = include_str!("../dashboard/events.js");
const LIVE: &str = include_str!("../dashboard/live.js");
const BOXES: &str = include_str!("../dashboard/boxes.js");
/// hls.js (vendored: the dashboard works offline), for LL-HLS where the browser has no HLS.
const HLS_JS: &str = include_str!("../dashboard/vendor/hls.light.min.js");

/// The paths the dashboard is served at (open without a token).
pub const PATHS: [&str; 7] = [
    "/",
    "/app.js",
    "/boxes.js",
    "/events.js",
    "/live.js",
    "/style.css",
    "/vendor/hls.light.min.js",
];

/// The tiles' picture size and quality (as `TILE` in app.js).
const TILE: JpegKey = JpegKey {
    width: Some(320),
    quality: 60,
    raw: false,
};
/// Most streams whose first tile picture comes inlined in the page.
const INLINE_MAX: usize = 16;
/// Longest the page waits for those pictures.
const INLINE_WAIT: Duration = Duration::from_millis(150);

/// The page, with the stream ids inlined when reads are open, so that the tiles connect at
/// once instead of after a first API round trip, and with each tile's newest picture inlined
/// (base64 JPEG), so that the wall shows pictures as soon as the page runs. The tile encoders
/// started for it stay up briefly for the tiles' WebSockets.
pub async fn index(State(state): State<AppState>) -> impl IntoResponse {
    let open = state.token.is_none() || state.read_open;
    let hubs = if open {
        blocking(&state, |m| {
            m.ids()
                .into_iter()
                .filter_map(|id| {
                    let sid = crate::config::StreamId::try_from(id.clone()).ok()?;
                    m.with_running(&sid, |s| (id, s.jpeg().clone())).ok()
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let ids: Vec<&String> = hubs.iter().map(|(id, _)| id).collect();
    let first = first_pictures(&hubs, &state.limits).await;
    // The inlined script runs under this nonce; no other inline script does.
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    // Ids are `[A-Za-z0-9_-]` and base64 has no `<`: nothing here can close the script element.
    let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let first = serde_json::to_string(&first).unwrap_or_else(|_| "{}".into());
    let page = INDEX.replace(
        "<script src=\"/app.js\"></script>",
        &format!(
            "<script nonce=\"{nonce}\">window.framegateStreams = {ids};\nwindow.framegateFirst = {first};</script>\n<script src=\"/app.js\"></script>"
        ),
    );
    // The other nodes of a cluster serve the video of the cameras they run (see `owner_url`).
    let peers: String = state
        .cluster
        .iter()
        .flat_map(|c| c.peer_origins())
        .map(|o| format!(" {o}"))
        .collect();
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; \
         img-src 'self' data: blob:; media-src 'self' blob:{peers}; worker-src 'self' blob:; \
         connect-src 'self' ws: wss:{peers}; object-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_FRAME_OPTIONS, "DENY".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        page,
    )
}

/// The newest tile-size picture of each stream (the first `INLINE_MAX`), as base64 JPEG; those
/// not ready within `INLINE_WAIT` are left to the WebSockets.
async fn first_pictures(
    hubs: &[(String, Arc<JpegHub>)],
    limits: &crate::config::LimitsConfig,
) -> BTreeMap<String, String> {
    let jobs = hubs.iter().take(INLINE_MAX).map(|(id, hub)| {
        let (id, hub) = (id.clone(), hub.clone());
        async move {
            let enc = start_encoder(hub, TILE, limits).await.ok()?;
            let picture = newest_kept_warm(enc, INLINE_WAIT).await?;
            Some((id, BASE64.encode(&picture.data)))
        }
    });
    futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// A script of the page.
fn script(body: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
}

pub async fn app() -> impl IntoResponse {
    script(APP)
}

pub async fn events() -> impl IntoResponse {
    script(EVENTS)
}

pub async fn live() -> impl IntoResponse {
    script(LIVE)
}

pub async fn boxes() -> impl IntoResponse {
    script(BOXES)
}

pub async fn hls_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        HLS_JS,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
