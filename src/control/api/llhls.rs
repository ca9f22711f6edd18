//! `GET /streams/{id}/llhls/{file}`: low-latency HLS served from memory
//! ([`crate::publish::LlHls`]). Playlist requests may block (`_HLS_msn`, `_HLS_part`) and the
//! preload-hinted part is held until complete, within `server.limits.held_requests` (503
//! beyond). Players on `server.allowed_origins` get CORS headers ([`super::guard`]). A playlist
//! fetched with a viewer token (`?vt=`) names every file with it.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::publish::{LlHlsError, LlHlsFile};

use super::AppState;
use super::error::ApiError;
use super::params::Params;
use super::streams::{blocking, stream_id};

/// The LL-HLS delivery directives (RFC 8216bis 6.2.5).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directives {
    /// Hold the playlist until it holds this media sequence number.
    #[serde(rename = "_HLS_msn")]
    msn: Option<u64>,
    /// ... and this part of it.
    #[serde(rename = "_HLS_part")]
    part: Option<usize>,
    /// Delta playlists are not offered (no `CAN-SKIP-UNTIL`): taken and ignored.
    #[serde(rename = "_HLS_skip")]
    _skip: Option<String>,
    /// A viewer token, for players that cannot send headers (checked by the auth layer).
    vt: Option<String>,
}

/// The query parameters, for the API description.
pub const QUERY: &[(&str, &str, &str)] = &[
    (
        "_HLS_msn",
        "integer",
        "Playlist only: answer once the playlist holds this media sequence number (blocking reload).",
    ),
    (
        "_HLS_part",
        "integer",
        "Playlist only, with `_HLS_msn`: answer once it holds this part of that segment.",
    ),
];

fn error(e: LlHlsError, what: &str) -> ApiError {
    match e {
        LlHlsError::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("`{what}` is not (or no longer) there"),
        ),
        LlHlsError::TooFar => ApiError::new(
            StatusCode::BAD_REQUEST,
            "too far ahead",
            format!("`{what}`: _HLS_msn is more than one segment beyond the live edge"),
        ),
        LlHlsError::Timeout => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            format!("`{what}` did not become available in time; is the stream producing frames?"),
        ),
    }
}

/// `GET /streams/{id}/llhls/{file}`: the playlist, `init.mp4`, segments and parts.
pub async fn llhls(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    Params(directives): Params<Directives>,
) -> Result<Response, ApiError> {
    let file = LlHlsFile::parse(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("no LL-HLS file `{name}`"),
        )
    })?;
    let sid = stream_id(&id)?;
    // Requests that may wait (a blocking reload, a part not complete yet) hold a place.
    let may_wait = directives.msn.is_some() || matches!(file, LlHlsFile::Part(..));
    let _held = if may_wait {
        Some(state.held.clone().try_acquire_owned().map_err(|_| {
            super::counters::count(&super::counters::EDGE.held_refused);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many waiting requests",
                "framegate holds as many LL-HLS requests as it may (server.limits.held_requests)",
            )
        })?)
    } else {
        None
    };
    let out = blocking(&state, move |m| m.with_running(&sid, |s| s.llhls().get())).await??;
    let response = if file == LlHlsFile::Playlist {
        if directives.part.is_some() && directives.msn.is_none() {
            return Err(ApiError::bad_query("_HLS_part needs _HLS_msn".to_string()));
        }
        let text = out
            .playlist(directives.msn, directives.part)
            .await
            .map_err(|e| error(e, &name))?;
        let text = match &directives.vt {
            Some(vt) => crate::publish::playlist_with_query(&text, &view_query(vt)),
            None => text,
        };
        (
            [
                (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            text,
        )
            .into_response()
    } else {
        if directives.msn.is_some() || directives.part.is_some() {
            return Err(ApiError::bad_query(
                "_HLS_msn and _HLS_part are for the playlist".to_string(),
            ));
        }
        let data = out.file(file).await.map_err(|e| error(e, &name))?;
        (
            [
                (header::CONTENT_TYPE, "video/mp4"),
                (header::CACHE_CONTROL, "max-age=60"),
            ],
            data,
        )
            .into_response()
    };
    Ok(response)
}

/// `vt=<token>`, encoded for a URL.
pub(super) fn view_query(vt: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(vt.as_bytes()).collect();
    format!("vt={encoded}")
}
