//! Store tests, each on a fresh database file in a temporary directory.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use fedics_core::{
    AlertEvent, AlertSource, AlertStatus, AttackClassification, AttackPrediction, DetectorEvidence,
    DirStats, FlowContext, FlowRecord, FunctionCodeCount, GroundTruth, IatStats, IcsProtocol,
    IcsSection, ModbusTable, PredictedTechnique, RegisterValue, SCHEMA_VERSION, Severity, TcpFlags,
    Transport, Validate, ids,
};
use sqlx::AssertSqlSafe;
use tempfile::TempDir;
use uuid::Uuid;

use crate::{AlertQuery, AlertRow, Store, StoreError, WriteBatch, truncate_time};

// ---------------------------------------------------------------------------------------
// Helpers

const TABLES: &[&str] = &[
    "alerts",
    "alert_sources",
    "alert_flows",
    "flows",
    "classifications",
    "predictions",
    "predicted_techniques",
    "fl_rounds",
    "fl_clients",
];

struct Db {
    _dir: TempDir,
    path: PathBuf,
    store: Store,
}

async fn fresh() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fedics.db");
    let store = Store::open(path.to_str().unwrap()).await.expect("open");
    Db {
        _dir: dir,
        path,
        store,
    }
}

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// `base() + secs` seconds.
fn t(secs: i64) -> DateTime<Utc> {
    base() + Duration::seconds(secs)
}

fn uid(parts: &[&str]) -> Uuid {
    let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    ids::derive(&parts)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A valid Modbus flow record with awkward floats and nanosecond times.
fn flow_record(flow_id: Uuid, facility: &str, start: DateTime<Utc>, label: &str) -> FlowRecord {
    let start = start + Duration::nanoseconds(123_456_789);
    FlowRecord {
        schema_version: SCHEMA_VERSION,
        flow_id,
        facility_id: facility.into(),
        ts_start: start,
        ts_end: start + Duration::milliseconds(1500),
        duration_ms: 1_500.000_000_1,
        src_ip: ip("10.0.0.66"),
        src_port: 50_123,
        dst_ip: ip("10.0.1.10"),
        dst_port: 502,
        transport: Transport::Tcp,
        fwd: DirStats {
            packets: 12,
            bytes: 840,
        },
        bwd: DirStats {
            packets: 10,
            bytes: 700,
        },
        tcp_flags: TcpFlags {
            syn: 1,
            ack: 21,
            fin: 1,
            rst: 0,
            psh: 10,
            urg: 0,
        },
        iat: IatStats {
            mean_ms: 0.1 + 0.2,
            std_ms: 1.0 / 3.0,
            min_ms: 1e-9,
            max_ms: 123_456.789_012_345,
        },
        ics: Some(IcsSection {
            protocol: IcsProtocol::ModbusTcp,
            unit_id: Some(1),
            requests: 5,
            responses: 5,
            function_codes: vec![FunctionCodeCount { code: 6, count: 5 }],
            ranges: vec![],
            writes: vec![RegisterValue {
                table: ModbusTable::HoldingRegister,
                address: 40_001,
                value: 65_535,
            }],
            reads: vec![],
            exceptions: vec![],
        }),
        ground_truth: Some(GroundTruth {
            label: label.into(),
            campaign_id: Some("c1".into()),
            stage: Some(2),
        }),
    }
}

fn prediction(
    id: Uuid,
    alert_id: Uuid,
    facility: &str,
    at: DateTime<Utc>,
    current: &str,
) -> AttackPrediction {
    AttackPrediction {
        schema_version: SCHEMA_VERSION,
        event_id: id,
        facility_id: facility.into(),
        timestamp: at,
        alert_id,
        current_technique: current.into(),
        current_technique_name: format!("name of {current}"),
        predicted: vec![
            PredictedTechnique {
                technique_id: "T0831".into(),
                technique_name: "Manipulation of Control".into(),
                probability: 0.6,
                rank: 1,
                timeframe: "5-15 minutes".into(),
            },
            PredictedTechnique {
                technique_id: "T0813".into(),
                technique_name: "Denial of Control".into(),
                probability: 0.3,
                rank: 2,
                timeframe: "15-60 minutes".into(),
            },
            PredictedTechnique {
                technique_id: "T0879".into(),
                technique_name: "Damage to Property".into(),
                probability: 0.1,
                rank: 3,
                timeframe: "1-4 hours".into(),
            },
        ],
        model: "markov-v1".into(),
        observations: 42,
    }
}

/// Update number `n` of incident `alert_id`: adds flow `derive(alert_id, n)` (with its
/// record), seen from `first` to `last` seconds after `base()`.
fn event(
    alert_id: Uuid,
    n: u32,
    severity: Severity,
    first: i64,
    last: i64,
    confidence: f64,
) -> AlertEvent {
    let facility = "plant-a";
    let event_id = uid(&[&alert_id.to_string(), "event", &n.to_string()]);
    let flow_id = uid(&[&alert_id.to_string(), "flow", &n.to_string()]);
    let sources = vec![
        AlertSource {
            layer: 1,
            model_name: "rules".into(),
            model_version: "rules-1".into(),
            confidence: confidence * 0.9,
            detection_time: t(last),
            evidence: format!("rule fired on flow {n}"),
            context_evidence: serde_json::json!({ "flow": n, "rule": "unauthorized_write" }),
        },
        AlertSource {
            layer: 1,
            model_name: "iforest".into(),
            model_version: format!("iforest-{}", n % 2),
            confidence: 0.5 + f64::from(n % 5) / 10.0,
            detection_time: t(last),
            evidence: format!("score {n}"),
            context_evidence: serde_json::json!({ "score": 0.5 + f64::from(n % 5) / 10.0 }),
        },
        AlertSource {
            layer: 2,
            model_name: "classifier".into(),
            model_version: "clf-3".into(),
            confidence,
            detection_time: t(last),
            evidence: format!("T0855 on flow {n}"),
            context_evidence: serde_json::Value::Null,
        },
    ];
    let ev = AlertEvent {
        schema_version: SCHEMA_VERSION,
        event_id,
        alert_id,
        facility_id: facility.into(),
        timestamp: t(last) + Duration::milliseconds(250),
        first_seen: t(first),
        last_seen: t(last),
        severity,
        title: format!("Unauthorized command message ({})", severity.as_str()),
        description: format!("update {n}: writes to holding registers from 10.0.0.66"),
        status: AlertStatus::New,
        attack_type: "T0855".into(),
        attack_name: "Unauthorized Command Message".into(),
        tactic_ids: vec!["TA0104".into()],
        correlation_confidence: confidence,
        correlation_summary: format!("{} flows correlated", n + 1),
        src_ip: ip("10.0.0.66"),
        dst_ip: ip(&format!("10.0.1.{}", 10 + n % 3)),
        sources,
        flow_ids: vec![flow_id],
        model_versions: BTreeMap::from([
            ("rules".to_string(), "rules-1".to_string()),
            ("iforest".to_string(), format!("iforest-{}", n % 2)),
        ]),
        prediction: None,
    };
    ev.validate().expect("valid alert event");
    ev
}

/// The record of an alert update's flow, as the sample batch's classifications carry it.
fn flow_of(a: &AlertEvent) -> FlowRecord {
    flow_record(a.flow_ids[0], &a.facility_id, a.last_seen, "T0855")
}

fn record(c: &AttackClassification) -> crate::ClassificationRecord {
    crate::ClassificationRecord::from_event(c).unwrap()
}

fn classification(flow_id: Uuid, n: u32) -> AttackClassification {
    let c = AttackClassification {
        schema_version: SCHEMA_VERSION,
        event_id: uid(&["classification", &n.to_string()]),
        flow_id,
        facility_id: "plant-a".into(),
        timestamp: t(i64::from(n)),
        technique_id: "T0855".into(),
        technique_name: "Unauthorized Command Message".into(),
        tactic_ids: vec!["TA0104".into()],
        confidence: 0.8,
        classifier: "rules-map".into(),
        classifier_version: "1".into(),
        evidence: vec![DetectorEvidence {
            detector: "rules".into(),
            layer: 1,
            model_version: "rules-1".into(),
            score: Some(0.9),
            threshold: Some(0.5),
            is_anomaly: true,
            findings: vec![],
            top_features: vec![],
        }],
        missing_detectors: vec![],
        context: FlowContext {
            src_ip: ip("10.0.0.66"),
            src_port: 50_123,
            dst_ip: ip("10.0.1.10"),
            dst_port: 502,
            transport: Transport::Tcp,
            ics_protocol: Some(IcsProtocol::ModbusTcp),
            ts_start: t(i64::from(n)),
            ts_end: t(i64::from(n) + 1),
        },
        flow: None,
    };
    c.validate().expect("valid classification");
    c
}

/// Three incidents with four updates each (one carrying a prediction; two incidents with
/// two updates at their top severity), classifications of their flows and a standalone
/// prediction.
fn sample_batch() -> WriteBatch {
    let mut alerts = Vec::new();
    for (i, name) in ["inc-1", "inc-2", "inc-3"].iter().enumerate() {
        let alert_id = uid(&[name]);
        use Severity::*;
        let sev = [
            [Medium, High, Critical, Medium],
            [High, Critical, Medium, Critical],
            [Critical, Medium, Critical, Low],
        ][i];
        for n in 0..4u32 {
            let first = i as i64 * 100;
            let last = first + 10 * i64::from(n);
            let mut e = event(
                alert_id,
                n,
                sev[n as usize],
                first,
                last,
                0.5 + f64::from(n) / 10.0,
            );
            if n == 2 {
                e.prediction = Some(prediction(
                    uid(&[name, "prediction"]),
                    alert_id,
                    "plant-a",
                    t(last),
                    "T0855",
                ));
            }
            alerts.push(e);
        }
    }
    let classifications = alerts
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let mut c = classification(a.flow_ids[0], n as u32);
            c.flow = Some(Box::new(flow_of(a)));
            record(&c)
        })
        .collect();
    let predictions = vec![prediction(
        uid(&["standalone"]),
        uid(&["inc-1"]),
        "plant-a",
        t(500),
        "T0855",
    )];
    WriteBatch {
        alerts,
        classifications,
        predictions,
    }
}

/// Every row of every table, as quoted SQL values, sorted.
async fn dump(store: &Store) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in TABLES {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(*table)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert!(!columns.is_empty(), "table {table} exists");
        let expr = columns
            .iter()
            .map(|c| format!("quote({c})"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let mut rows: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT {expr} FROM {table}")))
                .fetch_all(&store.pool)
                .await
                .unwrap();
        rows.sort();
        out.insert(*table, rows);
    }
    out
}

fn row_counts(d: &BTreeMap<&'static str, Vec<String>>) -> BTreeMap<&'static str, usize> {
    d.iter().map(|(k, v)| (*k, v.len())).collect()
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn migrations_apply_to_fresh_file_and_reopen_keeps_data() {
    let db = fresh().await;
    let names: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&db.store.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for table in TABLES {
        assert!(names.contains(*table), "missing table {table}: {names:?}");
    }
    for index in [
        "idx_alerts_timestamp",
        "idx_alerts_facility_id",
        "idx_alerts_severity",
        "idx_alerts_status",
        "idx_alerts_last_seen",
        "idx_predictions_timestamp",
        "idx_alert_flows_flow_id",
        "idx_classifications_flow_id",
    ] {
        assert!(names.contains(index), "missing index {index}");
    }
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&db.store.pool)
        .await
        .unwrap();
    assert_eq!(journal.to_lowercase(), "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&db.store.pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    db.store.ping().await.unwrap();

    let batch = sample_batch();
    db.store.apply(&batch).await.unwrap();
    let before = dump(&db.store).await;
    let alert = db.store.get_alert(uid(&["inc-2"])).await.unwrap();
    db.store.close().await;
    assert!(db.store.ping().await.is_err(), "closed store answers");

    // Re-open the same file, by URL this time: migrations are already applied, data kept.
    let url = format!("sqlite://{}", db.path.display());
    let reopened = Store::open(&url).await.expect("re-open");
    assert_eq!(dump(&reopened).await, before);
    assert_eq!(reopened.count_alerts().await.unwrap(), 3);
    assert_eq!(reopened.get_alert(uid(&["inc-2"])).await.unwrap(), alert);
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&reopened.pool)
        .await
        .unwrap();
    assert_eq!(migrations, 1);
    reopened.close().await;
}

#[tokio::test]
async fn open_reports_the_failing_operation() {
    let dir = tempfile::tempdir().unwrap();
    // A directory is not a database file.
    let err = Store::open(dir.path().to_str().unwrap()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Sqlx { op, .. } if op.starts_with("open")),
        "{err}"
    );
    assert!(err.to_string().starts_with("open"), "{err}");
}

#[tokio::test]
async fn in_memory_url_keeps_one_database() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    store.apply(&sample_batch()).await.unwrap();
    for _ in 0..4 {
        assert_eq!(store.count_alerts().await.unwrap(), 3);
    }
}

#[tokio::test]
async fn replay_same_or_shuffled_changes_nothing() {
    let db = fresh().await;
    let batch = sample_batch();
    db.store.apply(&batch).await.unwrap();
    let first = dump(&db.store).await;
    let counts = row_counts(&first);
    assert_eq!(counts["alerts"], 3);
    assert_eq!(counts["alert_flows"], 12);
    assert_eq!(counts["flows"], 12);
    assert_eq!(counts["alert_sources"], 9, "one row per (alert, model)");
    assert_eq!(counts["classifications"], 12);
    assert_eq!(counts["predictions"], 4);
    assert_eq!(counts["predicted_techniques"], 12);
    for (_, flows) in db.store.alert_ids_with_flows().await.unwrap() {
        assert_eq!(flows.len(), 4);
    }
    let page = db.store.list_alerts(&AlertQuery::default()).await.unwrap();
    assert!(page.alerts.iter().all(|a| a.flow_count == 4));

    // Same events again, in one batch and one by one.
    db.store.apply(&batch).await.unwrap();
    assert_eq!(dump(&db.store).await, first);
    for a in &batch.alerts {
        let one = WriteBatch {
            alerts: vec![a.clone()],
            ..Default::default()
        };
        db.store.apply(&one).await.unwrap();
    }
    assert_eq!(dump(&db.store).await, first);

    // A shuffled replay, onto the same database and onto a fresh one.
    let mut shuffled = batch.clone();
    shuffled.alerts.reverse();
    shuffled.alerts.rotate_left(5);
    shuffled.alerts.swap(0, 7);
    shuffled.classifications.reverse();
    assert_ne!(shuffled.alerts, batch.alerts);
    db.store.apply(&shuffled).await.unwrap();
    assert_eq!(dump(&db.store).await, first);

    let other = fresh().await;
    // Split in two transactions, the second half first.
    let (a, b) = shuffled.alerts.split_at(5);
    other
        .store
        .apply(&WriteBatch {
            alerts: b.to_vec(),
            predictions: shuffled.predictions.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    other
        .store
        .apply(&WriteBatch {
            alerts: a.to_vec(),
            classifications: shuffled.classifications.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dump(&other.store).await, first);
}

#[tokio::test]
async fn merge_keeps_extremes_and_the_analysts_status() {
    let db = fresh().await;
    let id = uid(&["merge"]);
    // Arrival order differs from time order.
    let mut e1 = event(id, 1, Severity::Medium, 10, 20, 0.6);
    e1.title = "medium at 20".into();
    let mut e2 = event(id, 2, Severity::Critical, 5, 30, 0.9);
    e2.title = "critical at 30".into();
    e2.correlation_summary = "summary of the critical update".into();
    let mut e3 = event(id, 3, Severity::Low, 12, 40, 0.4);
    e3.title = "low at 40".into();
    e3.model_versions.insert("lstm_ae".into(), "lstm-7".into());
    let batch = WriteBatch {
        alerts: vec![e1.clone(), e2.clone(), e3.clone()],
        ..Default::default()
    };
    db.store.apply(&batch).await.unwrap();

    let a = db.store.get_alert(id).await.unwrap().expect("stored").alert;
    assert_eq!(a.first_seen, t(5));
    assert_eq!(a.timestamp, t(5), "timestamp is first_seen");
    assert_eq!(a.last_seen, t(40));
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.correlation_confidence, 0.9);
    assert_eq!(
        a.title, "critical at 30",
        "a less severe update keeps the title"
    );
    assert_eq!(a.correlation_summary, "summary of the critical update");
    assert_eq!(
        a.model_versions, e3.model_versions,
        "model versions of the latest update"
    );
    assert_eq!(a.dst_ip, e3.dst_ip);
    assert_eq!(a.flow_count, 3);
    assert_eq!(a.status, AlertStatus::New);

    // Later update as severe as the stored one: its text wins.
    let mut e4 = event(id, 4, Severity::Critical, 5, 50, 0.7);
    e4.title = "critical at 50".into();
    db.store
        .apply(&WriteBatch {
            alerts: vec![e4.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let a = db.store.get_alert(id).await.unwrap().unwrap().alert;
    assert_eq!(a.title, "critical at 50");
    assert_eq!(a.correlation_confidence, 0.9, "confidence never drops");
    assert_eq!(a.last_seen, t(50));
    assert_eq!(a.flow_count, 4);

    // The analyst resolves the alert; a replay of every update leaves the status alone.
    assert!(
        db.store
            .set_alert_status(id, AlertStatus::Resolved)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .set_alert_status(Uuid::nil(), AlertStatus::Resolved)
            .await
            .unwrap()
    );
    let all = WriteBatch {
        alerts: vec![e4, e3, e2, e1],
        ..Default::default()
    };
    db.store.apply(&all).await.unwrap();
    let b = db.store.get_alert(id).await.unwrap().unwrap().alert;
    assert_eq!(b.status, AlertStatus::Resolved);
    assert_eq!(
        b,
        AlertRow {
            status: AlertStatus::Resolved,
            ..a
        }
    );

    // Sources: one per model, highest confidence, latest evidence.
    let detail = db.store.get_alert(id).await.unwrap().unwrap();
    let names: Vec<&str> = detail
        .sources
        .iter()
        .map(|s| s.model_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["iforest", "rules", "classifier"],
        "by layer, then name"
    );
    let classifier = &detail.sources[2];
    assert_eq!(classifier.confidence, 0.9);
    assert_eq!(classifier.detection_time, t(50));
    assert_eq!(classifier.evidence, "T0855 on flow 4");
    assert_eq!(classifier.id, crate::source_id(id, "classifier"));
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let db = fresh().await;
    let severities = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let mut events = Vec::new();
    for i in 0..25u32 {
        let id = uid(&["list", &i.to_string()]);
        let mut e = event(
            id,
            0,
            severities[i as usize % 4],
            i64::from(i) * 60,
            i64::from(i) * 60 + 30,
            0.7,
        );
        e.facility_id = if i % 3 == 0 {
            "plant-b".into()
        } else {
            "plant-a".into()
        };
        if i == 7 {
            e.title = "Spoofed REPORTING message 100%_done".into();
            e.attack_type = "T0856".into();
            e.attack_name = "Spoof Reporting Message".into();
        }
        events.push(e);
    }
    db.store
        .apply(&WriteBatch {
            alerts: events.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    for i in [1u32, 2, 5] {
        db.store
            .set_alert_status(uid(&["list", &i.to_string()]), AlertStatus::Acknowledged)
            .await
            .unwrap();
    }
    db.store
        .set_alert_status(uid(&["list", "4"]), AlertStatus::FalsePositive)
        .await
        .unwrap();

    // No filter: newest first, 3 pages of 10.
    let q = AlertQuery {
        limit: 10,
        ..Default::default()
    };
    let p1 = db.store.list_alerts(&q).await.unwrap();
    assert_eq!(
        (p1.total, p1.pages, p1.page, p1.limit, p1.alerts.len()),
        (25, 3, 1, 10, 10)
    );
    assert!(
        p1.alerts
            .windows(2)
            .all(|w| w[0].last_seen >= w[1].last_seen)
    );
    assert_eq!(p1.alerts[0].id, uid(&["list", "24"]));
    let p3 = db
        .store
        .list_alerts(&AlertQuery {
            page: 3,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(p3.alerts.len(), 5);
    assert_eq!(p3.alerts[4].id, uid(&["list", "0"]));
    let p4 = db
        .store
        .list_alerts(&AlertQuery {
            page: 4,
            ..q.clone()
        })
        .await
        .unwrap();
    assert!(p4.alerts.is_empty());
    assert_eq!(p4.total, 25);
    // Every alert exactly once over the pages.
    let mut seen = BTreeSet::new();
    for page in 1..=3 {
        for a in db
            .store
            .list_alerts(&AlertQuery { page, ..q.clone() })
            .await
            .unwrap()
            .alerts
        {
            assert!(seen.insert(a.id));
        }
    }
    assert_eq!(seen.len(), 25);
    // Page 0 is page 1; a zero limit is 1.
    let p0 = db
        .store
        .list_alerts(&AlertQuery {
            page: 0,
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (p0.page, p0.limit, p0.pages, p0.alerts.len()),
        (1, 1, 25, 1)
    );

    // Severity.
    let crit = db
        .store
        .list_alerts(&AlertQuery {
            severity: Some(Severity::Critical),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(crit.total, 6);
    assert!(crit.alerts.iter().all(|a| a.severity == Severity::Critical));

    // Facility.
    let b = db
        .store
        .list_alerts(&AlertQuery {
            facility_id: Some("plant-b".into()),
            limit: 4,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((b.total, b.pages, b.alerts.len()), (9, 3, 4));
    assert!(b.alerts.iter().all(|a| a.facility_id == "plant-b"));

    // Status.
    let ack = db
        .store
        .list_alerts(&AlertQuery {
            status: Some(AlertStatus::Acknowledged),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: BTreeSet<Uuid> = ack.alerts.iter().map(|a| a.id).collect();
    let want: BTreeSet<Uuid> = [1, 2, 5]
        .iter()
        .map(|i: &u32| uid(&["list", &i.to_string()]))
        .collect();
    assert_eq!(ids, want);

    // Search: case-insensitive, over title / attack type / name; wildcards are literal.
    for needle in ["reporting", "T0856", "spoof reporting", "100%_done"] {
        let found = db
            .store
            .list_alerts(&AlertQuery {
                search: Some(needle.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.total, 1, "search {needle:?}");
        assert_eq!(found.alerts[0].id, uid(&["list", "7"]));
    }
    for needle in ["%", "_", "0%0"] {
        let found = db
            .store
            .list_alerts(&AlertQuery {
                search: Some(needle.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let expect = if needle == "0%0" { 0 } else { 1 };
        assert_eq!(found.total, expect, "search {needle:?}");
    }
    let all_desc = db
        .store
        .list_alerts(&AlertQuery {
            search: Some("holding registers".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all_desc.total, 25, "description is searched");

    // Time range: alert i is active over [60 i, 60 i + 30].
    let range = db
        .store
        .list_alerts(&AlertQuery {
            since: Some(t(10 * 60)),
            until: Some(t(14 * 60 + 5)),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: BTreeSet<Uuid> = range.alerts.iter().map(|a| a.id).collect();
    let want: BTreeSet<Uuid> = (10..=14u32)
        .map(|i| uid(&["list", &i.to_string()]))
        .collect();
    assert_eq!(ids, want);
    assert_eq!(range.total, 5);

    // Everything combined.
    let combo = db
        .store
        .list_alerts(&AlertQuery {
            severity: Some(Severity::Medium),
            facility_id: Some("plant-a".into()),
            status: Some(AlertStatus::New),
            since: Some(t(0)),
            until: Some(t(20 * 60)),
            search: Some("unauthorized".into()),
            page: 1,
            limit: 2,
        })
        .await
        .unwrap();
    // Medium: i = 1, 5, 9, 13, 17, 21; plant-a: not multiple of 3 -> 1, 5, 13, 17;
    // new: not 1 or 5 -> 13, 17; until 20 min: both.
    assert_eq!((combo.total, combo.pages), (2, 1));
    assert_eq!(combo.alerts[0].id, uid(&["list", "17"]));
}

#[tokio::test]
async fn stats_count_critical_unresolved_and_false_positives() {
    let db = fresh().await;
    assert_eq!(
        db.store.alert_stats().await.unwrap(),
        crate::AlertStats::default()
    );
    let severities = [
        Severity::Critical,
        Severity::High,
        Severity::Critical,
        Severity::Low,
        Severity::Medium,
    ];
    let alerts: Vec<AlertEvent> = severities
        .iter()
        .enumerate()
        .map(|(i, s)| event(uid(&["stats", &i.to_string()]), 0, *s, 0, 10, 0.5))
        .collect();
    db.store
        .apply(&WriteBatch {
            alerts,
            ..Default::default()
        })
        .await
        .unwrap();
    let s = db.store.alert_stats().await.unwrap();
    assert_eq!(
        (s.total, s.critical, s.unresolved, s.false_positives),
        (5, 2, 5, 0)
    );
    let set = |i: u32, st| {
        let store = db.store.clone();
        async move {
            store
                .set_alert_status(uid(&["stats", &i.to_string()]), st)
                .await
                .unwrap()
        }
    };
    assert!(set(0, AlertStatus::Acknowledged).await);
    assert!(set(1, AlertStatus::Resolved).await);
    assert!(set(2, AlertStatus::FalsePositive).await);
    assert!(set(3, AlertStatus::FalsePositive).await);
    let s = db.store.alert_stats().await.unwrap();
    assert_eq!(
        (s.total, s.critical, s.unresolved, s.false_positives),
        (5, 2, 2, 2)
    );
    assert_eq!(db.store.count_alerts().await.unwrap(), 5);
}

#[tokio::test]
async fn get_alert_has_sources_flows_and_predictions() {
    let db = fresh().await;
    let batch = sample_batch();
    db.store.apply(&batch).await.unwrap();
    assert!(db.store.get_alert(Uuid::nil()).await.unwrap().is_none());

    let id = uid(&["inc-1"]);
    let d = db.store.get_alert(id).await.unwrap().expect("alert");
    assert_eq!(d.alert.id, id);
    assert_eq!(d.alert.attack_type, "T0855");
    assert_eq!(d.alert.tactic_ids, ["TA0104"]);
    assert_eq!(d.alert.src_ip, ip("10.0.0.66"));
    assert_eq!(d.alert.context_analysis["src_ip"], "10.0.0.66");
    assert_eq!(d.sources.len(), 3);
    assert!(d.sources.iter().all(|s| s.alert_id == id));
    let mut flows: Vec<Uuid> = batch
        .alerts
        .iter()
        .filter(|a| a.alert_id == id)
        .flat_map(|a| a.flow_ids.iter().copied())
        .collect();
    flows.sort();
    assert_eq!(d.flow_ids, flows);
    // The prediction attached to update 2 and the standalone one, oldest first.
    assert_eq!(d.predictions.len(), 2);
    let p = &d.predictions[0];
    assert_eq!(p.id, uid(&["inc-1", "prediction"]));
    assert_eq!(p.alert_id, id);
    assert!(!p.validated);
    assert_eq!(p.validation_time, None);
    assert_eq!(p.observations, 42);
    let original = batch.alerts[2].prediction.as_ref().unwrap();
    assert_eq!(p.predicted_techniques, original.predicted);
    assert_eq!(p.timestamp, original.timestamp);
    assert_eq!(d.predictions[1].id, uid(&["standalone"]));
    // The JSON of the detail is flat (the row's fields at the top level).
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["sources"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn alert_flows_return_the_original_records() {
    let db = fresh().await;
    let batch = sample_batch();
    db.store.apply(&batch).await.unwrap();
    let id = uid(&["inc-3"]);
    let mut want: Vec<FlowRecord> = batch
        .alerts
        .iter()
        .filter(|a| a.alert_id == id)
        .map(flow_of)
        .collect();
    want.sort_by_key(|f| (f.ts_start, f.flow_id));
    let got = db.store.alert_flows(id).await.unwrap();
    assert_eq!(got, want, "bit-exact floats and nanosecond times");
    assert!(db.store.alert_flows(Uuid::nil()).await.unwrap().is_empty());

    // A flow linked without its record is counted but has no record to return.
    let bare = event(id, 9, Severity::Low, 300, 400, 0.5);
    db.store
        .apply(&WriteBatch {
            alerts: vec![bare.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(db.store.alert_flows(id).await.unwrap(), want);
    assert_eq!(
        db.store
            .get_alert(id)
            .await
            .unwrap()
            .unwrap()
            .alert
            .flow_count,
        5
    );

    let alerted = db.store.flows_alerted().await.unwrap();
    assert_eq!(alerted.len(), 13);
    assert_eq!(alerted[&bare.flow_ids[0]], "T0855");
    let with_flows = db.store.alert_ids_with_flows().await.unwrap();
    assert_eq!(with_flows.len(), 3);
    assert!(with_flows.windows(2).all(|w| w[0].0 < w[1].0));
    let inc3 = &with_flows.iter().find(|(a, _)| *a == id).unwrap().1;
    assert_eq!(inc3.len(), 5);
    assert!(inc3.contains(&bare.flow_ids[0]));
}

#[tokio::test]
async fn predictions_list_filters_on_validation() {
    let db = fresh().await;
    // Predictions may arrive before (or without) their alert.
    let predictions: Vec<AttackPrediction> = (0..6)
        .map(|i| {
            prediction(
                uid(&["p", &i.to_string()]),
                uid(&["no such alert"]),
                "plant-a",
                t(i * 10) + Duration::nanoseconds(1_234_567),
                "T0855",
            )
        })
        .collect();
    db.store
        .apply(&WriteBatch {
            predictions: predictions.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    db.store
        .apply(&WriteBatch {
            predictions: predictions.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(db.store.count_predictions().await.unwrap(), 6);

    for i in [1, 4] {
        assert!(
            db.store
                .set_prediction_validated(uid(&["p", &i.to_string()]), Some(t(1000 + i)))
                .await
                .unwrap()
        );
    }
    assert!(
        !db.store
            .set_prediction_validated(Uuid::nil(), Some(t(0)))
            .await
            .unwrap()
    );

    let all = db.store.list_predictions(100, 0, None).await.unwrap();
    let order: Vec<Uuid> = all.iter().map(|p| p.id).collect();
    let want: Vec<Uuid> = (0..6)
        .rev()
        .map(|i: i64| uid(&["p", &i.to_string()]))
        .collect();
    assert_eq!(order, want, "newest first");
    for p in &all {
        assert_eq!(p.predicted_techniques.len(), 3);
        assert!(
            p.predicted_techniques
                .windows(2)
                .all(|w| w[0].rank < w[1].rank)
        );
    }
    assert_eq!(all[5].timestamp, truncate_time(predictions[0].timestamp));

    let yes = db.store.list_predictions(100, 0, Some(true)).await.unwrap();
    let ids: Vec<Uuid> = yes.iter().map(|p| p.id).collect();
    assert_eq!(ids, [uid(&["p", "4"]), uid(&["p", "1"])]);
    assert!(yes.iter().all(|p| p.validated));
    assert_eq!(yes[0].validation_time, Some(t(1004)));

    let no = db
        .store
        .list_predictions(100, 0, Some(false))
        .await
        .unwrap();
    assert_eq!(no.len(), 4);
    assert!(
        no.iter()
            .all(|p| !p.validated && p.validation_time.is_none())
    );

    // limit / offset apply to predictions, not to technique rows.
    let page = db.store.list_predictions(2, 1, Some(false)).await.unwrap();
    let ids: Vec<Uuid> = page.iter().map(|p| p.id).collect();
    assert_eq!(ids, [uid(&["p", "3"]), uid(&["p", "2"])]);
    assert!(page.iter().all(|p| p.predicted_techniques.len() == 3));

    // Unvalidate.
    assert!(
        db.store
            .set_prediction_validated(uid(&["p", "1"]), None)
            .await
            .unwrap()
    );
    assert_eq!(
        db.store
            .list_predictions(100, 0, Some(true))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        all[0].predicted_techniques[0], predictions[5].predicted[0],
        "technique stored as sent"
    );
}

#[tokio::test]
async fn thousand_alert_events_apply_well_under_a_second() {
    let db = fresh().await;
    let alerts: Vec<AlertEvent> = (0..1000u32)
        .map(|i| {
            let id = uid(&["perf", &(i % 100).to_string()]);
            let mut e = event(id, i, Severity::High, i64::from(i), i64::from(i) + 5, 0.8);
            if i % 10 == 0 {
                e.prediction = Some(prediction(
                    uid(&["perf-p", &i.to_string()]),
                    id,
                    "plant-a",
                    t(i64::from(i)),
                    "T0855",
                ));
            }
            e
        })
        .collect();
    let batch = WriteBatch {
        alerts,
        ..Default::default()
    };
    let start = Instant::now();
    db.store.apply(&batch).await.unwrap();
    let took = start.elapsed();
    eprintln!("1000 alert events applied in {took:?}");
    assert_eq!(db.store.count_alerts().await.unwrap(), 100);
    assert_eq!(db.store.count_predictions().await.unwrap(), 100);
    assert!(
        db.store
            .list_alerts(&AlertQuery::default())
            .await
            .unwrap()
            .alerts
            .iter()
            .all(|a| a.flow_count == 10)
    );
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");

    let start = Instant::now();
    db.store.apply(&batch).await.unwrap();
    let replay = start.elapsed();
    eprintln!("replayed in {replay:?}");
    assert!(
        replay < std::time::Duration::from_secs(1),
        "replay took {replay:?}"
    );
}

#[tokio::test]
async fn classifications_are_inserted_once() {
    let db = fresh().await;
    let cs: Vec<AttackClassification> = (0..5)
        .map(|n| classification(uid(&["f", &n.to_string()]), n))
        .collect();
    let batch = WriteBatch {
        classifications: cs.iter().map(record).collect(),
        ..Default::default()
    };
    db.store.apply(&batch).await.unwrap();
    db.store.apply(&batch).await.unwrap();
    assert_eq!(db.store.count_classifications().await.unwrap(), 5);
    let evidence: String = sqlx::query_scalar("SELECT evidence FROM classifications WHERE id = $1")
        .bind(cs[0].event_id.to_string())
        .fetch_one(&db.store.pool)
        .await
        .unwrap();
    let evidence: Vec<DetectorEvidence> = serde_json::from_str(&evidence).unwrap();
    assert_eq!(evidence, cs[0].evidence);
    // An empty batch is a no-op.
    db.store.apply(&WriteBatch::default()).await.unwrap();
}

/// Throughput probe (not a timed assertion): `cargo test --release -p fedics-store
/// classification_throughput -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn classification_throughput() {
    let db = fresh().await;
    let all: Vec<AttackClassification> = (0..20_480u32)
        .map(|n| classification(uid(&["flow", &n.to_string()]), n))
        .collect();
    let start = Instant::now();
    for chunk in all.chunks(1024) {
        let batch = WriteBatch {
            classifications: chunk.iter().map(record).collect(),
            ..WriteBatch::default()
        };
        db.store.apply(&batch).await.unwrap();
    }
    let took = start.elapsed();
    eprintln!(
        "{} classifications in {took:?}: {:.0} rows/s",
        all.len(),
        all.len() as f64 / took.as_secs_f64()
    );
}
