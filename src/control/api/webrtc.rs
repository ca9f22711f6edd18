//! WHEP routes: a WebRTC viewer posts its SDP offer and gets the answer and a session URL to
//! `DELETE` when it leaves; pages on other origins may do so (CORS). They follow the read rule
//! of the API token, like the other viewer routes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use crate::publish::{WhepHub, WhepStatus};

use super::AppState;
use super::error::ApiError;
use super::streams::{ApiResult, blocking, stream_id};

/// The WebRTC sessions of a running stream.
async fn hub(state: &AppState, id: &str) -> Result<Arc<WhepHub>, ApiError> {
    let sid = stream_id(id)?;
    Ok(blocking(state, move |m| m.with_running(&sid, |s| s.whep().clone())).await??)
}

/// The CORS headers of every WHEP answer.
fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location"),
    );
    // Chromium's Private Network Access: a player on a public page may reach a gateway on the
    // LAN or on this machine.
    h.insert(
        header::HeaderName::from_static("access-control-allow-private-network"),
        HeaderValue::from_static("true"),
    );
    r
}

/// `OPTIONS` on the WHEP routes: the CORS preflight.
pub async fn preflight() -> Response {
    cors(StatusCode::NO_CONTENT.into_response())
}

/// `POST /streams/{id}/whep` with `Content-Type: application/sdp`: `201 Created`, the SDP
/// answer, and `Location` of the session.
pub async fn offer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    stream_id(&id)?;
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/sdp"));
    if !sdp_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an SDP offer",
            "send the offer with `Content-Type: application/sdp`",
        ));
    }
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "not an SDP offer", "not UTF-8"))?;
    let hub = hub(&state, &id).await?;
    let (session, answer) = tokio::task::spawn_blocking(move || hub.answer(&offer))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                e.to_string(),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "cannot answer this offer",
                format!("{e:#}"),
            )
        })?;
    let location = format!("/streams/{id}/whep/{session}");
    Ok(cors(
        (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp".to_string()),
                (header::LOCATION, location),
            ],
            answer,
        )
            .into_response(),
    ))
}

/// `DELETE /streams/{id}/whep/{session}`: ends the session.
pub async fn end(
    State(state): State<AppState>,
    Path((id, session)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let hub = hub(&state, &id).await?;
    let ended = tokio::task::spawn_blocking(move || hub.end(&session))
        .await
        .unwrap_or(false);
    if !ended {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such session",
            "no WebRTC session there (it ended, or its peer vanished)",
        ));
    }
    Ok(cors(StatusCode::NO_CONTENT.into_response()))
}

/// `GET /api/streams/{id}/whep`: the stream's WebRTC sessions.
pub async fn sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<WhepStatus>>> {
    let hub = hub(&state, &id).await?;
    let list = tokio::task::spawn_blocking(move || hub.sessions())
        .await
        .unwrap_or_default();
    Ok(axum::Json(list))
}
