//! End-to-end detection quality against the simulator's ground truth: a seeded run with
//! known campaigns goes through every stage into the store; per-technique recall and the
//! false-positive rate on benign flows are measured from what was stored.

mod common;

use std::sync::Arc;

use fedics_sensors::{SimConfig, Simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_campaigns_are_detected_with_few_false_positives() {
    let sim = Simulator::new(SimConfig {
        seed: 42,
        sites: 3,
        ..SimConfig::default()
    });
    let topo = sim.topology();
    // ~45 simulated minutes: every facility runs its first campaign to the end.
    let flows: Vec<_> = sim.take(70_000).collect();
    let q = common::run_quality(&topo, &flows, Arc::new(Vec::new)).await;
    q.print();
    for t in ["T0846", "T0840", "T0814", "T0855", "T0806"] {
        let (n, d, _) = q.per.get(t).cloned().unwrap_or_default();
        assert!(n > 0, "campaign stage {t} was not simulated");
        let recall = q.recall(t);
        assert!(recall >= 0.9, "{t}: recall {recall:.3} < 0.9 ({d}/{n})");
    }
    // Every injected technique produced at least one alert.
    for (t, (n, d, _)) in &q.per {
        assert!(*d > 0, "{t}: none of {n} flows alerted");
    }
    assert!(q.fpr() <= 0.02, "false-positive rate {:.4} > 0.02", q.fpr());
}
