//! A node of a cluster answers for every camera: a call for a camera another node runs is
//! redirected there (307: the method and the body are kept, so WHEP offers and API changes go
//! through), and the list of streams shows every camera with its owner.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::control::status::{StreamPhase, StreamStatus, status};

/// The stream a path is about: `/api/streams/{id}...` or `/streams/{id}/...`.
fn stream_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/streams/")
        .or_else(|| path.strip_prefix("/streams/"))?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

/// Redirects a call about a camera that another node of the cluster runs to that node.
pub async fn redirect(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(view) = &state.cluster else {
        return next.run(req).await;
    };
    let target = stream_of(req.uri().path()).and_then(|id| {
        if state.manager.ids().iter().any(|l| l == id) {
            return None;
        }
        let (_, at) = view.elsewhere(id)?;
        let pq = req.uri().path_and_query()?.as_str();
        HeaderValue::from_str(&format!("{}{pq}", at.trim_end_matches('/'))).ok()
    });
    match target {
        Some(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        None => next.run(req).await,
    }
}

/// `GET /api/cluster/failsafe`: when this node last renewed its lease.
pub async fn failsafe(State(state): State<AppState>) -> Response {
    match &state.cluster {
        Some(view) => axum::Json(view.failsafe_answer()).into_response(),
        None => super::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "not in a cluster",
            "this node has no [cluster] table",
        )
        .into_response(),
    }
}

/// The node's own streams, with it as their owner, then the cluster's cameras other nodes run
/// (or nobody yet), in state `elsewhere`.
pub fn with_cluster(state: &AppState, mut list: Vec<StreamStatus>) -> Vec<StreamStatus> {
    let Some(view) = &state.cluster else {
        return list;
    };
    let mut here = std::collections::HashSet::new();
    for st in &mut list {
        st.owner.get_or_insert_with(|| view.node.clone());
        here.insert(st.id.clone());
    }
    for (id, cam) in view.cameras() {
        if here.contains(&id) {
            continue;
        }
        let Some(config) = cam.config else { continue };
        let mut st = status(&config, None, None);
        st.state = StreamPhase::Elsewhere;
        st.owner_url = view.elsewhere(&id).map(|(_, at)| at);
        st.owner = cam.owner;
        list.push(st);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_a_path_is_about() {
        assert_eq!(stream_of("/api/streams/cam1"), Some("cam1"));
        assert_eq!(stream_of("/api/streams/cam1/counts"), Some("cam1"));
        assert_eq!(stream_of("/streams/cam1/hls/index.m3u8"), Some("cam1"));
        assert_eq!(stream_of("/streams/cam1/whep"), Some("cam1"));
        assert_eq!(stream_of("/api/streams"), None);
        assert_eq!(stream_of("/api/streams/"), None);
        assert_eq!(stream_of("/api/events"), None);
    }
}
