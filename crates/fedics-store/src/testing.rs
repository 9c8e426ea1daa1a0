//! Disposable databases for tests (`cfg(test)` or the Cargo feature `testing`).
//!
//! A [`TestDb`] is an empty database of one engine that is removed when the `TestDb` is
//! dropped: on SQLite a file in a fresh temporary directory, on PostgreSQL a fresh schema
//! `fedics_t_<uuid>` in the database `FEDICS_TEST_PG_URL` names (default
//! [`DEFAULT_PG_URL`]), reached with `?options[search_path]=<schema>` so that the store's
//! migrations, tables and trigger functions all land in it. Tests running in parallel
//! therefore never see each other's rows.
//!
//! These helpers panic on failure (a test cannot proceed without its database).

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::{Engine, Store};

/// Both engines, for tests that run once per engine.
pub const ENGINES: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

/// The PostgreSQL database used when `FEDICS_TEST_PG_URL` is unset.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The environment variable naming the PostgreSQL database that test schemas are made in.
pub const PG_URL_VAR: &str = "FEDICS_TEST_PG_URL";

/// An empty database, removed on drop.
#[derive(Debug)]
pub struct TestDb {
    engine: Engine,
    url: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        /// The database the schema lives in (`FEDICS_TEST_PG_URL`).
        base_url: String,
        schema: String,
    },
}

impl TestDb {
    /// A fresh, empty database of `engine` (the store's migrations run when it is opened).
    ///
    /// # Panics
    ///
    /// When the temporary directory or the schema cannot be created (e.g. PostgreSQL does
    /// not answer at `FEDICS_TEST_PG_URL`).
    pub async fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = match tempfile::tempdir() {
                    Ok(dir) => dir,
                    Err(e) => panic!("test database: temporary directory: {e}"),
                };
                let url = format!("sqlite://{}", dir.path().join("fedics.db").display());
                TestDb {
                    engine,
                    url,
                    place: Place::Sqlite { dir },
                }
            }
            Engine::Postgres => {
                let base_url =
                    std::env::var(PG_URL_VAR).unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
                let schema = format!("fedics_t_{}", uuid::Uuid::new_v4().simple());
                // The name is ours (hex digits after a fixed prefix), quoted besides:
                // identifiers cannot be bound.
                let ddl = format!("CREATE SCHEMA \"{schema}\"");
                let mut conn = match connect(&base_url).await {
                    Ok(conn) => conn,
                    Err(e) => panic!("test database: connect to {base_url} ({PG_URL_VAR}): {e}"),
                };
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut conn).await {
                    panic!("test database: create schema {schema} in {base_url}: {e}");
                }
                let _ = conn.close().await;
                let sep = if base_url.contains('?') { '&' } else { '?' };
                let url = format!("{base_url}{sep}options[search_path]={schema}");
                TestDb {
                    engine,
                    url,
                    place: Place::Postgres { base_url, schema },
                }
            }
        }
    }

    /// The URL to give [`Store::open`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine of this database.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The SQLite file's path; `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.place {
            Place::Sqlite { dir } => Some(dir.path().join("fedics.db")),
            Place::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL schema; `None` on SQLite.
    pub fn schema(&self) -> Option<&str> {
        match &self.place {
            Place::Sqlite { .. } => None,
            Place::Postgres { schema, .. } => Some(schema),
        }
    }

    /// Opens the database (running the migrations).
    ///
    /// # Panics
    ///
    /// When [`Store::open`] fails.
    pub async fn open(&self) -> Store {
        match Store::open(&self.url).await {
            Ok(store) => store,
            Err(e) => panic!("test database: open {}: {e}", self.url),
        }
    }
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(url)?.connect().await
}

impl Drop for TestDb {
    /// SQLite: the temporary directory goes with its `TempDir`. PostgreSQL: the schema is
    /// dropped (`DROP SCHEMA … CASCADE`) from a thread of its own, since `drop` cannot
    /// await; a failure is reported on stderr, not raised.
    fn drop(&mut self) {
        let Place::Postgres { base_url, schema } = &self.place else {
            return;
        };
        let (base_url, schema) = (base_url.clone(), schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = connect(&base_url).await.map_err(|e| e.to_string())?;
                // Do not wait forever on a lock a leaked transaction still holds.
                let ddl =
                    format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                sqlx::raw_sql(AssertSqlSafe(ddl))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test database: drop schema {}: {e}", self.url),
            Err(_) => eprintln!(
                "test database: drop schema {}: the thread panicked",
                self.url
            ),
        }
    }
}
