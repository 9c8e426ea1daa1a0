//! Federations that **merge trees** instead of averaging parameters (the Isolation Forest).
//!
//! Each site grows trees on its own rows and contributes them; the aggregator pools the
//! contributions (with the trees of the current global forest) and samples the new global
//! forest from the pool. Nothing is averaged: a tree is a set of splits of one site's data,
//! and a mean of two trees is not a tree. The transport sees forests as opaque, versioned
//! bytes; the model crate encodes them, validates what it receives ([`TreeMerger::validate`])
//! and merges ([`TreeMerger::merge`]).
//!
//! What does **not** apply, and why:
//!
//! * client-level differential privacy: clipping and Gaussian noise act on a parameter
//!   vector's L2 norm; a tree has no norm to clip, and noised thresholds would not bound a
//!   site's influence the way the accountant assumes. A tree federation refuses DP settings
//!   instead of pretending to account for them.
//! * parameter strategies (FedProx, FedAdam, median, trimmed mean, Krum): they are rules for
//!   combining vectors. The aggregator uses its strategy only to select the sites of a round
//!   and to combine the sites' evaluation metrics (FedAvg: weighted by examples), and refuses
//!   the others.
//!
//! The threshold is not federated: each site calibrates its own on the merged global forest
//! (a quantile of its benign training rows' scores) when it evaluates it, as the
//! autoencoder's sites do.

use std::collections::BTreeMap;

use crate::trainer::TrainError;

/// Metrics of a site: name → value.
pub type Metrics = BTreeMap<String, f64>;

/// How a site grows its trees in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreePlan {
    /// Round number (1-based).
    pub round: u32,
    /// Trees to grow.
    pub n_trees: usize,
    /// Rows drawn per tree (the forest's `max_samples`).
    pub max_samples: usize,
    /// Seed of the trees (derived from the federation seed, round and site).
    pub seed: u64,
}

/// What a site contributes in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeContribution {
    /// The trees, encoded by the model crate.
    pub trees: Vec<u8>,
    /// Number of trees encoded.
    pub n_trees: usize,
    /// Rows the trees were grown from.
    pub num_examples: u64,
    /// Metrics of the growth (e.g. `trees`, `train_rows`).
    pub metrics: Metrics,
}

/// A site's trees and data: what a site of a tree federation runs.
pub trait TreeTrainer: Send {
    /// Number of features of the site's rows (every tree splits on features below it).
    fn n_features(&self) -> usize;

    /// Version of the tree encoding the site writes (the aggregator announces the one it
    /// reads; a site does not grow trees for another).
    fn format_version(&self) -> u32;

    /// Grows `plan.n_trees` trees on the site's own rows.
    fn grow(&mut self, plan: &TreePlan) -> Result<TreeContribution, TrainError>;

    /// Calibrates the site's threshold on the encoded global forest and evaluates it on the
    /// site's held-out rows: (examples, metrics). The bytes come from the network: the
    /// implementation validates them.
    fn evaluate(&mut self, global: &[u8]) -> Result<(u64, Metrics), TrainError>;
}

/// What a contribution may hold; anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContributionLimits {
    /// Features every tree must be defined over (the federation's).
    pub n_features: usize,
    /// Most trees one contribution may hold (what the site was asked to grow).
    pub max_trees: usize,
    /// Largest per-tree sample size (the round's `max_samples`).
    pub max_samples: usize,
}

/// Why a contribution (or a merge) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContributionError(pub String);

/// The aggregator's side of a tree model: its encoding, validation and merge rule.
pub trait TreeMerger: Send + Sync {
    /// Version of the encoding this implementation writes and reads.
    fn format_version(&self) -> u32;

    /// Largest encoding a contribution within `limits` can have: the bound an announced
    /// length is checked against before anything is received.
    fn max_encoded_len(&self, limits: &ContributionLimits) -> u64;

    /// Decodes and checks a contribution against `limits`; returns its number of trees.
    ///
    /// # Errors
    /// A contribution that does not decode, has another feature count, a malformed tree
    /// (inconsistent node arrays, non-finite thresholds) or too many trees.
    fn validate(
        &self,
        bytes: &[u8],
        limits: &ContributionLimits,
    ) -> Result<usize, ContributionError>;

    /// Merges validated forests (in the given order) into one of `n_trees` trees, drawn
    /// deterministically from `seed`; returns its encoding.
    ///
    /// # Errors
    /// No forest, or forests that do not decode or disagree on the features.
    fn merge(
        &self,
        forests: &[&[u8]],
        n_trees: usize,
        seed: u64,
    ) -> Result<Vec<u8>, ContributionError>;
}

/// Splits `total` trees among sites in proportion to their examples (largest remainder;
/// ties to the earlier site), at least one tree each. Sites announcing no examples count as
/// one example. The result sums to `max(total, sites)`.
pub fn allocate_trees(total: usize, examples: &[u64]) -> Vec<usize> {
    let k = examples.len();
    if k == 0 {
        return Vec::new();
    }
    let total = total.max(k);
    let weights: Vec<u128> = examples.iter().map(|&n| u128::from(n.max(1))).collect();
    let sum: u128 = weights.iter().sum();
    // Each site first gets one tree; the other total − k are shared by weight.
    let spare = (total - k) as u128;
    let mut out: Vec<usize> = weights
        .iter()
        .map(|w| 1 + (spare * w / sum) as usize)
        .collect();
    let mut left = total - out.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..k).collect();
    // Largest remainder first; stable sort keeps ties in site order.
    order.sort_by_key(|&i| std::cmp::Reverse((spare * weights[i]) % sum));
    for i in order {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_allocated_in_proportion_to_examples() {
        assert_eq!(allocate_trees(100, &[10, 10, 10]), vec![34, 33, 33]);
        assert_eq!(allocate_trees(100, &[300, 100]), vec![75, 25]);
        assert_eq!(allocate_trees(10, &[1_000_000, 1]), vec![9, 1]);
        assert_eq!(allocate_trees(2, &[5, 5, 5]), vec![1, 1, 1]);
        assert_eq!(allocate_trees(7, &[0, 0]), vec![4, 3]);
        assert!(allocate_trees(5, &[]).is_empty());
        for (total, ex) in [
            (100, vec![41_991, 41_991, 41_991]),
            (37, vec![7, 1, 300, 12]),
        ] {
            assert_eq!(allocate_trees(total, &ex).iter().sum::<usize>(), total);
        }
    }
}
