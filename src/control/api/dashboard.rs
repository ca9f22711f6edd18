//! The dashboard: three static files built into the binary, served at `/`. The page needs no
//! token to load (it holds no data); it asks for one when the API answers 401.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP: &str = include_str!("../dashboard/app.js");
const STYLE: &str = include_str!("../dashboard/style.css");

/// The paths the dashboard is served at (open without a token).
pub const PATHS: [&str; 3] = ["/", "/app.js", "/style.css"];

pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

pub async fn app() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
