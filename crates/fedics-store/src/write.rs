//! Idempotent writes.
//!
//! Every upsert merges commutatively, so a replay, in the same or any other order, leaves
//! the tables as they were. Where a column cannot be merged with min/max, the row carries a
//! merge key (`*_rev`) of the update that supplied it and an update replaces the column only
//! when its key is greater: the result is the value of the update with the greatest key,
//! whatever the order of arrival.

use std::collections::{BTreeMap, HashSet};

use fedics_core::{AlertEvent, AlertSource, AttackPrediction, Severity, ids};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::model::{ClassificationRecord, StoredFlow, WriteBatch};
use crate::{Change, Engine, PG_ALERT_WRITE_LOCK, Store, StoreError, on_engine, time};

const OP: &str = "apply";

const UPSERT_ALERT: &str = "\
INSERT INTO alerts (id, timestamp, facility_id, severity, severity_rank, title, description, \
    status, attack_type, attack_name, correlation_confidence, correlation_summary, \
    context_analysis, first_seen, last_seen, tactic_ids, src_ip, dst_ip, flow_count, \
    model_versions, headline_rev, latest_rev) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $2, $14, $15, $16, $17, 0, \
    $18, $19, $20) \
ON CONFLICT (id) DO UPDATE SET \
    timestamp = CASE WHEN excluded.first_seen < alerts.first_seen \
        THEN excluded.first_seen ELSE alerts.first_seen END, \
    first_seen = CASE WHEN excluded.first_seen < alerts.first_seen \
        THEN excluded.first_seen ELSE alerts.first_seen END, \
    last_seen = CASE WHEN excluded.last_seen > alerts.last_seen \
        THEN excluded.last_seen ELSE alerts.last_seen END, \
    severity = CASE WHEN excluded.severity_rank > alerts.severity_rank \
        THEN excluded.severity ELSE alerts.severity END, \
    severity_rank = CASE WHEN excluded.severity_rank > alerts.severity_rank \
        THEN excluded.severity_rank ELSE alerts.severity_rank END, \
    correlation_confidence = CASE \
        WHEN excluded.correlation_confidence > alerts.correlation_confidence \
        THEN excluded.correlation_confidence ELSE alerts.correlation_confidence END, \
    title = CASE WHEN excluded.headline_rev > alerts.headline_rev \
        THEN excluded.title ELSE alerts.title END, \
    description = CASE WHEN excluded.headline_rev > alerts.headline_rev \
        THEN excluded.description ELSE alerts.description END, \
    correlation_summary = CASE WHEN excluded.headline_rev > alerts.headline_rev \
        THEN excluded.correlation_summary ELSE alerts.correlation_summary END, \
    attack_name = CASE WHEN excluded.headline_rev > alerts.headline_rev \
        THEN excluded.attack_name ELSE alerts.attack_name END, \
    headline_rev = CASE WHEN excluded.headline_rev > alerts.headline_rev \
        THEN excluded.headline_rev ELSE alerts.headline_rev END, \
    model_versions = CASE WHEN excluded.latest_rev > alerts.latest_rev \
        THEN excluded.model_versions ELSE alerts.model_versions END, \
    tactic_ids = CASE WHEN excluded.latest_rev > alerts.latest_rev \
        THEN excluded.tactic_ids ELSE alerts.tactic_ids END, \
    dst_ip = CASE WHEN excluded.latest_rev > alerts.latest_rev \
        THEN excluded.dst_ip ELSE alerts.dst_ip END, \
    context_analysis = CASE WHEN excluded.latest_rev > alerts.latest_rev \
        THEN excluded.context_analysis ELSE alerts.context_analysis END, \
    latest_rev = CASE WHEN excluded.latest_rev > alerts.latest_rev \
        THEN excluded.latest_rev ELSE alerts.latest_rev END";

const COUNT_FLOWS: &str = "\
UPDATE alerts SET flow_count = (SELECT COUNT(*) FROM alert_flows WHERE alert_id = $1) \
WHERE id = $1";

const UPSERT_SOURCE: &str = "\
INSERT INTO alert_sources (id, alert_id, layer, model_name, model_version, confidence, \
    detection_time, evidence, context_evidence, evidence_rev) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
ON CONFLICT (id) DO UPDATE SET \
    confidence = CASE WHEN excluded.confidence > alert_sources.confidence \
        THEN excluded.confidence ELSE alert_sources.confidence END, \
    layer = CASE WHEN excluded.evidence_rev > alert_sources.evidence_rev \
        THEN excluded.layer ELSE alert_sources.layer END, \
    model_version = CASE WHEN excluded.evidence_rev > alert_sources.evidence_rev \
        THEN excluded.model_version ELSE alert_sources.model_version END, \
    detection_time = CASE WHEN excluded.evidence_rev > alert_sources.evidence_rev \
        THEN excluded.detection_time ELSE alert_sources.detection_time END, \
    evidence = CASE WHEN excluded.evidence_rev > alert_sources.evidence_rev \
        THEN excluded.evidence ELSE alert_sources.evidence END, \
    context_evidence = CASE WHEN excluded.evidence_rev > alert_sources.evidence_rev \
        THEN excluded.context_evidence ELSE alert_sources.context_evidence END, \
    evidence_rev = CASE WHEN excluded.evidence_rev > alert_sources.evidence_rev \
        THEN excluded.evidence_rev ELSE alert_sources.evidence_rev END";

const INSERT_PREDICTION: &str = "\
INSERT INTO predictions (id, timestamp, facility_id, current_technique, \
    current_technique_name, alert_id, validated, validation_time, model, observations) \
VALUES ($1, $2, $3, $4, $5, $6, FALSE, NULL, $7, $8) \
ON CONFLICT (id) DO NOTHING";

/// Rank stored in `alerts.severity_rank`: low 0, medium 1, high 2, critical 3.
pub(crate) fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    }
}

/// Id of the source row of `model_name` in alert `alert_id`.
pub fn source_id(alert_id: Uuid, model_name: &str) -> Uuid {
    ids::derive(&[b"alert_source", alert_id.as_bytes(), model_name.as_bytes()])
}

/// Id of the predicted technique of rank `rank` in prediction `prediction_id`.
pub fn predicted_technique_id(prediction_id: Uuid, rank: u8) -> Uuid {
    ids::derive(&[prediction_id.as_bytes(), rank.to_string().as_bytes()])
}

fn json<T: serde::Serialize + ?Sized>(field: &'static str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Encode {
        op: OP,
        field,
        message: e.to_string(),
    })
}

impl Store {
    /// Writes a batch in one transaction: alert updates first, then classifications, then
    /// predictions. Idempotent and order independent: applying the same events again, or
    /// the same set in another order, changes nothing.
    ///
    /// An [`AlertEvent`] is one update of an incident (`alert_id`) that adds one flow. It is
    /// upserted by `alert_id`, merging with the stored row:
    /// * `first_seen` (and `timestamp`) = min, `last_seen` = max;
    /// * `severity` = the more severe, `correlation_confidence` = max;
    /// * `title`, `description`, `correlation_summary`, `attack_name` come from the update
    ///   with the highest (severity, last_seen, event_id): in arrival order, a newer update
    ///   replaces them when its severity is at least the stored one;
    /// * `model_versions`, `tactic_ids`, `dst_ip`, `context_analysis` come from the update
    ///   with the latest (last_seen, event_id);
    /// * `status`, `facility_id`, `attack_type`, `src_ip` are written only by the first
    ///   insert: the pipeline never overwrites an analyst's status.
    ///
    /// The update's flows are linked in `alert_flows`; `flow_count` is recounted. Flow
    /// records arrive with their classifications and are stored in `flows`. Each source is
    /// one row per (alert, model name) with the highest confidence and the latest evidence
    /// (greatest detection time). An attached prediction is stored like one in
    /// `predictions`. Classifications and predictions are inserted once by event id.
    ///
    /// The updates of one alert within a batch are first folded in memory with the same
    /// merge rules (they are associative and commutative), so a flood of updates to one
    /// incident costs one upsert, and flow links, flows, classifications and predicted
    /// techniques are inserted with multi-row statements: round trips, not rows, are what
    /// costs. On SQLite the transaction runs on the store's one writer connection.
    ///
    /// After the commit, [`Store::subscribe_changes`] receives [`Change::AlertCreated`] for
    /// each alert id that was absent when the transaction looked (inside the transaction,
    /// before its upserts), [`Change::AlertUpdated`] for the other alerts of the batch, and
    /// [`Change::PredictionCreated`] for each prediction inserted by this batch. Alert
    /// writers run one at a time (SQLite's one writer connection; on PostgreSQL a
    /// transaction-level advisory lock, see `PG_ALERT_WRITE_LOCK`), so that check is exact.
    pub async fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        // Everything that can fail on encoding is prepared before the transaction opens.
        let mut folds: BTreeMap<Uuid, AlertFold<'_>> = BTreeMap::new();
        let mut source_folds: BTreeMap<(Uuid, &str), SourceFold> = BTreeMap::new();
        let mut links: Vec<(String, String)> = Vec::with_capacity(batch.alerts.len());
        let mut flows: Vec<FlowRow> = Vec::new();
        let mut predictions: Vec<&AttackPrediction> = Vec::new();
        for a in &batch.alerts {
            let update = AlertFold::new(a)?;
            match folds.get_mut(&a.alert_id) {
                Some(f) => f.merge(update),
                None => {
                    folds.insert(a.alert_id, update);
                }
            }
            let alert_id = a.alert_id.to_string();
            for f in &a.flow_ids {
                links.push((alert_id.clone(), f.to_string()));
            }
            for src in &a.sources {
                let update = SourceFold::new(src)?;
                match source_folds.get_mut(&(a.alert_id, src.model_name.as_str())) {
                    Some(f) => f.merge(update),
                    None => {
                        source_folds.insert((a.alert_id, src.model_name.as_str()), update);
                    }
                }
            }
            if let Some(p) = &a.prediction {
                predictions.push(p);
            }
        }
        predictions.extend(batch.predictions.iter());
        let alerts = folds
            .iter()
            .map(|(id, f)| f.row(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let sources: Vec<SourceRow<'_>> = source_folds
            .iter()
            .map(|((alert_id, model_name), s)| s.row(*alert_id, model_name))
            .collect();
        let predictions = predictions
            .into_iter()
            .map(NewPrediction::new)
            .collect::<Result<Vec<_>, _>>()?;
        let classifications = batch
            .classifications
            .iter()
            .map(ClassificationRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        for c in &batch.classifications {
            if let Some(f) = &c.flow {
                if f.flow_id != c.flow_id {
                    tracing::warn!(
                        target: "fedics_store",
                        classification = %c.id,
                        flow_id = %c.flow_id,
                        record_flow_id = %f.flow_id,
                        "classification carries the record of another flow; stored under its own id"
                    );
                }
                flows.push(FlowRow::new(f)?);
            }
        }

        let prepared_ms = started.elapsed().as_secs_f64() * 1e3;
        let (existing, new_predictions) = on_engine!(self, |DB, _pool, writer, begin| {
            let mut tx = writer
                .begin_with(begin)
                .await
                .map_err(StoreError::sqlx("apply: begin"))?;
            if self.engine() == Engine::Postgres && !alerts.is_empty() {
                sqlx::query(PG_ALERT_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: lock alerts"))?;
            }

            // Which alerts exist already (for the change feed).
            let mut existing: HashSet<String> = HashSet::new();
            for chunk in alerts.chunks(IDS_PER_STATEMENT) {
                let mut q = QueryBuilder::<DB>::new("SELECT id FROM alerts WHERE id IN (");
                let mut ids = q.separated(", ");
                for a in chunk {
                    ids.push_bind(a.id.as_str());
                }
                q.push(")");
                let found: Vec<String> = q
                    .build_query_scalar()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: find existing alerts"))?;
                existing.extend(found);
            }

            for a in &alerts {
                sqlx::query(UPSERT_ALERT)
                    .bind(a.id.as_str())
                    .bind(a.first_seen)
                    .bind(a.facility_id)
                    .bind(a.severity)
                    .bind(a.rank)
                    .bind(a.title)
                    .bind(a.description)
                    .bind(a.status)
                    .bind(a.attack_type)
                    .bind(a.attack_name)
                    .bind(a.confidence)
                    .bind(a.correlation_summary)
                    .bind(a.context_analysis.as_str())
                    .bind(a.last_seen)
                    .bind(a.tactic_ids.as_str())
                    .bind(a.src_ip.as_str())
                    .bind(a.dst_ip.as_str())
                    .bind(a.model_versions.as_str())
                    .bind(a.headline_rev)
                    .bind(a.latest_rev)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: upsert alert"))?;
            }
            for chunk in owned_chunks(links) {
                let mut q = QueryBuilder::<DB>::new("INSERT INTO alert_flows (alert_id, flow_id) ");
                q.push_values(chunk, |mut b, (a, f)| {
                    b.push_bind(a).push_bind(f);
                });
                q.push(" ON CONFLICT (alert_id, flow_id) DO NOTHING");
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: link alert flows"))?;
            }
            for chunk in owned_chunks(flows) {
                let mut q = QueryBuilder::<DB>::new(
                    "INSERT INTO flows (flow_id, facility_id, ts_start, ts_end, src_ip, dst_ip, \
                     dst_port, label, record) ",
                );
                q.push_values(chunk, |mut b, f| {
                    b.push_bind(f.flow_id)
                        .push_bind(f.facility_id)
                        .push_bind(f.ts_start)
                        .push_bind(f.ts_end)
                        .push_bind(f.src_ip)
                        .push_bind(f.dst_ip)
                        .push_bind(f.dst_port)
                        .push_bind(f.label)
                        .push_bind(f.record);
                });
                q.push(" ON CONFLICT (flow_id) DO NOTHING");
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: insert flows"))?;
            }
            for s in &sources {
                sqlx::query(UPSERT_SOURCE)
                    .bind(s.id.as_str())
                    .bind(s.alert_id.as_str())
                    .bind(s.layer)
                    .bind(s.model_name)
                    .bind(s.model_version)
                    .bind(s.confidence)
                    .bind(s.detection_time)
                    .bind(s.evidence)
                    .bind(s.context_evidence)
                    .bind(s.evidence_rev)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: upsert alert source"))?;
            }
            for a in &alerts {
                sqlx::query(COUNT_FLOWS)
                    .bind(a.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: count alert flows"))?;
            }
            for chunk in owned_chunks(classifications) {
                let mut q = QueryBuilder::<DB>::new(
                    "INSERT INTO classifications (id, flow_id, facility_id, timestamp, \
                     technique_id, technique_name, confidence, classifier, classifier_version, \
                     evidence) ",
                );
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(c.id)
                        .push_bind(c.flow_id)
                        .push_bind(c.facility_id)
                        .push_bind(c.timestamp)
                        .push_bind(c.technique_id)
                        .push_bind(c.technique_name)
                        .push_bind(c.confidence)
                        .push_bind(c.classifier)
                        .push_bind(c.classifier_version)
                        .push_bind(c.evidence);
                });
                q.push(" ON CONFLICT (id) DO NOTHING");
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: insert classifications"))?;
            }
            // Predictions one by one, to learn which are new: only those get their
            // techniques (a stored prediction has them from an earlier transaction).
            let mut new_predictions: Vec<Uuid> = Vec::new();
            let mut techniques: Vec<(&str, &TechniqueRow<'_>)> = Vec::new();
            for p in &predictions {
                let inserted = sqlx::query(INSERT_PREDICTION)
                    .bind(p.id.as_str())
                    .bind(p.timestamp.as_str())
                    .bind(p.facility_id)
                    .bind(p.current_technique)
                    .bind(p.current_technique_name)
                    .bind(p.alert_id.as_str())
                    .bind(p.model)
                    .bind(p.observations)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: insert prediction"))?
                    .rows_affected();
                if inserted > 0 {
                    new_predictions.push(p.event_id);
                    techniques.extend(p.techniques.iter().map(|t| (p.id.as_str(), t)));
                }
            }
            for chunk in owned_chunks(techniques) {
                let mut q = QueryBuilder::<DB>::new(
                    "INSERT INTO predicted_techniques (id, prediction_id, technique_id, \
                     technique_name, probability, rank, timeframe) ",
                );
                q.push_values(chunk, |mut b, (prediction_id, t)| {
                    b.push_bind(t.id.as_str())
                        .push_bind(prediction_id)
                        .push_bind(t.technique_id)
                        .push_bind(t.technique_name)
                        .push_bind(t.probability)
                        .push_bind(t.rank)
                        .push_bind(t.timeframe);
                });
                q.push(" ON CONFLICT (id) DO NOTHING");
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::sqlx("apply: insert predicted techniques"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::sqlx("apply: commit"))?;
            (existing, new_predictions)
        });
        self.notify(
            alerts
                .iter()
                .map(|a| {
                    if existing.contains(&a.id) {
                        Change::AlertUpdated(a.uuid)
                    } else {
                        Change::AlertCreated(a.uuid)
                    }
                })
                .chain(new_predictions.into_iter().map(Change::PredictionCreated)),
        );
        tracing::debug!(
            target: "fedics_store",
            engine = self.engine().as_str(),
            alerts = batch.alerts.len(),
            classifications = batch.classifications.len(),
            predictions = batch.predictions.len(),
            prepared_ms,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "batch applied"
        );
        Ok(())
    }
}

/// Splits `rows` into owned chunks of [`ROWS_PER_STATEMENT`], so their strings move into
/// the statement's arguments instead of being copied again.
fn owned_chunks<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut rows = rows.into_iter().peekable();
    std::iter::from_fn(move || {
        rows.peek()?;
        Some(rows.by_ref().take(ROWS_PER_STATEMENT).collect())
    })
}

/// Rows per multi-row INSERT (10 columns x 64 rows stays far below SQLite's and
/// PostgreSQL's bind-parameter limits).
const ROWS_PER_STATEMENT: usize = 64;

/// Ids per `IN (…)` list.
const IDS_PER_STATEMENT: usize = 512;

/// The bound values of one alert upsert, folded over a batch's updates of that alert with
/// the same rules the SQL upsert applies against the stored row.
struct AlertFold<'a> {
    first_seen: String,
    last_seen: String,
    rank: i64,
    severity: &'static str,
    confidence: f64,
    headline_rev: String,
    headline: &'a AlertEvent,
    latest_rev: String,
    latest: &'a AlertEvent,
    /// Supplies the insert-only columns (status, facility, attack type, source ip).
    origin: &'a AlertEvent,
}

impl<'a> AlertFold<'a> {
    fn new(a: &'a AlertEvent) -> Result<Self, StoreError> {
        let first_seen = time::fmt(OP, "alert.first_seen", a.first_seen)?;
        let last_seen = time::fmt(OP, "alert.last_seen", a.last_seen)?;
        let rank = severity_rank(a.severity);
        Ok(Self {
            headline_rev: format!("{rank}|{last_seen}|{}", a.event_id),
            latest_rev: format!("{last_seen}|{}", a.event_id),
            first_seen,
            last_seen,
            rank,
            severity: a.severity.as_str(),
            confidence: a.correlation_confidence,
            headline: a,
            latest: a,
            origin: a,
        })
    }

    fn merge(&mut self, o: Self) {
        if o.first_seen < self.first_seen {
            self.first_seen = o.first_seen;
        }
        if o.last_seen > self.last_seen {
            self.last_seen = o.last_seen;
        }
        if o.rank > self.rank {
            self.rank = o.rank;
            self.severity = o.severity;
        }
        if o.confidence > self.confidence {
            self.confidence = o.confidence;
        }
        if o.headline_rev > self.headline_rev {
            self.headline_rev = o.headline_rev;
            self.headline = o.headline;
        }
        if o.latest_rev > self.latest_rev {
            self.latest_rev = o.latest_rev;
            self.latest = o.latest;
        }
        if o.origin.event_id < self.origin.event_id {
            self.origin = o.origin;
        }
    }

    /// The bound values of the upsert of alert `id`.
    fn row(&self, id: Uuid) -> Result<AlertUpsert<'_>, StoreError> {
        let (h, l, o) = (self.headline, self.latest, self.origin);
        let context = serde_json::json!({
            "src_ip": l.src_ip,
            "dst_ip": l.dst_ip,
            "tactic_ids": l.tactic_ids,
            "model_versions": l.model_versions,
        });
        Ok(AlertUpsert {
            uuid: id,
            id: id.to_string(),
            first_seen: &self.first_seen,
            last_seen: &self.last_seen,
            facility_id: &o.facility_id,
            severity: self.severity,
            rank: self.rank,
            title: &h.title,
            description: &h.description,
            status: o.status.as_str(),
            attack_type: &o.attack_type,
            attack_name: &h.attack_name,
            confidence: self.confidence,
            correlation_summary: &h.correlation_summary,
            context_analysis: json("alert.context_analysis", &context)?,
            tactic_ids: json("alert.tactic_ids", &l.tactic_ids)?,
            src_ip: o.src_ip.to_string(),
            dst_ip: l.dst_ip.to_string(),
            model_versions: json("alert.model_versions", &l.model_versions)?,
            headline_rev: &self.headline_rev,
            latest_rev: &self.latest_rev,
        })
    }
}

/// The bound values of one alert upsert (`UPSERT_ALERT`).
struct AlertUpsert<'a> {
    uuid: Uuid,
    id: String,
    first_seen: &'a str,
    last_seen: &'a str,
    facility_id: &'a str,
    severity: &'static str,
    rank: i64,
    title: &'a str,
    description: &'a str,
    status: &'static str,
    attack_type: &'a str,
    attack_name: &'a str,
    confidence: f64,
    correlation_summary: &'a str,
    context_analysis: String,
    tactic_ids: String,
    src_ip: String,
    dst_ip: String,
    model_versions: String,
    headline_rev: &'a str,
    latest_rev: &'a str,
}

/// One source row, folded over a batch (max confidence, evidence of the greatest rev).
struct SourceFold {
    confidence: f64,
    evidence_rev: String,
    layer: i64,
    model_version: String,
    detection_time: String,
    evidence: String,
    context_evidence: String,
}

impl SourceFold {
    fn new(s: &AlertSource) -> Result<Self, StoreError> {
        let detection_time = time::fmt(OP, "source.detection_time", s.detection_time)?;
        let context_evidence = json("source.context_evidence", &s.context_evidence)?;
        let layer = s.layer.to_string();
        let content = ids::derive(&[
            layer.as_bytes(),
            s.model_version.as_bytes(),
            s.evidence.as_bytes(),
            context_evidence.as_bytes(),
        ]);
        Ok(Self {
            confidence: s.confidence,
            evidence_rev: format!("{detection_time}|{content}"),
            layer: i64::from(s.layer),
            model_version: s.model_version.clone(),
            detection_time,
            evidence: s.evidence.clone(),
            context_evidence,
        })
    }

    fn merge(&mut self, o: Self) {
        let confidence = self.confidence.max(o.confidence);
        if o.evidence_rev > self.evidence_rev {
            *self = o;
        }
        self.confidence = confidence;
    }

    /// The bound values of the upsert of the source row of `model_name` in `alert_id`.
    fn row<'a>(&'a self, alert_id: Uuid, model_name: &'a str) -> SourceRow<'a> {
        SourceRow {
            id: source_id(alert_id, model_name).to_string(),
            alert_id: alert_id.to_string(),
            layer: self.layer,
            model_name,
            model_version: &self.model_version,
            confidence: self.confidence,
            detection_time: &self.detection_time,
            evidence: &self.evidence,
            context_evidence: &self.context_evidence,
            evidence_rev: &self.evidence_rev,
        }
    }
}

/// The bound values of one source upsert (`UPSERT_SOURCE`).
struct SourceRow<'a> {
    id: String,
    alert_id: String,
    layer: i64,
    model_name: &'a str,
    model_version: &'a str,
    confidence: f64,
    detection_time: &'a str,
    evidence: &'a str,
    context_evidence: &'a str,
    evidence_rev: &'a str,
}

struct FlowRow {
    flow_id: String,
    facility_id: String,
    ts_start: String,
    ts_end: String,
    src_ip: String,
    dst_ip: String,
    dst_port: i64,
    label: Option<String>,
    record: String,
}

impl FlowRow {
    fn new(f: &StoredFlow) -> Result<Self, StoreError> {
        Ok(Self {
            flow_id: f.flow_id.to_string(),
            facility_id: f.facility_id.clone(),
            ts_start: time::fmt(OP, "flow.ts_start", f.ts_start)?,
            ts_end: time::fmt(OP, "flow.ts_end", f.ts_end)?,
            src_ip: f.src_ip.to_string(),
            dst_ip: f.dst_ip.to_string(),
            dst_port: i64::from(f.dst_port),
            label: f.label.clone(),
            record: f.record_json.clone(),
        })
    }
}

struct ClassificationRow {
    id: String,
    flow_id: String,
    facility_id: String,
    timestamp: String,
    technique_id: String,
    technique_name: String,
    confidence: f64,
    classifier: String,
    classifier_version: String,
    evidence: String,
}

impl ClassificationRow {
    fn new(c: &ClassificationRecord) -> Result<Self, StoreError> {
        Ok(Self {
            id: c.id.to_string(),
            flow_id: c.flow_id.to_string(),
            facility_id: c.facility_id.clone(),
            timestamp: time::fmt(OP, "classification.timestamp", c.timestamp)?,
            technique_id: c.technique_id.clone(),
            technique_name: c.technique_name.clone(),
            confidence: c.confidence,
            classifier: c.classifier.clone(),
            classifier_version: c.classifier_version.clone(),
            evidence: c.evidence_json.clone(),
        })
    }
}

/// The bound values of one prediction insert (`INSERT_PREDICTION`) and of its techniques.
struct NewPrediction<'a> {
    event_id: Uuid,
    id: String,
    timestamp: String,
    facility_id: &'a str,
    current_technique: &'a str,
    current_technique_name: &'a str,
    alert_id: String,
    model: &'a str,
    observations: i64,
    techniques: Vec<TechniqueRow<'a>>,
}

/// One predicted technique (its prediction's id is bound beside it).
struct TechniqueRow<'a> {
    id: String,
    technique_id: &'a str,
    technique_name: &'a str,
    probability: f64,
    rank: i64,
    timeframe: &'a str,
}

impl<'a> NewPrediction<'a> {
    fn new(p: &'a AttackPrediction) -> Result<Self, StoreError> {
        Ok(Self {
            event_id: p.event_id,
            id: p.event_id.to_string(),
            timestamp: time::fmt(OP, "prediction.timestamp", p.timestamp)?,
            facility_id: &p.facility_id,
            current_technique: &p.current_technique,
            current_technique_name: &p.current_technique_name,
            alert_id: p.alert_id.to_string(),
            model: &p.model,
            observations: i64::try_from(p.observations).unwrap_or(i64::MAX),
            techniques: p
                .predicted
                .iter()
                .map(|t| TechniqueRow {
                    id: predicted_technique_id(p.event_id, t.rank).to_string(),
                    technique_id: &t.technique_id,
                    technique_name: &t.technique_name,
                    probability: t.probability,
                    rank: i64::from(t.rank),
                    timeframe: &t.timeframe,
                })
                .collect(),
        })
    }
}
