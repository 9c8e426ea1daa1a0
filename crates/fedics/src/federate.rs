//! The demo's federation: its simulated facilities train the pipeline's classifier (the
//! MLP of `models/mlp.model`) together, as real gRPC peers of an aggregator on loopback,
//! periodically and when an admin triggers a round (`POST /api/fl/rounds/trigger`).
//!
//! * Each facility is a site that trains on its own labelled traffic only (in the demo the
//!   simulator's ground truth stands in for the analyst-confirmed labels a plant would
//!   use); raw flows never cross the protocol, only clipped, noised model updates.
//! * Client-level DP with an enforced ε budget. The ledger is the store's: a restart on the
//!   same data dir continues it (ε spent before a restart still counts).
//! * Every round is recorded where the API serves it (`/api/fl/*`, `fl_progress` on the
//!   WebSocket) and its events go to the bus's `fl_events` topic.
//! * A new global model replaces the running classifier only if, on the deploying plant's
//!   own validation traffic, its binary accuracy is at least the running model's minus
//!   [`PROMOTION_TOLERANCE`]: the file is written atomically beside the others and the
//!   model watcher swaps it in. Each decision is an `fl_events` record
//!   (`model_promoted` / `model_kept`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fedics_bus::{Bus, OutRecord};
use fedics_core::{FlEvent, FlRole, SCHEMA_VERSION, topics};
use fedics_federation::{
    AdaptiveClip, Aggregator, AggregatorConfig, AggregatorHandle, ClientProgress, DpConfig,
    FlObserver, NoiseMode, RoundReport, SiteConfig, SiteKeys, run_site,
};
use fedics_fl::dp::{Ledger, PrivacyBudget};
use fedics_fl::strategy::{RoundSettings, StrategyConfig};
use fedics_ml::federated::{MlpSpec, MlpTrainer};
use fedics_ml::{ComputeDevice, MlpModel, flow_models};
use fedics_sensors::{SimConfig, Simulator};
use fedics_server::FlTrigger;
use fedics_store::Store;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

use crate::fl_record::{RecorderConfig, StoreRecorder};

/// Largest drop of binary accuracy (on the plant's validation traffic) at which a new
/// global model still replaces the running one.
pub const PROMOTION_TOLERANCE: f64 = 0.005;

#[derive(clap::Args, Debug, Clone)]
pub struct FederationArgs {
    /// Do not federate the facilities' classifier.
    #[arg(long)]
    pub no_federation: bool,
    /// Seconds between federation rounds (0: only rounds triggered through the API).
    #[arg(long, default_value_t = 300.0)]
    pub fl_every: f64,
    /// Seconds from the start to the first round.
    #[arg(long, default_value_t = 20.0)]
    pub fl_first_after: f64,
    /// Aggregation: fedavg, fedprox:mu=0.01, fedadam, median, trimmed-mean:beta=0.2, krum:f=1.
    #[arg(long, default_value = "fedavg")]
    pub fl_strategy: StrategyConfig,
    /// Local epochs per round.
    #[arg(long, default_value_t = 1)]
    pub fl_local_epochs: u32,
    #[arg(long, default_value_t = 1e-3)]
    pub fl_lr: f32,
    /// Noise multiplier σ of client-level DP (0: no DP).
    #[arg(long, default_value_t = 1.0)]
    pub fl_dp_noise: f64,
    /// L2 clipping bound C of each site's update.
    #[arg(long, default_value_t = 0.01)]
    pub fl_dp_clip: f64,
    /// Adaptive clipping: the bound starts at --fl-dp-clip and follows this quantile of the
    /// facilities' update norms (count noise σ_b = σ, learning rate 0.2).
    #[arg(long)]
    pub fl_dp_adaptive_quantile: Option<f64>,
    /// ε budget of the federation; rounds past it are refused.
    #[arg(long, default_value_t = 30.0)]
    pub fl_max_epsilon: f64,
    #[arg(long, default_value_t = 1e-5)]
    pub fl_delta: f64,
    /// Labelled flows of its own traffic each facility trains and evaluates on.
    #[arg(long, default_value_t = 12_000)]
    pub fl_flows_per_site: usize,
}

/// A running federation. Dropping it does not stop it: call [`Federation::stop`].
pub struct Federation {
    trigger: Arc<Trigger>,
    stop_tx: watch::Sender<bool>,
    driver: tokio::task::JoinHandle<()>,
}

struct Trigger {
    tx: mpsc::Sender<oneshot::Sender<Result<i64, String>>>,
    running: Arc<AtomicBool>,
}

impl FlTrigger for Trigger {
    fn trigger(&self) -> BoxFuture<'_, Result<i64, String>> {
        async move {
            if self.running.load(Ordering::SeqCst) {
                return Err("a federation round is already running".into());
            }
            let (tx, rx) = oneshot::channel();
            self.tx
                .try_send(tx)
                .map_err(|_| "a federation round is already starting".to_string())?;
            rx.await.map_err(|_| "the federation stopped".to_string())?
        }
        .boxed()
    }
}

/// What the federation needs from the demo.
pub struct FederationContext<B: Bus> {
    pub store: Store,
    pub bus: B,
    pub models_dir: PathBuf,
    pub seed: u64,
    pub sites: usize,
}

fn site_ids(sites: usize) -> Vec<String> {
    // The simulator names its facilities site-1, site-2, …
    (1..=sites).map(|i| format!("site-{i}")).collect()
}

/// Labelled traffic of each facility (from a simulator seed of its own, so the sites never
/// train on the flows the demo's detectors score) and the deploying plant's validation set.
fn local_traffic(
    seed: u64,
    sites: usize,
    per_site: usize,
) -> (
    Vec<Vec<fedics_core::FlowRecord>>,
    Vec<fedics_core::FlowRecord>,
) {
    let ids = site_ids(sites);
    let mut per: Vec<Vec<_>> = vec![Vec::new(); sites];
    let sim = Simulator::new(SimConfig {
        seed: seed.wrapping_add(3_000_017),
        sites,
        ..SimConfig::default()
    });
    for f in sim.take(per_site.saturating_mul(sites)) {
        if let Some(i) = ids.iter().position(|id| *id == f.facility_id) {
            per[i].push(f);
        }
    }
    let validation: Vec<_> = Simulator::new(SimConfig {
        seed: seed.wrapping_add(4_000_037),
        sites,
        ..SimConfig::default()
    })
    .take(per_site.max(2_000))
    .collect();
    (per, validation)
}

/// Binary accuracy (benign vs attack) of `params` on encoded rows.
fn binary_accuracy(spec: &MlpSpec, params: &[f32], rows: &[f32], labels: &[usize]) -> Result<f64> {
    let (_, m) = spec.evaluate_params(params, rows, labels)?;
    m.get("binary_accuracy")
        .or(m.get("accuracy"))
        .copied()
        .context("the evaluation gave no accuracy")
}

/// Sends the federation's events to the bus (`fl_events`) and to the store recorder.
struct Observers {
    recorder: StoreRecorder,
    events: mpsc::Sender<FlEvent>,
}

impl FlObserver for Observers {
    fn event(&self, e: FlEvent) {
        if self.events.try_send(e.clone()).is_err() {
            metrics::counter!("fedics_fl_events_dropped_total").increment(1);
        }
        self.recorder.event(e);
    }

    fn client_progress(&self, p: &ClientProgress) {
        self.recorder.client_progress(p);
    }

    fn round_finished(&self, r: &RoundReport) {
        self.recorder.round_finished(r);
    }
}

/// Publishes events to `fl_events` (keyed by node), never blocking the aggregator.
fn spawn_event_publisher<B: Bus>(bus: B, mut rx: mpsc::Receiver<FlEvent>) {
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            let payload = match fedics_core::encode(&e) {
                Ok(p) => p,
                Err(err) => {
                    tracing::warn!(error = %err, "could not encode an FL event");
                    continue;
                }
            };
            let rec = OutRecord::new(e.node_id.clone().into_bytes(), payload);
            match tokio::time::timeout(
                Duration::from_secs(2),
                bus.send(topics::FL_EVENTS, vec![rec]),
            )
            .await
            {
                Ok(Ok(())) => {
                    metrics::counter!("fedics_fl_events_total", "phase" => e.phase.clone())
                        .increment(1)
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "FL event not published");
                    break;
                }
                Err(_) => metrics::counter!("fedics_fl_events_dropped_total").increment(1),
            }
        }
    });
}

/// The stored ledger of `federation_id` as an accountant ledger to continue.
async fn stored_ledger(
    store: &Store,
    federation_id: &str,
    budget: PrivacyBudget,
) -> Result<Option<Ledger>> {
    let entries = store.privacy_ledger(Some(federation_id)).await?;
    if entries.is_empty() {
        return Ok(None);
    }
    let mut ledger = Ledger::new(budget)?;
    let mut sorted: Vec<_> = entries
        .into_iter()
        .filter(|e| e.site_id.is_none())
        .collect();
    sorted.sort_by_key(|e| e.round_number);
    for e in sorted {
        let round = u64::try_from(e.round_number).context("a stored ledger round is negative")?;
        ledger
            .record_round(round, e.sampling_rate, e.noise_multiplier, e.clip_norm)
            .with_context(|| {
                format!("replaying the stored privacy ledger of {federation_id} (round {round})")
            })?;
    }
    Ok(Some(ledger))
}

impl Federation {
    /// The trigger for `POST /api/fl/rounds/trigger`.
    pub fn trigger(&self) -> Arc<dyn FlTrigger> {
        self.trigger.clone()
    }

    /// Starts the aggregator, one site per facility and the round driver.
    pub async fn start<B: Bus>(ctx: FederationContext<B>, a: &FederationArgs) -> Result<Self> {
        if ctx.sites == 0 {
            bail!("the federation needs at least one facility");
        }
        let model_path = ctx.models_dir.join(crate::neural::MLP_FILE);
        let model = MlpModel::load(&model_path, ComputeDevice::Cpu).with_context(|| {
            format!(
                "loading the classifier to federate from {}",
                model_path.display()
            )
        })?;
        let spec = model.federation_spec()?;
        let federation_id = format!("demo-{}", ctx.seed);
        let dp = if a.fl_dp_noise > 0.0 {
            Some(DpConfig {
                clip: a.fl_dp_clip,
                noise_multiplier: a.fl_dp_noise,
                mode: NoiseMode::Central,
                budget: PrivacyBudget::new(a.fl_max_epsilon, a.fl_delta)?,
            })
        } else {
            None
        };
        let resume = match &dp {
            Some(dp) => stored_ledger(&ctx.store, &federation_id, dp.budget).await?,
            None => None,
        };
        if let Some(l) = &resume {
            let spent = l.spent()?;
            tracing::info!(federation = %federation_id, rounds = l.entries().len(), epsilon = spent.epsilon, "continuing the stored privacy ledger");
        }

        // Local data, encoded with the classifier's own preprocessing.
        let (seed, sites, per_site) = (ctx.seed, ctx.sites, a.fl_flows_per_site.max(500));
        let (per, validation) =
            tokio::task::spawn_blocking(move || local_traffic(seed, sites, per_site)).await?;
        let ids = site_ids(ctx.sites);
        let mut trainers = Vec::new();
        let mut total_examples = 0usize;
        for (id, flows) in ids.iter().zip(per) {
            let cut = flows.len() * 4 / 5;
            let (train_rows, train_labels, skipped) = flow_models::mlp_rows(&model, &flows[..cut])?;
            let (eval_rows, eval_labels, _) = flow_models::mlp_rows(&model, &flows[cut..])?;
            if train_labels.is_empty() || eval_labels.is_empty() {
                bail!("facility {id} has too little labelled traffic to federate");
            }
            tracing::debug!(site = %id, rows = train_labels.len(), skipped, "site data");
            let n = train_labels.len() as u64;
            total_examples += train_labels.len();
            let t = MlpTrainer::with_spec(spec.clone(), train_rows, train_labels)?
                .with_eval(eval_rows, eval_labels)?;
            trainers.push((id.clone(), n, t));
        }
        let (val_rows, val_labels, _) = flow_models::mlp_rows(&model, &validation)?;

        let mut keys = SiteKeys::new();
        let site_keys: Vec<String> = ids
            .iter()
            .map(|_| fedics_server::auth::random_hex(24))
            .collect();
        for (id, key) in ids.iter().zip(&site_keys) {
            keys.insert(id.clone(), key.as_bytes());
        }
        let mut cfg = AggregatorConfig::new("127.0.0.1:0".parse()?, keys);
        cfg.strategy = a.fl_strategy.clone();
        cfg.settings = RoundSettings {
            local_epochs: a.fl_local_epochs.max(1),
            learning_rate: a.fl_lr,
            ..RoundSettings::default()
        };
        cfg.batch_size = 200;
        cfg.round_timeout = Duration::from_secs(120);
        cfg.adaptive_clip = match (&dp, a.fl_dp_adaptive_quantile) {
            (Some(_), Some(q)) => Some(AdaptiveClip {
                target_quantile: q,
                learning_rate: 0.2,
                count_noise_std: a.fl_dp_noise,
            }),
            (None, Some(_)) => bail!("--fl-dp-adaptive-quantile needs DP (--fl-dp-noise > 0)"),
            _ => None,
        };
        cfg.dp = dp;
        cfg.resume_ledger = resume;
        cfg.seed = ctx.seed;
        cfg.facility_id = "federation".into();
        cfg.node_id = format!("aggregator-{federation_id}");
        let (recorder, _record_task) = StoreRecorder::start(
            ctx.store.clone(),
            RecorderConfig::of(federation_id.clone(), ctx.sites, &cfg),
        );
        let created = recorder.created_rounds();
        let (events_tx, events_rx) = mpsc::channel(1024);
        spawn_event_publisher(ctx.bus.clone(), events_rx);
        let observer = Arc::new(Observers {
            recorder,
            events: events_tx.clone(),
        });
        let current = model.flat_params();
        let handle = Aggregator::start(cfg, current.clone(), observer)
            .await
            .context("starting the federation's aggregator")?;
        let server = format!("http://{}", handle.addr());
        let (stop_tx, stop_rx) = watch::channel(false);
        for ((id, n, trainer), key) in trainers.into_iter().zip(site_keys) {
            let mut sc = SiteConfig::new(server.clone(), id.clone(), key);
            sc.num_examples = n;
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let r = run_site(sc, Box::new(trainer), async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
                if let Err(e) = r {
                    tracing::warn!(site = %id, error = %e, "federation site stopped");
                }
            });
        }
        handle
            .wait_for_sites(ctx.sites, Duration::from_secs(30))
            .await
            .context("waiting for the facilities to join the federation")?;
        tracing::info!(sites = ctx.sites, strategy = %a.fl_strategy, dp_noise = a.fl_dp_noise, dp_clip = a.fl_dp_clip, max_epsilon = a.fl_max_epsilon, every_s = a.fl_every, "federation of the facilities' classifier running");

        let running = Arc::new(AtomicBool::new(false));
        let (trigger_tx, trigger_rx) = mpsc::channel(1);
        let deployer = Deployer {
            model,
            spec,
            current,
            current_accuracy: None,
            val_rows,
            val_labels,
            path: model_path,
            total_examples,
            federation_id,
            events: events_tx,
        };
        let driver = tokio::spawn(drive(
            handle,
            deployer,
            Schedule {
                first_after: Duration::from_secs_f64(a.fl_first_after.max(0.0)),
                every: (a.fl_every > 0.0).then(|| Duration::from_secs_f64(a.fl_every)),
            },
            trigger_rx,
            created,
            running.clone(),
            stop_rx,
        ));
        Ok(Self {
            trigger: Arc::new(Trigger {
                tx: trigger_tx,
                running,
            }),
            stop_tx,
            driver,
        })
    }

    /// Stops the rounds, the sites and the aggregator (a running round is abandoned).
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        if tokio::time::timeout(Duration::from_secs(10), self.driver)
            .await
            .is_err()
        {
            tracing::warn!("the federation did not stop within 10 s");
        }
    }
}

struct Schedule {
    first_after: Duration,
    every: Option<Duration>,
}

/// Decides whether a new global model replaces the running classifier, and writes it.
struct Deployer {
    model: MlpModel,
    spec: MlpSpec,
    current: Vec<f32>,
    current_accuracy: Option<f64>,
    val_rows: Vec<f32>,
    val_labels: Vec<usize>,
    path: PathBuf,
    /// Training examples of all sites (behind every aggregate).
    total_examples: usize,
    federation_id: String,
    events: mpsc::Sender<FlEvent>,
}

impl Deployer {
    fn event(&self, round: u32, phase: &str, metrics: BTreeMap<String, f64>) {
        let e = FlEvent {
            schema_version: SCHEMA_VERSION,
            event_id: uuid::Uuid::new_v4(),
            facility_id: "federation".into(),
            timestamp: chrono::Utc::now(),
            round_id: u64::from(round),
            role: FlRole::Server,
            node_id: format!("deployer-{}", self.federation_id),
            phase: phase.into(),
            metrics: metrics.into_iter().filter(|(_, v)| v.is_finite()).collect(),
            epsilon: None,
            delta: None,
            bytes_sent: 0,
            duration_ms: 0.0,
        };
        let _ = self.events.try_send(e);
    }

    /// Evaluates the new global model against the running one; writes it if it is not
    /// worse. Blocking (evaluation, file write).
    fn consider(&mut self, report: &RoundReport, params: Vec<f32>) -> Result<bool> {
        let current = match self.current_accuracy {
            Some(a) => a,
            None => binary_accuracy(&self.spec, &self.current, &self.val_rows, &self.val_labels)?,
        };
        self.current_accuracy = Some(current);
        let candidate = binary_accuracy(&self.spec, &params, &self.val_rows, &self.val_labels)?;
        let metrics = BTreeMap::from([
            ("candidate_binary_accuracy".to_string(), candidate),
            ("running_binary_accuracy".to_string(), current),
        ]);
        if candidate + PROMOTION_TOLERANCE < current {
            tracing::info!(
                round = report.round,
                candidate,
                running = current,
                "federated model kept out: less accurate on the plant's validation traffic"
            );
            self.event(report.round, "model_kept", metrics);
            return Ok(false);
        }
        let mut meta = metrics.clone();
        if let Some(e) = report.epsilon {
            meta.insert("epsilon".into(), e);
        }
        let next = self.model.with_flat_params(
            &params,
            self.total_examples,
            &format!("federation {} round {}", self.federation_id, report.round),
            meta,
        )?;
        write_atomically(&next, &self.path)?;
        tracing::info!(
            round = report.round,
            version = next.version(),
            candidate,
            running = current,
            "federated model deployed"
        );
        self.event(report.round, "model_promoted", metrics);
        self.model = next;
        self.current = params;
        self.current_accuracy = Some(candidate);
        Ok(true)
    }
}

fn write_atomically(m: &MlpModel, path: &Path) -> Result<()> {
    let tmp = path.with_extension("model.tmp");
    m.save(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    handle: AggregatorHandle,
    mut deployer: Deployer,
    schedule: Schedule,
    mut triggers: mpsc::Receiver<oneshot::Sender<Result<i64, String>>>,
    mut created: watch::Receiver<Option<(u32, i64)>>,
    running: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let far = Duration::from_secs(365 * 24 * 3600);
    let mut next = tokio::time::Instant::now() + schedule.first_after;
    loop {
        let mut reply = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep_until(next) => None,
            r = triggers.recv() => match r { Some(r) => Some(r), None => break },
        };
        running.store(true, Ordering::SeqCst);
        created.mark_unchanged();
        let round = handle.run_round();
        tokio::pin!(round);
        let outcome = loop {
            tokio::select! {
                r = &mut round => break Some(r),
                _ = stop.wait_for(|s| *s) => break None,
                ch = created.changed(), if reply.is_some() => {
                    if ch.is_ok() && let (Some((_, id)), Some(tx)) = (*created.borrow_and_update(), reply.take()) {
                        let _ = tx.send(Ok(id));
                    }
                }
            }
        };
        running.store(false, Ordering::SeqCst);
        let Some(outcome) = outcome else { break };
        match outcome {
            Ok(report) if report.refused.is_some() => {
                let why = report.refused.clone().unwrap_or_default();
                tracing::warn!(round = report.round, reason = %why, "federation round refused");
                if let Some(tx) = reply.take() {
                    let _ = tx.send(Err(why));
                }
            }
            Ok(report) => {
                if let Some(tx) = reply.take() {
                    // The round finished before its row was announced: read it now.
                    let id = created.borrow().map(|(_, id)| id);
                    let _ =
                        tx.send(id.ok_or_else(|| "the round ran but was not recorded".to_string()));
                }
                tracing::info!(round = report.round, seconds = report.seconds, epsilon = report.epsilon, participants = ?report.participants, dropped = ?report.dropped, "federation round completed");
                let params = handle.global_params();
                let work = tokio::task::spawn_blocking(move || {
                    let r = deployer.consider(&report, params);
                    (deployer, r)
                });
                match work.await {
                    Ok((d, r)) => {
                        deployer = d;
                        if let Err(e) = r {
                            tracing::warn!(error = %e, "could not evaluate or deploy the federated model");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the model deployment task failed; federation stops");
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "federation round failed");
                if let Some(tx) = reply.take() {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        }
        next = tokio::time::Instant::now() + schedule.every.unwrap_or(far);
    }
    if let Err(e) = handle.shutdown().await {
        tracing::warn!(error = %e, "federation shutdown");
    }
}
