//! `GET /api/streams/{id}/view-token` and `GET /api/view-token`: short-lived viewer tokens for
//! players that cannot send an `Authorization` header (`<img>`, native HLS, VLC). Getting one
//! needs the API token (when reads are closed); using one opens only the viewing URLs of its
//! stream (or of every stream), until it expires.

use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::Serialize;

use super::AppState;
use super::auth::ALL_STREAMS;
use super::streams::{ApiResult, blocking, stream_id};

/// A viewer token.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ViewToken {
    /// The token: add `?vt=<token>` to a viewing URL (snapshot, MJPEG, WebSocket, HLS, LL-HLS,
    /// WHEP).
    pub token: String,
    /// The stream it opens, or `*` for every stream (and the events' snapshots).
    pub scope: String,
    /// When it expires, seconds since 1970.
    pub expires_unix: u64,
    /// Seconds it is valid for from now.
    pub ttl_s: u64,
}

fn issue(state: &AppState, scope: &str) -> ViewToken {
    let (token, expires_unix) = state.view_tokens.issue(scope);
    ViewToken {
        token,
        scope: scope.to_string(),
        expires_unix,
        ttl_s: state.view_tokens.ttl().as_secs(),
    }
}

/// A token for one stream.
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ViewToken>> {
    let sid = stream_id(&id)?;
    blocking(&state, move |m| m.get(&sid)).await??;
    Ok(Json(issue(&state, &id)))
}

/// A token for every stream.
pub async fn all(State(state): State<AppState>) -> Json<ViewToken> {
    Json(issue(&state, ALL_STREAMS))
}
