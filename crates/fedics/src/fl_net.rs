//! `fedics fl serve` (the aggregator) and `fedics fl join` (a site) as separate processes
//! over the network. Both sides agree on the model through one model file, whose kind picks
//! the federation:
//!
//! * an MLP (`fedics train --model mlp …`): its architecture, classes, preprocessing and
//!   initial weights; parameter updates are aggregated by the chosen strategy;
//! * a dense autoencoder (`fedics train --model ae …`): its architecture, preprocessing and
//!   initial weights, aggregated like the MLP's; each site trains on its benign rows and
//!   calibrates its own threshold (the output model takes their mean);
//! * an LSTM autoencoder (`fedics train --model lstm-ae --dataset flows …`): the same as
//!   the dense autoencoder's over windows of consecutive flows of a host pair, which each
//!   site cuts from its own flows;
//! * an Isolation Forest (`fedics train --model iforest …`): its preprocessing, tree count
//!   and sample size; each site grows trees on its own benign rows and the aggregator merges
//!   them (no parameters, so no strategy or DP), each site calibrating its own threshold.
//!
//! Sites read their own data file and never send rows, only updates or trees.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use fedics_detect::iforest::IsolationForest;
use fedics_detect::iforest_detector::IForestModel;
use fedics_detect::iforest_federated::{IForestMerger, IForestSite};
use fedics_federation::{
    Aggregator, AggregatorConfig, AggregatorHandle, ClientTls, ServerTls, SiteConfig, SiteKeys,
    SiteSummary, TreeConfig, run_site, run_tree_site,
};
use fedics_fl::strategy::{RoundSettings, StrategyConfig};
use fedics_ml::federated::MlpTrainer;
use fedics_ml::federated_ae::AeTrainer;
use fedics_ml::federated_lstm::LstmAeTrainer;
use fedics_ml::{AeModel, ComputeDevice, LstmAeModel, MlpModel};
use serde_json::json;

use crate::fl::DpArgs;
use crate::models::{DataArgs, Loaded, load, windows_over};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: std::net::SocketAddr,
    /// Model file every site also has: an MLP (architecture, classes, preprocessing and the
    /// initial global weights), a dense or LSTM autoencoder (the same but classes) or an
    /// Isolation Forest (preprocessing, trees per round, rows per tree).
    #[arg(long)]
    pub model: PathBuf,
    /// The sites allowed to join: one `SITE_ID KEY` per line (`#` starts a comment). Keep
    /// it readable by the aggregator only.
    #[arg(long)]
    pub sites_file: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Sites that must be connected before the first round (default: every listed site).
    #[arg(long)]
    pub min_sites: Option<usize>,
    /// Seconds to wait for them.
    #[arg(long, default_value_t = 300)]
    pub wait_sites: u64,
    /// Aggregation: fedavg, fedprox:mu=0.01, fedadam, median, trimmed-mean:beta=0.2,
    /// krum:f=1, multi-krum:f=1,m=3.
    #[arg(long, default_value = "fedavg")]
    pub strategy: StrategyConfig,
    #[arg(long, default_value_t = 1)]
    pub local_epochs: u32,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    #[arg(long, default_value_t = 200)]
    pub batch_size: u32,
    /// Seconds a round waits for its sites (then it goes on with those that answered).
    #[arg(long, default_value_t = 300)]
    pub round_timeout: u64,
    #[command(flatten)]
    pub dp: DpArgs,
    /// PEM certificate chain of the aggregator (TLS; with --tls-key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA of the sites' client certificates (mutual TLS).
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Record rounds, clients and the privacy ledger in this store (served by the API).
    #[arg(long)]
    pub db: Option<String>,
    /// Write the final global model here (a model file like the input).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print one JSON object at the end (the only output format).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The aggregator: http://host:port, or https://host:port with --ca.
    #[arg(long)]
    pub server: String,
    /// This site's id, as in the aggregator's sites file.
    #[arg(long)]
    pub site: String,
    /// File holding this site's key (else FEDICS_SITE_KEY).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The federation's model file, as the aggregator's (for its kind, classes and
    /// preprocessing).
    #[arg(long)]
    pub model: PathBuf,
    /// This site's labelled data.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub data_args: DataArgs,
    /// Share of the rows (LSTM autoencoder: of the windows) held out to evaluate the global
    /// models.
    #[arg(long, default_value_t = 0.2)]
    pub eval_fraction: f64,
    /// LSTM autoencoder: flows between the starts of two windows of a host pair (default:
    /// the window, so windows do not overlap and none held out shares a flow with one
    /// trained on).
    #[arg(long)]
    pub stride: Option<usize>,
    /// PEM CA that signs the aggregator's certificate (https).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Server name to verify (default: the URL's host).
    #[arg(long)]
    pub tls_domain: Option<String>,
    /// PEM certificate and key of this site (mutual TLS).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Print one JSON object at the end.
    #[arg(long)]
    pub json: bool,
}

fn read_text(p: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {what} {}", p.display()))
}

/// Parses a sites file: `SITE_ID KEY` per line.
pub fn parse_sites(text: &str) -> Result<SiteKeys> {
    let mut keys = SiteKeys::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("sites file, line {}: expected `SITE_ID KEY`", i + 1);
        };
        if key.len() < 16 {
            bail!(
                "sites file, line {}: the key of {id} is shorter than 16 characters",
                i + 1
            );
        }
        if keys.contains(id) {
            bail!("sites file, line {}: site {id} is listed twice", i + 1);
        }
        keys.insert(id.to_string(), key.as_bytes());
    }
    if keys.is_empty() {
        bail!("the sites file lists no site");
    }
    Ok(keys)
}

/// The kind of model a federation's model file holds.
#[allow(clippy::large_enum_variant)] // one or two values per process
enum Federated {
    Mlp(MlpModel),
    Ae(AeModel),
    LstmAe(LstmAeModel),
    IForest(IForestModel),
}

impl Federated {
    fn kind(&self) -> &'static str {
        match self {
            Self::Mlp(_) => MlpModel::KIND,
            Self::Ae(_) => AeModel::KIND,
            Self::LstmAe(_) => LstmAeModel::KIND,
            Self::IForest(_) => IForestModel::KIND,
        }
    }
}

fn load_federated(path: &Path) -> Result<Federated> {
    let (kind, _, _) = fedics_tabular::modelfile::peek(path)?;
    let context = || format!("loading the federation's model {}", path.display());
    match kind.as_str() {
        MlpModel::KIND => Ok(Federated::Mlp(
            MlpModel::load(path, ComputeDevice::Cpu).with_context(context)?,
        )),
        AeModel::KIND => Ok(Federated::Ae(
            AeModel::load(path, ComputeDevice::Cpu).with_context(context)?,
        )),
        LstmAeModel::KIND => Ok(Federated::LstmAe(
            LstmAeModel::load(path, ComputeDevice::Cpu).with_context(context)?,
        )),
        IForestModel::KIND => Ok(Federated::IForest(
            IForestModel::load(path).with_context(context)?,
        )),
        other => bail!(
            "{}: a `{other}` model; fl serve and fl join federate `mlp`, `ae`, `lstm-ae` and `iforest` model files",
            path.display()
        ),
    }
}

/// The aggregator's configuration from the command line (both kinds).
fn aggregator_config(a: &ServeArgs, keys: SiteKeys) -> Result<AggregatorConfig> {
    let mut cfg = AggregatorConfig::new(a.listen, keys);
    cfg.strategy = a.strategy.clone();
    cfg.settings = RoundSettings {
        local_epochs: a.local_epochs,
        learning_rate: a.lr,
        ..RoundSettings::default()
    };
    cfg.batch_size = a.batch_size;
    cfg.round_timeout = Duration::from_secs(a.round_timeout.max(1));
    cfg.seed = a.seed;
    a.dp.apply(&mut cfg)?;
    cfg.tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(ServerTls {
            cert_pem: read_text(c, "the TLS certificate")?,
            key_pem: read_text(k, "the TLS key")?,
            client_ca_pem: a
                .client_ca
                .as_deref()
                .map(|p| read_text(p, "the client CA"))
                .transpose()?,
        }),
        (None, None) if a.client_ca.is_none() => None,
        _ => bail!("TLS needs both --tls-cert and --tls-key (and --client-ca only with them)"),
    };
    if cfg.tls.is_none() && !a.listen.ip().is_loopback() {
        tracing::warn!(listen = %a.listen, "the aggregator listens without TLS on a non-loopback address: updates and keys travel in clear");
    }
    Ok(cfg)
}

pub async fn serve(a: ServeArgs) -> Result<()> {
    let started = Instant::now();
    let model = load_federated(&a.model)?;
    let keys = parse_sites(&read_text(&a.sites_file, "the sites file")?)?;
    let n_sites = keys.len();
    let cfg = aggregator_config(&a, keys)?;
    let (observer, recorder) =
        crate::fl_record::observer_for(a.db.as_deref(), "fl-serve", n_sites, &cfg).await?;
    let handle = match &model {
        Federated::Mlp(m) => Aggregator::start(cfg, m.flat_params(), observer).await,
        Federated::Ae(m) => Aggregator::start(cfg, m.flat_params(), observer).await,
        Federated::LstmAe(m) => Aggregator::start(cfg, m.flat_params(), observer).await,
        Federated::IForest(m) => {
            if a.dp.any() {
                bail!(
                    "an Isolation Forest federation merges trees: client-level DP clips and \
                     noises parameter updates, a tree has no norm to clip"
                );
            }
            let trees = TreeConfig {
                merger: std::sync::Arc::new(IForestMerger),
                n_features: m.forest.n_features(),
                n_trees: m.forest.n_trees(),
                max_samples: m.forest.sample_size(),
            };
            Aggregator::start_trees(cfg, trees, observer).await
        }
    }
    .context("starting the aggregator")?;
    let want = a.min_sites.unwrap_or(n_sites).clamp(1, n_sites);
    tracing::info!(addr = %handle.addr(), sites = n_sites, waiting_for = want, "aggregator up; waiting for sites");
    handle
        .wait_for_sites(want, Duration::from_secs(a.wait_sites))
        .await
        .context("waiting for the sites to join")?;
    let mut rounds = Vec::new();
    // The sites' mean calibrated threshold for the last global forest.
    let mut threshold = None;
    for _ in 0..a.rounds {
        let r = handle.run_round().await?;
        tracing::info!(round = r.round, seconds = r.seconds, participants = ?r.participants, dropped = ?r.dropped, epsilon = r.epsilon, "round done");
        let refused = r.refused.clone();
        threshold = r.eval_metrics.get("threshold").copied().or(threshold);
        rounds.push(json!({
            "round": r.round,
            "seconds": r.seconds,
            "participants": r.participants,
            "dropped": r.dropped,
            "excluded": r.excluded,
            "train": r.train_metrics,
            "eval": r.eval_metrics,
            "epsilon": r.epsilon,
            "refused": refused,
        }));
        if refused.is_some() {
            break;
        }
    }
    let global = global_model(&model, &handle, threshold, rounds.len())?;
    handle.shutdown().await?;
    if let Some(task) = recorder
        && tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .is_err()
    {
        tracing::warn!("the federation's store records were not all written within 30 s");
    }
    if let Some(out) = &a.out {
        match global {
            Federated::Mlp(m) => m.save(out).map_err(anyhow::Error::from),
            Federated::Ae(m) => m.save(out).map_err(anyhow::Error::from),
            Federated::LstmAe(m) => m.save(out).map_err(anyhow::Error::from),
            Federated::IForest(m) => m.save(out).map_err(anyhow::Error::from),
        }
        .with_context(|| format!("writing the global model {}", out.display()))?;
    }
    outln!(
        "{}",
        json!({
            "model": model.kind(),
            "rounds": rounds,
            "threshold": threshold,
            "total_seconds": started.elapsed().as_secs_f64(),
            "out": a.out.as_ref().map(|p| p.display().to_string()),
        })
    );
    Ok(())
}

/// The federation's global model as a model file of the input's kind.
fn global_model(
    model: &Federated,
    handle: &AggregatorHandle,
    threshold: Option<f64>,
    rounds: usize,
) -> Result<Federated> {
    let source = format!("fedics fl serve, {rounds} rounds");
    let threshold = || threshold.context("the sites reported no threshold");
    Ok(match model {
        Federated::Mlp(m) => Federated::Mlp(m.with_flat_params(
            &handle.global_params(),
            0,
            &source,
            Default::default(),
        )?),
        Federated::Ae(m) => Federated::Ae(m.with_flat_params(
            &handle.global_params(),
            threshold()?,
            contributed_rows(handle),
            &source,
            Default::default(),
        )?),
        Federated::LstmAe(m) => Federated::LstmAe(m.with_flat_params(
            &handle.global_params(),
            threshold()?,
            contributed_rows(handle),
            &source,
            Default::default(),
        )?),
        Federated::IForest(m) => match handle.global_forest() {
            Some(bytes) => {
                let forest = IsolationForest::from_bytes(&bytes)
                    .context("decoding the federation's global forest")?;
                Federated::IForest(m.with_forest(forest, threshold()?, contributed_rows(handle))?)
            }
            // No round finished: the input model, unchanged.
            None => Federated::IForest(m.clone()),
        },
    })
}

/// The rows the sites that contributed to a round trained on.
fn contributed_rows(handle: &AggregatorHandle) -> usize {
    let n: u64 = handle
        .sites()
        .iter()
        .filter(|s| s.last_round > 0)
        .map(|s| s.num_examples)
        .sum();
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// This site's connection settings from the command line.
fn site_config(a: &JoinArgs, key: String, n_train: usize) -> Result<SiteConfig> {
    let mut sc = SiteConfig::new(a.server.clone(), a.site.clone(), key);
    sc.num_examples = n_train as u64;
    sc.tls = match &a.ca {
        Some(ca) => Some(ClientTls {
            ca_pem: read_text(ca, "the CA")?,
            domain: a.tls_domain.clone(),
            identity: match (&a.tls_cert, &a.tls_key) {
                (Some(c), Some(k)) => Some((
                    read_text(c, "the site certificate")?,
                    read_text(k, "the site key")?,
                )),
                _ => None,
            },
        }),
        None => None,
    };
    Ok(sc)
}

/// Whether row `i` of `n` is held out to evaluate, for `n_eval` held-out rows: every
/// (n/n_eval)-th row (deterministic, spread over the file).
fn held_out(i: usize, n: usize, n_eval: usize) -> bool {
    let every = n.checked_div(n_eval).map_or(usize::MAX, |e| e.max(1));
    n_eval > 0 && i % every == every - 1 && i / every < n_eval
}

pub async fn join(a: JoinArgs) -> Result<()> {
    let key = match &a.key_file {
        Some(p) => read_text(p, "the site key")?.trim().to_string(),
        None => std::env::var("FEDICS_SITE_KEY")
            .context("no site key: pass --key-file or set FEDICS_SITE_KEY")?,
    };
    if !(0.0..1.0).contains(&a.eval_fraction) {
        bail!("--eval-fraction {} must be in [0, 1)", a.eval_fraction);
    }
    let model = load_federated(&a.model)?;
    let pre = match &model {
        Federated::Mlp(m) => m.preprocessor.as_ref(),
        Federated::Ae(m) => m.preprocessor.as_ref(),
        Federated::LstmAe(m) => m.preprocessor.as_ref(),
        Federated::IForest(m) => m.preprocessor.as_ref(),
    }
    .context("the model file has no preprocessing; sites cannot encode their data")?;
    let data = load(&a.data, &a.data_args, None)?;
    let (x, unseen) = pre.transform_with_report(&data.table)?;
    if !unseen.is_empty() {
        tracing::warn!(report = ?unseen, "categories unseen by the model's preprocessing");
    }
    let d = x.cols();
    let (n_train, n_held, summary) = match &model {
        Federated::Mlp(m) => join_mlp(&a, key, m, x.as_slice(), d, &data.class).await?,
        Federated::Ae(m) => join_ae(&a, key, m, x.as_slice(), d, &data.is_attack).await?,
        Federated::LstmAe(m) => join_lstm(&a, key, m, x.as_slice(), d, &data).await?,
        Federated::IForest(_) => join_iforest(&a, key, x.as_slice(), d, &data.is_attack).await?,
    };
    tracing::debug!(examples = n_train, held_out = n_held, "left the federation");
    // What a site trains on: rows, or (LSTM autoencoder) windows of flows.
    let unit = if matches!(model, Federated::LstmAe(_)) {
        "windows"
    } else {
        "rows"
    };
    outln!(
        "{}",
        json!({
            "site": a.site,
            "model": model.kind(),
            unit: n_train,
            "held_out": n_held,
            "rounds_trained": summary.rounds_trained,
            "evaluations": summary.evaluations,
            "joins": summary.joins,
            "rejected_updates": summary.rejected_updates,
            "bytes_sent": summary.bytes_sent,
            "bytes_received": summary.bytes_received,
            "finished": summary.finished,
        })
    );
    Ok(())
}

/// An MLP site: trains on its labelled rows, evaluates on the held-out ones. Returns the
/// rows trained on and held out, and the site's summary.
async fn join_mlp(
    a: &JoinArgs,
    key: String,
    model: &MlpModel,
    x: &[f32],
    d: usize,
    class: &[String],
) -> Result<(usize, usize, SiteSummary)> {
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut skipped = 0usize;
    for (row, class) in x.chunks(d).zip(class) {
        match model.classes.iter().position(|c| c == class) {
            Some(y) => {
                rows.push(row);
                labels.push(y);
            }
            None => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "rows whose label is not one of the model's classes were left out"
        );
    }
    let n = labels.len();
    let n_eval = ((n as f64) * a.eval_fraction).round() as usize;
    if n - n_eval == 0 {
        bail!("{}: no row to train on", a.data.display());
    }
    let (mut tr, mut tl, mut er, mut el) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (row, y)) in rows.iter().zip(&labels).enumerate() {
        if held_out(i, n, n_eval) {
            er.extend_from_slice(row);
            el.push(*y);
        } else {
            tr.extend_from_slice(row);
            tl.push(*y);
        }
    }
    let n_train = tl.len();
    let mut trainer = MlpTrainer::with_spec(model.federation_spec()?, tr, tl)?;
    if !el.is_empty() {
        trainer = trainer.with_eval(er, el)?;
    }
    let sc = site_config(a, key, n_train)?;
    tracing::info!(site = %a.site, server = %a.server, rows = n_train, held_out = n - n_train, "joining the federation");
    let summary = run_site(sc, Box::new(trainer), crate::demo::shutdown_signal()).await?;
    Ok((n_train, n - n_train, summary))
}

/// An anomaly detector's rows at a site: the benign rows it does not hold out (to train
/// on), and the held-out rows with their labels (to evaluate and calibrate).
struct Unsupervised {
    benign: Vec<f32>,
    n_train: usize,
    eval_rows: Vec<f32>,
    eval_attack: Vec<bool>,
}

fn unsupervised(a: &JoinArgs, x: &[f32], d: usize, is_attack: &[bool]) -> Result<Unsupervised> {
    let n = is_attack.len();
    let n_eval = ((n as f64) * a.eval_fraction).round() as usize;
    let (mut benign, mut eval_rows, mut eval_attack) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (row, &attack)) in x.chunks(d).zip(is_attack).enumerate() {
        if held_out(i, n, n_eval) {
            eval_rows.extend_from_slice(row);
            eval_attack.push(attack);
        } else if !attack {
            benign.extend_from_slice(row);
        }
    }
    let n_train = benign.len() / d.max(1);
    if n_train < 2 {
        bail!(
            "{}: {n_train} benign rows to train on (at least 2)",
            a.data.display()
        );
    }
    Ok(Unsupervised {
        benign,
        n_train,
        eval_rows,
        eval_attack,
    })
}

/// An autoencoder site: learns to reconstruct the benign rows it does not hold out,
/// evaluates (and calibrates its threshold) on the held-out rows, attacks included.
async fn join_ae(
    a: &JoinArgs,
    key: String,
    model: &AeModel,
    x: &[f32],
    d: usize,
    is_attack: &[bool],
) -> Result<(usize, usize, SiteSummary)> {
    let Unsupervised {
        benign,
        n_train,
        eval_rows,
        eval_attack,
    } = unsupervised(a, x, d, is_attack)?;
    let n_eval = eval_attack.len();
    let mut trainer = AeTrainer::new(model.federation_spec()?, benign)?;
    if !eval_attack.is_empty() {
        trainer = trainer.with_eval(eval_rows, eval_attack)?;
    }
    let sc = site_config(a, key, n_train)?;
    tracing::info!(site = %a.site, server = %a.server, benign_rows = n_train, held_out = n_eval, "joining the federation");
    let summary = run_site(sc, Box::new(trainer), crate::demo::shutdown_signal()).await?;
    Ok((n_train, n_eval, summary))
}

/// An LSTM-autoencoder site: cuts its flows into windows of consecutive flows of a host
/// pair (`--stride` apart), learns to reconstruct the windows without an attack flow that
/// it does not hold out, and evaluates (and calibrates its threshold) on the held-out
/// windows, labelled attack when they hold an attack flow.
async fn join_lstm(
    a: &JoinArgs,
    key: String,
    model: &LstmAeModel,
    x: &[f32],
    d: usize,
    data: &Loaded,
) -> Result<(usize, usize, SiteSummary)> {
    let t = model.window();
    let stride = a.stride.unwrap_or(t);
    if stride == 0 {
        bail!("--stride must be at least 1");
    }
    let all: Vec<usize> = (0..data.is_attack.len()).collect();
    let windows = windows_over(data, &all, t, stride)?;
    let n = windows.len() / t.max(1);
    let n_eval = ((n as f64) * a.eval_fraction).round() as usize;
    let (mut benign, mut eval_windows, mut eval_attack) = (Vec::new(), Vec::new(), Vec::new());
    for (i, w) in windows.chunks(t).enumerate() {
        let attack = w.iter().any(|&r| data.is_attack[r]);
        let out = if held_out(i, n, n_eval) {
            eval_attack.push(attack);
            &mut eval_windows
        } else if !attack {
            &mut benign
        } else {
            continue;
        };
        for &r in w {
            out.extend_from_slice(&x[r * d..(r + 1) * d]);
        }
    }
    let n_train = benign.len() / (t * d).max(1);
    if n_train < 2 {
        bail!(
            "{}: {n_train} windows of {t} flows of a host pair without an attack to train on \
             (at least 2); windows are cut per host pair, so a site needs at least {t} flows of \
             a pair",
            a.data.display()
        );
    }
    let n_held = eval_attack.len();
    let mut trainer = LstmAeTrainer::new(model.federation_spec()?, benign)?;
    if !eval_attack.is_empty() {
        trainer = trainer.with_eval(eval_windows, eval_attack)?;
    }
    let sc = site_config(a, key, n_train)?;
    tracing::info!(site = %a.site, server = %a.server, benign_windows = n_train, held_out = n_held, window = t, stride, "joining the federation");
    let summary = run_site(sc, Box::new(trainer), crate::demo::shutdown_signal()).await?;
    Ok((n_train, n_held, summary))
}

/// An Isolation Forest site: grows trees on the benign rows it does not hold out, evaluates
/// (and calibrates its threshold) on the held-out rows, attacks included.
async fn join_iforest(
    a: &JoinArgs,
    key: String,
    x: &[f32],
    d: usize,
    is_attack: &[bool],
) -> Result<(usize, usize, SiteSummary)> {
    let Unsupervised {
        benign,
        n_train,
        eval_rows: er,
        eval_attack: el,
    } = unsupervised(a, x, d, is_attack)?;
    let n_eval = el.len();
    let mut site = IForestSite::new(d, benign)?;
    if !el.is_empty() {
        site = site.with_eval(er, el)?;
    }
    let sc = site_config(a, key, n_train)?;
    tracing::info!(site = %a.site, server = %a.server, benign_rows = n_train, held_out = n_eval, "joining the tree federation");
    let summary = run_tree_site(sc, Box::new(site), crate::demo::shutdown_signal()).await?;
    Ok((n_train, n_eval, summary))
}
