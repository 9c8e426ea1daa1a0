//! # fedics-tabular: tabular data for every FedICS model
//!
//! What the Isolation Forest, the autoencoders and the classifier share, so that each
//! model trains and evaluates on the same features:
//!
//! * [`table`]: [`Schema`] (columns: numeric, categorical, binary) and [`RawTable`], the
//!   rows every reader returns (numeric cells as `f64`, categorical cells
//!   dictionary-encoded, one label per row).
//! * [`preprocess`]: [`Preprocessor`], fitted on training rows only: one-hot encoding
//!   (sorted categories; an unseen category encodes as zeros and is counted) and
//!   min-max or standard scaling, to a row-major `f32` [`Matrix`]. It serialises with
//!   serde, to be stored inside model files. On NSL-KDD it gives the 122 features of
//!   the reference scikit-learn pipeline.
//! * Readers, with errors naming the file, the 1-based line, the column and the value:
//!   [`nslkdd`] (NSL-KDD with its attack categories), [`csv_table`] (any labelled CSV,
//!   e.g. CIC-IDS, with an explicit policy for `NaN`/`Infinity`/empty cells) and
//!   [`flows`] (our flow JSON Lines, with the 18 [`flow_features`]). Plain or gzip files.
//! * [`metrics`]: ROC AUC, threshold metrics, accuracy, confusion matrix, macro F1,
//!   per-class recall, quantiles, with scikit-learn / NumPy semantics.
//! * [`windows`]: sliding windows of rows per key in time order, for sequence models.
//! * [`fingerprint`]: FNV-1a 64 hashes for a model's training data hash.
//! * [`modelfile`]: the versioned, checksummed container of every model file.
//!
//! Library code never panics on input data: every problem is a [`TabularError`] (or a
//! [`metrics::MetricError`]).

pub mod csv_table;
pub mod error;
pub mod fingerprint;
pub mod flows;
pub mod io;
pub mod matrix;
pub mod metrics;
pub mod modelfile;
pub mod nslkdd;
pub mod preprocess;
pub mod table;
pub mod windows;

pub use csv_table::{
    CsvOptions, CsvReport, CsvTable, NonFiniteCounts, NonFinitePolicy, infer_csv_schema, read_csv,
    read_csv_with_schema,
};
pub use error::{Result, TabularError};
pub use fingerprint::{Fnv1a64, fingerprint_bytes, fingerprint_file};
pub use flows::{
    BadLinePolicy, FLOW_FEATURE_NAMES, FlowReadOptions, FlowReport, FlowTable, N_FLOW_FEATURES,
    flow_features, flow_key, flow_label, flow_schema, read_flows,
};
pub use matrix::Matrix;
pub use modelfile::{ModelFile, ModelFileError, ModelMeta};
pub use nslkdd::{
    AttackCategory, AttackCategoryTable, CategorySource, NslKdd, NslKddOptions, nsl_kdd_schema,
    read_nsl_kdd, read_nsl_kdd_with,
};
pub use preprocess::{NumericStats, PreprocessOptions, Preprocessor, Scaling, UnseenReport};
pub use table::{CategoricalColumn, Cell, ColumnData, ColumnKind, ColumnSpec, RawTable, Schema};
pub use windows::{Windows, sliding_windows};
