//! The raw table every reader returns: a [`Schema`], column-oriented cells and one
//! label per row.
//!
//! Numeric cells are stored as `f64` (no per-cell allocation); categorical cells are
//! dictionary-encoded per column (each distinct string is stored once).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TabularError};
use crate::fingerprint::Fnv1a64;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// A number, scaled by the preprocessor.
    Numeric,
    /// A string, one-hot encoded by the preprocessor.
    Categorical,
    /// A number that is 0 or 1. Stored like a numeric column; the preprocessor scales it
    /// like one unless [`crate::PreprocessOptions::scale_binary`] is off.
    Binary,
}

impl ColumnKind {
    /// Whether cells of this kind are numbers (numeric and binary columns).
    pub fn is_numeric(self) -> bool {
        !matches!(self, ColumnKind::Categorical)
    }

    /// The kind's name as written in a schema (`numeric`, `categorical`, `binary`).
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Categorical => "categorical",
            ColumnKind::Binary => "binary",
        }
    }
}

impl std::fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One column of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, kind: ColumnKind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }

    pub fn numeric(name: impl Into<String>) -> Self {
        Self::new(name, ColumnKind::Numeric)
    }

    pub fn categorical(name: impl Into<String>) -> Self {
        Self::new(name, ColumnKind::Categorical)
    }

    pub fn binary(name: impl Into<String>) -> Self {
        Self::new(name, ColumnKind::Binary)
    }
}

/// The feature columns of a table, in order (the label is not a column).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Schema {
    pub columns: Vec<ColumnSpec>,
}

impl Schema {
    /// A schema with the given columns; names must be unique and non-empty.
    pub fn new(columns: Vec<ColumnSpec>) -> Result<Self> {
        let s = Self { columns };
        s.validate()?;
        Ok(s)
    }

    /// Checks that there is at least one column and that names are unique and non-empty.
    pub fn validate(&self) -> Result<()> {
        if self.columns.is_empty() {
            return Err(TabularError::Schema("no columns".into()));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.columns.len());
        for c in &self.columns {
            if c.name.is_empty() {
                return Err(TabularError::Schema("a column has an empty name".into()));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(TabularError::Schema(format!(
                    "duplicate column name `{}`",
                    c.name
                )));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Position of the column with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn get(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }
}

/// One cell, borrowed: a number or a category.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Num(f64),
    Cat(&'a str),
}

impl Cell<'_> {
    fn kind_name(&self) -> &'static str {
        match self {
            Cell::Num(_) => "a number",
            Cell::Cat(_) => "a category (string)",
        }
    }
}

/// A dictionary-encoded string column: `levels` in order of first appearance and one
/// code (index into `levels`) per row.
#[derive(Debug, Clone, Default)]
pub struct CategoricalColumn {
    levels: Vec<String>,
    codes: Vec<u32>,
    index: HashMap<String, u32>,
}

impl CategoricalColumn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct values, in order of first appearance.
    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    /// One index into [`Self::levels`] per row.
    pub fn codes(&self) -> &[u32] {
        &self.codes
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The value of a row, if the row exists.
    pub fn get(&self, row: usize) -> Option<&str> {
        self.codes
            .get(row)
            .and_then(|&c| self.levels.get(c as usize))
            .map(String::as_str)
    }

    /// Appends a value; allocates only the first time a value is seen.
    pub fn push(&mut self, value: &str) {
        let code = match self.index.get(value) {
            Some(&c) => c,
            None => {
                // More than u32::MAX distinct values cannot occur in memory-sized tables.
                let c = u32::try_from(self.levels.len()).unwrap_or(u32::MAX);
                self.levels.push(value.to_owned());
                self.index.insert(value.to_owned(), c);
                c
            }
        };
        self.codes.push(code);
    }
}

impl PartialEq for CategoricalColumn {
    /// Equal when the row values are equal, whatever the dictionary order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.get(i) == other.get(i))
    }
}

/// The cells of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Numeric(Vec<f64>),
    Categorical(CategoricalColumn),
}

impl ColumnData {
    fn for_kind(kind: ColumnKind, capacity: usize) -> Self {
        if kind.is_numeric() {
            ColumnData::Numeric(Vec::with_capacity(capacity))
        } else {
            ColumnData::Categorical(CategoricalColumn {
                codes: Vec::with_capacity(capacity),
                ..CategoricalColumn::default()
            })
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell of a row, if the row exists.
    pub fn cell(&self, row: usize) -> Option<Cell<'_>> {
        match self {
            ColumnData::Numeric(v) => v.get(row).map(|&x| Cell::Num(x)),
            ColumnData::Categorical(c) => c.get(row).map(Cell::Cat),
        }
    }

    fn storage_name(&self) -> &'static str {
        match self {
            ColumnData::Numeric(_) => "numeric cells",
            ColumnData::Categorical(_) => "categorical cells",
        }
    }
}

/// Rows of feature cells with a label per row. Columns follow [`RawTable::schema`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawTable {
    schema: Schema,
    columns: Vec<ColumnData>,
    labels: Vec<String>,
}

impl RawTable {
    /// An empty table with this schema.
    pub fn new(schema: Schema) -> Result<Self> {
        Self::with_capacity(schema, 0)
    }

    /// An empty table with room for `rows` rows.
    pub fn with_capacity(schema: Schema, rows: usize) -> Result<Self> {
        schema.validate()?;
        let columns = schema
            .columns
            .iter()
            .map(|c| ColumnData::for_kind(c.kind, rows))
            .collect();
        Ok(Self {
            schema,
            columns,
            labels: Vec::with_capacity(rows),
        })
    }

    /// A table from whole columns; each column must match its spec's kind and every
    /// column must have one cell per label.
    pub fn from_columns(
        schema: Schema,
        columns: Vec<ColumnData>,
        labels: Vec<String>,
    ) -> Result<Self> {
        schema.validate()?;
        if columns.len() != schema.len() {
            return Err(TabularError::Schema(format!(
                "{} columns given for a schema of {}",
                columns.len(),
                schema.len()
            )));
        }
        for (spec, col) in schema.columns.iter().zip(&columns) {
            let ok = matches!(
                (spec.kind.is_numeric(), col),
                (true, ColumnData::Numeric(_)) | (false, ColumnData::Categorical(_))
            );
            if !ok {
                return Err(TabularError::Mismatch {
                    column: spec.name.clone(),
                    expected: format!("{} cells", spec.kind),
                    found: col.storage_name().into(),
                });
            }
            if col.len() != labels.len() {
                return Err(TabularError::Mismatch {
                    column: spec.name.clone(),
                    expected: format!("{} cells (one per label)", labels.len()),
                    found: format!("{} cells", col.len()),
                });
            }
        }
        Ok(Self {
            schema,
            columns,
            labels,
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// One label per row.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn columns(&self) -> &[ColumnData] {
        &self.columns
    }

    pub fn column(&self, index: usize) -> Option<&ColumnData> {
        self.columns.get(index)
    }

    pub fn column_by_name(&self, name: &str) -> Option<&ColumnData> {
        self.schema.index_of(name).and_then(|i| self.columns.get(i))
    }

    /// The cell at (row, column), if both exist.
    pub fn cell(&self, row: usize, column: usize) -> Option<Cell<'_>> {
        self.columns.get(column).and_then(|c| c.cell(row))
    }

    /// The cells of a row in schema order, if the row exists.
    pub fn row(&self, row: usize) -> Option<Vec<Cell<'_>>> {
        self.columns.iter().map(|c| c.cell(row)).collect()
    }

    /// Appends a row (cells in schema order). Nothing is appended on error.
    pub fn push_row(&mut self, cells: &[Cell<'_>], label: impl Into<String>) -> Result<()> {
        if cells.len() != self.schema.len() {
            return Err(TabularError::Schema(format!(
                "a row of {} cells for a schema of {} columns",
                cells.len(),
                self.schema.len()
            )));
        }
        for (spec, cell) in self.schema.columns.iter().zip(cells) {
            let ok = matches!(
                (spec.kind.is_numeric(), cell),
                (true, Cell::Num(_)) | (false, Cell::Cat(_))
            );
            if !ok {
                return Err(TabularError::Mismatch {
                    column: spec.name.clone(),
                    expected: format!("a {} cell", spec.kind),
                    found: cell.kind_name().into(),
                });
            }
        }
        for (col, cell) in self.columns.iter_mut().zip(cells) {
            match (col, cell) {
                (ColumnData::Numeric(v), Cell::Num(x)) => v.push(*x),
                (ColumnData::Categorical(c), Cell::Cat(s)) => c.push(s),
                // Excluded by the check above.
                _ => {}
            }
        }
        self.labels.push(label.into());
        Ok(())
    }

    /// A new table with the given rows, in the given order (repeats allowed).
    pub fn select_rows(&self, rows: &[usize]) -> Result<RawTable> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n_rows()) {
            return Err(TabularError::InvalidArgument(format!(
                "row {bad} is out of range (the table has {} rows)",
                self.n_rows()
            )));
        }
        let columns = self
            .columns
            .iter()
            .map(|col| match col {
                ColumnData::Numeric(v) => ColumnData::Numeric(rows.iter().map(|&r| v[r]).collect()),
                ColumnData::Categorical(c) => {
                    let mut out = CategoricalColumn {
                        codes: Vec::with_capacity(rows.len()),
                        ..CategoricalColumn::default()
                    };
                    for &r in rows {
                        out.push(&c.levels[c.codes[r] as usize]);
                    }
                    ColumnData::Categorical(out)
                }
            })
            .collect();
        Ok(RawTable {
            schema: self.schema.clone(),
            columns,
            labels: rows.iter().map(|&r| self.labels[r].clone()).collect(),
        })
    }

    /// Number of rows per label, sorted by label.
    pub fn label_counts(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for l in &self.labels {
            *m.entry(l.as_str()).or_insert(0) += 1;
        }
        m
    }

    /// FNV-1a 64 over the table's content (column names and kinds, every cell, every
    /// label), as 16 hex digits. Independent of the file format and of the dictionary
    /// order, so the same data read from `.csv` or `.csv.gz` has the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let mut h = Fnv1a64::new();
        h.update(&(self.n_rows() as u64).to_le_bytes());
        for (spec, col) in self.schema.columns.iter().zip(&self.columns) {
            h.update(spec.name.as_bytes());
            h.update(&[0xff, spec.kind as u8]);
            match col {
                ColumnData::Numeric(v) => {
                    for x in v {
                        h.update(&x.to_bits().to_le_bytes());
                    }
                }
                ColumnData::Categorical(c) => {
                    for &code in &c.codes {
                        h.update(c.levels[code as usize].as_bytes());
                        h.update(&[0xff]);
                    }
                }
            }
        }
        for l in &self.labels {
            h.update(l.as_bytes());
            h.update(&[0xff]);
        }
        h.hex()
    }

    /// For readers: the columns and labels, to push a row cell by cell. The caller keeps
    /// every column and the labels at the same length.
    pub(crate) fn parts_mut(&mut self) -> (&mut [ColumnData], &mut Vec<String>) {
        (&mut self.columns, &mut self.labels)
    }

    /// For readers: drops the cells pushed after the first `rows` rows (a row that turned
    /// out to be invalid half-way).
    pub(crate) fn truncate(&mut self, rows: usize) {
        for c in &mut self.columns {
            match c {
                ColumnData::Numeric(v) => v.truncate(rows),
                ColumnData::Categorical(c) => c.codes.truncate(rows),
            }
        }
        self.labels.truncate(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![ColumnSpec::numeric("a"), ColumnSpec::categorical("b")]).unwrap()
    }

    #[test]
    fn schema_rejects_duplicates_and_empty() {
        assert!(Schema::new(vec![]).is_err());
        let e = Schema::new(vec![ColumnSpec::numeric("x"), ColumnSpec::binary("x")]).unwrap_err();
        assert!(e.to_string().contains("duplicate column name `x`"), "{e}");
    }

    #[test]
    fn push_and_read_back() {
        let mut t = RawTable::new(schema()).unwrap();
        t.push_row(&[Cell::Num(1.5), Cell::Cat("x")], "normal")
            .unwrap();
        t.push_row(&[Cell::Num(2.0), Cell::Cat("y")], "attack")
            .unwrap();
        t.push_row(&[Cell::Num(3.0), Cell::Cat("x")], "normal")
            .unwrap();
        assert_eq!(t.n_rows(), 3);
        assert_eq!(t.cell(2, 1), Some(Cell::Cat("x")));
        assert_eq!(t.row(1), Some(vec![Cell::Num(2.0), Cell::Cat("y")]));
        assert_eq!(t.row(3), None);
        let ColumnData::Categorical(c) = &t.columns()[1] else {
            panic!("categorical expected")
        };
        assert_eq!(c.levels(), ["x", "y"]);
        assert_eq!(c.codes(), [0, 1, 0]);
        assert_eq!(t.label_counts().get("normal"), Some(&2));
    }

    #[test]
    fn push_row_checks_kinds_and_is_atomic() {
        let mut t = RawTable::new(schema()).unwrap();
        let e = t
            .push_row(&[Cell::Cat("1"), Cell::Cat("x")], "l")
            .unwrap_err();
        assert!(e.to_string().contains("column `a`"), "{e}");
        assert!(t.push_row(&[Cell::Num(1.0)], "l").is_err());
        assert_eq!(t.n_rows(), 0);
        assert!(t.columns().iter().all(ColumnData::is_empty));
    }

    #[test]
    fn select_and_fingerprint() {
        let mut t = RawTable::new(schema()).unwrap();
        for i in 0..5 {
            t.push_row(
                &[
                    Cell::Num(f64::from(i)),
                    Cell::Cat(["p", "q"][i as usize % 2]),
                ],
                "n",
            )
            .unwrap();
        }
        let s = t.select_rows(&[4, 1]).unwrap();
        assert_eq!(s.row(0), Some(vec![Cell::Num(4.0), Cell::Cat("p")]));
        assert_eq!(s.row(1), Some(vec![Cell::Num(1.0), Cell::Cat("q")]));
        assert!(t.select_rows(&[5]).is_err());
        let all = t.select_rows(&[0, 1, 2, 3, 4]).unwrap();
        assert_eq!(all, t);
        assert_eq!(all.fingerprint(), t.fingerprint());
        assert_ne!(s.fingerprint(), t.fingerprint());
        assert_eq!(t.fingerprint().len(), 16);
    }

    #[test]
    fn from_columns_checks_lengths() {
        let ok = RawTable::from_columns(
            schema(),
            vec![
                ColumnData::Numeric(vec![1.0]),
                ColumnData::Categorical({
                    let mut c = CategoricalColumn::new();
                    c.push("x");
                    c
                }),
            ],
            vec!["l".into()],
        );
        assert!(ok.is_ok());
        let bad = RawTable::from_columns(
            schema(),
            vec![
                ColumnData::Numeric(vec![1.0, 2.0]),
                ColumnData::Numeric(vec![1.0]),
            ],
            vec!["l".into()],
        );
        assert!(bad.is_err());
    }
}
