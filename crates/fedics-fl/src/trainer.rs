//! What a site runs each round: local training from the global parameters, and evaluation.
//! Model crates implement [`LocalTrainer`] (e.g. `fedics_ml::federated::MlpTrainer`); the
//! federation runtime only sees flat `f32` parameter vectors.

use std::collections::BTreeMap;

/// How a site trains in one round (from the aggregator's [`crate::strategy::RoundPlan`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LocalPlan {
    /// Round number (1-based).
    pub round: u32,
    /// Local epochs over the site's data.
    pub local_epochs: u32,
    /// Local learning rate.
    pub learning_rate: f32,
    /// FedProx proximal coefficient μ (0: plain local training).
    pub proximal_mu: f32,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Seed of the round's shuffling (derived from the federation seed, round and site).
    pub seed: u64,
}

/// A site's result of one round.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalResult {
    /// The site's new parameters (same length as the global ones).
    pub params: Vec<f32>,
    /// Training examples used.
    pub num_examples: u64,
    /// Training metrics (`loss`, `accuracy`, …), means over the last local epoch.
    pub metrics: BTreeMap<String, f64>,
}

/// An error of local training or evaluation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrainError(pub String);

/// A site's model and data.
pub trait LocalTrainer: Send {
    /// Number of parameters of the model (the length of every parameter vector).
    fn num_params(&self) -> usize;

    /// Trains from `global` for `plan.local_epochs` and returns the new parameters.
    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError>;

    /// Evaluates `global` on the site's held-out data: (examples, metrics).
    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError>;
}
