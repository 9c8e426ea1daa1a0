//! Store tests. Each runs once per engine (`<test>::sqlite`, `<test>::postgres`) with the
//! same body, on a fresh database of its own ([`TestDb`]: a temporary directory, or a fresh
//! PostgreSQL schema), so tests in parallel never see each other's rows.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use fedics_core::{
    AlertEvent, AlertSource, AlertStatus, AttackClassification, AttackPrediction, DetectorEvidence,
    DirStats, FlowContext, FlowRecord, FunctionCodeCount, GroundTruth, IatStats, IcsProtocol,
    IcsSection, ModbusTable, PredictedTechnique, RegisterValue, SCHEMA_VERSION, Severity, TcpFlags,
    Transport, Validate, ids,
};
use sqlx::AssertSqlSafe;
use tokio::sync::broadcast::error::TryRecvError;
use uuid::Uuid;

use crate::testing::{ENGINES, TestDb};
use crate::{
    AlertQuery, AlertRow, Change, Db, Engine, Store, StoreError, WriteBatch, on_engine,
    truncate_time,
};

/// Expands each named `async fn name(engine: Engine)` into the tests `name::sqlite` and
/// `name::postgres` (attributes such as `#[ignore]` go on both).
macro_rules! on_both_engines {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            use crate::Engine;

            $(#[$attr])*
            #[tokio::test]
            async fn sqlite() {
                super::$name(Engine::Sqlite).await
            }

            $(#[$attr])*
            #[tokio::test]
            async fn postgres() {
                super::$name(Engine::Postgres).await
            }
        }
    )*};
}

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
    "alert_counters",
];

/// A store on a fresh database (the store is dropped before its database).
struct Fresh {
    store: Store,
    test: TestDb,
}

async fn fresh(engine: Engine) -> Fresh {
    let test = TestDb::new(engine).await;
    let store = test.open().await;
    assert_eq!(store.engine(), engine);
    Fresh { store, test }
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

/// Every row of every table, as quoted SQL values, sorted; all columns but `alerts.version`,
/// which counts writes (a replay writes again) rather than holding content.
async fn dump(store: &Store) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in TABLES {
        let rows = match &store.db {
            Db::Sqlite { pool, .. } => {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(*table)
                        .fetch_all(pool)
                        .await
                        .unwrap();
                assert!(!columns.is_empty(), "table {table} exists");
                let expr = columns
                    .iter()
                    .filter(|c| !(*table == "alerts" && *c == "version"))
                    .map(|c| format!("quote({c})"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT {expr} FROM {table}")))
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }
            Db::Postgres { pool } => {
                let columns: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 \
                     ORDER BY ordinal_position",
                )
                .bind(*table)
                .fetch_all(pool)
                .await
                .unwrap();
                assert!(!columns.is_empty(), "table {table} exists");
                let expr = columns
                    .iter()
                    .filter(|c| !(*table == "alerts" && *c == "version"))
                    .map(|c| format!("quote_nullable({c})"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT {expr} FROM {table}")))
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }
        };
        let mut rows: Vec<String> = rows;
        rows.sort();
        out.insert(*table, rows);
    }
    out
}

/// Tables and indexes of the store's schema (SQLite: the file; PostgreSQL: the schema).
async fn schema_objects(store: &Store) -> BTreeSet<String> {
    let names: Vec<String> = match &store.db {
        Db::Sqlite { pool, .. } => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') \
             AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Db::Postgres { pool } => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() \
             UNION ALL SELECT indexname::text FROM pg_indexes \
             WHERE schemaname = current_schema()",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    names.into_iter().collect()
}

/// Rows of `alert_counters`: (facility, severity, status, n), sorted.
type Counts = Vec<(String, String, String, i64)>;

/// `alert_counters` and the same counts computed over `alerts`, both sorted.
async fn counters_and_recount(store: &Store) -> (Counts, Counts) {
    on_engine!(store, |DB, pool, _w, _b| {
        let counters = sqlx::query_as(
            "SELECT facility_id, severity, status, n FROM alert_counters ORDER BY 1, 2, 3",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let recount = sqlx::query_as(
            "SELECT facility_id, severity, status, COUNT(*) FROM alerts \
             GROUP BY facility_id, severity, status ORDER BY 1, 2, 3",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        (counters, recount)
    })
}

/// Asserts that `alert_counters` equals a recount, and that the stats agree with COUNT(*)s
/// computed directly over `alerts`.
async fn assert_counters_exact(store: &Store) {
    let (counters, recount) = counters_and_recount(store).await;
    assert_eq!(counters, recount, "alert_counters = GROUP BY over alerts");
    let direct: (i64, i64, i64, i64) = on_engine!(store, |DB, pool, _w, _b| {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM alerts), \
             (SELECT COUNT(*) FROM alerts WHERE severity = 'critical'), \
             (SELECT COUNT(*) FROM alerts WHERE status IN ('new', 'acknowledged')), \
             (SELECT COUNT(*) FROM alerts WHERE status = 'false-positive')",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    let s = store.alert_stats().await.unwrap();
    assert_eq!(
        (
            s.total as i64,
            s.critical as i64,
            s.unresolved as i64,
            s.false_positives as i64
        ),
        direct,
        "stats = COUNT(*) over alerts"
    );
}

/// The changes announced so far (without waiting).
fn drain(rx: &mut tokio::sync::broadcast::Receiver<Change>) -> Vec<Change> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(c) => out.push(c),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("change feed: {e}"),
        }
    }
}

fn row_counts(d: &BTreeMap<&'static str, Vec<String>>) -> BTreeMap<&'static str, usize> {
    d.iter().map(|(k, v)| (*k, v.len())).collect()
}

// ---------------------------------------------------------------------------------------
// Tests

async fn migrations_apply_to_fresh_file_and_reopen_keeps_data(engine: Engine) {
    let db = fresh(engine).await;
    let names = schema_objects(&db.store).await;
    for table in TABLES {
        assert!(names.contains(*table), "missing table {table}: {names:?}");
    }
    for index in [
        "idx_alerts_timestamp",
        "idx_alerts_list",
        "idx_alerts_severity_list",
        "idx_alerts_status_list",
        "idx_alerts_facility_list",
        "idx_alerts_attack_type",
        "idx_predictions_timestamp",
        "idx_predictions_technique",
        "idx_alert_flows_flow_id",
        "idx_classifications_flow_id",
    ] {
        assert!(names.contains(index), "missing index {index}");
    }
    for replaced in [
        "idx_alerts_facility_id",
        "idx_alerts_severity",
        "idx_alerts_status",
        "idx_alerts_last_seen",
    ] {
        assert!(!names.contains(replaced), "index {replaced} is replaced");
    }
    if let Db::Sqlite { pool, .. } = &db.store.db {
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(journal.to_lowercase(), "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
    }
    db.store.ping().await.unwrap();

    let batch = sample_batch();
    db.store.apply(&batch).await.unwrap();
    let before = dump(&db.store).await;
    let alert = db.store.get_alert(uid(&["inc-2"])).await.unwrap();
    db.store.close().await;
    assert!(db.store.ping().await.is_err(), "closed store answers");

    // Re-open the same database (a SQLite file by its bare path this time): migrations are
    // already applied, data kept.
    let again = match db.test.sqlite_path() {
        Some(path) => path.to_str().unwrap().to_string(),
        None => db.test.url().to_string(),
    };
    let reopened = Store::open(&again).await.expect("re-open");
    assert_eq!(dump(&reopened).await, before);
    assert_eq!(reopened.count_alerts().await.unwrap(), 3);
    assert_eq!(reopened.get_alert(uid(&["inc-2"])).await.unwrap(), alert);
    let migrations: i64 = on_engine!(reopened, |DB, pool, _w, _b| {
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let expected = match engine {
        Engine::Sqlite => crate::SQLITE_MIGRATOR.iter().count(),
        Engine::Postgres => crate::POSTGRES_MIGRATOR.iter().count(),
    };
    assert!(expected >= 2, "0001 and 0002 at least");
    assert_eq!(migrations, expected as i64);
    reopened.close().await;
}

/// Both engines' migrations: the same tables with the same columns, in the same order; but
/// for SQLite's `alert_version_seq`, a table standing in for PostgreSQL's sequence of the
/// same name (SQLite has no sequences).
#[tokio::test]
async fn engines_have_the_same_tables_and_columns() {
    let mut shapes = Vec::new();
    for engine in ENGINES {
        let db = fresh(engine).await;
        let columns: Vec<(String, String)> = match &db.store.db {
            Db::Sqlite { pool, .. } => sqlx::query_as(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
                 AND m.name NOT IN ('_sqlx_migrations', 'alert_version_seq') \
                 ORDER BY m.name, p.cid",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
            Db::Postgres { pool } => sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
                 ORDER BY table_name COLLATE \"C\", ordinal_position",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
        };
        assert!(!columns.is_empty());
        shapes.push(columns);
    }
    assert_eq!(shapes[0], shapes[1]);
}

async fn open_reports_the_failing_operation(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let url = match engine {
        // A directory is not a database file.
        Engine::Sqlite => dir.path().to_str().unwrap().to_string(),
        // A database that does not exist, on the test server.
        Engine::Postgres => {
            let base = std::env::var(crate::testing::PG_URL_VAR)
                .unwrap_or_else(|_| crate::testing::DEFAULT_PG_URL.to_string());
            let base = base.split('?').next().unwrap();
            let server = base.rsplit_once('/').unwrap().0;
            format!(
                "{server}/fedics_no_such_database_{}",
                Uuid::new_v4().simple()
            )
        }
    };
    let err = Store::open(&url).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Sqlx { op, .. } if op.starts_with("open")),
        "{err}"
    );
    assert!(err.to_string().starts_with("open"), "{err}");
}

/// SQLite: an in-memory URL is one database over every call, although each SQLite
/// connection to `:memory:` has a database of its own. PostgreSQL: one server database,
/// whichever pooled connection answers.
async fn in_memory_url_keeps_one_database(engine: Engine) {
    let test = TestDb::new(engine).await;
    let store = match engine {
        Engine::Sqlite => Store::open("sqlite::memory:").await.unwrap(),
        Engine::Postgres => test.open().await,
    };
    store.apply(&sample_batch()).await.unwrap();
    let counts = futures_join_all((0..8).map(|_| {
        let store = store.clone();
        async move { store.count_alerts().await.unwrap() }
    }))
    .await;
    assert_eq!(counts, [3; 8]);
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn replay_same_or_shuffled_changes_nothing(engine: Engine) {
    let db = fresh(engine).await;
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

    let other = fresh(engine).await;
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

async fn merge_keeps_extremes_and_the_analysts_status(engine: Engine) {
    let db = fresh(engine).await;
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

async fn list_filters_and_paginates(engine: Engine) {
    let db = fresh(engine).await;
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
    // The pre-serialized page is byte for byte the typed page's JSON, for any filter.
    for jq in [
        q.clone(),
        AlertQuery {
            page: 3,
            ..q.clone()
        },
        AlertQuery {
            page: 9,
            ..q.clone()
        },
        AlertQuery {
            severity: Some(Severity::Critical),
            ..Default::default()
        },
        AlertQuery {
            search: Some("reporting".into()),
            ..Default::default()
        },
        AlertQuery {
            status: Some(AlertStatus::Acknowledged),
            limit: 2,
            ..Default::default()
        },
    ] {
        let typed = serde_json::to_vec(&db.store.list_alerts(&jq).await.unwrap()).unwrap();
        let raw = db.store.list_alerts_json(&jq).await.unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            String::from_utf8(typed).unwrap(),
            "{jq:?}"
        );
    }
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

async fn stats_count_critical_unresolved_and_false_positives(engine: Engine) {
    let db = fresh(engine).await;
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

async fn get_alert_has_sources_flows_and_predictions(engine: Engine) {
    let db = fresh(engine).await;
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

async fn alert_flows_return_the_original_records(engine: Engine) {
    let db = fresh(engine).await;
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

async fn predictions_list_filters_on_validation(engine: Engine) {
    let db = fresh(engine).await;
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

/// A thousand updates of a hundred incidents in one batch fold into a hundred alerts; a
/// replay changes nothing. (Correctness only: no timing is asserted.)
async fn thousand_alert_events_fold_and_replay(engine: Engine) {
    let db = fresh(engine).await;
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
    db.store.apply(&batch).await.unwrap();
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
    assert_counters_exact(&db.store).await;
    let before = dump(&db.store).await;

    db.store.apply(&batch).await.unwrap();
    assert_eq!(dump(&db.store).await, before, "replay changes nothing");
}

async fn classifications_are_inserted_once(engine: Engine) {
    let db = fresh(engine).await;
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
    let evidence: String = on_engine!(db.store, |DB, pool, _w, _b| {
        sqlx::query_scalar("SELECT evidence FROM classifications WHERE id = $1")
            .bind(cs[0].event_id.to_string())
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let evidence: Vec<DetectorEvidence> = serde_json::from_str(&evidence).unwrap();
    assert_eq!(evidence, cs[0].evidence);
    // An empty batch is a no-op.
    db.store.apply(&WriteBatch::default()).await.unwrap();
}

/// Throughput probe (not a timed assertion): `cargo test --release -p fedics-store
/// classification_throughput -- --ignored --nocapture`.
async fn classification_throughput(engine: Engine) {
    let db = fresh(engine).await;
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
        "{}: {} classifications in {took:?}: {:.0} rows/s",
        engine.as_str(),
        all.len(),
        all.len() as f64 / took.as_secs_f64()
    );
    assert_eq!(
        db.store.count_classifications().await.unwrap(),
        all.len() as u64
    );
}

/// Deletes one alert with plain SQL (the store has no delete; the trigger must follow).
async fn delete_alert(store: &Store, id: Uuid) {
    on_engine!(store, |DB, _pool, writer, _b| {
        let done = sqlx::query("DELETE FROM alerts WHERE id = $1")
            .bind(id.to_string())
            .execute(writer)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    });
}

async fn counters_follow_inserts_status_changes_replays_and_deletes(engine: Engine) {
    let db = fresh(engine).await;
    assert_counters_exact(&db.store).await;
    let batch = sample_batch();
    db.store.apply(&batch).await.unwrap();
    assert_counters_exact(&db.store).await;
    let (after_insert, _) = counters_and_recount(&db.store).await;
    // inc-1..3 end at critical, all new, one facility.
    assert_eq!(
        after_insert,
        [("plant-a".into(), "critical".into(), "new".into(), 3)]
    );

    // Replays (same order, one by one, shuffled) move no count.
    db.store.apply(&batch).await.unwrap();
    for a in &batch.alerts {
        db.store
            .apply(&WriteBatch {
                alerts: vec![a.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut shuffled = batch.clone();
    shuffled.alerts.reverse();
    db.store.apply(&shuffled).await.unwrap();
    assert_eq!(counters_and_recount(&db.store).await.0, after_insert);

    // Updates that raise a stored alert's severity move it between counters.
    let id = uid(&["raised"]);
    for (n, severity) in [
        Severity::Low,
        Severity::Medium,
        Severity::Low,
        Severity::High,
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(id, n as u32, severity, 0, 10 + n as i64, 0.5);
        e.facility_id = "plant-b".into();
        db.store
            .apply(&WriteBatch {
                alerts: vec![e],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_counters_exact(&db.store).await;
    }

    // Status changes, including setting the same status again.
    for (name, status) in [
        ("inc-1", AlertStatus::Acknowledged),
        ("inc-2", AlertStatus::FalsePositive),
        ("inc-2", AlertStatus::FalsePositive),
        ("inc-3", AlertStatus::Resolved),
        ("raised", AlertStatus::FalsePositive),
        ("inc-3", AlertStatus::New),
    ] {
        assert!(
            db.store
                .set_alert_status(uid(&[name]), status)
                .await
                .unwrap()
        );
        assert_counters_exact(&db.store).await;
    }
    let s = db.store.alert_stats().await.unwrap();
    assert_eq!(
        (s.total, s.critical, s.unresolved, s.false_positives),
        (4, 3, 2, 2)
    );
    // A replay after the analyst's decisions changes no counter either.
    let (decided, _) = counters_and_recount(&db.store).await;
    db.store.apply(&batch).await.unwrap();
    assert_eq!(counters_and_recount(&db.store).await.0, decided);

    // Deletes (cascading to sources and flows) count down; emptied counters go.
    delete_alert(&db.store, uid(&["inc-2"])).await;
    assert_counters_exact(&db.store).await;
    delete_alert(&db.store, uid(&["raised"])).await;
    assert_counters_exact(&db.store).await;
    let s = db.store.alert_stats().await.unwrap();
    assert_eq!(
        (s.total, s.critical, s.unresolved, s.false_positives),
        (2, 2, 2, 0)
    );

    // The same events in another order, split over transactions: the same counters.
    let other = fresh(engine).await;
    let (a, b) = shuffled.alerts.split_at(5);
    for part in [b, a] {
        other
            .store
            .apply(&WriteBatch {
                alerts: part.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_counters_exact(&other.store).await;
    }
    assert_eq!(counters_and_recount(&other.store).await.0, after_insert);
}

/// Totals of filtered lists that come from the counters equal a direct count.
async fn list_totals_from_counters_equal_a_count(engine: Engine) {
    let db = fresh(engine).await;
    let severities = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let events: Vec<AlertEvent> = (0..30u32)
        .map(|i| {
            let mut e = event(
                uid(&["totals", &i.to_string()]),
                0,
                severities[i as usize % 4],
                i64::from(i),
                i64::from(i) + 1,
                0.5,
            );
            e.facility_id = format!("plant-{}", i % 3);
            e
        })
        .collect();
    db.store
        .apply(&WriteBatch {
            alerts: events,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in (0..30u32).step_by(4) {
        db.store
            .set_alert_status(uid(&["totals", &i.to_string()]), AlertStatus::Resolved)
            .await
            .unwrap();
    }
    let mut queries = vec![AlertQuery::default()];
    for severity in severities {
        for facility in [None, Some("plant-1".to_string())] {
            for status in [None, Some(AlertStatus::Resolved), Some(AlertStatus::New)] {
                queries.push(AlertQuery {
                    severity: Some(severity),
                    facility_id: facility.clone(),
                    status,
                    ..Default::default()
                });
                queries.push(AlertQuery {
                    facility_id: facility.clone(),
                    status,
                    ..Default::default()
                });
            }
        }
    }
    for q in queries {
        let page = db.store.list_alerts(&q).await.unwrap();
        let want: i64 = on_engine!(db.store, |DB, pool, _w, _b| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM alerts WHERE ($1 IS NULL OR severity = $1) \
                 AND ($2 IS NULL OR facility_id = $2) AND ($3 IS NULL OR status = $3)",
            )
            .bind(q.severity.map(|s| s.as_str()))
            .bind(q.facility_id.as_deref())
            .bind(q.status.map(|s| s.as_str()))
            .fetch_one(pool)
            .await
            .unwrap()
        });
        assert_eq!(page.total, want as u64, "{q:?}");
        assert_eq!(page.alerts.len() as u64, page.total.min(50), "{q:?}");
    }
}

/// Alerts stored before migration 0002 are counted by its backfill.
async fn counter_migration_backfills_existing_alerts(engine: Engine) {
    let test = TestDb::new(engine).await;
    let rows = [
        ("a", "plant-a", "critical", 3, "new"),
        ("b", "plant-a", "critical", 3, "new"),
        ("c", "plant-a", "low", 0, "resolved"),
        ("d", "plant-b", "high", 2, "false-positive"),
    ];
    const INSERT: &str = "INSERT INTO alerts (id, timestamp, facility_id, severity, \
        severity_rank, title, description, status, attack_type, attack_name, \
        correlation_confidence, correlation_summary, context_analysis, first_seen, last_seen, \
        tactic_ids, src_ip, dst_ip, flow_count, model_versions, headline_rev, latest_rev) \
        VALUES ($1, $2, $3, $4, $5, 'title', 'description', $6, 'T0855', 'name', 0.5, '', '{}', \
        $2, $2, '[]', '10.0.0.1', '10.0.0.2', 0, '{}', '', '')";
    let at = crate::time::fmt("test", "t", t(0)).unwrap();
    match engine {
        Engine::Sqlite => {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(test.url())
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::SQLITE_MIGRATOR.run_to(1, &pool).await.unwrap();
            for (name, facility, severity, rank, status) in rows {
                sqlx::query(INSERT)
                    .bind(uid(&[name]).to_string())
                    .bind(&at)
                    .bind(facility)
                    .bind(severity)
                    .bind(rank as i64)
                    .bind(status)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(test.url()).await.unwrap();
            crate::POSTGRES_MIGRATOR.run_to(1, &pool).await.unwrap();
            for (name, facility, severity, rank, status) in rows {
                sqlx::query(INSERT)
                    .bind(uid(&[name]).to_string())
                    .bind(&at)
                    .bind(facility)
                    .bind(severity)
                    .bind(rank as i64)
                    .bind(status)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
    let store = test.open().await;
    assert_counters_exact(&store).await;
    let s = store.alert_stats().await.unwrap();
    assert_eq!(
        (s.total, s.critical, s.unresolved, s.false_positives),
        (4, 2, 2, 1)
    );
    // Triggers keep counting from there.
    assert!(
        store
            .set_alert_status(uid(&["a"]), AlertStatus::Resolved)
            .await
            .unwrap()
    );
    assert_counters_exact(&store).await;
    assert_eq!(store.alert_stats().await.unwrap().unresolved, 1);
}

async fn change_feed_tells_created_from_updated(engine: Engine) {
    let db = fresh(engine).await;
    let mut rx = db.store.subscribe_changes();
    let batch = sample_batch();
    let mut incidents: Vec<Uuid> = ["inc-1", "inc-2", "inc-3"]
        .iter()
        .map(|n| uid(&[n]))
        .collect();
    incidents.sort();
    let mut predictions: Vec<Uuid> = ["inc-1", "inc-2", "inc-3"]
        .iter()
        .map(|n| uid(&[n, "prediction"]))
        .chain([uid(&["standalone"])])
        .collect();

    db.store.apply(&batch).await.unwrap();
    let got = drain(&mut rx);
    let created: Vec<Uuid> = got
        .iter()
        .filter_map(|c| match c {
            Change::AlertCreated(id) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(created, incidents, "each new alert once, by id");
    let mut new_predictions: Vec<Uuid> = got
        .iter()
        .filter_map(|c| match c {
            Change::PredictionCreated(id) => Some(*id),
            _ => None,
        })
        .collect();
    new_predictions.sort();
    predictions.sort();
    assert_eq!(new_predictions, predictions);
    assert_eq!(got.len(), 3 + 4, "{got:?}");

    // A replay updates the alerts and creates no prediction.
    db.store.apply(&batch).await.unwrap();
    let got = drain(&mut rx);
    let updated: Vec<Change> = incidents
        .iter()
        .copied()
        .map(Change::AlertUpdated)
        .collect();
    assert_eq!(got, updated);

    // One existing alert and one new one in the same batch.
    let fresh_id = uid(&["feed-new"]);
    db.store
        .apply(&WriteBatch {
            alerts: vec![
                event(fresh_id, 0, Severity::Low, 0, 1, 0.5),
                event(incidents[0], 7, Severity::Low, 0, 600, 0.5),
                event(fresh_id, 1, Severity::High, 0, 2, 0.5),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got = drain(&mut rx);
    got.sort_by_key(|c| format!("{c:?}"));
    let mut want = vec![
        Change::AlertCreated(fresh_id),
        Change::AlertUpdated(incidents[0]),
    ];
    want.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, want);

    // Analysts' changes; nothing for ids that do not exist.
    assert!(
        db.store
            .set_alert_status(fresh_id, AlertStatus::Acknowledged)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .set_alert_status(Uuid::nil(), AlertStatus::Resolved)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .set_prediction_validated(uid(&["standalone"]), Some(t(900)))
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .set_prediction_validated(Uuid::nil(), None)
            .await
            .unwrap()
    );
    assert_eq!(
        drain(&mut rx),
        [
            Change::AlertUpdated(fresh_id),
            Change::PredictionUpdated(uid(&["standalone"]))
        ]
    );

    // An empty batch announces nothing; clones share the feed.
    db.store.apply(&WriteBatch::default()).await.unwrap();
    let clone = db.store.clone();
    clone
        .set_alert_status(fresh_id, AlertStatus::Resolved)
        .await
        .unwrap();
    assert_eq!(drain(&mut rx), [Change::AlertUpdated(fresh_id)]);
}

/// A subscriber that reads what a change names finds it committed; a transaction that
/// fails announces nothing.
async fn change_feed_announces_only_after_commit(engine: Engine) {
    let db = fresh(engine).await;
    let mut rx = db.store.subscribe_changes();
    let reader = db.store.clone();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 7 {
            match rx.recv().await.unwrap() {
                Change::AlertCreated(id) => {
                    assert!(
                        reader.get_alert(id).await.unwrap().is_some(),
                        "{id} visible"
                    );
                    seen.push(id);
                }
                Change::PredictionCreated(id) => {
                    let p = reader.get_prediction(id).await.unwrap().expect("visible");
                    assert_eq!(p.predicted_techniques.len(), 3, "with its techniques");
                    seen.push(id);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        seen
    });
    db.store.apply(&sample_batch()).await.unwrap();
    assert_eq!(watcher.await.unwrap().len(), 7);

    // Make the next prediction insert fail inside the transaction, after its alert upsert.
    let mut rx = db.store.subscribe_changes();
    match &db.store.db {
        Db::Sqlite { writer, .. } => {
            sqlx::raw_sql(
                "CREATE TRIGGER refuse_predictions BEFORE INSERT ON predictions \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            )
            .execute(writer)
            .await
            .unwrap();
        }
        Db::Postgres { pool } => {
            sqlx::raw_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN RAISE EXCEPTION 'refused by the test'; END; $$; \
                 CREATE TRIGGER refuse_predictions BEFORE INSERT ON predictions \
                 FOR EACH ROW EXECUTE FUNCTION refuse()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
    let doomed = uid(&["doomed"]);
    let mut e = event(doomed, 0, Severity::High, 0, 1, 0.5);
    e.prediction = Some(prediction(
        uid(&["doomed", "p"]),
        doomed,
        "plant-a",
        t(1),
        "T0855",
    ));
    let err = db
        .store
        .apply(&WriteBatch {
            alerts: vec![e, event(uid(&["inc-1"]), 9, Severity::Low, 0, 1, 0.5)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused by the test"), "{err}");
    assert!(
        db.store.get_alert(doomed).await.unwrap().is_none(),
        "rolled back"
    );
    assert_eq!(drain(&mut rx), [], "nothing announced");
    assert_counters_exact(&db.store).await;
}

async fn prediction_reads(engine: Engine) {
    let db = fresh(engine).await;
    assert_eq!(db.store.latest_prediction().await.unwrap(), None);
    assert!(
        db.store
            .latest_predictions_by_technique()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.store.count_predictions_where(None).await.unwrap(), 0);
    assert_eq!(db.store.get_prediction(Uuid::nil()).await.unwrap(), None);

    // (name, current technique, seconds): T0855 newest at 50, T0831 at 40 (two share it:
    // the greater id wins), T0813 once.
    let specs = [
        ("a", "T0855", 10),
        ("b", "T0855", 50),
        ("c", "T0831", 40),
        ("d", "T0831", 40),
        ("e", "T0813", 5),
        ("f", "T0855", 30),
    ];
    let predictions: Vec<AttackPrediction> = specs
        .iter()
        .map(|(name, technique, at)| {
            prediction(
                uid(&["pr", name]),
                uid(&["alert", technique]),
                "plant-a",
                t(*at),
                technique,
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

    let b = db
        .store
        .get_prediction(uid(&["pr", "b"]))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(b.current_technique, "T0855");
    assert_eq!(b.predicted_techniques, predictions[1].predicted);
    assert_eq!(b.timestamp, t(50));
    assert_eq!(b.alert_id, uid(&["alert", "T0855"]));
    let listed = db.store.list_predictions(100, 0, None).await.unwrap();
    assert_eq!(listed[0], b, "the same row as the list returns");

    assert_eq!(db.store.latest_prediction().await.unwrap(), Some(b.clone()));

    let newest_d_or_c = uid(&["pr", "c"]).max(uid(&["pr", "d"]));
    let by_technique = db.store.latest_predictions_by_technique().await.unwrap();
    let got: Vec<(&str, Uuid)> = by_technique
        .iter()
        .map(|p| (p.current_technique.as_str(), p.id))
        .collect();
    assert_eq!(
        got,
        [
            ("T0813", uid(&["pr", "e"])),
            ("T0831", newest_d_or_c),
            ("T0855", uid(&["pr", "b"])),
        ]
    );
    assert!(
        by_technique
            .iter()
            .all(|p| p.predicted_techniques.len() == 3)
    );

    // A tie on the greatest timestamp: the greater id is the latest.
    let tie = prediction(uid(&["pr", "tie"]), Uuid::nil(), "plant-b", t(50), "T0855");
    db.store
        .apply(&WriteBatch {
            predictions: vec![tie],
            ..Default::default()
        })
        .await
        .unwrap();
    let latest = db.store.latest_prediction().await.unwrap().unwrap();
    assert_eq!(latest.id, uid(&["pr", "tie"]).max(uid(&["pr", "b"])));

    for name in ["a", "c"] {
        db.store
            .set_prediction_validated(uid(&["pr", name]), Some(t(100)))
            .await
            .unwrap();
    }
    assert_eq!(db.store.count_predictions_where(None).await.unwrap(), 7);
    assert_eq!(
        db.store.count_predictions_where(Some(true)).await.unwrap(),
        2
    );
    assert_eq!(
        db.store.count_predictions_where(Some(false)).await.unwrap(),
        5
    );
    assert_eq!(
        db.store.count_predictions_where(None).await.unwrap(),
        db.store.count_predictions().await.unwrap()
    );
    let a = db
        .store
        .get_prediction(uid(&["pr", "a"]))
        .await
        .unwrap()
        .unwrap();
    assert!(a.validated);
    assert_eq!(a.validation_time, Some(t(100)));
}

async fn techniques_seen_groups_alerts_by_technique_and_facility(engine: Engine) {
    let db = fresh(engine).await;
    assert!(db.store.techniques_seen().await.unwrap().is_empty());
    // (technique, facility, last seen)
    let specs = [
        ("T0855", "plant-b", 100),
        ("T0855", "plant-a", 40),
        ("T0855", "plant-a", 70),
        ("T0831", "plant-a", 20),
        ("T0855", "plant-a", 10),
    ];
    let events: Vec<AlertEvent> = specs
        .iter()
        .enumerate()
        .map(|(i, (technique, facility, last))| {
            let mut e = event(
                uid(&["seen", &i.to_string()]),
                0,
                Severity::High,
                0,
                *last,
                0.5,
            );
            e.attack_type = technique.to_string();
            e.attack_name = format!("name of {technique}");
            e.facility_id = facility.to_string();
            e
        })
        .collect();
    db.store
        .apply(&WriteBatch {
            alerts: events,
            ..Default::default()
        })
        .await
        .unwrap();
    let seen = db.store.techniques_seen().await.unwrap();
    let want = vec![
        crate::TechniqueSeen {
            technique_id: "T0831".into(),
            technique_name: "name of T0831".into(),
            facility_id: "plant-a".into(),
            alerts: 1,
            last_seen: t(20),
        },
        crate::TechniqueSeen {
            technique_id: "T0855".into(),
            technique_name: "name of T0855".into(),
            facility_id: "plant-a".into(),
            alerts: 3,
            last_seen: t(70),
        },
        crate::TechniqueSeen {
            technique_id: "T0855".into(),
            technique_name: "name of T0855".into(),
            facility_id: "plant-b".into(),
            alerts: 1,
            last_seen: t(100),
        },
    ];
    assert_eq!(seen, want);
    let json = serde_json::to_value(&seen[0]).unwrap();
    assert_eq!(json["technique_id"], "T0831");
    assert_eq!(json["alerts"], 1);
}

/// Two stores (two pools) on one database see each other's writes, and concurrent batches
/// on one store keep the counters exact.
async fn concurrent_writers_keep_counters_exact(engine: Engine) {
    let db = fresh(engine).await;
    let second = db.test.open().await;
    let writes = (0..8u32).map(|w| {
        let store = if w % 2 == 0 {
            db.store.clone()
        } else {
            second.clone()
        };
        async move {
            for round in 0..4u32 {
                let alerts = (0..10u32)
                    .map(|i| {
                        let id = uid(&["conc", &(i % 5).to_string()]);
                        let severity = [Severity::Low, Severity::Critical][(i + w) as usize % 2];
                        event(id, w * 100 + round * 10 + i, severity, 0, i64::from(i), 0.5)
                    })
                    .collect();
                store
                    .apply(&WriteBatch {
                        alerts,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }
    });
    futures_join_all(writes).await;
    assert_eq!(second.count_alerts().await.unwrap(), 5);
    assert_counters_exact(&db.store).await;
    assert_counters_exact(&second).await;
    assert_eq!(db.store.alert_stats().await.unwrap().critical, 5);
}

on_both_engines!(
    migrations_apply_to_fresh_file_and_reopen_keeps_data,
    open_reports_the_failing_operation,
    in_memory_url_keeps_one_database,
    replay_same_or_shuffled_changes_nothing,
    merge_keeps_extremes_and_the_analysts_status,
    list_filters_and_paginates,
    stats_count_critical_unresolved_and_false_positives,
    get_alert_has_sources_flows_and_predictions,
    alert_flows_return_the_original_records,
    predictions_list_filters_on_validation,
    thousand_alert_events_fold_and_replay,
    classifications_are_inserted_once,
    #[ignore = "throughput probe: cargo test --release -p fedics-store classification_throughput -- --ignored --nocapture"]
    classification_throughput,
    counters_follow_inserts_status_changes_replays_and_deletes,
    list_totals_from_counters_equal_a_count,
    counter_migration_backfills_existing_alerts,
    change_feed_tells_created_from_updated,
    change_feed_announces_only_after_commit,
    prediction_reads,
    techniques_seen_groups_alerts_by_technique_and_facility,
    concurrent_writers_keep_counters_exact,
    retention_deletes_old_raw_records_and_keeps_alerts,
    corrupt_stored_alert_fails_the_page_naming_its_column,
    every_write_gives_an_alert_a_new_version,
    cached_list_entries_follow_every_write,
);

async fn alert_version(store: &Store, id: Uuid) -> i64 {
    on_engine!(store, |DB, pool, _w, _b| {
        sqlx::query_scalar("SELECT version FROM alerts WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

async fn exec(store: &Store, sql: &str, id: Uuid) {
    on_engine!(store, |DB, _pool, writer, _b| {
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .bind(id.to_string())
            .execute(writer)
            .await
            .unwrap();
    });
}

/// The version the list cache relies on (migration 0006): every insert, merge, status change
/// and hand-made UPDATE of an alert gives it a version no write of the table had before,
/// even an UPDATE that tries to set it, and even after the alert is deleted and written
/// again.
async fn every_write_gives_an_alert_a_new_version(engine: Engine) {
    let db = fresh(engine).await;
    let id = uid(&["merge"]);
    let other = uid(&["other"]);
    let batch = |n: u32, id: Uuid| WriteBatch {
        alerts: vec![event(id, n, Severity::Medium, 10, 20 + i64::from(n), 0.6)],
        ..Default::default()
    };
    db.store.apply(&batch(1, id)).await.unwrap();
    db.store.apply(&batch(1, other)).await.unwrap();
    let mut seen = vec![
        alert_version(&db.store, id).await,
        alert_version(&db.store, other).await,
    ];
    assert!(seen[0] > 0 && seen[1] > seen[0], "{seen:?}");
    let first = seen[0];
    let mut check = async |what: &str| {
        let v = alert_version(&db.store, id).await;
        assert!(seen.iter().all(|&s| v > s), "{what}: {v} after {seen:?}");
        seen.push(v);
    };
    db.store.apply(&batch(2, id)).await.unwrap();
    check("merge").await;
    db.store
        .set_alert_status(id, AlertStatus::Acknowledged)
        .await
        .unwrap();
    check("status").await;
    exec(
        &db.store,
        "UPDATE alerts SET title = 'edited' WHERE id = $1",
        id,
    )
    .await;
    check("edit").await;
    exec(
        &db.store,
        &format!("UPDATE alerts SET title = 'edited again', version = {first} WHERE id = $1"),
        id,
    )
    .await;
    check("an update setting an old version").await;
    delete_alert(&db.store, id).await;
    db.store.apply(&batch(1, id)).await.unwrap();
    check("deleted and written again").await;
}

/// The pre-serialized page serves entries rendered before, and each write shows on the next
/// page read: it stays byte for byte the typed page's JSON.
async fn cached_list_entries_follow_every_write(engine: Engine) {
    let db = fresh(engine).await;
    db.store.apply(&sample_batch()).await.unwrap();
    let q = AlertQuery::default();
    let same = async |what: &str| {
        let typed = serde_json::to_vec(&db.store.list_alerts(&q).await.unwrap()).unwrap();
        let raw = db.store.list_alerts_json(&q).await.unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            String::from_utf8(typed).unwrap(),
            "{what}"
        );
    };
    same("first read").await;
    assert_eq!(db.store.rendered.len(), 3, "rendered once, kept");
    same("from the cache").await;
    let id = uid(&["inc-2"]);
    db.store
        .set_alert_status(id, AlertStatus::Resolved)
        .await
        .unwrap();
    same("status set").await;
    let mut later = event(id, 9, Severity::Critical, 0, 500, 0.99);
    later.title = "a later update".into();
    db.store
        .apply(&WriteBatch {
            alerts: vec![later],
            ..Default::default()
        })
        .await
        .unwrap();
    same("merged").await;
    exec(
        &db.store,
        "UPDATE alerts SET description = 'by hand' WHERE id = $1",
        id,
    )
    .await;
    same("edited by hand").await;
    let page = String::from_utf8(db.store.list_alerts_json(&q).await.unwrap()).unwrap();
    assert!(
        page.contains("by hand") && page.contains("resolved"),
        "{page}"
    );
    // A second handle on the same database (another server) has its own cache and sees the
    // same page.
    let second = db.test.open().await;
    assert_eq!(
        second.list_alerts_json(&q).await.unwrap(),
        db.store.list_alerts_json(&q).await.unwrap()
    );
    delete_alert(&db.store, id).await;
    same("deleted").await;
}

/// A stored alert whose text is not what the store writes (edited by hand, or by another
/// tool) fails the pre-serialized page with a decode error naming the column, instead of
/// copying it out as if it were valid; the typed page still reads what parses.
async fn corrupt_stored_alert_fails_the_page_naming_its_column(engine: Engine) {
    let db = fresh(engine).await;
    db.store.apply(&sample_batch()).await.unwrap();
    let q = AlertQuery::default();
    let good = db.store.list_alerts_json(&q).await.unwrap();
    let id = uid(&["inc-2"]).to_string();
    let cases: &[(&str, &str, &str)] = &[
        ("src_ip", "'010.0.0.1'", "alerts.src_ip"),
        ("dst_ip", "'2001:DB8::1'", "alerts.dst_ip"),
        (
            "timestamp",
            "'2024-05-01 12:00:00.000000Z'",
            "alerts.timestamp",
        ),
        (
            "last_seen",
            "'2024-05-01T12:00:60.000000Z'",
            "alerts.last_seen",
        ),
        (
            "first_seen",
            "'2024-13-01T12:00:00.000000Z'",
            "alerts.first_seen",
        ),
        ("tactic_ids", "'{}'", "alerts.tactic_ids"),
        ("context_analysis", "'{\"a\": '", "alerts.context_analysis"),
    ];
    for &(column, value, named) in cases {
        let set = format!("UPDATE alerts SET {column} = {value} WHERE id = $1");
        // Every column here is text: keep the original to put back.
        let before: String = on_engine!(db.store, |DB, pool, _w, _b| {
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT {column} FROM alerts WHERE id = $1"
            )))
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap()
        });
        on_engine!(db.store, |DB, _pool, writer, _b| {
            sqlx::query(AssertSqlSafe(set.clone()))
                .bind(&id)
                .execute(writer)
                .await
                .unwrap();
        });
        let err = db.store.list_alerts_json(&q).await.unwrap_err();
        match &err {
            StoreError::Decode { column: c, .. } => assert_eq!(*c, named, "{column}: {err}"),
            other => panic!("{column}: expected a decode error, got {other}"),
        }
        on_engine!(db.store, |DB, _pool, writer, _b| {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE alerts SET {column} = $1 WHERE id = $2"
            )))
            .bind(&before)
            .bind(&id)
            .execute(writer)
            .await
            .unwrap();
        });
        assert_eq!(
            db.store.list_alerts_json(&q).await.unwrap(),
            good,
            "{column}"
        );
    }
}

async fn retention_deletes_old_raw_records_and_keeps_alerts(engine: Engine) {
    let db = fresh(engine).await;
    let mut batch = sample_batch();
    // Classifications of five flows, one a minute, each carrying its flow record.
    let cs: Vec<AttackClassification> = (0..5u32)
        .map(|n| {
            let flow_id = uid(&["retained", &n.to_string()]);
            let mut c = classification(flow_id, n * 60);
            c.event_id = uid(&["retained-classification", &n.to_string()]);
            c.flow = Some(Box::new(flow_record(
                flow_id,
                "plant-a",
                t(i64::from(n) * 60),
                "benign",
            )));
            c
        })
        .collect();
    batch.classifications.extend(cs.iter().map(record));
    db.store.apply(&batch).await.unwrap();
    for (i, at) in [t(0), t(3600)].into_iter().enumerate() {
        db.store
            .insert_audit(&crate::AuditEntry {
                timestamp: at,
                actor: "ann".into(),
                role: "analyst".into(),
                method: "PUT".into(),
                path: format!("/api/alerts/{i}/status"),
                target: None,
                status: 200,
                detail: serde_json::json!({}),
                client_ip: None,
            })
            .await
            .unwrap();
    }
    let alerts = db.store.count_alerts().await.unwrap();
    let flows_before: i64 = on_engine!(db.store, |DB, pool, _w, _b| {
        sqlx::query_scalar("SELECT COUNT(*) FROM flows")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let classifications_before = db.store.count_classifications().await.unwrap();
    // Keep one day; "now" is a day after the third minute: flows and classifications of
    // minutes 0..=2 (and the sample batch's, which are older still) go.
    let day = Duration::days(1);
    let now = t(150) + day;
    let nothing = db
        .store
        .apply_retention(now, &crate::Retention::default())
        .await
        .unwrap();
    assert_eq!(
        nothing,
        crate::RetentionReport::default(),
        "no periods, nothing deleted"
    );
    let report = db
        .store
        .apply_retention(
            now,
            &crate::Retention {
                flows: Some(day),
                classifications: Some(day),
                audit: Some(day),
            },
        )
        .await
        .unwrap();
    let cutoff = crate::time::fmt("test", "cutoff", now - day).unwrap();
    let flows_after: i64 = on_engine!(db.store, |DB, pool, _w, _b| {
        sqlx::query_scalar("SELECT COUNT(*) FROM flows")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let old_left: i64 = on_engine!(db.store, |DB, pool, _w, _b| {
        sqlx::query_scalar("SELECT COUNT(*) FROM flows WHERE ts_end < $1")
            .bind(&cutoff)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(old_left, 0, "no flow older than the period is left");
    assert_eq!(report.flows as i64, flows_before - flows_after);
    assert!(report.flows >= 3, "{report:?}");
    assert!(flows_after >= 2, "the newer flows stay: {flows_after}");
    assert_eq!(
        db.store.count_classifications().await.unwrap(),
        classifications_before - report.classifications
    );
    assert!(report.classifications >= 3);
    assert_eq!(report.audit, 1, "only the old audit record goes");
    assert_eq!(
        db.store.count_alerts().await.unwrap(),
        alerts,
        "alerts are kept"
    );
    assert_counters_exact(&db.store).await;
    // Alerts keep the ids of flows whose records are gone.
    for (alert, flows) in db.store.alert_ids_with_flows().await.unwrap() {
        let detail = db.store.get_alert(alert).await.unwrap().unwrap();
        assert_eq!(detail.flow_ids, flows);
    }
    // Idempotent.
    let again = db
        .store
        .apply_retention(
            now,
            &crate::Retention {
                flows: Some(day),
                classifications: Some(day),
                audit: Some(day),
            },
        )
        .await
        .unwrap();
    assert_eq!(again, crate::RetentionReport::default());
}
