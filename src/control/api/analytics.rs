//! Analytics routes: the shared models, each stream's detections and detection events, and the
//! watermark ID.

use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::process::detect::{DetectStatus, DetectionEvent, ModelStatus, Present};
use crate::process::track::{Counts, TrackStatus};

use super::AppState;
use super::params::Params;
use super::streams::{ApiResult, blocking, stream_id};

/// A stream's detections: what is present now, the newest events, and its detectors.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Detections {
    /// The stream's id.
    pub stream: String,
    /// Classes present now (seen within `clear_after`).
    pub present: Vec<Present>,
    /// The newest events, oldest first.
    pub events: Vec<DetectionEvent>,
    /// The stream's detectors.
    pub detectors: Vec<DetectStatus>,
}

/// `?limit=` of the events.
#[derive(Debug, Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

pub async fn detections(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<Limit>,
) -> ApiResult<Json<Detections>> {
    let id = stream_id(&id)?;
    let limit = q.limit.unwrap_or(100);
    let out = blocking(&state, move |m| {
        m.with_running(&id, |s| {
            let mut present = Vec::new();
            let mut events = Vec::new();
            for d in s.detectors() {
                let (p, e) = d.log.snapshot(limit);
                present.extend(p);
                events.extend(e);
            }
            events.sort_by_key(|e| e.at_ms);
            let skip = events.len().saturating_sub(limit);
            Detections {
                stream: id.to_string(),
                present,
                events: events.into_iter().skip(skip).collect(),
                detectors: s.detectors().iter().map(|d| d.status()).collect(),
            }
        })
    })
    .await??;
    Ok(Json(out))
}

/// The answer for a stream without a `track` processor.
fn no_tracker(id: &str) -> super::error::ApiError {
    super::error::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no tracker",
        format!("stream `{id}` has no `track` processor"),
    )
}

pub async fn tracks(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TrackStatus>> {
    let id = stream_id(&id)?;
    let shown = id.to_string();
    blocking(&state, move |m| {
        m.with_running(&id, |s| s.tracker().map(|t| t.status()))
    })
    .await??
    .map(Json)
    .ok_or_else(|| no_tracker(&shown))
}

pub async fn counts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Counts>> {
    let id = stream_id(&id)?;
    let shown = id.to_string();
    blocking(&state, move |m| {
        m.with_running(&id, |s| s.tracker().map(|t| t.counts()))
    })
    .await??
    .map(Json)
    .ok_or_else(|| no_tracker(&shown))
}

pub async fn models(State(state): State<AppState>) -> ApiResult<Json<Vec<ModelStatus>>> {
    Ok(Json(blocking(&state, |m| m.models()).await?))
}

/// The body of `PUT /api/streams/{id}/watermark`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatermarkId {
    /// The new 7-character ID (printable ASCII).
    pub id: String,
}

pub async fn set_watermark(
    _: super::guard::Declared,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<crate::control::status::StreamStatus>> {
    let id = stream_id(&id)?;
    let req: WatermarkId = super::error::json_body(&body)?;
    Ok(Json(
        blocking(&state, move |m| m.set_watermark_id(&id, &req.id)).await??,
    ))
}
