//! Evaluation metrics with scikit-learn / NumPy semantics.
//!
//! * [`roc_auc`]: exact ROC AUC; tied scores count one half (midranks), equal to
//!   scikit-learn's `roc_auc_score` (trapezoids over the ROC curve).
//! * [`precision_recall_f1_at`]: binary metrics at a threshold; a score strictly
//!   greater than the threshold is a positive prediction.
//! * [`accuracy`], [`confusion_matrix`], [`macro_f1`], [`per_class_recall`]: multi-class
//!   metrics over the labels present in `y_true` ∪ `y_pred`, sorted (scikit-learn's
//!   default `labels=None`). A ratio with a zero denominator is 0 (scikit-learn's
//!   `zero_division="warn"` result, without the warning).
//! * [`quantile`]: linear interpolation, NumPy's default `method="linear"`.
//!
//! Scores may be `f32` or `f64`. NaN scores are errors, never silently ranked.

use serde::{Deserialize, Serialize};

/// Why a metric cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("{left_name} has {left} entries but {right_name} has {right}")]
    LengthMismatch {
        left_name: &'static str,
        left: usize,
        right_name: &'static str,
        right: usize,
    },
    #[error("no samples")]
    Empty,
    /// ROC AUC needs both classes in the truth.
    #[error("ROC AUC is undefined: y_true has only {0} samples (both classes are needed)")]
    OneClass(&'static str),
    #[error("{what} at index {index} is NaN")]
    NaN { what: &'static str, index: usize },
    #[error("the threshold is NaN")]
    NaNThreshold,
    #[error("quantile q = {0} is outside [0, 1]")]
    BadQuantile(f64),
}

type Result<T> = std::result::Result<T, MetricError>;

fn same_len(
    left_name: &'static str,
    left: usize,
    right_name: &'static str,
    right: usize,
) -> Result<()> {
    if left != right {
        return Err(MetricError::LengthMismatch {
            left_name,
            left,
            right_name,
            right,
        });
    }
    if left == 0 {
        return Err(MetricError::Empty);
    }
    Ok(())
}

fn to_f64<S: Copy + Into<f64>>(what: &'static str, values: &[S]) -> Result<Vec<f64>> {
    values
        .iter()
        .enumerate()
        .map(|(index, &v)| {
            let x: f64 = v.into();
            if x.is_nan() {
                Err(MetricError::NaN { what, index })
            } else {
                Ok(x)
            }
        })
        .collect()
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Area under the ROC curve of `scores` (higher = more positive) against the truth.
/// Errors if the lengths differ, a score is NaN, or only one class is present.
pub fn roc_auc<S: Copy + Into<f64>>(scores: &[S], is_positive: &[bool]) -> Result<f64> {
    same_len("scores", scores.len(), "is_positive", is_positive.len())?;
    let s = to_f64("score", scores)?;
    let n_pos = is_positive.iter().filter(|&&p| p).count();
    let n_neg = is_positive.len() - n_pos;
    if n_pos == 0 {
        return Err(MetricError::OneClass("negative"));
    }
    if n_neg == 0 {
        return Err(MetricError::OneClass("positive"));
    }
    let mut idx: Vec<usize> = (0..s.len()).collect();
    idx.sort_unstable_by(|&a, &b| s[a].total_cmp(&s[b]));
    // Sum of the (1-based, mid-) ranks of the positives (Mann-Whitney U).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        // -0.0 and 0.0 are the same score.
        while j + 1 < idx.len() && s[idx[j + 1]] == s[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        let pos = idx[i..=j].iter().filter(|&&k| is_positive[k]).count();
        rank_sum += mid * pos as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Binary classification counts and rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// tp / (tp + fp), 0 without positive predictions.
    pub precision: f64,
    /// tp / (tp + fn) (detection rate), 0 without positives.
    pub recall: f64,
    /// 2 tp / (2 tp + fp + fn), 0 if that is 0 / 0.
    pub f1: f64,
    pub accuracy: f64,
    /// fp / (fp + tn), 0 without negatives.
    pub false_positive_rate: f64,
}

/// Binary metrics of predictions against the truth.
pub fn binary_metrics(predicted: &[bool], is_positive: &[bool]) -> Result<BinaryMetrics> {
    same_len(
        "predicted",
        predicted.len(),
        "is_positive",
        is_positive.len(),
    )?;
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    for (&p, &t) in predicted.iter().zip(is_positive) {
        match (p, t) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    Ok(BinaryMetrics {
        tp,
        fp,
        tn,
        fn_,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        f1: ratio(2 * tp, 2 * tp + fp + fn_),
        accuracy: ratio(tp + tn, tp + fp + tn + fn_),
        false_positive_rate: ratio(fp, fp + tn),
    })
}

/// Binary metrics when `score > threshold` is predicted positive (strictly greater: a
/// score equal to the threshold is negative).
pub fn precision_recall_f1_at<S: Copy + Into<f64>>(
    threshold: f64,
    scores: &[S],
    is_positive: &[bool],
) -> Result<BinaryMetrics> {
    if threshold.is_nan() {
        return Err(MetricError::NaNThreshold);
    }
    same_len("scores", scores.len(), "is_positive", is_positive.len())?;
    let s = to_f64("score", scores)?;
    let predicted: Vec<bool> = s.iter().map(|&x| x > threshold).collect();
    binary_metrics(&predicted, is_positive)
}

/// Fraction of equal entries.
pub fn accuracy<T: PartialEq>(y_true: &[T], y_pred: &[T]) -> Result<f64> {
    same_len("y_true", y_true.len(), "y_pred", y_pred.len())?;
    let ok = y_true.iter().zip(y_pred).filter(|(a, b)| a == b).count();
    Ok(ok as f64 / y_true.len() as f64)
}

/// Counts of (true, predicted) label pairs. `counts[i][j]`: true `labels[i]` predicted
/// as `labels[j]` (scikit-learn's layout). Labels: `y_true` ∪ `y_pred`, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix<T> {
    pub labels: Vec<T>,
    pub counts: Vec<Vec<u64>>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics<T> {
    pub label: T,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Samples of this class in `y_true`.
    pub support: u64,
}

impl<T> ConfusionMatrix<T> {
    pub fn n_classes(&self) -> usize {
        self.labels.len()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Samples of class `i` in `y_true` (row sum).
    pub fn support(&self, i: usize) -> u64 {
        self.counts.get(i).map_or(0, |r| r.iter().sum())
    }

    /// Samples predicted as class `i` (column sum).
    pub fn predicted(&self, i: usize) -> u64 {
        self.counts.iter().filter_map(|r| r.get(i)).sum()
    }

    fn tp(&self, i: usize) -> u64 {
        self.counts
            .get(i)
            .and_then(|r| r.get(i))
            .copied()
            .unwrap_or(0)
    }

    pub fn precision(&self, i: usize) -> f64 {
        ratio(self.tp(i), self.predicted(i))
    }

    pub fn recall(&self, i: usize) -> f64 {
        ratio(self.tp(i), self.support(i))
    }

    pub fn f1(&self, i: usize) -> f64 {
        let tp = self.tp(i);
        ratio(2 * tp, self.support(i) + self.predicted(i))
    }

    pub fn accuracy(&self) -> f64 {
        ratio(
            (0..self.n_classes()).map(|i| self.tp(i)).sum(),
            self.total(),
        )
    }

    /// Unweighted mean of the per-class F1 over all labels of the matrix.
    pub fn macro_f1(&self) -> f64 {
        if self.labels.is_empty() {
            return 0.0;
        }
        (0..self.n_classes()).map(|i| self.f1(i)).sum::<f64>() / self.n_classes() as f64
    }

    /// Precision, recall, F1 and support per class, in label order.
    pub fn per_class(&self) -> Vec<ClassMetrics<T>>
    where
        T: Clone,
    {
        self.labels
            .iter()
            .enumerate()
            .map(|(i, l)| ClassMetrics {
                label: l.clone(),
                precision: self.precision(i),
                recall: self.recall(i),
                f1: self.f1(i),
                support: self.support(i),
            })
            .collect()
    }
}

/// The confusion matrix over `y_true` ∪ `y_pred`, labels sorted.
pub fn confusion_matrix<T: Ord + Clone>(y_true: &[T], y_pred: &[T]) -> Result<ConfusionMatrix<T>> {
    same_len("y_true", y_true.len(), "y_pred", y_pred.len())?;
    let mut labels: Vec<T> = y_true.iter().chain(y_pred).cloned().collect();
    labels.sort_unstable();
    labels.dedup();
    let k = labels.len();
    let mut counts = vec![vec![0u64; k]; k];
    for (t, p) in y_true.iter().zip(y_pred) {
        // Every value is in `labels` by construction.
        if let (Ok(i), Ok(j)) = (labels.binary_search(t), labels.binary_search(p)) {
            counts[i][j] += 1;
        }
    }
    Ok(ConfusionMatrix { labels, counts })
}

/// Macro-averaged F1 over `y_true` ∪ `y_pred` (scikit-learn's
/// `f1_score(average="macro")`).
pub fn macro_f1<T: Ord + Clone>(y_true: &[T], y_pred: &[T]) -> Result<f64> {
    Ok(confusion_matrix(y_true, y_pred)?.macro_f1())
}

/// Recall per label of `y_true` ∪ `y_pred`, sorted (a label only predicted has recall 0).
pub fn per_class_recall<T: Ord + Clone>(y_true: &[T], y_pred: &[T]) -> Result<Vec<(T, f64)>> {
    let cm = confusion_matrix(y_true, y_pred)?;
    Ok((0..cm.n_classes())
        .map(|i| (cm.labels[i].clone(), cm.recall(i)))
        .collect())
}

/// The `q`-quantile (`0 <= q <= 1`) of `values` (any order) by linear interpolation
/// between the closest ranks, as `numpy.quantile(values, q)`.
pub fn quantile<S: Copy + Into<f64>>(values: &[S], q: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&q) {
        return Err(MetricError::BadQuantile(q));
    }
    if values.is_empty() {
        return Err(MetricError::Empty);
    }
    let mut v = to_f64("value", values)?;
    v.sort_unstable_by(f64::total_cmp);
    Ok(quantile_sorted(&v, q))
}

/// [`quantile`] of values already sorted ascending, without NaN, not empty; `q` in [0, 1].
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let n = v.len();
    let virtual_index = (n - 1) as f64 * q;
    let lo = (virtual_index.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let t = virtual_index - lo as f64;
    let (a, b) = (v[lo], v[hi]);
    // NumPy's `_lerp`: exact at both ends.
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_known_values() {
        // sklearn.metrics.roc_auc_score
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(),
            0.75
        );
        // Ties count one half.
        let s = [0.1, 0.5, 0.5, 0.9, 0.2];
        assert_eq!(
            roc_auc(&s, &[false, false, true, true, true]).unwrap(),
            0.75
        );
        assert_eq!(
            roc_auc(&[0.5f32; 4], &[false, true, false, true]).unwrap(),
            0.5
        );
        assert_eq!(roc_auc(&[1.0, 2.0], &[false, true]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[2.0, 1.0], &[false, true]).unwrap(), 0.0);
        // 50 scores rounded to one decimal (many ties), from NumPy's default_rng(7):
        // roc_auc_score(y, s) = 0.46376811594202905.
        let s = [
            0.6, 0.9, 0.8, 0.2, 0.3, 0.9, 0.0, 0.8, 0.8, 0.5, 0.3, 0.3, 0.3, 0.4, 0.5, 0.6, 1.0,
            0.8, 0.6, 1.0, 0.2, 0.2, 0.6, 0.0, 0.0, 0.5, 0.5, 0.9, 0.6, 0.5, 0.5, 0.2, 0.0, 0.2,
            0.7, 0.2, 0.4, 0.0, 0.8, 0.2, 0.3, 0.9, 0.5, 0.8, 0.6, 0.7, 0.1, 0.5, 0.5, 0.9,
        ];
        let y = [
            1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0,
            1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1,
        ];
        let y: Vec<bool> = y.iter().map(|&v| v == 1).collect();
        let auc = roc_auc(&s, &y).unwrap();
        assert!((auc - 0.463_768_115_942_029_05).abs() < 1e-15, "{auc}");
    }

    #[test]
    fn roc_auc_errors() {
        assert_eq!(
            roc_auc(&[0.1, 0.2], &[true, true]),
            Err(MetricError::OneClass("positive"))
        );
        assert_eq!(
            roc_auc(&[0.1, 0.2], &[false, false]),
            Err(MetricError::OneClass("negative"))
        );
        assert_eq!(
            roc_auc(&[0.1, f64::NAN], &[true, false]),
            Err(MetricError::NaN {
                what: "score",
                index: 1
            })
        );
        assert!(matches!(
            roc_auc(&[0.1], &[true, false]),
            Err(MetricError::LengthMismatch { .. })
        ));
        assert_eq!(roc_auc::<f64>(&[], &[]), Err(MetricError::Empty));
    }

    #[test]
    fn threshold_metrics() {
        let scores = [0.9, 0.8, 0.5, 0.4, 0.1];
        let truth = [true, false, true, false, false];
        // Positive iff score > 0.5: rows 0, 1. tp 1, fp 1, fn 1, tn 2.
        let m = precision_recall_f1_at(0.5, &scores, &truth).unwrap();
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (1, 1, 2, 1));
        assert_eq!(m.precision, 0.5);
        assert_eq!(m.recall, 0.5);
        assert_eq!(m.f1, 0.5);
        assert_eq!(m.accuracy, 0.6);
        assert!((m.false_positive_rate - 1.0 / 3.0).abs() < 1e-15);
        // Nothing predicted positive: precision 0 (zero division), recall 0.
        let m = precision_recall_f1_at(1.0, &scores, &truth).unwrap();
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        assert!(precision_recall_f1_at(f64::NAN, &scores, &truth).is_err());
    }

    #[test]
    fn multiclass_like_sklearn() {
        // sklearn docs: f1_score([0,1,2,0,1,2], [0,2,1,0,0,1], average="macro")
        let t = [0, 1, 2, 0, 1, 2];
        let p = [0, 2, 1, 0, 0, 1];
        assert!((macro_f1(&t, &p).unwrap() - 0.266_666_666_666_666_66).abs() < 1e-15);
        assert!((accuracy(&t, &p).unwrap() - 1.0 / 3.0).abs() < 1e-15);
        let cm = confusion_matrix(&t, &p).unwrap();
        assert_eq!(cm.counts, [[2, 0, 0], [1, 0, 1], [0, 2, 0]]);
        assert_eq!(cm.per_class()[0].f1, 0.8);
        // A label only in y_pred is part of the average (f1 0, recall 0).
        let t = ["a", "a", "b"];
        let p = ["a", "c", "b"];
        assert!((macro_f1(&t, &p).unwrap() - 0.555_555_555_555_555_5).abs() < 1e-15);
        assert_eq!(
            per_class_recall(&t, &p).unwrap(),
            [("a", 0.5), ("b", 1.0), ("c", 0.0)]
        );
        assert!(macro_f1::<u8>(&[], &[]).is_err());
        assert!(accuracy(&[1], &[1, 2]).is_err());
    }

    #[test]
    fn quantile_like_numpy() {
        // numpy.quantile values.
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.9).unwrap(), 3.7);
        assert_eq!(quantile(&[4.0, 3.0, 2.0, 1.0], 0.5).unwrap(), 2.5);
        assert_eq!(
            quantile(&[0.1, 0.7, 0.3], 0.33).unwrap(),
            0.231_999_999_999_999_98
        );
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 10.0, 7.5], 0.95).unwrap(), 9.5);
        assert_eq!(quantile(&[5.0f32], 0.3).unwrap(), 5.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.0).unwrap(), 1.0);
        assert_eq!(quantile(&[1.0, 2.0], 1.0).unwrap(), 2.0);
        assert!(quantile(&[1.0], 1.5).is_err());
        assert!(quantile::<f64>(&[], 0.5).is_err());
        assert!(quantile(&[f64::NAN], 0.5).is_err());
    }
}
