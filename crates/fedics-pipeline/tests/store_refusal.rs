//! A record the store can never accept is rejected and counted; the good records of the
//! same batch are stored, and the writer does not loop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fedics_core::{AttackClassification, DetectorEvidence, FlowContext, SCHEMA_VERSION, Transport};
use fedics_pipeline::Stats;
use fedics_pipeline::stages::write;
use fedics_store::{ClassificationRecord, Store, WriteBatch};
use uuid::Uuid;

fn record(n: u128, at: DateTime<Utc>) -> ClassificationRecord {
    let c = AttackClassification {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::from_u128(n),
        flow_id: Uuid::from_u128(n + 1000),
        facility_id: "site-1".into(),
        timestamp: at,
        technique_id: "T0846".into(),
        technique_name: "Remote System Discovery".into(),
        tactic_ids: vec!["TA0102".into()],
        confidence: 0.9,
        classifier: "evidence".into(),
        classifier_version: "evidence-1".into(),
        evidence: vec![DetectorEvidence {
            detector: "rules".into(),
            layer: 1,
            model_version: "r".into(),
            score: Some(0.8),
            threshold: None,
            is_anomaly: true,
            findings: vec![],
            top_features: vec![],
        }],
        missing_detectors: vec![],
        context: FlowContext {
            src_ip: [10, 1, 3, 20].into(),
            src_port: 40000,
            dst_ip: [10, 1, 2, 10].into(),
            dst_port: 502,
            transport: Transport::Tcp,
            ics_protocol: None,
            ts_start: at,
            ts_end: at,
        },
        flow: None,
    };
    ClassificationRecord::from_event(&c).expect("record")
}

#[tokio::test]
async fn a_refused_record_is_rejected_and_the_rest_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("t.db").display().to_string())
        .await
        .expect("store");
    let ok = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    // Year 12026: valid for chrono, outside what the store represents (years 0..=9999).
    let far = DateTime::<Utc>::from_timestamp(317_316_000_000, 0).unwrap_or_default();
    let batch = WriteBatch {
        classifications: vec![record(1, ok), record(2, far), record(3, ok)],
        ..WriteBatch::default()
    };
    let stats = Stats::default();
    tokio::time::timeout(
        Duration::from_secs(30),
        write(&store, batch, &stats, "test"),
    )
    .await
    .expect("the writer does not retry a permanent failure forever");
    assert_eq!(store.count_classifications().await.expect("count"), 2);
    let s = stats.snapshot();
    assert_eq!(s.rejected, 1);
    assert_eq!(s.store_errors, 0);
}
