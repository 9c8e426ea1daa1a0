//! End-to-end tests of the `fedics` binary: the scripted demo detects every campaign the
//! simulator injected, and a killed demo restarted on the same data dir keeps its alerts
//! without duplicating any.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fedics_sensors::{SimConfig, Simulator};
use fedics_store::Store;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_fedics");
const SEED: &str = "3";
const SITES: &str = "3";

fn demo(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "demo",
        "--no-http",
        "--seed",
        SEED,
        "--sites",
        SITES,
        "--rate",
        "1500",
        "--summary-every",
        "1",
    ])
    .arg("--data-dir")
    .arg(dir)
    .args(extra)
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

#[derive(serde::Deserialize)]
struct State {
    sim_start: DateTime<Utc>,
    flows_published: u64,
}

fn state(dir: &Path) -> State {
    let b = std::fs::read(dir.join("demo-state.json")).expect("demo state written");
    serde_json::from_slice(&b).expect("demo state parses")
}

async fn open(dir: &Path) -> Store {
    Store::open(&dir.join("fedics.db").display().to_string())
        .await
        .expect("store opens")
}

/// Every alert's flows, checking that no flow belongs to two alerts.
async fn alert_flows(store: &Store) -> BTreeMap<Uuid, BTreeSet<Uuid>> {
    let mut seen: HashMap<Uuid, Uuid> = HashMap::new();
    let mut out = BTreeMap::new();
    for (alert, flows) in store.alert_ids_with_flows().await.expect("alert flows") {
        for f in &flows {
            if let Some(other) = seen.insert(*f, alert) {
                panic!("flow {f} is in two alerts: {other} and {alert} (duplicate incident)");
            }
        }
        out.insert(alert, flows.into_iter().collect());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_alerts_on_every_injected_campaign_and_survives_kill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // 1. A scripted run.
    let out = demo(d, &["--duration", "20"]).output().expect("demo runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {log}");
    assert!(log.contains("flows/s"), "no summary line: {log}");
    assert!(log.contains("demo stopped"), "no clean stop: {log}");

    // Ground truth: regenerate what the demo simulated.
    let st = state(d);
    assert!(
        st.flows_published > 10_000,
        "published only {}",
        st.flows_published
    );
    let sim = Simulator::new(SimConfig {
        seed: SEED.parse().expect("seed"),
        sites: SITES.parse().expect("sites"),
        start: st.sim_start,
        ..SimConfig::default()
    });
    let mut campaigns: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for f in sim.take(st.flows_published as usize) {
        if let Some(c) = f.ground_truth.as_ref().and_then(|g| g.campaign_id.clone()) {
            campaigns.entry(c).or_default().push(f.flow_id);
        }
    }
    assert!(
        campaigns.len() >= 3,
        "campaigns injected: {:?}",
        campaigns.keys()
    );
    let store = open(d).await;
    let alerted = store.flows_alerted().await.expect("alerted flows");
    for (c, flows) in &campaigns {
        let hit = flows.iter().filter(|f| alerted.contains_key(f)).count();
        assert!(
            hit > 0,
            "campaign {c}: none of its {} flows alerted",
            flows.len()
        );
    }
    let first = alert_flows(&store).await;
    assert!(!first.is_empty());
    store.close().await;

    // 2. Kill it mid-run (SIGKILL: no chance to clean up).
    let mut child = demo(d, &[])
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    std::thread::sleep(Duration::from_secs(8));
    child.kill().expect("kill");
    let _ = child.wait();

    // 3. Restart on the same data dir and stop it with Ctrl-C (SIGINT).
    let child = demo(d, &[]).spawn().expect("demo restarts");
    let pid = child.id().to_string();
    let until = Instant::now() + Duration::from_secs(60);
    // Wait until the replay of the earlier runs has caught up.
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let s = state(d);
        if s.flows_published > st.flows_published + 5_000 || Instant::now() > until {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().expect("demo exits");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo did not stop cleanly on SIGINT: {log}"
    );
    assert!(log.contains("demo stopped"), "{log}");

    // Every alert of the first run is still there, with (at least) its flows, and no flow
    // was attributed to a second, duplicate incident.
    let store = open(d).await;
    let last = alert_flows(&store).await;
    for (id, flows) in &first {
        let now = last
            .get(id)
            .unwrap_or_else(|| panic!("alert {id} lost after restart"));
        assert!(now.is_superset(flows), "alert {id} lost flows");
    }
    assert!(last.len() >= first.len());
    assert_eq!(
        store.count_alerts().await.expect("count") as usize,
        last.len()
    );
    store.close().await;
}
