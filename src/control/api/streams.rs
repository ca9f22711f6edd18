//! The handlers. Each runs the manager's blocking work on a blocking thread, so no async
//! worker waits on a pipeline.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::{StreamConfig, StreamId};
use crate::control::status::StreamStatus;
use crate::control::{Manager, ReloadReport, metrics};

use super::AppState;
use super::error::ApiError;
use super::guard::Declared;

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking manager work off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Manager) -> T + Send + 'static,
) -> ApiResult<T> {
    let manager = state.manager.clone();
    Ok(tokio::task::spawn_blocking(move || f(&manager)).await?)
}

pub(super) fn stream_id(raw: &str) -> ApiResult<StreamId> {
    StreamId::try_from(raw.to_string()).map_err(|_| ApiError::no_stream(raw))
}

/// A stream config from a JSON body; the message names the field and position.
fn parse_config(body: &[u8]) -> ApiResult<StreamConfig> {
    super::error::json_body(body)
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<StreamStatus>>> {
    let list = blocking(&state, |m| m.list()).await?;
    Ok(Json(super::cluster::with_cluster(&state, list)))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StreamStatus>> {
    let id = stream_id(&id)?;
    Ok(Json(blocking(&state, move |m| m.get(&id)).await??))
}

pub async fn create(
    _: Declared,
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Response> {
    let config = parse_config(&body)?;
    let st = blocking(&state, move |m| m.add(config)).await??;
    let location = format!("/api/streams/{}", st.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(st),
    )
        .into_response())
}

pub async fn replace(
    _: Declared,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<StreamStatus>> {
    let id = stream_id(&id)?;
    let config = parse_config(&body)?;
    Ok(Json(
        blocking(&state, move |m| m.replace(&id, config)).await??,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = stream_id(&id)?;
    blocking(&state, move |m| m.remove(&id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn start(
    _: Declared,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StreamStatus>> {
    let id = stream_id(&id)?;
    Ok(Json(
        blocking(&state, move |m| m.set_enabled(&id, true)).await??,
    ))
}

pub async fn stop(
    _: Declared,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StreamStatus>> {
    let id = stream_id(&id)?;
    Ok(Json(
        blocking(&state, move |m| m.set_enabled(&id, false)).await??,
    ))
}

pub async fn reload(_: Declared, State(state): State<AppState>) -> ApiResult<Json<ReloadReport>> {
    Ok(Json(blocking(&state, |m| m.reload()).await??))
}

pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json((*state.openapi).clone())
}

pub async fn prometheus(State(state): State<AppState>) -> ApiResult<Response> {
    let mut text = blocking(&state, metrics::render).await?;
    text.push_str(&super::counters::prometheus(&edge(&state)));
    if let Some(view) = &state.cluster {
        text.push_str(&view.prometheus());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// What the edge holds and refused, with the caps.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Limits {
    /// The caps and timeouts (`[server.limits]`).
    pub limits: crate::config::LimitsConfig,
    /// What is held now and what was refused since the start.
    pub now: super::counters::EdgeReport,
}

fn edge(state: &AppState) -> super::counters::EdgeReport {
    let held = (state.limits.held_requests as usize).saturating_sub(state.held.available_permits());
    super::counters::report(state.sessions.count(), held)
}

pub async fn limits(State(state): State<AppState>) -> Json<Limits> {
    Json(Limits {
        limits: (*state.limits).clone(),
        now: edge(&state),
    })
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The answer of `/readyz`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Readiness {
    /// Whether every enabled stream is live.
    pub ready: bool,
    /// The enabled streams that are not.
    pub not_live: Vec<String>,
}

pub async fn readyz(State(state): State<AppState>) -> ApiResult<Response> {
    let (ready, not_live) = blocking(&state, |m| m.readiness()).await?;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(Readiness { ready, not_live })).into_response())
}
