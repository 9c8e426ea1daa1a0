//! Idempotent writes.
//!
//! Every upsert merges commutatively, so a replay, in the same or any other order, leaves
//! the tables as they were. Where a column cannot be merged with min/max, the row carries a
//! merge key (`*_rev`) of the update that supplied it and an update replaces the column only
//! when its key is greater: the result is the value of the update with the greatest key,
//! whatever the order of arrival.

use std::collections::BTreeSet;

use fedics_core::{
    AlertEvent, AlertSource, AttackClassification, AttackPrediction, FlowRecord, Severity, ids,
};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::model::WriteBatch;
use crate::{Store, StoreError, time};

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

const LINK_FLOW: &str = "\
INSERT INTO alert_flows (alert_id, flow_id) VALUES ($1, $2) \
ON CONFLICT (alert_id, flow_id) DO NOTHING";

const INSERT_FLOW: &str = "\
INSERT INTO flows (flow_id, facility_id, ts_start, ts_end, src_ip, dst_ip, dst_port, label, \
    record) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
ON CONFLICT (flow_id) DO NOTHING";

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
VALUES ($1, $2, $3, $4, $5, $6, 0, NULL, $7, $8) \
ON CONFLICT (id) DO NOTHING";

const INSERT_TECHNIQUE: &str = "\
INSERT INTO predicted_techniques (id, prediction_id, technique_id, technique_name, \
    probability, rank, timeframe) \
VALUES ($1, $2, $3, $4, $5, $6, $7) \
ON CONFLICT (id) DO NOTHING";

const INSERT_CLASSIFICATION: &str = "\
INSERT INTO classifications (id, flow_id, facility_id, timestamp, technique_id, \
    technique_name, confidence, classifier, classifier_version, evidence) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
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
    /// The update's flow is linked in `alert_flows` and its record, if attached, stored in
    /// `flows`; `flow_count` is recounted. Each source is one row per (alert, model name)
    /// with the highest confidence and the latest evidence (greatest detection time). An
    /// attached prediction is stored like one in `predictions`. Classifications and
    /// predictions are inserted once by event id.
    pub async fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::sqlx("apply: begin"))?;
        let mut touched = BTreeSet::new();
        for alert in &batch.alerts {
            write_alert(&mut tx, alert).await?;
            touched.insert(alert.alert_id);
        }
        for alert_id in touched {
            sqlx::query(COUNT_FLOWS)
                .bind(alert_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::sqlx("apply: count alert flows"))?;
        }
        for c in &batch.classifications {
            write_classification(&mut tx, c).await?;
        }
        for p in &batch.predictions {
            write_prediction(&mut tx, p).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::sqlx("apply: commit"))?;
        tracing::debug!(
            target: "fedics_store",
            alerts = batch.alerts.len(),
            classifications = batch.classifications.len(),
            predictions = batch.predictions.len(),
            "batch applied"
        );
        Ok(())
    }
}

async fn write_alert(conn: &mut SqliteConnection, a: &AlertEvent) -> Result<(), StoreError> {
    let id = a.alert_id.to_string();
    let first_seen = time::fmt(OP, "alert.first_seen", a.first_seen)?;
    let last_seen = time::fmt(OP, "alert.last_seen", a.last_seen)?;
    let rank = severity_rank(a.severity);
    let headline_rev = format!("{rank}|{last_seen}|{}", a.event_id);
    let latest_rev = format!("{last_seen}|{}", a.event_id);
    let context = serde_json::json!({
        "src_ip": a.src_ip,
        "dst_ip": a.dst_ip,
        "tactic_ids": a.tactic_ids,
        "model_versions": a.model_versions,
    });
    sqlx::query(UPSERT_ALERT)
        .bind(&id)
        .bind(first_seen)
        .bind(&a.facility_id)
        .bind(a.severity.as_str())
        .bind(rank)
        .bind(&a.title)
        .bind(&a.description)
        .bind(a.status.as_str())
        .bind(&a.attack_type)
        .bind(&a.attack_name)
        .bind(a.correlation_confidence)
        .bind(&a.correlation_summary)
        .bind(json("alert.context_analysis", &context)?)
        .bind(last_seen)
        .bind(json("alert.tactic_ids", &a.tactic_ids)?)
        .bind(a.src_ip.to_string())
        .bind(a.dst_ip.to_string())
        .bind(json("alert.model_versions", &a.model_versions)?)
        .bind(headline_rev)
        .bind(latest_rev)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::sqlx("apply: upsert alert"))?;

    sqlx::query(LINK_FLOW)
        .bind(&id)
        .bind(a.flow_id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::sqlx("apply: link alert flow"))?;

    if let Some(flow) = &a.flow {
        if flow.flow_id != a.flow_id {
            tracing::warn!(
                target: "fedics_store",
                alert_id = %a.alert_id,
                event_flow_id = %a.flow_id,
                record_flow_id = %flow.flow_id,
                "alert update carries a flow record of another flow"
            );
        }
        write_flow(conn, flow).await?;
    }

    for s in &a.sources {
        write_source(conn, a.alert_id, &id, s).await?;
    }

    if let Some(p) = &a.prediction {
        write_prediction(conn, p).await?;
    }
    Ok(())
}

async fn write_flow(conn: &mut SqliteConnection, f: &FlowRecord) -> Result<(), StoreError> {
    sqlx::query(INSERT_FLOW)
        .bind(f.flow_id.to_string())
        .bind(&f.facility_id)
        .bind(time::fmt(OP, "flow.ts_start", f.ts_start)?)
        .bind(time::fmt(OP, "flow.ts_end", f.ts_end)?)
        .bind(f.src_ip.to_string())
        .bind(f.dst_ip.to_string())
        .bind(i64::from(f.dst_port))
        .bind(f.ground_truth.as_ref().map(|g| g.label.clone()))
        .bind(json("flow.record", f)?)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::sqlx("apply: insert flow"))?;
    Ok(())
}

async fn write_source(
    conn: &mut SqliteConnection,
    alert_id: Uuid,
    alert_id_text: &str,
    s: &AlertSource,
) -> Result<(), StoreError> {
    let detection_time = time::fmt(OP, "source.detection_time", s.detection_time)?;
    let context_evidence = json("source.context_evidence", &s.context_evidence)?;
    let layer = s.layer.to_string();
    let content = ids::derive(&[
        layer.as_bytes(),
        s.model_version.as_bytes(),
        s.evidence.as_bytes(),
        context_evidence.as_bytes(),
    ]);
    let evidence_rev = format!("{detection_time}|{content}");
    sqlx::query(UPSERT_SOURCE)
        .bind(source_id(alert_id, &s.model_name).to_string())
        .bind(alert_id_text)
        .bind(i64::from(s.layer))
        .bind(&s.model_name)
        .bind(&s.model_version)
        .bind(s.confidence)
        .bind(detection_time)
        .bind(&s.evidence)
        .bind(context_evidence)
        .bind(evidence_rev)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::sqlx("apply: upsert alert source"))?;
    Ok(())
}

async fn write_prediction(
    conn: &mut SqliteConnection,
    p: &AttackPrediction,
) -> Result<(), StoreError> {
    let observations = i64::try_from(p.observations).unwrap_or(i64::MAX);
    let inserted = sqlx::query(INSERT_PREDICTION)
        .bind(p.event_id.to_string())
        .bind(time::fmt(OP, "prediction.timestamp", p.timestamp)?)
        .bind(&p.facility_id)
        .bind(&p.current_technique)
        .bind(&p.current_technique_name)
        .bind(p.alert_id.to_string())
        .bind(&p.model)
        .bind(observations)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::sqlx("apply: insert prediction"))?
        .rows_affected();
    if inserted == 0 {
        // Stored before, with its techniques, in an earlier transaction.
        return Ok(());
    }
    let prediction_id = p.event_id.to_string();
    for t in &p.predicted {
        sqlx::query(INSERT_TECHNIQUE)
            .bind(predicted_technique_id(p.event_id, t.rank).to_string())
            .bind(&prediction_id)
            .bind(&t.technique_id)
            .bind(&t.technique_name)
            .bind(t.probability)
            .bind(i64::from(t.rank))
            .bind(&t.timeframe)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::sqlx("apply: insert predicted technique"))?;
    }
    Ok(())
}

async fn write_classification(
    conn: &mut SqliteConnection,
    c: &AttackClassification,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_CLASSIFICATION)
        .bind(c.event_id.to_string())
        .bind(c.flow_id.to_string())
        .bind(&c.facility_id)
        .bind(time::fmt(OP, "classification.timestamp", c.timestamp)?)
        .bind(&c.technique_id)
        .bind(&c.technique_name)
        .bind(c.confidence)
        .bind(&c.classifier)
        .bind(&c.classifier_version)
        .bind(json("classification.evidence", &c.evidence)?)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::sqlx("apply: insert classification"))?;
    Ok(())
}
