//! Queries.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fedics_core::{AlertStatus, FlowRecord, PredictedTechnique, Severity};
use sqlx::{AssertSqlSafe, FromRow};
use uuid::Uuid;

use crate::model::{
    AlertDetail, AlertPage, AlertQuery, AlertRow, AlertSourceRow, AlertStats, PredictionRow,
    TechniqueSeen,
};
use crate::{Change, Engine, PG_ALERT_WRITE_LOCK, Store, StoreError, on_engine, time};

const ALERT_COLUMNS: &str = "id, timestamp, facility_id, severity, title, description, status, \
    attack_type, attack_name, correlation_confidence, correlation_summary, context_analysis, \
    first_seen, last_seen, tactic_ids, src_ip, dst_ip, flow_count, model_versions";

const PREDICTION_COLUMNS: &str = "p.id, p.timestamp, p.facility_id, p.alert_id, \
    p.current_technique, p.current_technique_name, p.validated, p.validation_time, p.model, \
    p.observations, t.technique_id, t.technique_name, t.probability, t.rank, t.timeframe";

#[derive(FromRow)]
struct RawAlert {
    id: String,
    timestamp: String,
    facility_id: String,
    severity: String,
    title: String,
    description: String,
    status: String,
    attack_type: String,
    attack_name: String,
    correlation_confidence: f64,
    correlation_summary: String,
    context_analysis: String,
    first_seen: String,
    last_seen: String,
    tactic_ids: String,
    src_ip: String,
    dst_ip: String,
    flow_count: i64,
    model_versions: String,
}

#[derive(FromRow)]
struct RawSource {
    id: String,
    alert_id: String,
    layer: i64,
    model_name: String,
    model_version: String,
    confidence: f64,
    detection_time: String,
    evidence: String,
    context_evidence: String,
}

/// A prediction joined with one of its techniques (or none).
#[derive(FromRow)]
struct RawPrediction {
    id: String,
    timestamp: String,
    facility_id: String,
    alert_id: String,
    current_technique: String,
    current_technique_name: String,
    validated: bool,
    validation_time: Option<String>,
    model: String,
    observations: i64,
    technique_id: Option<String>,
    technique_name: Option<String>,
    probability: Option<f64>,
    rank: Option<i64>,
    timeframe: Option<String>,
}

fn uuid(op: &'static str, column: &'static str, s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::decode(op, column, format!("{s:?}: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    op: &'static str,
    column: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::decode(op, column, e))
}

fn parse_severity(op: &'static str, s: &str) -> Result<Severity, StoreError> {
    Ok(match s {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        other => return Err(StoreError::decode(op, "severity", format!("{other:?}"))),
    })
}

fn parse_status(op: &'static str, s: &str) -> Result<AlertStatus, StoreError> {
    Ok(match s {
        "new" => AlertStatus::New,
        "acknowledged" => AlertStatus::Acknowledged,
        "resolved" => AlertStatus::Resolved,
        "false-positive" => AlertStatus::FalsePositive,
        other => return Err(StoreError::decode(op, "status", format!("{other:?}"))),
    })
}

fn count(op: &'static str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| StoreError::decode(op, "count", e))
}

impl RawAlert {
    fn into_row(self, op: &'static str) -> Result<AlertRow, StoreError> {
        Ok(AlertRow {
            id: uuid(op, "alerts.id", &self.id)?,
            timestamp: time::parse(op, "alerts.timestamp", &self.timestamp)?,
            facility_id: self.facility_id,
            severity: parse_severity(op, &self.severity)?,
            title: self.title,
            description: self.description,
            status: parse_status(op, &self.status)?,
            attack_type: self.attack_type,
            attack_name: self.attack_name,
            correlation_confidence: self.correlation_confidence,
            correlation_summary: self.correlation_summary,
            context_analysis: from_json(op, "alerts.context_analysis", &self.context_analysis)?,
            first_seen: time::parse(op, "alerts.first_seen", &self.first_seen)?,
            last_seen: time::parse(op, "alerts.last_seen", &self.last_seen)?,
            tactic_ids: from_json(op, "alerts.tactic_ids", &self.tactic_ids)?,
            src_ip: self
                .src_ip
                .parse()
                .map_err(|e| StoreError::decode(op, "alerts.src_ip", e))?,
            dst_ip: self
                .dst_ip
                .parse()
                .map_err(|e| StoreError::decode(op, "alerts.dst_ip", e))?,
            flow_count: count(op, self.flow_count)?,
            model_versions: from_json(op, "alerts.model_versions", &self.model_versions)?,
        })
    }
}

/// The statements of an alert page: the total (from `alert_counters` when the filter
/// allows), and the page itself with the total as its first column (`total`, then
/// [`ALERT_COLUMNS`]), whose last two parameters are LIMIT and OFFSET (bound after
/// `args`).
struct AlertPageSql {
    count_sql: String,
    page_sql: String,
    args: Vec<Arg>,
    page: u32,
    limit: u32,
}

/// The page of `q` as `total`, then `columns`.
fn alert_page_sql(q: &AlertQuery, columns: &str) -> Result<AlertPageSql, StoreError> {
    let (filter, args, counted) = alert_filter(q)?;
    let count_sql = if counted {
        format!("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM alert_counters{filter}")
    } else {
        format!("SELECT COUNT(*) FROM alerts{filter}")
    };
    let n = args.len();
    // The total rides along on every row (an uncorrelated subquery, computed once): one
    // round trip for the page unless it is empty.
    let page_sql = format!(
        "SELECT ({count_sql}) AS total, {columns} FROM alerts{filter} \
         ORDER BY last_seen DESC, id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    Ok(AlertPageSql {
        count_sql,
        page_sql,
        args,
        page: q.effective_page(),
        limit: q.effective_limit(),
    })
}

fn pages(total: u64, limit: u32) -> u32 {
    u32::try_from(total.div_ceil(u64::from(limit))).unwrap_or(u32::MAX)
}

/// [`AlertRow`] as stored text, field for field (same names, same order), for
/// [`Store::list_alerts_json`].
#[derive(serde::Serialize)]
struct AlertJson<'a> {
    id: &'a str,
    timestamp: &'a str,
    facility_id: &'a str,
    severity: &'a str,
    title: &'a str,
    description: &'a str,
    status: &'a str,
    attack_type: &'a str,
    attack_name: &'a str,
    correlation_confidence: f64,
    correlation_summary: &'a str,
    context_analysis: &'a serde_json::value::RawValue,
    first_seen: &'a str,
    last_seen: &'a str,
    tactic_ids: &'a serde_json::value::RawValue,
    src_ip: &'a str,
    dst_ip: &'a str,
    flow_count: u64,
    model_versions: &'a serde_json::value::RawValue,
}

/// A stored id, checked to be a UUID in the form `Uuid`'s `Display` writes (hyphenated,
/// lower case), so that copying it out gives what serializing a `Uuid` would. Checked by
/// shape: every string of that shape is a UUID, and only that form is canonical.
fn uuid_text<'a>(
    op: &'static str,
    column: &'static str,
    s: &'a str,
) -> Result<&'a str, StoreError> {
    let canonical = s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        });
    if canonical {
        Ok(s)
    } else {
        // Say why: not a UUID at all, or one in another form.
        uuid(op, column, s)?;
        Err(StoreError::decode(
            op,
            column,
            format!("{s:?} is not in canonical form"),
        ))
    }
}

/// A stored time, checked to be in the stored format (`crate::time`: 27 characters,
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`), which is what serializing the parsed time writes
/// (`fedics_core::time` writes six zero-padded fraction digits for microsecond times).
fn time_text<'a>(
    op: &'static str,
    column: &'static str,
    s: &'a str,
) -> Result<&'a str, StoreError> {
    let b = s.as_bytes();
    let shaped = b.len() == time::TS_LEN
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
        // A leap second would be written back as :59 with a fraction over one second.
        && b[17] < b'6';
    // The shape has fixed-width digits everywhere; parsing checks the calendar.
    time::parse(op, column, s)?;
    if shaped {
        Ok(s)
    } else {
        Err(StoreError::decode(
            op,
            column,
            format!("{s:?} is not in the stored time format"),
        ))
    }
}

/// A stored address, checked to be in the form `IpAddr`'s `Display` writes. An IPv4
/// address that parses is in that form (the parser takes only four decimal octets without
/// leading zeros); an IPv6 address is written back and compared.
fn ip_text<'a>(op: &'static str, column: &'static str, s: &'a str) -> Result<&'a str, StoreError> {
    let ip: std::net::IpAddr = s.parse().map_err(|e| StoreError::decode(op, column, e))?;
    if ip.is_ipv4() || ip.to_string() == s {
        Ok(s)
    } else {
        Err(StoreError::decode(
            op,
            column,
            format!("{s:?} is not in canonical form"),
        ))
    }
}

/// Column `i` of a row as borrowed text.
fn text_at<'r, R>(
    op: &'static str,
    column: &'static str,
    row: &'r R,
    i: usize,
) -> Result<&'r str, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    // Unchecked: the column's declared type (TEXT, from the migrations) is not compared
    // with `&str` on every cell — that comparison was a tenth of the API's time on the
    // alert page. Decoding still checks the value: NULL and invalid UTF-8 are errors.
    row.try_get_unchecked(i)
        .map_err(|e| StoreError::decode(op, column, e))
}

/// A row of one column not read here (the version), then [`ALERT_COLUMNS`] in that order, as
/// [`AlertJson`] borrowing the row's text: no per-column allocation, columns found by
/// position.
fn alert_json<'r, R>(op: &'static str, row: &'r R) -> Result<AlertJson<'r>, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text = |i: usize, column: &'static str| text_at(op, column, row, i);
    let severity = text(4, "alerts.severity")?;
    parse_severity(op, severity)?;
    let status = text(7, "alerts.status")?;
    parse_status(op, status)?;
    // The JSON columns must also have the shape the typed row has.
    let tactic_ids = raw_json(op, "alerts.tactic_ids", text(15, "alerts.tactic_ids")?)?;
    if !tactic_ids.get().starts_with('[') {
        return Err(StoreError::decode(
            op,
            "alerts.tactic_ids",
            "not a JSON array",
        ));
    }
    let model_versions = raw_json(
        op,
        "alerts.model_versions",
        text(19, "alerts.model_versions")?,
    )?;
    if !model_versions.get().starts_with('{') {
        return Err(StoreError::decode(
            op,
            "alerts.model_versions",
            "not a JSON object",
        ));
    }
    Ok(AlertJson {
        id: uuid_text(op, "alerts.id", text(1, "alerts.id")?)?,
        timestamp: time_text(op, "alerts.timestamp", text(2, "alerts.timestamp")?)?,
        facility_id: text(3, "alerts.facility_id")?,
        severity,
        title: text(5, "alerts.title")?,
        description: text(6, "alerts.description")?,
        status,
        attack_type: text(8, "alerts.attack_type")?,
        attack_name: text(9, "alerts.attack_name")?,
        correlation_confidence: row
            .try_get(10)
            .map_err(|e| StoreError::decode(op, "alerts.correlation_confidence", e))?,
        correlation_summary: text(11, "alerts.correlation_summary")?,
        context_analysis: raw_json(
            op,
            "alerts.context_analysis",
            text(12, "alerts.context_analysis")?,
        )?,
        first_seen: time_text(op, "alerts.first_seen", text(13, "alerts.first_seen")?)?,
        last_seen: time_text(op, "alerts.last_seen", text(14, "alerts.last_seen")?)?,
        tactic_ids,
        src_ip: ip_text(op, "alerts.src_ip", text(16, "alerts.src_ip")?)?,
        dst_ip: ip_text(op, "alerts.dst_ip", text(17, "alerts.dst_ip")?)?,
        flow_count: count(
            op,
            row.try_get(18)
                .map_err(|e| StoreError::decode(op, "alerts.flow_count", e))?,
        )?,
        model_versions,
    })
}

fn raw_json<'a>(
    op: &'static str,
    column: &'static str,
    s: &'a str,
) -> Result<&'a serde_json::value::RawValue, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::decode(op, column, e))
}

impl RawSource {
    fn into_row(self, op: &'static str) -> Result<AlertSourceRow, StoreError> {
        Ok(AlertSourceRow {
            id: uuid(op, "alert_sources.id", &self.id)?,
            alert_id: uuid(op, "alert_sources.alert_id", &self.alert_id)?,
            layer: u8::try_from(self.layer)
                .map_err(|e| StoreError::decode(op, "alert_sources.layer", e))?,
            model_name: self.model_name,
            model_version: self.model_version,
            confidence: self.confidence,
            detection_time: time::parse(op, "alert_sources.detection_time", &self.detection_time)?,
            evidence: self.evidence,
            context_evidence: from_json(
                op,
                "alert_sources.context_evidence",
                &self.context_evidence,
            )?,
        })
    }
}

/// Groups prediction rows joined with their techniques (rows of one prediction adjacent,
/// techniques in rank order) into predictions.
fn group_predictions(
    op: &'static str,
    raw: Vec<RawPrediction>,
) -> Result<Vec<PredictionRow>, StoreError> {
    let mut out: Vec<PredictionRow> = Vec::new();
    for r in raw {
        let id = uuid(op, "predictions.id", &r.id)?;
        if out.last().is_none_or(|p| p.id != id) {
            out.push(PredictionRow {
                id,
                timestamp: time::parse(op, "predictions.timestamp", &r.timestamp)?,
                facility_id: r.facility_id,
                alert_id: uuid(op, "predictions.alert_id", &r.alert_id)?,
                current_technique: r.current_technique,
                current_technique_name: r.current_technique_name,
                validated: r.validated,
                validation_time: r
                    .validation_time
                    .as_deref()
                    .map(|t| time::parse(op, "predictions.validation_time", t))
                    .transpose()?,
                model: r.model,
                observations: count(op, r.observations)?,
                predicted_techniques: Vec::new(),
            });
        }
        if let (Some(p), Some(technique_id), Some(technique_name), Some(probability), Some(rank)) = (
            out.last_mut(),
            r.technique_id,
            r.technique_name,
            r.probability,
            r.rank,
        ) {
            p.predicted_techniques.push(PredictedTechnique {
                technique_id,
                technique_name,
                probability,
                rank: u8::try_from(rank)
                    .map_err(|e| StoreError::decode(op, "predicted_techniques.rank", e))?,
                timeframe: r.timeframe.unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// An alert's row, sources, flow ids and prediction rows, as read.
type RawDetail = (RawAlert, Vec<RawSource>, Vec<String>, Vec<RawPrediction>);

/// A bind value of a query assembled at run time.
enum Arg {
    Text(String),
    Int(i64),
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The WHERE clause (`$1`…`$n`) and its arguments for an alert query, and whether it
/// filters only on columns that `alert_counters` has (severity, facility, status).
fn alert_filter(q: &AlertQuery) -> Result<(String, Vec<Arg>, bool), StoreError> {
    const OP: &str = "list_alerts";
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    let mut counted = true;
    let mut push = |clause: &dyn Fn(usize) -> String, arg: Arg| {
        args.push(arg);
        clauses.push(clause(args.len()));
    };
    if let Some(s) = q.severity {
        push(
            &|n| format!("severity = ${n}"),
            Arg::Text(s.as_str().into()),
        );
    }
    if let Some(f) = &q.facility_id {
        push(&|n| format!("facility_id = ${n}"), Arg::Text(f.clone()));
    }
    if let Some(s) = q.status {
        push(&|n| format!("status = ${n}"), Arg::Text(s.as_str().into()));
    }
    if let Some(needle) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        counted = false;
        push(
            &|n| {
                format!(
                    "(LOWER(title) LIKE ${n} ESCAPE '\\' OR LOWER(description) LIKE ${n} ESCAPE '\\' \
                     OR LOWER(attack_type) LIKE ${n} ESCAPE '\\' \
                     OR LOWER(attack_name) LIKE ${n} ESCAPE '\\')"
                )
            },
            Arg::Text(like_pattern(needle)),
        );
    }
    if let Some(since) = q.since {
        counted = false;
        push(
            &|n| format!("last_seen >= ${n}"),
            Arg::Text(time::fmt(OP, "since", since)?),
        );
    }
    if let Some(until) = q.until {
        counted = false;
        push(
            &|n| format!("first_seen <= ${n}"),
            Arg::Text(time::fmt(OP, "until", until)?),
        );
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    Ok((filter, args, counted))
}

/// Binds `$args` in order to the query `$q` (any engine: expands inside `on_engine!`).
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

/// Runs an [`AlertPageSql`] on engine `$DB`: the page's rows (`total` first) and the total,
/// counted on its own only when the page is empty (past the last page, or no alerts).
macro_rules! fetch_alert_page {
    ($DB:ident, $pool:expr, $count_sql:expr, $page_sql:expr, $args:expr, $page:expr, $limit:expr) => {{
        let filter_args = $args.len();
        $args.push(Arg::Int(i64::from($limit)));
        $args.push(Arg::Int(i64::from($page - 1) * i64::from($limit)));
        let rows = bind_args!(sqlx::query::<$DB>(AssertSqlSafe($page_sql)), &$args)
            .fetch_all($pool)
            .await
            .map_err(StoreError::sqlx("list_alerts: page"))?;
        let total: i64 = match rows.first() {
            Some(r) => sqlx::Row::try_get(r, 0)
                .map_err(|e| StoreError::decode("list_alerts", "total", e))?,
            None => {
                $args.truncate(filter_args);
                bind_args!(
                    sqlx::query_scalar::<$DB, i64>(AssertSqlSafe($count_sql)),
                    &$args
                )
                .fetch_one($pool)
                .await
                .map_err(StoreError::sqlx("list_alerts: count"))?
            }
        };
        (total, rows)
    }};
}

impl Store {
    /// Number of alerts (incidents).
    pub async fn count_alerts(&self) -> Result<u64, StoreError> {
        let n: i64 = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
                .fetch_one(pool)
                .await
                .map_err(StoreError::sqlx("count_alerts"))?
        });
        count("count_alerts", n)
    }

    /// Number of predictions.
    pub async fn count_predictions(&self) -> Result<u64, StoreError> {
        let n: i64 = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_scalar("SELECT COUNT(*) FROM predictions")
                .fetch_one(pool)
                .await
                .map_err(StoreError::sqlx("count_predictions"))?
        });
        count("count_predictions", n)
    }

    /// Number of classifications.
    pub async fn count_classifications(&self) -> Result<u64, StoreError> {
        let n: i64 = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_scalar("SELECT COUNT(*) FROM classifications")
                .fetch_one(pool)
                .await
                .map_err(StoreError::sqlx("count_classifications"))?
        });
        count("count_classifications", n)
    }

    /// Number of predictions, all of them (`None`) or those whose validation flag is
    /// `validated`.
    pub async fn count_predictions_where(
        &self,
        validated: Option<bool>,
    ) -> Result<u64, StoreError> {
        const OP: &str = "count_predictions_where";
        let n: i64 = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM predictions WHERE ($1 IS NULL OR validated = $1)",
            )
            .bind(validated)
            .fetch_one(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        count(OP, n)
    }

    /// One page of the alerts matching the filters, ordered by `last_seen` descending, then
    /// id (see [`AlertQuery`] for the filters). Without a `search`, `since` or `until`
    /// filter, `total` is summed from `alert_counters` instead of counted over the alerts.
    pub async fn list_alerts(&self, q: &AlertQuery) -> Result<AlertPage, StoreError> {
        const OP: &str = "list_alerts";
        let (total, rows, page, limit) = self.alert_page_rows(q).await?;
        let alerts = rows
            .into_iter()
            .map(|r| r.into_row(OP))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlertPage {
            alerts,
            total,
            page,
            pages: pages(total, limit),
            limit,
        })
    }

    /// The same page as [`Store::list_alerts`], serialized to exactly the JSON that
    /// `serde_json::to_vec(&list_alerts(q)?)` gives, without building the rows. For the API's
    /// hottest endpoint.
    ///
    /// The database gives the page's ids and versions (and the total); entries rendered
    /// before at those versions come from the store's cache (`rendered.rs`), and only the
    /// others are read in full, validated (ids, times, enums, addresses, and the JSON
    /// columns, which are copied through as they are) and rendered. An alert deleted between
    /// the two reads is left out of the page.
    ///
    /// # Errors
    ///
    /// As [`Store::list_alerts`]; a stored value that does not decode is
    /// [`StoreError::Decode`] naming its column.
    pub async fn list_alerts_json(&self, q: &AlertQuery) -> Result<Vec<u8>, StoreError> {
        const OP: &str = "list_alerts";
        let AlertPageSql {
            count_sql,
            page_sql,
            mut args,
            page,
            limit,
        } = alert_page_sql(q, "id, version")?;
        let (total, mut entries, missing) = on_engine!(self, |DB, pool, _w, _b| {
            let (total, rows) = fetch_alert_page!(DB, pool, count_sql, page_sql, args, page, limit);
            let mut entries = Vec::with_capacity(rows.len());
            let mut missing = Vec::new();
            for r in &rows {
                let id = uuid(OP, "alerts.id", text_at(OP, "alerts.id", r, 1)?)?;
                let version: i64 = sqlx::Row::try_get(r, 2)
                    .map_err(|e| StoreError::decode(OP, "alerts.version", e))?;
                let cached = self.rendered.get(id, version);
                if cached.is_none() {
                    missing.push(id);
                }
                entries.push((id, cached));
            }
            (total, entries, missing)
        });
        if !missing.is_empty() {
            let fresh = self.render_alerts(&missing).await?;
            for (id, entry) in &mut entries {
                if entry.is_none() {
                    *entry = fresh.get(id).cloned();
                }
            }
        }
        let total = count(OP, total)?;
        let entries: Vec<Arc<str>> = entries.into_iter().filter_map(|(_, e)| e).collect();
        let mut out = Vec::with_capacity(96 + entries.iter().map(|e| e.len() + 1).sum::<usize>());
        out.extend_from_slice(b"{\"alerts\":[");
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(e.as_bytes());
        }
        // As serde_json writes the rest of an `AlertPage`.
        let pages = pages(total, limit);
        write!(
            out,
            "],\"total\":{total},\"page\":{page},\"pages\":{pages},\"limit\":{limit}}}"
        )
        .map_err(|e| StoreError::decode(OP, "alerts", e))?;
        Ok(out)
    }

    /// Reads the alerts with these ids in full, renders their list entries and keeps them
    /// in the cache under the versions read. Ids of alerts that no longer exist are absent
    /// from the result.
    async fn render_alerts(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<str>>, StoreError> {
        const OP: &str = "list_alerts";
        // The ids as one JSON array: one statement text (and one prepared statement) for
        // any number of them.
        let ids_json = serde_json::to_string(ids).map_err(|e| StoreError::decode(OP, "id", e))?;
        on_engine!(self, |DB, pool, _w, _b| {
            let sql = match self.engine() {
                Engine::Sqlite => format!(
                    "SELECT version, {ALERT_COLUMNS} FROM alerts \
                     WHERE id IN (SELECT value FROM json_each($1))"
                ),
                Engine::Postgres => format!(
                    "SELECT version, {ALERT_COLUMNS} FROM alerts \
                     WHERE id IN (SELECT json_array_elements_text($1::json))"
                ),
            };
            let rows = sqlx::query::<DB>(AssertSqlSafe(sql))
                .bind(ids_json.as_str())
                .fetch_all(pool)
                .await
                .map_err(StoreError::sqlx("list_alerts: entries"))?;
            let mut fresh = HashMap::with_capacity(rows.len());
            for r in &rows {
                let version: i64 = sqlx::Row::try_get(r, 0)
                    .map_err(|e| StoreError::decode(OP, "alerts.version", e))?;
                let entry = alert_json(OP, r)?;
                let id = uuid(OP, "alerts.id", entry.id)?;
                let json: Arc<str> = serde_json::to_string(&entry)
                    .map_err(|e| StoreError::decode(OP, "alerts", e))?
                    .into();
                self.rendered.insert(id, version, json.clone());
                fresh.insert(id, json);
            }
            Ok(fresh)
        })
    }

    /// Total, raw rows, page and limit of an alert query.
    async fn alert_page_rows(
        &self,
        q: &AlertQuery,
    ) -> Result<(u64, Vec<RawAlert>, u32, u32), StoreError> {
        const OP: &str = "list_alerts";
        let AlertPageSql {
            count_sql,
            page_sql,
            mut args,
            page,
            limit,
        } = alert_page_sql(q, ALERT_COLUMNS)?;
        let (total, rows): (i64, Vec<RawAlert>) = on_engine!(self, |DB, pool, _w, _b| {
            let (total, rows) = fetch_alert_page!(DB, pool, count_sql, page_sql, args, page, limit);
            let rows = rows
                .iter()
                // By column name: the leading `total` is not one of them.
                .map(RawAlert::from_row)
                .collect::<Result<_, _>>()
                .map_err(StoreError::sqlx("list_alerts: page"))?;
            (total, rows)
        });
        Ok((count(OP, total)?, rows, page, limit))
    }

    /// An alert with its sources, flow ids and predictions; `None` if there is none with
    /// this id.
    pub async fn get_alert(&self, id: Uuid) -> Result<Option<AlertDetail>, StoreError> {
        const OP: &str = "get_alert";
        let key = id.to_string();
        let found: Option<RawDetail> = on_engine!(self, |DB, pool, _w, _b| {
            let raw: Option<RawAlert> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"
            )))
            .bind(&key)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::sqlx("get_alert: alert"))?;
            match raw {
                None => None,
                Some(raw) => {
                    let sources: Vec<RawSource> = sqlx::query_as(
                        "SELECT id, alert_id, layer, model_name, model_version, confidence, \
                             detection_time, evidence, context_evidence FROM alert_sources \
                             WHERE alert_id = $1 ORDER BY layer, model_name",
                    )
                    .bind(&key)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::sqlx("get_alert: sources"))?;
                    let flow_ids: Vec<String> = sqlx::query_scalar(
                        "SELECT flow_id FROM alert_flows WHERE alert_id = $1 ORDER BY flow_id",
                    )
                    .bind(&key)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::sqlx("get_alert: flows"))?;
                    let predictions: Vec<RawPrediction> = sqlx::query_as(AssertSqlSafe(format!(
                        "SELECT {PREDICTION_COLUMNS} FROM predictions p \
                                 LEFT JOIN predicted_techniques t ON t.prediction_id = p.id \
                                 WHERE p.alert_id = $1 ORDER BY p.timestamp, p.id, t.rank, t.id"
                    )))
                    .bind(&key)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::sqlx("get_alert: predictions"))?;
                    Some((raw, sources, flow_ids, predictions))
                }
            }
        });
        let Some((raw, sources, flow_ids, predictions)) = found else {
            return Ok(None);
        };
        let alert = raw.into_row(OP)?;
        let sources = sources
            .into_iter()
            .map(|s| s.into_row(OP))
            .collect::<Result<Vec<_>, _>>()?;
        let flow_ids = flow_ids
            .iter()
            .map(|f| uuid(OP, "alert_flows.flow_id", f))
            .collect::<Result<Vec<_>, _>>()?;
        let predictions = group_predictions(OP, predictions)?;
        Ok(Some(AlertDetail {
            alert,
            sources,
            flow_ids,
            predictions,
        }))
    }

    /// The stored flow records of an alert, ordered by start time, then flow id. Flows
    /// linked without a record are left out.
    pub async fn alert_flows(&self, id: Uuid) -> Result<Vec<FlowRecord>, StoreError> {
        const OP: &str = "alert_flows";
        let records: Vec<String> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_scalar(
                "SELECT f.record FROM alert_flows af JOIN flows f ON f.flow_id = af.flow_id \
                 WHERE af.alert_id = $1 ORDER BY f.ts_start, f.flow_id",
            )
            .bind(id.to_string())
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        records
            .iter()
            .map(|r| from_json(OP, "flows.record", r))
            .collect()
    }

    /// Alert counters: total, critical, unresolved (`new` or `acknowledged`),
    /// false positives. Summed from `alert_counters` (kept exact by triggers), not counted
    /// over the alerts.
    pub async fn alert_stats(&self) -> Result<AlertStats, StoreError> {
        const OP: &str = "alert_stats";
        let (total, critical, unresolved, false_positives): (i64, i64, i64, i64) =
            on_engine!(self, |DB, pool, _w, _b| {
                sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN severity = 'critical' THEN n ELSE 0 END), 0) \
                         AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN status IN ('new', 'acknowledged') \
                         THEN n ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN status = 'false-positive' THEN n ELSE 0 END), 0) \
                         AS BIGINT) \
                     FROM alert_counters",
                )
                .fetch_one(pool)
                .await
                .map_err(StoreError::sqlx(OP))?
            });
        Ok(AlertStats {
            total: count(OP, total)?,
            critical: count(OP, critical)?,
            unresolved: count(OP, unresolved)?,
            false_positives: count(OP, false_positives)?,
        })
    }

    /// Sets an alert's workflow status (an analyst's decision; replays never change it).
    /// Returns false when there is no alert with this id; otherwise announces
    /// [`Change::AlertUpdated`] once the change is committed.
    pub async fn set_alert_status(
        &self,
        id: Uuid,
        status: AlertStatus,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_alert_status";
        let affected = on_engine!(self, |DB, _pool, writer, begin| {
            let mut tx = writer
                .begin_with(begin)
                .await
                .map_err(StoreError::sqlx("set_alert_status: begin"))?;
            if self.engine() == Engine::Postgres {
                sqlx::query(PG_ALERT_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("set_alert_status: lock alerts"))?;
            }
            let affected = sqlx::query("UPDATE alerts SET status = $1 WHERE id = $2")
                .bind(status.as_str())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::sqlx(OP))?
                .rows_affected();
            tx.commit()
                .await
                .map_err(StoreError::sqlx("set_alert_status: commit"))?;
            affected
        });
        if affected > 0 {
            self.notify([Change::AlertUpdated(id)]);
        }
        Ok(affected > 0)
    }

    /// Marks a prediction validated at `at` (`Some`) or not validated (`None`). Returns
    /// false when there is no prediction with this id; otherwise announces
    /// [`Change::PredictionUpdated`] once the change is committed.
    pub async fn set_prediction_validated(
        &self,
        id: Uuid,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_prediction_validated";
        let at = at
            .map(|t| time::fmt(OP, "validation_time", t))
            .transpose()?;
        let affected = on_engine!(self, |DB, _pool, writer, _b| {
            sqlx::query("UPDATE predictions SET validated = $1, validation_time = $2 WHERE id = $3")
                .bind(at.is_some())
                .bind(at.as_deref())
                .bind(id.to_string())
                .execute(writer)
                .await
                .map_err(StoreError::sqlx(OP))?
                .rows_affected()
        });
        if affected > 0 {
            self.notify([Change::PredictionUpdated(id)]);
        }
        Ok(affected > 0)
    }

    /// Every alert with the flows it covers, both sorted by id.
    pub async fn alert_ids_with_flows(&self) -> Result<Vec<(Uuid, Vec<Uuid>)>, StoreError> {
        const OP: &str = "alert_ids_with_flows";
        let rows: Vec<(String, Option<String>)> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(
                "SELECT a.id, af.flow_id FROM alerts a \
                 LEFT JOIN alert_flows af ON af.alert_id = a.id ORDER BY a.id, af.flow_id",
            )
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        let mut out: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
        for (alert, flow) in rows {
            let alert = uuid(OP, "alerts.id", &alert)?;
            if out.last().is_none_or(|(a, _)| *a != alert) {
                out.push((alert, Vec::new()));
            }
            if let (Some(flow), Some((_, flows))) = (flow, out.last_mut()) {
                flows.push(uuid(OP, "alert_flows.flow_id", &flow)?);
            }
        }
        Ok(out)
    }

    /// Every flow linked to an alert, with the technique (`attack_type`) of its alert. A
    /// flow in several alerts maps to the smallest technique id among them.
    pub async fn flows_alerted(&self) -> Result<HashMap<Uuid, String>, StoreError> {
        const OP: &str = "flows_alerted";
        let rows: Vec<(String, String)> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(
                "SELECT af.flow_id, MIN(a.attack_type) FROM alert_flows af \
                 JOIN alerts a ON a.id = af.alert_id GROUP BY af.flow_id",
            )
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        rows.into_iter()
            .map(|(flow, technique)| Ok((uuid(OP, "alert_flows.flow_id", &flow)?, technique)))
            .collect()
    }

    /// Predictions, newest first (then by id), with their techniques in rank order;
    /// `validated` filters on the validation flag.
    pub async fn list_predictions(
        &self,
        limit: u32,
        offset: u32,
        validated: Option<bool>,
    ) -> Result<Vec<PredictionRow>, StoreError> {
        const OP: &str = "list_predictions";
        let raw: Vec<RawPrediction> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {PREDICTION_COLUMNS} FROM \
                 (SELECT * FROM predictions WHERE ($1 IS NULL OR validated = $1) \
                  ORDER BY timestamp DESC, id LIMIT $2 OFFSET $3) p \
                 LEFT JOIN predicted_techniques t ON t.prediction_id = p.id \
                 ORDER BY p.timestamp DESC, p.id, t.rank, t.id"
            )))
            .bind(validated)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        group_predictions(OP, raw)
    }

    /// A prediction with its techniques in rank order; `None` if there is none with this
    /// id.
    pub async fn get_prediction(&self, id: Uuid) -> Result<Option<PredictionRow>, StoreError> {
        const OP: &str = "get_prediction";
        let raw: Vec<RawPrediction> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {PREDICTION_COLUMNS} FROM predictions p \
                 LEFT JOIN predicted_techniques t ON t.prediction_id = p.id \
                 WHERE p.id = $1 ORDER BY t.rank, t.id"
            )))
            .bind(id.to_string())
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        Ok(group_predictions(OP, raw)?.into_iter().next())
    }

    /// The newest prediction: the greatest timestamp, and among equal timestamps the
    /// greatest id. `None` when there is none.
    pub async fn latest_prediction(&self) -> Result<Option<PredictionRow>, StoreError> {
        const OP: &str = "latest_prediction";
        let raw: Vec<RawPrediction> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {PREDICTION_COLUMNS} FROM \
                 (SELECT * FROM predictions ORDER BY timestamp DESC, id DESC LIMIT 1) p \
                 LEFT JOIN predicted_techniques t ON t.prediction_id = p.id \
                 ORDER BY t.rank, t.id"
            )))
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        Ok(group_predictions(OP, raw)?.into_iter().next())
    }

    /// For each distinct `current_technique`, its newest prediction (greatest timestamp,
    /// then greatest id) with its techniques in rank order; ordered by current technique.
    pub async fn latest_predictions_by_technique(&self) -> Result<Vec<PredictionRow>, StoreError> {
        const OP: &str = "latest_predictions_by_technique";
        let raw: Vec<RawPrediction> = on_engine!(self, |DB, pool, _w, _b| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {PREDICTION_COLUMNS} FROM \
                 (SELECT *, ROW_NUMBER() OVER (PARTITION BY current_technique \
                      ORDER BY timestamp DESC, id DESC) AS newest \
                  FROM predictions) p \
                 LEFT JOIN predicted_techniques t ON t.prediction_id = p.id \
                 WHERE p.newest = 1 \
                 ORDER BY p.current_technique, p.id, t.rank, t.id"
            )))
            .fetch_all(pool)
            .await
            .map_err(StoreError::sqlx(OP))?
        });
        group_predictions(OP, raw)
    }

    /// The techniques alerts were raised for: alerts grouped by (`attack_type`,
    /// `facility_id`), with their number and the latest `last_seen`; ordered by technique
    /// id, then facility. `technique_name` is the greatest `attack_name` of the group (the
    /// pipeline gives one technique one name).
    pub async fn techniques_seen(&self) -> Result<Vec<TechniqueSeen>, StoreError> {
        const OP: &str = "techniques_seen";
        let rows: Vec<(String, String, String, i64, String)> =
            on_engine!(self, |DB, pool, _w, _b| {
                sqlx::query_as(
                    "SELECT attack_type, MAX(attack_name), facility_id, COUNT(*), MAX(last_seen) \
                     FROM alerts GROUP BY attack_type, facility_id \
                     ORDER BY attack_type, facility_id",
                )
                .fetch_all(pool)
                .await
                .map_err(StoreError::sqlx(OP))?
            });
        rows.into_iter()
            .map(
                |(technique_id, technique_name, facility_id, alerts, last_seen)| {
                    Ok(TechniqueSeen {
                        technique_id,
                        technique_name,
                        facility_id,
                        alerts: count(OP, alerts)?,
                        last_seen: time::parse(OP, "alerts.last_seen", &last_seen)?,
                    })
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{ip_text, time_text, uuid_text};
    use crate::StoreError;

    fn decode_message(r: Result<&str, StoreError>) -> String {
        match r {
            Err(StoreError::Decode { message, .. }) => message,
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    #[test]
    fn stored_ids_must_be_canonical_uuids() {
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(uuid_text("t", "c", &id).unwrap(), id);
        assert!(decode_message(uuid_text("t", "c", &id.to_uppercase())).contains("canonical"));
        assert!(decode_message(uuid_text("t", "c", &id.replace('-', ""))).contains("canonical"));
        assert!(!decode_message(uuid_text("t", "c", "not-a-uuid")).contains("canonical"));
        assert!(!decode_message(uuid_text("t", "c", &format!("{}g", &id[..35]))).is_empty());
    }

    #[test]
    fn stored_times_must_be_in_the_stored_format() {
        let t = "2026-01-01T12:34:56.123456Z";
        assert_eq!(time_text("t", "c", t).unwrap(), t);
        // What serializing the parsed time writes is the same text.
        let parsed = fedics_core::time::parse(t).unwrap();
        assert_eq!(fedics_core::time::format(&parsed), t);
        for other in [
            "2026-01-01T12:34:56Z",
            "2026-01-01T12:34:56.123Z",
            "2026-01-01T12:34:56.123456789Z",
            "2026-01-01T12:34:56.123456+00:00",
        ] {
            assert!(
                decode_message(time_text("t", "c", other)).contains("format"),
                "{other}"
            );
        }
        for invalid in [
            "2026-01-01 12:34:56.123456Z",
            "2026-13-01T12:34:56.123456Z",
            "2026-02-30T12:34:56.123456Z",
            "2026-01-01T12:34:60.123456Z",
            "",
        ] {
            assert!(time_text("t", "c", invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn stored_addresses_must_be_canonical() {
        for ok in [
            "10.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            assert_eq!(ip_text("t", "c", ok).unwrap(), ok);
            // The shortcut for IPv4 relies on the parser taking only the canonical form.
            let ip: std::net::IpAddr = ok.parse().unwrap();
            assert_eq!(ip.to_string(), ok);
        }
        for bad in [
            "010.0.0.1",
            "10.0.0",
            "10.0.0.1 ",
            "0x0a.0.0.1",
            "2001:DB8::1",
            "2001:db8:0::1",
        ] {
            assert!(ip_text("t", "c", bad).is_err(), "{bad}");
        }
    }
}
