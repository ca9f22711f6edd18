//! API errors: every failure is a JSON body `{"error": "...", "detail": ...}` with the right
//! status, mapped from the manager's errors in one place.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use crate::control::ManagerError;

/// The body of every error response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong, in a few words.
    pub error: String,
    /// More about it: the field at fault, the reason; may be null.
    pub detail: serde_json::Value,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// An error with a status, a short message and a detail.
    pub fn new(
        status: StatusCode,
        error: impl Into<String>,
        detail: impl Into<serde_json::Value>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                detail: detail.into(),
            },
        }
    }

    /// The detail, as text.
    pub fn detail(&self) -> String {
        match &self.body.detail {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// 400: a query parameter is out of range.
    pub fn bad_query(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid query parameter",
            detail.into(),
        )
    }

    /// 400: the request body is not a valid stream config.
    pub fn bad_body(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid stream config",
            detail.into(),
        )
    }

    /// 401: no valid token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this request needs the header `Authorization: Bearer <api token>`",
        )
    }

    /// 404 for a stream id.
    pub fn no_stream(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no such stream",
            format!("no stream `{id}`"),
        )
    }
}

impl From<tokio::task::JoinError> for ApiError {
    /// Blocking work that panicked or was cancelled.
    fn from(e: tokio::task::JoinError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            e.to_string(),
        )
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        let status = match &e {
            ManagerError::NotFound(_) => StatusCode::NOT_FOUND,
            ManagerError::Duplicate(_) => StatusCode::CONFLICT,
            ManagerError::Invalid(_) => StatusCode::BAD_REQUEST,
            ManagerError::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ManagerError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ManagerError::NotRunning(_) => StatusCode::CONFLICT,
            ManagerError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        let error = match &e {
            ManagerError::NotFound(_) => "no such stream",
            ManagerError::Duplicate(_) => "duplicate stream id",
            ManagerError::Invalid(_) => "invalid stream config",
            ManagerError::Reload(_) => "cannot reload the config",
            ManagerError::Persist(_) => "cannot save the change",
            ManagerError::NotRunning(_) => "stream is stopped",
            ManagerError::ShuttingDown => "shutting down",
        };
        Self::new(status, error, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut r = (self.status, Json(self.body)).into_response();
        if unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// A JSON body as `T`; a mistake is a 400 naming the field's path (`outputs[1].url: ...`)
/// and the position.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::bad_body(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })
}
