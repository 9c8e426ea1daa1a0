//! The preprocessor shared by every model: one-hot encoding of categorical columns and
//! scaling of numeric ones, fitted on training rows only and stored inside model files.
//!
//! Output features follow the input schema's column order; a categorical column expands
//! in place into one feature per training category, sorted (byte order, as NumPy's
//! `np.unique` sorts ASCII strings), named `column=category`. Numeric and binary columns
//! give one feature each, named after the column.
//!
//! With [`Scaling::MinMax`] and one-hot encoding this reproduces the reference pipeline
//! of scikit-learn's `OneHotEncoder(handle_unknown="ignore")` + `MinMaxScaler()`:
//! `(x - min) / (max - min)`, a constant column maps to `x - min` (0 on training data),
//! and values outside the training range are not clipped unless
//! [`PreprocessOptions::clip`] is set. [`Scaling::Standard`] is `StandardScaler()`:
//! `(x - mean) / std` with the population standard deviation, and a zero std divides by 1.
//!
//! A category not seen in training encodes as all zeros for its column and is counted,
//! never an error: see [`UnseenReport`] and [`Preprocessor::unseen_totals`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, TabularError};
use crate::matrix::Matrix;
use crate::table::{Cell, ColumnData, ColumnKind, RawTable, Schema};

/// Version of the stored form of a [`Preprocessor`]; other versions are refused on load.
pub const PREPROCESSOR_FORMAT_VERSION: u32 = 1;

/// At most this many distinct unseen values are listed per column in an [`UnseenReport`].
pub const MAX_UNSEEN_VALUES: usize = 20;

/// How numeric columns are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// `(x - min) / (max - min)`; a constant column gives `x - min`.
    #[default]
    MinMax,
    /// `(x - mean) / std` (population std); a zero std divides by 1.
    Standard,
    /// Values pass through unchanged (for tree models).
    None,
}

/// How to fit a [`Preprocessor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreprocessOptions {
    pub scaling: Scaling,
    /// With [`Scaling::MinMax`], clip transformed values to `[0, 1]` (values outside the
    /// training range). Off by default, like scikit-learn's `clip=False`. Ignored by the
    /// other scalings.
    #[serde(default)]
    pub clip: bool,
    /// Scale [`ColumnKind::Binary`] columns like numeric ones (the default, as the
    /// reference pipeline does: min-max leaves a 0/1 column unchanged). When off, binary
    /// columns pass through unchanged.
    #[serde(default = "default_true")]
    pub scale_binary: bool,
}

fn default_true() -> bool {
    true
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            scaling: Scaling::MinMax,
            clip: false,
            scale_binary: true,
        }
    }
}

impl PreprocessOptions {
    /// Min-max scaling without clipping (the default).
    pub fn min_max() -> Self {
        Self::default()
    }

    /// Standard scaling.
    pub fn standard() -> Self {
        Self {
            scaling: Scaling::Standard,
            ..Self::default()
        }
    }

    /// No scaling: one-hot encoding only.
    pub fn unscaled() -> Self {
        Self {
            scaling: Scaling::None,
            ..Self::default()
        }
    }

    pub fn with_clip(mut self, clip: bool) -> Self {
        self.clip = clip;
        self
    }

    pub fn with_scale_binary(mut self, scale_binary: bool) -> Self {
        self.scale_binary = scale_binary;
        self
    }
}

/// Training statistics of a numeric column.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation (ddof = 0).
    pub std: f64,
}

/// What was learned for one input column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Fitted {
    Numeric { stats: NumericStats },
    Categorical { categories: Vec<String> },
}

/// The stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Repr {
    format_version: u32,
    options: PreprocessOptions,
    schema: Schema,
    fitted: Vec<Fitted>,
    n_training_rows: usize,
    training_fingerprint: String,
}

/// How one input column is written into the output row.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Numeric {
        offset: usize,
        shift: f64,
        scale: f64,
        clip: bool,
    },
    Categorical {
        offset: usize,
    },
}

/// Unseen categories met by one transform, per column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnseenReport {
    /// Only columns that met at least one unseen category, in schema order.
    pub columns: Vec<UnseenColumn>,
}

/// Unseen categories of one column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnseenColumn {
    pub column: String,
    /// Rows whose value was not a training category (encoded as all zeros).
    pub rows: u64,
    /// Number of distinct unseen values.
    pub distinct: usize,
    /// The most frequent unseen values with their row counts (at most
    /// [`MAX_UNSEEN_VALUES`]), most frequent first, ties by value.
    pub values: Vec<(String, u64)>,
}

impl UnseenReport {
    /// Rows with an unseen value, summed over columns.
    pub fn total(&self) -> u64 {
        self.columns.iter().map(|c| c.rows).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    pub fn get(&self, column: &str) -> Option<&UnseenColumn> {
        self.columns.iter().find(|c| c.column == column)
    }
}

impl fmt::Display for UnseenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.columns.is_empty() {
            return f.write_str("no unseen categories");
        }
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{}: {} rows, {} distinct (",
                c.column, c.rows, c.distinct
            )?;
            for (j, (v, n)) in c.values.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v:?}={n}")?;
            }
            if c.values.len() < c.distinct {
                f.write_str(", ...")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Fitted one-hot encoding and scaling. Serialises (serde) to a compact description
/// (options, schema, per-column statistics and categories); deserialising checks it.
///
/// `transform*` take `&self` and may run on several threads at once; the running count
/// of unseen categories ([`Self::unseen_totals`]) uses atomics.
#[derive(Debug)]
pub struct Preprocessor {
    repr: Repr,
    plan: Vec<Plan>,
    feature_names: Vec<String>,
    unseen: Vec<AtomicU64>,
}

impl Preprocessor {
    /// Fits on every row of `table` (pass only training rows; see
    /// [`RawTable::select_rows`]). Errors on an empty table or a NaN or infinite value.
    pub fn fit(table: &RawTable, options: PreprocessOptions) -> Result<Self> {
        let n = table.n_rows();
        if n == 0 {
            return Err(TabularError::EmptyTable);
        }
        let mut fitted = Vec::with_capacity(table.n_columns());
        for (spec, col) in table.schema().columns.iter().zip(table.columns()) {
            fitted.push(match col {
                ColumnData::Numeric(v) => {
                    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
                    for (row, &x) in v.iter().enumerate() {
                        if !x.is_finite() {
                            return Err(TabularError::NotFinite {
                                row,
                                column: spec.name.clone(),
                                value: x,
                            });
                        }
                        min = min.min(x);
                        max = max.max(x);
                        sum += x;
                    }
                    let mean = sum / n as f64;
                    let var = v.iter().map(|&x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
                    Fitted::Numeric {
                        stats: NumericStats {
                            min,
                            max,
                            mean,
                            std: var.sqrt(),
                        },
                    }
                }
                ColumnData::Categorical(c) => {
                    let mut used = vec![false; c.levels().len()];
                    for &code in c.codes() {
                        used[code as usize] = true;
                    }
                    let mut categories: Vec<String> = c
                        .levels()
                        .iter()
                        .zip(&used)
                        .filter(|(_, u)| **u)
                        .map(|(l, _)| l.clone())
                        .collect();
                    categories.sort_unstable();
                    Fitted::Categorical { categories }
                }
            });
        }
        Self::from_repr(Repr {
            format_version: PREPROCESSOR_FORMAT_VERSION,
            options,
            schema: table.schema().clone(),
            fitted,
            n_training_rows: n,
            training_fingerprint: table.fingerprint(),
        })
    }

    /// Checks a stored form and prepares the transform plan.
    fn from_repr(repr: Repr) -> Result<Self> {
        let bad = |m: String| Err(TabularError::InvalidModel(m));
        if repr.format_version != PREPROCESSOR_FORMAT_VERSION {
            return bad(format!(
                "format_version {} (this build reads version {PREPROCESSOR_FORMAT_VERSION})",
                repr.format_version
            ));
        }
        repr.schema
            .validate()
            .map_err(|e| TabularError::InvalidModel(e.to_string()))?;
        if repr.fitted.len() != repr.schema.len() {
            return bad(format!(
                "{} fitted columns for a schema of {}",
                repr.fitted.len(),
                repr.schema.len()
            ));
        }
        let opts = repr.options;
        let mut plan = Vec::with_capacity(repr.fitted.len());
        let mut names = Vec::new();
        for (spec, fitted) in repr.schema.columns.iter().zip(&repr.fitted) {
            let offset = names.len();
            match (spec.kind, fitted) {
                (ColumnKind::Categorical, Fitted::Categorical { categories }) => {
                    if categories.is_empty() {
                        return bad(format!("column `{}` has no categories", spec.name));
                    }
                    if categories.windows(2).any(|w| w[0] >= w[1]) {
                        return bad(format!(
                            "categories of column `{}` are not sorted and unique",
                            spec.name
                        ));
                    }
                    names.extend(categories.iter().map(|c| format!("{}={c}", spec.name)));
                    plan.push(Plan::Categorical { offset });
                }
                (ColumnKind::Numeric | ColumnKind::Binary, Fitted::Numeric { stats }) => {
                    let s = stats;
                    if ![s.min, s.max, s.mean, s.std].iter().all(|x| x.is_finite())
                        || s.min > s.max
                        || s.std < 0.0
                    {
                        return bad(format!(
                            "statistics of column `{}` are not valid: {s:?}",
                            spec.name
                        ));
                    }
                    let passthrough = opts.scaling == Scaling::None
                        || (spec.kind == ColumnKind::Binary && !opts.scale_binary);
                    let (shift, scale, clip) = if passthrough {
                        (0.0, 1.0, false)
                    } else if opts.scaling == Scaling::MinMax {
                        (s.min, non_zero(s.max - s.min), opts.clip)
                    } else {
                        (s.mean, non_zero(s.std), false)
                    };
                    names.push(spec.name.clone());
                    plan.push(Plan::Numeric {
                        offset,
                        shift,
                        scale,
                        clip,
                    });
                }
                (kind, _) => {
                    return bad(format!(
                        "column `{}` is {kind} in the schema but was fitted as another kind",
                        spec.name
                    ));
                }
            }
        }
        let unseen = (0..plan.len()).map(|_| AtomicU64::new(0)).collect();
        Ok(Self {
            repr,
            plan,
            feature_names: names,
            unseen,
        })
    }

    /// Number of output features.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Output feature names, in order (`duration`, `service=http`, ...).
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The schema the preprocessor was fitted on (its input columns).
    pub fn input_schema(&self) -> &Schema {
        &self.repr.schema
    }

    pub fn options(&self) -> PreprocessOptions {
        self.repr.options
    }

    pub fn n_training_rows(&self) -> usize {
        self.repr.n_training_rows
    }

    /// [`RawTable::fingerprint`] of the training table (or what
    /// [`Self::set_training_fingerprint`] stored).
    pub fn training_fingerprint(&self) -> &str {
        &self.repr.training_fingerprint
    }

    /// Replaces the stored training fingerprint (e.g. by a file hash).
    pub fn set_training_fingerprint(&mut self, fingerprint: impl Into<String>) {
        self.repr.training_fingerprint = fingerprint.into();
    }

    /// Training categories of a categorical column, sorted.
    pub fn categories(&self, column: &str) -> Option<&[String]> {
        let i = self.repr.schema.index_of(column)?;
        match &self.repr.fitted[i] {
            Fitted::Categorical { categories } => Some(categories),
            Fitted::Numeric { .. } => None,
        }
    }

    /// Training statistics of a numeric or binary column.
    pub fn numeric_stats(&self, column: &str) -> Option<NumericStats> {
        let i = self.repr.schema.index_of(column)?;
        match &self.repr.fitted[i] {
            Fitted::Numeric { stats } => Some(*stats),
            Fitted::Categorical { .. } => None,
        }
    }

    /// Transforms every row of `table` (columns are matched by name; extra columns are
    /// ignored).
    pub fn transform(&self, table: &RawTable) -> Result<Matrix> {
        self.transform_with_report(table).map(|(m, _)| m)
    }

    /// [`Self::transform`], also reporting the unseen categories met.
    pub fn transform_with_report(&self, table: &RawTable) -> Result<(Matrix, UnseenReport)> {
        let nf = self.n_features();
        let n = table.n_rows();
        let mut out = Matrix::zeros(n, nf);
        let data = out.as_mut_slice();
        let mut report = UnseenReport::default();
        let mut unseen_counts = vec![0u64; self.plan.len()];
        for (ci, (spec, plan)) in self.repr.schema.columns.iter().zip(&self.plan).enumerate() {
            let col = table
                .column_by_name(&spec.name)
                .ok_or_else(|| TabularError::Mismatch {
                    column: spec.name.clone(),
                    expected: format!("a {} column (the preprocessor was fitted on it)", spec.kind),
                    found: "no such column in the table".into(),
                })?;
            match (plan, col) {
                (
                    &Plan::Numeric {
                        offset,
                        shift,
                        scale,
                        clip,
                    },
                    ColumnData::Numeric(v),
                ) => {
                    for (row, &x) in v.iter().enumerate() {
                        if !x.is_finite() {
                            return Err(TabularError::NotFinite {
                                row,
                                column: spec.name.clone(),
                                value: x,
                            });
                        }
                        data[row * nf + offset] = scale_value(x, shift, scale, clip);
                    }
                }
                (&Plan::Categorical { offset }, ColumnData::Categorical(c)) => {
                    let cats = self.categories_at(ci);
                    let map: Vec<Option<usize>> = c
                        .levels()
                        .iter()
                        .map(|l| cats.binary_search(l).ok())
                        .collect();
                    let mut per_level = vec![0u64; map.len()];
                    for (row, &code) in c.codes().iter().enumerate() {
                        match map[code as usize] {
                            Some(k) => data[row * nf + offset + k] = 1.0,
                            None => per_level[code as usize] += 1,
                        }
                    }
                    let rows: u64 = per_level.iter().sum();
                    if rows > 0 {
                        let mut values: Vec<(String, u64)> = c
                            .levels()
                            .iter()
                            .zip(&per_level)
                            .filter(|(_, n)| **n > 0)
                            .map(|(l, n)| (l.clone(), *n))
                            .collect();
                        let distinct = values.len();
                        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                        values.truncate(MAX_UNSEEN_VALUES);
                        report.columns.push(UnseenColumn {
                            column: spec.name.clone(),
                            rows,
                            distinct,
                            values,
                        });
                        unseen_counts[ci] = rows;
                    }
                }
                (_, col) => {
                    return Err(TabularError::Mismatch {
                        column: spec.name.clone(),
                        expected: format!("{} cells", spec.kind),
                        found: match col {
                            ColumnData::Numeric(_) => "numeric cells".into(),
                            ColumnData::Categorical(_) => "categorical cells".into(),
                        },
                    });
                }
            }
        }
        for (counter, n) in self.unseen.iter().zip(unseen_counts) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        Ok((out, report))
    }

    /// Transforms one row given in the order of [`Self::input_schema`].
    pub fn transform_row(&self, row: &[Cell<'_>]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.n_features()];
        self.transform_row_into(row, &mut out)?;
        Ok(out)
    }

    /// Transforms one row into `out` (length [`Self::n_features`]); returns how many of
    /// its cells were unseen categories (also added to [`Self::unseen_totals`]).
    pub fn transform_row_into(&self, row: &[Cell<'_>], out: &mut [f32]) -> Result<usize> {
        if row.len() != self.plan.len() {
            return Err(TabularError::InvalidArgument(format!(
                "a row of {} cells for a preprocessor of {} input columns",
                row.len(),
                self.plan.len()
            )));
        }
        if out.len() != self.n_features() {
            return Err(TabularError::InvalidArgument(format!(
                "an output of {} values for {} features",
                out.len(),
                self.n_features()
            )));
        }
        out.fill(0.0);
        let mut unseen = 0;
        for (ci, ((spec, plan), cell)) in self
            .repr
            .schema
            .columns
            .iter()
            .zip(&self.plan)
            .zip(row)
            .enumerate()
        {
            match (*plan, *cell) {
                (
                    Plan::Numeric {
                        offset,
                        shift,
                        scale,
                        clip,
                    },
                    Cell::Num(x),
                ) => {
                    if !x.is_finite() {
                        return Err(TabularError::NotFinite {
                            row: 0,
                            column: spec.name.clone(),
                            value: x,
                        });
                    }
                    out[offset] = scale_value(x, shift, scale, clip);
                }
                (Plan::Categorical { offset }, Cell::Cat(s)) => {
                    match self
                        .categories_at(ci)
                        .binary_search_by(|c| c.as_str().cmp(s))
                    {
                        Ok(k) => out[offset + k] = 1.0,
                        Err(_) => {
                            unseen += 1;
                            self.unseen[ci].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (_, cell) => {
                    return Err(TabularError::Mismatch {
                        column: spec.name.clone(),
                        expected: format!("a {} cell", spec.kind),
                        found: match cell {
                            Cell::Num(_) => "a number".into(),
                            Cell::Cat(_) => "a category (string)".into(),
                        },
                    });
                }
            }
        }
        Ok(unseen)
    }

    /// Unseen-category rows counted by every transform since this preprocessor was
    /// fitted or loaded (or since [`Self::reset_unseen_totals`]), per categorical column
    /// in schema order.
    pub fn unseen_totals(&self) -> Vec<(String, u64)> {
        self.repr
            .schema
            .columns
            .iter()
            .zip(&self.unseen)
            .filter(|(s, _)| s.kind == ColumnKind::Categorical)
            .map(|(s, n)| (s.name.clone(), n.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn reset_unseen_totals(&self) {
        for n in &self.unseen {
            n.store(0, Ordering::Relaxed);
        }
    }

    fn categories_at(&self, column: usize) -> &[String] {
        match &self.repr.fitted[column] {
            Fitted::Categorical { categories } => categories,
            Fitted::Numeric { .. } => &[],
        }
    }
}

/// A scale that is zero (or too small to divide by) becomes 1, as scikit-learn does.
fn non_zero(scale: f64) -> f64 {
    if scale < 10.0 * f64::EPSILON {
        1.0
    } else {
        scale
    }
}

fn scale_value(x: f64, shift: f64, scale: f64, clip: bool) -> f32 {
    let y = (x - shift) / scale;
    (if clip { y.clamp(0.0, 1.0) } else { y }) as f32
}

impl Clone for Preprocessor {
    fn clone(&self) -> Self {
        Self {
            repr: self.repr.clone(),
            plan: self.plan.clone(),
            feature_names: self.feature_names.clone(),
            unseen: self
                .unseen
                .iter()
                .map(|n| AtomicU64::new(n.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl PartialEq for Preprocessor {
    /// Equal when fitted identically (the unseen counters are not compared).
    fn eq(&self, other: &Self) -> bool {
        self.repr == other.repr
    }
}

impl Serialize for Preprocessor {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.repr.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Preprocessor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let repr = Repr::deserialize(d)?;
        Preprocessor::from_repr(repr).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ColumnSpec;

    fn table(rows: &[(f64, &str, f64)]) -> RawTable {
        let schema = Schema::new(vec![
            ColumnSpec::numeric("duration"),
            ColumnSpec::categorical("service"),
            ColumnSpec::binary("flag"),
        ])
        .unwrap();
        let mut t = RawTable::new(schema).unwrap();
        for &(a, b, c) in rows {
            t.push_row(&[Cell::Num(a), Cell::Cat(b), Cell::Num(c)], "normal")
                .unwrap();
        }
        t
    }

    fn train() -> RawTable {
        table(&[
            (0.0, "http", 0.0),
            (10.0, "ftp", 1.0),
            (5.0, "http", 1.0),
            (2.5, "smtp", 0.0),
        ])
    }

    #[test]
    fn min_max_and_one_hot() {
        let p = Preprocessor::fit(&train(), PreprocessOptions::default()).unwrap();
        assert_eq!(
            p.feature_names(),
            [
                "duration",
                "service=ftp",
                "service=http",
                "service=smtp",
                "flag"
            ]
        );
        assert_eq!(p.n_features(), 5);
        let m = p.transform(&train()).unwrap();
        assert_eq!(m.row(0), Some(&[0.0, 0.0, 1.0, 0.0, 0.0][..]));
        assert_eq!(m.row(1), Some(&[1.0, 1.0, 0.0, 0.0, 1.0][..]));
        assert_eq!(m.row(2), Some(&[0.5, 0.0, 1.0, 0.0, 1.0][..]));
        assert_eq!(m.row(3), Some(&[0.25, 0.0, 0.0, 1.0, 0.0][..]));
        // Outside the training range: not clipped by default, clipped on request.
        let test = table(&[(20.0, "http", 0.0), (-5.0, "http", 0.0)]);
        let m = p.transform(&test).unwrap();
        assert_eq!(m.get(0, 0), Some(2.0));
        assert_eq!(m.get(1, 0), Some(-0.5));
        let pc = Preprocessor::fit(&train(), PreprocessOptions::min_max().with_clip(true)).unwrap();
        let m = pc.transform(&test).unwrap();
        assert_eq!(m.get(0, 0), Some(1.0));
        assert_eq!(m.get(1, 0), Some(0.0));
    }

    #[test]
    fn constant_columns() {
        let t = table(&[(3.0, "a", 1.0), (3.0, "a", 1.0)]);
        for opts in [PreprocessOptions::min_max(), PreprocessOptions::standard()] {
            let p = Preprocessor::fit(&t, opts).unwrap();
            let m = p.transform(&t).unwrap();
            assert_eq!(m.row(0), Some(&[0.0, 1.0, 0.0][..]), "{opts:?}");
            // A test value off the constant is shifted, not divided by zero.
            let m = p.transform(&table(&[(5.0, "a", 0.0)])).unwrap();
            assert_eq!(m.row(0), Some(&[2.0, 1.0, -1.0][..]), "{opts:?}");
        }
    }

    #[test]
    fn standard_scaling_uses_population_std() {
        let p = Preprocessor::fit(&train(), PreprocessOptions::standard()).unwrap();
        let s = p.numeric_stats("duration").unwrap();
        assert_eq!(s.mean, 4.375);
        // np.std([0, 10, 5, 2.5])
        assert!((s.std - 3.697_549_864_437_26).abs() < 1e-12, "{}", s.std);
        let m = p.transform(&train()).unwrap();
        assert!((f64::from(m.get(1, 0).unwrap()) - (10.0 - 4.375) / s.std).abs() < 1e-6);
        // Binary column: mean 0.5, std 0.5.
        assert_eq!(m.get(0, 4), Some(-1.0));
        let p = Preprocessor::fit(
            &train(),
            PreprocessOptions::standard().with_scale_binary(false),
        )
        .unwrap();
        assert_eq!(p.transform(&train()).unwrap().get(0, 4), Some(0.0));
    }

    #[test]
    fn unseen_categories_are_zero_and_counted() {
        let p = Preprocessor::fit(&train(), PreprocessOptions::default()).unwrap();
        let test = table(&[
            (0.0, "telnet", 0.0),
            (0.0, "http", 0.0),
            (0.0, "telnet", 0.0),
            (0.0, "irc", 0.0),
        ]);
        let (m, report) = p.transform_with_report(&test).unwrap();
        assert_eq!(m.row(0), Some(&[0.0, 0.0, 0.0, 0.0, 0.0][..]));
        assert_eq!(m.row(1), Some(&[0.0, 0.0, 1.0, 0.0, 0.0][..]));
        let c = report.get("service").unwrap();
        assert_eq!(c.rows, 3);
        assert_eq!(c.distinct, 2);
        assert_eq!(
            c.values,
            [("telnet".to_string(), 2), ("irc".to_string(), 1)]
        );
        assert_eq!(report.total(), 3);
        assert_eq!(
            report.to_string(),
            "service: 3 rows, 2 distinct (\"telnet\"=2, \"irc\"=1)"
        );
        let row = p
            .transform_row(&[Cell::Num(1.0), Cell::Cat("gopher"), Cell::Num(0.0)])
            .unwrap();
        assert_eq!(row, [0.1, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(p.unseen_totals(), [("service".to_string(), 4)]);
        p.reset_unseen_totals();
        assert_eq!(p.unseen_totals(), [("service".to_string(), 0)]);
    }

    #[test]
    fn json_round_trip_gives_identical_output() {
        let p = Preprocessor::fit(&train(), PreprocessOptions::default()).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let q: Preprocessor = serde_json::from_str(&json).unwrap();
        assert_eq!(p, q);
        assert_eq!(q.feature_names(), p.feature_names());
        assert_eq!(q.training_fingerprint(), train().fingerprint());
        let test = table(&[(7.0, "ftp", 1.0), (1e9, "unseen", 0.0)]);
        let a = p.transform(&test).unwrap();
        let b = q.transform(&test).unwrap();
        assert_eq!(a, b);
        for i in 0..test.n_rows() {
            let row = test.row(i).unwrap();
            assert_eq!(q.transform_row(&row).unwrap(), a.row(i).unwrap());
        }
        let s = Preprocessor::fit(&train(), PreprocessOptions::standard()).unwrap();
        let s2: Preprocessor = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(s.transform(&test).unwrap(), s2.transform(&test).unwrap());
    }

    #[test]
    fn corrupt_stored_form_is_refused() {
        let p = Preprocessor::fit(&train(), PreprocessOptions::default()).unwrap();
        let mut v = serde_json::to_value(&p).unwrap();
        v["fitted"][1]["categories"] = serde_json::json!(["smtp", "ftp"]);
        let e = serde_json::from_value::<Preprocessor>(v).unwrap_err();
        assert!(e.to_string().contains("not sorted"), "{e}");
        let mut v = serde_json::to_value(&p).unwrap();
        v["format_version"] = serde_json::json!(99);
        assert!(serde_json::from_value::<Preprocessor>(v).is_err());
    }

    #[test]
    fn errors_not_panics() {
        let empty = table(&[]);
        assert!(matches!(
            Preprocessor::fit(&empty, PreprocessOptions::default()),
            Err(TabularError::EmptyTable)
        ));
        let nan = table(&[(f64::NAN, "a", 0.0)]);
        let e = Preprocessor::fit(&nan, PreprocessOptions::default()).unwrap_err();
        assert!(e.to_string().contains("column `duration`"), "{e}");
        let p = Preprocessor::fit(&train(), PreprocessOptions::default()).unwrap();
        assert!(p.transform(&nan).is_err());
        // Missing column, wrong kinds, wrong row length.
        let other = RawTable::new(Schema::new(vec![ColumnSpec::numeric("x")]).unwrap()).unwrap();
        let e = p.transform(&other).unwrap_err();
        assert!(e.to_string().contains("column `duration`"), "{e}");
        assert!(p.transform_row(&[Cell::Num(1.0)]).is_err());
        let e = p
            .transform_row(&[Cell::Num(1.0), Cell::Num(2.0), Cell::Num(0.0)])
            .unwrap_err();
        assert!(e.to_string().contains("column `service`"), "{e}");
    }

    #[test]
    fn columns_matched_by_name() {
        let p = Preprocessor::fit(&train(), PreprocessOptions::default()).unwrap();
        let schema = Schema::new(vec![
            ColumnSpec::binary("flag"),
            ColumnSpec::numeric("extra"),
            ColumnSpec::categorical("service"),
            ColumnSpec::numeric("duration"),
        ])
        .unwrap();
        let mut t = RawTable::new(schema).unwrap();
        t.push_row(
            &[
                Cell::Num(1.0),
                Cell::Num(99.0),
                Cell::Cat("smtp"),
                Cell::Num(5.0),
            ],
            "x",
        )
        .unwrap();
        let m = p.transform(&t).unwrap();
        assert_eq!(m.row(0), Some(&[0.5, 0.0, 0.0, 1.0, 1.0][..]));
    }
}
