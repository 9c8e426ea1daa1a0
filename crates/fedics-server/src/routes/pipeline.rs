//! `GET /api/pipeline/counters`: the live counters of the pipeline beside the server, with
//! the recent samples the `dashboard_update` messages carried, so a dashboard can draw
//! rates (flows/s, anomalous flows/s per facility) before its first WebSocket push.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ErrorBody;

/// Cumulative counts of one facility since the pipeline started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FacilityCounters {
    /// Flows the detectors judged.
    pub flows_in: u64,
    /// Of those, flows with at least one anomalous verdict (counted once per flow).
    pub anomalies: u64,
}

/// Cumulative counters of the pipeline since it started (rates are differences between two
/// samples divided by the time between them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PipelineCounters {
    /// Flows published into the pipeline.
    pub flows_in: u64,
    /// Flows whose verdicts were joined and decided.
    pub flows_classified: u64,
    /// Anomalous detector verdicts (a flow flagged by two detectors counts twice).
    pub anomalies: u64,
    /// Flows classified as an ATT&CK technique.
    pub attacks: u64,
    /// Flows decided without every detector's verdict (join deadline).
    pub join_deadline_expired: u64,
    pub alerts_low: u64,
    pub alerts_medium: u64,
    pub alerts_high: u64,
    pub alerts_critical: u64,
    /// Incident updates (alerts raised or extended).
    pub incidents: u64,
    pub predictions: u64,
    /// Malformed records rejected by a stage.
    pub rejected: u64,
    /// Records written to the store.
    pub persisted: u64,
    /// Failed store writes (retried).
    pub store_errors: u64,
    /// By facility id (at most the pipeline's cap; the rest in `facilities_overflow`).
    pub facilities: BTreeMap<String, FacilityCounters>,
    /// Flows of facilities beyond the cap, all together.
    pub facilities_overflow: FacilityCounters,
}

/// The counters at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineSample {
    pub timestamp: DateTime<Utc>,
    pub counters: PipelineCounters,
}

/// Answer of `GET /api/pipeline/counters`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PipelineHistory {
    /// Whether every stage runs; `None`: no pipeline in this process (then `samples` is
    /// empty).
    pub running: Option<bool>,
    /// Seconds between samples (the `dashboard_update` interval).
    pub interval_s: f64,
    /// The latest samples, oldest first (the same values the `dashboard_update` messages
    /// carried as `pipeline`); at most [`HISTORY_MAX`].
    pub samples: Vec<PipelineSample>,
}

/// Samples kept (at the default 5 s interval: ten minutes).
pub const HISTORY_MAX: usize = 121;

#[utoipa::path(get, path = "/api/pipeline/counters", tag = "system",
    responses(
        (status = 200, description = "The pipeline's counters, latest samples oldest first", body = PipelineHistory),
        (status = 401, description = "Not authenticated", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn counters(State(s): State<AppState>, _who: Viewer) -> Json<PipelineHistory> {
    Json(PipelineHistory {
        running: s.inner.pipeline.as_ref().map(|p| p.running()),
        interval_s: s.hub().sample_interval().as_secs_f64(),
        samples: s.hub().pipeline_samples(),
    })
}
