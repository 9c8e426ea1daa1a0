//! Supervised MLP classifier: `d → h1 → … → k` with ReLU hidden layers and a softmax over
//! the `k` classes (default hidden widths `[64, 32]`, as scikit-learn's
//! `MLPClassifier(hidden_layer_sizes=(64, 32))`). Trained with Adam on the (optionally
//! class-weighted) cross-entropy plus an L2 penalty on the weights.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use fedics_tabular::{ModelFile, ModelMeta, Preprocessor};

use crate::compute::ComputeDevice;
use crate::train::{self, Progress, ProgressFn, TrainOptions};
use crate::{MlError, Result};

/// How classes are weighted in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeight {
    /// Every row counts the same.
    #[default]
    None,
    /// `n / (k * n_c)` (scikit-learn's `class_weight="balanced"`).
    Balanced,
    /// The square root of the balanced weight: rare classes count more, without letting a
    /// class of 50 rows dominate one of 50,000.
    Sqrt,
}

impl std::str::FromStr for ClassWeight {
    type Err = MlError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "balanced" => Ok(Self::Balanced),
            "sqrt" => Ok(Self::Sqrt),
            _ => Err(MlError::Data(format!(
                "unknown class weighting `{s}`: expected none, balanced or sqrt"
            ))),
        }
    }
}

/// Architecture and loss of the MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MlpConfig {
    pub hidden: Vec<usize>,
    pub class_weight: ClassWeight,
    /// L2 penalty on the weights (scikit-learn's `alpha`, default 1e-4).
    pub l2: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 32],
            class_weight: ClassWeight::None,
            l2: 1e-4,
        }
    }
}

#[derive(Module, Debug)]
pub struct MlpNet {
    layers: Vec<Linear>,
    act: Relu,
}

impl MlpNet {
    pub fn new(d: usize, k: usize, config: &MlpConfig, device: &Device) -> Self {
        let mut dims = vec![d];
        dims.extend(&config.hidden);
        dims.push(k);
        Self {
            layers: dims
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            act: Relu::new(),
        }
    }

    /// Logits `[n, k]`.
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

    fn l2(&self) -> Option<Tensor<1>> {
        self.layers
            .iter()
            .map(|l| l.weight.val().square().sum())
            .reduce(|a, b| a + b)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    config: MlpConfig,
    n_features: usize,
    classes: Vec<String>,
    preprocessor: Option<Preprocessor>,
}

/// A trained classifier.
#[derive(Debug)]
pub struct MlpModel {
    pub meta: ModelMeta,
    pub config: MlpConfig,
    pub preprocessor: Option<Preprocessor>,
    /// Class names; a prediction is an index into this list.
    pub classes: Vec<String>,
    pub(crate) n_features: usize,
    pub(crate) net: MlpNet,
    pub(crate) device: Device,
}

const SCORE_BATCH: usize = 4096;

/// Per-class loss weights for `labels` (indices into `k` classes).
pub fn class_weights(labels: &[usize], k: usize, scheme: ClassWeight) -> Vec<f32> {
    let mut counts = vec![0usize; k];
    for &y in labels {
        if let Some(c) = counts.get_mut(y) {
            *c += 1;
        }
    }
    let n = labels.len() as f64;
    counts
        .iter()
        .map(|&c| {
            let balanced = if c == 0 {
                1.0
            } else {
                n / (k as f64 * c as f64)
            };
            match scheme {
                ClassWeight::None => 1.0,
                ClassWeight::Balanced => balanced as f32,
                ClassWeight::Sqrt => balanced.sqrt() as f32,
            }
        })
        .collect()
}

impl MlpModel {
    pub const KIND: &'static str = "mlp";
    pub const FORMAT_VERSION: u32 = 1;

    /// Trains on `rows` with `labels[i]` an index into `classes`.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        rows: &[f32],
        n_features: usize,
        labels: &[usize],
        classes: Vec<String>,
        preprocessor: Option<Preprocessor>,
        config: &MlpConfig,
        options: &TrainOptions,
        device: ComputeDevice,
        progress: ProgressFn<'_>,
    ) -> Result<Self> {
        options.check()?;
        let n = train::check_rows(rows, n_features, "training data")?;
        let k = classes.len();
        if k < 2 {
            return Err(MlError::Data(format!(
                "training data has {k} class(es); a classifier needs at least 2"
            )));
        }
        if labels.len() != n {
            return Err(MlError::Data(format!(
                "{} labels for {n} rows",
                labels.len()
            )));
        }
        if let Some((i, y)) = labels.iter().enumerate().find(|(_, y)| **y >= k) {
            return Err(MlError::Data(format!(
                "row {i}: label index {y} >= {k} classes"
            )));
        }
        if config.hidden.contains(&0) {
            return Err(MlError::Data(
                "hidden layer widths must be at least 1".into(),
            ));
        }
        let train_dev = device.train_device()?;
        train_dev.seed(options.seed);
        let mut net = MlpNet::new(n_features, k, config, &train_dev);
        let weights = class_weights(labels, k, config.class_weight);
        let loss_fn = CrossEntropyLossConfig::new()
            .with_weights((config.class_weight != ClassWeight::None).then(|| weights.clone()))
            .init(&train_dev);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let steps = n.div_ceil(options.batch_size);
        let mut buf = Vec::new();
        let mut last_loss = f64::NAN;
        for epoch in 0..options.epochs {
            let perm = train::permutation(n, options.seed, epoch);
            let mut total = 0.0;
            for (step, idx) in perm.chunks(options.batch_size).enumerate() {
                train::gather(rows, n_features, idx, &mut buf);
                let x = train::tensor2(buf.clone(), idx.len(), n_features, &train_dev);
                let y: Vec<i64> = idx.iter().map(|&i| labels[i] as i64).collect();
                let y = Tensor::<1, Int>::from_data(TensorData::new(y, [idx.len()]), &train_dev);
                let mut loss = loss_fn.forward(net.forward(x), y);
                if config.l2 > 0.0
                    && let Some(l2) = net.l2()
                {
                    // scikit-learn: alpha / (2 n_batch) * sum of squared weights.
                    loss = loss + l2.mul_scalar(config.l2 / (2.0 * idx.len() as f64));
                }
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
        let bytes = train::weights_to_bytes(&net)?;
        let hash = match &preprocessor {
            Some(p) if !p.training_fingerprint().is_empty() => p.training_fingerprint().to_string(),
            _ => fedics_tabular::fingerprint_bytes(&crate::dense_ae::bytemuck_f32(rows)),
        };
        let names = match &preprocessor {
            Some(p) => p.feature_names().to_vec(),
            None => (0..n_features).map(|i| format!("f{i}")).collect(),
        };
        let mut metrics = BTreeMap::from([("final_train_loss".to_string(), last_loss)]);
        for (c, w) in classes.iter().zip(&weights) {
            metrics.insert(format!("class_weight.{c}"), f64::from(*w));
        }
        Ok(Self {
            meta: train::meta(Self::KIND, &hash, n, names, None, metrics, &bytes),
            config: config.clone(),
            preprocessor,
            classes,
            n_features,
            net,
            device: dev,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// Class probabilities, row-major `[n, k]`.
    pub fn predict_proba(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let d = self.n_features;
        let n = train::check_rows(rows, d, "rows to classify")?;
        let mut out = Vec::with_capacity(n * self.classes.len());
        for start in (0..n).step_by(SCORE_BATCH) {
            let end = (start + SCORE_BATCH).min(n);
            let x = train::tensor2(
                rows[start * d..end * d].to_vec(),
                end - start,
                d,
                &self.device,
            );
            out.extend(train::values(softmax(self.net.forward(x), 1))?);
        }
        Ok(out)
    }

    /// The most probable class index of every row.
    pub fn predict(&self, rows: &[f32]) -> Result<Vec<usize>> {
        let k = self.classes.len();
        Ok(self
            .predict_proba(rows)?
            .chunks(k)
            .map(|p| train::top_k(p, 1).first().copied().unwrap_or(0))
            .collect())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let body = Body {
            config: self.config.clone(),
            n_features: self.n_features,
            classes: self.classes.clone(),
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

    pub fn load(path: &Path, device: ComputeDevice) -> Result<Self> {
        let file = ModelFile::<Body>::load(path, Self::KIND, Self::FORMAT_VERSION)?;
        let check = train::FileChecks(path);
        let Body {
            config,
            n_features,
            classes,
            preprocessor,
        } = file.body;
        check.architecture(n_features > 0 && classes.len() >= 2 && !config.hidden.contains(&0))?;
        check.preprocessor(preprocessor.as_ref(), n_features)?;
        let dev = device.device()?;
        let net = check.weights(
            MlpNet::new(n_features, classes.len(), &config, &dev),
            &file.payload,
        )?;
        Ok(Self {
            meta: file.meta,
            config,
            preprocessor,
            classes,
            n_features,
            net,
            device: dev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three classes in 2-d that no linear boundary separates (rings).
    fn rings(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 3;
            let r = 0.2 + 0.3 * c as f32 + rng.random_range(-0.08..0.08);
            let t: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            rows.extend_from_slice(&[r * t.cos(), r * t.sin()]);
            labels.push(c);
        }
        (rows, labels)
    }

    #[test]
    fn learns_rings_and_round_trips() {
        let (rows, labels) = rings(3000, 1);
        let options = TrainOptions {
            epochs: 40,
            batch_size: 64,
            learning_rate: 1e-2,
            seed: 3,
            ..TrainOptions::default()
        };
        let classes = vec!["inner".to_string(), "middle".into(), "outer".into()];
        let model = MlpModel::fit(
            &rows,
            2,
            &labels,
            classes,
            None,
            &MlpConfig::default(),
            &options,
            ComputeDevice::Cpu,
            &mut train::no_progress,
        )
        .unwrap();
        let (test, truth) = rings(900, 2);
        let pred = model.predict(&test).unwrap();
        let acc = fedics_tabular::metrics::accuracy(&truth, &pred).unwrap();
        assert!(acc > 0.9, "accuracy {acc}");
        let p = model.predict_proba(&test[..2]).unwrap();
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlp.model");
        model.save(&path).unwrap();
        let back = MlpModel::load(&path, ComputeDevice::Cpu).unwrap();
        assert_eq!(back.classes, model.classes);
        assert_eq!(
            back.predict_proba(&test).unwrap(),
            model.predict_proba(&test).unwrap()
        );
        let err = crate::AeModel::load(&path, ComputeDevice::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds a `mlp` model, expected `ae`"), "{err}");
    }

    #[test]
    fn class_weighting() {
        let labels = [0, 0, 0, 1];
        assert_eq!(class_weights(&labels, 2, ClassWeight::None), vec![1.0, 1.0]);
        let b = class_weights(&labels, 2, ClassWeight::Balanced);
        assert!((b[0] - 4.0 / 6.0).abs() < 1e-6 && (b[1] - 2.0).abs() < 1e-6);
        let s = class_weights(&labels, 2, ClassWeight::Sqrt);
        assert!((s[1] - 2f32.sqrt()).abs() < 1e-6);
    }
}
