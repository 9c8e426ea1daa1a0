//! The LSTM autoencoder ([`crate::lstm_ae::LstmAeNet`]) as a federated-learning site trainer.
//!
//! As the dense autoencoder's federation ([`crate::federated_ae`]): each site trains the
//! reconstruction of its own benign windows from the global parameters (Adam with a fresh
//! state every round, optional FedProx term) and the aggregator only sees flat parameter
//! vectors in burn's visit order (encoder LSTM input map and bias, its recurrent map, the
//! latent layer, the decoder LSTM likewise, the output layer). The anomaly threshold is
//! not federated: after every round each site takes a quantile of the global model's
//! scores on its own benign windows, and reports it with its evaluation (`threshold`,
//! `binary_accuracy` at it, `roc_auc`).
//!
//! Windows are materialised sequences `[n, window, d]` (row-major), e.g. gathered from a
//! site's flows with [`fedics_tabular::sliding_windows`]; a site never shares them.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use fedics_fl::trainer::{LocalPlan, LocalResult, LocalTrainer, TrainError};

use crate::compute::{self, ComputeDevice};
use crate::federated::{Metrics, check_plan, flatten, load_flat, param_shapes};
use crate::federated_ae::{evaluate_on_site, proximal_term, score_metrics};
use crate::lstm_ae::{LstmAeConfig, LstmAeModel, LstmAeNet};
use crate::train;
use crate::{MlError, Result};

/// Windows per forward pass when scoring.
const SCORE_BATCH: usize = 512;

/// What the sites of an LSTM-autoencoder federation agree on: the width of one
/// observation, the architecture (window length, hidden and latent sizes), the threshold
/// quantile, and where to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmSpec {
    pub n_features: usize,
    pub config: LstmAeConfig,
    /// Quantile of a site's benign window scores taken as its threshold (default 0.99).
    pub threshold_quantile: f64,
    pub device: ComputeDevice,
    /// CPU threads (`Some(1)` by default, for bit-reproducible results).
    pub threads: Option<usize>,
}

impl LstmSpec {
    /// # Errors
    ///
    /// [`MlError::Data`] for zero features, or a zero window, hidden or latent size.
    pub fn new(n_features: usize, config: LstmAeConfig) -> Result<Self> {
        if n_features == 0 {
            return Err(MlError::Data("the network needs at least 1 feature".into()));
        }
        if config.window == 0 || config.hidden == 0 || config.latent == 0 {
            return Err(MlError::Data(
                "window, hidden and latent sizes must be at least 1".into(),
            ));
        }
        Ok(Self {
            n_features,
            config,
            threshold_quantile: 0.99,
            device: ComputeDevice::Cpu,
            threads: Some(1),
        })
    }

    /// Sets the threshold quantile (in (0, 1)).
    pub fn with_threshold_quantile(mut self, q: f64) -> Self {
        self.threshold_quantile = q;
        self
    }

    /// Values per window (`window × n_features`).
    pub fn window_len(&self) -> usize {
        self.config.window * self.n_features
    }

    /// Shapes of the parameter tensors in the flat layout's order (from the network
    /// itself, so the layout cannot drift from [`LstmAeNet`]).
    fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        let device = ComputeDevice::Cpu.device()?;
        Ok(param_shapes(&LstmAeNet::new(
            self.n_features,
            &self.config,
            &device,
        )))
    }

    /// Number of parameters.
    ///
    /// # Errors
    ///
    /// The CPU device is unavailable.
    pub fn num_params(&self) -> Result<usize> {
        Ok(self
            .shapes()?
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum())
    }

    /// Initial parameters reproducible from `seed` on any peer: every weight matrix
    /// `[fan_in, fan_out]` and the bias after it uniform in ±1/√fan_in (burn's and
    /// PyTorch's default bound for linear maps), drawn in layout order from ChaCha8.
    ///
    /// # Errors
    ///
    /// The CPU device is unavailable.
    pub fn initial_params(&self, seed: u64) -> Result<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        let mut fan_in = self.n_features;
        for shape in self.shapes()? {
            if let [rows, _] = shape[..] {
                fan_in = rows;
            }
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            let n: usize = shape.iter().product();
            out.extend((0..n).map(|_| rng.random_range(-bound..=bound)));
        }
        Ok(out)
    }

    fn net(&self, params: &[f32], device: &Device) -> Result<LstmAeNet> {
        load_flat(
            LstmAeNet::new(self.n_features, &self.config, device),
            params,
        )
    }

    /// Anomaly scores (mean squared reconstruction error over the window's steps and
    /// features) of `params` on windows `[n, window, d]`.
    ///
    /// # Errors
    ///
    /// Ragged or non-finite windows, a parameter length mismatch, an unavailable device.
    pub fn scores(&self, params: &[f32], windows: &[f32]) -> Result<Vec<f32>> {
        let (t, d) = (self.config.window, self.n_features);
        let n = train::check_rows(windows, t * d, "windows to score")?;
        compute::with_threads(self.threads, || {
            let device = self.device.device()?;
            let net = self.net(params, &device)?;
            let mut out = Vec::with_capacity(n);
            for start in (0..n).step_by(SCORE_BATCH) {
                let end = (start + SCORE_BATCH).min(n);
                let chunk = &windows[start * t * d..end * t * d];
                let x = Tensor::<3>::from_data(
                    TensorData::new(chunk.to_vec(), [end - start, t, d]),
                    &device,
                );
                let y = train::values(net.forward(x))?;
                out.extend(chunk.chunks(t * d).zip(y.chunks(t * d)).map(|(a, b)| {
                    a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum::<f32>() / (t * d) as f32
                }));
            }
            Ok(out)
        })
    }

    /// Metrics of `params` on labelled windows at `threshold` (as the dense
    /// autoencoder's: `loss`, `binary_accuracy`, `roc_auc`, `threshold`).
    ///
    /// # Errors
    ///
    /// As [`LstmSpec::scores`]; a label count mismatch.
    pub fn evaluate_params(
        &self,
        params: &[f32],
        windows: &[f32],
        is_attack: &[bool],
        threshold: f64,
    ) -> Result<(u64, Metrics)> {
        score_metrics(&self.scores(params, windows)?, is_attack, threshold)
    }

    /// The threshold a site with benign `windows` calibrates for `params`.
    ///
    /// # Errors
    ///
    /// As [`LstmSpec::scores`].
    pub fn calibrate(&self, params: &[f32], windows: &[f32]) -> Result<f64> {
        let s = self.scores(params, windows)?;
        Ok(train::quantile(&s, self.threshold_quantile))
    }
}

/// A site's LSTM autoencoder: its benign training windows, and optionally labelled
/// held-out windows.
pub struct LstmAeTrainer {
    spec: LstmSpec,
    num_params: usize,
    windows: Vec<f32>,
    eval: Option<(Vec<f32>, Vec<bool>)>,
}

impl LstmAeTrainer {
    /// # Errors
    ///
    /// Ragged or non-finite windows, fewer than 2 windows, an unavailable CPU device.
    pub fn new(spec: LstmSpec, benign_windows: Vec<f32>) -> Result<Self> {
        let n = train::check_rows(&benign_windows, spec.window_len(), "site training windows")?;
        if n < 2 {
            return Err(MlError::Data(format!(
                "site training windows: {n} benign windows; at least 2 are needed"
            )));
        }
        Ok(Self {
            num_params: spec.num_params()?,
            spec,
            windows: benign_windows,
            eval: None,
        })
    }

    /// Labelled held-out windows for the evaluation of each global model.
    ///
    /// # Errors
    ///
    /// Ragged or non-finite windows, or a label count mismatch.
    pub fn with_eval(mut self, windows: Vec<f32>, is_attack: Vec<bool>) -> Result<Self> {
        let n = train::check_rows(&windows, self.spec.window_len(), "site evaluation windows")?;
        if n != is_attack.len() || n == 0 {
            return Err(MlError::Data(format!(
                "site evaluation windows: {n} windows, {} labels",
                is_attack.len()
            )));
        }
        self.eval = Some((windows, is_attack));
        Ok(self)
    }

    pub fn spec(&self) -> &LstmSpec {
        &self.spec
    }

    pub fn num_examples(&self) -> usize {
        self.windows.len() / self.spec.window_len()
    }

    /// Trains from `global` on this site's benign windows for one round.
    ///
    /// # Errors
    ///
    /// An invalid plan, a parameter length mismatch, an unavailable device.
    pub fn train_round(&self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult> {
        check_plan(plan)?;
        compute::with_threads(self.spec.threads, || self.train_inner(global, plan))
    }

    fn train_inner(&self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult> {
        let (t, d) = (self.spec.config.window, self.spec.n_features);
        let w = self.spec.window_len();
        let n = self.num_examples();
        let device = self.spec.device.train_device()?;
        let mut net = load_flat(LstmAeNet::new(d, &self.spec.config, &device), global)?;
        let mu = f64::from(plan.proximal_mu);
        let global_t = (mu > 0.0).then(|| {
            Tensor::<1>::from_data(TensorData::new(global.to_vec(), [global.len()]), &device)
        });
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let lr = f64::from(plan.learning_rate);
        let epochs = plan.local_epochs as usize;
        let mut buf = Vec::new();
        let mut loss_sum = 0.0;
        for epoch in 0..epochs {
            let last = epoch + 1 == epochs;
            for idx in train::permutation(n, plan.seed, epoch).chunks(plan.batch_size) {
                let b = idx.len();
                train::gather(&self.windows, w, idx, &mut buf);
                let x = Tensor::<3>::from_data(TensorData::new(buf.clone(), [b, t, d]), &device);
                let mse = (net.forward(x.clone()) - x).square().mean();
                if last {
                    loss_sum += f64::from(mse.clone().into_scalar::<f32>()) * b as f64;
                }
                let mut loss = mse;
                if let Some(g) = &global_t {
                    loss = loss + proximal_term(&net, g, mu);
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(lr, net, grads);
            }
        }
        let mut metrics = Metrics::new();
        metrics.insert("loss".into(), loss_sum / n as f64);
        Ok(LocalResult {
            params: flatten(&net.valid()),
            num_examples: n as u64,
            metrics,
        })
    }

    /// Calibrates this site's threshold for `params` on its benign windows and evaluates
    /// on the held-out windows (else on the training windows, all benign).
    ///
    /// # Errors
    ///
    /// As [`LstmSpec::evaluate_params`].
    pub fn evaluate_held_out(&self, params: &[f32]) -> Result<(u64, Metrics)> {
        evaluate_on_site(
            |windows| self.spec.scores(params, windows),
            self.spec.threshold_quantile,
            &self.windows,
            self.eval.as_ref(),
        )
    }
}

impl LocalTrainer for LstmAeTrainer {
    fn num_params(&self) -> usize {
        self.num_params
    }

    /// Adam (fresh state) on the mean squared reconstruction error of this site's benign
    /// windows, plus μ/2·‖w − w_global‖² with FedProx. Metric: `loss` over the last epoch.
    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        self.train_round(global, plan)
            .map_err(|e| TrainError(e.to_string()))
    }

    /// See [`LstmAeTrainer::evaluate_held_out`].
    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, Metrics), TrainError> {
        self.evaluate_held_out(global)
            .map_err(|e| TrainError(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------
// A trained LSTM autoencoder as a federation's starting point, and a global model back
// ---------------------------------------------------------------------------------------

crate::federated_ae::autoencoder_federation!(LstmAeModel, LstmSpec);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fedics_fl::strategy::{ClientUpdate, FedAvg, RoundSettings, Strategy};

    use super::*;

    const T: usize = 8;
    const D: usize = 2;

    /// Windows of a periodic process (a tank level rising then falling, and the valve
    /// that drives it), each starting at a random phase. Attack windows hold the same
    /// kind of observations in reversed time order: each value is normal, the order is not.
    fn windows(n: usize, attack: bool, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * T * D);
        for _ in 0..n {
            let phase: f32 = rng.random_range(0.0..1.0);
            let mut w: Vec<[f32; D]> = (0..T)
                .map(|s| {
                    let x = (phase + s as f32 / T as f32) % 1.0;
                    let level = if x < 0.5 { 2.0 * x } else { 2.0 - 2.0 * x };
                    [
                        level + rng.random_range(-0.01..0.01),
                        if x < 0.5 { 1.0 } else { 0.0 },
                    ]
                })
                .collect();
            if attack {
                w.reverse();
            }
            out.extend(w.into_iter().flatten());
        }
        out
    }

    fn spec() -> LstmSpec {
        LstmSpec::new(
            D,
            LstmAeConfig {
                window: T,
                hidden: 12,
                latent: 4,
            },
        )
        .unwrap()
    }

    fn plan(round: u32, seed: u64) -> LocalPlan {
        LocalPlan {
            round,
            local_epochs: 4,
            learning_rate: 1e-2,
            proximal_mu: 0.0,
            batch_size: 16,
            seed,
        }
    }

    #[test]
    fn federated_lstm_layout_matches_the_network() {
        let s = spec();
        let p = s.initial_params(3).unwrap();
        assert_eq!(p.len(), s.num_params().unwrap());
        assert_eq!(p, s.initial_params(3).unwrap());
        assert_ne!(p, s.initial_params(4).unwrap());
        let device = s.device.device().unwrap();
        let net = s.net(&p, &device).unwrap();
        assert_eq!(flatten(&net), p);
        assert!(s.net(&p[1..], &device).is_err());
        // Encoder input map d → 4h with its bias, recurrent map h → 4h without.
        let shapes = s.shapes().unwrap();
        assert_eq!(shapes[0], vec![D, 48]);
        assert_eq!(shapes[1], vec![48]);
        assert_eq!(shapes[2], vec![12, 48]);
        assert!(LstmSpec::new(0, LstmAeConfig::default()).is_err());
        assert!(
            LstmSpec::new(
                2,
                LstmAeConfig {
                    window: 0,
                    ..LstmAeConfig::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn federated_lstm_sites_learn_the_order_together_and_calibrate_their_own_threshold() {
        let s = spec();
        let eval = |seed: u64| {
            (
                [windows(40, false, seed), windows(40, true, seed + 1)].concat(),
                [vec![false; 40], vec![true; 40]].concat(),
            )
        };
        let mut sites: Vec<LstmAeTrainer> = (0..3u64)
            .map(|i| {
                let (x, y) = eval(100 + 2 * i);
                LstmAeTrainer::new(s.clone(), windows(96, false, 10 + i))
                    .unwrap()
                    .with_eval(x, y)
                    .unwrap()
            })
            .collect();
        let mut strategy = FedAvg::new(RoundSettings::default());
        let mut global = s.initial_params(7).unwrap();
        let (_, before) = sites[0].evaluate(&global).unwrap();
        for round in 1..=4u32 {
            let updates: Vec<ClientUpdate> = sites
                .iter_mut()
                .enumerate()
                .map(|(i, site)| {
                    let r = site.fit(&global, &plan(round, u64::from(round) * 10 + i as u64));
                    let r = r.unwrap();
                    assert_eq!(r.params.len(), s.num_params().unwrap());
                    ClientUpdate::new(format!("site-{i}"), r.params, r.num_examples)
                })
                .collect();
            global = strategy.aggregate(round, &global, &updates).unwrap().params;
        }
        for site in &mut sites {
            let (n, after) = site.evaluate(&global).unwrap();
            assert_eq!(n, 80);
            assert!(after["loss"] < before["loss"], "{before:?} → {after:?}");
            // Reversed windows hold only normal values: only the order gives them away.
            assert!(after["roc_auc"] > 0.9, "{after:?}");
            let own = s.calibrate(&global, &site.windows).unwrap();
            assert!((after["threshold"] - own).abs() < 1e-12);
        }
    }

    #[test]
    fn federated_lstm_rejects_bad_windows_and_the_proximal_term_binds() {
        let s = spec();
        assert!(LstmAeTrainer::new(s.clone(), vec![0.0; T * D]).is_err());
        assert!(LstmAeTrainer::new(s.clone(), vec![0.0; T * D * 2 + 1]).is_err());
        let mut bad = windows(4, false, 1);
        bad[5] = f32::NAN;
        assert!(LstmAeTrainer::new(s.clone(), bad).is_err());
        let a = LstmAeTrainer::new(s.clone(), windows(48, false, 2)).unwrap();
        assert!(a.with_eval(windows(2, false, 3), vec![false]).is_err());
        let a = LstmAeTrainer::new(s.clone(), windows(48, false, 2)).unwrap();
        let g = s.initial_params(1).unwrap();
        let dist = |p: &[f32]| {
            p.iter()
                .zip(&g)
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum::<f64>()
        };
        let free = a.train_round(&g, &plan(1, 4)).unwrap();
        let prox = a
            .train_round(
                &g,
                &LocalPlan {
                    proximal_mu: 10.0,
                    ..plan(1, 4)
                },
            )
            .unwrap();
        assert!(dist(&prox.params) < dist(&free.params));
        assert!(a.train_round(&g[1..], &plan(1, 4)).is_err());
    }

    #[test]
    fn federated_lstm_model_params_round_trip_with_a_new_threshold() {
        let x = windows(40, false, 11);
        // Row-major observations and the windows over them (window w: rows w*T..(w+1)*T).
        let idx: Vec<usize> = (0..40 * T).collect();
        let options = crate::TrainOptions {
            epochs: 1,
            batch_size: 16,
            ..crate::TrainOptions::default()
        };
        let m = LstmAeModel::fit(
            &x,
            D,
            &idx,
            None,
            &spec().config,
            &options,
            ComputeDevice::Cpu,
            &mut |_| {},
        )
        .unwrap();
        let flat = m.flat_params();
        assert_eq!(
            flat.len(),
            m.federation_spec().unwrap().num_params().unwrap()
        );
        let g = m
            .with_flat_params(&flat, 0.5, 40, "federation-test:r1", BTreeMap::new())
            .unwrap();
        assert_eq!(
            g.score_windows(&x, &idx).unwrap(),
            m.score_windows(&x, &idx).unwrap()
        );
        // The spec scores the same parameters the same way as the model.
        let spec_scores = m.federation_spec().unwrap().scores(&flat, &x).unwrap();
        for (a, b) in spec_scores.iter().zip(m.score_windows(&x, &idx).unwrap()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-3), "{a} vs {b}");
        }
        assert_eq!(g.threshold(), 0.5);
        assert_ne!(g.version(), m.version());
        assert!(matches!(
            m.with_flat_params(&flat[1..], 0.5, 1, "x", BTreeMap::new()),
            Err(MlError::Weights(_))
        ));
        let mut nan = flat.clone();
        nan[3] = f32::NAN;
        assert!(
            m.with_flat_params(&nan, 0.5, 1, "x", BTreeMap::new())
                .is_err()
        );
        assert!(
            m.with_flat_params(&flat, f64::NAN, 1, "x", BTreeMap::new())
                .is_err()
        );
    }
}
