//! Isolation Forest (Liu, Ting & Zhou, 2008) with scikit-learn compatible semantics.
//!
//! # Algorithm
//!
//! * `psi = min(max_samples, n_rows)`; every tree is grown on `psi` rows drawn
//!   **without replacement** from the training data. Tree `i` uses a
//!   [`ChaCha8Rng`] seeded from `params.seed` with stream `i`, so a forest is a
//!   pure function of `(data, n_features, params)`.
//! * Trees are grown to the height limit `ceil(log2(psi))`. At each node a
//!   feature is chosen uniformly among the features that are **not constant**
//!   on the node's samples (if every feature is constant the node becomes a
//!   leaf), and the threshold is drawn uniformly in `(min, max)` of that feature
//!   on the node. A sample goes left iff `x[f] < threshold`.
//! * A leaf remembers how many training samples reached it; the path length of
//!   `x` in a tree is `depth(leaf) + c(leaf size)` (see [`average_path_length`]).
//! * The anomaly score is `s(x) = 2^(-E[h(x)] / c(psi))`, in `(0, 1]`, higher
//!   means more anomalous. This is `-score_samples(x)` in scikit-learn.
//!   Forests produced by [`IsolationForest::merge`] may contain trees grown on
//!   different sample sizes; the normalisation is then done per tree:
//!   `s(x) = 2^(-mean_t(h_t(x) / c(psi_t)))`, which is identical to the formula
//!   above when all trees share one `psi`.
//!
//! # Storage
//!
//! Every tree is a flat `Vec` of 16-byte nodes in **pre-order**: the left child
//! of a split node is always the next node, the split node stores only the
//! index of its right child, so child indices are strictly greater than the
//! parent's index. Leaves store their training-sample count and the
//! pre-computed `depth + c(size)`. This canonical array is what is serialised
//! and what [`IsolationForest::explain`] walks.
//!
//! Scoring uses a derived, index-aligned copy in which every leaf is a
//! self-loop (threshold `-inf`). Walking exactly `max_depth` steps from the
//! root therefore lands on the right leaf without a per-node leaf test, each
//! step is a conditional move (no unpredictable branch), and 8 trees are walked
//! in lock-step so the CPU overlaps their node loads. Scoring never allocates;
//! on a 2-core shared AMD EPYC VM, 100 trees with psi = 256 and 8 features
//! score in about 1.4 µs per row (release build).
//!
//! For batch scoring, [`IsolationForest::compile`] builds a
//! [`CompiledForest`](crate::iforest_fast::CompiledForest): a heap-layout,
//! `f32` copy that scores blocks of rows several times faster and reaches the
//! same leaves on any input given as `f32` (see [`crate::iforest_fast`]).
//!
//! # Non-finite values
//!
//! [`IsolationForest::fit`] rejects NaN and ±inf. When scoring, NaN compares
//! false against every threshold and therefore always goes **right**; `+inf`
//! goes right and `-inf` goes left, as the comparison dictates. A row shorter
//! than `n_features` is scored as if the missing features were NaN; extra
//! trailing values are ignored. Use [`IsolationForest::check_row`] for strict
//! validation.
//!
//! # Serialisation
//!
//! Forests serialise with serde. Thresholds are written as decimal strings
//! (shortest representation that round-trips exactly), because a
//! `serde_json` number is not guaranteed to parse back to the identical `f64`.
//! Numbers are accepted as well when reading. Deserialisation validates the
//! whole structure (tree shape, feature indices, finite thresholds, leaf sizes)
//! so a forest received from another site can never make scoring panic or loop.
//!
//! Federation uses a compact binary encoding instead ([`IsolationForest::to_bytes`],
//! [`wire`]: versioned, little-endian, the canonical node arrays as they are); decoding
//! ([`IsolationForest::from_bytes`]) checks every announced length against the input before
//! allocating and validates the trees exactly as deserialisation does.

use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Euler–Mascheroni constant, as used by the harmonic-number approximation.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Marker stored in [`Node::feature`] for leaves.
const LEAF: u32 = u32::MAX;

/// Largest per-tree sample size accepted (keeps node indices well inside `u32`).
const MAX_PSI: usize = 1 << 30;

/// Hyper-parameters of [`IsolationForest::fit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IForestParams {
    /// Number of trees (default 100). Must be at least 1.
    pub n_estimators: usize,
    /// Rows drawn per tree, `psi = min(max_samples, n_rows)` (default 256).
    /// Must be at least 2.
    pub max_samples: usize,
    /// Seed of the deterministic random streams.
    pub seed: u64,
}

impl Default for IForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_samples: 256,
            seed: 0,
        }
    }
}

/// Errors of fitting, merging and deserialising forests.
#[derive(Debug, thiserror::Error)]
pub enum IForestError {
    /// No data rows (or, for `merge`, no forests).
    #[error("input is empty")]
    Empty,
    /// Wrong number of values. In `fit`: the data length is not a multiple of
    /// `n_features`; `row` is the index of the incomplete trailing row and
    /// `found` the number of values it has. In `check_row`: `row` is 0 and
    /// `found` the row length. In `merge`: `row` is the index of the forest
    /// whose `n_features` (`found`) differs from the first forest's.
    #[error("row {row}: expected {expected} features, found {found}")]
    DimensionMismatch {
        expected: usize,
        found: usize,
        row: usize,
    },
    /// NaN or infinity at (`row`, `col`).
    #[error("non-finite value at row {row}, column {col}")]
    NonFinite { row: usize, col: usize },
    /// `n_features == 0`.
    #[error("number of features must be at least 1")]
    ZeroFeatures,
    /// Invalid hyper-parameter or malformed serialised forest.
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
}

/// c(n): average path length of an unsuccessful search in a binary search tree
/// built from `n` keys, `2 H(n-1) - 2 (n-1) / n` with
/// `H(i) ≈ ln(i) + 0.5772156649`. As in scikit-learn, `c(n) = 0` for `n <= 1`
/// and `c(2) = 1`. NaN yields 0.
pub fn average_path_length(n: f64) -> f64 {
    if n.is_nan() || n <= 1.0 {
        0.0
    } else if n == 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
    }
}

/// One node of a flattened tree (pre-order layout, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Node {
    /// Split feature, or [`LEAF`].
    feature: u32,
    /// Split: index of the right child (the left child is the next node).
    /// Leaf: number of training samples that reached the leaf.
    link: u32,
    /// Split: threshold (go left iff `x < value`).
    /// Leaf: `depth + c(size)`, recomputed on load.
    #[serde(with = "exact_f64")]
    value: f64,
}

/// One isolation tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Tree {
    /// Number of rows the tree was grown on (its psi).
    sample_size: usize,
    nodes: Vec<Node>,
    /// Training samples per node (derived; used by `explain`).
    #[serde(skip)]
    sizes: Vec<u32>,
    /// `1 / c(sample_size)` (derived).
    #[serde(skip)]
    inv_c: f64,
    /// Scoring layout (derived), index-aligned with `nodes`: leaves become
    /// self-loops, so exactly `max_depth` branch-free steps from the root end
    /// on the leaf of any row.
    #[serde(skip)]
    fast: Vec<FastNode>,
    /// Depth of the deepest leaf (derived).
    #[serde(skip)]
    max_depth: u32,
}

/// Scoring node: go to `index + 1` if `x[feature] < threshold`, else to
/// `right`. A leaf at index `i` is `{ threshold: -inf, feature: 0, right: i }`:
/// nothing (not even NaN) compares below `-inf`, so it loops on itself.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FastNode {
    threshold: f64,
    feature: u32,
    right: u32,
}

#[derive(Deserialize)]
struct TreeRepr {
    sample_size: usize,
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct ForestRepr {
    n_features: usize,
    sample_size: usize,
    params: IForestParams,
    trees: Vec<TreeRepr>,
}

fn malformed(msg: impl Into<String>) -> IForestError {
    IForestError::InvalidParam(msg.into())
}

impl Tree {
    /// Validates a pre-order node array and derives leaf values, node sizes and
    /// the normalisation constant. Used both after growing and after loading.
    fn from_nodes(
        mut nodes: Vec<Node>,
        sample_size: usize,
        n_features: usize,
    ) -> Result<Self, IForestError> {
        nodes.shrink_to_fit();
        let n = nodes.len();
        if n == 0 {
            return Err(malformed("tree without nodes"));
        }
        if !(2..=MAX_PSI).contains(&sample_size) {
            return Err(malformed(format!("tree sample size {sample_size}")));
        }
        // Walk in pre-order with an explicit stack of pending right children.
        let mut pending: Vec<(usize, u32)> = Vec::new();
        let mut i = 0usize;
        let mut depth = 0u32;
        let mut max_depth = 0u32;
        loop {
            let node = nodes
                .get_mut(i)
                .ok_or_else(|| malformed("truncated tree"))?;
            if node.feature == LEAF {
                if node.link == 0 {
                    return Err(malformed("empty leaf"));
                }
                node.value = f64::from(depth) + average_path_length(f64::from(node.link));
                max_depth = max_depth.max(depth);
                i += 1;
                match pending.pop() {
                    None if i == n => break,
                    None => return Err(malformed("trailing nodes after tree")),
                    Some((right, d)) if right == i => depth = d,
                    Some(_) => return Err(malformed("right child index out of order")),
                }
            } else {
                if node.feature as usize >= n_features {
                    return Err(malformed(format!("split on feature {}", node.feature)));
                }
                if !node.value.is_finite() {
                    return Err(malformed("non-finite threshold"));
                }
                depth = depth
                    .checked_add(1)
                    .ok_or_else(|| malformed("tree too deep"))?;
                pending.push((node.link as usize, depth));
                i += 1;
            }
        }
        // Sizes bottom-up: children always come after their parent.
        let mut sizes = vec![0u32; n];
        for j in (0..n).rev() {
            let node = nodes[j];
            sizes[j] = if node.feature == LEAF {
                node.link
            } else {
                sizes[j + 1].saturating_add(sizes[node.link as usize])
            };
        }
        if sizes[0] as usize != sample_size {
            return Err(malformed(format!(
                "leaf sizes sum to {}, tree sample size is {sample_size}",
                sizes[0]
            )));
        }
        let fast = nodes
            .iter()
            .enumerate()
            .map(|(j, node)| {
                if node.feature == LEAF {
                    FastNode {
                        threshold: f64::NEG_INFINITY,
                        feature: 0,
                        // j < n <= 2 * MAX_PSI, fits in u32.
                        right: j as u32,
                    }
                } else {
                    FastNode {
                        threshold: node.value,
                        feature: node.feature,
                        right: node.link,
                    }
                }
            })
            .collect();
        Ok(Self {
            sample_size,
            nodes,
            sizes,
            inv_c: 1.0 / average_path_length(sample_size as f64),
            fast,
            max_depth,
        })
    }

    /// One branch-free step from node `i` (stays put on a leaf).
    #[inline(always)]
    fn step(&self, i: usize, x: &impl Fn(usize) -> f64) -> usize {
        match self.fast.get(i) {
            Some(n) => std::hint::select_unpredictable(
                x(n.feature as usize) < n.threshold,
                i + 1,
                n.right as usize,
            ),
            None => i,
        }
    }

    /// `depth + c(size)` of leaf `i`, optionally divided by `c(psi)`.
    #[inline(always)]
    fn leaf_value(&self, i: usize, normalise: bool) -> f64 {
        let h = self.nodes.get(i).map_or(0.0, |n| n.value);
        if normalise { h * self.inv_c } else { h }
    }
}

/// Read-only view of one tree for derived scoring layouts
/// ([`crate::iforest_fast`]). The tree has been validated (see
/// `Tree::from_nodes`): child indices are in range, features are below the
/// forest's `n_features`, thresholds are finite.
#[derive(Clone, Copy)]
pub(crate) struct TreeView<'a>(&'a Tree);

/// One node of a [`TreeView`], in pre-order: the left child of the split at
/// index `i` is `i + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NodeView {
    /// `h = depth + c(size)`, not normalised.
    Leaf { h: f64 },
    /// Go left iff `x[feature] < threshold`; the right child is at `right`.
    Split {
        feature: u32,
        threshold: f64,
        right: usize,
    },
}

impl TreeView<'_> {
    /// Depth of the deepest leaf (0 for a single-leaf tree).
    pub(crate) fn depth(&self) -> u32 {
        self.0.max_depth
    }

    /// Number of rows the tree was grown on (its psi).
    pub(crate) fn sample_size(&self) -> usize {
        self.0.sample_size
    }

    /// `1 / c(psi_t)`, the per-tree normalisation factor.
    pub(crate) fn inv_c(&self) -> f64 {
        self.0.inv_c
    }

    /// Node `i` (pre-order index), `None` past the end.
    pub(crate) fn node(&self, i: usize) -> Option<NodeView> {
        self.0.nodes.get(i).map(|n| {
            if n.feature == LEAF {
                NodeView::Leaf { h: n.value }
            } else {
                NodeView::Split {
                    feature: n.feature,
                    threshold: n.value,
                    right: n.link as usize,
                }
            }
        })
    }
}

/// Trees traversed in lock-step by the scorer: independent dependency chains
/// let the CPU overlap the node loads of several trees.
const LANES: usize = 8;

/// Sum over trees of `h_t(x)` (or `h_t(x) / c(psi_t)` when `normalise`).
#[inline(always)]
fn path_sum(trees: &[Tree], normalise: bool, x: impl Fn(usize) -> f64) -> f64 {
    let mut sum = 0.0;
    let mut groups = trees.chunks_exact(LANES);
    for group in &mut groups {
        let depth = group.iter().map(|t| t.max_depth).max().unwrap_or(0);
        let mut idx = [0usize; LANES];
        for _ in 0..depth {
            for (i, tree) in idx.iter_mut().zip(group) {
                *i = tree.step(*i, &x);
            }
        }
        for (&i, tree) in idx.iter().zip(group) {
            sum += tree.leaf_value(i, normalise);
        }
    }
    for tree in groups.remainder() {
        let mut i = 0usize;
        for _ in 0..tree.max_depth {
            i = tree.step(i, &x);
        }
        sum += tree.leaf_value(i, normalise);
    }
    sum
}

/// Grows one tree on the rows listed in `idx`.
struct Builder<'a> {
    data: &'a [f64],
    n_features: usize,
    height_limit: u32,
    nodes: Vec<Node>,
    candidates: Vec<u32>,
}

impl Builder<'_> {
    fn value(&self, row: usize, feature: usize) -> f64 {
        self.data[row * self.n_features + feature]
    }

    fn leaf(&mut self, size: usize) {
        self.nodes.push(Node {
            feature: LEAF,
            // size <= MAX_PSI < u32::MAX, checked in `fit`.
            link: size as u32,
            value: 0.0,
        });
    }

    fn grow(&mut self, idx: &mut [usize], depth: u32, rng: &mut ChaCha8Rng) {
        if depth >= self.height_limit || idx.len() <= 1 {
            self.leaf(idx.len());
            return;
        }
        self.candidates.clear();
        self.candidates.extend(0..self.n_features as u32);
        // Drawing uniformly and discarding constant features is equivalent to
        // drawing uniformly among the non-constant ones.
        while !self.candidates.is_empty() {
            let k = rng.random_range(0..self.candidates.len());
            let f = self.candidates[k] as usize;
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &r in idx.iter() {
                let v = self.value(r, f);
                lo = lo.min(v);
                hi = hi.max(v);
            }
            if lo < hi {
                let u: f64 = rng.random();
                let span = hi - lo;
                let mut t = if span.is_finite() {
                    lo + u * span
                } else {
                    lo * (1.0 - u) + hi * u
                };
                // Any t in (lo, hi] separates the node into two non-empty sides.
                if t.is_nan() || t <= lo || t > hi {
                    t = hi;
                }
                let mut n_left = 0;
                for j in 0..idx.len() {
                    if self.value(idx[j], f) < t {
                        idx.swap(n_left, j);
                        n_left += 1;
                    }
                }
                let pos = self.nodes.len();
                self.nodes.push(Node {
                    feature: f as u32,
                    link: 0,
                    value: t,
                });
                let (left, right) = idx.split_at_mut(n_left);
                self.grow(left, depth + 1, rng);
                self.nodes[pos].link = self.nodes.len() as u32;
                self.grow(right, depth + 1, rng);
                return;
            }
            self.candidates.swap_remove(k);
        }
        self.leaf(idx.len());
    }
}

/// A trained Isolation Forest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "ForestRepr")]
pub struct IsolationForest {
    n_features: usize,
    /// psi actually used (largest per-tree sample size for merged forests).
    sample_size: usize,
    params: IForestParams,
    trees: Vec<Tree>,
}

impl TryFrom<ForestRepr> for IsolationForest {
    type Error = IForestError;

    fn try_from(repr: ForestRepr) -> Result<Self, Self::Error> {
        if repr.n_features == 0 {
            return Err(IForestError::ZeroFeatures);
        }
        if repr.n_features >= LEAF as usize {
            return Err(malformed("too many features"));
        }
        if repr.trees.is_empty() {
            return Err(malformed("forest without trees"));
        }
        let trees = repr
            .trees
            .into_iter()
            .map(|t| Tree::from_nodes(t.nodes, t.sample_size, repr.n_features))
            .collect::<Result<Vec<_>, _>>()?;
        let max_psi = trees.iter().map(|t| t.sample_size).max().unwrap_or(0);
        if repr.sample_size != max_psi {
            return Err(malformed(format!(
                "forest sample size {} does not match its trees ({max_psi})",
                repr.sample_size
            )));
        }
        Ok(Self {
            n_features: repr.n_features,
            sample_size: repr.sample_size,
            params: repr.params,
            trees,
        })
    }
}

impl IsolationForest {
    /// Fits a forest on row-major `data` of `n_rows x n_features` values.
    ///
    /// Errors: [`IForestError::ZeroFeatures`], [`IForestError::Empty`],
    /// [`IForestError::DimensionMismatch`] (length not a multiple of
    /// `n_features`), [`IForestError::NonFinite`] (first NaN/inf, row-major
    /// order), [`IForestError::InvalidParam`] (`n_estimators == 0`,
    /// `max_samples < 2`, fewer than 2 rows, or psi above 2^30).
    pub fn fit(
        data: &[f64],
        n_features: usize,
        params: &IForestParams,
    ) -> Result<Self, IForestError> {
        if n_features == 0 {
            return Err(IForestError::ZeroFeatures);
        }
        if n_features >= LEAF as usize {
            return Err(malformed("too many features"));
        }
        if data.is_empty() {
            return Err(IForestError::Empty);
        }
        if !data.len().is_multiple_of(n_features) {
            return Err(IForestError::DimensionMismatch {
                expected: n_features,
                found: data.len() % n_features,
                row: data.len() / n_features,
            });
        }
        if let Some(p) = data.iter().position(|v| !v.is_finite()) {
            return Err(IForestError::NonFinite {
                row: p / n_features,
                col: p % n_features,
            });
        }
        if params.n_estimators == 0 {
            return Err(malformed("n_estimators must be at least 1"));
        }
        if params.max_samples < 2 {
            return Err(malformed("max_samples must be at least 2"));
        }
        let n_rows = data.len() / n_features;
        if n_rows < 2 {
            return Err(malformed("at least 2 rows are needed"));
        }
        let psi = params.max_samples.min(n_rows);
        if psi > MAX_PSI {
            return Err(malformed(format!(
                "sample size {psi} exceeds {MAX_PSI}; lower max_samples"
            )));
        }
        // ceil(log2(psi)) for psi >= 2.
        let height_limit = usize::BITS - (psi - 1).leading_zeros();
        let mut builder = Builder {
            data,
            n_features,
            height_limit,
            nodes: Vec::new(),
            candidates: Vec::with_capacity(n_features),
        };
        let mut trees = Vec::with_capacity(params.n_estimators);
        let mut idx: Vec<usize> = Vec::with_capacity(psi);
        for t in 0..params.n_estimators {
            let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
            rng.set_stream(t as u64);
            idx.clear();
            idx.extend(index::sample(&mut rng, n_rows, psi));
            builder.nodes = Vec::with_capacity((2 * psi - 1).min(1 << 12));
            builder.grow(&mut idx, 0, &mut rng);
            let nodes = std::mem::take(&mut builder.nodes);
            trees.push(Tree::from_nodes(nodes, psi, n_features)?);
        }
        Ok(Self {
            n_features,
            sample_size: psi,
            params: params.clone(),
            trees,
        })
    }

    /// The trees, for derived scoring layouts ([`crate::iforest_fast`]).
    pub(crate) fn tree_views(&self) -> impl ExactSizeIterator<Item = TreeView<'_>> {
        self.trees.iter().map(TreeView)
    }

    /// Number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// psi actually used; for a merged forest, the largest per-tree sample size.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// Parameters the forest was built with (for merged forests:
    /// `n_estimators` and `seed` of the merge, `max_samples = sample_size()`).
    pub fn params(&self) -> &IForestParams {
        &self.params
    }

    /// Strict check of a row: right length, all values finite.
    pub fn check_row(&self, row: &[f64]) -> Result<(), IForestError> {
        if row.len() != self.n_features {
            return Err(IForestError::DimensionMismatch {
                expected: self.n_features,
                found: row.len(),
                row: 0,
            });
        }
        match row.iter().position(|v| !v.is_finite()) {
            Some(col) => Err(IForestError::NonFinite { row: 0, col }),
            None => Ok(()),
        }
    }

    /// Mean path length `E[h(x)]` over the trees, each `h` being the depth of
    /// the leaf reached plus `c(leaf size)`. Does not allocate.
    pub fn path_length(&self, row: &[f64]) -> f64 {
        self.path_sum(row, false) / self.trees.len() as f64
    }

    fn path_sum(&self, row: &[f64], normalise: bool) -> f64 {
        if row.len() >= self.n_features {
            // Every split feature is < n_features <= row.len() (validated).
            path_sum(&self.trees, normalise, |f| row[f])
        } else {
            path_sum(&self.trees, normalise, |f| {
                row.get(f).copied().unwrap_or(f64::NAN)
            })
        }
    }

    /// Anomaly score `s(x) = 2^(-E[h(x)] / c(psi))` in `(0, 1]`; higher is more
    /// anomalous (scikit-learn's `-score_samples`). With trees of different
    /// sample sizes (merged forests) each tree is normalised by its own
    /// `c(psi_t)`. Does not allocate.
    pub fn score(&self, row: &[f64]) -> f64 {
        (-self.path_sum(row, true) / self.trees.len() as f64).exp2()
    }

    /// Scores row-major `rows`; an incomplete trailing row is scored like a
    /// short row in [`IsolationForest::score`] (missing features are NaN).
    pub fn score_batch(&self, rows: &[f64]) -> Vec<f64> {
        rows.chunks(self.n_features)
            .map(|row| self.score(row))
            .collect()
    }

    /// Per-feature attribution of the anomaly score of `row`.
    ///
    /// Scheme ("isolation bits", DIFFI-style weighting): in each tree, follow
    /// the path of `row`. A split node holding `n_v` training samples that
    /// sends `row` to a child holding `n_c` samples removes `log2(n_v / n_c)`
    /// bits of "candidate neighbours"; these bits are credited to the split
    /// feature. A feature that cuts `row` off from most of the data in one step
    /// (typically near the root) earns many bits; features that only halve
    /// the node earn one bit per split. Per tree the bits are divided by
    /// `log2(psi_t)` and the tree is weighted by `c(psi_t) / h_t(x)`, so trees
    /// that isolate the point quickly count more (as in DIFFI). The totals are
    /// normalised to sum to 1 over all features, features with zero credit are
    /// dropped, and the `top_k` largest `(feature, share)` pairs are returned
    /// in descending order (ties: lower feature index first). Empty if no tree
    /// splits on the path (e.g. constant training data) or `top_k == 0`.
    pub fn explain(&self, row: &[f64], top_k: usize) -> Vec<(usize, f64)> {
        if top_k == 0 {
            return Vec::new();
        }
        let mut credit = vec![0.0f64; self.n_features];
        let mut bits: Vec<(usize, f64)> = Vec::new();
        for tree in &self.trees {
            bits.clear();
            let mut i = 0usize;
            let mut h = 0.0;
            while let Some(node) = tree.nodes.get(i) {
                if node.feature == LEAF {
                    h = node.value;
                    break;
                }
                let x = row.get(node.feature as usize).copied().unwrap_or(f64::NAN);
                let next = if x < node.value {
                    i + 1
                } else {
                    node.link as usize
                };
                let n_v = tree.sizes.get(i).copied().unwrap_or(0).max(1);
                let n_c = tree.sizes.get(next).copied().unwrap_or(0).max(1);
                bits.push((
                    node.feature as usize,
                    (f64::from(n_v) / f64::from(n_c)).log2(),
                ));
                i = next;
            }
            if bits.is_empty() || h <= 0.0 {
                continue;
            }
            let weight = 1.0 / (h * tree.inv_c * (tree.sample_size as f64).log2());
            for &(f, b) in &bits {
                if let Some(c) = credit.get_mut(f) {
                    *c += weight * b;
                }
            }
        }
        let total: f64 = credit.iter().sum();
        if !total.is_finite() || total <= 0.0 {
            return Vec::new();
        }
        let mut out: Vec<(usize, f64)> = credit
            .into_iter()
            .enumerate()
            .filter(|&(_, c)| c > 0.0)
            .map(|(f, c)| (f, c / total))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(top_k);
        out
    }

    /// Merges the trees of several forests (e.g. one per site) into a forest
    /// of `n_estimators` trees drawn deterministically (ChaCha8 from `seed`)
    /// from the union of all trees. If `n_estimators` does not exceed the
    /// union, trees are drawn without replacement; otherwise every tree is
    /// taken `n_estimators / union` times and the remainder is drawn without
    /// replacement. Trees keep their own sample size, so scoring normalises
    /// each tree by its own `c(psi_t)`.
    ///
    /// Errors: [`IForestError::Empty`] for no forests,
    /// [`IForestError::DimensionMismatch`] (with `row` = forest index) when
    /// `n_features` differ, [`IForestError::InvalidParam`] for
    /// `n_estimators == 0`.
    pub fn merge(
        forests: &[IsolationForest],
        n_estimators: usize,
        seed: u64,
    ) -> Result<Self, IForestError> {
        let first = forests.first().ok_or(IForestError::Empty)?;
        if n_estimators == 0 {
            return Err(malformed("n_estimators must be at least 1"));
        }
        if let Some((i, f)) = forests
            .iter()
            .enumerate()
            .find(|(_, f)| f.n_features != first.n_features)
        {
            return Err(IForestError::DimensionMismatch {
                expected: first.n_features,
                found: f.n_features,
                row: i,
            });
        }
        let pool: Vec<&Tree> = forests.iter().flat_map(|f| f.trees.iter()).collect();
        if pool.is_empty() {
            return Err(IForestError::Empty);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let reps = n_estimators / pool.len();
        let rest = n_estimators % pool.len();
        let mut picked: Vec<usize> = Vec::with_capacity(n_estimators);
        for _ in 0..reps {
            picked.extend(0..pool.len());
        }
        picked.extend(index::sample(&mut rng, pool.len(), rest));
        picked.sort_unstable();
        let trees: Vec<Tree> = picked.iter().map(|&i| pool[i].clone()).collect();
        let sample_size = trees.iter().map(|t| t.sample_size).max().unwrap_or(0);
        Ok(Self {
            n_features: first.n_features,
            sample_size,
            params: IForestParams {
                n_estimators,
                max_samples: sample_size,
                seed,
            },
            trees,
        })
    }

    /// Largest sample size among the trees (for a fitted forest, its psi).
    pub fn max_tree_sample_size(&self) -> usize {
        self.trees.iter().map(|t| t.sample_size).max().unwrap_or(0)
    }

    /// The binary encoding of the forest (see [`wire`]): what a federation site sends as its
    /// tree contribution and what the aggregator sends back as the global forest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let nodes: usize = self.trees.iter().map(|t| t.nodes.len()).sum();
        let mut out = Vec::with_capacity(
            wire::HEADER_BYTES
                + self.trees.len() * wire::TREE_HEADER_BYTES
                + nodes * wire::NODE_BYTES,
        );
        out.extend_from_slice(&wire::MAGIC);
        out.extend_from_slice(&wire::FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        // n_features < u32::MAX (checked by fit and on load); trees and nodes fit in u32 too.
        out.extend_from_slice(&(self.n_features as u32).to_le_bytes());
        out.extend_from_slice(&(self.trees.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.params.seed.to_le_bytes());
        for t in &self.trees {
            out.extend_from_slice(&(t.sample_size as u32).to_le_bytes());
            out.extend_from_slice(&(t.nodes.len() as u32).to_le_bytes());
            for n in &t.nodes {
                out.extend_from_slice(&n.feature.to_le_bytes());
                out.extend_from_slice(&n.link.to_le_bytes());
                // A leaf's value is derived on load: written as 0 so the encoding is canonical.
                let v = if n.feature == LEAF { 0.0 } else { n.value };
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
        out
    }

    /// Decodes and validates [`IsolationForest::to_bytes`]'s encoding: magic, format version,
    /// lengths (checked against the input before anything is allocated), and every tree as
    /// on deserialisation (pre-order node arrays, child indices in range, split features below
    /// `n_features`, finite thresholds, non-empty leaves whose sizes sum to the tree's sample
    /// size). Trailing bytes are refused.
    ///
    /// Errors: [`IForestError::ZeroFeatures`], [`IForestError::InvalidParam`] naming the problem.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IForestError> {
        let mut r = wire::Reader { bytes, pos: 0 };
        if r.take(4)? != wire::MAGIC {
            return Err(malformed("not an encoded isolation forest (bad magic)"));
        }
        let version = r.u16()?;
        if version != wire::FORMAT_VERSION {
            return Err(malformed(format!(
                "encoded forest format version {version}; this build reads version {}",
                wire::FORMAT_VERSION
            )));
        }
        let _flags = r.u16()?;
        let n_features = r.u32()? as usize;
        if n_features == 0 {
            return Err(IForestError::ZeroFeatures);
        }
        if n_features >= LEAF as usize {
            return Err(malformed("too many features"));
        }
        let n_trees = r.u32()? as usize;
        let seed = r.u64()?;
        if n_trees == 0 {
            return Err(malformed("forest without trees"));
        }
        if n_trees > r.remaining() / (wire::TREE_HEADER_BYTES + wire::NODE_BYTES) {
            return Err(malformed(format!(
                "{n_trees} trees announced in {} bytes",
                r.remaining()
            )));
        }
        let mut trees = Vec::with_capacity(n_trees);
        for t in 0..n_trees {
            let sample_size = r.u32()? as usize;
            let n_nodes = r.u32()? as usize;
            if n_nodes > r.remaining() / wire::NODE_BYTES {
                return Err(malformed(format!(
                    "tree {t}: {n_nodes} nodes announced in {} bytes",
                    r.remaining()
                )));
            }
            let mut nodes = Vec::with_capacity(n_nodes);
            for _ in 0..n_nodes {
                let feature = r.u32()?;
                let link = r.u32()?;
                let value = f64::from_bits(r.u64()?);
                nodes.push(Node {
                    feature,
                    link,
                    value,
                });
            }
            let tree = Tree::from_nodes(nodes, sample_size, n_features).map_err(|e| match e {
                IForestError::InvalidParam(m) => malformed(format!("tree {t}: {m}")),
                other => other,
            })?;
            trees.push(tree);
        }
        if r.remaining() != 0 {
            return Err(malformed(format!(
                "{} bytes after the last tree",
                r.remaining()
            )));
        }
        let sample_size = trees.iter().map(|t| t.sample_size).max().unwrap_or(0);
        Ok(Self {
            n_features,
            sample_size,
            params: IForestParams {
                n_estimators: n_trees,
                max_samples: sample_size,
                seed,
            },
            trees,
        })
    }
}

/// The binary encoding of a forest, little-endian throughout:
///
/// ```text
/// header  "FIFT" · format version u16 (1) · flags u16 (0) · n_features u32 · n_trees u32 · seed u64
/// tree    sample_size u32 · n_nodes u32 · n_nodes × node
/// node    feature u32 (u32::MAX: leaf) · link u32 (split: right child; leaf: sample count)
///         · value f64 bits (split: threshold, go left iff x < threshold; leaf: 0)
/// ```
///
/// Nodes are in pre-order (the left child of a split is the next node), as in memory.
pub mod wire {
    use super::{IForestError, malformed};

    /// First bytes of every encoded forest.
    pub const MAGIC: [u8; 4] = *b"FIFT";
    /// Version of the encoding this build writes and reads.
    pub const FORMAT_VERSION: u16 = 1;
    /// Bytes of the forest header.
    pub const HEADER_BYTES: usize = 24;
    /// Bytes of a tree header.
    pub const TREE_HEADER_BYTES: usize = 8;
    /// Bytes of one node.
    pub const NODE_BYTES: usize = 16;

    /// Largest encoding of `n_trees` trees grown on at most `max_samples` rows each (a tree
    /// of `psi` rows has at most `2·psi − 1` nodes): a bound a receiver checks an announced
    /// length against before it reads anything.
    pub fn max_encoded_len(n_trees: usize, max_samples: usize) -> u64 {
        let nodes = (2 * max_samples as u64).saturating_sub(1);
        (HEADER_BYTES as u64).saturating_add((n_trees as u64).saturating_mul(
            (TREE_HEADER_BYTES as u64).saturating_add(nodes.saturating_mul(NODE_BYTES as u64)),
        ))
    }

    pub(super) struct Reader<'a> {
        pub bytes: &'a [u8],
        pub pos: usize,
    }

    impl<'a> Reader<'a> {
        pub fn remaining(&self) -> usize {
            self.bytes.len() - self.pos
        }

        pub fn take(&mut self, n: usize) -> Result<&'a [u8], IForestError> {
            if self.remaining() < n {
                return Err(malformed(format!(
                    "encoded forest truncated at byte {} of {}",
                    self.bytes.len(),
                    self.pos + n
                )));
            }
            let out = &self.bytes[self.pos..self.pos + n];
            self.pos += n;
            Ok(out)
        }

        fn array<const N: usize>(&mut self) -> Result<[u8; N], IForestError> {
            let mut a = [0u8; N];
            a.copy_from_slice(self.take(N)?);
            Ok(a)
        }

        pub fn u16(&mut self) -> Result<u16, IForestError> {
            Ok(u16::from_le_bytes(self.array()?))
        }

        pub fn u32(&mut self) -> Result<u32, IForestError> {
            Ok(u32::from_le_bytes(self.array()?))
        }

        pub fn u64(&mut self) -> Result<u64, IForestError> {
            Ok(u64::from_le_bytes(self.array()?))
        }
    }
}

/// Exact `f64` (de)serialisation: written as the shortest decimal string that
/// parses back to the identical value; read from such a string or a number.
mod exact_f64 {
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a decimal string")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                v.parse::<f64>().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Approximately Gaussian cluster (Irwin–Hall sum of 12 uniforms) around
    /// `center` with standard deviation `sd`, row-major.
    fn cluster(n: usize, center: &[f64], sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * center.len());
        for _ in 0..n {
            for &c in center {
                let s: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                out.push(c + sd * s);
            }
        }
        out
    }

    fn params(n_estimators: usize, max_samples: usize, seed: u64) -> IForestParams {
        IForestParams {
            n_estimators,
            max_samples,
            seed,
        }
    }

    /// Depth of every leaf of a tree, by walking the pre-order layout.
    fn leaf_depths(tree: &Tree) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![(0usize, 0u32)];
        while let Some((i, d)) = stack.pop() {
            let node = tree.nodes[i];
            if node.feature == LEAF {
                out.push((d, node.link));
            } else {
                stack.push((i + 1, d + 1));
                stack.push((node.link as usize, d + 1));
            }
        }
        out
    }

    /// Naive traversal of the canonical nodes: the reference for the
    /// lock-step, branch-free scorer.
    fn reference_h(tree: &Tree, row: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            let node = tree.nodes[i];
            if node.feature == LEAF {
                return node.value;
            }
            let x = row.get(node.feature as usize).copied().unwrap_or(f64::NAN);
            i = if x < node.value {
                i + 1
            } else {
                node.link as usize
            };
        }
    }

    #[test]
    fn fast_scorer_matches_reference_traversal() {
        let data = cluster(600, &[0.0, 5.0, -3.0], 1.0, 21);
        // 13 trees: one lock-step group of 8 plus a remainder of 5.
        for n_trees in [1, 8, 13] {
            let f = IsolationForest::fit(&data, 3, &params(n_trees, 200, 8)).unwrap();
            let mut probes: Vec<Vec<f64>> = data.chunks(3).take(200).map(<[f64]>::to_vec).collect();
            probes.push(vec![f64::NAN, 5.0, -3.0]);
            probes.push(vec![100.0, f64::NEG_INFINITY, f64::INFINITY]);
            probes.push(vec![0.0]);
            probes.push(vec![]);
            probes.push(vec![0.0, 5.0, -3.0, 9.0]);
            for row in &probes {
                let hs: Vec<f64> = f.trees.iter().map(|t| reference_h(t, row)).collect();
                let mean_h = hs.iter().sum::<f64>() / n_trees as f64;
                let norm = hs
                    .iter()
                    .zip(&f.trees)
                    .map(|(h, t)| h * t.inv_c)
                    .sum::<f64>()
                    / n_trees as f64;
                assert!((f.path_length(row) - mean_h).abs() < 1e-12, "{row:?}");
                assert!((f.score(row) - 2f64.powf(-norm)).abs() < 1e-12, "{row:?}");
            }
        }
    }

    #[test]
    fn average_path_length_reference_values() {
        assert_eq!(average_path_length(0.0), 0.0);
        assert_eq!(average_path_length(1.0), 0.0);
        assert_eq!(average_path_length(2.0), 1.0);
        assert_eq!(average_path_length(f64::NAN), 0.0);
        let reference = 2.0 * (255f64.ln() + 0.5772156649) - 2.0 * 255.0 / 256.0;
        let c256 = average_path_length(256.0);
        assert!((c256 - reference).abs() < 1e-9, "{c256} vs {reference}");
        assert!((c256 - 10.2448).abs() < 1e-3, "{c256}");
        let c3 = 2.0 * (2f64.ln() + 0.5772156649) - 4.0 / 3.0;
        assert!((average_path_length(3.0) - c3).abs() < 1e-9);
    }

    #[test]
    fn psi_two_gives_path_length_exactly_one() {
        // With psi = 2 the height limit is 1: either a split into two leaves of
        // size 1 (h = 1 + c(1) = 1) or a constant root leaf (h = 0 + c(2) = 1).
        let data = [0.0, 0.0, 1.0, 3.0, 3.0];
        let f = IsolationForest::fit(&data, 1, &params(50, 2, 7)).unwrap();
        assert_eq!(f.sample_size(), 2);
        for x in [-10.0, 0.0, 0.5, 1.0, 2.0, 3.0, 100.0, f64::NAN] {
            assert_eq!(f.path_length(&[x]), 1.0, "x = {x}");
            assert_eq!(f.score(&[x]), 0.5, "x = {x}");
        }
    }

    #[test]
    fn exact_path_lengths_on_three_zeros_and_a_ten() {
        // psi = 4 = all rows, height limit 2. The root must split on the only
        // feature with a threshold in (0, 10]: {0,0,0} | {10}. The left node is
        // constant -> leaf of size 3 at depth 1; the right a leaf of size 1.
        let data = [0.0, 0.0, 0.0, 10.0];
        let f = IsolationForest::fit(&data, 1, &params(20, 256, 3)).unwrap();
        assert_eq!(f.sample_size(), 4);
        let c3 = average_path_length(3.0);
        let c4 = average_path_length(4.0);
        assert!((f.path_length(&[0.0]) - (1.0 + c3)).abs() < 1e-12);
        assert!((f.path_length(&[-5.0]) - (1.0 + c3)).abs() < 1e-12);
        assert_eq!(f.path_length(&[10.0]), 1.0);
        assert_eq!(f.path_length(&[f64::NAN]), 1.0, "NaN goes right");
        assert!((f.score(&[10.0]) - 2f64.powf(-1.0 / c4)).abs() < 1e-12);
    }

    #[test]
    fn trees_respect_height_limit_and_sample_size() {
        let data = cluster(1000, &[0.0, 0.0, 0.0], 1.0, 11);
        for (max_samples, limit) in [(256, 8), (100, 7), (2, 1), (5000, 10)] {
            let f = IsolationForest::fit(&data, 3, &params(10, max_samples, 1)).unwrap();
            let psi = max_samples.min(1000);
            assert_eq!(f.sample_size(), psi);
            for tree in &f.trees {
                let leaves = leaf_depths(tree);
                assert!(leaves.iter().all(|&(d, _)| d <= limit));
                assert!(leaves.iter().any(|&(d, _)| d == limit));
                let total: u32 = leaves.iter().map(|&(_, n)| n).sum();
                assert_eq!(total as usize, psi);
                assert_eq!(tree.sizes[0] as usize, psi);
            }
        }
    }

    #[test]
    fn constant_features_are_never_split() {
        // Feature 0 constant, feature 1 varies: every split must be on 1.
        let mut data = Vec::new();
        for i in 0..300 {
            data.push(4.0);
            data.push(i as f64);
        }
        let f = IsolationForest::fit(&data, 2, &params(20, 64, 5)).unwrap();
        for tree in &f.trees {
            for node in &tree.nodes {
                assert!(node.feature == LEAF || node.feature == 1);
            }
        }
        // All-constant data: every tree is a single leaf, h = c(psi), s = 0.5.
        let flat = vec![1.0; 40];
        let g = IsolationForest::fit(&flat, 2, &params(5, 256, 5)).unwrap();
        assert!(g.trees.iter().all(|t| t.nodes.len() == 1));
        assert!((g.score(&[1.0, 1.0]) - 0.5).abs() < 1e-12);
        assert!(g.explain(&[1.0, 1.0], 3).is_empty());
    }

    #[test]
    fn outlier_has_much_shorter_path_than_cluster_point() {
        let data = cluster(1000, &[0.0, 0.0], 0.1, 42);
        let f = IsolationForest::fit(&data, 2, &IForestParams::default()).unwrap();
        let inlier = f.path_length(&[0.0, 0.0]);
        let outlier = f.path_length(&[5.0, 5.0]);
        // An unseen far point follows the extreme branch at every split and is
        // isolated within a few levels; the cluster centre reaches the height
        // limit (8) and lands in a leaf with many samples.
        assert!(outlier < 6.0, "outlier path {outlier}");
        assert!(inlier > 10.0, "inlier path {inlier}");
        assert!(inlier - outlier > 5.0);
    }

    #[test]
    fn scores_on_known_data() {
        let data = cluster(1000, &[0.0, 0.0], 0.1, 42);
        let f = IsolationForest::fit(&data, 2, &IForestParams::default()).unwrap();
        let c_psi = average_path_length(256.0);
        for p in [[0.0, 0.0], [0.05, -0.05], [-0.1, 0.02]] {
            let s = f.score(&p);
            assert!(s < 0.5, "cluster point {p:?} scored {s}");
        }
        let out = f.score(&[5.0, 5.0]);
        assert!(out > 0.65, "outlier scored {out}");
        for (i, s) in f.score_batch(&data).into_iter().enumerate() {
            assert!(s > 0.0 && s <= 1.0);
            let row = &data[2 * i..2 * i + 2];
            let expect = 2f64.powf(-f.path_length(row) / c_psi);
            assert!((s - expect).abs() < 1e-12, "row {i}: {s} vs {expect}");
            assert_eq!(s, f.score(row));
        }
        let mean_in: f64 = f.score_batch(&data).iter().sum::<f64>() / 1000.0;
        assert!(mean_in < 0.5, "mean inlier score {mean_in}");
    }

    #[test]
    fn scoring_bad_rows_does_not_panic() {
        let data = cluster(200, &[0.0, 0.0, 0.0], 1.0, 1);
        let f = IsolationForest::fit(&data, 3, &params(10, 64, 1)).unwrap();
        for row in [
            &[][..],
            &[1.0][..],
            &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY][..],
            &[1.0, 2.0, 3.0, 4.0, 5.0][..],
        ] {
            let s = f.score(row);
            assert!(s > 0.0 && s <= 1.0, "{row:?} -> {s}");
            assert!(f.path_length(row).is_finite());
            let _ = f.explain(row, 3);
        }
        // A short row behaves as if the missing features were NaN.
        assert_eq!(f.score(&[1.0]), f.score(&[1.0, f64::NAN, f64::NAN]));
        // Batch with an incomplete trailing row.
        let scores = f.score_batch(&[0.0, 0.0, 0.0, 1.0]);
        assert_eq!(scores.len(), 2);
        assert_eq!(scores[1], f.score(&[1.0]));
        assert!(f.check_row(&[1.0, 2.0]).is_err());
        assert!(matches!(
            f.check_row(&[1.0, f64::NAN, 2.0]),
            Err(IForestError::NonFinite { row: 0, col: 1 })
        ));
        assert!(f.check_row(&[1.0, 2.0, 3.0]).is_ok());
    }

    #[test]
    fn serde_round_trip_is_exact() {
        let data = cluster(500, &[1.0, -2.0, 3.0], 0.7, 9);
        let f = IsolationForest::fit(&data, 3, &params(30, 128, 99)).unwrap();
        let json = serde_json::to_string(&f).unwrap();
        let g: IsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(f, g);
        let probe = cluster(100, &[1.0, -2.0, 3.0], 3.0, 10);
        let a = f.score_batch(&probe);
        let b = g.score_batch(&probe);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(f.explain(&probe[..3], 3), g.explain(&probe[..3], 3));
        // Numbers instead of strings for thresholds are accepted as well.
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let node = &mut v["trees"][0]["nodes"][0];
        let t: f64 = node["value"].as_str().unwrap().parse().unwrap();
        node["value"] = serde_json::json!(t);
        let h: IsolationForest = serde_json::from_value(v).unwrap();
        assert_eq!(h.n_trees(), 30);
    }

    #[test]
    fn malformed_forests_are_rejected() {
        let data = cluster(300, &[0.0, 0.0], 1.0, 2);
        let f = IsolationForest::fit(&data, 2, &params(3, 64, 4)).unwrap();
        let v: serde_json::Value = serde_json::to_value(&f).unwrap();
        let n_nodes = v["trees"][0]["nodes"].as_array().unwrap().len();
        let tamper = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut w = v.clone();
            edit(&mut w);
            serde_json::from_value::<IsolationForest>(w)
        };
        assert!(tamper(&|_| {}).is_ok());
        // Right child pointing back at the root (would loop).
        assert!(tamper(&|w| w["trees"][0]["nodes"][0]["link"] = 0.into()).is_err());
        // Right child out of range.
        assert!(tamper(&|w| w["trees"][0]["nodes"][0]["link"] = 99_999.into()).is_err());
        // Feature out of range.
        assert!(tamper(&|w| w["trees"][0]["nodes"][0]["feature"] = 2.into()).is_err());
        // Non-finite threshold.
        assert!(tamper(&|w| w["trees"][0]["nodes"][0]["value"] = "NaN".into()).is_err());
        // Truncated tree.
        assert!(
            tamper(&|w| {
                w["trees"][0]["nodes"]
                    .as_array_mut()
                    .unwrap()
                    .truncate(n_nodes - 1)
            })
            .is_err()
        );
        // Leaf sizes inconsistent with the sample size.
        assert!(tamper(&|w| w["trees"][0]["sample_size"] = 65.into()).is_err());
        // No trees / zero features.
        assert!(tamper(&|w| w["trees"] = serde_json::json!([])).is_err());
        assert!(tamper(&|w| w["n_features"] = 0.into()).is_err());
    }

    #[test]
    fn seed_determinism() {
        let data = cluster(800, &[0.0, 1.0], 0.5, 3);
        let a = IsolationForest::fit(&data, 2, &params(40, 256, 1234)).unwrap();
        let b = IsolationForest::fit(&data, 2, &params(40, 256, 1234)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.score_batch(&data), b.score_batch(&data));
        let c = IsolationForest::fit(&data, 2, &params(40, 256, 1235)).unwrap();
        assert_ne!(a, c);
        assert_ne!(a.trees, c.trees);
        assert_ne!(a.score_batch(&data), c.score_batch(&data));
        // Trees within one forest use different streams.
        assert_ne!(a.trees[0], a.trees[1]);
    }

    #[test]
    fn explain_ranks_the_extreme_feature_first() {
        let data = cluster(1000, &[0.0, 0.0, 0.0], 0.2, 17);
        let f = IsolationForest::fit(&data, 3, &IForestParams::default()).unwrap();
        let outlier = [0.05, -0.05, 6.0];
        let ex = f.explain(&outlier, 3);
        assert_eq!(ex[0].0, 2, "{ex:?}");
        assert!(ex[0].1 > 0.5, "{ex:?}");
        let total: f64 = ex.iter().map(|e| e.1).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(ex.windows(2).all(|w| w[0].1 >= w[1].1));
        // Same for an outlier on feature 0 only.
        assert_eq!(f.explain(&[-5.0, 0.0, 0.1], 3)[0].0, 0);
        // top_k truncates.
        assert_eq!(f.explain(&outlier, 1).len(), 1);
        assert!(f.explain(&outlier, 0).is_empty());
    }

    #[test]
    fn merge_forests() {
        let sites: Vec<IsolationForest> = (0..3)
            .map(|s| {
                let data = cluster(400, &[0.0, 0.0], 0.1, 100 + s);
                IsolationForest::fit(&data, 2, &params(40, 256, s)).unwrap()
            })
            .collect();
        let m = IsolationForest::merge(&sites, 50, 77).unwrap();
        assert_eq!(m.n_trees(), 50);
        assert_eq!(m.n_features(), 2);
        assert_eq!(m.sample_size(), 256);
        assert_eq!(m, IsolationForest::merge(&sites, 50, 77).unwrap());
        assert_ne!(m, IsolationForest::merge(&sites, 50, 78).unwrap());
        assert!(m.score(&[5.0, 5.0]) > 0.65);
        assert!(m.score(&[0.0, 0.0]) < 0.5);
        // Every merged tree comes from one of the sites.
        let pool: Vec<&Tree> = sites.iter().flat_map(|s| s.trees.iter()).collect();
        assert!(m.trees.iter().all(|t| pool.contains(&t)));
        // More trees than the union: all are used, count is honoured.
        let big = IsolationForest::merge(&sites, 250, 1).unwrap();
        assert_eq!(big.n_trees(), 250);
        // Merged forests serialise too.
        let back: IsolationForest =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn merge_normalises_each_tree_by_its_own_sample_size() {
        let big = IsolationForest::fit(&cluster(1000, &[0.0, 0.0], 0.1, 1), 2, &params(20, 256, 1))
            .unwrap();
        let small = IsolationForest::fit(&cluster(64, &[0.0, 0.0], 0.1, 2), 2, &params(20, 256, 2))
            .unwrap();
        assert_eq!(small.sample_size(), 64);
        let m = IsolationForest::merge(&[big.clone(), small.clone()], 40, 5).unwrap();
        assert_eq!(m.sample_size(), 256);
        for x in [[0.0, 0.0], [5.0, 5.0], [0.3, -0.2]] {
            let manual: f64 = m
                .trees
                .iter()
                .map(|t| reference_h(t, &x) / average_path_length(t.sample_size as f64))
                .sum::<f64>()
                / 40.0;
            assert!((m.score(&x) - 2f64.powf(-manual)).abs() < 1e-12);
            // Taking all 40 trees equals the mean of the per-site exponents.
            let expect = 0.5 * (big.score(&x).log2() + small.score(&x).log2());
            assert!((m.score(&x).log2() - expect).abs() < 1e-9);
        }
        assert!(m.score(&[5.0, 5.0]) > 0.65);
    }

    #[test]
    fn binary_encoding_round_trips_exactly() {
        let a = IsolationForest::fit(
            &cluster(300, &[0.0, 1.0, -2.0], 0.5, 3),
            3,
            &params(12, 64, 9),
        )
        .unwrap();
        let b = IsolationForest::fit(
            &cluster(40, &[0.0, 1.0, -2.0], 0.5, 4),
            3,
            &params(7, 64, 2),
        )
        .unwrap();
        for f in [a.clone(), IsolationForest::merge(&[a, b], 15, 3).unwrap()] {
            let bytes = f.to_bytes();
            assert_eq!(&bytes[..4], b"FIFT");
            assert!(bytes.len() as u64 <= wire::max_encoded_len(f.n_trees(), f.sample_size()));
            let back = IsolationForest::from_bytes(&bytes).unwrap();
            assert_eq!(back.n_trees(), f.n_trees());
            assert_eq!(back.n_features(), 3);
            assert_eq!(back.sample_size(), f.sample_size());
            assert_eq!(back.trees, f.trees);
            // Canonical: encoding the decoded forest gives the same bytes.
            assert_eq!(back.to_bytes(), bytes);
            for x in [[0.0, 1.0, -2.0], [4.0, -3.0, 0.5], [f64::NAN, 0.0, 0.0]] {
                assert_eq!(back.score(&x).to_bits(), f.score(&x).to_bits());
            }
        }
    }

    #[test]
    fn binary_decoding_refuses_malformed_input_without_panicking() {
        let f =
            IsolationForest::fit(&cluster(100, &[0.0, 1.0], 0.5, 5), 2, &params(3, 32, 1)).unwrap();
        let bytes = f.to_bytes();
        // Every truncation, and any trailing byte.
        for n in 0..bytes.len() {
            assert!(
                IsolationForest::from_bytes(&bytes[..n]).is_err(),
                "prefix {n}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(IsolationForest::from_bytes(&long).is_err());
        let with = |at: usize, patch: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + patch.len()].copy_from_slice(patch);
            IsolationForest::from_bytes(&b)
        };
        let msg = |r: Result<IsolationForest, IForestError>| r.unwrap_err().to_string();
        assert!(msg(with(0, b"XXXX")).contains("magic"));
        assert!(msg(with(4, &2u16.to_le_bytes())).contains("version 2"));
        assert!(matches!(
            with(8, &0u32.to_le_bytes()),
            Err(IForestError::ZeroFeatures)
        ));
        // Fewer features than the trees split on.
        assert!(msg(with(8, &1u32.to_le_bytes())).contains("feature"));
        // Absurd counts are refused before anything is allocated.
        assert!(msg(with(12, &u32::MAX.to_le_bytes())).contains("trees announced"));
        assert!(msg(with(28, &u32::MAX.to_le_bytes())).contains("nodes announced"));
        // The first node of the first tree is a split: feature 32..36, right child
        // 36..40, threshold 40..48.
        assert_ne!(bytes[32..36], LEAF.to_le_bytes());
        assert!(msg(with(40, &f64::NAN.to_bits().to_le_bytes())).contains("non-finite"));
        assert!(msg(with(40, &f64::INFINITY.to_bits().to_le_bytes())).contains("non-finite"));
        assert!(
            with(36, &1u32.to_le_bytes()).is_err(),
            "right child out of order"
        );
        assert!(with(36, &u32::MAX.to_le_bytes()).is_err());
        // A leaf size changed: sizes no longer sum to the sample size.
        assert!(with(24, &31u32.to_le_bytes()).is_err());
    }

    #[test]
    fn merge_errors() {
        let a = IsolationForest::fit(&cluster(50, &[0.0], 1.0, 1), 1, &params(5, 16, 1)).unwrap();
        let b =
            IsolationForest::fit(&cluster(50, &[0.0, 0.0], 1.0, 1), 2, &params(5, 16, 1)).unwrap();
        assert!(matches!(
            IsolationForest::merge(&[], 10, 0),
            Err(IForestError::Empty)
        ));
        assert!(matches!(
            IsolationForest::merge(&[a.clone(), b], 10, 0),
            Err(IForestError::DimensionMismatch {
                expected: 1,
                found: 2,
                row: 1
            })
        ));
        assert!(matches!(
            IsolationForest::merge(&[a], 0, 0),
            Err(IForestError::InvalidParam(_))
        ));
    }

    #[test]
    fn fit_errors() {
        let p = IForestParams::default();
        assert!(matches!(
            IsolationForest::fit(&[], 2, &p),
            Err(IForestError::Empty)
        ));
        assert!(matches!(
            IsolationForest::fit(&[1.0, 2.0, 3.0, 4.0, 5.0], 2, &p),
            Err(IForestError::DimensionMismatch {
                expected: 2,
                found: 1,
                row: 2
            })
        ));
        assert!(matches!(
            IsolationForest::fit(&[1.0, 2.0, 3.0, f64::NAN, 5.0, 6.0], 2, &p),
            Err(IForestError::NonFinite { row: 1, col: 1 })
        ));
        assert!(matches!(
            IsolationForest::fit(&[1.0, f64::NEG_INFINITY], 1, &p),
            Err(IForestError::NonFinite { row: 1, col: 0 })
        ));
        assert!(matches!(
            IsolationForest::fit(&[1.0, 2.0], 0, &p),
            Err(IForestError::ZeroFeatures)
        ));
        let data = [1.0, 2.0, 3.0];
        for bad in [params(0, 256, 0), params(10, 1, 0), params(10, 0, 0)] {
            assert!(matches!(
                IsolationForest::fit(&data, 1, &bad),
                Err(IForestError::InvalidParam(_))
            ));
        }
        assert!(matches!(
            IsolationForest::fit(&[1.0, 2.0], 2, &p),
            Err(IForestError::InvalidParam(_))
        ));
        assert!(IsolationForest::fit(&data, 1, &p).is_ok());
        // Extreme but finite values do not break threshold sampling.
        let wide = [f64::MIN, f64::MAX, 0.0, -1.0];
        let f = IsolationForest::fit(&wide, 1, &params(10, 4, 0)).unwrap();
        assert!(f.score(&[0.5]) > 0.0);
    }

    #[test]
    fn params_default_and_serde() {
        let p = IForestParams::default();
        assert_eq!((p.n_estimators, p.max_samples, p.seed), (100, 256, 0));
        let q: IForestParams = serde_json::from_str(r#"{"seed": 5}"#).unwrap();
        assert_eq!(q, params(100, 256, 5));
    }

    /// Speed sanity, not an assertion on time:
    /// `cargo test -p fedics-detect --release iforest::tests::speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn speed() {
        let data = cluster(10_000, &[0.0; 8], 1.0, 1);
        let t0 = std::time::Instant::now();
        let f = IsolationForest::fit(&data, 8, &IForestParams::default()).unwrap();
        let fit = t0.elapsed();
        let t1 = std::time::Instant::now();
        let mut acc = 0.0;
        for _ in 0..10 {
            for row in data.chunks_exact(8) {
                acc += f.score(row);
            }
        }
        let per_row = t1.elapsed().as_secs_f64() / 100_000.0;
        println!(
            "fit {fit:?}, score {:.3} us/row (checksum {acc:.3})",
            per_row * 1e6
        );
    }
}
