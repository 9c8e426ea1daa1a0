//! Events of the pipeline topics after `network_data`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{Validate, ValidationError, finite, probability, version};
use crate::flow::{FlowContext, FlowRecord};

/// One rule that fired on a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFinding {
    /// Rule name from the rule file.
    pub rule: String,
    /// Rule kind (`range`, `rate_of_change`, `interlock`, `function_code`, `unauthorized_write`,
    /// `rogue_server`, `scan_hosts`, `scan_ports`, `flood`).
    pub kind: String,
    /// Technique the rule file maps this rule to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<String>,
    /// How strongly the rule indicates an attack, 0..=1 (from the rule file).
    pub weight: f64,
    /// Human-readable reason with the observed and expected values.
    pub message: String,
}

/// A feature and its contribution to an anomaly score (explanation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    pub name: String,
    pub value: f64,
    pub contribution: f64,
}

/// A detector's verdict on one flow: the `anomalies` topic carries one per flow and detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvent {
    pub schema_version: u16,
    pub event_id: Uuid,
    pub flow_id: Uuid,
    pub facility_id: String,
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// Detector name (`rules`, `iforest`, later `lstm_ae`, ...).
    pub detector: String,
    /// Detection layer (1 = anomaly detection).
    pub layer: u8,
    pub model_version: String,
    /// Anomaly score in 0..=1 when the detector scored the flow; `None` when it abstained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub is_anomaly: bool,
    /// Why the detector abstained (e.g. model still training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstain_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<RuleFinding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_features: Vec<FeatureContribution>,
    /// The flow's 5-tuple and times: on anomalous verdicts (what downstream stages need to
    /// classify and alert); omitted on benign ones, which only complete the join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<FlowContext>,
    /// The flow itself, attached only to anomalous verdicts so alerts can show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Box<FlowRecord>>,
}

impl Validate for AnomalyEvent {
    fn schema_version(&self) -> u16 {
        self.schema_version
    }

    fn validate(&self) -> Result<(), ValidationError> {
        version(self.schema_version)?;
        nonempty("facility_id", &self.facility_id)?;
        nonempty("detector", &self.detector)?;
        if let Some(s) = self.score {
            probability("score", s)?;
        }
        if let Some(t) = self.threshold {
            finite("threshold", t)?;
        }
        for (i, f) in self.findings.iter().enumerate() {
            probability(&format!("findings[{i}].weight"), f.weight)?;
        }
        for (i, f) in self.top_features.iter().enumerate() {
            finite(&format!("top_features[{i}].value"), f.value)?;
            finite(&format!("top_features[{i}].contribution"), f.contribution)?;
        }
        if self.is_anomaly && self.context.is_none() {
            return Err(ValidationError::new(
                "context",
                "the flow context on an anomalous verdict",
            ));
        }
        Ok(())
    }
}

/// What one detector contributed to a classification (kept with the alert as evidence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorEvidence {
    pub detector: String,
    pub layer: u8,
    pub model_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub is_anomaly: bool,
    #[serde(default)]
    pub findings: Vec<RuleFinding>,
    #[serde(default)]
    pub top_features: Vec<FeatureContribution>,
}

impl From<&AnomalyEvent> for DetectorEvidence {
    fn from(a: &AnomalyEvent) -> Self {
        Self {
            detector: a.detector.clone(),
            layer: a.layer,
            model_version: a.model_version.clone(),
            score: a.score,
            threshold: a.threshold,
            is_anomaly: a.is_anomaly,
            findings: a.findings.clone(),
            top_features: a.top_features.clone(),
        }
    }
}

/// The classifier's verdict on an anomalous flow (`attack_classified`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackClassification {
    pub schema_version: u16,
    pub event_id: Uuid,
    pub flow_id: Uuid,
    pub facility_id: String,
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// ATT&CK for ICS technique id, or `"unknown"` for an anomaly no evidence maps to a technique.
    pub technique_id: String,
    pub technique_name: String,
    pub tactic_ids: Vec<String>,
    pub confidence: f64,
    pub classifier: String,
    pub classifier_version: String,
    pub evidence: Vec<DetectorEvidence>,
    /// Detectors whose verdict did not arrive before the join deadline.
    #[serde(default)]
    pub missing_detectors: Vec<String>,
    pub context: FlowContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Box<FlowRecord>>,
}

impl AttackClassification {
    pub const UNKNOWN: &'static str = "unknown";
}

impl Validate for AttackClassification {
    fn schema_version(&self) -> u16 {
        self.schema_version
    }

    fn validate(&self) -> Result<(), ValidationError> {
        version(self.schema_version)?;
        nonempty("facility_id", &self.facility_id)?;
        nonempty("technique_id", &self.technique_id)?;
        probability("confidence", self.confidence)
    }
}

/// One ranked next technique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PredictedTechnique {
    pub technique_id: String,
    pub technique_name: String,
    pub probability: f64,
    pub rank: u8,
    /// Expected time until this step, e.g. `"5-15 minutes"`.
    pub timeframe: String,
}

/// The predictor's forecast after a technique was observed (`attack_predicted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackPrediction {
    pub schema_version: u16,
    pub event_id: Uuid,
    pub facility_id: String,
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub alert_id: Uuid,
    pub current_technique: String,
    pub current_technique_name: String,
    pub predicted: Vec<PredictedTechnique>,
    pub model: String,
    /// Transitions observed by the online model so far (all facilities it learned from).
    pub observations: u64,
}

impl Validate for AttackPrediction {
    fn schema_version(&self) -> u16 {
        self.schema_version
    }

    fn validate(&self) -> Result<(), ValidationError> {
        version(self.schema_version)?;
        nonempty("facility_id", &self.facility_id)?;
        for (i, p) in self.predicted.iter().enumerate() {
            probability(&format!("predicted[{i}].probability"), p.probability)?;
        }
        Ok(())
    }
}

/// Alert severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Alert workflow state (the seeds' values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AlertStatus {
    New,
    Acknowledged,
    Resolved,
    FalsePositive,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::New => "new",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
            AlertStatus::FalsePositive => "false-positive",
        }
    }
}

/// One source of an alert (the seeds' `AlertSource`): a detector or the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSource {
    pub layer: u8,
    pub model_name: String,
    pub model_version: String,
    pub confidence: f64,
    #[serde(with = "crate::time::rfc3339")]
    pub detection_time: DateTime<Utc>,
    pub evidence: String,
    #[serde(default)]
    pub context_evidence: serde_json::Value,
}

/// An alert update (`alerts`): an incident (facility, technique, source host) gained flows.
/// `alert_id` identifies the incident; `event_id` this update. Sinks upsert by `alert_id`
/// and link flows by (`alert_id`, `flow_id`), so replays change nothing. One update carries
/// at most [`AlertEvent::MAX_FLOWS`] flows (a flood becomes a few updates, not thousands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub schema_version: u16,
    pub event_id: Uuid,
    pub alert_id: Uuid,
    pub facility_id: String,
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub first_seen: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub last_seen: DateTime<Utc>,
    pub severity: Severity,
    pub title: String,
    pub description: String,
    pub status: AlertStatus,
    /// ATT&CK technique id (the seeds' `attack_type`).
    pub attack_type: String,
    pub attack_name: String,
    pub tactic_ids: Vec<String>,
    pub correlation_confidence: f64,
    pub correlation_summary: String,
    pub src_ip: std::net::IpAddr,
    pub dst_ip: std::net::IpAddr,
    pub sources: Vec<AlertSource>,
    /// The flows this update adds to the incident (their records travel, and are stored,
    /// with their classifications on `attack_classified`).
    pub flow_ids: Vec<Uuid>,
    /// Model versions that produced the evidence, by detector.
    pub model_versions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<AttackPrediction>,
}

impl AlertEvent {
    /// Most flows one update carries.
    pub const MAX_FLOWS: usize = 256;
}

impl Validate for AlertEvent {
    fn schema_version(&self) -> u16 {
        self.schema_version
    }

    fn validate(&self) -> Result<(), ValidationError> {
        version(self.schema_version)?;
        nonempty("facility_id", &self.facility_id)?;
        nonempty("attack_type", &self.attack_type)?;
        probability("correlation_confidence", self.correlation_confidence)?;
        if self.flow_ids.is_empty() || self.flow_ids.len() > Self::MAX_FLOWS {
            return Err(ValidationError::new(
                "flow_ids",
                format!("1 to {} flow ids", Self::MAX_FLOWS),
            ));
        }
        if self.last_seen < self.first_seen {
            return Err(ValidationError::new(
                "last_seen",
                "a time not before first_seen",
            ));
        }
        if let Some(p) = &self.prediction {
            p.validate()?;
        }
        Ok(())
    }
}

/// Role of the node reporting a federated-learning event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlRole {
    Server,
    Client,
}

/// A federated-learning event (`fl_events`): one round step of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlEvent {
    pub schema_version: u16,
    pub event_id: Uuid,
    pub facility_id: String,
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub round_id: u64,
    pub role: FlRole,
    pub node_id: String,
    pub phase: String,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub duration_ms: f64,
}

impl Validate for FlEvent {
    fn schema_version(&self) -> u16 {
        self.schema_version
    }

    fn validate(&self) -> Result<(), ValidationError> {
        version(self.schema_version)?;
        nonempty("facility_id", &self.facility_id)?;
        nonempty("node_id", &self.node_id)?;
        for (k, v) in &self.metrics {
            finite(&format!("metrics.{k}"), *v)?;
        }
        if let Some(e) = self.epsilon {
            finite("epsilon", e)?;
        }
        if let Some(d) = self.delta {
            probability("delta", d)?;
        }
        finite("duration_ms", self.duration_ms)
    }
}

fn nonempty(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.trim().is_empty() {
        Err(ValidationError::new(field, "a non-empty string"))
    } else {
        Ok(())
    }
}
