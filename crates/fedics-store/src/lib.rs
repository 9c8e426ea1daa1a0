//! # fedics-store
//!
//! Persistence of the pipeline's results: alerts with their sources (evidence), the flows
//! they cover, classifications, and predictions with their ranked techniques (plus the FL
//! round/client tables of the seeds' data model). SQLite, embedded, through `sqlx` with
//! migrations from `migrations/sqlite`.
//!
//! ## Writes are idempotent
//!
//! [`Store::apply`] writes a [`WriteBatch`] in one transaction. Every row has a stable key
//! (event ids, alert ids, UUIDv5 ids derived with [`fedics_core::ids::derive`]) and every
//! upsert merges commutatively (min/max, or "the greatest merge key wins"), so applying the
//! same events again, or in another order, leaves the tables exactly as they were. See
//! [`Store::apply`] for the alert merge rules.
//!
//! ## Representation (kept portable for a PostgreSQL backend)
//!
//! * Ids are `TEXT` uuids (hyphenated, lowercase).
//! * **Timestamps are `TEXT`, UTC, RFC 3339 with exactly six fractional digits and a `Z`**
//!   (`2024-05-01T12:00:00.000000Z`, always 27 characters). Fixed width makes text order equal
//!   time order, so `MIN`/`MAX`, range filters and `ORDER BY` work on the column. Stored
//!   times are therefore truncated to microseconds (PostgreSQL's `timestamptz` precision).
//!   Flow records keep their exact times: they are stored whole, as JSON.
//! * JSON documents (`context_analysis`, `tactic_ids`, `model_versions`, evidence, flow
//!   records) are `TEXT`.
//! * SQL uses `$n` bind parameters and `INSERT … ON CONFLICT … DO UPDATE/NOTHING`, which both
//!   engines accept.

mod error;
mod model;
mod read;
mod time;
mod write;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use error::StoreError;
pub use model::{
    AlertDetail, AlertPage, AlertQuery, AlertRow, AlertSourceRow, AlertStats, ClassificationRecord,
    PredictionRow, StoredFlow, WriteBatch,
};
pub use time::truncate as truncate_time;
pub use write::{predicted_technique_id, source_id};

/// Migrations of the SQLite schema, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another writer before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of a file database (WAL: many readers, one writer at a time).
const MAX_CONNECTIONS: u32 = 8;

/// Handle on the database. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// The one writer connection: writers queue here, in process, instead of contending
    /// for SQLite's write lock (whose busy handler backs off by sleeping).
    writer: SqlitePool,
}

impl Store {
    /// Opens (creating if absent) `sqlite://path` (any `sqlite:` URL) or a bare file path,
    /// with WAL journal, `synchronous = NORMAL`, a busy timeout and foreign keys on, and
    /// runs the migrations from `migrations/sqlite`.
    ///
    /// An in-memory URL (`sqlite::memory:`) is served by a single connection kept open for
    /// the life of the pool, since every SQLite connection to `:memory:` has its own database.
    pub async fn open(url_or_path: &str) -> Result<Self, StoreError> {
        let memory = url_or_path.contains(":memory:") || url_or_path.contains("mode=memory");
        let options = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path)
                .map_err(StoreError::sqlx("open: parse database url"))?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // 64 MiB page cache, and checkpoints every ~40 MiB of WAL instead of 4 MiB:
            // bursts of alerts then cost one fsync per checkpoint, not dozens.
            .pragma("cache_size", "-65536")
            .pragma("wal_autocheckpoint", "10000")
            .pragma("temp_store", "memory");
        let pool_options = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options
            .connect_with(options.clone())
            .await
            .map_err(StoreError::sqlx("open: connect"))?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        let writer = if memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(StoreError::sqlx("open: connect writer"))?
        };
        tracing::debug!(target: "fedics_store", database = url_or_path, "store opened");
        Ok(Self { pool, writer })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::sqlx("ping"))?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}
