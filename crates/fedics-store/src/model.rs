//! Public types: what is written and what is read back.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use fedics_core::{
    AlertEvent, AlertStatus, AttackClassification, AttackPrediction, FlowRecord,
    PredictedTechnique, Severity,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Events to write in one transaction (see [`crate::Store::apply`]).
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub alerts: Vec<AlertEvent>,
    pub classifications: Vec<ClassificationRecord>,
    pub predictions: Vec<AttackPrediction>,
}

/// A classification as stored: the event's columns, with its evidence as JSON text. Built
/// from an [`AttackClassification`] with [`ClassificationRecord::from_event`], or directly
/// by a consumer that already holds the evidence as JSON (no decode/encode round trip).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationRecord {
    pub id: Uuid,
    pub flow_id: Uuid,
    pub facility_id: String,
    pub timestamp: DateTime<Utc>,
    pub technique_id: String,
    pub technique_name: String,
    pub confidence: f64,
    pub classifier: String,
    pub classifier_version: String,
    /// `AttackClassification::evidence` as a JSON array.
    pub evidence_json: String,
    /// The classified flow, when the event carried its record.
    pub flow: Option<StoredFlow>,
}

/// A flow record as stored: the columns the store indexes, and the record as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    pub flow_id: Uuid,
    pub facility_id: String,
    pub ts_start: DateTime<Utc>,
    pub ts_end: DateTime<Utc>,
    pub src_ip: std::net::IpAddr,
    pub dst_ip: std::net::IpAddr,
    pub dst_port: u16,
    /// Ground-truth label, when the flow carried one.
    pub label: Option<String>,
    /// The whole `FlowRecord` as JSON.
    pub record_json: String,
}

impl StoredFlow {
    pub fn from_record(f: &FlowRecord) -> Result<Self, crate::StoreError> {
        Ok(Self {
            flow_id: f.flow_id,
            facility_id: f.facility_id.clone(),
            ts_start: f.ts_start,
            ts_end: f.ts_end,
            src_ip: f.src_ip,
            dst_ip: f.dst_ip,
            dst_port: f.dst_port,
            label: f.ground_truth.as_ref().map(|g| g.label.clone()),
            record_json: serde_json::to_string(f).map_err(|e| crate::StoreError::Encode {
                op: "flow",
                field: "record",
                message: e.to_string(),
            })?,
        })
    }
}

impl ClassificationRecord {
    pub fn from_event(c: &AttackClassification) -> Result<Self, crate::StoreError> {
        Ok(Self {
            id: c.event_id,
            flow_id: c.flow_id,
            facility_id: c.facility_id.clone(),
            timestamp: c.timestamp,
            technique_id: c.technique_id.clone(),
            technique_name: c.technique_name.clone(),
            confidence: c.confidence,
            classifier: c.classifier.clone(),
            classifier_version: c.classifier_version.clone(),
            evidence_json: serde_json::to_string(&c.evidence).map_err(|e| {
                crate::StoreError::Encode {
                    op: "classification",
                    field: "evidence",
                    message: e.to_string(),
                }
            })?,
            flow: c.flow.as_deref().map(StoredFlow::from_record).transpose()?,
        })
    }
}

impl WriteBatch {
    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.classifications.is_empty() && self.predictions.is_empty()
    }

    /// Number of events in the batch.
    pub fn len(&self) -> usize {
        self.alerts.len() + self.classifications.len() + self.predictions.len()
    }
}

/// One stored alert (an incident), the seeds' `Alert` plus our columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRow {
    pub id: Uuid,
    /// When the incident started (= `first_seen`), the seeds' `timestamp`.
    #[serde(with = "fedics_core::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub facility_id: String,
    /// The most severe severity of any update.
    pub severity: Severity,
    pub title: String,
    pub description: String,
    pub status: AlertStatus,
    /// ATT&CK for ICS technique id.
    pub attack_type: String,
    pub attack_name: String,
    /// The highest correlation confidence of any update.
    pub correlation_confidence: f64,
    pub correlation_summary: String,
    /// `{"src_ip", "dst_ip", "tactic_ids", "model_versions"}` of the latest update.
    pub context_analysis: serde_json::Value,
    #[serde(with = "fedics_core::time::rfc3339")]
    pub first_seen: DateTime<Utc>,
    #[serde(with = "fedics_core::time::rfc3339")]
    pub last_seen: DateTime<Utc>,
    pub tactic_ids: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub src_ip: IpAddr,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub dst_ip: IpAddr,
    /// Number of distinct flows linked to the alert.
    pub flow_count: u64,
    pub model_versions: BTreeMap<String, String>,
}

/// One source of an alert: a detector or the classifier (the seeds' `AlertSource`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertSourceRow {
    /// UUIDv5 of (alert id, model name).
    pub id: Uuid,
    pub alert_id: Uuid,
    pub layer: u8,
    pub model_name: String,
    pub model_version: String,
    /// The highest confidence this source reported for the alert.
    pub confidence: f64,
    /// Time of the latest evidence.
    #[serde(with = "fedics_core::time::rfc3339")]
    pub detection_time: DateTime<Utc>,
    /// The latest evidence.
    pub evidence: String,
    pub context_evidence: serde_json::Value,
}

/// A stored prediction with its ranked techniques (rank order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PredictionRow {
    /// The prediction's event id.
    pub id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub facility_id: String,
    pub alert_id: Uuid,
    pub current_technique: String,
    pub current_technique_name: String,
    pub validated: bool,
    pub validation_time: Option<DateTime<Utc>>,
    pub model: String,
    pub observations: u64,
    pub predicted_techniques: Vec<PredictedTechnique>,
}

/// An alert with everything attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertRow,
    /// Sources ordered by layer, then model name.
    pub sources: Vec<AlertSourceRow>,
    /// Ids of the flows the alert covers (sorted).
    pub flow_ids: Vec<Uuid>,
    /// Predictions made for this alert, oldest first.
    pub predictions: Vec<PredictionRow>,
}

/// Filters and page of [`crate::Store::list_alerts`]. Every filter is optional; they combine
/// with AND.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertQuery {
    pub severity: Option<Severity>,
    pub facility_id: Option<String>,
    pub status: Option<AlertStatus>,
    /// Case-insensitive substring of title, description, attack_type or attack_name
    /// (`%` and `_` match themselves).
    pub search: Option<String>,
    /// Alerts still active at or after this time (`last_seen >= since`).
    pub since: Option<DateTime<Utc>>,
    /// Alerts that had started by this time (`first_seen <= until`).
    pub until: Option<DateTime<Utc>>,
    /// 1-based page number; 0 counts as 1.
    pub page: u32,
    /// Page size, clamped to `1..=AlertQuery::MAX_LIMIT`.
    pub limit: u32,
}

impl AlertQuery {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 1000;

    /// The effective page (>= 1).
    pub fn effective_page(&self) -> u32 {
        self.page.max(1)
    }

    /// The effective page size (1..=MAX_LIMIT).
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for AlertQuery {
    fn default() -> Self {
        Self {
            severity: None,
            facility_id: None,
            status: None,
            search: None,
            since: None,
            until: None,
            page: 1,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of alerts, ordered by `last_seen` descending, then id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertPage {
    pub alerts: Vec<AlertRow>,
    /// Alerts matching the filters, over all pages.
    pub total: u64,
    /// The page returned (1-based).
    pub page: u32,
    /// Number of pages (`ceil(total / limit)`, 0 when nothing matches).
    pub pages: u32,
    /// The page size used.
    pub limit: u32,
}

/// Alert counters for the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertStats {
    pub total: u64,
    pub critical: u64,
    /// Status `new` or `acknowledged`.
    pub unresolved: u64,
    pub false_positives: u64,
}

/// A technique alerts were raised for at one facility (see
/// [`crate::Store::techniques_seen`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TechniqueSeen {
    /// ATT&CK for ICS technique id (the alerts' `attack_type`).
    pub technique_id: String,
    /// The alerts' `attack_name`.
    pub technique_name: String,
    pub facility_id: String,
    /// Number of alerts (incidents) of this technique at this facility.
    pub alerts: u64,
    /// The latest `last_seen` of those alerts.
    #[serde(with = "fedics_core::time::rfc3339")]
    pub last_seen: DateTime<Utc>,
}
