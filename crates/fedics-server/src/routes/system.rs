//! Login, the caller, the audit log, liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fedics_store::{AuditPage, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::text_field;
use crate::AppState;
use crate::auth::{self, Admin, Principal, Viewer};
use crate::error::{ApiError, ErrorBody, ValidationBody};
use crate::params::{Params, ValidJson};

/// Body of `POST /api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// A bearer token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub username: String,
    #[schema(value_type = String, example = "analyst")]
    pub role: fedics_store::Role,
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "A bearer token", body = TokenResponse),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ValidationBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ValidJson(body): ValidJson<LoginBody>,
) -> Result<Json<TokenResponse>, ApiError> {
    let mut e = Vec::new();
    text_field(&mut e, "username", &body.username, 1, 128);
    if body.password.is_empty() || body.password.len() > 1024 {
        e.push(crate::error::FieldError::new(
            "body",
            "password",
            "expected 1 to 1024 bytes",
        ));
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e));
    }
    let user = s.store().get_user(&body.username).await?;
    // Verify against a real hash even for an unknown user, so timing does not tell which
    // user names exist.
    let (hash, known) = match &user {
        Some(u) => (u.password_hash.clone(), true),
        None => (timing_decoy_hash().to_string(), false),
    };
    let password = body.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
    let Some(user) = user.filter(|_| ok && known) else {
        metrics::counter!("fedics_login_failures_total").increment(1);
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    };
    let token = s.auth().issue_token(&user.username, user.role)?;
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "bearer".into(),
        expires_in: s.auth().token_ttl.as_secs(),
        username: user.username,
        role: user.role,
    }))
}

/// An argon2id hash of a random password, computed once.
fn timing_decoy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| auth::hash_password(&auth::random_hex(16)).unwrap_or_default())
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses(
        (status = 200, description = "Who the caller is", body = Principal),
        (status = 401, description = "Not authenticated", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn me(auth::Require(p): Viewer) -> Json<Principal> {
    Json(p)
}

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditListQuery {
    /// Only requests by this principal.
    actor: Option<String>,
    /// Only requests on this object, e.g. `alert:<id>`.
    target: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
    offset: Option<u32>,
}

#[utoipa::path(get, path = "/api/audit", tag = "auth",
    params(AuditListQuery),
    responses(
        (status = 200, description = "State-changing requests, newest first", body = AuditPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn audit_log(
    State(s): State<AppState>,
    _who: Admin,
    mut p: Params,
) -> Result<Json<AuditPage>, ApiError> {
    let q = AuditQuery {
        actor: p.text("actor"),
        target: p.text("target"),
        limit: u32::try_from(p.int_in("limit", 1, 1000, 100)).unwrap_or(100),
        offset: u32::try_from(p.int_in("offset", 0, i64::from(u32::MAX), 0)).unwrap_or(0),
    };
    p.finish()?;
    Ok(Json(s.store().list_audit(&q).await?))
}

/// Liveness / readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or what is not ready.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Whether the store answered (readiness only).
    pub store_reachable: Option<bool>,
    /// Whether the pipeline runs (None: no pipeline in this process).
    pub pipeline_running: Option<bool>,
    pub version: String,
}

#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn health(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        store: s.store().engine().as_str().into(),
        store_reachable: None,
        pipeline_running: s.inner.pipeline.as_ref().map(|p| p.running()),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(get, path = "/ready", tag = "system",
    responses(
        (status = 200, description = "Store reachable and pipeline running", body = Health),
        (status = 503, description = "Not ready (which part is in `status`)", body = Health)))]
pub async fn ready(State(s): State<AppState>) -> Response {
    let store_ok = tokio::time::timeout(std::time::Duration::from_secs(2), s.store().ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let pipeline = s.inner.pipeline.as_ref().map(|p| p.running());
    let mut problems = Vec::new();
    if !store_ok {
        problems.push("store unreachable");
    }
    if pipeline == Some(false) {
        problems.push("pipeline not running");
    }
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if problems.is_empty() {
            "ok".into()
        } else {
            problems.join(", ")
        },
        store: s.store().engine().as_str().into(),
        store_reachable: Some(store_ok),
        pipeline_running: pipeline,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 503, description = "No metrics recorder installed", body = ErrorBody)))]
pub async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let h = s
        .inner
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no metrics recorder in this process".into()))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.render(),
    )
        .into_response())
}
