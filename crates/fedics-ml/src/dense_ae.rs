//! Dense autoencoder: `d → h1 → … → hk → … → h1 → d` with ReLU on every hidden layer and
//! a linear output (default `d-64-16-64-d`). Trained on benign rows with Adam on the mean
//! squared reconstruction error; a row's anomaly score is its mean squared error over the
//! features, and the per-feature squared errors are its explanation. The threshold is a
//! quantile of the scores of held-out benign rows.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use fedics_tabular::{ModelFile, ModelMeta, Preprocessor};

use crate::compute::ComputeDevice;
use crate::train::{self, Progress, ProgressFn, TrainOptions};
use crate::{MlError, Result};

/// Architecture of the dense autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AeConfig {
    /// Encoder widths after the input, the last being the bottleneck (default `[64, 16]`).
    pub hidden: Vec<usize>,
}

impl Default for AeConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 16],
        }
    }
}

#[derive(Module, Debug)]
pub struct AeNet {
    layers: Vec<Linear>,
    act: Relu,
}

impl AeNet {
    pub fn new(d: usize, config: &AeConfig, device: &Device) -> Self {
        let mut dims = vec![d];
        dims.extend(&config.hidden);
        dims.extend(config.hidden.iter().rev().skip(1));
        dims.push(d);
        let layers = dims
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Self {
            layers,
            act: Relu::new(),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if i < last {
                h = self.act.forward(h);
            }
        }
        h
    }
}

/// What the `ae` model file's body holds besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    config: AeConfig,
    n_features: usize,
    preprocessor: Option<Preprocessor>,
}

/// A trained dense autoencoder, ready to score.
#[derive(Debug)]
pub struct AeModel {
    pub meta: ModelMeta,
    pub config: AeConfig,
    /// How raw rows become the model's features (stored with the model).
    pub preprocessor: Option<Preprocessor>,
    pub(crate) n_features: usize,
    pub(crate) threshold: f64,
    pub(crate) net: AeNet,
    pub(crate) device: Device,
}

/// Rows scored per forward pass.
const SCORE_BATCH: usize = 4096;

impl AeModel {
    pub const KIND: &'static str = "ae";
    pub const FORMAT_VERSION: u32 = 1;

    /// Trains on `rows` (row-major, `n_features` each; benign rows), holding out
    /// `options.calibration_fraction` of them to set the threshold.
    pub fn fit(
        rows: &[f32],
        n_features: usize,
        preprocessor: Option<Preprocessor>,
        config: &AeConfig,
        options: &TrainOptions,
        device: ComputeDevice,
        progress: ProgressFn<'_>,
    ) -> Result<Self> {
        options.check()?;
        let n = train::check_rows(rows, n_features, "training data")?;
        if n < 2 {
            return Err(MlError::Data(format!(
                "training data: {n} rows; at least 2 are needed"
            )));
        }
        if config.hidden.is_empty() || config.hidden.contains(&0) {
            return Err(MlError::Data(
                "hidden layer widths must be at least 1".into(),
            ));
        }
        let (fit_idx, cal_idx) =
            train::calibration_split(n, options.calibration_fraction, options.seed);
        let train_dev = device.train_device()?;
        train_dev.seed(options.seed);
        let mut net = AeNet::new(n_features, config, &train_dev);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let steps = fit_idx.len().div_ceil(options.batch_size);
        let mut buf = Vec::new();
        let mut last_loss = f64::NAN;
        for epoch in 0..options.epochs {
            let perm = train::permutation(fit_idx.len(), options.seed, epoch);
            let mut total = 0.0;
            for (step, chunk) in perm.chunks(options.batch_size).enumerate() {
                let idx: Vec<usize> = chunk.iter().map(|&i| fit_idx[i]).collect();
                train::gather(rows, n_features, &idx, &mut buf);
                let x = train::tensor2(buf.clone(), idx.len(), n_features, &train_dev);
                let y = net.forward(x.clone());
                let loss = (y - x).square().mean();
                total += f64::from(loss.clone().into_scalar::<f32>());
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(options.learning_rate, net, grads);
                last_loss = total / (step + 1) as f64;
                progress(&Progress {
                    epoch: epoch + 1,
                    epochs: options.epochs,
                    step: step + 1,
                    steps_per_epoch: steps,
                    loss: last_loss,
                });
            }
        }
        let dev = device.device()?;
        let net = net.valid().to_device(&dev);
        let mut model = Self {
            meta: ModelMeta {
                version: String::new(),
                created_at: String::new(),
                train_data_hash: String::new(),
                n_train: fit_idx.len(),
                feature_names: Vec::new(),
                threshold: None,
                metrics: BTreeMap::new(),
                written_by: String::new(),
            },
            config: config.clone(),
            n_features,
            threshold: 0.0,
            net,
            device: dev,
            preprocessor: None,
        };
        let cal_rows: Vec<usize> = if cal_idx.is_empty() {
            fit_idx.clone()
        } else {
            cal_idx
        };
        train::gather(rows, n_features, &cal_rows, &mut buf);
        let cal_scores = model.score(&buf)?;
        model.threshold = train::quantile(&cal_scores, options.threshold_quantile);
        let hash = match &preprocessor {
            Some(p) if !p.training_fingerprint().is_empty() => p.training_fingerprint().to_string(),
            _ => fedics_tabular::fingerprint_bytes(bytemuck_f32(rows).as_slice()),
        };
        let names = match &preprocessor {
            Some(p) => p.feature_names().to_vec(),
            None => (0..n_features).map(|i| format!("f{i}")).collect(),
        };
        let metrics = BTreeMap::from([
            ("final_train_loss".to_string(), last_loss),
            ("calibration_rows".to_string(), cal_rows.len() as f64),
            ("threshold_quantile".to_string(), options.threshold_quantile),
        ]);
        let weights = train::weights_to_bytes(&model.net)?;
        model.meta = train::meta(
            Self::KIND,
            &hash,
            fit_idx.len(),
            names,
            Some(model.threshold),
            metrics,
            &weights,
        );
        model.preprocessor = preprocessor;
        Ok(model)
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// Per-feature squared reconstruction errors of `rows` (row-major, same shape).
    pub fn feature_errors(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let d = self.n_features;
        let n = train::check_rows(rows, d, "rows to score")?;
        let mut out = Vec::with_capacity(rows.len());
        for start in (0..n).step_by(SCORE_BATCH) {
            let end = (start + SCORE_BATCH).min(n);
            let chunk = &rows[start * d..end * d];
            let x = train::tensor2(chunk.to_vec(), end - start, d, &self.device);
            let y = train::values(self.net.forward(x))?;
            out.extend(chunk.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)));
        }
        Ok(out)
    }

    /// Anomaly scores (mean squared reconstruction error per row).
    pub fn score(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let d = self.n_features;
        let errors = self.feature_errors(rows)?;
        Ok(errors
            .chunks(d)
            .map(|e| e.iter().sum::<f32>() / d as f32)
            .collect())
    }

    /// Writes the model file (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let body = Body {
            config: self.config.clone(),
            n_features: self.n_features,
            preprocessor: self.preprocessor.clone(),
        };
        train::save_model(
            path,
            Self::KIND,
            Self::FORMAT_VERSION,
            &self.meta,
            body,
            &self.net,
        )
    }

    /// Reads a model file written by [`AeModel::save`].
    pub fn load(path: &Path, device: ComputeDevice) -> Result<Self> {
        let file = ModelFile::<Body>::load(path, Self::KIND, Self::FORMAT_VERSION)?;
        let check = train::FileChecks(path);
        let Body {
            config,
            n_features,
            preprocessor,
        } = file.body;
        check.architecture(
            n_features > 0 && !config.hidden.is_empty() && !config.hidden.contains(&0),
        )?;
        check.preprocessor(preprocessor.as_ref(), n_features)?;
        let threshold = check.threshold(&file.meta)?;
        let dev = device.device()?;
        let net = check.weights(AeNet::new(n_features, &config, &dev), &file.payload)?;
        Ok(Self {
            meta: file.meta,
            config,
            preprocessor,
            n_features,
            threshold,
            net,
            device: dev,
        })
    }
}

/// The bytes of `values` (little-endian), for hashing.
pub(crate) fn bytemuck_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Benign rows lie on a 2-d manifold in 8-d space; anomalies do not.
    fn toy(n: usize, seed: u64, anomalous: bool) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * 8);
        for _ in 0..n {
            let a: f32 = rng.random();
            let b: f32 = rng.random();
            let mut row = [a, b, a * b, 1.0 - a, 0.5 * (a + b), b * b, a * a, 1.0 - b];
            if anomalous {
                // Off the manifold: two features no longer follow the others.
                row[2] += 0.6;
                row[5] = 1.0 - row[5];
            }
            out.extend_from_slice(&row);
        }
        out
    }

    #[test]
    fn learns_a_manifold_and_round_trips() {
        let train = toy(4000, 1, false);
        let options = TrainOptions {
            epochs: 30,
            batch_size: 64,
            learning_rate: 3e-3,
            seed: 7,
            ..TrainOptions::default()
        };
        let config = AeConfig {
            hidden: vec![32, 8],
        };
        let mut reports = 0;
        let model = AeModel::fit(
            &train,
            8,
            None,
            &config,
            &options,
            ComputeDevice::Cpu,
            &mut |_| reports += 1,
        )
        .unwrap();
        assert!(reports > 0);
        let benign = model.score(&toy(500, 2, false)).unwrap();
        let attack = model.score(&toy(500, 3, true)).unwrap();
        let labels: Vec<bool> = (0..1000).map(|i| i >= 500).collect();
        let scores: Vec<f32> = benign.iter().chain(&attack).copied().collect();
        let auc = fedics_tabular::metrics::roc_auc(&scores, &labels).unwrap();
        assert!(auc > 0.95, "auc {auc}");
        let flagged = attack
            .iter()
            .filter(|&&s| f64::from(s) > model.threshold())
            .count();
        assert!(flagged > 400, "flagged {flagged} of 500");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ae.model");
        model.save(&path).unwrap();
        let back = AeModel::load(&path, ComputeDevice::Cpu).unwrap();
        assert_eq!(back.meta, model.meta);
        assert_eq!(back.threshold(), model.threshold());
        let rows = toy(50, 4, true);
        assert_eq!(back.score(&rows).unwrap(), model.score(&rows).unwrap());

        // A truncated file and a file of another kind are refused with a clear message.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = AeModel::load(&path, ComputeDevice::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn refuses_bad_training_data() {
        let err = AeModel::fit(
            &[0.0, f32::NAN, 1.0, 2.0],
            2,
            None,
            &AeConfig::default(),
            &TrainOptions::default(),
            ComputeDevice::Cpu,
            &mut train::no_progress,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("row 0, feature 1"), "{err}");
    }
}
