//! The dense autoencoder ([`crate::dense_ae::AeNet`]) as a federated-learning site trainer.
//!
//! Sites train the reconstruction of their own benign rows from the global parameters
//! (Adam, optional FedProx term); the aggregator only sees flat parameter vectors (same
//! layout rules as the MLP's, see [`crate::federated`]). The anomaly threshold is not
//! federated: after every round each site calibrates its own — a quantile of the global
//! model's scores on its benign training rows — since what is normal differs per plant, and
//! reports it with its evaluation (`threshold`), as well as the binary accuracy at that
//! threshold and the ROC-AUC on its held-out rows.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use fedics_fl::trainer::{LocalPlan, LocalResult, LocalTrainer, TrainError};

use crate::compute::{self, ComputeDevice};
use crate::dense_ae::{AeConfig, AeModel, AeNet};
use crate::federated::{Metrics, check_plan, flatten, global_net, linear_stack_params, load_flat};
use crate::train;
use crate::{MlError, Result};

/// Rows per forward pass when scoring.
const SCORE_BATCH: usize = 4096;

/// What the sites of an autoencoder federation agree on: input width, architecture, the
/// quantile of benign scores used as each site's threshold, and where to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct AeSpec {
    pub n_features: usize,
    pub config: AeConfig,
    /// Quantile of the benign training rows' scores that a site takes as its threshold
    /// (default 0.99).
    pub threshold_quantile: f64,
    pub device: ComputeDevice,
    /// CPU threads (`Some(1)` by default, for bit-reproducible results).
    pub threads: Option<usize>,
}

impl AeSpec {
    /// # Errors
    ///
    /// [`MlError::Data`] for zero features or an empty or zero hidden width.
    pub fn new(n_features: usize, config: AeConfig) -> Result<Self> {
        if n_features == 0 {
            return Err(MlError::Data("the network needs at least 1 feature".into()));
        }
        if config.hidden.is_empty() || config.hidden.contains(&0) {
            return Err(MlError::Data(
                "hidden layer widths must be at least 1".into(),
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

    /// Layer widths `d → h1 → … → hk → … → h1 → d`.
    fn dims(&self) -> Vec<usize> {
        let mut dims = vec![self.n_features];
        dims.extend(&self.config.hidden);
        dims.extend(self.config.hidden.iter().rev().skip(1));
        dims.push(self.n_features);
        dims
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.dims().windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Initial parameters reproducible from `seed` (as the MLP's).
    pub fn initial_params(&self, seed: u64) -> Vec<f32> {
        linear_stack_params(&self.dims(), seed)
    }

    fn net(&self, params: &[f32], device: &Device) -> Result<AeNet> {
        load_flat(AeNet::new(self.n_features, &self.config, device), params)
    }

    /// Anomaly scores (mean squared reconstruction error per row) of `params` on `rows`.
    ///
    /// # Errors
    ///
    /// Ragged or non-finite rows, a parameter length mismatch, an unavailable device.
    pub fn scores(&self, params: &[f32], rows: &[f32]) -> Result<Vec<f32>> {
        let d = self.n_features;
        let n = train::check_rows(rows, d, "rows to score")?;
        compute::with_threads(self.threads, || {
            let device = self.device.device()?;
            let net = self.net(params, &device)?;
            let mut out = Vec::with_capacity(n);
            for start in (0..n).step_by(SCORE_BATCH) {
                let end = (start + SCORE_BATCH).min(n);
                let chunk = &rows[start * d..end * d];
                let x = train::tensor2(chunk.to_vec(), end - start, d, &device);
                let y = train::values(net.forward(x))?;
                out.extend(chunk.chunks(d).zip(y.chunks(d)).map(|(a, b)| {
                    a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum::<f32>() / d as f32
                }));
            }
            Ok(out)
        })
    }

    /// Metrics of `params` on labelled rows at `threshold`: `loss` (mean score of the
    /// benign rows), `binary_accuracy` (attack ⇔ score above the threshold), `roc_auc`
    /// (when both classes are present) and `threshold`.
    ///
    /// # Errors
    ///
    /// As [`AeSpec::scores`]; a label count mismatch.
    pub fn evaluate_params(
        &self,
        params: &[f32],
        rows: &[f32],
        is_attack: &[bool],
        threshold: f64,
    ) -> Result<(u64, Metrics)> {
        score_metrics(&self.scores(params, rows)?, is_attack, threshold)
    }

    /// The threshold a site with benign `rows` calibrates for `params`.
    ///
    /// # Errors
    ///
    /// As [`AeSpec::scores`].
    pub fn calibrate(&self, params: &[f32], rows: &[f32]) -> Result<f64> {
        let s = self.scores(params, rows)?;
        Ok(train::quantile(&s, self.threshold_quantile))
    }
}

/// Metrics of anomaly `scores` (higher: more anomalous) against labels at `threshold`:
/// `loss` (mean score of the benign rows), `binary_accuracy` (attack ⇔ score above the
/// threshold), `roc_auc` (when both classes are present) and `threshold`. Shared by the
/// federated autoencoders.
///
/// # Errors
///
/// A label count mismatch.
pub(crate) fn score_metrics(
    scores: &[f32],
    is_attack: &[bool],
    threshold: f64,
) -> Result<(u64, Metrics)> {
    if scores.len() != is_attack.len() {
        return Err(MlError::Data(format!(
            "{} labels for {} rows",
            is_attack.len(),
            scores.len()
        )));
    }
    let n = scores.len();
    let mut m = Metrics::new();
    let benign: Vec<f64> = scores
        .iter()
        .zip(is_attack)
        .filter(|(_, a)| !**a)
        .map(|(s, _)| f64::from(*s))
        .collect();
    if !benign.is_empty() {
        m.insert(
            "loss".into(),
            benign.iter().sum::<f64>() / benign.len() as f64,
        );
    }
    let correct = scores
        .iter()
        .zip(is_attack)
        .filter(|(s, a)| (f64::from(**s) > threshold) == **a)
        .count();
    m.insert("binary_accuracy".into(), correct as f64 / n.max(1) as f64);
    if is_attack.iter().any(|a| *a) && is_attack.iter().any(|a| !*a) {
        let auc = fedics_tabular::metrics::roc_auc(scores, is_attack)
            .map_err(|e| MlError::Data(e.to_string()))?;
        m.insert("roc_auc".into(), auc);
    }
    m.insert("threshold".into(), threshold);
    Ok((n as u64, m))
}

/// A site's evaluation of a global model given by its `scores`: the threshold is the
/// `quantile` of the scores of its benign training data, and the metrics
/// ([`score_metrics`]) are taken on its labelled held-out data, else on the training data
/// (all benign, scored once). Shared by the federated autoencoders.
///
/// # Errors
///
/// Whatever `scores` returns; a label count mismatch.
pub(crate) fn evaluate_on_site(
    scores: impl Fn(&[f32]) -> Result<Vec<f32>>,
    quantile: f64,
    train: &[f32],
    eval: Option<&(Vec<f32>, Vec<bool>)>,
) -> Result<(u64, Metrics)> {
    let train_scores = scores(train)?;
    let threshold = train::quantile(&train_scores, quantile);
    match eval {
        Some((x, y)) => score_metrics(&scores(x)?, y, threshold),
        None => score_metrics(&train_scores, &vec![false; train_scores.len()], threshold),
    }
}

/// The FedProx term μ/2·‖w − w_global‖² of `net`'s parameters (differentiable), with
/// `global` the flat global parameters in the same layout.
pub(crate) fn proximal_term<M: Module>(net: &M, global: &Tensor<1>, mu: f64) -> Tensor<1> {
    let mut c = FlatParams { all: Vec::new() };
    net.visit(&mut c);
    let w = Tensor::cat(c.all, 0);
    (w - global.clone()).square().sum().mul_scalar(mu / 2.0)
}

/// A site's autoencoder: its benign training rows, and optionally labelled held-out rows.
pub struct AeTrainer {
    spec: AeSpec,
    rows: Vec<f32>,
    eval: Option<(Vec<f32>, Vec<bool>)>,
}

impl AeTrainer {
    /// # Errors
    ///
    /// Ragged or non-finite rows, or fewer than 2 rows.
    pub fn new(spec: AeSpec, benign_rows: Vec<f32>) -> Result<Self> {
        let n = train::check_rows(&benign_rows, spec.n_features, "site training data")?;
        if n < 2 {
            return Err(MlError::Data(format!(
                "site training data: {n} benign rows; at least 2 are needed"
            )));
        }
        Ok(Self {
            spec,
            rows: benign_rows,
            eval: None,
        })
    }

    /// Labelled held-out rows for the evaluation of each global model.
    ///
    /// # Errors
    ///
    /// Ragged or non-finite rows, or a label count mismatch.
    pub fn with_eval(mut self, rows: Vec<f32>, is_attack: Vec<bool>) -> Result<Self> {
        let n = train::check_rows(&rows, self.spec.n_features, "site evaluation data")?;
        if n != is_attack.len() || n == 0 {
            return Err(MlError::Data(format!(
                "site evaluation data: {n} rows, {} labels",
                is_attack.len()
            )));
        }
        self.eval = Some((rows, is_attack));
        Ok(self)
    }

    pub fn spec(&self) -> &AeSpec {
        &self.spec
    }

    pub fn num_examples(&self) -> usize {
        self.rows.len() / self.spec.n_features
    }

    /// Trains from `global` on this site's benign rows for one round.
    ///
    /// # Errors
    ///
    /// An invalid plan, a parameter length mismatch, an unavailable device.
    pub fn train_round(&self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult> {
        check_plan(plan)?;
        compute::with_threads(self.spec.threads, || self.train_inner(global, plan))
    }

    fn train_inner(&self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult> {
        let d = self.spec.n_features;
        let n = self.num_examples();
        let device = self.spec.device.train_device()?;
        let mut net = load_flat(AeNet::new(d, &self.spec.config, &device), global)?;
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
            let perm = train::permutation(n, plan.seed, epoch);
            for idx in perm.chunks(plan.batch_size) {
                let b = idx.len();
                train::gather(&self.rows, d, idx, &mut buf);
                let x = train::tensor2(buf.clone(), b, d, &device);
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
        let params = flatten(&net.valid());
        let mut metrics = Metrics::new();
        metrics.insert("loss".into(), loss_sum / n as f64);
        Ok(LocalResult {
            params,
            num_examples: n as u64,
            metrics,
        })
    }

    /// Calibrates this site's threshold for `params` and evaluates on the held-out rows
    /// (else on the training rows, all benign).
    ///
    /// # Errors
    ///
    /// As [`AeSpec::evaluate_params`].
    pub fn evaluate_held_out(&self, params: &[f32]) -> Result<(u64, Metrics)> {
        evaluate_on_site(
            |rows| self.spec.scores(params, rows),
            self.spec.threshold_quantile,
            &self.rows,
            self.eval.as_ref(),
        )
    }
}

/// Flattened differentiable views of every float parameter (for the proximal term).
struct FlatParams {
    all: Vec<Tensor<1>>,
}

impl burn::module::ModuleVisitor for FlatParams {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.all.push(t.reshape([n]));
    }
}

impl LocalTrainer for AeTrainer {
    fn num_params(&self) -> usize {
        self.spec.num_params()
    }

    /// Adam (fresh state) on the mean squared reconstruction error of this site's benign
    /// rows, plus μ/2·‖w − w_global‖² with FedProx. Metric: `loss` over the last epoch.
    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        self.train_round(global, plan)
            .map_err(|e| TrainError(e.to_string()))
    }

    /// See [`AeTrainer::evaluate_held_out`].
    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, Metrics), TrainError> {
        self.evaluate_held_out(global)
            .map_err(|e| TrainError(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------
// A trained autoencoder as a federation's starting point, and a global model back as a model
// ---------------------------------------------------------------------------------------

/// The federation methods of a trained autoencoder model type (fields `meta`, `config`,
/// `preprocessor`, `n_features`, `threshold`, `net`, `device`) whose sites agree on a spec
/// type built by `Spec::new(n_features, config)`: [`AeModel`] with [`AeSpec`] and
/// [`crate::LstmAeModel`] with [`crate::federated_lstm::LstmSpec`].
macro_rules! autoencoder_federation {
    ($model:ty, $spec:ident) => {
        impl $model {
            /// What the sites of a federation of this model must agree on: its input
            /// width and architecture, on the CPU, one thread.
            ///
            /// # Errors
            ///
            /// [`MlError::Data`](crate::MlError::Data) when the architecture is not valid.
            pub fn federation_spec(&self) -> $crate::Result<$spec> {
                $spec::new(self.n_features, self.config.clone())
            }

            /// The model's weights as one flat vector (the layout its spec trains).
            pub fn flat_params(&self) -> Vec<f32> {
                $crate::federated::flatten(&self.net)
            }

            /// This model with `params` as its weights and `threshold` as its anomaly
            /// threshold: a federation's new global model. Keeps the preprocessing and
            /// architecture; gets a new version, creation time, `n_train` (examples behind
            /// the aggregate), `train_data_hash` and `metrics`.
            ///
            /// # Errors
            ///
            /// [`MlError::Weights`](crate::MlError::Weights) when `params` does not fit
            /// the network or holds a non-finite value, or the threshold is not finite.
            pub fn with_flat_params(
                &self,
                params: &[f32],
                threshold: f64,
                n_train: usize,
                train_data_hash: &str,
                metrics: std::collections::BTreeMap<String, f64>,
            ) -> $crate::Result<Self> {
                let (net, meta) = $crate::federated_ae::global_autoencoder(
                    Self::KIND,
                    &self.meta,
                    &self.net,
                    params,
                    threshold,
                    n_train,
                    train_data_hash,
                    metrics,
                )?;
                Ok(Self {
                    meta,
                    config: self.config.clone(),
                    preprocessor: self.preprocessor.clone(),
                    n_features: self.n_features,
                    threshold,
                    net,
                    device: self.device.clone(),
                })
            }
        }
    };
}
pub(crate) use autoencoder_federation;

autoencoder_federation!(AeModel, AeSpec);

/// A federation's new global autoencoder from a trained one's network and metadata: the
/// network with `params` (checked finite and fitting) and new metadata (version, creation
/// time, `n_train`, `train_data_hash`, `metrics`, the sites' mean `threshold`). Shared by
/// the federated autoencoders.
///
/// # Errors
///
/// [`MlError::Weights`] when `params` does not fit or holds a non-finite value, or the
/// threshold is not finite.
#[allow(clippy::too_many_arguments)]
pub(crate) fn global_autoencoder<M: Module>(
    kind: &str,
    meta: &fedics_tabular::ModelMeta,
    net: &M,
    params: &[f32],
    threshold: f64,
    n_train: usize,
    train_data_hash: &str,
    metrics: BTreeMap<String, f64>,
) -> Result<(M, fedics_tabular::ModelMeta)> {
    if !threshold.is_finite() {
        return Err(MlError::Weights(format!(
            "threshold {threshold} of the new model is not finite"
        )));
    }
    let (net, bytes) = global_net(net, params)?;
    let meta = train::meta(
        kind,
        train_data_hash,
        n_train,
        meta.feature_names.clone(),
        Some(threshold),
        metrics,
        &bytes,
    );
    Ok((net, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Benign rows near a line in 6 dimensions; attacks off it.
    fn rows(n: usize, attack: bool, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * 6);
        for _ in 0..n {
            let t: f32 = rng.random_range(0.0..1.0);
            for j in 0..6 {
                let base = if j % 2 == 0 { t } else { 1.0 - t };
                let off = if attack && j == 3 { 0.8 } else { 0.0 };
                out.push(base + off + rng.random_range(-0.02..0.02));
            }
        }
        out
    }

    fn spec() -> AeSpec {
        AeSpec::new(6, AeConfig { hidden: vec![8, 2] }).unwrap()
    }

    fn plan(seed: u64) -> LocalPlan {
        LocalPlan {
            round: 1,
            local_epochs: 3,
            learning_rate: 1e-2,
            proximal_mu: 0.0,
            batch_size: 32,
            seed,
        }
    }

    /// A trained model's weights go out as the federation's initial parameters and come
    /// back, with the sites' threshold, as a model that scores the same rows the same way.
    #[test]
    fn federated_ae_model_params_round_trip_with_a_new_threshold() {
        let x = rows(200, false, 1);
        let options = crate::TrainOptions {
            epochs: 2,
            batch_size: 32,
            ..crate::TrainOptions::default()
        };
        let m = AeModel::fit(
            &x,
            6,
            None,
            &AeConfig { hidden: vec![8, 2] },
            &options,
            ComputeDevice::Cpu,
            &mut |_| {},
        )
        .unwrap();
        let flat = m.flat_params();
        assert_eq!(flat.len(), m.federation_spec().unwrap().num_params());
        let g = m
            .with_flat_params(&flat, 0.25, 400, "federation-test:r1", BTreeMap::new())
            .unwrap();
        assert_eq!(g.score(&x).unwrap(), m.score(&x).unwrap());
        assert_eq!(g.threshold(), 0.25);
        assert_ne!(g.version(), m.version());
        assert!(matches!(
            m.with_flat_params(&flat[1..], 0.25, 1, "x", BTreeMap::new()),
            Err(MlError::Weights(_))
        ));
        assert!(
            m.with_flat_params(&flat, f64::INFINITY, 1, "x", BTreeMap::new())
                .is_err()
        );
    }

    #[test]
    fn federated_ae_layout_matches_the_network() {
        let s = spec();
        let p = s.initial_params(3);
        assert_eq!(p.len(), s.num_params());
        let device = s.device.device().unwrap();
        let net = s.net(&p, &device).unwrap();
        assert_eq!(flatten(&net), p);
        assert!(s.net(&p[1..], &device).is_err());
    }

    #[test]
    fn federated_ae_rounds_learn_and_sites_calibrate_their_own_threshold() {
        let s = spec();
        let mut a = AeTrainer::new(s.clone(), rows(400, false, 1))
            .unwrap()
            .with_eval(
                [rows(100, false, 2), rows(100, true, 3)].concat(),
                [vec![false; 100], vec![true; 100]].concat(),
            )
            .unwrap();
        let global = s.initial_params(5);
        let (_, before) = a.evaluate(&global).unwrap();
        let mut g = global;
        for r in 1..=4 {
            let res = a
                .fit(
                    &g,
                    &LocalPlan {
                        round: r,
                        ..plan(r.into())
                    },
                )
                .unwrap();
            assert_eq!(res.params.len(), s.num_params());
            g = res.params;
        }
        let (n, after) = a.evaluate(&g).unwrap();
        assert_eq!(n, 200);
        assert!(after["loss"] < before["loss"], "{before:?} → {after:?}");
        assert!(after["roc_auc"] > 0.9, "{after:?}");
        assert!(after["binary_accuracy"] > 0.8, "{after:?}");
        // The threshold is this site's quantile of its own benign scores.
        let own = s.calibrate(&g, &a.rows).unwrap();
        assert!((after["threshold"] - own).abs() < 1e-12);
    }

    #[test]
    fn federated_ae_proximal_term_keeps_the_update_near_the_global_model() {
        let s = spec();
        let a = AeTrainer::new(s.clone(), rows(300, false, 9)).unwrap();
        let g = s.initial_params(1);
        let dist = |p: &[f32]| {
            p.iter()
                .zip(&g)
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum::<f64>()
        };
        let free = a.train_round(&g, &plan(4)).unwrap();
        let prox = a
            .train_round(
                &g,
                &LocalPlan {
                    proximal_mu: 10.0,
                    ..plan(4)
                },
            )
            .unwrap();
        assert!(dist(&prox.params) < dist(&free.params));
    }
}
