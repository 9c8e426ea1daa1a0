//! What every training loop shares: options, progress reports, seeded shuffling,
//! batching, threshold calibration, weight (de)serialisation and model metadata.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use fedics_tabular::{ModelFile, ModelFileError, ModelMeta, Preprocessor};

use crate::MlError;

/// Optimiser and loop settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seeds weight initialisation, shuffling and the calibration split.
    pub seed: u64,
    /// Share of the (benign) training rows held out to calibrate the threshold.
    pub calibration_fraction: f64,
    /// Quantile of held-out scores used as the anomaly threshold.
    pub threshold_quantile: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 256,
            learning_rate: 1e-3,
            seed: 0,
            calibration_fraction: 0.1,
            threshold_quantile: 0.99,
        }
    }
}

impl TrainOptions {
    pub(crate) fn check(&self) -> Result<(), MlError> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(MlError::Data(
                "epochs and batch size must be at least 1".into(),
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(MlError::Data("learning rate must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.calibration_fraction) {
            return Err(MlError::Data(
                "calibration fraction must be in [0, 1)".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold_quantile) {
            return Err(MlError::Data("threshold quantile must be in [0, 1]".into()));
        }
        Ok(())
    }
}

/// One progress report of a training loop (after every batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    /// Mean loss of the epoch so far.
    pub loss: f64,
}

/// Receives progress reports (e.g. to drive a progress bar).
pub type ProgressFn<'a> = &'a mut dyn FnMut(&Progress);

/// A no-op progress receiver.
pub fn no_progress(_: &Progress) {}

/// A seeded permutation of `0..n` for `epoch`.
pub(crate) fn permutation(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng);
    idx
}

/// Splits `0..n` into (training, calibration) index sets, seeded.
pub(crate) fn calibration_split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx = permutation(n, seed ^ 0x5eed_ca11, 0);
    let n_cal = ((n as f64) * fraction).round() as usize;
    // Keep at least one training row.
    let n_cal = n_cal.min(n.saturating_sub(1));
    let cal = idx.split_off(n - n_cal);
    (idx, cal)
}

/// Copies rows `idx` of the row-major `rows` (`d` values each) into `out`.
pub(crate) fn gather(rows: &[f32], d: usize, idx: &[usize], out: &mut Vec<f32>) {
    out.clear();
    out.reserve(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(&rows[i * d..(i + 1) * d]);
    }
}

/// The `q`-quantile (linear interpolation, as NumPy) of `scores`; 0 if empty.
pub(crate) fn quantile(scores: &[f32], q: f64) -> f64 {
    let v: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    fedics_tabular::metrics::quantile(&v, q).unwrap_or(0.0)
}

/// A tensor of shape `[n, d]` from row-major values.
pub(crate) fn tensor2(values: Vec<f32>, n: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [n, d]), device)
}

/// The tensor's values, row-major.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, MlError> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| MlError::Weights(format!("cannot read tensor: {e:?}")))
}

/// A module's weights as burnpack bytes.
pub(crate) fn weights_to_bytes<M: Module>(m: &M) -> Result<Vec<u8>, MlError> {
    let bytes = m
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| MlError::Weights(format!("cannot encode: {e}")))?;
    Ok(bytes.to_vec())
}

/// Loads burnpack bytes into a freshly initialised module of the same architecture.
pub(crate) fn weights_from_bytes<M: Module>(m: M, bytes: &[u8]) -> Result<M, MlError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| MlError::Weights(format!("cannot decode: {e}")))?;
    m.try_load_record(record)
        .map_err(|e| MlError::Weights(format!("do not fit the model: {e}")))
}

/// Writes a neural model file (atomically): the container with `body` as its header and
/// the network's weights as burnpack bytes.
pub(crate) fn save_model<B: Serialize, M: Module>(
    path: &Path,
    kind: &str,
    format_version: u32,
    meta: &ModelMeta,
    body: B,
    net: &M,
) -> Result<(), MlError> {
    let file = ModelFile {
        kind: kind.into(),
        format_version,
        meta: meta.clone(),
        body,
        payload: weights_to_bytes(net)?,
    };
    Ok(file.save(path)?)
}

/// The checks a neural model file gets on loading beyond its container's own (magic,
/// kind, version, checksum); each error names the file.
pub(crate) struct FileChecks<'a>(pub &'a Path);

impl FileChecks<'_> {
    pub fn bad(&self, problem: impl Into<String>) -> MlError {
        MlError::ModelFile(ModelFileError {
            path: self.0.to_path_buf(),
            problem: problem.into(),
        })
    }

    /// `valid`: the header's architecture (widths, window, classes) can be built.
    pub fn architecture(&self, valid: bool) -> Result<(), MlError> {
        if valid {
            Ok(())
        } else {
            Err(self.bad("architecture is not valid"))
        }
    }

    /// The stored preprocessor, if any, yields the network's input width.
    pub fn preprocessor(
        &self,
        preprocessor: Option<&Preprocessor>,
        n_features: usize,
    ) -> Result<(), MlError> {
        match preprocessor {
            Some(p) if p.n_features() != n_features => Err(self.bad(format!(
                "preprocessor gives {} features, the network takes {n_features}",
                p.n_features()
            ))),
            _ => Ok(()),
        }
    }

    /// The anomaly threshold of a detector's file, which must be there and finite.
    pub fn threshold(&self, meta: &ModelMeta) -> Result<f64, MlError> {
        meta.threshold
            .filter(|t| t.is_finite())
            .ok_or_else(|| self.bad("no finite threshold"))
    }

    /// The payload's weights loaded into `net` (a fresh module of the header's shape).
    pub fn weights<M: Module>(&self, net: M, payload: &[u8]) -> Result<M, MlError> {
        weights_from_bytes(net, payload).map_err(|e| self.bad(e.to_string()))
    }
}

/// Metadata for a model trained now.
pub(crate) fn meta(
    kind: &str,
    train_data_hash: &str,
    n_train: usize,
    feature_names: Vec<String>,
    threshold: Option<f64>,
    metrics: BTreeMap<String, f64>,
    weights: &[u8],
) -> ModelMeta {
    let now = chrono::Utc::now();
    let mut h = fedics_tabular::Fnv1a64::new();
    h.update(train_data_hash.as_bytes());
    h.update(weights);
    h.update(now.to_rfc3339().as_bytes());
    let id = h.hex();
    ModelMeta {
        version: format!("{kind}-{}", &id[..10]),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        train_data_hash: train_data_hash.to_string(),
        n_train,
        feature_names,
        threshold,
        metrics,
        written_by: concat!("fedics ", env!("CARGO_PKG_VERSION")).to_string(),
    }
}

/// Checks a row-major matrix: `n * d` values, all finite.
pub(crate) fn check_rows(rows: &[f32], d: usize, what: &str) -> Result<usize, MlError> {
    if d == 0 {
        return Err(MlError::Data(format!("{what}: no features")));
    }
    if !rows.len().is_multiple_of(d) {
        return Err(MlError::Data(format!(
            "{what}: {} values is not a whole number of rows of {d} features",
            rows.len()
        )));
    }
    if let Some(p) = rows.iter().position(|v| !v.is_finite()) {
        return Err(MlError::Data(format!(
            "{what}: row {}, feature {}: value is not finite",
            p / d,
            p % d
        )));
    }
    Ok(rows.len() / d)
}

/// Indices of the `k` largest values, descending (ties: lower index first).
pub(crate) fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}
