//! Malformed events on the bus are rejected with a reason, counted, and never stop a stage
//! or lose the good events around them.

mod common;

use std::time::Duration;

use fedics_bus::{Bus, OutRecord};
use fedics_core::{DecodeError, FlowRecord, decode, topics};
use fedics_sensors::{SimConfig, Simulator};

fn bad_flow_payloads(good: &FlowRecord) -> Vec<(Vec<u8>, &'static str)> {
    let json = serde_json::to_value(good).expect("flow to json");
    let mut wrong_version = json.clone();
    wrong_version["schema_version"] = 99.into();
    let mut missing = json.clone();
    missing
        .as_object_mut()
        .expect("object")
        .remove("facility_id");
    let nan = serde_json::to_string(&json)
        .expect("json")
        .replace("\"duration_ms\":", "\"duration_ms\":NaN,\"x\":");
    let mut negative = json.clone();
    negative["duration_ms"] = (-5.0).into();
    let mut wrong_type = json.clone();
    wrong_type["src_port"] = "http".into();
    vec![
        (b"{not json".to_vec(), "malformed_json"),
        (Vec::new(), "malformed_json"),
        (
            serde_json::to_vec(&wrong_version).expect("json"),
            "schema_version",
        ),
        (serde_json::to_vec(&missing).expect("json"), "invalid_field"),
        (nan.into_bytes(), "malformed_json"),
        (
            serde_json::to_vec(&negative).expect("json"),
            "invalid_field",
        ),
        (
            serde_json::to_vec(&wrong_type).expect("json"),
            "invalid_field",
        ),
    ]
}

#[test]
fn decode_errors_say_which_field_and_what_was_expected() {
    let good = Simulator::new(SimConfig::default()).next().expect("a flow");
    for (payload, reason) in bad_flow_payloads(&good) {
        let err = decode::<FlowRecord>(&payload).expect_err("rejected");
        assert_eq!(err.reason(), reason, "{err}");
    }
    let mut missing = serde_json::to_value(&good).expect("json");
    missing
        .as_object_mut()
        .expect("object")
        .remove("facility_id");
    let err =
        decode::<FlowRecord>(&serde_json::to_vec(&missing).expect("json")).expect_err("missing");
    assert!(err.to_string().contains("facility_id"), "{err}");
    let mut neg = serde_json::to_value(&good).expect("json");
    neg["duration_ms"] = (-5.0).into();
    let err = decode::<FlowRecord>(&serde_json::to_vec(&neg).expect("json")).expect_err("negative");
    assert!(
        matches!(&err, DecodeError::Invalid(v) if v.field == "duration_ms"),
        "{err}"
    );
    let mut v2 = serde_json::to_value(&good).expect("json");
    v2["schema_version"] = 2.into();
    v2.as_object_mut().expect("object").remove("ts_end");
    let err = decode::<FlowRecord>(&serde_json::to_vec(&v2).expect("json")).expect_err("v2");
    assert!(err.to_string().contains("schema_version 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_rejected_counted_and_never_stop_a_stage() {
    let sim = Simulator::new(SimConfig {
        seed: 9,
        sites: 2,
        ..SimConfig::default()
    });
    let topo = sim.topology();
    let flows: Vec<FlowRecord> = sim.take(6_000).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::store(dir.path()).await;
    let pipeline = common::start(&topo, Some(store.clone()));
    let bus = pipeline.bus().clone();

    let bad = bad_flow_payloads(&flows[0]);
    let mut injected = 0u64;
    for (i, chunk) in flows.chunks(500).enumerate() {
        pipeline.publish(chunk).await.expect("publish good flows");
        // Garbage on every topic a stage reads, keyed like real traffic.
        let (payload, _) = &bad[i % bad.len()];
        for topic in [
            topics::NETWORK_DATA,
            topics::ANOMALIES,
            topics::ATTACK_CLASSIFIED,
            topics::ALERTS,
        ] {
            bus.send(
                topic,
                vec![OutRecord::new(
                    chunk[0].facility_id.as_bytes(),
                    payload.clone(),
                )],
            )
            .await
            .expect("send garbage");
            injected += 1;
        }
    }
    // A schema-v2 anomaly event and a NaN score on the anomalies topic.
    let nan_anomaly = br#"{"schema_version":1,"event_id":"00000000-0000-0000-0000-000000000000","flow_id":"00000000-0000-0000-0000-000000000001","facility_id":"site-1","timestamp":"2026-01-01T00:00:00Z","detector":"rules","layer":1,"model_version":"x","score":NaN,"is_anomaly":true,"context":{}}"#;
    bus.send(
        topics::ANOMALIES,
        vec![OutRecord::new("site-1", nan_anomaly.to_vec())],
    )
    .await
    .expect("send");
    injected += 1;

    assert!(
        pipeline.drain(Duration::from_secs(120)).await,
        "pipeline drained despite garbage"
    );
    let stats = pipeline.shutdown(Duration::from_secs(10)).await;
    // Every good flow went all the way through the join.
    assert_eq!(stats.flows_in, flows.len() as u64);
    assert_eq!(stats.flows_classified, flows.len() as u64);
    // Each injected record was rejected by the stage(s) reading its topic:
    // attack_classified is read by two groups (predict, persist-classifications).
    let per_chunk_consumers = 5u64;
    let chunks = flows.len().div_ceil(500) as u64;
    assert_eq!(
        stats.rejected,
        chunks * per_chunk_consumers + 1,
        "injected {injected}"
    );
    // Good attack flows still produced stored alerts and classifications.
    assert!(stats.attacks > 0);
    assert!(store.count_alerts().await.expect("count") > 0);
    assert_eq!(
        store.count_classifications().await.expect("count"),
        stats.attacks
    );
}
