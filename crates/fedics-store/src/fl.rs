//! Federated learning: rounds, the clients (sites) of each round, and the privacy ledger.
//!
//! Every change to a round or a client is announced after its commit as
//! [`Change::FlRound`] / [`Change::FlClient`]. Progress must lie in 0..=100: the tables'
//! CHECK constraints reject anything else, reported as [`StoreError::Sqlx`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, FromRow};

use crate::auth::{conflict_or_sqlx, count, parse_enum, text_enum};
use crate::{Change, Store, StoreError, on_engine, time};

text_enum! {
    /// Whether a round is running or how it ended.
    pub enum RoundStatus as "round status" {
        InProgress => "in-progress",
        Completed => "completed",
        Failed => "failed",
    }
}

text_enum! {
    /// The step a round is at.
    pub enum RoundPhase as "round phase" {
        /// The global model goes out to the clients.
        Distributing => "distributing",
        /// The clients train locally.
        Training => "training",
        /// The server combines the clients' updates.
        Aggregating => "aggregating",
        /// The round is over (completed or failed).
        Complete => "complete",
    }
}

text_enum! {
    /// How a client is keeping up in its round.
    pub enum ClientStatus as "client status" {
        Active => "active",
        Delayed => "delayed",
        Offline => "offline",
    }
}

/// A federated-learning round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlRoundRow {
    /// Row id (the key of [`Change::FlRound`] and of [`FlClientRow::round_id`]).
    pub id: i64,
    /// Unique, user-facing round number.
    pub round_number: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: RoundStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub phase: RoundPhase,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    /// Percent, 0..=100.
    pub progress: u8,
    /// Privacy budget spent by the round, when known.
    pub epsilon: Option<f64>,
    pub model_accuracy: Option<f64>,
    pub clients_active: u32,
    pub total_clients: u32,
}

/// A round to start (see [`Store::create_fl_round`]): status in-progress, phase
/// distributing, progress 0, no active client yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFlRound {
    /// `None`: one more than the greatest round number (1 for the first round).
    pub round_number: Option<i64>,
    pub total_clients: u32,
    pub start_time: DateTime<Utc>,
}

/// Changes to a running round; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlRoundUpdate {
    pub progress: Option<u8>,
    pub phase: Option<RoundPhase>,
    pub clients_active: Option<u32>,
    pub epsilon: Option<f64>,
}

/// How a round ended (see [`Store::complete_fl_round`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlRoundCompletion {
    /// [`RoundStatus::Completed`] or [`RoundStatus::Failed`].
    pub status: RoundStatus,
    /// `None` keeps the stored value.
    pub model_accuracy: Option<f64>,
    /// `None` keeps the stored value.
    pub epsilon: Option<f64>,
    pub end_time: DateTime<Utc>,
}

/// A client (a site) taking part in a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlClientRow {
    /// Caller-chosen unique id (the key of [`Change::FlClient`]).
    pub id: String,
    /// Row id of the round ([`FlRoundRow::id`]); the round must exist.
    pub round_id: i64,
    pub facility_id: String,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: ClientStatus,
    /// Percent, 0..=100.
    pub progress: u8,
    pub current_epoch: u32,
    pub total_epochs: u32,
    pub loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub last_update: DateTime<Utc>,
}

/// Changes to a client; `None` fields are left as they are, `last_update` is always set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlClientUpdate {
    pub status: Option<ClientStatus>,
    pub progress: Option<u8>,
    pub current_epoch: Option<u32>,
    pub total_epochs: Option<u32>,
    pub loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub last_update: DateTime<Utc>,
}

/// Differential-privacy accounting of one round of a federation, for one site or for the
/// federation as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyEntry {
    pub federation_id: String,
    pub round_number: i64,
    /// `None`: the federation as a whole. `Some("")` is refused (it is how `None` is
    /// stored).
    pub site_id: Option<String>,
    pub sampling_rate: f64,
    pub noise_multiplier: f64,
    pub clip_norm: f64,
    pub epsilon: f64,
    pub delta: f64,
    pub recorded_at: DateTime<Utc>,
}

/// How a federation aggregates and protects its updates, as its aggregator was configured
/// (see [`Store::upsert_fl_federation`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlFederationRow {
    /// The federation's id (the `federation_id` of its privacy ledger entries).
    pub id: String,
    /// Aggregation strategy (`fedavg`, `fedprox`, `fedadam`, `median`, `trimmed-mean`,
    /// `krum`, `multi-krum`).
    pub strategy: String,
    /// The strategy's hyper-parameters by name, e.g. `{"mu": 0.01}` for FedProx, `{"beta":
    /// 0.2}` for the trimmed mean (empty for FedAvg and the median).
    pub strategy_params: BTreeMap<String, f64>,
    /// Local epochs per round.
    pub local_epochs: u32,
    /// Client learning rate.
    pub learning_rate: f64,
    /// Fraction of the sites selected each round, in (0, 1].
    pub fraction_fit: f64,
    /// Sites allowed to join.
    pub total_sites: u32,
    /// Client-level differential privacy; `None` when off.
    pub dp: Option<FlDpSettings>,
    pub started_at: DateTime<Utc>,
    /// When the aggregator last (re)started with this configuration.
    pub updated_at: DateTime<Utc>,
}

/// Client-level differential privacy of a federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlDpSettings {
    /// Noise multiplier σ (noise std on the sum of clipped updates: σ·C).
    pub noise_multiplier: f64,
    /// L2 clipping bound C of each site's update.
    pub clip_norm: f64,
    /// `central` (the aggregator adds the noise) or `distributed` (each site adds its share).
    pub mode: String,
    /// The ε the federation may spend in all (rounds past it are refused).
    pub max_epsilon: f64,
    /// The δ at which ε is measured.
    pub delta: f64,
}

const FEDERATION_COLUMNS: &str = "id, strategy, strategy_params, local_epochs, learning_rate, \
    fraction_fit, total_sites, dp_noise_multiplier, dp_clip_norm, dp_mode, dp_max_epsilon, \
    dp_delta, started_at, updated_at";

const ROUND_COLUMNS: &str = "id, round_number, status, phase, start_time, end_time, progress, \
    epsilon, model_accuracy, clients_active, total_clients";

const CLIENT_COLUMNS: &str = "id, round_id, facility_id, name, status, progress, \
    current_epoch, total_epochs, loss, accuracy, last_update";

const PRIVACY_COLUMNS: &str = "federation_id, round_number, site_id, sampling_rate, \
    noise_multiplier, clip_norm, epsilon, delta, recorded_at";

/// How often [`Store::create_fl_round`] retries a round number taken by a concurrent
/// creator (PostgreSQL; SQLite's single writer serialises them).
const NEXT_ROUND_ATTEMPTS: usize = 32;

#[derive(FromRow)]
struct RawRound {
    id: i64,
    round_number: i64,
    status: String,
    phase: String,
    start_time: String,
    end_time: Option<String>,
    progress: i64,
    epsilon: Option<f64>,
    model_accuracy: Option<f64>,
    clients_active: i64,
    total_clients: i64,
}

impl RawRound {
    fn into_row(self, op: &'static str) -> Result<FlRoundRow, StoreError> {
        Ok(FlRoundRow {
            id: self.id,
            round_number: self.round_number,
            status: parse_enum(op, "fl_rounds.status", &self.status)?,
            phase: parse_enum(op, "fl_rounds.phase", &self.phase)?,
            start_time: time::parse(op, "fl_rounds.start_time", &self.start_time)?,
            end_time: self
                .end_time
                .map(|t| time::parse(op, "fl_rounds.end_time", &t))
                .transpose()?,
            progress: narrow(op, "fl_rounds.progress", self.progress)?,
            epsilon: self.epsilon,
            model_accuracy: self.model_accuracy,
            clients_active: narrow(op, "fl_rounds.clients_active", self.clients_active)?,
            total_clients: narrow(op, "fl_rounds.total_clients", self.total_clients)?,
        })
    }
}

#[derive(FromRow)]
struct RawClient {
    id: String,
    round_id: i64,
    facility_id: String,
    name: String,
    status: String,
    progress: i64,
    current_epoch: i64,
    total_epochs: i64,
    loss: Option<f64>,
    accuracy: Option<f64>,
    last_update: String,
}

impl RawClient {
    fn into_row(self, op: &'static str) -> Result<FlClientRow, StoreError> {
        Ok(FlClientRow {
            id: self.id,
            round_id: self.round_id,
            facility_id: self.facility_id,
            name: self.name,
            status: parse_enum(op, "fl_clients.status", &self.status)?,
            progress: narrow(op, "fl_clients.progress", self.progress)?,
            current_epoch: narrow(op, "fl_clients.current_epoch", self.current_epoch)?,
            total_epochs: narrow(op, "fl_clients.total_epochs", self.total_epochs)?,
            loss: self.loss,
            accuracy: self.accuracy,
            last_update: time::parse(op, "fl_clients.last_update", &self.last_update)?,
        })
    }
}

#[derive(FromRow)]
struct RawPrivacy {
    federation_id: String,
    round_number: i64,
    site_id: String,
    sampling_rate: f64,
    noise_multiplier: f64,
    clip_norm: f64,
    epsilon: f64,
    delta: f64,
    recorded_at: String,
}

impl RawPrivacy {
    fn into_entry(self, op: &'static str) -> Result<PrivacyEntry, StoreError> {
        Ok(PrivacyEntry {
            federation_id: self.federation_id,
            round_number: self.round_number,
            site_id: (!self.site_id.is_empty()).then_some(self.site_id),
            sampling_rate: self.sampling_rate,
            noise_multiplier: self.noise_multiplier,
            clip_norm: self.clip_norm,
            epsilon: self.epsilon,
            delta: self.delta,
            recorded_at: time::parse(op, "fl_privacy_ledger.recorded_at", &self.recorded_at)?,
        })
    }
}

#[derive(FromRow)]
struct RawFederation {
    id: String,
    strategy: String,
    strategy_params: String,
    local_epochs: i64,
    learning_rate: f64,
    fraction_fit: f64,
    total_sites: i64,
    dp_noise_multiplier: Option<f64>,
    dp_clip_norm: Option<f64>,
    dp_mode: Option<String>,
    dp_max_epsilon: Option<f64>,
    dp_delta: Option<f64>,
    started_at: String,
    updated_at: String,
}

impl RawFederation {
    fn into_row(self, op: &'static str) -> Result<FlFederationRow, StoreError> {
        let strategy_params = serde_json::from_str(&self.strategy_params)
            .map_err(|e| StoreError::decode(op, "fl_federations.strategy_params", e.to_string()))?;
        let dp = match (
            self.dp_noise_multiplier,
            self.dp_clip_norm,
            self.dp_mode,
            self.dp_max_epsilon,
            self.dp_delta,
        ) {
            (
                Some(noise_multiplier),
                Some(clip_norm),
                Some(mode),
                Some(max_epsilon),
                Some(delta),
            ) => Some(FlDpSettings {
                noise_multiplier,
                clip_norm,
                mode,
                max_epsilon,
                delta,
            }),
            (None, None, None, None, None) => None,
            _ => {
                return Err(StoreError::decode(
                    op,
                    "fl_federations.dp_*",
                    "some DP columns are NULL and others are not",
                ));
            }
        };
        Ok(FlFederationRow {
            id: self.id,
            strategy: self.strategy,
            strategy_params,
            local_epochs: narrow(op, "fl_federations.local_epochs", self.local_epochs)?,
            learning_rate: self.learning_rate,
            fraction_fit: self.fraction_fit,
            total_sites: narrow(op, "fl_federations.total_sites", self.total_sites)?,
            dp,
            started_at: time::parse(op, "fl_federations.started_at", &self.started_at)?,
            updated_at: time::parse(op, "fl_federations.updated_at", &self.updated_at)?,
        })
    }
}

/// A stored integer in a narrower type.
fn narrow<T: TryFrom<i64>>(op: &'static str, column: &'static str, v: i64) -> Result<T, StoreError>
where
    T::Error: std::fmt::Display,
{
    T::try_from(v).map_err(|e| StoreError::decode(op, column, format!("{v}: {e}")))
}

/// Refuses NaN and infinities, which the engines would store differently (SQLite turns
/// NaN into NULL).
fn finite(op: &'static str, field: &'static str, v: f64) -> Result<f64, StoreError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(StoreError::Encode {
            op,
            field,
            message: format!("{v} is not a finite number"),
        })
    }
}

fn finite_opt(
    op: &'static str,
    field: &'static str,
    v: Option<f64>,
) -> Result<Option<f64>, StoreError> {
    v.map(|v| finite(op, field, v)).transpose()
}

impl Store {
    /// Starts a round (in-progress, distributing, progress 0). [`StoreError::Conflict`]
    /// if the round number is taken.
    pub async fn create_fl_round(&self, new: &NewFlRound) -> Result<FlRoundRow, StoreError> {
        const OP: &str = "create_fl_round";
        let start = time::fmt(OP, "start_time", new.start_time)?;
        let sql = format!(
            "INSERT INTO fl_rounds (round_number, status, phase, start_time, progress, \
             clients_active, total_clients) \
             VALUES (COALESCE($1, (SELECT COALESCE(MAX(round_number), 0) + 1 FROM fl_rounds)), \
             'in-progress', 'distributing', $2, 0, 0, $3) RETURNING {ROUND_COLUMNS}"
        );
        let key = new
            .round_number
            .map_or_else(|| "next".to_string(), |n| n.to_string());
        let mut attempt = 0;
        let raw: RawRound = loop {
            attempt += 1;
            let result = on_engine!(self, |DB, _p, writer, _b| {
                sqlx::query_as(AssertSqlSafe(sql.as_str()))
                    .bind(new.round_number)
                    .bind(&start)
                    .bind(i64::from(new.total_clients))
                    .fetch_one(writer)
                    .await
                    .map_err(conflict_or_sqlx(OP, "fl round number", &key))
            });
            match result {
                // A concurrent creator took the next number: take the one after.
                Err(StoreError::Conflict { .. })
                    if new.round_number.is_none() && attempt < NEXT_ROUND_ATTEMPTS => {}
                other => break other?,
            }
        };
        let row = raw.into_row(OP)?;
        self.notify([Change::FlRound(row.id)]);
        Ok(row)
    }

    /// The round with this row id.
    pub async fn get_fl_round(&self, id: i64) -> Result<Option<FlRoundRow>, StoreError> {
        self.one_round(
            "get_fl_round",
            "SELECT {} FROM fl_rounds WHERE id = $1",
            Some(id),
        )
        .await
    }

    /// The in-progress round with the greatest round number.
    pub async fn current_fl_round(&self) -> Result<Option<FlRoundRow>, StoreError> {
        self.one_round(
            "current_fl_round",
            "SELECT {} FROM fl_rounds WHERE status = 'in-progress' \
             ORDER BY round_number DESC LIMIT 1",
            None,
        )
        .await
    }

    /// The round with the greatest round number, whatever its status.
    pub async fn latest_fl_round(&self) -> Result<Option<FlRoundRow>, StoreError> {
        self.one_round(
            "latest_fl_round",
            "SELECT {} FROM fl_rounds ORDER BY round_number DESC LIMIT 1",
            None,
        )
        .await
    }

    /// `sql` with `{}` replaced by the round columns, and `$1` bound to `id` if given.
    async fn one_round(
        &self,
        op: &'static str,
        sql: &'static str,
        id: Option<i64>,
    ) -> Result<Option<FlRoundRow>, StoreError> {
        let sql = sql.replace("{}", ROUND_COLUMNS);
        let raw: Option<RawRound> = on_engine!(self, |DB, pool, _w, _b| {
            let mut q = sqlx::query_as(AssertSqlSafe(sql));
            if let Some(id) = id {
                q = q.bind(id);
            }
            q.fetch_optional(pool).await.map_err(StoreError::sqlx(op))?
        });
        raw.map(|r| r.into_row(op)).transpose()
    }

    /// One page of the rounds, newest (greatest round number) first, and the number of
    /// rounds.
    pub async fn list_fl_rounds(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<FlRoundRow>, u64), StoreError> {
        const OP: &str = "list_fl_rounds";
        let (total, raw): (i64, Vec<RawRound>) = on_engine!(self, |DB, pool, _w, _b| {
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM fl_rounds")
                .fetch_one(pool)
                .await
                .map_err(StoreError::sqlx("list_fl_rounds: count"))?;
            let raw = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {ROUND_COLUMNS} FROM fl_rounds ORDER BY round_number DESC \
                 LIMIT $1 OFFSET $2"
            )))
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx("list_fl_rounds: page"))?;
            (total, raw)
        });
        let rounds = raw
            .into_iter()
            .map(|r| r.into_row(OP))
            .collect::<Result<_, _>>()?;
        Ok((rounds, count(OP, total)?))
    }

    /// Applies the given fields of `update` to a round; the round as it is now, or `None`
    /// if there is none with this id.
    pub async fn update_fl_round(
        &self,
        id: i64,
        update: &FlRoundUpdate,
    ) -> Result<Option<FlRoundRow>, StoreError> {
        const OP: &str = "update_fl_round";
        let epsilon = finite_opt(OP, "epsilon", update.epsilon)?;
        let sql = format!(
            "UPDATE fl_rounds SET progress = COALESCE($1, progress), \
             phase = COALESCE($2, phase), clients_active = COALESCE($3, clients_active), \
             epsilon = COALESCE($4, epsilon) WHERE id = $5 RETURNING {ROUND_COLUMNS}"
        );
        let raw: Option<RawRound> = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(update.progress.map(i64::from))
                .bind(update.phase.map(RoundPhase::as_str))
                .bind(update.clients_active.map(i64::from))
                .bind(epsilon)
                .bind(id)
                .fetch_optional(writer)
                .await
                .map_err(StoreError::sqlx(OP))?
        });
        self.announce_round(OP, raw)
    }

    /// Ends a round: sets its status, phase complete, progress 100 and the end time, and
    /// the accuracy and epsilon that are given. `None` if there is no round with this id;
    /// [`StoreError::Encode`] if the status is [`RoundStatus::InProgress`].
    pub async fn complete_fl_round(
        &self,
        id: i64,
        done: &FlRoundCompletion,
    ) -> Result<Option<FlRoundRow>, StoreError> {
        const OP: &str = "complete_fl_round";
        if done.status == RoundStatus::InProgress {
            return Err(StoreError::Encode {
                op: OP,
                field: "status",
                message: "a completed round is completed or failed, not in-progress".into(),
            });
        }
        let accuracy = finite_opt(OP, "model_accuracy", done.model_accuracy)?;
        let epsilon = finite_opt(OP, "epsilon", done.epsilon)?;
        let end = time::fmt(OP, "end_time", done.end_time)?;
        let sql = format!(
            "UPDATE fl_rounds SET status = $1, phase = 'complete', progress = 100, \
             model_accuracy = COALESCE($2, model_accuracy), epsilon = COALESCE($3, epsilon), \
             end_time = $4 WHERE id = $5 RETURNING {ROUND_COLUMNS}"
        );
        let raw: Option<RawRound> = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(done.status.as_str())
                .bind(accuracy)
                .bind(epsilon)
                .bind(&end)
                .bind(id)
                .fetch_optional(writer)
                .await
                .map_err(StoreError::sqlx(OP))?
        });
        self.announce_round(OP, raw)
    }

    fn announce_round(
        &self,
        op: &'static str,
        raw: Option<RawRound>,
    ) -> Result<Option<FlRoundRow>, StoreError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        // The statement has committed: announce even if the row turns out unreadable.
        self.notify([Change::FlRound(raw.id)]);
        raw.into_row(op).map(Some)
    }

    /// Inserts a client, or replaces every column of the client with this id.
    pub async fn upsert_fl_client(&self, client: &FlClientRow) -> Result<(), StoreError> {
        const OP: &str = "upsert_fl_client";
        let loss = finite_opt(OP, "loss", client.loss)?;
        let accuracy = finite_opt(OP, "accuracy", client.accuracy)?;
        let last_update = time::fmt(OP, "last_update", client.last_update)?;
        on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query(
                "INSERT INTO fl_clients (id, round_id, facility_id, name, status, progress, \
                 current_epoch, total_epochs, loss, accuracy, last_update) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO UPDATE SET round_id = excluded.round_id, \
                 facility_id = excluded.facility_id, name = excluded.name, \
                 status = excluded.status, progress = excluded.progress, \
                 current_epoch = excluded.current_epoch, total_epochs = excluded.total_epochs, \
                 loss = excluded.loss, accuracy = excluded.accuracy, \
                 last_update = excluded.last_update",
            )
            .bind(&client.id)
            .bind(client.round_id)
            .bind(&client.facility_id)
            .bind(&client.name)
            .bind(client.status.as_str())
            .bind(i64::from(client.progress))
            .bind(i64::from(client.current_epoch))
            .bind(i64::from(client.total_epochs))
            .bind(loss)
            .bind(accuracy)
            .bind(&last_update)
            .execute(writer)
            .await
            .map_err(StoreError::sqlx(OP))?;
        });
        self.notify([Change::FlClient(client.id.clone())]);
        Ok(())
    }

    /// The clients of a round, by name, then id.
    pub async fn fl_round_clients(&self, round_id: i64) -> Result<Vec<FlClientRow>, StoreError> {
        const OP: &str = "fl_round_clients";
        let raw: Vec<RawClient> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM fl_clients WHERE round_id = $1 ORDER BY name, id"
            )))
            .bind(round_id)
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.into_iter().map(|r| r.into_row(OP)).collect()
    }

    /// The clients of a round (`None`: of the round with the greatest round number; none
    /// if there is no round), by name, then id.
    pub async fn list_fl_clients(
        &self,
        round_id: Option<i64>,
    ) -> Result<Vec<FlClientRow>, StoreError> {
        const OP: &str = "list_fl_clients";
        if let Some(id) = round_id {
            return self.fl_round_clients(id).await;
        }
        let raw: Vec<RawClient> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM fl_clients WHERE round_id = \
                 (SELECT id FROM fl_rounds ORDER BY round_number DESC LIMIT 1) \
                 ORDER BY name, id"
            )))
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.into_iter().map(|r| r.into_row(OP)).collect()
    }

    /// The client with this id.
    pub async fn get_fl_client(&self, id: &str) -> Result<Option<FlClientRow>, StoreError> {
        const OP: &str = "get_fl_client";
        let raw: Option<RawClient> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM fl_clients WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.map(|r| r.into_row(OP)).transpose()
    }

    /// Applies the given fields of `update` (and its `last_update`) to a client; the client
    /// as it is now, or `None` if there is none with this id.
    pub async fn update_fl_client(
        &self,
        id: &str,
        update: &FlClientUpdate,
    ) -> Result<Option<FlClientRow>, StoreError> {
        const OP: &str = "update_fl_client";
        let loss = finite_opt(OP, "loss", update.loss)?;
        let accuracy = finite_opt(OP, "accuracy", update.accuracy)?;
        let last_update = time::fmt(OP, "last_update", update.last_update)?;
        let sql = format!(
            "UPDATE fl_clients SET status = COALESCE($1, status), \
             progress = COALESCE($2, progress), current_epoch = COALESCE($3, current_epoch), \
             total_epochs = COALESCE($4, total_epochs), loss = COALESCE($5, loss), \
             accuracy = COALESCE($6, accuracy), last_update = $7 \
             WHERE id = $8 RETURNING {CLIENT_COLUMNS}"
        );
        let raw: Option<RawClient> = on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(update.status.map(ClientStatus::as_str))
                .bind(update.progress.map(i64::from))
                .bind(update.current_epoch.map(i64::from))
                .bind(update.total_epochs.map(i64::from))
                .bind(loss)
                .bind(accuracy)
                .bind(&last_update)
                .bind(id)
                .fetch_optional(writer)
                .await
                .map_err(StoreError::sqlx(OP))?
        });
        let Some(raw) = raw else {
            return Ok(None);
        };
        self.notify([Change::FlClient(raw.id.clone())]);
        raw.into_row(OP).map(Some)
    }

    /// Records a ledger entry once: recording an entry with the same federation, round and
    /// site again changes nothing (the first record stands).
    pub async fn record_privacy(&self, entry: &PrivacyEntry) -> Result<(), StoreError> {
        const OP: &str = "record_privacy";
        if entry.site_id.as_deref() == Some("") {
            return Err(StoreError::Encode {
                op: OP,
                field: "site_id",
                message: "an empty site id stands for the whole federation: use None".into(),
            });
        }
        let recorded_at = time::fmt(OP, "recorded_at", entry.recorded_at)?;
        let values = [
            finite(OP, "sampling_rate", entry.sampling_rate)?,
            finite(OP, "noise_multiplier", entry.noise_multiplier)?,
            finite(OP, "clip_norm", entry.clip_norm)?,
            finite(OP, "epsilon", entry.epsilon)?,
            finite(OP, "delta", entry.delta)?,
        ];
        on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO fl_privacy_ledger ({PRIVACY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (federation_id, round_number, site_id) DO NOTHING"
            )))
            .bind(&entry.federation_id)
            .bind(entry.round_number)
            .bind(entry.site_id.as_deref().unwrap_or(""))
            .bind(values[0])
            .bind(values[1])
            .bind(values[2])
            .bind(values[3])
            .bind(values[4])
            .bind(&recorded_at)
            .execute(writer)
            .await
            .map_err(StoreError::sqlx(OP))?;
        });
        Ok(())
    }

    /// The ledger (of one federation, or of all), by federation, round, then site (the
    /// federation-wide entry of a round first).
    pub async fn privacy_ledger(
        &self,
        federation_id: Option<&str>,
    ) -> Result<Vec<PrivacyEntry>, StoreError> {
        const OP: &str = "privacy_ledger";
        let filter = if federation_id.is_some() {
            " WHERE federation_id = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {PRIVACY_COLUMNS} FROM fl_privacy_ledger{filter} \
             ORDER BY federation_id, round_number, site_id"
        );
        let raw: Vec<RawPrivacy> = on_engine!(self, |DB, pool, _w, _b| {
            let mut q = sqlx::query_as(AssertSqlSafe(sql));
            if let Some(f) = federation_id {
                q = q.bind(f);
            }
            q.fetch_all(pool).await.map_err(StoreError::sqlx(OP))?
        });
        raw.into_iter().map(|r| r.into_entry(OP)).collect()
    }

    /// Records how a federation is configured (when its aggregator starts). A federation
    /// already stored under this id gets the new configuration and `updated_at`; its
    /// `started_at` is kept.
    pub async fn upsert_fl_federation(&self, f: &FlFederationRow) -> Result<(), StoreError> {
        const OP: &str = "upsert_fl_federation";
        if f.id.trim().is_empty() {
            return Err(StoreError::Encode {
                op: OP,
                field: "id",
                message: "a federation needs a non-empty id".into(),
            });
        }
        let mut params = BTreeMap::new();
        for (k, v) in &f.strategy_params {
            params.insert(k.as_str(), finite(OP, "strategy_params", *v)?);
        }
        let params = serde_json::to_string(&params).map_err(|e| StoreError::Encode {
            op: OP,
            field: "strategy_params",
            message: e.to_string(),
        })?;
        let learning_rate = finite(OP, "learning_rate", f.learning_rate)?;
        let fraction_fit = finite(OP, "fraction_fit", f.fraction_fit)?;
        let dp = match &f.dp {
            Some(d) => Some((
                finite(OP, "dp.noise_multiplier", d.noise_multiplier)?,
                finite(OP, "dp.clip_norm", d.clip_norm)?,
                d.mode.as_str(),
                finite(OP, "dp.max_epsilon", d.max_epsilon)?,
                finite(OP, "dp.delta", d.delta)?,
            )),
            None => None,
        };
        let started_at = time::fmt(OP, "started_at", f.started_at)?;
        let updated_at = time::fmt(OP, "updated_at", f.updated_at)?;
        on_engine!(self, |DB, _p, writer, _b| {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO fl_federations ({FEDERATION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (id) DO UPDATE SET strategy = excluded.strategy, \
                 strategy_params = excluded.strategy_params, local_epochs = excluded.local_epochs, \
                 learning_rate = excluded.learning_rate, fraction_fit = excluded.fraction_fit, \
                 total_sites = excluded.total_sites, \
                 dp_noise_multiplier = excluded.dp_noise_multiplier, \
                 dp_clip_norm = excluded.dp_clip_norm, dp_mode = excluded.dp_mode, \
                 dp_max_epsilon = excluded.dp_max_epsilon, dp_delta = excluded.dp_delta, \
                 updated_at = excluded.updated_at"
            )))
            .bind(&f.id)
            .bind(&f.strategy)
            .bind(&params)
            .bind(i64::from(f.local_epochs))
            .bind(learning_rate)
            .bind(fraction_fit)
            .bind(i64::from(f.total_sites))
            .bind(dp.map(|d| d.0))
            .bind(dp.map(|d| d.1))
            .bind(dp.map(|d| d.2))
            .bind(dp.map(|d| d.3))
            .bind(dp.map(|d| d.4))
            .bind(&started_at)
            .bind(&updated_at)
            .execute(writer)
            .await
            .map_err(StoreError::sqlx(OP))?;
        });
        Ok(())
    }

    /// The federation configured most recently (greatest `updated_at`), if any.
    pub async fn latest_fl_federation(&self) -> Result<Option<FlFederationRow>, StoreError> {
        const OP: &str = "latest_fl_federation";
        let raw: Option<RawFederation> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {FEDERATION_COLUMNS} FROM fl_federations \
                 ORDER BY updated_at DESC, id DESC LIMIT 1"
            )))
            .fetch_optional(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.map(|r| r.into_row(OP)).transpose()
    }

    /// One federation's configuration.
    pub async fn get_fl_federation(&self, id: &str) -> Result<Option<FlFederationRow>, StoreError> {
        const OP: &str = "get_fl_federation";
        let raw: Option<RawFederation> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {FEDERATION_COLUMNS} FROM fl_federations WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        raw.map(|r| r.into_row(OP)).transpose()
    }
}
