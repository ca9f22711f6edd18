//! The dashboard: four static files built into the binary, served at `/`. The page needs no
//! token to load (it holds no data); it asks for one when the API answers 401.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::streams::blocking;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP: &str = include_str!("../dashboard/app.js");
const STYLE: &str = include_str!("../dashboard/style.css");
const EVENTS: &str = include_str!("../dashboard/events.js");

/// The paths the dashboard is served at (open without a token).
pub const PATHS: [&str; 4] = ["/", "/app.js", "/events.js", "/style.css"];

/// The page, with the stream ids inlined when reads are open, so that the tiles connect at
/// once instead of after a first API round trip.
pub async fn index(State(state): State<AppState>) -> impl IntoResponse {
    let open = state.token.is_none() || state.read_open;
    let ids = if open {
        blocking(&state, |m| m.ids()).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    // Ids are `[A-Za-z0-9_-]`: nothing in them can close the script element.
    let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let page = INDEX.replace(
        "<script src=\"/app.js\"></script>",
        &format!(
            "<script>window.framegateStreams = {json};</script>\n<script src=\"/app.js\"></script>"
        ),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
}

pub async fn app() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP,
    )
}

pub async fn events() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        EVENTS,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
