//! Users, API keys and the audit log of the API server.
//!
//! The store keeps hashes only (the caller hashes passwords and key secrets); it checks
//! nothing but uniqueness and the allowed roles.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, FromRow};
use uuid::Uuid;

use crate::{Store, StoreError, on_engine, time};

/// A text value that names none of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {}", .allowed.join(", "))]
pub struct ParseEnumError {
    /// What was parsed (e.g. `"role"`).
    pub what: &'static str,
    /// The text that was given.
    pub value: String,
    /// The texts that name a variant.
    pub allowed: &'static [&'static str],
}

/// Declares a fieldless enum stored and serialised as fixed texts, with `as_str`,
/// `Display`, `FromStr` (naming the allowed values on error) and `ALL`. The variants are
/// ordered as declared.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every variant, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and serialised) text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::auth::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::auth::ParseEnumError {
                        what: $what,
                        value: s.to_string(),
                        allowed: &[$($text),+],
                    }),
                }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// What a user or key may do; ordered by privilege (`Viewer < Analyst < Admin`).
    pub enum Role as "role" {
        /// Reads only.
        Viewer => "viewer",
        /// Reads, and triages alerts.
        Analyst => "analyst",
        /// Everything, including users and keys.
        Admin => "admin",
    }
}

/// Parses a stored enum text, reporting a bad one as [`StoreError::Decode`].
pub(crate) fn parse_enum<T: FromStr<Err = ParseEnumError>>(
    op: &'static str,
    column: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    s.parse().map_err(|e| StoreError::decode(op, column, e))
}

/// `map_err` adapter for inserts: a unique violation becomes [`StoreError::Conflict`]
/// naming `what` and `key`; anything else [`StoreError::Sqlx`].
pub(crate) fn conflict_or_sqlx(
    op: &'static str,
    what: &'static str,
    key: &str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    let key = key.to_string();
    move |source| match &source {
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            StoreError::Conflict { op, what, key }
        }
        _ => StoreError::Sqlx { op, source },
    }
}

pub(crate) fn uuid(op: &'static str, column: &'static str, s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::decode(op, column, format!("{s:?}: {e}")))
}

pub(crate) fn count(op: &'static str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| StoreError::decode(op, "count", e))
}

fn opt_time(
    op: &'static str,
    column: &'static str,
    s: Option<&str>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|s| time::parse(op, column, s)).transpose()
}

// ---------------------------------------------------------------------------------------
// Users

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    /// Random (v4) id given at creation.
    pub id: Uuid,
    /// Unique login name (compared exactly, case included).
    pub username: String,
    /// The password's hash (the store never sees the password).
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A user to create (see [`Store::create_user`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

const USER_COLUMNS: &str = "id, username, password_hash, role, created_at";

#[derive(FromRow)]
struct RawUser {
    id: String,
    username: String,
    password_hash: String,
    role: String,
    created_at: String,
}

impl RawUser {
    fn into_row(self, op: &'static str) -> Result<UserRow, StoreError> {
        Ok(UserRow {
            id: uuid(op, "users.id", &self.id)?,
            username: self.username,
            password_hash: self.password_hash,
            role: parse_enum(op, "users.role", &self.role)?,
            created_at: time::parse(op, "users.created_at", &self.created_at)?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// API keys

/// An API key: a public `prefix` to look it up by and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    /// Random (v4) id given at creation.
    pub id: Uuid,
    /// A label for people.
    pub name: String,
    /// Unique public part of the key.
    pub prefix: String,
    /// Hash of the secret part.
    pub secret_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// User name of the creator.
    pub created_by: String,
    /// When the key was revoked; a revoked key stays listed.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The latest time the key was used (see [`Store::touch_api_key`]).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An API key to create (see [`Store::create_api_key`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    pub role: Role,
    pub created_by: String,
}

const API_KEY_COLUMNS: &str =
    "id, name, prefix, secret_hash, role, created_at, created_by, revoked_at, last_used_at";

#[derive(FromRow)]
struct RawApiKey {
    id: String,
    name: String,
    prefix: String,
    secret_hash: String,
    role: String,
    created_at: String,
    created_by: String,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl RawApiKey {
    fn into_row(self, op: &'static str) -> Result<ApiKeyRow, StoreError> {
        Ok(ApiKeyRow {
            id: uuid(op, "api_keys.id", &self.id)?,
            name: self.name,
            prefix: self.prefix,
            secret_hash: self.secret_hash,
            role: parse_enum(op, "api_keys.role", &self.role)?,
            created_at: time::parse(op, "api_keys.created_at", &self.created_at)?,
            created_by: self.created_by,
            revoked_at: opt_time(op, "api_keys.revoked_at", self.revoked_at.as_deref())?,
            last_used_at: opt_time(op, "api_keys.last_used_at", self.last_used_at.as_deref())?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Audit log

/// One audited request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub timestamp: DateTime<Utc>,
    /// Who acted: a user name, or a key's name/prefix.
    pub actor: String,
    /// The actor's role, as text.
    pub role: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// What was acted on (e.g. an alert id), when there is one.
    pub target: Option<String>,
    /// HTTP status of the response.
    pub status: u16,
    /// Free-form details (stored as JSON text).
    pub detail: serde_json::Value,
    pub client_ip: Option<String>,
}

/// A stored [`AuditEntry`] with its id (ids grow with insertion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRow {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Filters and page of [`Store::list_audit`]. Default: no filter, 100 entries from the
/// newest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    /// Only entries of this actor (exact).
    pub actor: Option<String>,
    /// Only entries with this target (exact).
    pub target: Option<String>,
    /// At most this many entries (0: none, `total` only).
    pub limit: u32,
    /// Skip this many entries first.
    pub offset: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            actor: None,
            target: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// One page of the audit log, newest first, and the number of entries matching the
/// filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditRow>,
    pub total: u64,
}

const AUDIT_COLUMNS: &str =
    "id, timestamp, actor, role, method, path, target, status, detail, client_ip";

#[derive(FromRow)]
struct RawAudit {
    id: i64,
    timestamp: String,
    actor: String,
    role: String,
    method: String,
    path: String,
    target: Option<String>,
    status: i64,
    detail: String,
    client_ip: Option<String>,
}

impl RawAudit {
    fn into_row(self, op: &'static str) -> Result<AuditRow, StoreError> {
        Ok(AuditRow {
            id: self.id,
            entry: AuditEntry {
                timestamp: time::parse(op, "audit_log.timestamp", &self.timestamp)?,
                actor: self.actor,
                role: self.role,
                method: self.method,
                path: self.path,
                target: self.target,
                status: u16::try_from(self.status)
                    .map_err(|e| StoreError::decode(op, "audit_log.status", e))?,
                detail: serde_json::from_str(&self.detail)
                    .map_err(|e| StoreError::decode(op, "audit_log.detail", e))?,
                client_ip: self.client_ip,
            },
        })
    }
}

/// The `WHERE` clause of an audit query (placeholders `$1`, `$2` … in the order of the
/// returned values) and its values.
fn audit_filter(q: &AuditQuery) -> (String, Vec<&str>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    if let Some(actor) = &q.actor {
        args.push(actor.as_str());
        clauses.push(format!("actor = ${}", args.len()));
    }
    if let Some(target) = &q.target {
        args.push(target.as_str());
        clauses.push(format!("target = ${}", args.len()));
    }
    if clauses.is_empty() {
        (String::new(), args)
    } else {
        (format!(" WHERE {}", clauses.join(" AND ")), args)
    }
}

impl Store {
    /// Creates a user with a fresh id, created now. [`StoreError::Conflict`] if the name is
    /// taken.
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRow, StoreError> {
        const OP: &str = "create_user";
        let id = Uuid::new_v4();
        let created_at = time::truncate(Utc::now());
        let created = time::fmt(OP, "created_at", created_at)?;
        on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, role, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.to_string())
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(&created)
            .execute(writer)
            .await
            .map_err(conflict_or_sqlx(OP, "user", &user.username))?;
        });
        Ok(UserRow {
            id,
            username: user.username.clone(),
            password_hash: user.password_hash.clone(),
            role: user.role,
            created_at,
        })
    }

    /// The user with this name (exact match), if any.
    pub async fn get_user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        const OP: &str = "get_user";
        let raw: Option<RawUser> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
            )))
            .bind(username)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.map(|r| r.into_row(OP)).transpose()
    }

    /// Every user, by user name.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        const OP: &str = "list_users";
        let raw: Vec<RawUser> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            )))
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.into_iter().map(|r| r.into_row(OP)).collect()
    }

    /// Deletes a user; false if there was none with this name. The user's API keys stay
    /// (revoke them separately).
    pub async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_user";
        let n = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query("DELETE FROM users WHERE username = $1")
                .bind(username)
                .execute(writer)
                .await
                .map_err(StoreError::sqlx(OP))?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Number of users.
    pub async fn count_users(&self) -> Result<u64, StoreError> {
        const OP: &str = "count_users";
        let n: i64 = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await
                .map_err(StoreError::sqlx(OP))?
        });
        count(OP, n)
    }

    /// Replaces a user's password hash; false if there is no user with this name.
    pub async fn set_user_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_user_password";
        let n = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
                .bind(password_hash)
                .bind(username)
                .execute(writer)
                .await
                .map_err(StoreError::sqlx(OP))?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Creates an API key with a fresh id, created now, neither revoked nor used.
    /// [`StoreError::Conflict`] if another key has this prefix.
    pub async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKeyRow, StoreError> {
        const OP: &str = "create_api_key";
        let id = Uuid::new_v4();
        let created_at = time::truncate(Utc::now());
        let created = time::fmt(OP, "created_at", created_at)?;
        on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query(
                "INSERT INTO api_keys (id, name, prefix, secret_hash, role, created_at, \
                 created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id.to_string())
            .bind(&key.name)
            .bind(&key.prefix)
            .bind(&key.secret_hash)
            .bind(key.role.as_str())
            .bind(&created)
            .bind(&key.created_by)
            .execute(writer)
            .await
            .map_err(conflict_or_sqlx(OP, "api key prefix", &key.prefix))?;
        });
        Ok(ApiKeyRow {
            id,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            secret_hash: key.secret_hash.clone(),
            role: key.role,
            created_at,
            created_by: key.created_by.clone(),
            revoked_at: None,
            last_used_at: None,
        })
    }

    /// The key with this prefix, revoked or not.
    pub async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        const OP: &str = "api_key_by_prefix";
        let raw: Option<RawApiKey> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE prefix = $1"
            )))
            .bind(prefix)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.map(|r| r.into_row(OP)).transpose()
    }

    /// Every key (revoked ones too), by creation time, then id.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        const OP: &str = "list_api_keys";
        let raw: Vec<RawApiKey> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            )))
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.into_iter().map(|r| r.into_row(OP)).collect()
    }

    /// Revokes the key whose id (any uuid spelling) or prefix is `id_or_prefix`, at `at`.
    /// False if there is no such key or it was revoked already (the first revocation time
    /// stays).
    pub async fn revoke_api_key(
        &self,
        id_or_prefix: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "revoke_api_key";
        let at = time::fmt(OP, "revoked_at", at)?;
        // Ids are stored hyphenated and lowercase: normalise a uuid given another way.
        let id = Uuid::parse_str(id_or_prefix)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| id_or_prefix.to_string());
        let n = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 \
                 WHERE (id = $2 OR prefix = $3) AND revoked_at IS NULL",
            )
            .bind(&at)
            .bind(&id)
            .bind(id_or_prefix)
            .execute(writer)
            .await
            .map_err(StoreError::sqlx(OP))?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// Records that a key was used at `at`. `last_used_at` only moves forward, so
    /// concurrent touches arriving out of order keep the latest; an unknown id is ignored.
    pub async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        const OP: &str = "touch_api_key";
        let at = time::fmt(OP, "last_used_at", at)?;
        on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(&at)
            .bind(id.to_string())
            .execute(writer)
            .await
            .map_err(StoreError::sqlx(OP))?;
        });
        Ok(())
    }

    /// Appends an entry to the audit log; returns its id.
    pub async fn insert_audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        const OP: &str = "insert_audit";
        let timestamp = time::fmt(OP, "timestamp", entry.timestamp)?;
        let detail = entry.detail.to_string();
        let id: i64 = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query_scalar(
                "INSERT INTO audit_log (timestamp, actor, role, method, path, target, status, \
                 detail, client_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&timestamp)
            .bind(&entry.actor)
            .bind(&entry.role)
            .bind(&entry.method)
            .bind(&entry.path)
            .bind(entry.target.as_deref())
            .bind(i64::from(entry.status))
            .bind(&detail)
            .bind(entry.client_ip.as_deref())
            .fetch_one(writer)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        Ok(id)
    }

    /// One page of the audit entries matching the filters, newest first (timestamp, then
    /// id, descending), with the number of matching entries.
    pub async fn list_audit(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        const OP: &str = "list_audit";
        let (filter, args) = audit_filter(q);
        let count_sql = format!("SELECT COUNT(*) FROM audit_log{filter}");
        let page_sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log{filter} ORDER BY timestamp DESC, id DESC \
             LIMIT ${} OFFSET ${}",
            args.len() + 1,
            args.len() + 2
        );
        let (total, raw): (i64, Vec<RawAudit>) = on_engine!(self, |DB, pool, _w, _b| {
            let mut total = sqlx::query_scalar(AssertSqlSafe(count_sql));
            let mut page = sqlx::query_as(AssertSqlSafe(page_sql));
            for a in &args {
                total = total.bind(*a);
                page = page.bind(*a);
            }
            let total = total
                .fetch_one(pool)
                .await
                .map_err(StoreError::sqlx("list_audit: count"))?;
            let raw = page
                .bind(i64::from(q.limit))
                .bind(i64::from(q.offset))
                .fetch_all(pool)
                .await
                .map_err(StoreError::sqlx("list_audit: page"))?;
            (total, raw)
        });
        Ok(AuditPage {
            entries: raw
                .into_iter()
                .map(|r| r.into_row(OP))
                .collect::<Result<_, _>>()?,
            total: count(OP, total)?,
        })
    }

    /// Deletes the audit entries older than `t` (strictly); returns how many.
    pub async fn delete_audit_before(&self, t: DateTime<Utc>) -> Result<u64, StoreError> {
        const OP: &str = "delete_audit_before";
        let t = time::fmt(OP, "t", t)?;
        let n = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query("DELETE FROM audit_log WHERE timestamp < $1")
                .bind(&t)
                .execute(writer)
                .await
                .map_err(StoreError::sqlx(OP))?
                .rows_affected()
        });
        Ok(n)
    }
}
