//! Event routes: the stored events (paged, filtered), one event and its snapshot, and the
//! store's state.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::store::{Db, Event, EventQuery, OutboxCounts, StoreStatus, kind};

use super::AppState;
use super::error::ApiError;
use super::params::Params;
use super::streams::ApiResult;

/// Most events in one page.
const MAX_LIMIT: i64 = 1000;

/// A page of events, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The store's state and the alert outbox.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StoreReport {
    /// The writer.
    #[serde(flatten)]
    pub store: StoreStatus,
    /// Newest schema migration applied.
    pub schema_version: Option<i64>,
    /// Events stored.
    pub events: Option<i64>,
    /// Alert deliveries.
    pub outbox: Option<OutboxCounts>,
}

/// The query of `GET /api/events`, all as text so that every mistake gets a clear message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    stream: Option<String>,
    kind: Option<String>,
    class: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// The API token, for clients that cannot send headers (checked by the auth layer).
    #[allow(dead_code)]
    token: Option<String>,
}

/// `since=`/`until=`: milliseconds since the epoch or an RFC 3339 time.
fn time(name: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    v.parse::<i64>()
        .ok()
        .or_else(|| crate::process::parse_utc(v))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_query(format!(
                "{name}={v}: expected milliseconds since 1970 or an RFC 3339 time such as 2026-11-22T08:00:00Z"
            ))
        })
}

impl EventParams {
    fn query(&self) -> ApiResult<EventQuery> {
        if let Some(k) = &self.kind
            && !kind::ALL.contains(&k.as_str())
        {
            return Err(ApiError::bad_query(format!(
                "kind={k}: one of {}",
                kind::ALL.join(", ")
            )));
        }
        let limit = match &self.limit {
            None => 100,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ApiError::bad_query(format!("limit={l}: from 1 to {MAX_LIMIT}")))?,
        };
        let cursor = match &self.cursor {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                ApiError::bad_query(format!(
                    "cursor={c}: use the `next_cursor` of the last page"
                ))
            })?),
        };
        Ok(EventQuery {
            stream: self.stream.clone(),
            kind: self.kind.clone(),
            class: self.class.clone(),
            since_ms: time("since", &self.since)?,
            until_ms: time("until", &self.until)?,
            cursor,
            limit,
        })
    }
}

/// The longest `GET /api/store` waits for the database's counts.
const STORE_COUNTS_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

async fn db(state: &AppState) -> ApiResult<Db> {
    let store = state.manager.store();
    let db = store.db_soon(std::time::Duration::from_secs(3)).await;
    db.ok_or_else(|| {
        let status = store.status();
        let detail = if !status.enabled {
            "the event store is off (database.url = \"none\")".to_string()
        } else {
            status
                .error
                .unwrap_or_else(|| "the database is not connected yet".into())
        };
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "event store unavailable",
            detail,
        )
    })
}

/// The longest an event read waits for the database: a database that is down answers `503` in
/// this time, not after the pool's connection timeout.
const READ_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A read of the database, or `503` when it fails or takes longer than [`READ_WITHIN`].
async fn within<T>(read: impl std::future::Future<Output = anyhow::Result<T>>) -> ApiResult<T> {
    match tokio::time::timeout(READ_WITHIN, read).await {
        Ok(r) => r.map_err(failed),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "event store unavailable",
            format!(
                "the database did not answer within {} s",
                READ_WITHIN.as_secs()
            ),
        )),
    }
}

fn failed(e: anyhow::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "event store unavailable",
        format!("{e:#}"),
    )
}

pub async fn list(
    State(state): State<AppState>,
    Params(params): Params<EventParams>,
) -> ApiResult<Json<EventPage>> {
    let q = params.query()?;
    let db = db(&state).await?;
    let events = within(db.query(&q)).await?;
    let next_cursor = (events.len() as i64 == q.limit)
        .then(|| events.last().and_then(|e| e.id).map(|id| id.to_string()))
        .flatten();
    Ok(Json(EventPage {
        events,
        next_cursor,
    }))
}

fn event_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such event",
            format!("`{raw}` is not an event id"),
        )
    })
}

async fn find(state: &AppState, raw: &str) -> ApiResult<Event> {
    let id = event_id(raw)?;
    let db = db(state).await?;
    within(db.get(id)).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such event",
            format!("no event {id}"),
        )
    })
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Event>> {
    Ok(Json(find(&state, &id).await?))
}

pub async fn snapshot(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let event = find(&state, &id).await?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no snapshot",
            format!("event {id} has no snapshot (database.snapshots is off, or it was deleted)"),
        )
    };
    let file = event
        .snapshot
        .as_deref()
        .and_then(|rel| state.manager.store().snapshot_file(rel))
        .ok_or_else(missing)?;
    let bytes = tokio::fs::read(&file).await.map_err(|_| missing())?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

pub async fn store(State(state): State<AppState>) -> ApiResult<Json<StoreReport>> {
    let store = state.manager.store();
    let mut report = StoreReport {
        store: store.status(),
        schema_version: None,
        events: None,
        outbox: None,
    };
    // The counts come from the database: asked only while it is being written, and given a
    // second at most, so that this status answers at once while the database is down (each
    // query would otherwise wait for the pool's connection timeout).
    if let Some(db) = store.db().filter(|_| report.store.writing) {
        let counts = async {
            (
                db.schema_version().await.ok(),
                db.count().await.ok(),
                db.outbox_counts().await.ok(),
            )
        };
        if let Ok((version, events, outbox)) =
            tokio::time::timeout(STORE_COUNTS_WITHIN, counts).await
        {
            (report.schema_version, report.events, report.outbox) = (version, events, outbox);
        }
    }
    Ok(Json(report))
}

pub async fn viewers(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<crate::control::sessions::ViewerStatus>>> {
    let sid = super::streams::stream_id(&id)?;
    super::streams::blocking(&state, move |m| m.get(&sid).map(|_| ())).await??;
    Ok(Json(state.sessions.list(Some(&id))))
}
