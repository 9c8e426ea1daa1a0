//! The Isolation Forest as a pipeline detector: one forest per facility, trained on the
//! facility's first `train_size` benign-looking flows (no earlier detector flagged them),
//! or loaded from a model file. The threshold is the `threshold_quantile` of the training
//! scores, stored with the model.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use fedics_core::{FeatureContribution, FlowRecord};
use serde::{Deserialize, Serialize};

use crate::features::{FEATURE_NAMES, N_FEATURES, flow_features};
use fedics_tabular::{ModelFile, ModelMeta, Preprocessor};

use crate::iforest::{IForestParams, IsolationForest};
use crate::iforest_fast::CompiledForest;
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

/// A trained Isolation Forest with its threshold and metadata, as stored in a model file
/// (kind `iforest` in the [`fedics_tabular::modelfile`] container).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IForestModel {
    pub version: String,
    pub feature_names: Vec<String>,
    pub forest: IsolationForest,
    pub threshold: f64,
    pub n_train: usize,
    pub train_data_hash: String,
    pub created_at: DateTime<Utc>,
    /// How raw rows become the forest's features; `None` for the pipeline's flow features.
    #[serde(default)]
    pub preprocessor: Option<Preprocessor>,
    /// The fast scoring form, built on first use.
    #[serde(skip)]
    compiled: OnceLock<Option<CompiledForest>>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    forest: IsolationForest,
    preprocessor: Option<Preprocessor>,
}

impl IForestModel {
    pub const KIND: &'static str = "iforest";
    pub const FORMAT_VERSION: u32 = 1;

    /// Fits on the pipeline's flow features; threshold = the configured quantile of the
    /// training scores.
    pub fn fit(
        rows: &[f64],
        config: &IForestDetectorConfig,
        created_at: DateTime<Utc>,
    ) -> Result<Self, DetectError> {
        let forest = IsolationForest::fit(rows, N_FEATURES, &config.params)?;
        let scores = forest.score_batch(rows);
        let threshold = quantile(&scores, config.threshold_quantile).unwrap_or(0.5);
        let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
        let hash = format!("{:016x}", fnv1a(&bytes));
        Ok(Self {
            version: format!("iforest-{}", &hash[..10]),
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            forest,
            threshold,
            n_train: rows.len() / N_FEATURES,
            train_data_hash: hash,
            created_at,
            preprocessor: None,
            compiled: OnceLock::new(),
        })
    }

    /// Fits on preprocessed rows (row-major `f32`, `n_features` each), holding out
    /// `calibration_fraction` of them (seeded) to set the threshold at
    /// `threshold_quantile` of their scores.
    pub fn fit_table(
        rows: &[f32],
        n_features: usize,
        preprocessor: Option<Preprocessor>,
        params: &IForestParams,
        calibration_fraction: f64,
        threshold_quantile: f64,
    ) -> Result<Self, DetectError> {
        let n = rows.len().checked_div(n_features).unwrap_or(0);
        let mut idx: Vec<usize> = (0..n).collect();
        {
            use rand::SeedableRng;
            use rand::seq::SliceRandom;
            idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
                params.seed ^ 0x5eed_ca11,
            ));
        }
        let n_cal = ((n as f64) * calibration_fraction.clamp(0.0, 0.9)).round() as usize;
        let (fit_idx, cal_idx) = idx.split_at(n - n_cal.min(n.saturating_sub(2)));
        let gather = |which: &[usize]| -> Vec<f64> {
            let mut v = Vec::with_capacity(which.len() * n_features);
            for &i in which {
                v.extend(
                    rows[i * n_features..(i + 1) * n_features]
                        .iter()
                        .map(|&x| f64::from(x)),
                );
            }
            v
        };
        let mut fit_idx = fit_idx.to_vec();
        fit_idx.sort_unstable();
        let forest = IsolationForest::fit(&gather(&fit_idx), n_features, params)?;
        let compiled = forest.compile()?;
        let cal: Vec<f32> = if cal_idx.is_empty() {
            rows.to_vec()
        } else {
            let mut c = cal_idx.to_vec();
            c.sort_unstable();
            c.iter()
                .flat_map(|&i| rows[i * n_features..(i + 1) * n_features].iter().copied())
                .collect()
        };
        let threshold =
            quantile(&compiled.score_batch_f32(&cal), threshold_quantile).unwrap_or(0.5);
        let hash = match &preprocessor {
            Some(p) if !p.training_fingerprint().is_empty() => p.training_fingerprint().to_string(),
            _ => {
                let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
                format!("{:016x}", fnv1a(&bytes))
            }
        };
        let feature_names = match &preprocessor {
            Some(p) => p.feature_names().to_vec(),
            None => (0..n_features).map(|i| format!("f{i}")).collect(),
        };
        Ok(Self {
            version: format!("iforest-{}", &hash[..10.min(hash.len())]),
            feature_names,
            forest,
            threshold,
            n_train: fit_idx.len(),
            train_data_hash: hash,
            created_at: Utc::now(),
            preprocessor,
            compiled: OnceLock::from(Some(compiled)),
        })
    }

    /// This model with another forest over the same features (a federation's global
    /// forest), its threshold and the rows it was grown from; the preprocessing and feature
    /// names are kept, the version names the new forest.
    pub fn with_forest(
        &self,
        forest: IsolationForest,
        threshold: f64,
        n_train: usize,
    ) -> Result<Self, DetectError> {
        if forest.n_features() != self.forest.n_features() {
            return Err(DetectError::Model(format!(
                "a forest of {} features for a model of {}",
                forest.n_features(),
                self.forest.n_features()
            )));
        }
        if !threshold.is_finite() {
            return Err(DetectError::Model(format!(
                "threshold {threshold} is not a number"
            )));
        }
        let hash = format!("{:016x}", fnv1a(&forest.to_bytes()));
        Ok(Self {
            version: format!("iforest-{}", &hash[..10]),
            feature_names: self.feature_names.clone(),
            forest,
            threshold,
            n_train,
            train_data_hash: hash,
            created_at: Utc::now(),
            preprocessor: self.preprocessor.clone(),
            compiled: OnceLock::new(),
        })
    }

    fn compiled(&self) -> Option<&CompiledForest> {
        self.compiled
            .get_or_init(|| self.forest.compile().ok())
            .as_ref()
    }

    /// Scores of preprocessed rows (row-major `f32`) on one thread.
    pub fn score_f32(&self, rows: &[f32]) -> Vec<f32> {
        match self.compiled() {
            Some(c) => c
                .score_batch_f32(rows)
                .into_iter()
                .map(|s| s as f32)
                .collect(),
            None => self.score_slow(rows),
        }
    }

    /// Scores of preprocessed rows, in parallel on the current rayon pool.
    pub fn score_f32_par(&self, rows: &[f32]) -> Vec<f32> {
        match self.compiled() {
            Some(c) => c
                .score_batch_f32_par(rows)
                .into_iter()
                .map(|s| s as f32)
                .collect(),
            None => self.score_slow(rows),
        }
    }

    fn score_slow(&self, rows: &[f32]) -> Vec<f32> {
        let d = self.forest.n_features().max(1);
        rows.chunks(d)
            .map(|r| {
                let r: Vec<f64> = r.iter().map(|&x| f64::from(x)).collect();
                self.forest.score(&r) as f32
            })
            .collect()
    }

    /// Writes the model file (atomically).
    pub fn save(&self, path: &Path) -> Result<(), DetectError> {
        let file = ModelFile {
            kind: Self::KIND.into(),
            format_version: Self::FORMAT_VERSION,
            meta: ModelMeta {
                version: self.version.clone(),
                created_at: self
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                train_data_hash: self.train_data_hash.clone(),
                n_train: self.n_train,
                feature_names: self.feature_names.clone(),
                threshold: Some(self.threshold),
                metrics: Default::default(),
                written_by: concat!("fedics ", env!("CARGO_PKG_VERSION")).to_string(),
            },
            body: Body {
                forest: self.forest.clone(),
                preprocessor: self.preprocessor.clone(),
            },
            payload: Vec::new(),
        };
        file.save(path).map_err(|e| DetectError::ModelFile {
            path: path.display().to_string(),
            message: e.problem,
        })
    }

    /// Reads a model file written by [`IForestModel::save`]; refuses other kinds and
    /// versions, truncated files and inconsistent models.
    pub fn load(path: &Path) -> Result<Self, DetectError> {
        let err = |message: String| DetectError::ModelFile {
            path: path.display().to_string(),
            message,
        };
        let file = ModelFile::<Body>::load(path, Self::KIND, Self::FORMAT_VERSION)
            .map_err(|e| err(e.problem))?;
        let n = file.body.forest.n_features();
        if file.meta.feature_names.len() != n {
            return Err(err(format!(
                "{} feature names for a forest of {n} features",
                file.meta.feature_names.len()
            )));
        }
        if let Some(p) = &file.body.preprocessor
            && p.n_features() != n
        {
            return Err(err(format!(
                "preprocessor gives {} features, the forest takes {n}",
                p.n_features()
            )));
        }
        let threshold = file
            .meta
            .threshold
            .filter(|t| t.is_finite())
            .ok_or_else(|| err("no finite threshold".into()))?;
        let created_at = DateTime::parse_from_rfc3339(&file.meta.created_at)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| err(format!("created_at: {e}")))?;
        Ok(Self {
            version: file.meta.version,
            feature_names: file.meta.feature_names,
            forest: file.body.forest,
            threshold,
            n_train: file.meta.n_train,
            train_data_hash: file.meta.train_data_hash,
            created_at,
            preprocessor: file.body.preprocessor,
            compiled: OnceLock::new(),
        })
    }
}

/// NumPy-style quantile of `values` (any order).
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    fedics_tabular::metrics::quantile(values, q.clamp(0.0, 1.0)).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, d: usize, salt: usize) -> Vec<f32> {
        (0..n * d)
            .map(|i| ((i * 37 + salt) % 101) as f32 / 101.0)
            .collect()
    }

    fn params(seed: u64) -> IForestParams {
        IForestParams {
            n_estimators: 20,
            max_samples: 32,
            seed,
        }
    }

    fn fit(rows: &[f32], d: usize, seed: u64) -> IsolationForest {
        let x: Vec<f64> = rows.iter().map(|&v| f64::from(v)).collect();
        IsolationForest::fit(&x, d, &params(seed)).unwrap()
    }

    /// A federation's global forest goes into a model file with the initial model's
    /// features and preprocessing, and reads back as it was.
    #[test]
    fn a_global_forest_keeps_the_model_and_round_trips_through_a_file() {
        let x = rows(100, 4, 0);
        let init = IForestModel::fit_table(&x, 4, None, &params(3), 0.2, 0.95).unwrap();
        let global = fit(&rows(100, 4, 5), 4, 9);
        let m = init.with_forest(global.clone(), 0.61, 100).unwrap();
        assert_eq!(m.feature_names, init.feature_names);
        assert_ne!(m.version, init.version);
        assert_eq!(m.n_train, 100);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("global.model");
        m.save(&path).unwrap();
        let back = IForestModel::load(&path).unwrap();
        assert_eq!(back.threshold, 0.61);
        assert_eq!(back.version, m.version);
        assert_eq!(back.forest.to_bytes(), global.to_bytes());
        assert_eq!(back.score_f32(&x), m.score_f32(&x));

        let three = fit(&rows(100, 3, 0), 3, 1);
        let err = init.with_forest(three, 0.5, 1).unwrap_err();
        assert!(err.to_string().contains("3 features"), "{err}");
        assert!(init.with_forest(global, f64::NAN, 1).is_err());
    }
}
