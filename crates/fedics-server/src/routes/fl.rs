//! `/api/fl`: federated-learning rounds, clients and the privacy ledger, read from the
//! store's federation tables (empty until a federation runs; never invented).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fedics_store::{
    ClientStatus, FlClientRow, FlClientUpdate, FlFederationRow, FlRoundCompletion, FlRoundRow,
    FlRoundUpdate, PrivacyEntry, RoundPhase, RoundStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::audit::AuditTarget;
use crate::auth::{Admin, Viewer};
use crate::error::{ApiError, ErrorBody, FieldError, ValidationBody};
use crate::params::{Params, ValidJson, check_text, path_int};

async fn round_or_404(s: &AppState, id: i64) -> Result<FlRoundRow, ApiError> {
    s.store()
        .get_fl_round(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("round {id}")))
}

#[utoipa::path(get, path = "/api/fl/rounds/current", tag = "federation",
    responses(
        (status = 200, description = "The round in progress", body = FlRoundRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No round in progress", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn current_round(
    State(s): State<AppState>,
    _who: Viewer,
) -> Result<Json<FlRoundRow>, ApiError> {
    s.store()
        .current_fl_round()
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no round in progress".into()))
}

/// Query of `GET /api/fl/rounds`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RoundListQuery {
    /// 1 to 1000 (default 50).
    limit: Option<u32>,
    /// Rounds to skip.
    offset: Option<u32>,
}

#[utoipa::path(get, path = "/api/fl/rounds", tag = "federation",
    params(RoundListQuery),
    responses(
        (status = 200, description = "Rounds, newest first (total in X-Total-Count)", body = Vec<FlRoundRow>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_rounds(
    State(s): State<AppState>,
    _who: Viewer,
    mut p: Params,
) -> Result<Response, ApiError> {
    let limit = p.int_in("limit", 1, 1000, 50);
    let offset = p.int_in("offset", 0, i64::from(u32::MAX), 0);
    p.finish()?;
    let (rows, total) = s
        .store()
        .list_fl_rounds(
            u32::try_from(limit).unwrap_or(50),
            u32::try_from(offset).unwrap_or(0),
        )
        .await?;
    let mut r = Json(rows).into_response();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        r.headers_mut().insert("x-total-count", v);
    }
    Ok(r)
}

/// A round with its clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundDetail {
    #[serde(flatten)]
    pub round: FlRoundRow,
    pub clients: Vec<FlClientRow>,
}

#[utoipa::path(get, path = "/api/fl/rounds/{id}", tag = "federation",
    params(("id" = i64, Path, description = "Round id")),
    responses(
        (status = 200, description = "The round and its clients", body = RoundDetail),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_round(
    State(s): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<RoundDetail>, ApiError> {
    let id = path_int("id", &id)?;
    let round = round_or_404(&s, id).await?;
    let clients = s.store().fl_round_clients(id).await?;
    Ok(Json(RoundDetail { round, clients }))
}

/// Answer of `POST /api/fl/rounds/trigger`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Triggered {
    /// Row id of the round that started.
    pub round_id: i64,
}

#[utoipa::path(post, path = "/api/fl/rounds/trigger", tag = "federation",
    responses(
        (status = 202, description = "A round was started", body = Triggered),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 409, description = "A round cannot start now (e.g. one is running, or the privacy budget is spent)", body = ErrorBody),
        (status = 503, description = "No federation runs in this process", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn trigger_round(State(s): State<AppState>, _who: Admin) -> Result<Response, ApiError> {
    let Some(t) = s.inner.fl_trigger.clone() else {
        return Err(ApiError::Unavailable(
            "no federation runs in this process: start one with `fedics fl serve` or the demo's federation".into(),
        ));
    };
    let round_id = t.trigger().await.map_err(ApiError::Conflict)?;
    let mut r = (StatusCode::ACCEPTED, Json(Triggered { round_id })).into_response();
    r.extensions_mut()
        .insert(AuditTarget(format!("fl_round:{round_id}")));
    Ok(r)
}

/// Body of `PUT /api/fl/rounds/{id}/progress`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    /// 0 to 100.
    pub progress: u8,
    #[schema(value_type = Option<String>, example = "training")]
    pub phase: Option<RoundPhase>,
    pub clients_active: Option<u32>,
    pub epsilon: Option<f64>,
}

fn check_progress(e: &mut Vec<FieldError>, field: &str, v: Option<u8>) {
    if let Some(p) = v.filter(|p| *p > 100) {
        e.push(FieldError::new(
            "body",
            field,
            format!("{p} is out of range: expected 0 to 100"),
        ));
    }
}

fn check_nonneg(e: &mut Vec<FieldError>, field: &str, v: Option<f64>) {
    if let Some(x) = v.filter(|x| !x.is_finite() || *x < 0.0) {
        e.push(FieldError::new(
            "body",
            field,
            format!("{x} is not a non-negative number"),
        ));
    }
}

fn check_unit(e: &mut Vec<FieldError>, field: &str, v: Option<f64>) {
    if let Some(x) = v.filter(|x| !(0.0..=1.0).contains(x)) {
        e.push(FieldError::new(
            "body",
            field,
            format!("{x} is out of range: expected 0 to 1"),
        ));
    }
}

fn done(e: Vec<FieldError>) -> Result<(), ApiError> {
    if e.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(e))
    }
}

#[utoipa::path(put, path = "/api/fl/rounds/{id}/progress", tag = "federation",
    params(("id" = i64, Path, description = "Round id")),
    request_body = ProgressBody,
    responses(
        (status = 200, description = "The round after the change", body = FlRoundRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn round_progress(
    State(s): State<AppState>,
    _who: Admin,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<ProgressBody>,
) -> Result<Json<FlRoundRow>, ApiError> {
    let id = path_int("id", &id)?;
    let mut e = Vec::new();
    check_progress(&mut e, "progress", Some(body.progress));
    check_nonneg(&mut e, "epsilon", body.epsilon);
    done(e)?;
    let update = FlRoundUpdate {
        progress: Some(body.progress),
        phase: body.phase,
        clients_active: body.clients_active,
        epsilon: body.epsilon,
    };
    s.store()
        .update_fl_round(id, &update)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("round {id}")))
}

/// Body of `POST /api/fl/rounds/{id}/complete` (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// 0 to 1.
    pub model_accuracy: Option<f64>,
    pub epsilon: Option<f64>,
    /// `completed` (default) or `failed`.
    #[schema(value_type = Option<String>, example = "completed")]
    pub status: Option<RoundStatus>,
}

#[utoipa::path(post, path = "/api/fl/rounds/{id}/complete", tag = "federation",
    params(("id" = i64, Path, description = "Round id")),
    request_body(content = Option<CompleteBody>, description = "Optional"),
    responses(
        (status = 200, description = "The completed round", body = FlRoundRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn complete_round(
    State(s): State<AppState>,
    _who: Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<FlRoundRow>, ApiError> {
    let id = path_int("id", &id)?;
    let body: CompleteBody = crate::params::optional_json(&body)?;
    let mut e = Vec::new();
    check_unit(&mut e, "model_accuracy", body.model_accuracy);
    check_nonneg(&mut e, "epsilon", body.epsilon);
    if body.status == Some(RoundStatus::InProgress) {
        e.push(FieldError::new(
            "body",
            "status",
            "expected completed or failed",
        ));
    }
    done(e)?;
    let c = FlRoundCompletion {
        status: body.status.unwrap_or(RoundStatus::Completed),
        model_accuracy: body.model_accuracy,
        epsilon: body.epsilon,
        end_time: chrono::Utc::now(),
    };
    s.store()
        .complete_fl_round(id, &c)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("round {id}")))
}

/// Query of `GET /api/fl/clients`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ClientListQuery {
    /// The round whose clients to list (default: the latest round).
    round_id: Option<i64>,
}

#[utoipa::path(get, path = "/api/fl/clients", tag = "federation",
    params(ClientListQuery),
    responses(
        (status = 200, description = "Clients of the round", body = Vec<FlClientRow>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_clients(
    State(s): State<AppState>,
    _who: Viewer,
    mut p: Params,
) -> Result<Json<Vec<FlClientRow>>, ApiError> {
    let round = p.parse::<i64>("round_id", "an integer round id");
    p.finish()?;
    Ok(Json(s.store().list_fl_clients(round).await?))
}

fn client_id(v: &str) -> Result<&str, ApiError> {
    if v.is_empty() || v.len() > 128 {
        return Err(ApiError::field(
            "path",
            "id",
            "expected 1 to 128 characters",
        ));
    }
    check_text(v).map_err(|m| ApiError::field("path", "id", m))?;
    Ok(v)
}

#[utoipa::path(get, path = "/api/fl/clients/{id}", tag = "federation",
    params(("id" = String, Path, description = "Client id")),
    responses(
        (status = 200, description = "The client", body = FlClientRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such client", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_client(
    State(s): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<FlClientRow>, ApiError> {
    let id = client_id(&id)?;
    s.store()
        .get_fl_client(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("client {id}")))
}

/// Body of `PUT /api/fl/clients/{id}` (fields to change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    #[schema(value_type = Option<String>, example = "active")]
    pub status: Option<ClientStatus>,
    /// 0 to 100.
    pub progress: Option<u8>,
    pub current_epoch: Option<u32>,
    pub total_epochs: Option<u32>,
    pub loss: Option<f64>,
    /// 0 to 1.
    pub accuracy: Option<f64>,
}

#[utoipa::path(put, path = "/api/fl/clients/{id}", tag = "federation",
    params(("id" = String, Path, description = "Client id")),
    request_body = ClientBody,
    responses(
        (status = 200, description = "The client after the change", body = FlClientRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "No such client", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn update_client(
    State(s): State<AppState>,
    _who: Admin,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<ClientBody>,
) -> Result<Json<FlClientRow>, ApiError> {
    let id = client_id(&id)?;
    let mut e = Vec::new();
    check_progress(&mut e, "progress", body.progress);
    check_nonneg(&mut e, "loss", body.loss);
    check_unit(&mut e, "accuracy", body.accuracy);
    if let (Some(c), Some(t)) = (body.current_epoch, body.total_epochs)
        && c > t
    {
        e.push(FieldError::new(
            "body",
            "current_epoch",
            "greater than total_epochs",
        ));
    }
    done(e)?;
    let u = FlClientUpdate {
        status: body.status,
        progress: body.progress,
        current_epoch: body.current_epoch,
        total_epochs: body.total_epochs,
        loss: body.loss,
        accuracy: body.accuracy,
        last_update: chrono::Utc::now(),
    };
    s.store()
        .update_fl_client(id, &u)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("client {id}")))
}

/// `GET /api/fl/privacy-metrics`: ε spent according to the accountant's ledger, and how the
/// federation aggregates and protects its updates.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrivacyMetrics {
    /// ε spent so far by the most recent federation (the federation configured last, else
    /// the one of the latest ledger entry), if any.
    pub epsilon: Option<f64>,
    /// δ of that guarantee.
    pub delta: Option<f64>,
    /// The configured maximum ε, if any (the server's setting, else the federation's DP
    /// budget).
    pub budget: Option<f64>,
    /// `budget - epsilon` (never below 0), when both are known.
    pub remaining: Option<f64>,
    /// Rounds accounted in that federation.
    pub rounds: u64,
    /// The most recent federation's configuration as its aggregator recorded it: strategy
    /// and its parameters, local training, DP settings. `None` until a federation records
    /// one.
    pub federation: Option<FlFederationRow>,
    /// What combines the sites' updates in that federation: the strategy's name, or with DP
    /// `dp-clipped-mean` (the unweighted mean of clipped updates plus Gaussian noise; the
    /// strategy then only selects the sites).
    pub aggregation: Option<String>,
    /// Every ledger entry (federation-wide and per site), by federation, round, site.
    pub ledger: Vec<PrivacyEntry>,
}

/// [`PrivacyMetrics::aggregation`] of a federation.
pub fn aggregation(f: &FlFederationRow) -> String {
    if f.dp.is_some() {
        "dp-clipped-mean".into()
    } else {
        f.strategy.clone()
    }
}

#[utoipa::path(get, path = "/api/fl/privacy-metrics", tag = "federation",
    responses(
        (status = 200, description = "The privacy ledger, the budget, the strategy and DP settings", body = PrivacyMetrics),
        (status = 401, description = "Not authenticated", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn privacy_metrics(
    State(s): State<AppState>,
    _who: Viewer,
) -> Result<Json<PrivacyMetrics>, ApiError> {
    let ledger = s.store().privacy_ledger(None).await?;
    let federation = s.store().latest_fl_federation().await?;
    let whole = |e: &&PrivacyEntry| e.site_id.is_none();
    let latest = match &federation {
        // The configured federation's own ledger (none: it spends no ε).
        Some(f) => ledger
            .iter()
            .filter(whole)
            .filter(|e| e.federation_id == f.id)
            .max_by_key(|e| e.round_number),
        None => ledger.iter().filter(whole).max_by(|a, b| {
            a.recorded_at
                .cmp(&b.recorded_at)
                .then(a.round_number.cmp(&b.round_number))
        }),
    };
    let (epsilon, delta, rounds) = match latest {
        Some(l) => (
            Some(l.epsilon),
            Some(l.delta),
            ledger
                .iter()
                .filter(whole)
                .filter(|e| e.federation_id == l.federation_id)
                .count() as u64,
        ),
        None => (None, None, 0),
    };
    let budget = s
        .inner
        .config
        .privacy_budget
        .or_else(|| federation.as_ref()?.dp.as_ref().map(|d| d.max_epsilon));
    let remaining = match (budget, epsilon) {
        (Some(b), Some(e)) => Some((b - e).max(0.0)),
        (Some(b), None) => Some(b),
        _ => None,
    };
    Ok(Json(PrivacyMetrics {
        epsilon,
        delta,
        budget,
        remaining,
        rounds,
        aggregation: federation.as_ref().map(aggregation),
        federation,
        ledger,
    }))
}
