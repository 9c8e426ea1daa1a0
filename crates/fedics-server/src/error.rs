//! Errors as HTTP answers, in FastAPI's shapes (what the seeds' dashboard expects):
//! `{"detail": "message"}`, and for validation `{"detail": [{"loc", "msg", "type"}]}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fedics_store::StoreError;
use serde::Serialize;

/// One invalid input: where it is (`["query", "limit"]`, `["body", "sources", 0, "layer"]`)
/// and what was expected.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Location: `query`, `path` or `body`, then the field (and index) path.
    #[schema(value_type = Vec<Object>)]
    pub loc: Vec<serde_json::Value>,
    /// What is wrong and what was expected.
    pub msg: String,
    /// Error kind, e.g. `value_error`, `missing`, `type_error`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(place: &str, field: &str, msg: impl Into<String>) -> Self {
        Self {
            loc: vec![place.into(), field.into()],
            msg: msg.into(),
            kind: "value_error".into(),
        }
    }

    pub fn missing(place: &str, field: &str) -> Self {
        Self {
            loc: vec![place.into(), field.into()],
            msg: "field required".into(),
            kind: "missing".into(),
        }
    }
}

/// Body of every non-validation error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// Body of a 422.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValidationBody {
    pub detail: Vec<FieldError>,
}

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("rate limit exceeded")]
    TooManyRequests { retry_after_s: u64 },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn field(place: &str, field: &str, msg: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(place, field, msg)])
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { what, key, .. } => {
                ApiError::Conflict(format!("{what} {key:?} exists already"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        metrics::counter!("fedics_http_errors_total", "status" => status.as_u16().to_string())
            .increment(1);
        match self {
            ApiError::Validation(detail) => {
                (status, Json(ValidationBody { detail })).into_response()
            }
            ApiError::Internal(message) => {
                // The cause is logged, never shown: it may name tables, hosts or queries.
                tracing::error!(target: "fedics_server", error = %message, "request failed");
                (
                    status,
                    Json(ErrorBody {
                        detail: "internal error".into(),
                    }),
                )
                    .into_response()
            }
            ApiError::Unauthorized(detail) => {
                let mut r = (status, Json(ErrorBody { detail })).into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            ApiError::TooManyRequests { retry_after_s } => {
                let mut r = (
                    status,
                    Json(ErrorBody {
                        detail: "rate limit exceeded".into(),
                    }),
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&retry_after_s.max(1).to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            other => {
                let detail = other.to_string();
                (status, Json(ErrorBody { detail })).into_response()
            }
        }
    }
}
