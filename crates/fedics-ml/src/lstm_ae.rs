//! LSTM autoencoder over sliding windows of `window` consecutive observations of one key
//! (default 60; in the pipeline the key is the facility and host pair).
//!
//! Encoder: an LSTM (`d → hidden`) reads the window; its last hidden state goes through a
//! linear layer to a `latent` code. Decoder: the code, repeated at every time step, feeds a
//! second LSTM (`latent → hidden`) whose outputs a linear layer maps back to `d` features
//! per step. Loss and anomaly score: the mean squared error over the window's steps and
//! features. Because the code must summarise the whole window, the model learns which
//! *orders* of observations are normal: a window whose observations are each normal but
//! come in an unusual order reconstructs badly. The explanation of a window is its
//! per-feature error averaged over the steps.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use fedics_tabular::{ModelFile, ModelMeta, Preprocessor};

use crate::compute::ComputeDevice;
use crate::train::{self, Progress, ProgressFn, TrainOptions};
use crate::{MlError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LstmAeConfig {
    /// Observations per window.
    pub window: usize,
    pub hidden: usize,
    pub latent: usize,
}

impl Default for LstmAeConfig {
    fn default() -> Self {
        Self {
            window: 60,
            hidden: 64,
            latent: 16,
        }
    }
}

/// An LSTM layer with fused gates (Hochreiter & Schmidhuber 1997, with a forget gate):
/// one linear map `d → 4h` of the input (computed for every step at once) and one
/// `h → 4h` of the hidden state per step, gates ordered input, forget, output, cell.
/// burn's own `Lstm` runs eight small matrix products and many slices per step; on the
/// CPU backend that per-operation overhead dominated, and this layout cut it severalfold.
#[derive(Module, Debug)]
pub struct FusedLstm {
    input: Linear,
    hidden: Linear,
    d_hidden: usize,
}

impl FusedLstm {
    pub fn new(d_input: usize, d_hidden: usize, device: &Device) -> Self {
        Self {
            input: LinearConfig::new(d_input, 4 * d_hidden).init(device),
            hidden: LinearConfig::new(d_hidden, 4 * d_hidden)
                .with_bias(false)
                .init(device),
            d_hidden,
        }
    }

    /// One step from the input projection `xp` (`[batch, 4h]`) and the state.
    fn step(&self, xp: Tensor<2>, h: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let dh = self.d_hidden;
        let g = xp + self.hidden.forward(h);
        let gates = sigmoid(g.clone().narrow(1, 0, 3 * dh));
        let candidate = g.narrow(1, 3 * dh, dh).tanh();
        let i = gates.clone().narrow(1, 0, dh);
        let f = gates.clone().narrow(1, dh, dh);
        let o = gates.narrow(1, 2 * dh, dh);
        let c = f * c + i * candidate;
        let h = o * c.clone().tanh();
        (h, c)
    }

    /// Runs over `x` (`[batch, steps, d]`); returns the last hidden state `[batch, h]`.
    pub fn last_hidden(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, steps, _] = x.dims();
        let device = x.device();
        // Input projections of every step in one product, then step-major.
        let xp = self.input.forward(x).swap_dims(0, 1);
        let mut h = Tensor::<2>::zeros([b, self.d_hidden], &device);
        let mut c = Tensor::<2>::zeros([b, self.d_hidden], &device);
        for t in 0..steps {
            let xt = xp.clone().narrow(0, t, 1).reshape([b, 4 * self.d_hidden]);
            (h, c) = self.step(xt, h, c);
        }
        h
    }

    /// Runs `steps` steps on the same input `x` (`[batch, d]`, e.g. a repeated code) and
    /// returns every hidden state, `[batch, steps, h]`. The input projection is computed once.
    pub fn unroll_constant(&self, x: Tensor<2>, steps: usize) -> Tensor<3> {
        let [b, _] = x.dims();
        let device = x.device();
        let xp = self.input.forward(x);
        let mut h = Tensor::<2>::zeros([b, self.d_hidden], &device);
        let mut c = Tensor::<2>::zeros([b, self.d_hidden], &device);
        let mut out = Vec::with_capacity(steps);
        for _ in 0..steps {
            (h, c) = self.step(xp.clone(), h, c);
            out.push(h.clone());
        }
        Tensor::stack(out, 1)
    }
}

#[derive(Module, Debug)]
pub struct LstmAeNet {
    encoder: FusedLstm,
    to_latent: Linear,
    decoder: FusedLstm,
    output: Linear,
}

impl LstmAeNet {
    pub fn new(d: usize, config: &LstmAeConfig, device: &Device) -> Self {
        Self {
            encoder: FusedLstm::new(d, config.hidden, device),
            to_latent: LinearConfig::new(config.hidden, config.latent).init(device),
            decoder: FusedLstm::new(config.latent, config.hidden, device),
            output: LinearConfig::new(config.hidden, d).init(device),
        }
    }

    /// `[batch, steps, d]` → reconstruction of the same shape.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, steps, _] = x.dims();
        let code = self.to_latent.forward(self.encoder.last_hidden(x)).tanh();
        let h = self.decoder.unroll_constant(code, steps);
        self.output.forward(h)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    config: LstmAeConfig,
    n_features: usize,
    preprocessor: Option<Preprocessor>,
}

/// A trained LSTM autoencoder.
#[derive(Debug)]
pub struct LstmAeModel {
    pub meta: ModelMeta,
    pub config: LstmAeConfig,
    pub preprocessor: Option<Preprocessor>,
    pub(crate) n_features: usize,
    pub(crate) threshold: f64,
    pub(crate) net: LstmAeNet,
    pub(crate) device: Device,
}

/// Windows scored per forward pass.
const SCORE_BATCH: usize = 512;

/// Copies the rows of windows `which` (each `t` row indices in `windows`) into `out` as
/// `[n, t, d]`.
fn gather_windows(
    rows: &[f32],
    d: usize,
    windows: &[usize],
    t: usize,
    which: &[usize],
    out: &mut Vec<f32>,
) {
    out.clear();
    out.reserve(which.len() * t * d);
    for &w in which {
        for &r in &windows[w * t..(w + 1) * t] {
            out.extend_from_slice(&rows[r * d..(r + 1) * d]);
        }
    }
}

impl LstmAeModel {
    pub const KIND: &'static str = "lstm-ae";
    pub const FORMAT_VERSION: u32 = 1;

    /// Trains on benign windows. `windows` holds, for every window, `config.window` row
    /// indices into `rows` (row-major, `n_features` each), oldest first — e.g.
    /// [`fedics_tabular::Windows::as_flat`].
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        rows: &[f32],
        n_features: usize,
        windows: &[usize],
        preprocessor: Option<Preprocessor>,
        config: &LstmAeConfig,
        options: &TrainOptions,
        device: ComputeDevice,
        progress: ProgressFn<'_>,
    ) -> Result<Self> {
        options.check()?;
        let n_rows = train::check_rows(rows, n_features, "training data")?;
        let t = config.window;
        if t == 0 || config.hidden == 0 || config.latent == 0 {
            return Err(MlError::Data(
                "window, hidden and latent sizes must be at least 1".into(),
            ));
        }
        if !windows.len().is_multiple_of(t) {
            return Err(MlError::Data(format!(
                "{} window indices is not a whole number of windows of {t}",
                windows.len()
            )));
        }
        if let Some(&r) = windows.iter().find(|&&r| r >= n_rows) {
            return Err(MlError::Data(format!(
                "window refers to row {r}, data has {n_rows} rows"
            )));
        }
        let n_win = windows.len() / t;
        if n_win < 2 {
            return Err(MlError::Data(format!(
                "{n_win} training window(s) of {t} observations; at least 2 are needed"
            )));
        }
        let (fit_idx, cal_idx) =
            train::calibration_split(n_win, options.calibration_fraction, options.seed);
        let train_dev = device.train_device()?;
        train_dev.seed(options.seed);
        let mut net = LstmAeNet::new(n_features, config, &train_dev);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let steps = fit_idx.len().div_ceil(options.batch_size);
        let mut buf = Vec::new();
        let mut last_loss = f64::NAN;
        for epoch in 0..options.epochs {
            let perm = train::permutation(fit_idx.len(), options.seed, epoch);
            let mut total = 0.0;
            for (step, chunk) in perm.chunks(options.batch_size).enumerate() {
                let which: Vec<usize> = chunk.iter().map(|&i| fit_idx[i]).collect();
                gather_windows(rows, n_features, windows, t, &which, &mut buf);
                let x = Tensor::<3>::from_data(
                    TensorData::new(buf.clone(), [which.len(), t, n_features]),
                    &train_dev,
                );
                let loss = (net.forward(x.clone()) - x).square().mean();
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
        let cal = if cal_idx.is_empty() {
            fit_idx.clone()
        } else {
            cal_idx
        };
        gather_windows(rows, n_features, windows, t, &cal, &mut buf);
        let mut model = Self {
            meta: train::meta(Self::KIND, "", 0, Vec::new(), None, BTreeMap::new(), &[]),
            config: config.clone(),
            preprocessor: None,
            n_features,
            threshold: 0.0,
            net,
            device: dev,
        };
        let (cal_scores, _) = model.score_sequences(&buf)?;
        model.threshold = train::quantile(&cal_scores, options.threshold_quantile);
        let hash = match &preprocessor {
            Some(p) if !p.training_fingerprint().is_empty() => p.training_fingerprint().to_string(),
            _ => fedics_tabular::fingerprint_bytes(&crate::dense_ae::bytemuck_f32(rows)),
        };
        let names = match &preprocessor {
            Some(p) => p.feature_names().to_vec(),
            None => (0..n_features).map(|i| format!("f{i}")).collect(),
        };
        let metrics = BTreeMap::from([
            ("final_train_loss".to_string(), last_loss),
            ("calibration_windows".to_string(), cal.len() as f64),
            ("threshold_quantile".to_string(), options.threshold_quantile),
            ("window".to_string(), t as f64),
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

    pub fn window(&self) -> usize {
        self.config.window
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// Scores materialised sequences `[n, window, d]` (row-major). Returns the score of
    /// every sequence and its per-feature errors averaged over the steps (`[n, d]`).
    pub fn score_sequences(&self, seqs: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let (t, d) = (self.config.window, self.n_features);
        let n = train::check_rows(seqs, t * d, "sequences to score")?;
        let mut scores = Vec::with_capacity(n);
        let mut per_feature = Vec::with_capacity(n * d);
        for start in (0..n).step_by(SCORE_BATCH) {
            let end = (start + SCORE_BATCH).min(n);
            let chunk = &seqs[start * t * d..end * t * d];
            let x = Tensor::<3>::from_data(
                TensorData::new(chunk.to_vec(), [end - start, t, d]),
                &self.device,
            );
            let y = train::values(self.net.forward(x))?;
            for (xs, ys) in chunk.chunks(t * d).zip(y.chunks(t * d)) {
                let mut pf = vec![0f32; d];
                for (i, (a, b)) in xs.iter().zip(ys).enumerate() {
                    pf[i % d] += (a - b) * (a - b);
                }
                for v in &mut pf {
                    *v /= t as f32;
                }
                scores.push(pf.iter().sum::<f32>() / d as f32);
                per_feature.extend(pf);
            }
        }
        Ok((scores, per_feature))
    }

    /// Scores windows given as row indices (as in [`LstmAeModel::fit`]).
    pub fn score_windows(&self, rows: &[f32], windows: &[usize]) -> Result<Vec<f32>> {
        let (t, d) = (self.config.window, self.n_features);
        let n_rows = train::check_rows(rows, d, "rows to score")?;
        if !windows.len().is_multiple_of(t) {
            return Err(MlError::Data(format!(
                "{} window indices is not a whole number of windows of {t}",
                windows.len()
            )));
        }
        if let Some(&r) = windows.iter().find(|&&r| r >= n_rows) {
            return Err(MlError::Data(format!(
                "window refers to row {r}, data has {n_rows} rows"
            )));
        }
        let n_win = windows.len() / t;
        let mut out = Vec::with_capacity(n_win);
        let mut buf = Vec::new();
        let all: Vec<usize> = (0..n_win).collect();
        for which in all.chunks(SCORE_BATCH) {
            gather_windows(rows, d, windows, t, which, &mut buf);
            out.extend(self.score_sequences(&buf)?.0);
        }
        Ok(out)
    }

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

    pub fn load(path: &Path, device: ComputeDevice) -> Result<Self> {
        let file = ModelFile::<Body>::load(path, Self::KIND, Self::FORMAT_VERSION)?;
        let check = train::FileChecks(path);
        let Body {
            config,
            n_features,
            preprocessor,
        } = file.body;
        check.architecture(
            n_features > 0 && config.window > 0 && config.hidden > 0 && config.latent > 0,
        )?;
        check.preprocessor(preprocessor.as_ref(), n_features)?;
        let threshold = check.threshold(&file.meta)?;
        let dev = device.device()?;
        let net = check.weights(LstmAeNet::new(n_features, &config, &dev), &file.payload)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A slowly varying process (think tank level and pump current sampled by Modbus
    /// polls): two features on a noisy circle of period 150 observations.
    fn process(n: usize, phase: f32, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .flat_map(|i| {
                let a = std::f32::consts::TAU * (i as f32 / 150.0) + phase;
                let e: f32 = rng.random_range(-0.01..0.01);
                [0.5 + 0.4 * a.sin() + e, 0.5 + 0.4 * a.cos() - e, 0.3]
            })
            .collect()
    }

    fn windows_of(n_rows: usize, t: usize, stride: usize) -> Vec<usize> {
        (0..=n_rows - t)
            .step_by(stride)
            .flat_map(|s| s..s + t)
            .collect()
    }

    /// The LSTM-AE uses the order of the 60 observations of its window: a window holding
    /// exactly the same observations as a benign one, in a shuffled order, is flagged,
    /// while a per-observation model (the dense AE, trained on the same rows) scores every
    /// observation of it as it would in benign order and cannot tell the difference.
    #[test]
    fn flags_a_reordered_window_that_a_per_flow_model_cannot() {
        let t = 60;
        let rows = process(3000, 0.0, 1);
        let windows = windows_of(3000, t, 3);
        let config = LstmAeConfig {
            window: t,
            hidden: 24,
            latent: 8,
        };
        let options = TrainOptions {
            epochs: 12,
            batch_size: 32,
            learning_rate: 1e-2,
            seed: 5,
            calibration_fraction: 0.2,
            threshold_quantile: 1.0,
        };
        // One thread: rayon's parallel reductions sum in an order that depends on work
        // stealing, so under load a multi-threaded fit is not bit-reproducible and this
        // seeded test would depend on what else runs on the machine.
        let lstm = crate::compute::with_threads(Some(1), || {
            LstmAeModel::fit(
                &rows,
                3,
                &windows,
                None,
                &config,
                &options,
                ComputeDevice::Cpu,
                &mut train::no_progress,
            )
        })
        .unwrap();
        assert_eq!(lstm.window(), 60);

        // A benign window and the same 60 observations reordered (a deterministic
        // shuffle that keeps every observation, so the multiset is identical).
        let benign = process(t, 1.0, 9);
        let mut order: Vec<usize> = (0..t).collect();
        {
            use rand::SeedableRng;
            use rand::seq::SliceRandom;
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(11));
        }
        let reordered: Vec<f32> = order
            .iter()
            .flat_map(|&i| benign[i * 3..(i + 1) * 3].to_vec())
            .collect();
        let (s, _) = lstm
            .score_sequences(&[benign.clone(), reordered.clone()].concat())
            .unwrap();
        assert!(
            f64::from(s[0]) <= lstm.threshold(),
            "benign {} > {}",
            s[0],
            lstm.threshold()
        );
        assert!(
            f64::from(s[1]) > lstm.threshold(),
            "reordered {} <= {}",
            s[1],
            lstm.threshold()
        );
        assert!(s[1] > 3.0 * s[0], "benign {} reordered {}", s[0], s[1]);

        // A per-flow model sees the same observations: its scores are a permutation of
        // each other, so no per-flow threshold separates the two windows.
        let ae = crate::AeModel::fit(
            &rows,
            3,
            None,
            &crate::AeConfig { hidden: vec![8, 2] },
            &TrainOptions {
                epochs: 5,
                batch_size: 64,
                learning_rate: 1e-2,
                ..TrainOptions::default()
            },
            ComputeDevice::Cpu,
            &mut train::no_progress,
        )
        .unwrap();
        let mut a = ae.score(&benign).unwrap();
        let mut b = ae.score(&reordered).unwrap();
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        assert_eq!(a, b);
    }

    /// The window is exactly 60 observations: what happened 60 or more observations
    /// before the scored one does not change its score; what happened 59 before does.
    #[test]
    fn the_window_is_sixty_observations() {
        let config = LstmAeConfig::default();
        let rows = process(400, 0.0, 3);
        let windows = windows_of(400, 60, 7);
        let model = LstmAeModel::fit(
            &rows,
            3,
            &windows,
            None,
            &config,
            &TrainOptions {
                epochs: 1,
                batch_size: 16,
                ..TrainOptions::default()
            },
            ComputeDevice::Cpu,
            &mut train::no_progress,
        )
        .unwrap();
        // Score the window ending at row 200 (rows 141..=200).
        let end = 200;
        let window: Vec<usize> = (end + 1 - 60..=end).collect();
        let base = model.score_windows(&rows, &window).unwrap()[0];
        let mut old = rows.clone();
        old[(end - 60) * 3] = 5.0; // 60 observations back: outside the window
        assert_eq!(model.score_windows(&old, &window).unwrap()[0], base);
        let mut inside = rows.clone();
        inside[(end - 59) * 3] = 5.0; // 59 back: the oldest observation of the window
        assert_ne!(model.score_windows(&inside, &window).unwrap()[0], base);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lstm.model");
        model.save(&path).unwrap();
        let back = LstmAeModel::load(&path, ComputeDevice::Cpu).unwrap();
        assert_eq!(back.window(), 60);
        assert_eq!(
            back.score_windows(&rows, &window).unwrap(),
            model.score_windows(&rows, &window).unwrap()
        );
    }
}
