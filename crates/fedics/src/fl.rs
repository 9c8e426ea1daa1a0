//! `fedics fl simulate`: an aggregator and N sites as real gRPC peers on loopback, in one
//! process, federating the MLP classifier on a labelled dataset (NSL-KDD by default); one
//! JSON object of figures. The sites train on their own partition only (raw rows never
//! cross the protocol); the global model is evaluated on the test file after every round.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use fedics_federation::{
    Aggregator, AggregatorConfig, DpConfig, NoiseMode, NoopObserver, RoundReport, SiteConfig,
    SiteKeys, run_site,
};
use fedics_fl::dp::PrivacyBudget;
use fedics_fl::strategy::{RoundSettings, StrategyConfig};
use fedics_fl::trainer::{LocalPlan, LocalResult, LocalTrainer, TrainError};
use fedics_ml::federated::{MlpSpec, MlpTrainer};
use fedics_ml::{ClassWeight, ComputeDevice, MlpConfig};
use fedics_tabular::Preprocessor;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use crate::models::{DataArgs, load};

#[derive(Subcommand, Debug)]
pub enum FlCommand {
    /// Aggregator + N sites on loopback (real gRPC peers) in one process; prints JSON.
    Simulate(SimulateArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Partition {
    /// Rows shuffled and dealt evenly.
    Iid,
    /// Non-IID: every site gets a share of the normal rows, and the attack rows of the
    /// categories assigned to it (round robin over DoS, Probe, R2L, U2R).
    ByAttackCategory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlModel {
    Mlp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DpMode {
    Central,
    Distributed,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    #[arg(long)]
    pub train: PathBuf,
    #[arg(long)]
    pub test: PathBuf,
    #[command(flatten)]
    pub data_args: DataArgs,
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: FlModel,
    /// Aggregation: fedavg, fedprox:mu=0.01, fedadam, median, trimmed-mean:beta=0.2,
    /// krum:f=1, multi-krum:f=1,m=3.
    #[arg(long, default_value = "fedavg")]
    pub strategy: StrategyConfig,
    #[arg(long, value_enum, default_value = "iid")]
    pub partition: Partition,
    /// Local epochs per round.
    #[arg(long, default_value_t = 1)]
    pub local_epochs: u32,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    #[arg(long, default_value_t = 200)]
    pub batch_size: u32,
    /// Hidden layer widths of the MLP.
    #[arg(long, value_delimiter = ',', default_value = "64,32")]
    pub hidden: Vec<usize>,
    /// Noise multiplier σ of client-level DP (with --dp-clip).
    #[arg(long)]
    pub dp_noise: Option<f64>,
    /// L2 clipping bound C of each site's update.
    #[arg(long)]
    pub dp_clip: Option<f64>,
    /// ε budget; a round that would exceed it is refused.
    #[arg(long, default_value_t = 10.0)]
    pub max_epsilon: f64,
    #[arg(long, default_value_t = 1e-5)]
    pub delta: f64,
    #[arg(long, value_enum, default_value = "central")]
    pub dp_mode: DpMode,
    /// The first K sites are Byzantine: they send global + scale·(their update).
    #[arg(long, default_value_t = 0)]
    pub byzantine: usize,
    #[arg(long, default_value_t = 100.0)]
    pub byzantine_scale: f32,
    /// Also train the same MLP centrally (rounds × local epochs over all rows) and report it.
    #[arg(long)]
    pub compare_central: bool,
    /// Seconds a round waits for its sites.
    #[arg(long, default_value_t = 300)]
    pub round_timeout: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Record the federation (rounds, clients, privacy ledger) in this store, where the
    /// API serves it (`/api/fl/*`): postgres://…, sqlite://… or a file path.
    #[arg(long)]
    pub db: Option<String>,
    /// Print one JSON object (the only output format).
    #[arg(long)]
    pub json: bool,
}

/// A site that sends `global + scale · (update − global)`: the poisoning attack the robust
/// strategies are measured against.
struct Byzantine {
    inner: MlpTrainer,
    scale: f32,
}

impl LocalTrainer for Byzantine {
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }

    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        let mut r = self.inner.fit(global, plan)?;
        for (p, g) in r.params.iter_mut().zip(global) {
            *p = g + self.scale * (*p - g);
        }
        Ok(r)
    }

    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError> {
        self.inner.evaluate(global)
    }
}

/// Row indices of each site.
fn partition(classes: &[String], sites: usize, how: Partition, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..classes.len()).collect();
    idx.shuffle(&mut rng);
    let mut out = vec![Vec::new(); sites];
    match how {
        Partition::Iid => {
            for (k, i) in idx.into_iter().enumerate() {
                out[k % sites].push(i);
            }
        }
        Partition::ByAttackCategory => {
            let attacks = ["DoS", "Probe", "R2L", "U2R"];
            let mut normal = 0usize;
            for i in idx {
                let c = classes[i].as_str();
                match attacks.iter().position(|a| a.eq_ignore_ascii_case(c)) {
                    Some(a) => out[a % sites].push(i),
                    None => {
                        out[normal % sites].push(i);
                        normal += 1;
                    }
                }
            }
        }
    }
    for p in &mut out {
        p.sort_unstable();
    }
    out
}

fn gather(x: &[f32], d: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        out.extend_from_slice(&x[r * d..(r + 1) * d]);
    }
    out
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn metrics_json(m: &BTreeMap<String, f64>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if v.is_finite() {
                        json!(round4(*v))
                    } else {
                        Value::Null
                    },
                )
            })
            .collect(),
    )
}

pub async fn run(cmd: FlCommand) -> Result<()> {
    match cmd {
        FlCommand::Simulate(a) => simulate(a).await,
    }
}

async fn simulate(a: SimulateArgs) -> Result<()> {
    let started = Instant::now();
    if a.sites == 0 {
        bail!("--sites must be at least 1");
    }
    if a.byzantine >= a.sites.max(1) && a.byzantine > 0 {
        bail!(
            "--byzantine {} leaves no honest site among {}",
            a.byzantine,
            a.sites
        );
    }
    let FlModel::Mlp = a.model;
    // Data: the schema and scaling come from the training file (in a deployment the sites
    // agree on them beforehand; the rows themselves never leave their site).
    let train = load(&a.train, &a.data_args, None)?;
    let test = load(&a.test, &a.data_args, Some(train.table.schema()))?;
    let pre = Preprocessor::fit(&train.table, crate::models::pre_options(&a.data_args))?;
    let x_train = pre.transform(&train.table)?;
    let (x_test, _) = pre.transform_with_report(&test.table)?;
    let d = x_train.cols();
    let mut classes: Vec<String> = train.class.clone();
    classes.sort();
    classes.dedup();
    let label = |c: &String| classes.binary_search(c).unwrap_or(0);
    let y_train: Vec<usize> = train.class.iter().map(label).collect();
    let y_test: Vec<usize> = test.class.iter().map(label).collect();
    let config = MlpConfig {
        hidden: a.hidden.clone(),
        class_weight: ClassWeight::None,
        ..MlpConfig::default()
    };
    let spec = MlpSpec::new(d, classes.clone(), config.clone())?.with_device(ComputeDevice::Cpu);
    let initial = spec.initial_params(a.seed);
    let parts = partition(&train.class, a.sites, a.partition, a.seed);

    // Aggregator.
    let mut keys = SiteKeys::new();
    let site_ids: Vec<String> = (0..a.sites).map(|i| format!("site-{i}")).collect();
    let site_keys: Vec<String> = site_ids
        .iter()
        .map(|_| fedics_server::auth::random_hex(24))
        .collect();
    for (id, key) in site_ids.iter().zip(&site_keys) {
        keys.insert(id.clone(), key.as_bytes());
    }
    let mut cfg = AggregatorConfig::new("127.0.0.1:0".parse()?, keys);
    cfg.strategy = a.strategy.clone();
    cfg.settings = RoundSettings {
        local_epochs: a.local_epochs,
        learning_rate: a.lr,
        ..RoundSettings::default()
    };
    cfg.batch_size = a.batch_size;
    cfg.round_timeout = Duration::from_secs(a.round_timeout.max(1));
    cfg.evaluate = false;
    cfg.seed = a.seed;
    cfg.dp = match (a.dp_noise, a.dp_clip) {
        (Some(noise), Some(clip)) => Some(DpConfig {
            clip,
            noise_multiplier: noise,
            mode: match a.dp_mode {
                DpMode::Central => NoiseMode::Central,
                DpMode::Distributed => NoiseMode::Distributed,
            },
            budget: PrivacyBudget::new(a.max_epsilon, a.delta)?,
        }),
        (None, None) => None,
        _ => bail!("client-level DP needs both --dp-noise and --dp-clip"),
    };
    let (observer, recorder): (Arc<dyn fedics_federation::FlObserver>, _) = match &a.db {
        Some(url) => {
            let store = fedics_store::Store::open(url)
                .await
                .with_context(|| format!("opening the store {url}"))?;
            let q = 1.0; // every site takes part in every round (fraction_fit = 1)
            let (r, task) = crate::fl_record::StoreRecorder::start(
                store,
                crate::fl_record::RecorderConfig {
                    federation_id: format!("fl-simulate-{}", fedics_server::auth::random_hex(4)),
                    total_sites: a.sites as u32,
                    local_epochs: a.local_epochs,
                    dp: a.dp_noise.zip(a.dp_clip).map(|(n, c)| (n, c, q)),
                },
            );
            (Arc::new(r), Some(task))
        }
        None => (Arc::new(NoopObserver), None),
    };
    let handle = Aggregator::start(cfg, initial.clone(), observer)
        .await
        .context("starting the aggregator")?;
    let server = format!("http://{}", handle.addr());

    // Sites, each with its own partition only.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut site_tasks = Vec::new();
    for (i, rows) in parts.iter().enumerate() {
        let trainer = MlpTrainer::with_spec(
            spec.clone(),
            gather(x_train.as_slice(), d, rows),
            rows.iter().map(|&r| y_train[r]).collect(),
        )?;
        let trainer: Box<dyn LocalTrainer> = if i < a.byzantine {
            Box::new(Byzantine {
                inner: trainer,
                scale: a.byzantine_scale,
            })
        } else {
            Box::new(trainer)
        };
        let mut sc = SiteConfig::new(server.clone(), site_ids[i].clone(), site_keys[i].clone());
        sc.num_examples = rows.len() as u64;
        let mut stop = stop_rx.clone();
        site_tasks.push(tokio::spawn(run_site(sc, trainer, async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
    }
    handle
        .wait_for_sites(a.sites, Duration::from_secs(60))
        .await
        .context("waiting for the sites to join")?;
    let startup = started.elapsed().as_secs_f64();

    let mut rounds = Vec::new();
    let mut last_eval = BTreeMap::new();
    for _ in 0..a.rounds {
        let report: RoundReport = handle.run_round().await?;
        let refused = report.refused.is_some();
        let (_, eval) =
            spec.evaluate_params(&handle.global_params(), x_test.as_slice(), &y_test)?;
        rounds.push(json!({
            "round": report.round,
            "seconds": round4(report.seconds),
            "participants": report.participants,
            "dropped": report.dropped,
            "excluded": report.excluded,
            "train": metrics_json(&report.train_metrics),
            "test": metrics_json(&eval),
            "epsilon": report.epsilon.map(round4),
            "delta": report.delta,
            "bytes_sent": report.bytes_sent,
            "bytes_received": report.bytes_received,
            "refused": report.refused,
        }));
        last_eval = eval;
        if refused {
            break;
        }
    }
    let total = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    handle.shutdown().await?;
    for t in site_tasks {
        let _ = t.await;
    }
    if let Some(task) = recorder {
        // Ends once the aggregator (the observer's last owner) is gone and all is written.
        if tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .is_err()
        {
            tracing::warn!("the federation's store records were not all written within 30 s");
        }
    }

    let central = if a.compare_central {
        let t0 = Instant::now();
        let all =
            MlpTrainer::with_spec(spec.clone(), x_train.as_slice().to_vec(), y_train.clone())?;
        let r = all.train_central(
            a.rounds * a.local_epochs,
            a.lr,
            a.batch_size as usize,
            a.seed,
        )?;
        let (_, eval) = spec.evaluate_params(&r.params, x_test.as_slice(), &y_test)?;
        Some(json!({
            "epochs": a.rounds * a.local_epochs,
            "seconds": round4(t0.elapsed().as_secs_f64()),
            "test": metrics_json(&eval),
        }))
    } else {
        None
    };
    let out = json!({
        "model": "mlp",
        "params": spec.num_params(),
        "sites": a.sites,
        "rows_per_site": parts.iter().map(Vec::len).collect::<Vec<_>>(),
        "partition": match a.partition { Partition::Iid => "iid", Partition::ByAttackCategory => "by-attack-category" },
        "strategy": a.strategy.to_string(),
        "byzantine": a.byzantine,
        "dp": a.dp_noise.map(|s| json!({"noise_multiplier": s, "clip": a.dp_clip, "max_epsilon": a.max_epsilon, "delta": a.delta, "mode": format!("{:?}", a.dp_mode).to_lowercase()})),
        "startup_seconds": round4(startup),
        "total_seconds": round4(total),
        "rounds": rounds,
        "final": metrics_json(&last_eval),
        "central": central,
        "flower_reference": {"binary_accuracy": 0.752, "total_seconds": 36.0, "steady_round_seconds": 0.36,
            "setup": "Flower 1.41 simulation, 3 clients, numpy logistic regression, 5 rounds, 1 local epoch"},
        "total_seconds_vs_flower": round4(total / 36.0),
    });
    println!("{out}");
    Ok(())
}
