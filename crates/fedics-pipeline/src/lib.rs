//! # fedics-pipeline: the stages, wired over any bus
//!
//! ```text
//! network_data ─► detect ─► anomalies ─► classify (join + deadline) ─► attack_classified
//!                                                                         │        │
//!                         alerts ◄─ predict (incidents, predictor) ◄──────┘        ▼
//!                           │          └─► attack_predicted                 persist (classifications)
//!                           ▼
//!                    persist (alerts) ─► store
//! ```
//!
//! Stages are generic over [`fedics_bus::Bus`]; they never know whether they run in one
//! process on the embedded bus or as separate processes on Kafka. Every stage is one
//! consumer group; running more members of a group scales it out.

pub mod correlate;
pub mod join;
pub mod stages;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use fedics_bus::{Bus, BusError};
use fedics_core::{FlowRecord, topics};
use fedics_detect::{Classifier, Detector};
use fedics_intel::Predictor;
use fedics_store::Store;
use tokio::task::JoinHandle;

pub use correlate::Correlator;
pub use join::Join;
pub use stages::{ORIGIN_HEADER, publish_flows};
pub use stats::{
    FacilityCount, FacilitySnapshot, LatencyRecorder, MAX_FACILITIES, Stats, StatsSnapshot,
};

use stages::{Persist, StageCtx};

/// Consumer groups, one per stage.
pub mod groups {
    pub const DETECT: &str = "detect";
    pub const CLASSIFY: &str = "classify";
    pub const PREDICT: &str = "predict";
    pub const PERSIST_ALERTS: &str = "persist-alerts";
    pub const PERSIST_CLASSIFICATIONS: &str = "persist-classifications";
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Members of the detect group (each with its own detector instances).
    pub detect_workers: usize,
    /// Records per poll.
    pub batch: usize,
    /// How long the join waits for a flow's missing verdicts.
    pub join_deadline: Duration,
    /// Flows of one (facility, technique, source) further apart than this open a new incident.
    pub incident_window: TimeDelta,
    /// Predicted next techniques per incident.
    pub top_k: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            detect_workers: 1,
            batch: 1024,
            join_deadline: Duration::from_secs(2),
            incident_window: TimeDelta::seconds(300),
            top_k: 3,
        }
    }
}

/// Builds fresh detector instances for one detect worker.
pub type DetectorFactory = Arc<dyn Fn() -> Vec<Box<dyn Detector>> + Send + Sync>;

/// What the stages run.
pub struct Components {
    pub detectors: DetectorFactory,
    pub classifier: Box<dyn Classifier>,
    pub predictor: Predictor,
    /// Where alerts and classifications are persisted; `None` runs without persistence.
    pub store: Option<Store>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("no detectors configured")]
    NoDetectors,
}

/// Whether a pipeline's stage tasks are all running. Cheap to clone; outlives the pipeline
/// (after a shutdown it reports not running).
#[derive(Debug, Clone)]
pub struct Liveness {
    alive: Arc<AtomicUsize>,
    expected: usize,
}

impl Liveness {
    /// True while every stage task runs (none has returned or panicked).
    pub fn running(&self) -> bool {
        self.alive.load(Ordering::Acquire) == self.expected
    }
}

/// Decrements the live-stage count when a stage task ends, however it ends.
struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Spawns a stage, counted in `alive` while it runs.
fn spawn_stage<F>(alive: &Arc<AtomicUsize>, stage: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    alive.fetch_add(1, Ordering::AcqRel);
    let guard = AliveGuard(alive.clone());
    tokio::spawn(async move {
        let _guard = guard;
        stage.await
    })
}

/// A running pipeline.
pub struct Pipeline<B: Bus> {
    bus: B,
    liveness: Liveness,
    tasks: Vec<JoinHandle<()>>,
    groups: Vec<(&'static str, &'static str)>,
    stats: Arc<Stats>,
    latency: Arc<LatencyRecorder>,
}

impl<B: Bus> Pipeline<B> {
    /// Subscribes every stage's consumer group, then spawns the stages on the current
    /// tokio runtime. Producers may publish as soon as this returns.
    pub fn start(
        bus: B,
        config: PipelineConfig,
        components: Components,
    ) -> Result<Self, PipelineError> {
        let stats = Arc::new(Stats::default());
        let latency = Arc::new(LatencyRecorder::default());
        let ctx = Arc::new(StageCtx {
            stats: stats.clone(),
            latency: latency.clone(),
            batch: config.batch.max(1),
        });
        let expected: Vec<String> = (components.detectors)()
            .iter()
            .map(|d| d.name().to_string())
            .collect();
        if expected.is_empty() {
            return Err(PipelineError::NoDetectors);
        }
        let mut groups = vec![
            (topics::NETWORK_DATA, groups::DETECT),
            (topics::ANOMALIES, groups::CLASSIFY),
            (topics::ATTACK_CLASSIFIED, groups::PREDICT),
        ];
        let mut tasks = Vec::new();
        let alive = Arc::new(AtomicUsize::new(0));
        for _ in 0..config.detect_workers.max(1) {
            let c = bus.subscribe(topics::NETWORK_DATA, groups::DETECT)?;
            tasks.push(spawn_stage(
                &alive,
                stages::detect(bus.clone(), c, (components.detectors)(), ctx.clone()),
            ));
        }
        let c = bus.subscribe(topics::ANOMALIES, groups::CLASSIFY)?;
        let join = Join::new(expected, config.join_deadline);
        tasks.push(spawn_stage(
            &alive,
            stages::classify(bus.clone(), c, components.classifier, join, ctx.clone()),
        ));
        let c = bus.subscribe(topics::ATTACK_CLASSIFIED, groups::PREDICT)?;
        let correlator =
            Correlator::new(components.predictor, config.incident_window, config.top_k);
        tasks.push(spawn_stage(
            &alive,
            stages::correlate(bus.clone(), c, correlator, ctx.clone()),
        ));
        if let Some(store) = components.store {
            let c = bus.subscribe(topics::ALERTS, groups::PERSIST_ALERTS)?;
            tasks.push(spawn_stage(
                &alive,
                stages::persist(c, store.clone(), Persist::Alerts, ctx.clone()),
            ));
            let c = bus.subscribe(topics::ATTACK_CLASSIFIED, groups::PERSIST_CLASSIFICATIONS)?;
            tasks.push(spawn_stage(
                &alive,
                stages::persist(c, store, Persist::Classifications, ctx.clone()),
            ));
            groups.push((topics::ALERTS, groups::PERSIST_ALERTS));
            groups.push((topics::ATTACK_CLASSIFIED, groups::PERSIST_CLASSIFICATIONS));
        } else {
            // Without a store, keep the alerts topic drained so producers never block.
            let c = bus.subscribe(topics::ALERTS, groups::PERSIST_ALERTS)?;
            tasks.push(spawn_stage(&alive, discard(c)));
            groups.push((topics::ALERTS, groups::PERSIST_ALERTS));
        }
        let liveness = Liveness {
            alive,
            expected: tasks.len(),
        };
        Ok(Self {
            bus,
            liveness,
            tasks,
            groups,
            stats,
            latency,
        })
    }

    /// A handle telling whether every stage task is still running (for readiness checks).
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    pub fn bus(&self) -> &B {
        &self.bus
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    pub fn latency(&self) -> &Arc<LatencyRecorder> {
        &self.latency
    }

    /// Publishes flows to `network_data` (waits while the pipeline is full).
    pub async fn publish(&self, flows: &[FlowRecord]) -> Result<(), BusError> {
        publish_flows(&self.bus, flows, &self.stats).await
    }

    /// Records not yet processed by every stage.
    pub async fn lag(&self) -> u64 {
        let mut total = 0;
        for (t, g) in &self.groups {
            total += self.bus.lag(t, g).await.unwrap_or(0);
        }
        total
    }

    /// Waits until every stage has processed everything published so far (or `timeout`).
    /// Returns whether the pipeline drained.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut zero_in_a_row = 0;
        while Instant::now() < until {
            if self.lag().await == 0 {
                zero_in_a_row += 1;
                // Twice in a row: an upstream stage may have been between poll and send.
                if zero_in_a_row >= 2 {
                    return true;
                }
            } else {
                zero_in_a_row = 0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Drains in-flight work, closes the bus and waits for the stages to stop.
    pub async fn shutdown(self, timeout: Duration) -> StatsSnapshot {
        if !self.drain(timeout).await {
            tracing::warn!(
                lag = self.lag().await,
                "pipeline did not drain before the timeout"
            );
        }
        self.bus.close();
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "stage task failed");
            }
        }
        self.stats.snapshot()
    }
}

async fn discard<C: fedics_bus::Consumer>(mut c: C) {
    loop {
        match c.poll(4096, Duration::from_millis(200)).await {
            Ok(b) => {
                let _ = c.commit_batch(&b);
            }
            Err(BusError::Closed) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
