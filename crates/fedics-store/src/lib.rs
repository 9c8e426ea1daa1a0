//! # fedics-store
//!
//! Persistence of the pipeline's results: alerts with their sources (evidence), the flows
//! they cover, classifications, and predictions with their ranked techniques (plus the FL
//! round/client tables of the seeds' data model). SQLite (embedded) or PostgreSQL, chosen
//! by the URL given to [`Store::open`], through `sqlx` with migrations from
//! `migrations/sqlite` or `migrations/postgres` (the same tables and columns).
//!
//! Every query text is written once and compiled against both drivers (see `on_engine!`);
//! the engine is matched once per call, not per row.
//!
//! ## Writes are idempotent
//!
//! [`Store::apply`] writes a [`WriteBatch`] in one transaction. Every row has a stable key
//! (event ids, alert ids, UUIDv5 ids derived with [`fedics_core::ids::derive`]) and every
//! upsert merges commutatively (min/max, or "the greatest merge key wins"), so applying the
//! same events again, or in another order, leaves the tables exactly as they were. See
//! [`Store::apply`] for the alert merge rules.
//!
//! ## Counters and the change feed
//!
//! `alert_counters` holds the number of alerts per (facility, severity, status), kept exact
//! by triggers on `alerts` (PL/pgSQL functions on PostgreSQL): [`Store::alert_stats`] and
//! the totals of [`Store::list_alerts`] without text or time filters read it instead of
//! counting alerts. Writers announce what they committed on [`Store::subscribe_changes`].
//!
//! ## Representation (the same on both engines)
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
//!   engines accept. On PostgreSQL integers are `BIGINT`, reals `DOUBLE PRECISION`, flags
//!   `BOOLEAN` (SQLite: `INTEGER` 0/1) and text `COLLATE "C"`, so text compares bytewise as
//!   in SQLite.

mod auth;
mod error;
mod fl;
mod model;
mod read;
mod rendered;
mod retention;
mod time;
mod write;

#[cfg(test)]
mod auth_fl_tests;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use auth::{
    ApiKeyRow, AuditEntry, AuditPage, AuditQuery, AuditRow, NewApiKey, NewUser, ParseEnumError,
    Role, UserRow,
};
pub use error::StoreError;
pub use fl::{
    ClientStatus, FlClientRow, FlClientUpdate, FlDpSettings, FlFederationRow, FlRoundCompletion,
    FlRoundRow, FlRoundUpdate, NewFlRound, PrivacyEntry, RoundPhase, RoundStatus,
};
pub use model::{
    AlertDetail, AlertPage, AlertQuery, AlertRow, AlertSourceRow, AlertStats, ClassificationRecord,
    PredictionRow, StoredFlow, TechniqueSeen, WriteBatch,
};
pub use retention::{Retention, RetentionReport};
pub use time::truncate as truncate_time;
pub use write::{predicted_technique_id, source_id};

/// Migrations of the SQLite schema, embedded at compile time.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations of the PostgreSQL schema (same tables and columns), embedded at compile time.
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a connection waits for another writer before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of a file database (WAL: many readers, one writer at a time).
const MAX_CONNECTIONS: u32 = 8;

/// Connections to a PostgreSQL server.
const PG_MAX_CONNECTIONS: u32 = 16;

/// PostgreSQL: taken (for the rest of the transaction) by every transaction that writes
/// `alerts`, before it touches any row. Alert writers therefore run one at a time, as on
/// SQLite's single writer: the `alert_counters` triggers cannot deadlock on counter rows
/// locked in different orders, and `apply`'s "did this alert exist" check is exact. The
/// key is per schema, so stores in different schemas of one database do not wait on each
/// other.
pub(crate) const PG_ALERT_WRITE_LOCK: &str =
    "SELECT pg_advisory_xact_lock(16700869, hashtext(current_schema()))";

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine a URL names: `postgres://`/`postgresql://` is PostgreSQL; `sqlite:…` or a
    /// bare path is SQLite.
    pub fn of_url(url: &str) -> Engine {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// The pools of one engine.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite {
        /// Readers (WAL lets them run beside the writer).
        pool: SqlitePool,
        /// The one writer connection: writers queue here, in process, instead of contending
        /// for SQLite's write lock (whose busy handler backs off by sleeping).
        writer: SqlitePool,
    },
    Postgres {
        /// Readers and writers alike (PostgreSQL locks rows, not the database).
        pool: PgPool,
    },
}

/// Runs `$body` once per engine, with `$DB` the engine's `sqlx::Database` type, `$pool` the
/// pool to read from, `$writer` the pool to write with and `$begin` the statement that
/// opens a write transaction (`BEGIN IMMEDIATE` on SQLite, so a writer takes the write lock
/// up front instead of failing to upgrade later). Every query text is written once, with
/// `$n` placeholders, and compiles against both drivers: no dynamic dispatch per row.
macro_rules! on_engine {
    ($store:expr, |$DB:ident, $pool:ident, $writer:ident, $begin:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite {
                pool: $pool,
                writer: $writer,
            } => {
                #[allow(dead_code)]
                type $DB = ::sqlx::Sqlite;
                #[allow(unused_variables)]
                let $begin = "BEGIN IMMEDIATE";
                $body
            }
            $crate::Db::Postgres { pool: $pool } => {
                #[allow(dead_code)]
                type $DB = ::sqlx::Postgres;
                #[allow(unused_variables)]
                let $writer = $pool;
                #[allow(unused_variables)]
                let $begin = "BEGIN";
                $body
            }
        }
    };
}
pub(crate) use on_engine;

/// What changed in the store, announced on [`Store::subscribe_changes`] only after the
/// transaction that made the change has committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An alert (incident) id that did not exist before the transaction.
    AlertCreated(uuid::Uuid),
    /// An existing alert was merged with new updates, or its status was set.
    AlertUpdated(uuid::Uuid),
    /// A prediction was stored for the first time.
    PredictionCreated(uuid::Uuid),
    /// A prediction's validation changed.
    PredictionUpdated(uuid::Uuid),
    /// A federated-learning round (by row id) was created or changed.
    FlRound(i64),
    /// A federated-learning client row (by id) was created or changed.
    FlClient(String),
}

/// Changes buffered per subscriber before it starts missing them (`Lagged`).
const CHANGE_CAPACITY: usize = 4096;

/// Handle on the database. Cheap to clone: clones share the connection pools and the
/// change feed.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Alert list entries rendered before, by id and version.
    pub(crate) rendered: std::sync::Arc<rendered::RenderedAlerts>,
}

impl Store {
    /// Opens the database a URL names and runs its engine's migrations:
    ///
    /// * `postgres://user@host:port/db` (or `postgresql://`; every option of libpq-style
    ///   URLs that sqlx understands, e.g. `?options[search_path]=schema`): PostgreSQL,
    ///   migrations from `migrations/postgres`;
    /// * `sqlite://path`, any other `sqlite:` URL, or a bare file path: SQLite (created if
    ///   absent) with WAL journal, `synchronous = NORMAL`, a busy timeout and foreign keys
    ///   on, migrations from `migrations/sqlite`. An in-memory URL (`sqlite::memory:`) is
    ///   served by a single connection kept open for the life of the pool, since every
    ///   SQLite connection to `:memory:` has its own database.
    pub async fn open(url_or_path: &str) -> Result<Self, StoreError> {
        match Engine::of_url(url_or_path) {
            Engine::Postgres => Self::open_postgres(url_or_path).await,
            Engine::Sqlite => Self::open_sqlite(url_or_path).await,
        }
    }

    fn with_db(db: Db) -> Self {
        let (changes, _) = tokio::sync::broadcast::channel(CHANGE_CAPACITY);
        Self {
            db,
            changes,
            rendered: std::sync::Arc::new(rendered::RenderedAlerts::new()),
        }
    }

    /// A receiver of every [`Change`] committed from now on (by this process's handles on
    /// the store). A subscriber that falls more than a few thousand changes behind gets
    /// `RecvError::Lagged` and should resynchronise from the tables.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Announces committed changes (call only after the commit). Nobody listening is fine.
    pub(crate) fn notify(&self, changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            let _ = self.changes.send(c);
        }
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        match self.db {
            Db::Sqlite { .. } => Engine::Sqlite,
            Db::Postgres { .. } => Engine::Postgres,
        }
    }

    async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(StoreError::sqlx("open: parse database url"))?;
        // Every statement is prepared once per connection (sqlx's cache) and is an indexed
        // lookup whose best plan does not depend on its parameters; with the default
        // `auto` mode PostgreSQL keeps planning the alert page (LIMIT/OFFSET parameters)
        // afresh on every execution, which was half its CPU per request. A URL that sets
        // `plan_cache_mode` itself keeps its value.
        if !url.contains("plan_cache_mode") {
            options = options.options([("plan_cache_mode", "force_generic_plan")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(PG_MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::sqlx("open: connect"))?;
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        tracing::debug!(target: "fedics_store", engine = "postgres", "store opened");
        Ok(Self::with_db(Db::Postgres { pool }))
    }

    async fn open_sqlite(url_or_path: &str) -> Result<Self, StoreError> {
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
        SQLITE_MIGRATOR
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
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
        Ok(Self::with_db(Db::Sqlite { pool, writer }))
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(StoreError::sqlx("ping"))?;
        });
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { pool, writer } => {
                writer.close().await;
                pool.close().await;
            }
            Db::Postgres { pool } => pool.close().await,
        }
    }
}
