//! The MLP classifier ([`crate::mlp::MlpNet`]) as a federated-learning site trainer
//! ([`fedics_fl::trainer::LocalTrainer`]).
//!
//! The federation runtime only sees flat `f32` parameter vectors. This module converts
//! between those vectors and burn networks ([`flatten`], [`load_flat`]), reproduces the
//! initial parameters from a seed on every site and on the aggregator ([`initial_params`]),
//! trains locally from the global parameters with Adam, optionally with the FedProx proximal
//! term ([`MlpTrainer`]), and evaluates parameters on a data set ([`MlpSpec::evaluate_params`]).
//!
//! # Flat parameter layout
//!
//! Every float parameter tensor of the network in burn's module visit order, each
//! row-major. For an MLP `d → h1 → … → k` that is, layer by layer, the weight matrix of
//! shape `[d_in, d_out]` (burn's `Linear` computes `x · W + b`) followed by the bias of
//! length `d_out`:
//!
//! ```text
//! W1 [d, h1], b1 [h1], W2 [h1, h2], b2 [h2], …, Wn [h_last, k], bn [k]
//! ```
//!
//! so the length is `Σ (d_in · d_out + d_out)` over the layers ([`num_params`]); e.g.
//! 10,117 for hidden widths `[64, 32]` on 122 features and 5 classes.
//!
//! # Determinism
//!
//! Initial parameters come from a ChaCha8 generator seeded by the caller, not from burn's
//! device-wide generator, so they do not depend on what else runs in the process. Local
//! training shuffles with `LocalPlan::seed` ([`crate::train`]'s seeded permutation, one
//! stream per local epoch) and has no other randomness. burn's CPU backend parallelises
//! reductions with rayon, whose float sums are not bit-reproducible across thread counts or
//! schedules, so by default the trainer runs its CPU work on a dedicated one-thread pool
//! ([`crate::compute::with_threads`]); [`MlpSpec::threads`] trades that for speed.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use fedics_fl::trainer::{LocalPlan, LocalResult, LocalTrainer, TrainError};

use crate::compute::{self, ComputeDevice};
use crate::mlp::{ClassWeight, MlpConfig, MlpModel, MlpNet, class_weights};
use crate::train;
use crate::{MlError, Result};

/// Metrics by name (`loss`, `accuracy`, `binary_accuracy`, …).
pub type Metrics = BTreeMap<String, f64>;

/// Rows per forward pass when evaluating.
const EVAL_BATCH: usize = 4096;

/// The default name of the benign class (NSL-KDD's `normal`).
pub const DEFAULT_BENIGN_CLASS: &str = "normal";

// ---------------------------------------------------------------------------------------
// Flattening
// ---------------------------------------------------------------------------------------

/// Collects every float parameter's values in visit order.
struct Flattener {
    out: Vec<f32>,
}

impl ModuleVisitor for Flattener {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // `iter` converts from whatever float type the backend stores.
        self.out.extend(param.val().into_data().iter::<f32>());
    }
}

/// Collects every float parameter's shape in visit order, without initialising lazy
/// parameters.
struct Shapes {
    shapes: Vec<Vec<usize>>,
}

impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.shapes.push(param.lazy_shape().to_vec());
    }
}

/// Replaces every float parameter, in visit order, by the next values of a flat vector
/// whose length has been checked. Keeps each parameter's id, device and gradient setting.
struct Loader<'a> {
    values: &'a [f32],
    offset: usize,
}

impl ModuleMapper for Loader<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.lazy_shape();
        let n = shape.num_elements();
        let end = (self.offset + n).min(self.values.len());
        let chunk = self.values[self.offset..end].to_vec();
        self.offset = end;
        let device = param.lazy_device();
        let tensor = Tensor::<D>::from_data(TensorData::new(chunk, shape), &device);
        let id = param.id;
        // Moves the tensor to the parameter's device and applies its gradient setting; a
        // lazy parameter is replaced without being initialised first.
        param.transform_for_load(tensor, id)
    }
}

/// Flattened views of every float parameter (differentiable), in visit order, and the
/// rank-2 ones (the weight matrices) separately for the L2 penalty.
struct Collector {
    all: Vec<Tensor<1>>,
    weights: Vec<Tensor<1>>,
}

impl ModuleVisitor for Collector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        let flat: Tensor<1> = t.reshape([n]);
        if D == 2 {
            self.weights.push(flat.clone());
        }
        self.all.push(flat);
    }
}

/// The network's parameters as one flat vector (layout: see the [module docs](self)).
pub fn flatten<M: Module>(net: &M) -> Vec<f32> {
    let mut v = Flattener { out: Vec::new() };
    net.visit(&mut v);
    v.out
}

/// The shapes of the network's parameter tensors, in the flat layout's order.
pub fn param_shapes<M: Module>(net: &M) -> Vec<Vec<usize>> {
    let mut v = Shapes { shapes: Vec::new() };
    net.visit(&mut v);
    v.shapes
}

/// Replaces the network's parameters by `params` (layout: see the [module docs](self)).
/// The network keeps its device and gradient settings, so a network built on a training
/// (autodiff) device stays trainable.
///
/// # Errors
///
/// [`MlError::Weights`] when `params` does not have exactly as many values as the network
/// has parameters.
pub fn load_flat<M: Module>(net: M, params: &[f32]) -> Result<M> {
    let expected = net.num_params();
    if params.len() != expected {
        return Err(MlError::Weights(format!(
            "flat parameter vector has {} values, the network expects {expected}",
            params.len()
        )));
    }
    let mut loader = Loader {
        values: params,
        offset: 0,
    };
    Ok(net.map(&mut loader))
}

/// The parameter count of an MLP with `n_features` inputs, `classes` outputs and
/// `config.hidden` hidden widths: `Σ (d_in · d_out + d_out)` over the layers.
pub fn num_params(n_features: usize, classes: usize, config: &MlpConfig) -> usize {
    layer_dims(n_features, classes, config)
        .windows(2)
        .map(|w| w[0] * w[1] + w[1])
        .sum()
}

fn layer_dims(n_features: usize, classes: usize, config: &MlpConfig) -> Vec<usize> {
    let mut dims = Vec::with_capacity(config.hidden.len() + 2);
    dims.push(n_features);
    dims.extend(&config.hidden);
    dims.push(classes);
    dims
}

/// Initial parameters of an MLP, reproducible from `seed` on every site and on the
/// aggregator without a burn device: every weight and bias of a layer with `d_in` inputs is
/// drawn from `U(-1/√d_in, 1/√d_in)` (the distribution of burn's default `Linear`
/// initialisation) by a ChaCha8 generator seeded with `seed`, in the flat layout's order.
pub fn initial_params(
    n_features: usize,
    classes: usize,
    config: &MlpConfig,
    seed: u64,
) -> Vec<f32> {
    linear_stack_params(&layer_dims(n_features, classes, config), seed)
}

/// Initial parameters of a stack of `Linear` layers of widths `dims` (see
/// [`initial_params`]).
pub(crate) fn linear_stack_params(dims: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for w in dims.windows(2) {
        let (d_in, d_out) = (w[0], w[1]);
        let bound = 1.0 / (d_in.max(1) as f32).sqrt();
        for _ in 0..d_in * d_out + d_out {
            out.push(rng.random_range(-bound..=bound));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Architecture and evaluation
// ---------------------------------------------------------------------------------------

/// What the sites and the aggregator must agree on: the architecture, the class names, the
/// benign class, and where to compute. Evaluates flat parameters on any data set (e.g. the
/// aggregator's global test set, NSL-KDD's KDDTest+).
#[derive(Debug, Clone, PartialEq)]
pub struct MlpSpec {
    /// Input width.
    pub n_features: usize,
    /// Class names; a label is an index into this list.
    pub classes: Vec<String>,
    /// Hidden widths, class weighting and L2 penalty.
    pub config: MlpConfig,
    /// The benign class for `binary_accuracy` (default [`DEFAULT_BENIGN_CLASS`]). When no
    /// class has this name, `binary_accuracy` is not reported.
    pub benign_class: String,
    /// Where to train and evaluate.
    pub device: ComputeDevice,
    /// Threads for CPU work (`Some(1)` by default, for bit-reproducible results; `None`: all
    /// cores, faster but not bit-reproducible).
    pub threads: Option<usize>,
}

impl MlpSpec {
    /// A specification on the CPU, one thread, benign class `normal`.
    ///
    /// # Errors
    ///
    /// [`MlError::Data`] for zero features, fewer than two classes or a zero hidden width.
    pub fn new(n_features: usize, classes: Vec<String>, config: MlpConfig) -> Result<Self> {
        if n_features == 0 {
            return Err(MlError::Data("the network needs at least 1 feature".into()));
        }
        if classes.len() < 2 {
            return Err(MlError::Data(format!(
                "{} class(es); a classifier needs at least 2",
                classes.len()
            )));
        }
        if config.hidden.contains(&0) {
            return Err(MlError::Data(
                "hidden layer widths must be at least 1".into(),
            ));
        }
        Ok(Self {
            n_features,
            classes,
            config,
            benign_class: DEFAULT_BENIGN_CLASS.into(),
            device: ComputeDevice::Cpu,
            threads: Some(1),
        })
    }

    /// Sets the compute device.
    pub fn with_device(mut self, device: ComputeDevice) -> Self {
        self.device = device;
        self
    }

    /// Sets the benign class name used by `binary_accuracy`.
    pub fn with_benign_class(mut self, name: impl Into<String>) -> Self {
        self.benign_class = name.into();
        self
    }

    /// Sets the CPU thread count (see [`MlpSpec::threads`]).
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        self.threads = threads;
        self
    }

    /// Number of parameters (the length of every flat vector).
    pub fn num_params(&self) -> usize {
        num_params(self.n_features, self.classes.len(), &self.config)
    }

    /// The initial parameters for `seed` (see [`initial_params`]).
    pub fn initial_params(&self, seed: u64) -> Vec<f32> {
        initial_params(self.n_features, self.classes.len(), &self.config, seed)
    }

    /// A network on `device` holding `params`.
    ///
    /// # Errors
    ///
    /// [`MlError::Weights`] on a length mismatch.
    pub fn net(&self, params: &[f32], device: &Device) -> Result<MlpNet> {
        let net = MlpNet::new(self.n_features, self.classes.len(), &self.config, device);
        load_flat(net, params)
    }

    /// Evaluates `params` on `rows` (row-major, `n_features` values each) with `labels`
    /// (class indices): `(examples, metrics)` with `loss` (mean unweighted cross-entropy),
    /// `accuracy` (multi-class) and `binary_accuracy` (benign vs attack: correct when
    /// "predicted benign" equals "truly benign"; only when the benign class exists).
    ///
    /// # Errors
    ///
    /// [`MlError::Data`] on ragged rows, a label count mismatch, an out-of-range label or no
    /// rows; [`MlError::Weights`] on a parameter length mismatch; [`MlError::Device`] when
    /// the device is not available.
    pub fn evaluate_params(
        &self,
        params: &[f32],
        rows: &[f32],
        labels: &[usize],
    ) -> Result<(u64, Metrics)> {
        let n = check_data(
            rows,
            self.n_features,
            labels,
            self.classes.len(),
            "evaluation",
        )?;
        compute::with_threads(self.threads, || {
            self.evaluate_inner(params, rows, labels, n)
        })
    }

    fn evaluate_inner(
        &self,
        params: &[f32],
        rows: &[f32],
        labels: &[usize],
        n: usize,
    ) -> Result<(u64, Metrics)> {
        let device = self.device.device()?;
        let net = self.net(params, &device)?;
        let d = self.n_features;
        let k = self.classes.len();
        let benign = self.benign_index();
        let mut counts = Counts::default();
        for start in (0..n).step_by(EVAL_BATCH) {
            let end = (start + EVAL_BATCH).min(n);
            let x = train::tensor2(rows[start * d..end * d].to_vec(), end - start, d, &device);
            let logits = train::values(net.forward(x))?;
            counts.add(&logits, &labels[start..end], k, benign);
        }
        let mut metrics = Metrics::new();
        metrics.insert("loss".into(), counts.loss / n as f64);
        metrics.insert("accuracy".into(), counts.correct as f64 / n as f64);
        if benign.is_some() {
            metrics.insert(
                "binary_accuracy".into(),
                counts.binary_correct as f64 / n as f64,
            );
        }
        Ok((n as u64, metrics))
    }

    fn benign_index(&self) -> Option<usize> {
        self.classes.iter().position(|c| *c == self.benign_class)
    }
}

/// Running sums of an evaluation pass.
#[derive(Debug, Default)]
struct Counts {
    loss: f64,
    correct: usize,
    binary_correct: usize,
}

impl Counts {
    /// Adds a batch of row-major logits `[n, k]` with their labels.
    fn add(&mut self, logits: &[f32], labels: &[usize], k: usize, benign: Option<usize>) {
        for (row, &y) in logits.chunks(k).zip(labels) {
            let (pred, max) = argmax(row);
            let lse = max
                + row
                    .iter()
                    .map(|&z| (f64::from(z) - max).exp())
                    .sum::<f64>()
                    .ln();
            let z_y = row.get(y).map_or(f64::NAN, |&z| f64::from(z));
            self.loss += lse - z_y;
            self.correct += usize::from(pred == y);
            if let Some(b) = benign {
                self.binary_correct += usize::from((pred == b) == (y == b));
            }
        }
    }
}

/// Index and value (as `f64`) of the largest logit; the first one on ties.
fn argmax(row: &[f32]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, &z) in row.iter().enumerate() {
        if f64::from(z) > best.1 {
            best = (i, f64::from(z));
        }
    }
    best
}

/// Checks row-major `rows` against `d` and `labels` against the row count and `k`; the row
/// count.
fn check_data(rows: &[f32], d: usize, labels: &[usize], k: usize, what: &str) -> Result<usize> {
    let n = train::check_rows(rows, d, what)?;
    if n == 0 {
        return Err(MlError::Data(format!("{what} data has no rows")));
    }
    if labels.len() != n {
        return Err(MlError::Data(format!(
            "{what} data: {} labels for {n} rows",
            labels.len()
        )));
    }
    if let Some((i, y)) = labels.iter().enumerate().find(|(_, y)| **y >= k) {
        return Err(MlError::Data(format!(
            "{what} data, row {i}: label index {y} >= {k} classes"
        )));
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Site trainer
// ---------------------------------------------------------------------------------------

/// One site's MLP and data, trained and evaluated by the federation runtime through
/// [`LocalTrainer`].
///
/// Each call to [`LocalTrainer::fit`] loads the global parameters into a fresh network and
/// starts a fresh Adam optimiser (its moment estimates do not carry over between rounds,
/// as in FedAvg/FedProx with a stateless local solver).
#[derive(Debug, Clone)]
pub struct MlpTrainer {
    spec: MlpSpec,
    rows: Vec<f32>,
    labels: Vec<usize>,
    eval: Option<(Vec<f32>, Vec<usize>)>,
}

impl MlpTrainer {
    /// A site with training `rows` (row-major, `n_features` values each) and `labels`
    /// (indices into `classes`), on `device`; CPU work on one thread, benign class `normal`
    /// (see [`MlpTrainer::with_spec`] to change them).
    ///
    /// # Errors
    ///
    /// [`MlError::Data`] on an invalid architecture ([`MlpSpec::new`]), ragged rows, no
    /// rows, a label count mismatch or an out-of-range label.
    pub fn new(
        rows: Vec<f32>,
        n_features: usize,
        labels: Vec<usize>,
        classes: Vec<String>,
        config: MlpConfig,
        device: ComputeDevice,
    ) -> Result<Self> {
        let spec = MlpSpec::new(n_features, classes, config)?.with_device(device);
        Self::with_spec(spec, rows, labels)
    }

    /// A site with an explicit [`MlpSpec`].
    ///
    /// # Errors
    ///
    /// As [`MlpTrainer::new`].
    pub fn with_spec(spec: MlpSpec, rows: Vec<f32>, labels: Vec<usize>) -> Result<Self> {
        let spec = MlpSpec::new(spec.n_features, spec.classes, spec.config)?
            .with_device(spec.device)
            .with_benign_class(spec.benign_class)
            .with_threads(spec.threads);
        check_data(
            &rows,
            spec.n_features,
            &labels,
            spec.classes.len(),
            "training",
        )?;
        Ok(Self {
            spec,
            rows,
            labels,
            eval: None,
        })
    }

    /// Sets held-out evaluation rows and labels (otherwise [`LocalTrainer::evaluate`] uses
    /// the training rows).
    ///
    /// # Errors
    ///
    /// [`MlError::Data`] on ragged rows, no rows, a label count mismatch or an out-of-range
    /// label.
    pub fn with_eval(mut self, rows: Vec<f32>, labels: Vec<usize>) -> Result<Self> {
        check_data(
            &rows,
            self.spec.n_features,
            &labels,
            self.spec.classes.len(),
            "evaluation",
        )?;
        self.eval = Some((rows, labels));
        Ok(self)
    }

    /// Sets the benign class name used by `binary_accuracy`.
    pub fn with_benign_class(mut self, name: impl Into<String>) -> Self {
        self.spec.benign_class = name.into();
        self
    }

    /// Sets the CPU thread count (see [`MlpSpec::threads`]).
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        self.spec.threads = threads;
        self
    }

    /// The architecture, classes and device.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// Number of training rows.
    pub fn num_examples(&self) -> usize {
        self.labels.len()
    }

    /// The initial parameters for `seed` (see [`initial_params`]).
    pub fn initial_params(&self, seed: u64) -> Vec<f32> {
        self.spec.initial_params(seed)
    }

    /// Evaluates `params` on other data (see [`MlpSpec::evaluate_params`]).
    ///
    /// # Errors
    ///
    /// As [`MlpSpec::evaluate_params`].
    pub fn evaluate_params(
        &self,
        params: &[f32],
        rows: &[f32],
        labels: &[usize],
    ) -> Result<(u64, Metrics)> {
        self.spec.evaluate_params(params, rows, labels)
    }

    /// Trains from `global` as one federated round (see [`LocalTrainer::fit`]).
    ///
    /// # Errors
    ///
    /// [`MlError::Data`] on an invalid plan (no epochs, batch size 0, a learning rate that is
    /// not positive and finite, a negative or non-finite μ); [`MlError::Weights`] when
    /// `global` has the wrong length; [`MlError::Device`] when the device is unavailable.
    pub fn train_round(&self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult> {
        check_plan(plan)?;
        compute::with_threads(self.spec.threads, || self.train_inner(global, plan))
    }

    /// The centralised baseline: trains on this site's rows (e.g. all sites' data pooled)
    /// for `epochs` epochs from [`initial_params`]`(seed)`, without a proximal term. With
    /// the same `seed` as the federation's initial parameters and `epochs = E · R`
    /// (local epochs times rounds) it sees as many passes over the data as the federation.
    ///
    /// # Errors
    ///
    /// As [`MlpTrainer::train_round`].
    pub fn train_central(
        &self,
        epochs: u32,
        learning_rate: f32,
        batch_size: usize,
        seed: u64,
    ) -> Result<LocalResult> {
        let plan = LocalPlan {
            round: 1,
            local_epochs: epochs,
            learning_rate,
            proximal_mu: 0.0,
            batch_size,
            seed,
        };
        self.train_round(&self.initial_params(seed), &plan)
    }

    /// Evaluates `params` on the held-out rows, or on the training rows when there are none.
    ///
    /// # Errors
    ///
    /// As [`MlpSpec::evaluate_params`].
    pub fn evaluate_held_out(&self, params: &[f32]) -> Result<(u64, Metrics)> {
        match &self.eval {
            Some((rows, labels)) => self.spec.evaluate_params(params, rows, labels),
            None => self.spec.evaluate_params(params, &self.rows, &self.labels),
        }
    }

    fn train_inner(&self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult> {
        let spec = &self.spec;
        let (d, k) = (spec.n_features, spec.classes.len());
        let n = self.labels.len();
        let device = spec.device.train_device()?;
        let mut net = spec.net(global, &device)?;
        // The global parameters as a constant (no gradient) for the proximal term.
        let mu = f64::from(plan.proximal_mu);
        let global_t = (mu > 0.0).then(|| {
            Tensor::<1>::from_data(TensorData::new(global.to_vec(), [global.len()]), &device)
        });
        let weights = class_weights(&self.labels, k, spec.config.class_weight);
        let loss_fn = CrossEntropyLossConfig::new()
            .with_weights((spec.config.class_weight != ClassWeight::None).then_some(weights))
            .init(&device);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let lr = f64::from(plan.learning_rate);
        let epochs = plan.local_epochs as usize;
        let mut buf = Vec::new();
        let (mut loss_sum, mut prox_sum, mut correct) = (0.0, 0.0, 0usize);
        for epoch in 0..epochs {
            let last = epoch + 1 == epochs;
            let perm = train::permutation(n, plan.seed, epoch);
            for idx in perm.chunks(plan.batch_size) {
                let b = idx.len();
                train::gather(&self.rows, d, idx, &mut buf);
                let x = train::tensor2(buf.clone(), b, d, &device);
                let y: Vec<i64> = idx.iter().map(|&i| self.labels[i] as i64).collect();
                let y_t = Tensor::<1, Int>::from_data(TensorData::new(y, [b]), &device);
                let logits = net.forward(x);
                if last {
                    let values = train::values(logits.clone())?;
                    correct += values
                        .chunks(k)
                        .zip(idx)
                        .filter(|(row, i)| argmax(row).0 == self.labels[**i])
                        .count();
                }
                let ce = loss_fn.forward(logits, y_t);
                if last {
                    loss_sum += f64::from(ce.clone().into_scalar::<f32>()) * b as f64;
                }
                let mut loss = ce;
                let needs_params = spec.config.l2 > 0.0 || global_t.is_some();
                if needs_params {
                    let mut c = Collector {
                        all: Vec::new(),
                        weights: Vec::new(),
                    };
                    net.visit(&mut c);
                    if spec.config.l2 > 0.0
                        && let Some(l2) = c
                            .weights
                            .into_iter()
                            .map(|w| w.square().sum())
                            .reduce(|a, b| a + b)
                    {
                        // As `MlpModel::fit`: alpha / (2 n_batch) * sum of squared weights.
                        loss = loss + l2.mul_scalar(spec.config.l2 / (2.0 * b as f64));
                    }
                    if let Some(g) = &global_t {
                        // FedProx: mu/2 * ||w - w_global||^2; autodiff gives mu (w - w_global).
                        let w = Tensor::cat(c.all, 0);
                        let prox = (w - g.clone()).square().sum().mul_scalar(mu / 2.0);
                        if last {
                            prox_sum += f64::from(prox.clone().into_scalar::<f32>()) * b as f64;
                        }
                        loss = loss + prox;
                    }
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(lr, net, grads);
            }
        }
        let params = flatten(&net.valid());
        let mut metrics = Metrics::new();
        metrics.insert("loss".into(), loss_sum / n as f64);
        metrics.insert("accuracy".into(), correct as f64 / n as f64);
        if global_t.is_some() {
            metrics.insert("proximal".into(), prox_sum / n as f64);
        }
        Ok(LocalResult {
            params,
            num_examples: n as u64,
            metrics,
        })
    }
}

/// Checks a round's plan.
pub(crate) fn check_plan(plan: &LocalPlan) -> Result<()> {
    if plan.local_epochs == 0 || plan.batch_size == 0 {
        return Err(MlError::Data(
            "local epochs and batch size must be at least 1".into(),
        ));
    }
    if !(plan.learning_rate > 0.0 && plan.learning_rate.is_finite()) {
        return Err(MlError::Data(format!(
            "learning rate must be positive and finite, got {}",
            plan.learning_rate
        )));
    }
    if !(plan.proximal_mu >= 0.0 && plan.proximal_mu.is_finite()) {
        return Err(MlError::Data(format!(
            "proximal coefficient must be non-negative and finite, got {}",
            plan.proximal_mu
        )));
    }
    Ok(())
}

impl LocalTrainer for MlpTrainer {
    fn num_params(&self) -> usize {
        self.spec.num_params()
    }

    /// Loads `global` into a fresh network and trains `plan.local_epochs` epochs with Adam
    /// (fresh state) at `plan.learning_rate`, mini-batches of `plan.batch_size` shuffled
    /// with `plan.seed`, on the (class-weighted, per `config.class_weight` over this site's
    /// labels) cross-entropy plus the L2 penalty plus, when `plan.proximal_mu > 0`, the
    /// FedProx term μ/2·‖w − w_global‖². Metrics over the last local epoch: `loss` (mean
    /// cross-entropy, before each step), `accuracy` (training accuracy of the predictions
    /// made before each step) and, with FedProx, `proximal` (mean proximal term).
    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        self.train_round(global, plan)
            .map_err(|e| TrainError(e.to_string()))
    }

    /// See [`MlpTrainer::evaluate_held_out`] and [`MlpSpec::evaluate_params`].
    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, Metrics), TrainError> {
        self.evaluate_held_out(global)
            .map_err(|e| TrainError(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------
// A trained model as a federation's starting point, and a global model back as a model
// ---------------------------------------------------------------------------------------

/// A federation's new global weights in a copy of a trained model's network, checked to be
/// finite and to fit, and the weights' bytes (what the new model file's version hashes).
pub(crate) fn global_net<M: Module>(net: &M, params: &[f32]) -> Result<(M, Vec<u8>)> {
    if let Some(i) = params.iter().position(|v| !v.is_finite()) {
        return Err(MlError::Weights(format!(
            "parameter {i} of the new model is not finite"
        )));
    }
    let net = load_flat(net.clone(), params)?;
    let bytes = train::weights_to_bytes(&net)?;
    Ok((net, bytes))
}

impl MlpModel {
    /// What the sites of a federation of this model must agree on: its architecture and
    /// classes, on the CPU, one thread.
    ///
    /// # Errors
    ///
    /// [`MlError::Data`] when the model's architecture is not valid (see [`MlpSpec::new`]).
    pub fn federation_spec(&self) -> Result<MlpSpec> {
        MlpSpec::new(self.n_features(), self.classes.clone(), self.config.clone())
    }

    /// The model's weights as one flat vector (layout: see the [module docs](self)).
    pub fn flat_params(&self) -> Vec<f32> {
        flatten(&self.net)
    }

    /// This model with `params` as its weights: a federation's new global model. Keeps the
    /// preprocessing, classes and architecture; gets a new version, creation time,
    /// `n_train` (examples behind the aggregate), `train_data_hash` (what the weights were
    /// trained on, e.g. the federation and round) and `metrics`.
    ///
    /// # Errors
    ///
    /// [`MlError::Weights`] when `params` does not fit the network or holds a non-finite
    /// value.
    pub fn with_flat_params(
        &self,
        params: &[f32],
        n_train: usize,
        train_data_hash: &str,
        metrics: BTreeMap<String, f64>,
    ) -> Result<Self> {
        let (net, bytes) = global_net(&self.net, params)?;
        Ok(Self {
            meta: train::meta(
                Self::KIND,
                train_data_hash,
                n_train,
                self.meta.feature_names.clone(),
                None,
                metrics,
                &bytes,
            ),
            config: self.config.clone(),
            preprocessor: self.preprocessor.clone(),
            classes: self.classes.clone(),
            n_features: self.n_features(),
            net,
            device: self.device.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian blobs: class `c` centred at `centre(c)` in `d` dimensions.
    fn blobs(n: usize, d: usize, k: usize, spread: f32, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = Vec::with_capacity(n * d);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % k;
            for j in 0..d {
                let centre = if j % k == c { 1.5 } else { -0.5 };
                let noise: f32 = rng.random_range(-1.0..1.0) + rng.random_range(-1.0..1.0);
                rows.push(centre + spread * noise);
            }
            labels.push(c);
        }
        (rows, labels)
    }

    fn classes() -> Vec<String> {
        vec!["normal".into(), "dos".into(), "probe".into()]
    }

    fn config() -> MlpConfig {
        MlpConfig {
            hidden: vec![16, 8],
            ..MlpConfig::default()
        }
    }

    fn plan(epochs: u32, mu: f32, seed: u64) -> LocalPlan {
        LocalPlan {
            round: 1,
            local_epochs: epochs,
            learning_rate: 1e-2,
            proximal_mu: mu,
            batch_size: 32,
            seed,
        }
    }

    fn site(rows: Vec<f32>, labels: Vec<usize>) -> MlpTrainer {
        MlpTrainer::new(rows, 4, labels, classes(), config(), ComputeDevice::Cpu).unwrap()
    }

    fn distance(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    fn trained_model() -> (MlpModel, Vec<f32>) {
        let (rows, labels) = blobs(300, 4, 3, 0.3, 11);
        let options = crate::TrainOptions {
            epochs: 3,
            batch_size: 32,
            ..crate::TrainOptions::default()
        };
        let m = MlpModel::fit(
            &rows,
            4,
            &labels,
            classes(),
            None,
            &config(),
            &options,
            ComputeDevice::Cpu,
            &mut |_| {},
        )
        .unwrap();
        (m, rows)
    }

    #[test]
    fn federated_model_params_round_trip_and_federated_weights_change_predictions() {
        let (m, rows) = trained_model();
        let flat = m.flat_params();
        assert_eq!(flat.len(), m.federation_spec().unwrap().num_params());
        let same = m
            .with_flat_params(&flat, 300, "federation-test:r0", BTreeMap::new())
            .unwrap();
        assert_eq!(
            same.predict_proba(&rows).unwrap(),
            m.predict_proba(&rows).unwrap()
        );
        assert_eq!(same.classes, m.classes);
        let zeros = vec![0.0; flat.len()];
        let flat_out = m
            .with_flat_params(&zeros, 300, "federation-test:r1", BTreeMap::new())
            .unwrap();
        let p = flat_out.predict_proba(&rows).unwrap();
        // All-zero weights: every class equally likely.
        assert!(
            p.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6),
            "{:?}",
            &p[..3]
        );
        assert_ne!(flat_out.version(), m.version());
    }

    #[test]
    fn federated_model_refuses_wrong_or_non_finite_params() {
        let (m, _) = trained_model();
        let mut flat = m.flat_params();
        let short = &flat[..flat.len() - 1];
        assert!(matches!(
            m.with_flat_params(short, 1, "x", BTreeMap::new()),
            Err(MlError::Weights(_))
        ));
        flat[5] = f32::NAN;
        let e = m
            .with_flat_params(&flat, 1, "x", BTreeMap::new())
            .unwrap_err();
        assert!(e.to_string().contains("parameter 5"), "{e}");
    }

    #[test]
    fn federated_flatten_round_trip_is_exact() {
        let cfg = MlpConfig::default();
        let device = Device::flex();
        let net = MlpNet::new(122, 5, &cfg, &device);
        let expected = 122 * 64 + 64 + 64 * 32 + 32 + 32 * 5 + 5;
        assert_eq!(num_params(122, 5, &cfg), expected);
        assert_eq!(net.num_params(), expected);
        assert_eq!(
            param_shapes(&net),
            vec![
                vec![122, 64],
                vec![64],
                vec![64, 32],
                vec![32],
                vec![32, 5],
                vec![5]
            ]
        );
        let p = initial_params(122, 5, &cfg, 7);
        assert_eq!(p.len(), expected);
        assert_eq!(p, initial_params(122, 5, &cfg, 7));
        assert_ne!(p, initial_params(122, 5, &cfg, 8));
        let net = load_flat(net, &p).unwrap();
        assert_eq!(flatten(&net), p);
        // The layout is row-major `[d_in, d_out]`: a single layer's output for the one-hot
        // input `e_1` is the second row of W plus b.
        let single = MlpConfig {
            hidden: vec![],
            ..MlpConfig::default()
        };
        let q = initial_params(3, 2, &single, 1);
        let lin = load_flat(MlpNet::new(3, 2, &single, &device), &q).unwrap();
        let out =
            train::values(lin.forward(train::tensor2(vec![0.0, 1.0, 0.0], 1, 3, &device))).unwrap();
        assert!((out[0] - (q[2] + q[6])).abs() < 1e-6 && (out[1] - (q[3] + q[7])).abs() < 1e-6);
        // Also on the training device, where the parameters stay trainable.
        let train = Device::flex().autodiff();
        let net = load_flat(MlpNet::new(122, 5, &cfg, &train), &p).unwrap();
        assert_eq!(flatten(&net), p);
    }

    #[test]
    fn federated_length_mismatch_is_an_error() {
        let cfg = config();
        let net = MlpNet::new(4, 3, &cfg, &Device::flex());
        let n = num_params(4, 3, &cfg);
        let err = load_flat(net, &vec![0.0; n - 1]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} values", n - 1)) && err.contains(&format!("expects {n}")),
            "{err}"
        );
        let mut t = site(blobs(30, 4, 3, 0.3, 1).0, blobs(30, 4, 3, 0.3, 1).1);
        assert!(t.fit(&vec![0.0; n + 1], &plan(1, 0.0, 1)).is_err());
        assert!(t.evaluate(&[0.0; 3]).is_err());
        // Invalid inputs.
        assert!(
            MlpTrainer::new(
                vec![0.0; 7],
                4,
                vec![0],
                classes(),
                cfg.clone(),
                ComputeDevice::Cpu
            )
            .is_err()
        );
        assert!(
            MlpTrainer::new(
                vec![0.0; 8],
                4,
                vec![0],
                classes(),
                cfg.clone(),
                ComputeDevice::Cpu
            )
            .is_err()
        );
        assert!(
            MlpTrainer::new(
                vec![0.0; 4],
                4,
                vec![3],
                classes(),
                cfg.clone(),
                ComputeDevice::Cpu
            )
            .is_err()
        );
        assert!(
            MlpTrainer::new(
                vec![0.0; 4],
                4,
                vec![0],
                vec!["a".into()],
                cfg,
                ComputeDevice::Cpu
            )
            .is_err()
        );
        let p = t.initial_params(1);
        assert!(t.fit(&p, &plan(0, 0.0, 1)).is_err());
        assert!(t.fit(&p, &plan(1, -1.0, 1)).is_err());
    }

    #[test]
    fn federated_fit_raises_accuracy() {
        let (rows, labels) = blobs(600, 4, 3, 1.0, 1);
        let (test, truth) = blobs(300, 4, 3, 1.0, 2);
        let mut t = site(rows, labels).with_eval(test, truth).unwrap();
        let p0 = t.initial_params(3);
        let (n, before) = t.evaluate(&p0).unwrap();
        assert_eq!(n, 300);
        let r = t.fit(&p0, &plan(5, 0.0, 4)).unwrap();
        assert_eq!(r.num_examples, 600);
        assert_eq!(r.params.len(), t.num_params());
        let (_, after) = t.evaluate(&r.params).unwrap();
        assert!(
            after["accuracy"] > 0.9 && after["accuracy"] > before["accuracy"] + 0.2,
            "before {before:?}, after {after:?}"
        );
        assert!(after["loss"] < before["loss"], "{before:?} {after:?}");
        assert!(after["binary_accuracy"] >= after["accuracy"], "{after:?}");
        assert!(r.metrics["accuracy"] > 0.8, "{:?}", r.metrics);
        assert!(r.metrics["loss"].is_finite() && !r.metrics.contains_key("proximal"));
        // Without the benign class there is no binary accuracy.
        let t = t.with_benign_class("benign");
        assert!(
            !t.evaluate_held_out(&r.params)
                .unwrap()
                .1
                .contains_key("binary_accuracy")
        );
    }

    #[test]
    fn federated_binary_accuracy_counts_benign_vs_attack() {
        let mut c = Counts::default();
        // Rows predict classes 0, 1, 2, 1; truth 0, 2, 1, 0 (benign = 0).
        let logits = [
            1.0, 0.0, 0.0, //
            0.0, 1.0, 0.0, //
            0.0, 0.0, 1.0, //
            0.0, 1.0, 0.0,
        ];
        c.add(&logits, &[0, 2, 1, 0], 3, Some(0));
        assert_eq!(c.correct, 1);
        assert_eq!(c.binary_correct, 3);
        let lse = (1f64.exp() + 2.0).ln();
        assert!((c.loss - (4.0 * lse - 1.0)).abs() < 1e-9, "{}", c.loss);
    }

    #[test]
    fn federated_fedprox_keeps_params_near_global() {
        let (rows, labels) = blobs(300, 4, 3, 0.5, 5);
        let mut t = site(rows, labels);
        let g = t.initial_params(6);
        let free = t.fit(&g, &plan(3, 0.0, 7)).unwrap();
        let prox = t.fit(&g, &plan(3, 1e4, 7)).unwrap();
        let (d_free, d_prox) = (distance(&free.params, &g), distance(&prox.params, &g));
        assert!(d_prox < 0.1 * d_free, "free {d_free}, prox {d_prox}");
        assert!(prox.metrics.contains_key("proximal"));
    }

    #[test]
    fn federated_fedavg_matches_central() {
        let (rows, labels) = blobs(800, 4, 3, 1.5, 8);
        let (test, truth) = blobs(400, 4, 3, 1.5, 9);
        // IID split: alternate rows.
        let mut sites: Vec<MlpTrainer> = (0..2)
            .map(|s| {
                let idx: Vec<usize> = (s..800).step_by(2).collect();
                let mut r = Vec::new();
                train::gather(&rows, 4, &idx, &mut r);
                site(r, idx.iter().map(|&i| labels[i]).collect())
            })
            .collect();
        let (local_epochs, rounds) = (2u32, 4u32);
        let mut global = sites[0].initial_params(10);
        for round in 1..=rounds {
            let results: Vec<LocalResult> = sites
                .iter_mut()
                .enumerate()
                .map(|(s, t)| {
                    let p = LocalPlan {
                        round,
                        seed: 100 * u64::from(round) + s as u64,
                        ..plan(local_epochs, 0.0, 0)
                    };
                    t.fit(&global, &p).unwrap()
                })
                .collect();
            let total: u64 = results.iter().map(|r| r.num_examples).sum();
            global = (0..global.len())
                .map(|i| {
                    results
                        .iter()
                        .map(|r| r.params[i] * r.num_examples as f32 / total as f32)
                        .sum()
                })
                .collect();
        }
        let central = site(rows, labels);
        let c = central
            .train_central(local_epochs * rounds, 1e-2, 32, 10)
            .unwrap();
        let (_, fed) = central.evaluate_params(&global, &test, &truth).unwrap();
        let (_, cen) = central.evaluate_params(&c.params, &test, &truth).unwrap();
        assert!(cen["accuracy"] > 0.7, "{cen:?}");
        assert!(
            (fed["accuracy"] - cen["accuracy"]).abs() < 0.05,
            "federated {fed:?}, central {cen:?}"
        );
    }

    #[test]
    fn federated_same_seed_same_params() {
        let (rows, labels) = blobs(200, 4, 3, 0.5, 11);
        let mut a = site(rows.clone(), labels.clone());
        let mut b = site(rows, labels);
        let g = a.initial_params(12);
        let ra = a.fit(&g, &plan(2, 0.1, 13)).unwrap();
        let rb = b.fit(&g, &plan(2, 0.1, 13)).unwrap();
        assert_eq!(ra.params, rb.params);
        assert_eq!(ra.metrics, rb.metrics);
        let rc = a.fit(&g, &plan(2, 0.1, 14)).unwrap();
        assert_ne!(ra.params, rc.params);
    }
}
