//! `/api/alerts`: incidents with their evidence, the seeds' shapes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use fedics_core::{AlertEvent, AlertSource, AlertStatus, SCHEMA_VERSION, Severity};
use fedics_store::{
    AlertDetail, AlertPage, AlertQuery, AlertRow, AlertStats, AuditPage, AuditQuery, WriteBatch,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{check_technique_id, parse_enum, text_field};
use crate::AppState;
use crate::audit::AuditTarget;
use crate::auth::{Analyst, Viewer};
use crate::error::{ApiError, ErrorBody, FieldError, ValidationBody};
use crate::params::{Params, ValidJson, path_uuid};

/// Query of `GET /api/alerts` (all optional; they combine with AND).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AlertListQuery {
    /// `critical`, `high`, `medium`, `low` (or `all`).
    severity: Option<String>,
    /// Facility id.
    facility: Option<String>,
    /// `new`, `acknowledged`, `resolved`, `false-positive` (or `all`).
    status_filter: Option<String>,
    /// Case-insensitive substring of title, description, technique id or name.
    search: Option<String>,
    /// Alerts active within the last `<n>m`, `<n>h` or `<n>d` (e.g. `1h`, `24h`, `7d`).
    time_range: Option<String>,
    /// Page number, from 1.
    page: Option<u32>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
}

/// Parses `<n>m|h|d` into a duration.
fn parse_range(v: &str) -> Option<chrono::Duration> {
    let v = v.trim();
    let unit = v.chars().last()?;
    let num = &v[..v.len() - unit.len_utf8()];
    let n: i64 = num.parse().ok().filter(|n| *n > 0 && *n <= 100_000)?;
    match unit {
        'm' => Some(chrono::Duration::minutes(n)),
        'h' => Some(chrono::Duration::hours(n)),
        'd' => Some(chrono::Duration::days(n)),
        _ => None,
    }
}

/// An optional filter value: `None` when absent or `all`.
fn filter<T: serde::de::DeserializeOwned>(p: &mut Params, name: &str, expected: &str) -> Option<T> {
    let v = p.text(name)?;
    if v == "all" {
        return None;
    }
    match parse_enum::<T>(&v) {
        Some(t) => Some(t),
        None => {
            // Re-read through `parse` to record the error with the field name.
            p.parse::<Never>(name, expected);
            None
        }
    }
}

/// A type whose parsing always fails (used to record an error for a field).
struct Never;
impl std::str::FromStr for Never {
    type Err = ();
    fn from_str(_: &str) -> Result<Self, ()> {
        Err(())
    }
}

#[utoipa::path(get, path = "/api/alerts", tag = "alerts",
    params(AlertListQuery),
    responses(
        (status = 200, description = "One page of alerts, most recently active first", body = AlertPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_alerts(
    State(s): State<AppState>,
    _who: Viewer,
    mut p: Params,
) -> Result<Response, ApiError> {
    let severity = filter::<Severity>(&mut p, "severity", "critical, high, medium, low or all");
    let status = filter::<AlertStatus>(
        &mut p,
        "status_filter",
        "new, acknowledged, resolved, false-positive or all",
    );
    let facility_id = p.text("facility");
    let search = p.text("search");
    let since = match p.text("time_range") {
        None => None,
        Some(r) => match parse_range(&r) {
            Some(d) => Some(Utc::now() - d),
            None => {
                p.parse::<Never>("time_range", "<n>m, <n>h or <n>d, e.g. 24h");
                None
            }
        },
    };
    let page = p.int_in("page", 1, i64::from(u32::MAX), 1);
    let limit = p.int_in("limit", 1, i64::from(AlertQuery::MAX_LIMIT), 50);
    p.finish()?;
    let q = AlertQuery {
        severity,
        facility_id,
        status,
        search,
        since,
        until: None,
        page: u32::try_from(page).unwrap_or(1),
        limit: u32::try_from(limit).unwrap_or(50),
    };
    // The page is written straight from the stored text (same JSON as `AlertPage`).
    let body = s.store().list_alerts_json(&q).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/alerts/stats", tag = "alerts",
    responses(
        (status = 200, description = "Alert counters", body = AlertStats),
        (status = 401, description = "Not authenticated", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn alert_stats(
    State(s): State<AppState>,
    _who: Viewer,
) -> Result<Json<AlertStats>, ApiError> {
    Ok(Json(s.store().alert_stats().await?))
}

/// One contributing feature of a detector's explanation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopFeature {
    /// Detector that explained its score with this feature.
    pub detector: String,
    pub name: String,
    pub value: Option<f64>,
    /// Share of the score (0..1).
    pub contribution: Option<f64>,
}

/// An alert with its evidence: detector and classifier sources with their scores, the top
/// features of the explanations, model versions, flow ids and predictions.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertResponse {
    #[serde(flatten)]
    pub detail: AlertDetail,
    pub top_features: Vec<TopFeature>,
}

impl AlertResponse {
    fn new(detail: AlertDetail) -> Self {
        let mut top_features = Vec::new();
        for s in &detail.sources {
            if let Some(list) = s
                .context_evidence
                .get("top_features")
                .and_then(|v| v.as_array())
            {
                for f in list {
                    let Some(name) = f.get("name").and_then(|v| v.as_str()) else {
                        continue;
                    };
                    top_features.push(TopFeature {
                        detector: s.model_name.clone(),
                        name: name.to_string(),
                        value: f.get("value").and_then(|v| v.as_f64()),
                        contribution: f.get("contribution").and_then(|v| v.as_f64()),
                    });
                }
            }
        }
        top_features.sort_by(|a, b| {
            b.contribution
                .unwrap_or(0.0)
                .total_cmp(&a.contribution.unwrap_or(0.0))
        });
        Self {
            detail,
            top_features,
        }
    }
}

async fn fetch(s: &AppState, id: Uuid) -> Result<AlertDetail, ApiError> {
    s.store()
        .get_alert(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("alert {id}")))
}

#[utoipa::path(get, path = "/api/alerts/{id}", tag = "alerts",
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert with its evidence", body = AlertResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_alert(
    State(s): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<AlertResponse>, ApiError> {
    let id = path_uuid("id", &id)?;
    Ok(Json(AlertResponse::new(fetch(&s, id).await?)))
}

#[utoipa::path(get, path = "/api/alerts/{id}/flows", tag = "alerts",
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The flow records the alert covers", body = Vec<serde_json::Value>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn alert_flows(
    State(s): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<Vec<fedics_core::FlowRecord>>, ApiError> {
    let id = path_uuid("id", &id)?;
    fetch(&s, id).await?;
    Ok(Json(s.store().alert_flows(id).await?))
}

#[utoipa::path(get, path = "/api/alerts/{id}/audit", tag = "alerts",
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Who changed the alert, newest first", body = AuditPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the analyst role", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn alert_audit(
    State(s): State<AppState>,
    _who: Analyst,
    Path(id): Path<String>,
) -> Result<Json<AuditPage>, ApiError> {
    let id = path_uuid("id", &id)?;
    fetch(&s, id).await?;
    let q = AuditQuery {
        actor: None,
        target: Some(format!("alert:{id}")),
        limit: 200,
        offset: 0,
    };
    Ok(Json(s.store().list_audit(&q).await?))
}

/// Body of `PUT /api/alerts/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusUpdate {
    /// `new`, `acknowledged`, `resolved` or `false-positive`.
    #[schema(value_type = String, example = "acknowledged")]
    pub status: AlertStatus,
}

#[utoipa::path(put, path = "/api/alerts/{id}/status", tag = "alerts",
    params(("id" = Uuid, Path, description = "Alert id")),
    request_body = StatusUpdate,
    responses(
        (status = 200, description = "The alert after the change", body = AlertRow),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the analyst role", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 422, description = "Invalid status or id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn set_status(
    State(s): State<AppState>,
    _who: Analyst,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<StatusUpdate>,
) -> Result<Json<AlertRow>, ApiError> {
    let id = path_uuid("id", &id)?;
    if !s.store().set_alert_status(id, body.status).await? {
        return Err(ApiError::not_found(format!("alert {id}")));
    }
    Ok(Json(fetch(&s, id).await?.alert))
}

/// One source of evidence of a new alert.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCreate {
    /// 1 anomaly detection, 2 classification, 3 prediction.
    pub layer: u8,
    pub model_name: String,
    #[serde(default)]
    pub model_version: String,
    /// 0..1.
    pub confidence: f64,
    pub detection_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub evidence: String,
    #[serde(default)]
    pub context_evidence: serde_json::Value,
}

/// Body of `POST /api/alerts` (an alert raised by an external sensor or an analyst).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertCreate {
    pub facility_id: String,
    #[schema(value_type = String, example = "high")]
    pub severity: Severity,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// ATT&CK for ICS technique id, e.g. `T0855`.
    pub attack_type: String,
    /// Technique name; default: the ATT&CK name of `attack_type`.
    pub attack_name: Option<String>,
    #[serde(default)]
    pub correlation_confidence: f64,
    #[serde(default)]
    pub correlation_summary: String,
    #[schema(value_type = Option<String>)]
    pub src_ip: Option<IpAddr>,
    #[schema(value_type = Option<String>)]
    pub dst_ip: Option<IpAddr>,
    /// Default: the tactics of `attack_type`.
    pub tactic_ids: Option<Vec<String>>,
    /// When the incident started; default now.
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sources: Vec<SourceCreate>,
    /// Flows the alert covers.
    #[serde(default)]
    pub flow_ids: Vec<Uuid>,
}

fn in_unit(errors: &mut Vec<FieldError>, loc: Vec<serde_json::Value>, v: f64) {
    if !(0.0..=1.0).contains(&v) {
        errors.push(FieldError {
            loc,
            msg: format!("{v} is not a probability: expected a number from 0 to 1"),
            kind: "value_error".into(),
        });
    }
}

impl AlertCreate {
    fn validate(&self) -> Result<(), ApiError> {
        let mut e = Vec::new();
        text_field(&mut e, "facility_id", &self.facility_id, 1, 256);
        text_field(&mut e, "title", &self.title, 1, 512);
        if self.description.chars().count() > 8192 {
            e.push(FieldError::new(
                "body",
                "description",
                "longer than 8192 characters",
            ));
        }
        if let Err(m) = check_technique_id(&self.attack_type) {
            e.push(FieldError::new("body", "attack_type", m));
        }
        in_unit(
            &mut e,
            vec!["body".into(), "correlation_confidence".into()],
            self.correlation_confidence,
        );
        if self.sources.len() > 32 {
            e.push(FieldError::new("body", "sources", "at most 32 sources"));
        }
        if self.flow_ids.len() > AlertEvent::MAX_FLOWS {
            e.push(FieldError::new(
                "body",
                "flow_ids",
                format!("at most {} flow ids", AlertEvent::MAX_FLOWS),
            ));
        }
        for (i, src) in self.sources.iter().enumerate() {
            let at = |f: &str| -> Vec<serde_json::Value> {
                vec!["body".into(), "sources".into(), i.into(), f.into()]
            };
            if !(1..=3).contains(&src.layer) {
                e.push(FieldError {
                    loc: at("layer"),
                    msg: format!("{} is not a layer: expected 1, 2 or 3", src.layer),
                    kind: "value_error".into(),
                });
            }
            if src.model_name.trim().is_empty() || src.model_name.len() > 128 {
                e.push(FieldError {
                    loc: at("model_name"),
                    msg: "expected 1 to 128 characters".into(),
                    kind: "value_error".into(),
                });
            }
            in_unit(&mut e, at("confidence"), src.confidence);
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(e))
        }
    }
}

#[utoipa::path(post, path = "/api/alerts", tag = "alerts",
    request_body = AlertCreate,
    responses(
        (status = 201, description = "The stored alert", body = AlertResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Needs the analyst role", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_alert(
    State(s): State<AppState>,
    _who: Analyst,
    ValidJson(body): ValidJson<AlertCreate>,
) -> Result<Response, ApiError> {
    body.validate()?;
    let now = Utc::now();
    let at = body.timestamp.unwrap_or(now);
    let technique = fedics_core::attack::technique(&body.attack_type);
    let attack_name = body
        .attack_name
        .clone()
        .unwrap_or_else(|| fedics_core::attack::technique_name(&body.attack_type).to_string());
    let tactic_ids = body.tactic_ids.clone().unwrap_or_else(|| {
        technique
            .map(|t| t.tactics.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default()
    });
    let mut model_versions = BTreeMap::new();
    let sources: Vec<AlertSource> = body
        .sources
        .into_iter()
        .map(|src| {
            model_versions.insert(src.model_name.clone(), src.model_version.clone());
            AlertSource {
                layer: src.layer,
                model_name: src.model_name,
                model_version: src.model_version,
                confidence: src.confidence,
                detection_time: src.detection_time.unwrap_or(at),
                evidence: src.evidence,
                context_evidence: src.context_evidence,
            }
        })
        .collect();
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let alert_id = Uuid::new_v4();
    let event = AlertEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::new_v4(),
        alert_id,
        facility_id: body.facility_id,
        timestamp: now,
        first_seen: at,
        last_seen: at,
        severity: body.severity,
        title: body.title,
        description: body.description,
        status: AlertStatus::New,
        attack_type: body.attack_type,
        attack_name,
        tactic_ids,
        correlation_confidence: body.correlation_confidence,
        correlation_summary: body.correlation_summary,
        src_ip: body.src_ip.unwrap_or(unspecified),
        dst_ip: body.dst_ip.unwrap_or(unspecified),
        sources,
        flow_ids: body.flow_ids,
        model_versions,
        prediction: None,
    };
    s.store()
        .apply(&WriteBatch {
            alerts: vec![event],
            ..WriteBatch::default()
        })
        .await?;
    let detail = fetch(&s, alert_id).await?;
    let mut r = (StatusCode::CREATED, Json(AlertResponse::new(detail))).into_response();
    r.extensions_mut()
        .insert(AuditTarget(format!("alert:{alert_id}")));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("24h"), Some(chrono::Duration::hours(24)));
        assert_eq!(parse_range("7d"), Some(chrono::Duration::days(7)));
        assert_eq!(parse_range("15m"), Some(chrono::Duration::minutes(15)));
        assert_eq!(parse_range("0h"), None);
        assert_eq!(parse_range("h"), None);
        assert_eq!(parse_range("1y"), None);
        assert_eq!(parse_range("é"), None);
    }
}
