//! WHEP routes: a WebRTC viewer posts its SDP offer and gets the answer and a session URL to
//! `DELETE` when it leaves; pages on `server.allowed_origins` may do so (CORS, in
//! [`super::guard`]). They follow the read rule of the API token, like the other viewer routes,
//! and take viewer tokens (`?vt=`). Sessions are capped per stream and in the process.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use crate::publish::{WhepFull, WhepHub, WhepStatus};

use super::AppState;
use super::error::ApiError;
use super::streams::{ApiResult, blocking, stream_id};

/// The WebRTC sessions of a running stream.
async fn hub(state: &AppState, id: &str) -> Result<Arc<WhepHub>, ApiError> {
    let sid = stream_id(id)?;
    Ok(blocking(state, move |m| m.with_running(&sid, |s| s.whep().clone())).await??)
}

/// `POST /streams/{id}/whep` with `Content-Type: application/sdp`: `201 Created`, the SDP
/// answer, and `Location` of the session.
pub async fn offer(
    _: super::guard::Declared,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    stream_id(&id)?;
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "not an SDP offer", "not UTF-8"))?;
    let hub = hub(&state, &id).await?;
    let (per_stream, total) = (
        state.limits.whep_sessions_per_stream as usize,
        state.limits.whep_sessions_total as usize,
    );
    let (session, answer) =
        tokio::task::spawn_blocking(move || hub.answer(&offer, per_stream, total))
            .await?
            .map_err(|e| match e.downcast_ref::<WhepFull>() {
                Some(full) => {
                    super::counters::count(&super::counters::EDGE.whep_refused);
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many WebRTC viewers",
                        full.0.clone(),
                    )
                }
                None => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "cannot answer this offer",
                    format!("{e:#}"),
                ),
            })?;
    let location = format!("/streams/{id}/whep/{session}");
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response())
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
    Ok(StatusCode::NO_CONTENT.into_response())
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
