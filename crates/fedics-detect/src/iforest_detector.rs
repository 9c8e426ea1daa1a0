//! The Isolation Forest as a pipeline detector: one forest per facility, trained on the
//! facility's first `train_size` benign-looking flows (no earlier detector flagged them),
//! or loaded from a model file. The threshold is the `threshold_quantile` of the training
//! scores, stored with the model.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use fedics_core::{FeatureContribution, FlowRecord};
use serde::{Deserialize, Serialize};

use crate::features::{FEATURE_NAMES, N_FEATURES, flow_features};
use crate::iforest::{IForestParams, IsolationForest};
use crate::rules::fnv1a;
use crate::{DetectError, Detector, Verdict};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IForestDetectorConfig {
    pub params: IForestParams,
    /// Benign-looking flows collected per facility before the forest is fitted.
    pub train_size: usize,
    /// Quantile of training scores used as the anomaly threshold.
    pub threshold_quantile: f64,
    /// Top features reported with an anomaly.
    pub explain_top_k: usize,
}

impl Default for IForestDetectorConfig {
    fn default() -> Self {
        Self {
            params: IForestParams::default(),
            train_size: 1024,
            threshold_quantile: 0.999,
            explain_top_k: 5,
        }
    }
}

/// A trained per-facility model as stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IForestModel {
    pub format: String,
    pub version: String,
    pub feature_names: Vec<String>,
    pub forest: IsolationForest,
    pub threshold: f64,
    pub n_train: usize,
    pub train_data_hash: String,
    pub created_at: DateTime<Utc>,
}

impl IForestModel {
    pub const FORMAT: &'static str = "fedics-iforest/1";

    pub fn fit(
        rows: &[f64],
        config: &IForestDetectorConfig,
        created_at: DateTime<Utc>,
    ) -> Result<Self, DetectError> {
        let forest = IsolationForest::fit(rows, N_FEATURES, &config.params)?;
        let mut scores = forest.score_batch(rows);
        scores.sort_by(f64::total_cmp);
        let q = config.threshold_quantile.clamp(0.0, 1.0);
        let idx = ((scores.len() as f64 - 1.0) * q).round() as usize;
        let threshold = scores.get(idx).copied().unwrap_or(0.5);
        let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
        let hash = format!("{:016x}", fnv1a(&bytes));
        Ok(Self {
            format: Self::FORMAT.into(),
            version: format!("iforest-{}", &hash[..10]),
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            forest,
            threshold,
            n_train: rows.len() / N_FEATURES,
            train_data_hash: hash,
            created_at,
        })
    }

    pub fn load(path: &Path) -> Result<Self, DetectError> {
        let err = |message: String| DetectError::ModelFile {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let model: Self = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
        if model.format != Self::FORMAT {
            return Err(err(format!(
                "format `{}`, expected `{}`",
                model.format,
                Self::FORMAT
            )));
        }
        if model.feature_names.len() != N_FEATURES || model.forest.n_features() != N_FEATURES {
            return Err(err(format!(
                "{} features, expected {N_FEATURES}",
                model.feature_names.len()
            )));
        }
        Ok(model)
    }
}

enum FacilityModel {
    Collecting(Vec<f64>),
    Ready(Box<IForestModel>),
}

pub struct IForestDetector {
    config: IForestDetectorConfig,
    pretrained: Option<IForestModel>,
    facilities: HashMap<String, FacilityModel>,
}

impl IForestDetector {
    pub fn new(config: IForestDetectorConfig) -> Self {
        Self {
            config,
            pretrained: None,
            facilities: HashMap::new(),
        }
    }

    /// Uses `model` for every facility instead of training.
    pub fn with_model(config: IForestDetectorConfig, model: IForestModel) -> Self {
        Self {
            config,
            pretrained: Some(model),
            facilities: HashMap::new(),
        }
    }

    /// The model of a facility, once trained.
    pub fn model(&self, facility: &str) -> Option<&IForestModel> {
        match self.facilities.get(facility) {
            Some(FacilityModel::Ready(m)) => Some(m),
            _ => self.pretrained.as_ref(),
        }
    }
}

impl Detector for IForestDetector {
    fn name(&self) -> &str {
        "iforest"
    }

    fn inspect(&mut self, flow: &FlowRecord, earlier: &[Verdict]) -> Verdict {
        let x = flow_features(flow);
        let state = self
            .facilities
            .entry(flow.facility_id.clone())
            .or_insert_with(|| match &self.pretrained {
                Some(m) => FacilityModel::Ready(Box::new(m.clone())),
                None => FacilityModel::Collecting(Vec::with_capacity(
                    self.config.train_size * N_FEATURES,
                )),
            });
        match state {
            FacilityModel::Collecting(rows) => {
                if !earlier.iter().any(|v| v.is_anomaly) {
                    rows.extend_from_slice(&x);
                }
                let n = rows.len() / N_FEATURES;
                if n >= self.config.train_size {
                    match IForestModel::fit(rows, &self.config, flow.ts_end) {
                        Ok(m) => {
                            tracing::info!(facility = %flow.facility_id, version = %m.version, threshold = m.threshold, n_train = m.n_train, "isolation forest trained");
                            *state = FacilityModel::Ready(Box::new(m));
                        }
                        Err(e) => {
                            tracing::warn!(facility = %flow.facility_id, error = %e, "isolation forest training failed; collecting again");
                            rows.clear();
                        }
                    }
                }
                Verdict::abstain(
                    "iforest-untrained",
                    format!(
                        "training: {n}/{} benign-looking flows",
                        self.config.train_size
                    ),
                )
            }
            FacilityModel::Ready(m) => {
                let score = m.forest.score(&x);
                let is_anomaly = score > m.threshold;
                let top_features = if is_anomaly {
                    m.forest
                        .explain(&x, self.config.explain_top_k)
                        .into_iter()
                        .map(|(i, c)| FeatureContribution {
                            name: FEATURE_NAMES[i].to_string(),
                            value: x[i],
                            contribution: c,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                Verdict {
                    model_version: m.version.clone(),
                    score: Some(score),
                    threshold: Some(m.threshold),
                    is_anomaly,
                    abstain_reason: None,
                    findings: Vec::new(),
                    top_features,
                }
            }
        }
    }
}
