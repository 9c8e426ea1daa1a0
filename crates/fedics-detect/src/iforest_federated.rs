//! The Isolation Forest as a federated model: trees are **merged**, never averaged.
//!
//! * [`IForestSite`] is a site ([`TreeTrainer`]): every round it grows the trees it is asked
//!   for on its own benign rows (seeded by the round's plan, so a replayed round grows the
//!   same trees) and contributes them encoded ([`IsolationForest::to_bytes`]). When it
//!   evaluates a global forest it first calibrates its own threshold, the
//!   `threshold_quantile` of the forest's scores on its benign training rows, since what is
//!   normal differs per plant, then reports `threshold`, `binary_accuracy` (attack ⇔ score
//!   above the threshold) and `roc_auc` on its held-out rows.
//! * [`IForestMerger`] is the aggregator's rule ([`TreeMerger`]): a contribution is decoded
//!   and validated ([`IsolationForest::from_bytes`]: node arrays, features, finite
//!   thresholds, leaf sizes; then the federation's feature count, tree count and sample
//!   size), and forests merge by [`IsolationForest::merge`]: trees drawn without replacement
//!   from the pool, each keeping its own sample size for normalisation.

use fedics_fl::trainer::TrainError;
use fedics_fl::trees::{
    ContributionError, ContributionLimits, Metrics, TreeContribution, TreeMerger, TreePlan,
    TreeTrainer,
};

use crate::iforest::{IForestError, IForestParams, IsolationForest, wire};

/// Default quantile of a site's benign training scores taken as its threshold.
pub const DEFAULT_THRESHOLD_QUANTILE: f64 = 0.99;

/// The aggregator's validation and merge of Isolation Forest contributions.
#[derive(Debug, Default, Clone, Copy)]
pub struct IForestMerger;

impl IForestMerger {
    /// Decodes `bytes` and checks them against `limits`.
    ///
    /// # Errors
    /// [`IForestError::InvalidParam`] or [`IForestError::DimensionMismatch`] naming the
    /// problem.
    pub fn decode(
        bytes: &[u8],
        limits: &ContributionLimits,
    ) -> Result<IsolationForest, IForestError> {
        let f = IsolationForest::from_bytes(bytes)?;
        if f.n_features() != limits.n_features {
            return Err(IForestError::DimensionMismatch {
                expected: limits.n_features,
                found: f.n_features(),
                row: 0,
            });
        }
        if f.n_trees() > limits.max_trees {
            return Err(IForestError::InvalidParam(format!(
                "{} trees, at most {} were asked for",
                f.n_trees(),
                limits.max_trees
            )));
        }
        if f.max_tree_sample_size() > limits.max_samples {
            return Err(IForestError::InvalidParam(format!(
                "a tree grown on {} rows, at most {} per tree were asked for",
                f.max_tree_sample_size(),
                limits.max_samples
            )));
        }
        Ok(f)
    }
}

impl TreeMerger for IForestMerger {
    fn format_version(&self) -> u32 {
        u32::from(wire::FORMAT_VERSION)
    }

    fn max_encoded_len(&self, limits: &ContributionLimits) -> u64 {
        wire::max_encoded_len(limits.max_trees, limits.max_samples)
    }

    fn validate(
        &self,
        bytes: &[u8],
        limits: &ContributionLimits,
    ) -> Result<usize, ContributionError> {
        Self::decode(bytes, limits)
            .map(|f| f.n_trees())
            .map_err(|e| ContributionError(format!("isolation forest: {e}")))
    }

    fn merge(
        &self,
        forests: &[&[u8]],
        n_trees: usize,
        seed: u64,
    ) -> Result<Vec<u8>, ContributionError> {
        let decoded = forests
            .iter()
            .enumerate()
            .map(|(i, b)| {
                IsolationForest::from_bytes(b)
                    .map_err(|e| ContributionError(format!("forest {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        IsolationForest::merge(&decoded, n_trees, seed)
            .map(|f| f.to_bytes())
            .map_err(|e| ContributionError(format!("merging forests: {e}")))
    }
}

/// Scores of `forest` on row-major `f32` rows (compiled scoring: the same leaves as the
/// `f64` scorer for `f32` inputs).
///
/// # Errors
/// Rows of another width, or a forest that does not compile.
pub fn scores(forest: &IsolationForest, rows: &[f32]) -> Result<Vec<f64>, IForestError> {
    let d = forest.n_features();
    if !rows.len().is_multiple_of(d) {
        return Err(IForestError::DimensionMismatch {
            expected: d,
            found: rows.len() % d,
            row: rows.len() / d,
        });
    }
    Ok(forest.compile()?.score_batch_f32(rows))
}

/// The threshold a site with benign `rows` calibrates for `forest`: the `q`-quantile of
/// their scores.
///
/// # Errors
/// As [`scores`]; no rows; `q` outside `[0, 1]`.
pub fn calibrate(forest: &IsolationForest, rows: &[f32], q: f64) -> Result<f64, IForestError> {
    let s = scores(forest, rows)?;
    fedics_tabular::metrics::quantile(&s, q)
        .map_err(|e| IForestError::InvalidParam(format!("threshold quantile: {e}")))
}

/// Metrics of `forest` on labelled rows at `threshold`: `binary_accuracy` (attack ⇔ score
/// above the threshold), `roc_auc` (when both classes are present), `mean_benign_score`
/// and `threshold`. Returns (rows, metrics).
///
/// # Errors
/// As [`scores`]; a label count mismatch.
pub fn evaluate(
    forest: &IsolationForest,
    rows: &[f32],
    is_attack: &[bool],
    threshold: f64,
) -> Result<(u64, Metrics), IForestError> {
    let s = scores(forest, rows)?;
    if s.len() != is_attack.len() {
        return Err(IForestError::InvalidParam(format!(
            "{} labels for {} rows",
            is_attack.len(),
            s.len()
        )));
    }
    let mut m = Metrics::new();
    let correct = s
        .iter()
        .zip(is_attack)
        .filter(|(s, a)| (**s > threshold) == **a)
        .count();
    m.insert(
        "binary_accuracy".into(),
        correct as f64 / s.len().max(1) as f64,
    );
    let benign: Vec<f64> = s
        .iter()
        .zip(is_attack)
        .filter(|(_, a)| !**a)
        .map(|(s, _)| *s)
        .collect();
    if !benign.is_empty() {
        m.insert(
            "mean_benign_score".into(),
            benign.iter().sum::<f64>() / benign.len() as f64,
        );
    }
    if is_attack.iter().any(|a| *a) && benign.len() < s.len() && !benign.is_empty() {
        let auc = fedics_tabular::metrics::roc_auc(&s, is_attack)
            .map_err(|e| IForestError::InvalidParam(format!("ROC-AUC: {e}")))?;
        m.insert("roc_auc".into(), auc);
    }
    m.insert("threshold".into(), threshold);
    Ok((s.len() as u64, m))
}

/// A site of an Isolation Forest federation: its benign training rows and, optionally,
/// labelled held-out rows to evaluate global forests on.
#[derive(Debug, Clone)]
pub struct IForestSite {
    n_features: usize,
    rows: Vec<f32>,
    eval: Option<(Vec<f32>, Vec<bool>)>,
    threshold_quantile: f64,
}

impl IForestSite {
    /// # Errors
    /// Zero features, ragged or non-finite rows, fewer than 2 rows.
    pub fn new(n_features: usize, benign_rows: Vec<f32>) -> Result<Self, IForestError> {
        let n = check_rows(&benign_rows, n_features)?;
        if n < 2 {
            return Err(IForestError::InvalidParam(format!(
                "site training data: {n} benign rows; at least 2 are needed"
            )));
        }
        Ok(Self {
            n_features,
            rows: benign_rows,
            eval: None,
            threshold_quantile: DEFAULT_THRESHOLD_QUANTILE,
        })
    }

    /// Labelled held-out rows for the evaluation of each global forest.
    ///
    /// # Errors
    /// Ragged or non-finite rows, no rows, or a label count mismatch.
    pub fn with_eval(mut self, rows: Vec<f32>, is_attack: Vec<bool>) -> Result<Self, IForestError> {
        let n = check_rows(&rows, self.n_features)?;
        if n == 0 || n != is_attack.len() {
            return Err(IForestError::InvalidParam(format!(
                "site evaluation data: {n} rows, {} labels",
                is_attack.len()
            )));
        }
        self.eval = Some((rows, is_attack));
        Ok(self)
    }

    /// Sets the threshold quantile (in `[0, 1]`; default [`DEFAULT_THRESHOLD_QUANTILE`]).
    ///
    /// # Errors
    /// A quantile outside `[0, 1]`.
    pub fn with_threshold_quantile(mut self, q: f64) -> Result<Self, IForestError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(IForestError::InvalidParam(format!(
                "threshold quantile {q} is not in [0, 1]"
            )));
        }
        self.threshold_quantile = q;
        Ok(self)
    }

    /// Number of benign training rows.
    pub fn num_examples(&self) -> usize {
        self.rows.len() / self.n_features
    }

    /// Grows the trees of `plan` on this site's rows.
    ///
    /// # Errors
    /// An invalid plan (no trees, `max_samples < 2`).
    pub fn grow_forest(&self, plan: &TreePlan) -> Result<IsolationForest, IForestError> {
        let data: Vec<f64> = self.rows.iter().map(|&x| f64::from(x)).collect();
        IsolationForest::fit(
            &data,
            self.n_features,
            &IForestParams {
                n_estimators: plan.n_trees,
                max_samples: plan.max_samples,
                seed: plan.seed,
            },
        )
    }

    /// Calibrates this site's threshold for `forest` on its benign training rows and
    /// evaluates on the held-out rows (else on the training rows, all benign).
    ///
    /// # Errors
    /// A forest over another number of features.
    pub fn evaluate_forest(
        &self,
        forest: &IsolationForest,
    ) -> Result<(u64, Metrics), IForestError> {
        if forest.n_features() != self.n_features {
            return Err(IForestError::DimensionMismatch {
                expected: self.n_features,
                found: forest.n_features(),
                row: 0,
            });
        }
        let threshold = calibrate(forest, &self.rows, self.threshold_quantile)?;
        match &self.eval {
            Some((rows, y)) => evaluate(forest, rows, y, threshold),
            None => {
                let y = vec![false; self.num_examples()];
                evaluate(forest, &self.rows, &y, threshold)
            }
        }
    }
}

fn check_rows(rows: &[f32], d: usize) -> Result<usize, IForestError> {
    if d == 0 {
        return Err(IForestError::ZeroFeatures);
    }
    if !rows.len().is_multiple_of(d) {
        return Err(IForestError::DimensionMismatch {
            expected: d,
            found: rows.len() % d,
            row: rows.len() / d,
        });
    }
    if let Some(p) = rows.iter().position(|x| !x.is_finite()) {
        return Err(IForestError::NonFinite {
            row: p / d,
            col: p % d,
        });
    }
    Ok(rows.len() / d)
}

impl TreeTrainer for IForestSite {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn format_version(&self) -> u32 {
        u32::from(wire::FORMAT_VERSION)
    }

    fn grow(&mut self, plan: &TreePlan) -> Result<TreeContribution, TrainError> {
        let forest = self
            .grow_forest(plan)
            .map_err(|e| TrainError(e.to_string()))?;
        let mut metrics = Metrics::new();
        metrics.insert("trees".into(), forest.n_trees() as f64);
        metrics.insert("sample_size".into(), forest.sample_size() as f64);
        Ok(TreeContribution {
            n_trees: forest.n_trees(),
            trees: forest.to_bytes(),
            num_examples: self.num_examples() as u64,
            metrics,
        })
    }

    fn evaluate(&mut self, global: &[u8]) -> Result<(u64, Metrics), TrainError> {
        let forest = IsolationForest::from_bytes(global)
            .map_err(|e| TrainError(format!("the global forest: {e}")))?;
        self.evaluate_forest(&forest)
            .map_err(|e| TrainError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Benign rows in a box near the origin; attacks beyond it in every feature.
    fn rows(n: usize, attack: bool, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * 4)
            .map(|_| {
                let x: f32 = rng.random_range(0.0..0.3);
                if attack { x + 0.7 } else { x }
            })
            .collect()
    }

    fn plan(n_trees: usize, seed: u64) -> TreePlan {
        TreePlan {
            round: 1,
            n_trees,
            max_samples: 64,
            seed,
        }
    }

    fn limits(max_trees: usize) -> ContributionLimits {
        ContributionLimits {
            n_features: 4,
            max_trees,
            max_samples: 64,
        }
    }

    fn site(seed: u64) -> IForestSite {
        IForestSite::new(4, rows(300, false, seed))
            .unwrap()
            .with_eval(
                [rows(50, false, seed + 100), rows(50, true, seed + 200)].concat(),
                [vec![false; 50], vec![true; 50]].concat(),
            )
            .unwrap()
    }

    #[test]
    fn sites_contribute_trees_that_merge_deterministically() {
        let mut sites: Vec<IForestSite> = (0..3).map(site).collect();
        let contributions: Vec<Vec<u8>> = sites
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let c = s.grow(&plan(10, i as u64)).unwrap();
                assert_eq!(c.n_trees, 10);
                assert_eq!(c.num_examples, 300);
                c.trees
            })
            .collect();
        let m = IForestMerger;
        for c in &contributions {
            assert!(c.len() as u64 <= m.max_encoded_len(&limits(10)));
            assert_eq!(m.validate(c, &limits(10)), Ok(10));
        }
        let refs: Vec<&[u8]> = contributions.iter().map(Vec::as_slice).collect();
        let a = m.merge(&refs, 20, 42).unwrap();
        // Same pool, same seed: the same forest, byte for byte; another seed draws others.
        assert_eq!(a, m.merge(&refs, 20, 42).unwrap());
        assert_ne!(a, m.merge(&refs, 20, 43).unwrap());
        let global = IsolationForest::from_bytes(&a).unwrap();
        assert_eq!(global.n_trees(), 20);
        // The merge is IsolationForest::merge of the decoded contributions, nothing else.
        let pooled: Vec<IsolationForest> = contributions
            .iter()
            .map(|c| IsolationForest::from_bytes(c).unwrap())
            .collect();
        assert_eq!(
            a,
            IsolationForest::merge(&pooled, 20, 42).unwrap().to_bytes()
        );
        // Each site evaluates the merged forest with its own threshold.
        for s in &mut sites {
            let (n, metrics) = s.evaluate(&a).unwrap();
            assert_eq!(n, 100);
            assert!(metrics["roc_auc"] > 0.9, "{metrics:?}");
            assert!(metrics["binary_accuracy"] > 0.85, "{metrics:?}");
            let own = calibrate(&global, &s.rows, DEFAULT_THRESHOLD_QUANTILE).unwrap();
            assert_eq!(metrics["threshold"], own);
        }
        let t0 = sites[0].evaluate(&a).unwrap().1["threshold"];
        let t1 = sites[1].evaluate(&a).unwrap().1["threshold"];
        assert_ne!(t0, t1, "thresholds are per site");
    }

    #[test]
    fn malformed_contributions_are_refused_with_a_reason() {
        let mut s = site(1);
        let good = s.grow(&plan(5, 3)).unwrap().trees;
        let m = IForestMerger;
        let why = |b: &[u8], l: ContributionLimits| m.validate(b, &l).unwrap_err().0;
        // Truncated anywhere.
        for n in [0, 3, 10, 24, 40, good.len() / 2, good.len() - 1] {
            assert!(m.validate(&good[..n], &limits(5)).is_err(), "prefix {n}");
        }
        assert!(why(&good[..good.len() - 1], limits(5)).contains("byte"));
        // Another feature count than the federation's.
        let wrong = IForestSite::new(3, vec![0.1; 30]).unwrap();
        let three = wrong.grow_forest(&plan(2, 1)).unwrap().to_bytes();
        assert!(why(&three, limits(5)).contains("expected 4 features, found 3"));
        // More trees than asked for, or trees grown on more rows.
        assert!(why(&good, limits(4)).contains("at most 4"));
        let big = ContributionLimits {
            max_samples: 32,
            ..limits(5)
        };
        assert!(why(&good, big).contains("rows"));
        // Garbage and a non-finite threshold.
        assert!(why(b"not a forest at all, just bytes", limits(5)).contains("magic"));
        let mut nan = good.clone();
        nan[40..48].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        assert!(why(&nan, limits(5)).contains("non-finite"));
        // A site refuses a malformed global forest too.
        assert!(s.evaluate(&nan).is_err());
        assert!(m.merge(&[&good, &nan], 5, 1).is_err());
        assert!(m.merge(&[], 5, 1).is_err());
    }
}
