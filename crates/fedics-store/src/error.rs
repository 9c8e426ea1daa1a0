//! Errors of the store, each naming the operation that failed.

/// An error of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("{op}: {source}")]
    Sqlx {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A value could not be written (e.g. a time outside years 0..=9999).
    #[error("{op}: cannot store {field}: {message}")]
    Encode {
        op: &'static str,
        field: &'static str,
        message: String,
    },
    /// A row with this unique key exists already (e.g. a user name taken).
    #[error("{op}: {what} {key:?} exists already")]
    Conflict {
        op: &'static str,
        what: &'static str,
        key: String,
    },
    /// A stored value could not be read back into its type.
    #[error("{op}: bad stored value in {column}: {message}")]
    Decode {
        op: &'static str,
        column: &'static str,
        message: String,
    },
}

impl StoreError {
    /// Whether retrying the same write can never succeed: the data itself is at fault (a
    /// value the store cannot represent, a constraint it violates), not the database's
    /// state. Writers split such a batch to find and reject the bad record.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Encode { .. } | StoreError::Conflict { .. } => true,
            StoreError::Sqlx {
                source: sqlx::Error::Database(db),
                ..
            } => !matches!(db.kind(), sqlx::error::ErrorKind::Other),
            _ => false,
        }
    }

    /// `map_err` adapter: wraps a `sqlx::Error` with the operation that failed.
    pub(crate) fn sqlx(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Sqlx { op, source }
    }

    pub(crate) fn decode(
        op: &'static str,
        column: &'static str,
        message: impl std::fmt::Display,
    ) -> StoreError {
        StoreError::Decode {
            op,
            column,
            message: message.to_string(),
        }
    }
}
