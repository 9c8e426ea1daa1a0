//! `/api/mitre`: the ATT&CK for ICS matrix, what was detected, and what the predictor
//! expects next (its stored probabilities).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::check_technique_id;
use crate::AppState;
use crate::auth::Viewer;
use crate::error::{ApiError, ErrorBody, ValidationBody};

/// Detections of a technique at one facility.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FacilitySeen {
    pub facility_id: String,
    pub alerts: u64,
    pub last_seen: DateTime<Utc>,
}

/// A technique in the graph: detected, predicted, or both.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GraphNode {
    pub id: String,
    pub name: String,
    /// Tactic ids in matrix order.
    pub tactics: Vec<String>,
    /// Seen in at least one alert.
    pub detected: bool,
    /// Alerts of this technique, all facilities.
    pub alerts: u64,
    pub facilities: Vec<FacilitySeen>,
    /// Highest probability with which it is predicted next (None: not predicted).
    pub predicted_probability: Option<f64>,
}

/// "After `source`, `target` follows with `probability`" (the newest prediction made for
/// `source`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GraphEdge {
    pub source: String,
    pub target: String,
    pub probability: f64,
    pub rank: u8,
    pub timeframe: String,
    /// The prediction the edge comes from.
    pub prediction_id: uuid::Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttackGraph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

fn tactics_of(id: &str) -> Vec<String> {
    fedics_core::attack::technique(id)
        .map(|t| t.tactics.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/api/mitre/graph", tag = "mitre",
    responses(
        (status = 200, description = "Detected techniques and predicted next techniques", body = AttackGraph),
        (status = 401, description = "Not authenticated", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn graph(State(s): State<AppState>, _who: Viewer) -> Result<Json<AttackGraph>, ApiError> {
    let seen = s.store().techniques_seen().await?;
    let predictions = s.store().latest_predictions_by_technique().await?;
    let mut nodes: BTreeMap<String, GraphNode> = BTreeMap::new();
    let node = |nodes: &mut BTreeMap<String, GraphNode>, id: &str, name: &str| {
        nodes
            .entry(id.to_string())
            .or_insert_with(|| GraphNode {
                id: id.to_string(),
                name: if name.is_empty() {
                    fedics_core::attack::technique_name(id).to_string()
                } else {
                    name.to_string()
                },
                tactics: tactics_of(id),
                detected: false,
                alerts: 0,
                facilities: Vec::new(),
                predicted_probability: None,
            })
            .id
            .clone()
    };
    for t in seen {
        let id = node(&mut nodes, &t.technique_id, &t.technique_name);
        if let Some(n) = nodes.get_mut(&id) {
            n.detected = true;
            n.alerts += t.alerts;
            n.facilities.push(FacilitySeen {
                facility_id: t.facility_id,
                alerts: t.alerts,
                last_seen: t.last_seen,
            });
        }
    }
    let mut edges = Vec::new();
    for p in predictions {
        node(&mut nodes, &p.current_technique, &p.current_technique_name);
        for t in &p.predicted_techniques {
            let id = node(&mut nodes, &t.technique_id, &t.technique_name);
            if let Some(n) = nodes.get_mut(&id) {
                n.predicted_probability =
                    Some(n.predicted_probability.unwrap_or(0.0).max(t.probability));
            }
            edges.push(GraphEdge {
                source: p.current_technique.clone(),
                target: t.technique_id.clone(),
                probability: t.probability,
                rank: t.rank,
                timeframe: t.timeframe.clone(),
                prediction_id: p.id,
            });
        }
    }
    Ok(Json(AttackGraph {
        nodes: nodes.into_values().collect(),
        edges,
    }))
}

/// A tactic (matrix column).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TacticSummary {
    pub id: String,
    pub shortname: String,
    pub name: String,
    pub order: u8,
}

/// A technique of the matrix.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TechniqueSummary {
    pub id: String,
    pub name: String,
    pub tactics: Vec<String>,
}

/// The ATT&CK for ICS matrix.
#[derive(Debug, Serialize, ToSchema)]
pub struct Matrix {
    /// ATT&CK version of the loaded bundle (None: the built-in v18.1 table).
    pub version: Option<String>,
    pub tactics: Vec<TacticSummary>,
    pub techniques: Vec<TechniqueSummary>,
}

#[utoipa::path(get, path = "/api/mitre/techniques", tag = "mitre",
    responses(
        (status = 200, description = "Tactics and techniques of ATT&CK for ICS", body = Matrix),
        (status = 401, description = "Not authenticated", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn techniques(State(s): State<AppState>, _who: Viewer) -> Json<Matrix> {
    Json(match &s.inner.bundle {
        Some(b) => Matrix {
            version: b.version().map(str::to_string),
            tactics: b
                .tactics()
                .iter()
                .map(|t| TacticSummary {
                    id: t.id.clone(),
                    shortname: t.shortname.clone(),
                    name: t.name.clone(),
                    order: t.order,
                })
                .collect(),
            techniques: b
                .techniques()
                .map(|t| TechniqueSummary {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    tactics: t.tactics.clone(),
                })
                .collect(),
        },
        None => Matrix {
            version: None,
            tactics: fedics_core::attack::TACTICS
                .iter()
                .map(|t| TacticSummary {
                    id: t.id.into(),
                    shortname: t.shortname.into(),
                    name: t.name.into(),
                    order: t.order,
                })
                .collect(),
            techniques: fedics_core::attack::TECHNIQUES
                .iter()
                .map(|t| TechniqueSummary {
                    id: t.id.into(),
                    name: t.name.into(),
                    tactics: t.tactics.iter().map(|x| x.to_string()).collect(),
                })
                .collect(),
        },
    })
}

/// A technique with its description, detections and mitigations (from the ATT&CK bundle
/// when one is loaded; otherwise name and tactics only).
#[derive(Debug, Serialize, ToSchema)]
pub struct TechniqueInfo {
    pub id: String,
    pub name: String,
    pub tactics: Vec<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub assets: Vec<String>,
    /// Detection strategies (`{id, name, description, analytics}`).
    pub detection: Vec<serde_json::Value>,
    /// Mitigations (`{id, name, description}`).
    pub mitigations: Vec<serde_json::Value>,
    /// Whether the full ATT&CK bundle is loaded (descriptions need it).
    pub bundle_loaded: bool,
}

#[utoipa::path(get, path = "/api/mitre/technique/{id}", tag = "mitre",
    params(("id" = String, Path, description = "Technique id, e.g. T0855")),
    responses(
        (status = 200, description = "The technique", body = TechniqueInfo),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "Not an ATT&CK for ICS technique", body = ErrorBody),
        (status = 422, description = "Malformed technique id", body = ValidationBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn technique(
    State(s): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<TechniqueInfo>, ApiError> {
    check_technique_id(&id).map_err(|m| ApiError::field("path", "id", m))?;
    if let Some(t) = s.inner.bundle.as_ref().and_then(|b| b.technique(&id)) {
        let detection: Vec<serde_json::Value> = t
            .detection
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect();
        let mitigations: Vec<serde_json::Value> = t
            .mitigations
            .iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect();
        return Ok(Json(TechniqueInfo {
            id: t.id.clone(),
            name: t.name.clone(),
            tactics: t.tactics.clone(),
            description: Some(t.description.clone()),
            url: t.url.clone(),
            assets: t.assets.clone(),
            detection,
            mitigations,
            bundle_loaded: true,
        }));
    }
    let t = fedics_core::attack::technique(&id)
        .ok_or_else(|| ApiError::not_found(format!("technique {id}")))?;
    Ok(Json(TechniqueInfo {
        id: t.id.into(),
        name: t.name.into(),
        tactics: t.tactics.iter().map(|x| x.to_string()).collect(),
        description: None,
        url: None,
        assets: Vec::new(),
        detection: Vec::new(),
        mitigations: Vec::new(),
        bundle_loaded: s.inner.bundle.is_some(),
    }))
}
