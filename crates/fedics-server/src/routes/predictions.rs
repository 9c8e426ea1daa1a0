//! `/api/predictions`: the predictor's next-technique predictions and their validation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use fedics_core::{AttackPrediction, PredictedTechnique, SCHEMA_VERSION};
use fedics_store::{PredictionRow, WriteBatch};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{check_technique_id, text_field};
use crate::AppState;
use crate::audit::AuditTarget;
use crate::auth::{Analyst, Viewer};
use crate::error::{ApiError, ErrorBody, FieldError, ValidationBody};
use crate::params::{Params, ValidJson, path_uuid};

/// Query of `GET /api/predictions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PredictionListQuery {
    /// 1 to 1000 (default 50).
    limit: Option<u32>,
    /// Predictions to skip (default 0).
    offset: Option<u32>,
    /// Only validated (`true`) or not yet validated (`false`) predictions.
    validated: Option<bool>,
}

#[utoipa::path(get, path = "/api/predictions", tag = "predictions",
    params(PredictionListQuery),
    responses(
        (status = 200, description = "Predictions, newest first (total in X-Total-Count)", body = Vec<PredictionRow>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_predictions(
    State(s): State<AppState>,
    _who: Viewer,
    mut p: Params,
) -> Result<Response, ApiError> {
    let limit = p.int_in("limit", 1, 1000, 50);
    let offset = p.int_in("offset", 0, i64::from(u32::MAX), 0);
    let validated = p.bool("validated");
    p.finish()?;
    let (limit, offset) = (
        u32::try_from(limit).unwrap_or(50),
        u32::try_from(offset).unwrap_or(0),
    );
    let rows = s.store().list_predictions(limit, offset, validated).await?;
    let total = s.store().count_predictions_where(validated).await?;
    let mut r = Json(rows).into_response();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        r.headers_mut().insert("x-total-count", v);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/api/predictions/latest", tag = "predictions",
    responses(
        (status = 200, description = "The newest prediction", body = PredictionRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No prediction yet", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn latest_prediction(
    State(s): State<AppState>,
    _who: Viewer,
) -> Result<Json<PredictionRow>, ApiError> {
    s.store()
        .latest_prediction()
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("prediction"))
}

#[utoipa::path(get, path = "/api/predictions/{id}", tag = "predictions",
    params(("id" = Uuid, Path, description = "Prediction id")),
    responses(
        (status = 200, description = "The prediction", body = PredictionRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such prediction", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_prediction(
    State(s): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<PredictionRow>, ApiError> {
    let id = path_uuid("id", &id)?;
    s.store()
        .get_prediction(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("prediction {id}")))
}

/// Body of `POST /api/predictions/{id}/validate` (optional; default validates).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    /// `true` marks the prediction validated (now); `false` clears the mark.
    #[serde(default = "yes")]
    pub validated: bool,
}

fn yes() -> bool {
    true
}

impl Default for ValidateBody {
    /// No body: validate.
    fn default() -> Self {
        Self { validated: true }
    }
}

#[utoipa::path(post, path = "/api/predictions/{id}/validate", tag = "predictions",
    params(("id" = Uuid, Path, description = "Prediction id")),
    request_body(content = Option<ValidateBody>, description = "Optional; default validates"),
    responses(
        (status = 200, description = "The prediction after the change", body = PredictionRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the analyst role", body = ErrorBody),
        (status = 404, description = "No such prediction", body = ErrorBody),
        (status = 422, description = "Malformed id or body", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn validate_prediction(
    State(s): State<AppState>,
    _who: Analyst,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<PredictionRow>, ApiError> {
    let id = path_uuid("id", &id)?;
    let body: ValidateBody = crate::params::optional_json(&body)?;
    let at = body.validated.then(Utc::now);
    if !s.store().set_prediction_validated(id, at).await? {
        return Err(ApiError::not_found(format!("prediction {id}")));
    }
    s.store()
        .get_prediction(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("prediction {id}")))
}

/// One predicted next technique of a new prediction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictedCreate {
    pub technique_id: String,
    /// Default: the ATT&CK name.
    pub technique_name: Option<String>,
    /// 0..1.
    pub probability: f64,
    /// Default: position in the list (1-based).
    pub rank: Option<u8>,
    #[serde(default)]
    pub timeframe: String,
}

/// Body of `POST /api/predictions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictionCreate {
    pub alert_id: Uuid,
    pub facility_id: String,
    pub current_technique: String,
    pub current_technique_name: Option<String>,
    pub predicted_techniques: Vec<PredictedCreate>,
    /// Default: `api`.
    pub model: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
}

impl PredictionCreate {
    fn validate(&self) -> Result<(), ApiError> {
        let mut e = Vec::new();
        text_field(&mut e, "facility_id", &self.facility_id, 1, 256);
        if let Err(m) = check_technique_id(&self.current_technique) {
            e.push(FieldError::new("body", "current_technique", m));
        }
        if self.predicted_techniques.is_empty() || self.predicted_techniques.len() > 10 {
            e.push(FieldError::new(
                "body",
                "predicted_techniques",
                "expected 1 to 10 techniques",
            ));
        }
        for (i, t) in self.predicted_techniques.iter().enumerate() {
            let at = |f: &str| -> Vec<serde_json::Value> {
                vec![
                    "body".into(),
                    "predicted_techniques".into(),
                    i.into(),
                    f.into(),
                ]
            };
            if let Err(m) = check_technique_id(&t.technique_id) {
                e.push(FieldError {
                    loc: at("technique_id"),
                    msg: m,
                    kind: "value_error".into(),
                });
            }
            if !(0.0..=1.0).contains(&t.probability) {
                e.push(FieldError {
                    loc: at("probability"),
                    msg: format!("{} is not a probability: expected 0 to 1", t.probability),
                    kind: "value_error".into(),
                });
            }
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(e))
        }
    }
}

#[utoipa::path(post, path = "/api/predictions", tag = "predictions",
    request_body = PredictionCreate,
    responses(
        (status = 201, description = "The stored prediction", body = PredictionRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the analyst role", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_prediction(
    State(s): State<AppState>,
    _who: Analyst,
    ValidJson(body): ValidJson<PredictionCreate>,
) -> Result<Response, ApiError> {
    body.validate()?;
    let id = Uuid::new_v4();
    let predicted = body
        .predicted_techniques
        .iter()
        .enumerate()
        .map(|(i, t)| PredictedTechnique {
            technique_id: t.technique_id.clone(),
            technique_name: t.technique_name.clone().unwrap_or_else(|| {
                fedics_core::attack::technique_name(&t.technique_id).to_string()
            }),
            probability: t.probability,
            rank: t.rank.unwrap_or(u8::try_from(i + 1).unwrap_or(u8::MAX)),
            timeframe: t.timeframe.clone(),
        })
        .collect();
    let p = AttackPrediction {
        schema_version: SCHEMA_VERSION,
        event_id: id,
        alert_id: body.alert_id,
        facility_id: body.facility_id.clone(),
        timestamp: body.timestamp.unwrap_or_else(Utc::now),
        current_technique: body.current_technique.clone(),
        current_technique_name: body.current_technique_name.clone().unwrap_or_else(|| {
            fedics_core::attack::technique_name(&body.current_technique).to_string()
        }),
        predicted,
        model: body.model.clone().unwrap_or_else(|| "api".into()),
        observations: 0,
    };
    s.store()
        .apply(&WriteBatch {
            predictions: vec![p],
            ..WriteBatch::default()
        })
        .await?;
    let row = s
        .store()
        .get_prediction(id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("prediction {id} not found after insert")))?;
    let mut r = (StatusCode::CREATED, Json(row)).into_response();
    r.extensions_mut()
        .insert(AuditTarget(format!("prediction:{id}")));
    Ok(r)
}
