//! The neural detectors (dense AE, LSTM-AE, MLP classifier) inside the pipeline: adding
//! them does not lower any technique's detection, and replacing a model while flows are
//! scored (hot swap) loses no flow and names the version that scored each one.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fedics_bus::{Bus, Consumer};
use fedics_core::{AnomalyEvent, FlowRecord, decode, topics};
use fedics_detect::Detector;
use fedics_ml::detectors::{AeDetector, LstmAeDetector, LstmDetectorConfig, MlpDetector};
use fedics_ml::flow_models::{self, FlowModelConfig};
use fedics_ml::train::no_progress;
use fedics_ml::{ComputeDevice, ModelSlot};
use fedics_sensors::{SimConfig, Simulator};

fn benign(seed: u64, n: usize) -> Vec<FlowRecord> {
    Simulator::new(SimConfig {
        seed,
        sites: 3,
        attacks: false,
        ..SimConfig::default()
    })
    .take(n)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neural_detectors_keep_every_techniques_recall() {
    let sim = Simulator::new(SimConfig {
        seed: 42,
        sites: 3,
        ..SimConfig::default()
    });
    let topo = sim.topology();
    let flows: Vec<_> = sim.take(70_000).collect();

    // Models trained on other simulated runs than the one scored.
    let config = FlowModelConfig::default();
    let train_benign = benign(1042, 30_000);
    let labelled: Vec<FlowRecord> = Simulator::new(SimConfig {
        seed: 2042,
        sites: 3,
        ..SimConfig::default()
    })
    .take(50_000)
    .collect();
    let cpu = ComputeDevice::Cpu;
    let ae = ModelSlot::new(Some(
        flow_models::train_ae(&train_benign, &config, cpu, &mut no_progress).expect("ae"),
    ));
    let lstm = ModelSlot::new(Some(
        flow_models::train_lstm(&train_benign, &config, cpu, &mut no_progress).expect("lstm"),
    ));
    let mlp = ModelSlot::new(Some(
        flow_models::train_mlp(&labelled, &config, cpu, &mut no_progress).expect("mlp"),
    ));

    let base = common::run_quality(&topo, &flows, Arc::new(Vec::new)).await;
    let with = common::run_quality(
        &topo,
        &flows,
        Arc::new(move || {
            vec![
                Box::new(AeDetector::new(ae.clone())) as Box<dyn Detector>,
                Box::new(LstmAeDetector::new(
                    lstm.clone(),
                    LstmDetectorConfig::default(),
                )),
                Box::new(MlpDetector::new(mlp.clone())),
            ]
        }),
    )
    .await;
    println!("rules + forest:");
    base.print();
    println!("rules + forest + ae + lstm-ae + mlp:");
    with.print();
    for t in base.per.keys() {
        assert!(
            with.recall(t) >= base.recall(t),
            "{t}: recall {:.4} with the neural detectors < {:.4} without",
            with.recall(t),
            base.recall(t)
        );
    }
    assert!(
        with.fpr() <= 0.02,
        "false-positive rate {:.4} > 0.02",
        with.fpr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_loses_no_flow() {
    let sim = Simulator::new(SimConfig {
        seed: 9,
        sites: 2,
        ..SimConfig::default()
    });
    let topo = sim.topology();
    let flows: Vec<FlowRecord> = sim.take(24_000).collect();
    let config = FlowModelConfig::default();
    let v1 = flow_models::train_ae(
        &benign(100, 6_000),
        &config,
        ComputeDevice::Cpu,
        &mut no_progress,
    )
    .expect("ae v1");
    let mut c2 = config.clone();
    c2.ae_train.seed = 1;
    let v2 = flow_models::train_ae(
        &benign(200, 6_000),
        &c2,
        ComputeDevice::Cpu,
        &mut no_progress,
    )
    .expect("ae v2");
    let (n1, n2) = (v1.version().to_string(), v2.version().to_string());
    assert_ne!(n1, n2);
    let slot = ModelSlot::new(Some(v1));
    let s = slot.clone();
    let pipeline = common::start_with(
        &topo,
        None,
        Arc::new(move || vec![Box::new(AeDetector::new(s.clone())) as Box<dyn Detector>]),
    );
    let mut tap = pipeline
        .bus()
        .subscribe(topics::ANOMALIES, "test-tap")
        .expect("tap");
    let reader = tokio::spawn(async move {
        let mut versions: HashMap<uuid::Uuid, Vec<String>> = HashMap::new();
        loop {
            match tap.poll(4096, Duration::from_millis(200)).await {
                Ok(batch) => {
                    for r in &batch {
                        let ev: AnomalyEvent = decode(&r.payload).expect("valid event");
                        if ev.detector == "ae" {
                            versions
                                .entry(ev.flow_id)
                                .or_default()
                                .push(ev.model_version);
                        }
                    }
                    let _ = tap.commit_batch(&batch);
                }
                Err(_) => return versions,
            }
        }
    });
    let mut v2 = Some(v2);
    for (i, chunk) in flows.chunks(1000).enumerate() {
        pipeline.publish(chunk).await.expect("publish");
        if i == 8
            && let Some(m) = v2.take()
        {
            // Replaced while earlier chunks are still being scored.
            slot.store(m);
        }
    }
    assert!(pipeline.drain(Duration::from_secs(300)).await, "drained");
    let stats = pipeline.shutdown(Duration::from_secs(10)).await;
    let versions = reader.await.expect("reader");
    assert_eq!(stats.rejected, 0);
    // Every flow got exactly one verdict from the autoencoder, by one of the two versions.
    assert_eq!(versions.len(), flows.len(), "flows with an ae verdict");
    for f in &flows {
        let v = versions.get(&f.flow_id).expect("verdict");
        assert_eq!(v.len(), 1, "one verdict per flow");
    }
    let seen: BTreeSet<&str> = versions.values().map(|v| v[0].as_str()).collect();
    assert_eq!(seen, BTreeSet::from([n1.as_str(), n2.as_str()]));
}
