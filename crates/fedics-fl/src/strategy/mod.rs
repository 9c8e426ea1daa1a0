//! Aggregation strategies as values behind one interface.
//!
//! A [`Strategy`] decides which clients train in a round and how ([`Strategy::configure_round`]
//! returns a [`RoundPlan`]), turns the clients' results into the next global model
//! ([`Strategy::aggregate`]) and combines the clients' evaluation metrics
//! ([`Strategy::evaluate`]).
//!
//! | Strategy | Type | Weighted by examples | Reference |
//! |---|---|---|---|
//! | `fedavg` | [`FedAvg`] | yes | McMahan et al., AISTATS 2017 |
//! | `fedprox` | [`FedProx`] | yes | Li et al., MLSys 2020 |
//! | `fedadam` | [`FedAdam`] | yes (pseudo-gradient) | Reddi et al., ICLR 2021 |
//! | `median` | [`Median`] | no | Yin et al., ICML 2018 |
//! | `trimmed-mean` | [`TrimmedMean`] | no | Yin et al., ICML 2018 |
//! | `krum`, `multi-krum` | [`Krum`] | no | Blanchard et al., NeurIPS 2017 |
//!
//! The robust strategies ignore `num_examples` on purpose: a Byzantine client could otherwise
//! claim a huge data set and dominate the aggregate.
//!
//! # Inputs
//!
//! A client's result is a [`ClientUpdate`] carrying its **new parameters** (not the delta; use
//! [`ClientUpdate::from_delta`] when a client sends `new − global`), its number of training
//! examples and its training metrics. Every strategy validates the inputs the same way
//! (in this order):
//!
//! * no results, an empty global model, a non-finite global parameter, a duplicated client id,
//!   or a client whose parameter vector length differs from the global model's are **errors**
//!   (a length mismatch is a protocol or model-version bug, not noise, so the round fails);
//! * a client with a non-finite parameter (NaN, ±∞) is **rejected**: it is left out of the
//!   aggregate and listed in [`Aggregate::excluded`]; if every client is rejected the call
//!   fails with [`StrategyError::AllRejected`];
//! * a total of zero training examples over the accepted clients is an error
//!   ([`StrategyError::ZeroExamples`]), also for the unweighted strategies: nothing was trained.
//!
//! # Determinism
//!
//! All strategies are invariant under permutation of the results, up to floating-point
//! rounding for the averaging ones (FedAvg, FedProx, FedAdam, Multi-Krum's mean): these
//! accumulate in `f64` and the order can change the last bit of an `f32` result. Median,
//! trimmed mean and Krum are exactly permutation invariant (Krum breaks score ties by client id).
//!
//! # Example
//!
//! ```
//! use fedics_fl::strategy::{ClientUpdate, StrategyConfig};
//!
//! let config: StrategyConfig = "trimmed-mean:beta=0.2".parse().unwrap();
//! let mut strategy = config.build().unwrap();
//! let global = vec![0.0_f32; 3];
//! let results: Vec<ClientUpdate> = (0..5)
//!     .map(|i| ClientUpdate::new(format!("site-{i}"), vec![i as f32; 3], 100))
//!     .collect();
//! let aggregate = strategy.aggregate(1, &global, &results).unwrap();
//! assert_eq!(aggregate.params, vec![2.0; 3]);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

mod config;
mod fedadam;
mod fedavg;
mod krum;
mod robust;
#[cfg(test)]
mod tests;

pub use config::{ConfigError, StrategyConfig};
pub use fedadam::FedAdam;
pub use fedavg::{FedAvg, FedProx, add_proximal_gradient, proximal_gradient, proximal_term};
pub use krum::Krum;
pub use robust::{Median, TrimmedMean};

/// Metrics reported by clients or computed by a strategy, by name.
pub type Metrics = BTreeMap<String, f64>;

/// A client available for a round, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Stable identifier of the client (site).
    pub client_id: String,
    /// Number of training examples the client announced (0 when unknown).
    #[serde(default)]
    pub num_examples: u64,
}

impl ClientInfo {
    /// A client with the given id and announced data set size.
    pub fn new(client_id: impl Into<String>, num_examples: u64) -> Self {
        Self {
            client_id: client_id.into(),
            num_examples,
        }
    }
}

/// What a strategy asks of the clients in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundPlan {
    /// Round number (1-based by convention; the strategies only use it to seed selection).
    pub round: u32,
    /// Ids of the selected clients, sorted.
    pub clients: Vec<String>,
    /// Local epochs each selected client runs.
    pub local_epochs: u32,
    /// Client (local) learning rate.
    pub learning_rate: f32,
    /// Proximal coefficient μ of FedProx's local objective `F(w) + μ/2‖w − w_global‖²`;
    /// 0 for every other strategy. See [`proximal_gradient`].
    pub proximal_mu: f32,
    /// The fewest valid results [`Strategy::aggregate`] accepts (Krum needs `2f + 3`).
    pub min_results: usize,
}

/// Client-side training settings and client selection, shared by all strategies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoundSettings {
    /// Local epochs per round (default 1).
    pub local_epochs: u32,
    /// Client learning rate (default 0.01).
    pub learning_rate: f32,
    /// Fraction of the available clients selected each round, in (0, 1] (default 1: all).
    pub fraction_fit: f64,
    /// Fewest clients selected when `fraction_fit < 1` (default 2; capped at the available).
    pub min_fit_clients: usize,
    /// Seed of the per-round client sampling (default 0).
    pub seed: u64,
}

impl Default for RoundSettings {
    fn default() -> Self {
        Self {
            local_epochs: 1,
            learning_rate: 0.01,
            fraction_fit: 1.0,
            min_fit_clients: 2,
            seed: 0,
        }
    }
}

impl RoundSettings {
    /// Builds the plan for `round`: clients are sorted by id (so the plan does not depend on
    /// the order of `clients`), then, when `fraction_fit < 1`, `max(⌈fraction·n⌉,
    /// min_fit_clients)` of them are drawn uniformly without replacement with a ChaCha8 stream
    /// seeded from (`seed`, `round`). Duplicated ids are listed once.
    pub fn plan(
        &self,
        round: u32,
        clients: &[ClientInfo],
        proximal_mu: f32,
        min_results: usize,
    ) -> RoundPlan {
        let ids: BTreeSet<&str> = clients.iter().map(|c| c.client_id.as_str()).collect();
        let mut ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        let n = ids.len();
        if self.fraction_fit < 1.0 && n > 0 {
            let wanted = (self.fraction_fit.max(0.0) * n as f64).ceil() as usize;
            let k = wanted.max(self.min_fit_clients).clamp(1, n);
            if k < n {
                let seed = self.seed ^ u64::from(round).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                ids.shuffle(&mut rng);
                ids.truncate(k);
                ids.sort();
            }
        }
        RoundPlan {
            round,
            clients: ids,
            local_epochs: self.local_epochs,
            learning_rate: self.learning_rate,
            proximal_mu,
            min_results,
        }
    }
}

/// One client's training result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientUpdate {
    /// Client id; must be unique within one call to [`Strategy::aggregate`].
    pub client_id: String,
    /// The client's new model parameters (flattened), same length as the global model.
    pub params: Vec<f32>,
    /// Number of training examples used this round (the FedAvg weight).
    pub num_examples: u64,
    /// Training metrics (loss, accuracy, …), averaged by [`Strategy::aggregate`] weighted by
    /// `num_examples`.
    #[serde(default)]
    pub metrics: Metrics,
}

impl ClientUpdate {
    /// A result without metrics.
    pub fn new(client_id: impl Into<String>, params: Vec<f32>, num_examples: u64) -> Self {
        Self {
            client_id: client_id.into(),
            params,
            num_examples,
            metrics: Metrics::new(),
        }
    }

    /// A result from an update `delta = new − global`: the parameters are `global + delta`.
    ///
    /// # Errors
    /// [`StrategyError::LengthMismatch`] when `delta` and `global` differ in length.
    pub fn from_delta(
        client_id: impl Into<String>,
        global: &[f32],
        delta: &[f32],
        num_examples: u64,
    ) -> Result<Self, StrategyError> {
        let client_id = client_id.into();
        if delta.len() != global.len() {
            return Err(StrategyError::LengthMismatch {
                client_id,
                expected: global.len(),
                actual: delta.len(),
            });
        }
        let params = global.iter().zip(delta).map(|(g, d)| g + d).collect();
        Ok(Self {
            client_id,
            params,
            num_examples,
            metrics: Metrics::new(),
        })
    }

    /// Adds a metric (builder style).
    pub fn with_metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.insert(name.into(), value);
        self
    }
}

/// The result of [`Strategy::aggregate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// The new global parameters.
    pub params: Vec<f32>,
    /// The aggregated clients' training metrics, averaged weighted by `num_examples`, plus the
    /// strategy's own figures under the `agg.` prefix (`agg.num_clients`,
    /// `agg.num_excluded`, `agg.total_examples`, and strategy-specific ones).
    pub metrics: Metrics,
    /// Clients left out of the aggregate: rejected for non-finite parameters, or not selected
    /// by Krum / Multi-Krum. Sorted by id.
    pub excluded: Vec<String>,
}

/// One client's evaluation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientEvaluation {
    /// Client id.
    pub client_id: String,
    /// Number of evaluation examples (the weight).
    pub num_examples: u64,
    /// Evaluation metrics (loss, accuracy, F1, …).
    #[serde(default)]
    pub metrics: Metrics,
}

/// The result of [`Strategy::evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    /// Each metric averaged over the clients that reported a finite value for it, weighted by
    /// their `num_examples`.
    pub metrics: Metrics,
    /// Number of evaluation results.
    pub num_clients: usize,
    /// Sum of the clients' evaluation examples.
    pub total_examples: u64,
}

/// Errors of the strategies.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// [`Strategy::aggregate`] or [`Strategy::evaluate`] got no results.
    #[error("no client results to aggregate")]
    NoResults,
    /// The global model has no parameters.
    #[error("the global model has no parameters")]
    EmptyModel,
    /// The global model itself holds NaN or ±∞.
    #[error("the global model has a non-finite parameter at index {index}")]
    NonFiniteGlobal {
        /// First offending index.
        index: usize,
    },
    /// The same client id appears twice.
    #[error("client {client_id} appears more than once in the results")]
    DuplicateClient {
        /// The repeated id.
        client_id: String,
    },
    /// A client's parameter vector does not match the global model.
    #[error(
        "client {client_id} sent {actual} parameters, expected {expected} (the global model's length)"
    )]
    LengthMismatch {
        /// The client.
        client_id: String,
        /// Length of the global model.
        expected: usize,
        /// Length the client sent.
        actual: usize,
    },
    /// Every client was rejected for non-finite parameters.
    #[error("all {rejected} clients sent non-finite parameters")]
    AllRejected {
        /// Number of rejected clients.
        rejected: usize,
    },
    /// The accepted clients trained on zero examples in total.
    #[error("the {clients} accepted clients report zero training examples in total")]
    ZeroExamples {
        /// Number of accepted clients.
        clients: usize,
    },
    /// Krum's precondition `n > 2f + 2` fails.
    #[error("{strategy} with f = {f} needs n > 2f + 2 = {} valid clients, got n = {n}", 2 * f + 2)]
    TooFewClients {
        /// `krum` or `multi-krum`.
        strategy: &'static str,
        /// Valid (finite) clients.
        n: usize,
        /// Assumed number of Byzantine clients.
        f: usize,
    },
    /// Multi-Krum's `m` is not in `1..=n − f`.
    #[error("multi-krum m = {m} must be between 1 and n - f = {} (n = {n}, f = {f})", n - f)]
    InvalidSelection {
        /// Requested number of selected clients.
        m: usize,
        /// Valid clients.
        n: usize,
        /// Assumed Byzantine clients.
        f: usize,
    },
    /// FedAdam's optimiser state was built for a model of another size.
    #[error("fedadam state holds {state} parameters but the global model has {global}")]
    StateMismatch {
        /// Length of the m/v state.
        state: usize,
        /// Length of the global model.
        global: usize,
    },
    /// [`proximal_gradient`] got vectors of different lengths.
    #[error("proximal gradient: local model has {local} parameters, global model {global}")]
    ProximalLength {
        /// Local model length.
        local: usize,
        /// Global model length.
        global: usize,
    },
}

/// An aggregation strategy. Implementations are values built from a [`StrategyConfig`];
/// only [`FedAdam`] keeps state across rounds.
pub trait Strategy: Send + Sync + std::fmt::Debug {
    /// The strategy's name as used in [`StrategyConfig`] (`fedavg`, `krum`, …).
    fn name(&self) -> &str;

    /// The plan for `round` given the clients available now.
    fn configure_round(&self, round: u32, clients: &[ClientInfo]) -> RoundPlan;

    /// Combines the clients' results with the current `global` parameters into the next
    /// global model. See the [module documentation](self) for the validation rules.
    ///
    /// # Errors
    /// Any [`StrategyError`] about the inputs; the strategy's state is unchanged on error.
    fn aggregate(
        &mut self,
        round: u32,
        global: &[f32],
        results: &[ClientUpdate],
    ) -> Result<Aggregate, StrategyError>;

    /// Combines the clients' evaluation metrics, each weighted by the client's
    /// `num_examples` (see [`weighted_metrics`]).
    ///
    /// # Errors
    /// [`StrategyError::NoResults`], [`StrategyError::DuplicateClient`] or
    /// [`StrategyError::ZeroExamples`].
    fn evaluate(
        &self,
        _round: u32,
        results: &[ClientEvaluation],
    ) -> Result<EvaluationSummary, StrategyError> {
        evaluate_weighted(results)
    }
}

/// The default [`Strategy::evaluate`]: example-weighted mean of every metric.
///
/// # Errors
/// See [`Strategy::evaluate`].
pub fn evaluate_weighted(results: &[ClientEvaluation]) -> Result<EvaluationSummary, StrategyError> {
    if results.is_empty() {
        return Err(StrategyError::NoResults);
    }
    check_unique(results.iter().map(|r| r.client_id.as_str()))?;
    let total: u64 = results
        .iter()
        .fold(0u64, |acc, r| acc.saturating_add(r.num_examples));
    if total == 0 {
        return Err(StrategyError::ZeroExamples {
            clients: results.len(),
        });
    }
    let metrics = weighted_metrics(results.iter().map(|r| (r.num_examples, &r.metrics)));
    Ok(EvaluationSummary {
        metrics,
        num_clients: results.len(),
        total_examples: total,
    })
}

/// Example-weighted mean of each metric over the clients that report a finite value for it:
/// `Σ nᵢ·xᵢ / Σ nᵢ` over those clients. A metric whose reporters all have zero examples is
/// left out. Non-finite values are skipped (a diverged client must not turn the mean into NaN).
pub fn weighted_metrics<'a>(clients: impl IntoIterator<Item = (u64, &'a Metrics)>) -> Metrics {
    let mut sums: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (n, metrics) in clients {
        let w = n as f64;
        for (name, value) in metrics {
            if value.is_finite() {
                let entry = sums.entry(name.as_str()).or_insert((0.0, 0.0));
                entry.0 += w * value;
                entry.1 += w;
            }
        }
    }
    sums.into_iter()
        .filter(|(_, (_, w))| *w > 0.0)
        .map(|(name, (s, w))| (name.to_owned(), s / w))
        .collect()
}

fn check_unique<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), StrategyError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(StrategyError::DuplicateClient {
                client_id: id.to_owned(),
            });
        }
    }
    Ok(())
}

/// The clients that passed [`validate`].
#[derive(Debug)]
pub(crate) struct Validated<'a> {
    /// Accepted clients, in input order.
    pub accepted: Vec<&'a ClientUpdate>,
    /// Ids of clients rejected for non-finite parameters.
    pub rejected: Vec<String>,
    /// Sum of the accepted clients' examples.
    pub total_examples: u64,
}

/// The checks every strategy runs, in this order: results non-empty; global model non-empty
/// and finite; client ids unique; every parameter vector as long as the global model;
/// clients with non-finite parameters rejected; at least one client left; total examples of
/// the accepted clients > 0.
pub(crate) fn validate<'a>(
    global: &[f32],
    results: &'a [ClientUpdate],
) -> Result<Validated<'a>, StrategyError> {
    if results.is_empty() {
        return Err(StrategyError::NoResults);
    }
    if global.is_empty() {
        return Err(StrategyError::EmptyModel);
    }
    if let Some(index) = global.iter().position(|x| !x.is_finite()) {
        return Err(StrategyError::NonFiniteGlobal { index });
    }
    check_unique(results.iter().map(|r| r.client_id.as_str()))?;
    if let Some(bad) = results.iter().find(|r| r.params.len() != global.len()) {
        return Err(StrategyError::LengthMismatch {
            client_id: bad.client_id.clone(),
            expected: global.len(),
            actual: bad.params.len(),
        });
    }
    let (accepted, rejected): (Vec<&ClientUpdate>, Vec<&ClientUpdate>) = results
        .iter()
        .partition(|r| r.params.iter().all(|x| x.is_finite()));
    if accepted.is_empty() {
        return Err(StrategyError::AllRejected {
            rejected: rejected.len(),
        });
    }
    let total_examples = accepted
        .iter()
        .fold(0u64, |acc, r| acc.saturating_add(r.num_examples));
    if total_examples == 0 {
        return Err(StrategyError::ZeroExamples {
            clients: accepted.len(),
        });
    }
    Ok(Validated {
        accepted,
        rejected: rejected.into_iter().map(|r| r.client_id.clone()).collect(),
        total_examples,
    })
}

/// Builds an [`Aggregate`]: client metrics of `used` weighted by examples, the `agg.` figures,
/// and `excluded` sorted.
pub(crate) fn finish(
    params: Vec<f32>,
    used: &[&ClientUpdate],
    mut excluded: Vec<String>,
    extra: impl IntoIterator<Item = (&'static str, f64)>,
) -> Aggregate {
    let mut metrics = weighted_metrics(used.iter().map(|r| (r.num_examples, &r.metrics)));
    let total: u64 = used
        .iter()
        .fold(0u64, |acc, r| acc.saturating_add(r.num_examples));
    metrics.insert("agg.num_clients".into(), used.len() as f64);
    metrics.insert("agg.num_excluded".into(), excluded.len() as f64);
    metrics.insert("agg.total_examples".into(), total as f64);
    for (k, v) in extra {
        metrics.insert(k.into(), v);
    }
    excluded.sort();
    Aggregate {
        params,
        metrics,
        excluded,
    }
}

/// Example-weighted mean `Σ nᵢ·xᵢ / Σ nᵢ` of the clients' parameters, accumulated in `f64`.
/// `clients` must be non-empty, of equal length `dim`, with a positive total weight
/// (guaranteed after [`validate`]).
pub(crate) fn weighted_mean(
    clients: &[&ClientUpdate],
    dim: usize,
    total_examples: u64,
) -> Vec<f32> {
    let mut acc = vec![0.0_f64; dim];
    for c in clients {
        let w = c.num_examples as f64;
        if w == 0.0 {
            continue;
        }
        for (a, &x) in acc.iter_mut().zip(&c.params) {
            *a += w * f64::from(x);
        }
    }
    let total = total_examples as f64;
    acc.into_iter().map(|a| (a / total) as f32).collect()
}

/// Euclidean norm of `a − b`, in `f64`.
pub(crate) fn distance(a: &[f32], b: &[f32]) -> f64 {
    squared_distance(a, b).sqrt()
}

/// `‖a − b‖²`, accumulated in `f64` over 8 independent lanes (which lets the compiler
/// vectorise; the summation order is fixed, so the result is deterministic).
pub(crate) fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0_f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(xa).zip(xb) {
            let d = f64::from(x) - f64::from(y);
            *s += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}
