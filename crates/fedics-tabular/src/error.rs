//! The error type of the readers, the table and the preprocessor.
//!
//! Errors about a file name the file, the 1-based line (as a text editor counts) and
//! the column, and say what was expected and what was found, in the form
//! `FILE:LINE: column `NAME`: expected ..., found ...`.

use std::path::PathBuf;

/// Errors of this crate (metrics have their own [`crate::metrics::MetricError`]).
#[derive(Debug, thiserror::Error)]
pub enum TabularError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A CSV syntax or I/O error reported by the CSV parser.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Csv {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },

    #[error("{}: empty file: expected a header row", path.display())]
    EmptyFile { path: PathBuf },

    #[error("{}: no data rows", path.display())]
    NoRows { path: PathBuf },

    #[error("{}:{line}: expected {expected} comma-separated fields, found {found}", path.display())]
    FieldCount {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },

    #[error("{}:{line}: column `{column}`: expected {expected}, found `{value}`", path.display())]
    BadValue {
        path: PathBuf,
        line: u64,
        column: String,
        expected: String,
        value: String,
    },

    #[error(
        "{}:{line}: column `{column}`: found `{value}` (NaN, infinite or empty); \
         expected a finite number (choose NonFinitePolicy::ReplaceWithZero or DropRow to accept such cells)",
        path.display()
    )]
    NonFinite {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },

    #[error("{}: missing column `{column}` (required by {required_by})", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        required_by: String,
    },

    #[error(
        "{}:{line}: column `label`: unknown attack label `{label}` (not in the attack category table {table})",
        path.display()
    )]
    UnknownAttack {
        path: PathBuf,
        line: u64,
        label: String,
        table: String,
    },

    #[error("{}:{line}: {message}", path.display())]
    BadCategoryTable {
        path: PathBuf,
        line: u64,
        message: String,
    },

    #[error("{}:{line}: invalid flow record: {source}", path.display())]
    BadFlow {
        path: PathBuf,
        line: u64,
        #[source]
        source: fedics_core::DecodeError,
    },

    /// A schema that is not usable (duplicate names, no columns).
    #[error("invalid schema: {0}")]
    Schema(String),

    /// A table or row that does not match the schema the preprocessor was fitted on.
    #[error("column `{column}`: expected {expected}, found {found}")]
    Mismatch {
        column: String,
        expected: String,
        found: String,
    },

    /// A value that cannot be used to fit or transform (NaN or infinite).
    #[error("row {row}, column `{column}`: expected a finite number, found {value}")]
    NotFinite {
        row: usize,
        column: String,
        value: f64,
    },

    #[error("cannot fit on an empty table (no rows)")]
    EmptyTable,

    /// A stored preprocessor that is internally inconsistent.
    #[error("invalid preprocessor: {0}")]
    InvalidModel(String),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = TabularError> = std::result::Result<T, E>;
