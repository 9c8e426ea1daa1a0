//! Compiled, cache-friendly scoring form of an [`IsolationForest`], for batch
//! scoring of `f32` rows.
//!
//! # Layout
//!
//! [`IsolationForest::compile`] turns every tree into an implicit complete
//! binary tree of height `D` = the tree's depth (heap layout: the children of
//! node `i` are `2i + 1` and `2i + 2`):
//!
//! * `2^D - 1` split nodes of 8 bytes: the threshold (as an order-preserving
//!   `u32` key of an `f32`, see below) and the split feature (stored
//!   pre-multiplied by [`BLOCK`], its offset in a transposed block of rows);
//! * `2^D` leaf values, `f32` of `(depth + c(size)) / c(psi_t)`, so the
//!   per-tree normalisation of merged forests costs nothing when scoring.
//!
//! A leaf of the original tree shallower than `D` is padded down to depth `D`
//! by pass-through split nodes: whichever way a row goes below it, it ends on
//! one of the `2^(D - depth)` bottom slots of its subtree, which all carry the
//! leaf's value. A row therefore walks exactly `D` branch-free steps
//! `i = 2i + 1 + !(x[f] < t)` from the root, and its leaf value is
//! `leaves[i - (2^D - 1)]`. Trees of one forest may have different heights
//! (merged forests, trees of a small psi, constant data): each keeps its own
//! `D`, nothing is padded to the forest's maximum.
//!
//! # Scoring
//!
//! Rows are scored in blocks of [`BLOCK`] rows. A block is first transposed
//! (feature-major, `block[f * BLOCK + r]`) and converted to keys, then for
//! each tree the rows of the block walk it in lock-step: their independent
//! dependency chains (node load, feature load, compare) overlap, and the tree
//! (3 KiB for psi = 256) and the block (`4 * BLOCK * n_features` bytes) stay
//! in L1. With the feature pre-multiplied by `BLOCK`, a row's value is at a
//! constant displacement from the block, and one step compiles to about six
//! instructions (feature load, value load, compare with the threshold in
//! memory, `sbb`, two adds) with no bounds check (see the `SAFETY` proofs in
//! the walk). The root step is shared by all rows of the block. The leaf
//! values of a row are summed in `f64`.
//!
//! On the 2-core AMD EPYC development VM (release build), 100 trees with
//! psi = 256 on 122 features score about 2 million rows per second on one
//! thread (`cargo bench -p fedics-detect --bench detectors -- iforest_122`).
//!
//! # Exactness
//!
//! A `f64` threshold `t` is first rounded to `t32` = the smallest `f32` (or
//! `+inf`) that is `>= t` ([`threshold_f32`]): `t as f32` rounds to nearest,
//! and when that rounded down we take the next `f32` up. Then for every `f32`
//! input `x`, `x < t32  <=>  (x as f64) < t`:
//!
//! * `f32 -> f64` is exact and monotone. If `x < t32` then `(x as f64) < t`,
//!   otherwise `x` would be an `f32 >= t` smaller than `t32`, contradicting
//!   its minimality.
//! * If `(x as f64) < t <= (t32 as f64)` then `x < t32`.
//! * NaN compares false on both sides (goes right), `+inf` goes right,
//!   `-inf` goes left, as in [`IsolationForest::score`].
//!
//! (`t as f32` is already minimal when it did not round down: an `f32` `y`
//! with `t <= y < t as f32` would be strictly nearer to `t`.)
//!
//! Thresholds and inputs are then compared as integers through [`f32_key`],
//! which maps `-0.0` and `+0.0` to one key, is strictly increasing on the
//! other non-NaN values, and maps every NaN to `u32::MAX`, above the key of
//! `+inf` and so of every threshold: `x < t32 <=> key(x) < key(t32)` for every
//! `f32` `x` (NaN included, it goes right) and every non-NaN `t32`.
//!
//! So on any input given as `f32` the compiled forest reaches exactly the
//! leaves the `f64` forest reaches; only the leaf values are rounded to `f32`
//! (relative error at most 2^-24 each, summed in `f64`), and scores agree with
//! [`IsolationForest::score`] on the `f64` widening of the row to about 1e-7
//! relative.
//!
//! # Size
//!
//! A tree of depth `D` takes `12 * 2^D` bytes. [`IsolationForest::fit`] grows
//! trees to at most `ceil(log2(psi))` levels, so this is below `24 * psi`
//! bytes, less than the canonical layout. Trees deeper than that (possible
//! only in a hand-made serialised forest) are rejected by `compile`.

use rayon::prelude::*;

use crate::iforest::{IForestError, IsolationForest, NodeView, TreeView};

/// Rows walked through one tree in lock-step.
pub const BLOCK: usize = 16;

/// Rows per rayon task in [`CompiledForest::score_batch_f32_par`]; batches
/// of fewer than two chunks are scored on the calling thread.
pub const PAR_CHUNK_ROWS: usize = BLOCK * 128;

/// Split node of the heap layout: go to `2i + 1` iff
/// `block[fb + r] < key`, else to `2i + 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Split {
    /// [`f32_key`] of the threshold ([`threshold_f32`] of the `f64` one).
    key: u32,
    /// `feature * BLOCK`: offset of the feature's column in a transposed block.
    fb: u32,
}

/// Deepest tree compiled: heap indices (below `2^(depth + 1)`) fit in `u32`.
/// `fit` grows at most `ceil(log2(psi))` <= 30 levels.
const MAX_DEPTH: u32 = 30;

/// Padding below a shallow leaf: both sides carry the same leaf value.
const PASS: Split = Split { key: 0, fb: 0 };

/// One tree as an implicit complete binary tree of height `depth`.
///
/// Invariants (checked by [`HeapTree::check`] when compiling; the fields are
/// private to this module and never mutated afterwards), relied upon by the
/// unchecked indexing in [`walk_tree`]:
/// * `depth <= MAX_DEPTH`, `splits.len() == 2^depth - 1` and
///   `leaves.len() == 2^depth`;
/// * every `fb` is `feature * BLOCK` with `feature < n_features` (the
///   forest's).
#[derive(Debug, Clone, PartialEq)]
struct HeapTree {
    depth: u32,
    /// `2^depth - 1` split nodes, heap order.
    splits: Box<[Split]>,
    /// `2^depth` normalised leaf values `h / c(psi_t)`.
    leaves: Box<[f32]>,
}

impl HeapTree {
    fn check(&self, n_features: usize) -> bool {
        if self.depth > MAX_DEPTH {
            return false;
        }
        let n = 1usize << self.depth;
        self.splits.len() == n - 1
            && self.leaves.len() == n
            && self.splits.iter().all(|s| {
                let fb = s.fb as usize;
                fb.is_multiple_of(BLOCK) && fb / BLOCK < n_features
            })
    }
}

/// Smallest `f32` (possibly `+inf`) that is `>= t`, for finite `t`; see the
/// module docs for why `x < threshold_f32(t) <=> (x as f64) < t` for every
/// `f32` `x`.
pub fn threshold_f32(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) < t { r.next_up() } else { r }
}

/// Order-preserving `u32` key of an `f32`: `-0.0` and `+0.0` share a key,
/// `x < y <=> f32_key(x) < f32_key(y)` for all other non-NaN values, and NaN
/// maps to `u32::MAX` (above `+inf`).
#[inline]
pub fn f32_key(x: f32) -> u32 {
    // `-0.0 + 0.0 == +0.0`. Negative values: flip all bits (larger magnitude,
    // smaller key, below 2^31); others: set the sign bit.
    let b = (x + 0.0).to_bits();
    let k = b ^ ((b as i32 >> 31) as u32 | 0x8000_0000);
    if x.is_nan() { u32::MAX } else { k }
}

fn compile_tree(tree: TreeView<'_>, n_features: usize) -> Result<HeapTree, IForestError> {
    let depth = tree.depth();
    // fit grows at most ceil(log2(psi)) levels, i.e. 2^depth < 2 psi.
    let fits = depth <= MAX_DEPTH && (1usize << depth) < tree.sample_size().saturating_mul(2);
    if !fits {
        return Err(IForestError::InvalidParam(format!(
            "tree of depth {depth} exceeds the height limit of its sample size {}",
            tree.sample_size()
        )));
    }
    let n_splits = (1usize << depth) - 1;
    let mut splits = vec![PASS; n_splits];
    let mut leaves = vec![0.0f32; 1 << depth];
    let inv_c = tree.inv_c();
    let malformed = || IForestError::InvalidParam("malformed tree".into());
    // (pre-order index, heap index, level)
    let mut stack = vec![(0usize, 0usize, 0u32)];
    while let Some((p, h, level)) = stack.pop() {
        match tree.node(p).ok_or_else(malformed)? {
            NodeView::Leaf { h: path } => {
                // Heap node h at `level` covers the bottom slots
                // (h + 1) 2^k - 1 .. (h + 2) 2^k - 1, with k = depth - level.
                let k = depth.checked_sub(level).ok_or_else(malformed)?;
                let first = ((h + 1) << k) - 1 - n_splits;
                let slots = leaves
                    .get_mut(first..first + (1 << k))
                    .ok_or_else(malformed)?;
                slots.fill((path * inv_c) as f32);
            }
            NodeView::Split {
                feature,
                threshold,
                right,
            } => {
                if feature as usize >= n_features {
                    return Err(malformed());
                }
                let fb = feature.checked_mul(BLOCK as u32).ok_or_else(malformed)?;
                *splits.get_mut(h).ok_or_else(malformed)? = Split {
                    key: f32_key(threshold_f32(threshold)),
                    fb,
                };
                stack.push((p + 1, 2 * h + 1, level + 1));
                stack.push((right, 2 * h + 2, level + 1));
            }
        }
    }
    let tree = HeapTree {
        depth,
        splits: splits.into_boxed_slice(),
        leaves: leaves.into_boxed_slice(),
    };
    if tree.check(n_features) {
        Ok(tree)
    } else {
        Err(malformed())
    }
}

/// An [`IsolationForest`] compiled for fast batch scoring of `f32` rows; see
/// the module docs. Obtained with [`IsolationForest::compile`]. Scores equal
/// [`IsolationForest::score`] of the rows widened to `f64` to about 1e-7
/// relative.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledForest {
    n_features: usize,
    trees: Vec<HeapTree>,
}

impl IsolationForest {
    /// Compiles the forest for fast batch scoring of `f32` rows
    /// ([`CompiledForest`]). Fails only for trees deeper than
    /// `ceil(log2(psi_t))`, which [`IsolationForest::fit`] never grows.
    pub fn compile(&self) -> Result<CompiledForest, IForestError> {
        let n_features = self.n_features();
        if n_features.saturating_mul(BLOCK) > u32::MAX as usize {
            return Err(IForestError::InvalidParam(format!(
                "{n_features} features are too many to compile"
            )));
        }
        let trees = self
            .tree_views()
            .map(|t| compile_tree(t, n_features))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledForest { n_features, trees })
    }
}

impl CompiledForest {
    /// Number of features a row has.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Number of rows in `len` values: an incomplete trailing row counts.
    fn n_rows(&self, len: usize) -> usize {
        len.div_ceil(self.n_features)
    }

    /// Score of one row, as [`IsolationForest::score`] of its `f64` widening
    /// (missing trailing features are NaN, extra values are ignored). Prefer
    /// the batch functions: a block of [`BLOCK`] rows costs about as much.
    pub fn score_f32(&self, row: &[f32]) -> f64 {
        let mut padded = vec![f32::NAN; self.n_features];
        for (p, &x) in padded.iter_mut().zip(row) {
            *p = x;
        }
        let mut out = [0.0];
        self.score_into(&padded, &mut out);
        out[0]
    }

    /// Scores row-major `rows` (`n_features` values each) on the calling
    /// thread. An incomplete trailing row is scored as if its missing
    /// features were NaN, as in [`IsolationForest::score_batch`].
    pub fn score_batch_f32(&self, rows: &[f32]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_rows(rows.len())];
        self.score_into(rows, &mut out);
        out
    }

    /// Like [`CompiledForest::score_batch_f32`], on the current rayon pool
    /// (the global one, or the one of an enclosing
    /// [`rayon::ThreadPool::install`]) in chunks of [`PAR_CHUNK_ROWS`] rows.
    /// Batches of fewer than two chunks are scored on the calling thread.
    /// The scores are identical to the single-threaded ones.
    pub fn score_batch_f32_par(&self, rows: &[f32]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_rows(rows.len())];
        if out.len() < 2 * PAR_CHUNK_ROWS {
            self.score_into(rows, &mut out);
        } else {
            out.par_chunks_mut(PAR_CHUNK_ROWS)
                .zip(rows.par_chunks(PAR_CHUNK_ROWS * self.n_features))
                .for_each(|(out, rows)| self.score_into(rows, out));
        }
        out
    }

    /// [`CompiledForest::score_batch_f32_par`] on `threads` threads (`<= 1`:
    /// [`CompiledForest::score_batch_f32`] on the calling thread). Builds a
    /// thread pool per call; to score repeatedly, build one and call
    /// `score_batch_f32_par` inside its [`rayon::ThreadPool::install`].
    pub fn score_batch_f32_threads(&self, rows: &[f32], threads: usize) -> Vec<f64> {
        if threads <= 1 {
            return self.score_batch_f32(rows);
        }
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => pool.install(|| self.score_batch_f32_par(rows)),
            Err(_) => self.score_batch_f32(rows),
        }
    }

    /// Scores `rows` into `out` (`out.len() == n_rows(rows.len())`).
    fn score_into(&self, rows: &[f32], out: &mut [f64]) {
        let nf = self.n_features;
        let n_trees = self.trees.len() as f64;
        let mut block = vec![u32::MAX; BLOCK * nf];
        // Both sides have ceil(rows.len() / (BLOCK * nf)) chunks.
        for (rows, out) in rows.chunks(BLOCK * nf).zip(out.chunks_mut(BLOCK)) {
            if rows.len() == BLOCK * nf {
                // Column by column: the writes are contiguous.
                for (f, column) in block.chunks_exact_mut(BLOCK).enumerate() {
                    for (r, k) in column.iter_mut().enumerate() {
                        *k = f32_key(rows[r * nf + f]);
                    }
                }
            } else {
                // Last, short block: missing rows and features are NaN.
                block.fill(u32::MAX);
                for (r, row) in rows.chunks(nf).enumerate() {
                    for (column, &x) in block.chunks_exact_mut(BLOCK).zip(row) {
                        column[r] = f32_key(x);
                    }
                }
            }
            let mut sums = [0.0f64; BLOCK];
            for tree in &self.trees {
                walk_tree(tree, nf, &block, &mut sums);
            }
            for (o, sum) in out.iter_mut().zip(sums) {
                *o = (-sum / n_trees).exp2();
            }
        }
    }
}

/// Adds the normalised path lengths in `tree` (of a forest of `n_features`
/// features) of the rows of one transposed block of keys
/// (`block[f * BLOCK + r]`) to `sums`.
#[inline]
fn walk_tree(tree: &HeapTree, n_features: usize, block: &[u32], sums: &mut [f64; BLOCK]) {
    // Once per tree and block; the unchecked loads below rely on it.
    assert_eq!(block.len(), BLOCK * n_features, "block size");
    let splits = &*tree.splits;
    let mut idx = [0u32; BLOCK];
    // Step 0, at the root for all rows: one node load, and the row values
    // are contiguous.
    if let Some(root) = splits.first() {
        let column = &block[root.fb as usize..][..BLOCK];
        for (i, &x) in idx.iter_mut().zip(column) {
            let below = (i64::from(x) - i64::from(root.key)) >> 63;
            *i = 2u32.wrapping_add(below as u32);
        }
    }
    for _ in 1..tree.depth {
        for (r, i) in idx.iter_mut().enumerate() {
            // SAFETY: before step `d` (0-based) every `*i` lies in
            // [2^d - 1, 2^(d+1) - 2]: true for d = 0 (`*i == 0`), and
            // `2i + 1 + {0, 1}` maps that range onto the one of d + 1 (step 0
            // is the loop above), without overflow as 2^(d+2) <=
            // 2^(MAX_DEPTH + 1) < 2^32. Steps run for d < depth, so
            // `*i <= 2^depth - 2 < splits.len() == 2^depth - 1` (HeapTree
            // invariant).
            let s = unsafe { *splits.get_unchecked(*i as usize) };
            // SAFETY: `s.fb == feature * BLOCK` with `feature < n_features`
            // (HeapTree invariant) and `r < BLOCK`, so
            // `s.fb + r < BLOCK * n_features == block.len()` (asserted above).
            let x = unsafe { *block.get_unchecked(s.fb as usize + r) };
            // -1 iff x < threshold (both keys < 2^32: no overflow).
            let below = (i64::from(x) - i64::from(s.key)) >> 63;
            *i = (2 * *i + 2).wrapping_add(below as u32);
        }
    }
    // After `depth` steps, *i - (2^depth - 1) < 2^depth == leaves.len().
    let first_leaf = splits.len();
    for (sum, &i) in sums.iter_mut().zip(&idx) {
        *sum += f64::from(tree.leaves[i as usize - first_leaf]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iforest::{IForestParams, average_path_length};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn params(n_estimators: usize, max_samples: usize, seed: u64) -> IForestParams {
        IForestParams {
            n_estimators,
            max_samples,
            seed,
        }
    }

    /// Mixed data: uniform columns, small integers (ties: shallow leaves) and
    /// one-hot columns.
    fn mixed(n: usize, nf: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * nf);
        for _ in 0..n {
            let hot = rng.random_range(0..nf);
            for j in 0..nf {
                out.push(match j % 3 {
                    0 => rng.random_range(-3.0..3.0),
                    1 => f64::from(rng.random_range(0..3u8)),
                    _ => f64::from(u8::from(j == hot || rng.random_bool(0.1))),
                });
            }
        }
        out
    }

    /// Probe rows as `f32`: training rows, perturbed ones, wide values and
    /// non-finite values.
    fn probes(data: &[f64], nf: usize, n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * nf);
        let n_data = data.len() / nf;
        for k in 0..n {
            let base = &data[(k % n_data) * nf..(k % n_data + 1) * nf];
            for &v in base {
                let x = match rng.random_range(0..10) {
                    0 => rng.random_range(-10.0..10.0),
                    1 => v + rng.random_range(-0.01..0.01),
                    2 if k % 7 == 0 => f64::NAN,
                    3 if k % 11 == 0 => f64::INFINITY,
                    4 if k % 13 == 0 => f64::NEG_INFINITY,
                    _ => v,
                };
                out.push(x as f32);
            }
        }
        out
    }

    fn widen(row: &[f32]) -> Vec<f64> {
        row.iter().map(|&x| f64::from(x)).collect()
    }

    /// Compiled scores (batch, parallel, per row) against `IsolationForest::score`.
    fn assert_matches(f: &IsolationForest, rows: &[f32]) {
        let c = f.compile().unwrap();
        let nf = f.n_features();
        assert_eq!((c.n_features(), c.n_trees()), (nf, f.n_trees()));
        let batch = c.score_batch_f32(rows);
        assert_eq!(batch.len(), rows.len().div_ceil(nf));
        for (i, (row, &s)) in rows.chunks(nf).zip(&batch).enumerate() {
            let expect = f.score(&widen(row));
            assert!(
                (s - expect).abs() <= 1e-6 * expect,
                "row {i} {row:?}: {s} vs {expect}"
            );
            assert_eq!(c.score_f32(row).to_bits(), s.to_bits(), "row {i}");
        }
        let par = c.score_batch_f32_par(rows);
        assert!(
            batch
                .iter()
                .zip(&par)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        assert_eq!(c.score_batch_f32_threads(rows, 2), batch);
    }

    #[test]
    fn compiled_matches_reference_on_random_rows() {
        for (nf, n_trees, psi, seed) in [
            (1, 3, 256, 1),
            (3, 13, 200, 2),
            (7, 100, 256, 3),
            (12, 20, 5, 4),
            (5, 10, 3, 5),
            (122, 40, 256, 6),
        ] {
            let data = mixed(600, nf, seed);
            let f = IsolationForest::fit(&data, nf, &params(n_trees, psi, seed)).unwrap();
            // Not a multiple of BLOCK, with an incomplete trailing row.
            let mut rows = probes(&data, nf, 3 * BLOCK + 5, seed + 100);
            assert_matches(&f, &rows);
            if nf > 1 {
                rows.truncate(rows.len() - 1);
                assert_matches(&f, &rows);
            }
            assert!(f.compile().unwrap().score_batch_f32(&[]).is_empty());
        }
    }

    #[test]
    fn large_batches_use_rayon_and_match() {
        let data = mixed(2000, 6, 9);
        let f = IsolationForest::fit(&data, 6, &params(30, 256, 9)).unwrap();
        let rows = probes(&data, 6, 2 * PAR_CHUNK_ROWS + 37, 10);
        assert_matches(&f, &rows);
    }

    #[test]
    fn short_and_long_rows() {
        let data = mixed(300, 4, 3);
        let f = IsolationForest::fit(&data, 4, &params(25, 64, 3)).unwrap();
        let c = f.compile().unwrap();
        for row in [
            &[][..],
            &[0.5][..],
            &[1.0, 2.0, 0.0][..],
            &[1.0, 2.0, 0.0, 1.0, 9.0][..],
        ] {
            let s = c.score_f32(row);
            let expect = f.score(&widen(row));
            assert!(
                (s - expect).abs() <= 1e-6 * expect,
                "{row:?}: {s} vs {expect}"
            );
        }
    }

    #[test]
    fn merged_forests_with_different_depths() {
        let sites: Vec<IsolationForest> = [(1000, 256), (64, 256), (300, 16), (40, 2)]
            .into_iter()
            .enumerate()
            .map(|(s, (n, psi))| {
                let data = mixed(n, 5, 50 + s as u64);
                IsolationForest::fit(&data, 5, &params(15, psi, s as u64)).unwrap()
            })
            .collect();
        let m = IsolationForest::merge(&sites, 45, 7).unwrap();
        let c = m.compile().unwrap();
        let depths: std::collections::BTreeSet<u32> = c.trees.iter().map(|t| t.depth).collect();
        assert!(depths.len() >= 3, "{depths:?}");
        assert_matches(&m, &probes(&mixed(200, 5, 99), 5, 200, 98));
    }

    #[test]
    fn constant_data_compiles_to_root_leaves() {
        let flat = vec![1.0; 40];
        let f = IsolationForest::fit(&flat, 2, &params(5, 256, 5)).unwrap();
        let c = f.compile().unwrap();
        assert!(c.trees.iter().all(|t| t.depth == 0 && t.splits.is_empty()));
        let scores = c.score_batch_f32(&[1.0, 1.0, 5.0, f32::NAN, -3.0]);
        assert_eq!(scores, vec![0.5; 3]);
    }

    #[test]
    fn psi_two() {
        let data = [0.0, 0.0, 1.0, 3.0, 3.0];
        let f = IsolationForest::fit(&data, 1, &params(50, 2, 7)).unwrap();
        let c = f.compile().unwrap();
        assert!(c.trees.iter().all(|t| t.depth <= 1));
        let xs = [
            -10.0,
            0.0,
            0.5,
            1.0,
            2.0,
            3.0,
            100.0,
            f32::NAN,
            f32::INFINITY,
        ];
        for s in c.score_batch_f32(&xs) {
            assert!((s - 0.5).abs() < 1e-7, "{s}");
        }
    }

    /// One tree on 1 feature, psi = 3: `x < t` goes to a leaf of size 1
    /// (h = 1), otherwise to a leaf of size 2 (h = 1 + c(2) = 2).
    fn stump(t: f64) -> IsolationForest {
        let json = format!(
            r#"{{"n_features": 1, "sample_size": 3, "params": {{}}, "trees": [{{
                "sample_size": 3, "nodes": [
                {{"feature": 0, "link": 2, "value": "{t:?}"}},
                {{"feature": {leaf}, "link": 1, "value": "0"}},
                {{"feature": {leaf}, "link": 2, "value": "0"}}]}}]}}"#,
            leaf = u32::MAX
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn thresholds_between_adjacent_f32_values() {
        let c3 = average_path_length(3.0);
        let left = 2f64.powf(-1.0 / c3);
        let right = 2f64.powf(-2.0 / c3);
        let one_up = 1.0f32.next_up();
        let cases: [(f64, &[f32], &[f32]); 6] = [
            // Rounds down to 1.0 as f32: must become next_up(1.0).
            (
                1.0 + 2f64.powi(-30),
                &[1.0, 0.5, f32::NEG_INFINITY],
                &[one_up, 2.0],
            ),
            // Rounds up to next_up(1.0) already.
            (f64::from(one_up) - 2f64.powi(-30), &[1.0], &[one_up]),
            // Exactly representable.
            (1.5, &[1.5f32.next_down()], &[1.5, f32::INFINITY, f32::NAN]),
            (-0.1, &[-0.1], &[(-0.1f32).next_up(), -0.0, 0.0]),
            // Beyond the f32 range.
            (1e300, &[f32::MAX, 0.0], &[f32::INFINITY, f32::NAN]),
            (-1e300, &[f32::NEG_INFINITY], &[f32::MIN, 0.0]),
        ];
        for (t, goes_left, goes_right) in cases {
            let f = stump(t);
            let c = f.compile().unwrap();
            let t32 = threshold_f32(t);
            assert!(f64::from(t32) >= t && f64::from(t32.next_down()) < t, "{t}");
            for (xs, expect) in [(goes_left, left), (goes_right, right)] {
                for &x in xs {
                    assert_eq!(f.score(&[f64::from(x)]), expect, "t = {t:?}, x = {x:?}");
                    let s = c.score_f32(&[x]);
                    assert!((s - expect).abs() < 1e-7, "t = {t:?}, x = {x:?}: {s}");
                }
            }
        }
    }

    #[test]
    fn threshold_f32_is_the_smallest_f32_not_below() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100_000 {
            let t = match rng.random_range(0..3) {
                0 => rng.random_range(-1.0..1.0),
                1 => rng.random_range(-1e6..1e6),
                _ => f64::from_bits(rng.random::<u64>()),
            };
            if !t.is_finite() {
                continue;
            }
            let t32 = threshold_f32(t);
            assert!(f64::from(t32) >= t, "{t:?}");
            assert!(f64::from(t32.next_down()) < t, "{t:?}");
            // Spot-check the equivalence around the threshold.
            for x in [t32.next_down(), t32, t32.next_up(), t as f32] {
                assert_eq!(x < t32, f64::from(x) < t, "t = {t:?}, x = {x:?}");
            }
        }
    }

    #[test]
    fn too_deep_trees_are_rejected() {
        // A valid chain of depth 3 on psi = 4 (fit stops at depth 2).
        let leaf = u32::MAX;
        let json = format!(
            r#"{{"n_features": 1, "sample_size": 4, "params": {{}}, "trees": [{{
                "sample_size": 4, "nodes": [
                {{"feature": 0, "link": 2, "value": "1"}},
                {{"feature": {leaf}, "link": 1, "value": "0"}},
                {{"feature": 0, "link": 4, "value": "2"}},
                {{"feature": {leaf}, "link": 1, "value": "0"}},
                {{"feature": 0, "link": 6, "value": "3"}},
                {{"feature": {leaf}, "link": 1, "value": "0"}},
                {{"feature": {leaf}, "link": 1, "value": "0"}}]}}]}}"#
        );
        let f: IsolationForest = serde_json::from_str(&json).unwrap();
        assert!(matches!(f.compile(), Err(IForestError::InvalidParam(_))));
    }

    #[test]
    fn f32_key_preserves_order() {
        let special = [
            f32::NEG_INFINITY,
            f32::MIN,
            -1.0,
            -f32::MIN_POSITIVE,
            -1e-45,
            -0.0,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
            f32::INFINITY,
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut values: Vec<f32> = special.to_vec();
        values.extend((0..2000).map(|_| f32::from_bits(rng.random::<u32>())));
        values.extend((0..2000).map(|_| rng.random_range(-2.0f32..2.0)));
        for &x in &values {
            for &y in values.iter().take(300) {
                if x.is_nan() || y.is_nan() {
                    continue;
                }
                assert_eq!(x < y, f32_key(x) < f32_key(y), "{x:?} {y:?}");
            }
        }
        assert_eq!(f32_key(-0.0), f32_key(0.0));
        // Every NaN goes right of every threshold.
        for nan in [
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0xffff_ffff),
            f32::from_bits(0x7f80_0001),
        ] {
            assert_eq!(f32_key(nan), u32::MAX);
            assert!(f32_key(nan) > f32_key(f32::INFINITY));
        }
    }

    /// Throughput sanity, not an assertion on time (best of many runs):
    /// `cargo test -p fedics-detect --release iforest_fast::tests::speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn speed() {
        let data = mixed(10_000, 122, 1);
        let f = IsolationForest::fit(&data, 122, &IForestParams::default()).unwrap();
        let c = f.compile().unwrap();
        let n = 1024;
        let rows: Vec<f32> = mixed(n, 122, 2).iter().map(|&v| v as f32).collect();
        let mut best = f64::INFINITY;
        let mut checksum = 0.0;
        for _ in 0..300 {
            let t = std::time::Instant::now();
            checksum += c.score_batch_f32(std::hint::black_box(&rows))[0];
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "compiled: {:.1} ns/row, {:.0} rows/s (checksum {checksum:.3})",
            best / n as f64 * 1e9,
            n as f64 / best
        );
    }
}
