//! The aggregator: a gRPC server that sites join, and the round driver.
//!
//! # A round
//!
//! [`AggregatorHandle::run_round`]:
//!
//! 1. lists the connected sites (a site is connected while its `Tasks` stream is open) and
//!    lets the strategy select among them ([`fedics_fl::strategy::Strategy::configure_round`]);
//! 2. with differential privacy, asks the [`Ledger`] whether the round fits the budget and
//!    **refuses** it otherwise (the report carries `refused`, nothing is sent);
//! 3. sends each selected site a training task carrying the global model in chunks;
//! 4. collects updates until every selected site answered or the **deadline**
//!    ([`AggregatorConfig::round_timeout`]) passed; sites that did not answer are `dropped`;
//! 5. aggregates, if at least the strategy's `min_results` arrived, and publishes the new
//!    global model (the next task carries it);
//! 6. when [`AggregatorConfig::evaluate`] is set, sends the new model to the connected sites
//!    that did not drop, and combines their evaluation metrics with the strategy.
//!
//! # Differential privacy
//!
//! Client-level DP after McMahan et al. 2018 ([`DpConfig`]). Each site sends its update
//! Δ = new − global clipped to L2 norm `C`. The aggregator never trusts that: it clips every
//! update again. The noised mean
//!
//! ```text
//! Δ̄ = (Σᵢ clip(Δᵢ) + N(0, σ²C²)) / k        k = number of sites selected for the round
//! ```
//!
//! is added to the global model. The denominator is the number of sites *selected* (fixed
//! before the round), not the number that answered, so it does not depend on who dropped.
//! With DP the configured strategy still selects the sites, but the aggregate is always this
//! **unweighted** mean of clipped updates: example weighting (FedAvg) or data-dependent rules
//! (median, Krum) would change the sensitivity the accountant assumes.
//!
//! * [`NoiseMode::Central`]: the aggregator adds `N(0, σ²C²)` to the sum.
//! * [`NoiseMode::Distributed`]: each of the `k` selected sites adds `N(0, σ²C²/k)` to its
//!   clipped update (for secure aggregation, where the aggregator only sees the sum). The
//!   aggregator then clips each update to `C + s(√d + 10)` (`s` the site's noise std, `d` the
//!   model size), which bounds a malicious site's influence without cutting the honest noise;
//!   for sites that dropped it adds their missing noise share itself, so the sum still carries
//!   `N(0, σ²C²)`.
//!
//! Accounting: the round is one step of the subsampled Gaussian mechanism with
//! `q = selected / configured sites`; the selection is a fixed-size sample, which the
//! accountant treats as Poisson sampling with the same rate (the usual approximation). Noise
//! comes from [`secure_rng`].
//!
//! # Tree federations
//!
//! [`Aggregator::start_trees`] runs a federation of a tree model (the Isolation Forest) that
//! merges trees instead of averaging parameters ([`fedics_fl::trees`]). A round:
//!
//! 1. the strategy selects the sites (only FedAvg is accepted: selection, and the
//!    example-weighted mean of the sites' evaluation metrics); the global forest's
//!    [`TreeConfig::n_trees`] are allocated to them in proportion to the examples they
//!    announced ([`allocate_trees`]);
//! 2. each site is told how many trees to grow, on how many rows each, with its own seed (a
//!    training task carries no model);
//! 3. each contribution is **validated on receipt** ([`TreeMerger::validate`], after the
//!    header's format version, feature count, tree count and a length bound derived from
//!    them): one that does not decode, has another feature count, inconsistent node arrays,
//!    non-finite thresholds or more trees than asked for is refused with `INVALID_ARGUMENT`
//!    and the reason, recorded in [`RoundReport::rejected`] and an `update_rejected` event,
//!    and never merged;
//! 4. the pool (the trees of the current global forest and the round's contributions) is
//!    merged into the new global forest of `n_trees` trees, drawn with a seed derived from
//!    [`AggregatorConfig::seed`] and the round, so a forest keeps part of its past trees and
//!    follows the sites' data over rounds;
//! 5. the sites evaluate the new forest, each calibrating its own threshold on it.
//!
//! Client-level DP and the parameter strategies (FedProx, FedAdam, median, trimmed mean,
//! Krum) do not apply to trees: a tree federation with either is refused at start with
//! [`FederationError::Config`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fedics_core::FlRole;
use fedics_fl::dp::{
    AdaptiveClipping, DpError, GaussianNoise, Ledger, PrivacyBudget,
    adaptive_update_noise_multiplier, clip_l2, l2_norm, secure_rng,
};
use fedics_fl::strategy::{
    ClientEvaluation, ClientInfo, ClientUpdate, Metrics, RoundPlan, RoundSettings, Strategy,
    StrategyConfig, weighted_metrics,
};
use fedics_fl::trees::{ContributionLimits, TreeMerger, allocate_trees};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::SiteKeys;
use crate::codec::{BYTES_PER_PARAM, Reassembler, encode_params, sha256, split_chunks};
use crate::error::FederationError;
use crate::observer::{ClientProgress, EventFactory, EventFields, FlObserver, phase};
use crate::proto::federation_server::{Federation, FederationServer};
use crate::proto::{
    Ack, DpSettings, EvaluationResult, Finished, JoinReply, JoinRequest, LeaveRequest, ModelChunk,
    ModelKind, TaskHeader, TaskKind, TaskMessage, TasksRequest, TrainPlan, UpdateChunk,
    UpdateHeader, task_message, update_chunk,
};
use crate::tls::ServerTls;
use crate::{
    DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, PROTOCOL_MAJOR, PROTOCOL_MINOR, check_version,
    message_limit, our_version,
};

/// Where the noise of client-level DP is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseMode {
    /// The aggregator adds `N(0, σ²C²)` to the sum of the clipped updates.
    Central,
    /// Each of the `k` selected sites adds `N(0, σ²C²/k)` to its clipped update.
    Distributed,
}

/// Client-level differential privacy of the federation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpConfig {
    /// L2 clipping bound `C` of each site's update.
    pub clip: f64,
    /// Noise multiplier `σ` (noise std on the sum: `σ·C`).
    pub noise_multiplier: f64,
    /// Where the noise is added.
    pub mode: NoiseMode,
    /// The (ε, δ) the whole run may spend; rounds past it are refused.
    pub budget: PrivacyBudget,
}

/// Adaptive clipping of client-level DP (Andrew, Thakkar, McMahan & Ramaswamy 2021): the
/// clipping bound follows a quantile of the sites' update norms instead of staying at
/// [`DpConfig::clip`], which becomes its starting value.
///
/// Every round each site reports the norm of its update before clipping; the aggregator
/// counts the updates the round's bound left unclipped, noises that count with
/// `N(0, σ_b²)` and moves the bound geometrically towards the target quantile. The count
/// takes a share of the privacy: the updates are noised with the multiplier
/// `(σ⁻² − (2σ_b)⁻²)^(−1/2)` so that each round, count included, is a Gaussian mechanism of
/// noise multiplier σ ([`DpConfig::noise_multiplier`]), which is what the accountant
/// records (with the round's bound).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveClip {
    /// Target quantile γ of the update norms, in [0, 1] (0.5: the median update is not
    /// clipped).
    pub target_quantile: f64,
    /// Learning rate η of the geometric update `C ← C·exp(−η(b̃ − γ))` (the paper's 0.2).
    pub learning_rate: f64,
    /// Standard deviation σ_b of the noise on the count of unclipped updates; must be
    /// greater than σ/2.
    pub count_noise_std: f64,
}

/// The adaptive bound's state and the updates' noise multiplier, checked.
fn adaptive_state(dp: &DpConfig, a: &AdaptiveClip) -> Result<(AdaptiveClipping, f64), DpError> {
    let state = AdaptiveClipping::new(
        dp.clip,
        a.target_quantile,
        a.learning_rate,
        a.count_noise_std,
    )?;
    let update_sigma = adaptive_update_noise_multiplier(dp.noise_multiplier, a.count_noise_std)?;
    Ok((state, update_sigma))
}

/// Configuration of the aggregator.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    /// Address to listen on (port 0: any free port, see [`AggregatorHandle::addr`]).
    pub listen: SocketAddr,
    /// Sites allowed to join, with their API keys.
    pub sites: SiteKeys,
    /// Aggregation strategy.
    pub strategy: StrategyConfig,
    /// Local training settings and client selection.
    pub settings: RoundSettings,
    /// Mini-batch size sent to the sites (default 32).
    pub batch_size: u32,
    /// How long a round (and an evaluation) waits for the selected sites (default 60 s).
    pub round_timeout: Duration,
    /// Largest chunk of model bytes in one message (default 1 MiB, at most 64 MiB).
    pub chunk_bytes: usize,
    /// Evaluate the new global model on the sites after each round (default true).
    pub evaluate: bool,
    /// Client-level differential privacy (default none).
    pub dp: Option<DpConfig>,
    /// Adaptive clipping of the DP updates (default none: the bound stays at
    /// [`DpConfig::clip`]); needs `dp`.
    pub adaptive_clip: Option<AdaptiveClip>,
    /// The privacy ledger of an earlier run of this federation, to continue (default none:
    /// a new ledger). Its budget must be [`DpConfig::budget`]; round numbers continue after
    /// its last round, and its ε counts against the budget.
    pub resume_ledger: Option<Ledger>,
    /// TLS (default none: plaintext, for loopback and tests).
    pub tls: Option<ServerTls>,
    /// Facility id of the emitted events (default `federation`).
    pub facility_id: String,
    /// Node id of the emitted events (default `aggregator`).
    pub node_id: String,
    /// Seed from which the sites' per-round shuffling seeds are derived (default 0).
    pub seed: u64,
    /// How long [`AggregatorHandle::shutdown`] keeps serving so that sites reconnecting at
    /// that moment learn that the federation finished (default 5 s).
    pub shutdown_grace: Duration,
}

impl AggregatorConfig {
    /// FedAvg with the default settings, listening on `listen`, for `sites`.
    pub fn new(listen: SocketAddr, sites: SiteKeys) -> Self {
        Self {
            listen,
            sites,
            strategy: StrategyConfig::FedAvg,
            settings: RoundSettings::default(),
            batch_size: 32,
            round_timeout: Duration::from_secs(60),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            evaluate: true,
            dp: None,
            adaptive_clip: None,
            resume_ledger: None,
            tls: None,
            facility_id: "federation".into(),
            node_id: "aggregator".into(),
            seed: 0,
            shutdown_grace: Duration::from_secs(5),
        }
    }

    fn validate(&self) -> Result<(), FederationError> {
        let bad = |m: String| Err(FederationError::Config(m));
        if self.sites.is_empty() {
            return bad("no site is configured".into());
        }
        if self.chunk_bytes == 0 || self.chunk_bytes > MAX_CHUNK_BYTES {
            return bad(format!(
                "chunk_bytes = {} must be in 1..={MAX_CHUNK_BYTES}",
                self.chunk_bytes
            ));
        }
        if self.round_timeout.is_zero() {
            return bad("round_timeout must be positive".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if let Some(dp) = &self.dp {
            GaussianNoise::new(dp.noise_multiplier, dp.clip)?;
            PrivacyBudget::new(dp.budget.max_epsilon, dp.budget.delta)?;
        }
        match (&self.dp, &self.adaptive_clip) {
            (None, Some(_)) => {
                return bad(
                    "adaptive clipping was configured without DP (no clipping bound to adapt)"
                        .into(),
                );
            }
            (Some(dp), Some(a)) => {
                adaptive_state(dp, a)?;
            }
            _ => {}
        }
        match (&self.dp, &self.resume_ledger) {
            (None, Some(_)) => return bad("a ledger to resume was given without DP".into()),
            (Some(dp), Some(l)) if l.budget() != dp.budget => {
                return bad(format!(
                    "the ledger to resume has the budget {:?}, the configuration {:?}",
                    l.budget(),
                    dp.budget
                ));
            }
            _ => {}
        }
        self.settings.validate()?;
        self.strategy.validate()?;
        Ok(())
    }
}

/// A tree federation (see the [module documentation](self#tree-federations)).
#[derive(Clone)]
pub struct TreeConfig {
    /// The tree model's validation and merge rule.
    pub merger: Arc<dyn TreeMerger>,
    /// Features of every site's rows.
    pub n_features: usize,
    /// Trees of the global forest; also the trees the sites of a round grow together.
    pub n_trees: usize,
    /// Rows drawn per tree.
    pub max_samples: usize,
}

impl std::fmt::Debug for TreeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeConfig")
            .field("format_version", &self.merger.format_version())
            .field("n_features", &self.n_features)
            .field("n_trees", &self.n_trees)
            .field("max_samples", &self.max_samples)
            .finish()
    }
}

impl TreeConfig {
    fn validate(&self, config: &AggregatorConfig) -> Result<(), FederationError> {
        let bad = |m: String| Err(FederationError::Config(m));
        if self.n_features == 0 || u32::try_from(self.n_features).is_err() {
            return bad(format!(
                "a tree federation over {} features",
                self.n_features
            ));
        }
        if self.n_trees == 0 || u32::try_from(self.n_trees).is_err() {
            return bad(format!("a global forest of {} trees", self.n_trees));
        }
        if self.max_samples < 2 || u32::try_from(self.max_samples).is_err() {
            return bad(format!(
                "max_samples = {} rows per tree must be at least 2",
                self.max_samples
            ));
        }
        if config.dp.is_some() || config.resume_ledger.is_some() {
            return bad("differential privacy clips and noises parameter updates; trees are merged, not averaged, so a tree federation cannot run with DP".into());
        }
        if config.strategy != StrategyConfig::FedAvg {
            return bad(format!(
                "the strategy {} combines parameter vectors; a tree federation merges trees and only accepts fedavg (site selection and example-weighted evaluation)",
                config.strategy
            ));
        }
        Ok(())
    }

    /// The limits of the contribution of a site asked for `n_trees` trees.
    fn limits(&self, n_trees: usize) -> ContributionLimits {
        ContributionLimits {
            n_features: self.n_features,
            max_trees: n_trees,
            max_samples: self.max_samples,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// Round number (1-based).
    pub round: u32,
    /// Wall time of the round, evaluation included.
    pub seconds: f64,
    /// Sites whose update arrived, sorted.
    pub participants: Vec<String>,
    /// Selected sites that did not answer before the deadline, sorted.
    pub dropped: Vec<String>,
    /// Sites whose update arrived but was left out of the aggregate (non-finite, or not
    /// chosen by Krum), sorted.
    pub excluded: Vec<String>,
    /// Sites whose tree contribution was refused on receipt, with the reason (tree
    /// federations); never merged.
    pub rejected: BTreeMap<String, String>,
    /// Aggregated training metrics, with the strategy's `agg.` figures.
    pub train_metrics: Metrics,
    /// Aggregated evaluation metrics of the new model (empty without evaluation).
    pub eval_metrics: Metrics,
    /// ε spent so far (with DP).
    pub epsilon: Option<f64>,
    /// δ of the budget (with DP).
    pub delta: Option<f64>,
    /// Bytes of task messages sent during the round.
    pub bytes_sent: u64,
    /// Bytes of update and evaluation messages received during the round.
    pub bytes_received: u64,
    /// Why the round was refused before it ran (privacy budget); `None` when it ran.
    pub refused: Option<String>,
}

/// A site as the aggregator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStatus {
    /// Site id.
    pub site_id: String,
    /// Whether its task stream is open.
    pub connected: bool,
    /// How many times it joined (more than 1: it reconnected).
    pub joins: u32,
    /// Training examples it announced.
    pub num_examples: u64,
    /// Last round its update was aggregated in (0: none).
    pub last_round: u32,
}

type TaskSender = mpsc::Sender<Result<TaskMessage, Status>>;

/// The global model, encoded once per version.
#[derive(Debug)]
struct EncodedModel {
    /// The parameters (empty in a tree federation).
    params: Arc<Vec<f32>>,
    /// The encoded model (parameters or trees; empty: no forest yet).
    bytes: Bytes,
    chunks: Vec<Bytes>,
    sha256: Vec<u8>,
    len: u64,
}

impl EncodedModel {
    fn new(params: Vec<f32>, chunk_bytes: usize) -> Self {
        let mut m = Self::from_bytes(encode_params(&params), chunk_bytes);
        m.params = Arc::new(params);
        m
    }

    /// A model that is not a parameter vector (encoded trees).
    fn from_bytes(bytes: Bytes, chunk_bytes: usize) -> Self {
        Self {
            chunks: split_chunks(&bytes, chunk_bytes),
            sha256: sha256(&bytes),
            len: bytes.len() as u64,
            bytes,
            params: Arc::new(Vec::new()),
        }
    }
}

#[derive(Debug)]
struct SiteEntry {
    session: String,
    num_examples: u64,
    tasks: Option<TaskSender>,
    joins: u32,
    last_round: u32,
    /// The site opened a task stream and was neither told that the federation finished
    /// nor left: [`AggregatorHandle::shutdown`] waits (a grace period) to tell it.
    owes_notice: bool,
}

impl SiteEntry {
    fn live_sender(&self) -> Option<&TaskSender> {
        self.tasks.as_ref().filter(|t| !t.is_closed())
    }
}

/// A result that arrived for the active phase.
#[derive(Debug)]
enum Incoming {
    Update {
        site_id: String,
        delta: Vec<f32>,
        num_examples: u64,
        metrics: Metrics,
        bytes: u64,
        /// The update's L2 norm before the site clipped it, as the site reports it (0: it
        /// did not clip).
        norm_before_clip: f64,
    },
    Evaluation {
        site_id: String,
        num_examples: u64,
        metrics: Metrics,
        bytes: u64,
    },
    /// A validated tree contribution.
    Trees {
        site_id: String,
        trees: Vec<u8>,
        n_trees: usize,
        num_examples: u64,
        metrics: Metrics,
        bytes: u64,
    },
    /// A contribution refused on receipt.
    Rejected {
        site_id: String,
        reason: String,
        bytes: u64,
    },
}

/// The phase in progress: which sites owe which answer.
#[derive(Debug)]
struct Active {
    round: u32,
    kind: TaskKind,
    header: TaskHeader,
    model: Arc<EncodedModel>,
    pending: BTreeSet<String>,
    results: mpsc::UnboundedSender<Incoming>,
    senders: Vec<JoinHandle<()>>,
    seed: u64,
    /// Tree federations, training: the trees each site was asked for.
    trees_per_site: BTreeMap<String, usize>,
}

impl Active {
    fn header_for(&self, site_id: &str) -> TaskHeader {
        let mut h = self.header.clone();
        let seed = site_seed(self.seed, self.round, site_id);
        if let Some(plan) = h.plan.as_mut() {
            plan.seed = seed;
        }
        if let Some(tp) = h.tree_plan.as_mut() {
            tp.seed = seed;
            // Allocated trees are at most the configured n_trees, which fits in u32.
            tp.n_trees = self
                .trees_per_site
                .get(site_id)
                .map_or(0, |&n| u32::try_from(n).unwrap_or(u32::MAX));
        }
        h
    }
}

#[derive(Debug)]
struct State {
    sites: BTreeMap<String, SiteEntry>,
    sessions: HashMap<String, String>,
    model: Arc<EncodedModel>,
    /// Last round number used (refused rounds do not use one).
    round: u32,
    active: Option<Active>,
    finished: bool,
}

struct Inner {
    keys: SiteKeys,
    chunk_bytes: usize,
    /// Length of the parameter vector (0 in a tree federation).
    num_params: usize,
    /// A tree federation's settings (`None`: parameters).
    trees: Option<TreeConfig>,
    events: EventFactory,
    observer: Arc<dyn FlObserver>,
    state: Mutex<State>,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, round: u32, phase: &str, fields: EventFields) {
        self.observer.event(self.events.make(round, phase, fields));
    }

    /// The site of a session, after checking the caller's key against it.
    fn authorize(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        session: &str,
    ) -> Result<String, Status> {
        let site = self
            .lock()
            .sessions
            .get(session)
            .cloned()
            .ok_or_else(|| Status::not_found("unknown or expired session; join again"))?;
        self.keys.authenticate(metadata, &site)?;
        Ok(site)
    }

    fn connected(&self) -> Vec<ClientInfo> {
        self.lock()
            .sites
            .iter()
            .filter(|(_, e)| e.live_sender().is_some())
            .map(|(id, e)| ClientInfo::new(id.clone(), e.num_examples))
            .collect()
    }
}

/// Sends one task (header, then the model's chunks) to one site's stream.
fn spawn_send(
    inner: &Arc<Inner>,
    tx: TaskSender,
    header: TaskHeader,
    model: Arc<EncodedModel>,
) -> JoinHandle<()> {
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let round = header.round;
        let head = TaskMessage {
            kind: Some(task_message::Kind::Header(header)),
        };
        let chunks = model
            .chunks
            .iter()
            .enumerate()
            .map(|(i, data)| TaskMessage {
                kind: Some(task_message::Kind::Chunk(ModelChunk {
                    round,
                    index: i as u32,
                    data: data.clone(),
                })),
            });
        for msg in std::iter::once(head).chain(chunks) {
            let len = msg.encoded_len() as u64;
            if tx.send(Ok(msg)).await.is_err() {
                tracing::debug!(round, "task stream closed while sending");
                return;
            }
            inner.bytes_sent.fetch_add(len, Ordering::Relaxed);
        }
    })
}

/// Seed of a site's shuffling in a round: SplitMix64 of the federation seed, the round and
/// an FNV-1a hash of the site id.
fn site_seed(seed: u64, round: u32, site_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in site_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix64(seed ^ h ^ u64::from(round).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Seed of a tree round's merge: SplitMix64 of the federation seed and the round (mixed
/// with other constants than the sites' seeds), so a rerun of a federation merges alike.
fn merge_seed(seed: u64, round: u32) -> u64 {
    splitmix64(seed ^ u64::from(round).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x6d65_7267_6521)
}

/// SplitMix64's output function.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The gRPC service.
struct Service {
    inner: Arc<Inner>,
}

type TaskStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<TaskMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for Service {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_version(req.protocol_version.as_ref())?;
        if let Err(status) = self.inner.keys.authenticate(&metadata, &req.site_id) {
            // Recorded under the id the caller claimed (it is not proven to be theirs).
            tracing::warn!(site_id = %req.site_id, reason = status.message(), "join refused");
            let round = self.inner.lock().round;
            let mut event =
                self.inner
                    .events
                    .make(round, phase::JOIN_REFUSED, EventFields::default());
            event.node_id = req.site_id.clone();
            event.role = FlRole::Client;
            self.inner.observer.event(event);
            return Err(status);
        }
        let inner = &self.inner;
        let site_kind = ModelKind::try_from(req.model_kind).map_err(|_| {
            Status::failed_precondition(format!(
                "model kind {} is unknown to this aggregator (protocol {PROTOCOL_MAJOR}.{PROTOCOL_MINOR})",
                req.model_kind
            ))
        })?;
        match (&inner.trees, site_kind) {
            (None, ModelKind::Unspecified | ModelKind::Parameters) => {
                if req.num_params != inner.num_params as u64 {
                    return Err(Status::failed_precondition(format!(
                        "the site's model has {} parameters, the global model {}",
                        req.num_params, inner.num_params
                    )));
                }
            }
            (None, ModelKind::Trees) => {
                return Err(Status::failed_precondition(
                    "this federation averages parameters; the site offers trees",
                ));
            }
            (Some(cfg), ModelKind::Trees) => {
                if req.n_features as usize != cfg.n_features {
                    return Err(Status::failed_precondition(format!(
                        "the site's rows have {} features, the federation's {}",
                        req.n_features, cfg.n_features
                    )));
                }
            }
            (Some(_), _) => {
                return Err(Status::failed_precondition(
                    "this federation merges trees (protocol 1.1); the site offers a parameter vector",
                ));
            }
        }
        let session = uuid::Uuid::new_v4().to_string();
        let (resumed, round) = {
            let mut st = inner.lock();
            if st.finished {
                if let Some(entry) = st.sites.get_mut(&req.site_id) {
                    entry.owes_notice = false;
                }
                return Err(finished_status());
            }
            let round = st.round;
            let st = &mut *st;
            let entry = st.sites.entry(req.site_id.clone()).or_insert(SiteEntry {
                session: String::new(),
                num_examples: 0,
                tasks: None,
                joins: 0,
                last_round: 0,
                owes_notice: false,
            });
            if entry.live_sender().is_some() {
                tracing::warn!(site_id = %req.site_id, "site joined again while connected; the old session ends");
            }
            st.sessions.remove(&entry.session);
            entry.session = session.clone();
            entry.tasks = None;
            entry.num_examples = req.num_examples;
            entry.joins += 1;
            st.sessions.insert(session.clone(), req.site_id.clone());
            (entry.joins > 1, round)
        };
        tracing::info!(site_id = %req.site_id, resumed, "site joined");
        let mut fields = EventFields::default();
        fields
            .metrics
            .insert("num_examples".into(), req.num_examples as f64);
        inner.emit(round, phase::SITE_JOINED, fields);
        let (model_kind, n_features) = match &inner.trees {
            None => (ModelKind::Parameters, 0),
            // Validated to fit in u32 at start.
            Some(cfg) => (ModelKind::Trees, cfg.n_features as u32),
        };
        Ok(Response::new(JoinReply {
            protocol_version: Some(our_version()),
            session,
            chunk_bytes: inner.chunk_bytes as u32,
            num_params: inner.num_params as u64,
            resumed,
            round,
            model_kind: model_kind as i32,
            n_features,
        }))
    }

    type TasksStream = TaskStream;

    async fn tasks(
        &self,
        request: Request<TasksRequest>,
    ) -> Result<Response<Self::TasksStream>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_version(req.protocol_version.as_ref())?;
        let site = self.inner.authorize(&metadata, &req.session)?;
        let (tx, rx) = mpsc::channel(8);
        {
            let mut st = self.inner.lock();
            if st.finished {
                let _ = tx.try_send(Ok(finished_message("the federation has finished")));
                if let Some(entry) = st.sites.get_mut(&site) {
                    entry.owes_notice = false;
                }
                return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
            }
            if let Some(entry) = st.sites.get_mut(&site) {
                entry.tasks = Some(tx.clone());
                entry.owes_notice = true;
            }
            // A site that reconnects in the middle of a phase it owes an answer to gets the
            // task again.
            if let Some(active) = st.active.as_mut()
                && active.pending.contains(&site)
            {
                tracing::info!(site_id = %site, round = active.round, "resending the task to a reconnected site");
                let header = active.header_for(&site);
                let handle = spawn_send(&self.inner, tx, header, Arc::clone(&active.model));
                active.senders.push(handle);
            }
        }
        tracing::debug!(site_id = %site, "task stream opened");
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn submit_update(
        &self,
        request: Request<Streaming<UpdateChunk>>,
    ) -> Result<Response<Ack>, Status> {
        let (metadata, _, mut stream) = request.into_parts();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty update stream"))?;
        let header_len = first.encoded_len() as u64;
        let header = match first.kind {
            Some(update_chunk::Kind::Header(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an update must be its header",
                ));
            }
        };
        check_version(header.protocol_version.as_ref())?;
        let site = self.inner.authorize(&metadata, &header.session)?;
        let kind = ModelKind::try_from(header.model_kind).unwrap_or(ModelKind::Unspecified);
        if let Some(cfg) = &self.inner.trees {
            return self
                .receive_trees(cfg, site, header, header_len, stream)
                .await;
        }
        if kind == ModelKind::Trees {
            return Err(Status::invalid_argument(
                "a tree contribution in a federation of parameters",
            ));
        }
        let round = header.round;
        // A replayed, duplicated or unrequested update: refused and recorded, not merged.
        if let Err(status) = self.expecting(&site, round, TaskKind::Train) {
            self.record_stray(&site, round, status.message(), header_len);
            return Err(status);
        }
        // From here on the round waits for this site: every refusal is a recorded rejection.
        let expected = (self.inner.num_params * BYTES_PER_PARAM) as u64;
        if header.update_bytes != expected {
            return Err(self.reject(
                &site,
                round,
                format!(
                    "the update has {} bytes, expected {expected} ({} parameters)",
                    header.update_bytes, self.inner.num_params
                ),
                header_len,
            ));
        }
        let mut assembly = Reassembler::new(
            expected,
            header.update_sha256.clone(),
            self.inner.chunk_bytes,
        );
        let bytes = header_len;
        let bytes = self
            .receive_chunks(&site, round, &mut stream, &mut assembly, bytes)
            .await?;
        let delta = match assembly.finish() {
            Ok(d) => d,
            Err(e) => return Err(self.reject(&site, round, e.to_string(), bytes)),
        };
        if let Some(i) = delta.iter().position(|x| !x.is_finite()) {
            return Err(self.reject(
                &site,
                round,
                format!(
                    "parameter {i} of the update is {}, not a finite number",
                    delta[i]
                ),
                bytes,
            ));
        }
        self.deliver(
            &site,
            header.round,
            TaskKind::Train,
            Incoming::Update {
                site_id: site.clone(),
                delta,
                num_examples: header.num_examples,
                metrics: header.metrics,
                bytes,
                norm_before_clip: if header.norm_before_clip.is_finite() {
                    header.norm_before_clip.max(0.0)
                } else {
                    0.0
                },
            },
        )?;
        tracing::debug!(site_id = %site, round = header.round, bytes, "update accepted");
        Ok(Response::new(Ack {
            accepted: true,
            message: String::new(),
        }))
    }

    async fn submit_evaluation(
        &self,
        request: Request<EvaluationResult>,
    ) -> Result<Response<Ack>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_version(req.protocol_version.as_ref())?;
        let site = self.inner.authorize(&metadata, &req.session)?;
        let bytes = req.encoded_len() as u64;
        self.inner
            .bytes_received
            .fetch_add(bytes, Ordering::Relaxed);
        self.deliver(
            &site,
            req.round,
            TaskKind::Evaluate,
            Incoming::Evaluation {
                site_id: site.clone(),
                num_examples: req.num_examples,
                metrics: req.metrics,
                bytes,
            },
        )?;
        Ok(Response::new(Ack {
            accepted: true,
            message: String::new(),
        }))
    }

    async fn leave(&self, request: Request<LeaveRequest>) -> Result<Response<Ack>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_version(req.protocol_version.as_ref())?;
        let site = self.inner.authorize(&metadata, &req.session)?;
        let round = {
            let mut st = self.inner.lock();
            st.sessions.remove(&req.session);
            if let Some(entry) = st.sites.get_mut(&site) {
                entry.tasks = None;
                entry.owes_notice = false;
            }
            st.round
        };
        tracing::info!(site_id = %site, "site left");
        self.inner
            .emit(round, phase::SITE_LEFT, EventFields::default());
        Ok(Response::new(Ack {
            accepted: true,
            message: String::new(),
        }))
    }
}

impl Service {
    /// The rest of a tree contribution's stream: header checks, reassembly within the bound
    /// the site's tree count implies, validation of the trees. Any failure after the
    /// site was found to owe this round a contribution is recorded as a rejection.
    async fn receive_trees(
        &self,
        cfg: &TreeConfig,
        site: String,
        header: UpdateHeader,
        header_len: u64,
        mut stream: Streaming<UpdateChunk>,
    ) -> Result<Response<Ack>, Status> {
        let round = header.round;
        self.expecting(&site, round, TaskKind::Train)?;
        let asked = self.trees_asked(&site, round);
        let limits = cfg.limits(asked);
        let bytes = header_len;
        let kind = ModelKind::try_from(header.model_kind).unwrap_or(ModelKind::Unspecified);
        if kind != ModelKind::Trees {
            return Err(self.reject(
                &site,
                round,
                "a parameter update in a federation that merges trees".into(),
                bytes,
            ));
        }
        let Some(tc) = header.trees else {
            return Err(self.reject(
                &site,
                round,
                "a tree contribution without its header".into(),
                bytes,
            ));
        };
        let bound = cfg.merger.max_encoded_len(&limits);
        let problem = if tc.format_version != cfg.merger.format_version() {
            Some(format!(
                "tree format version {}, this federation reads version {}",
                tc.format_version,
                cfg.merger.format_version()
            ))
        } else if tc.n_features as usize != cfg.n_features {
            Some(format!(
                "trees over {} features, the federation's rows have {}",
                tc.n_features, cfg.n_features
            ))
        } else if tc.n_trees == 0 || tc.n_trees as usize > asked {
            Some(format!(
                "{} trees announced, {asked} were asked for",
                tc.n_trees
            ))
        } else if header.update_bytes == 0 || header.update_bytes > bound {
            Some(format!(
                "a contribution of {} bytes; {asked} trees of at most {} rows take at most {bound}",
                header.update_bytes, cfg.max_samples
            ))
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(self.reject(&site, round, reason, bytes));
        }
        let mut assembly = Reassembler::new(
            header.update_bytes,
            header.update_sha256.clone(),
            self.inner.chunk_bytes,
        );
        let bytes = self
            .receive_chunks(&site, round, &mut stream, &mut assembly, bytes)
            .await?;
        let trees = match assembly.finish_bytes() {
            Ok(t) => t,
            Err(e) => return Err(self.reject(&site, round, e.to_string(), bytes)),
        };
        let n_trees = match cfg.merger.validate(&trees, &limits) {
            Ok(n) if n == tc.n_trees as usize => n,
            Ok(n) => {
                return Err(self.reject(
                    &site,
                    round,
                    format!(
                        "the header announces {} trees, the contribution holds {n}",
                        tc.n_trees
                    ),
                    bytes,
                ));
            }
            Err(e) => return Err(self.reject(&site, round, e.to_string(), bytes)),
        };
        self.deliver(
            &site,
            round,
            TaskKind::Train,
            Incoming::Trees {
                site_id: site.clone(),
                trees,
                n_trees,
                num_examples: header.num_examples,
                metrics: header.metrics,
                bytes,
            },
        )?;
        tracing::debug!(site_id = %site, round, bytes, n_trees, "tree contribution accepted");
        Ok(Response::new(Ack {
            accepted: true,
            message: String::new(),
        }))
    }

    /// The trees the active training phase asked `site` for (0: none).
    fn trees_asked(&self, site: &str, round: u32) -> usize {
        let st = self.inner.lock();
        st.active
            .as_ref()
            .filter(|a| a.round == round && a.kind == TaskKind::Train)
            .and_then(|a| a.trees_per_site.get(site).copied())
            .unwrap_or(0)
    }

    /// Records that `site`'s contribution to `round` was refused: the round stops waiting
    /// for it and reports the reason; the site is answered `INVALID_ARGUMENT` with it.
    fn reject(&self, site: &str, round: u32, reason: String, bytes: u64) -> Status {
        tracing::warn!(site_id = %site, round, %reason, "contribution rejected");
        let mut st = self.inner.lock();
        if let Some(a) = st.active.as_mut()
            && a.round == round
            && a.kind == TaskKind::Train
            && a.pending.remove(site)
        {
            let _ = a.results.send(Incoming::Rejected {
                site_id: site.to_owned(),
                reason: reason.clone(),
                bytes,
            });
        }
        Status::invalid_argument(format!("contribution rejected: {reason}"))
    }

    /// Feeds the rest of an update's stream (data chunks after its header) into
    /// `assembly`; returns the bytes received, `bytes` (the header's) included. A broken
    /// stream, a chunk the reassembly refuses or a second header is a recorded rejection.
    async fn receive_chunks(
        &self,
        site: &str,
        round: u32,
        stream: &mut Streaming<UpdateChunk>,
        assembly: &mut Reassembler,
        mut bytes: u64,
    ) -> Result<u64, Status> {
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(s) => {
                    return Err(self.reject(
                        site,
                        round,
                        format!("the update's stream broke: {}", s.message()),
                        bytes,
                    ));
                }
            };
            bytes += msg.encoded_len() as u64;
            let pushed = match msg.kind {
                Some(update_chunk::Kind::Data(data)) => {
                    assembly.push(&data).map_err(|e| e.to_string())
                }
                Some(update_chunk::Kind::Header(_)) => Err("a second update header".into()),
                None => Ok(()),
            };
            if let Err(reason) = pushed {
                return Err(self.reject(site, round, reason, bytes));
            }
        }
        self.inner
            .bytes_received
            .fetch_add(bytes, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Records an update that no phase waits for (a replay of an earlier round, a
    /// duplicate, or from a site not selected): an `update_rejected` event for the site and
    /// the reason in the log. The round in progress is not affected.
    fn record_stray(&self, site: &str, round: u32, reason: &str, bytes: u64) {
        tracing::warn!(site_id = %site, round, %reason, "update rejected");
        let fields = EventFields {
            bytes_sent: bytes,
            ..EventFields::default()
        };
        let mut event = self
            .inner
            .events
            .make(round, phase::UPDATE_REJECTED, fields);
        event.node_id = site.to_owned();
        event.role = FlRole::Client;
        self.inner.observer.event(event);
    }

    /// Whether the active phase waits for `site`'s answer of this kind for `round`.
    fn expecting(&self, site: &str, round: u32, kind: TaskKind) -> Result<(), Status> {
        let st = self.inner.lock();
        match st.active.as_ref() {
            Some(a) if a.round == round && a.kind == kind && a.pending.contains(site) => Ok(()),
            _ => Err(Status::failed_precondition(format!(
                "not expecting a {} result from {site} for round {round} (stale, duplicated or unselected)",
                kind.as_str_name()
            ))),
        }
    }

    /// Hands a result to the round driver, if the phase still waits for it.
    fn deliver(
        &self,
        site: &str,
        round: u32,
        kind: TaskKind,
        incoming: Incoming,
    ) -> Result<(), Status> {
        let mut st = self.inner.lock();
        if let Some(a) = st.active.as_mut()
            && a.round == round
            && a.kind == kind
            && a.pending.remove(site)
        {
            return a
                .results
                .send(incoming)
                .map_err(|_| Status::failed_precondition("the round has closed"));
        }
        Err(Status::failed_precondition(format!(
            "round {round} no longer waits for a {} result from {site}",
            kind.as_str_name()
        )))
    }
}

/// The refusal of a join after the federation finished; sites recognise it by the
/// [`crate::FINISHED_METADATA`] entry and stop instead of retrying.
fn finished_status() -> Status {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        crate::FINISHED_METADATA,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    Status::with_metadata(
        tonic::Code::FailedPrecondition,
        "the federation has finished",
        metadata,
    )
}

fn finished_message(reason: &str) -> TaskMessage {
    TaskMessage {
        kind: Some(task_message::Kind::Finished(Finished {
            reason: reason.to_owned(),
        })),
    }
}

/// State of the round driver (one round at a time).
struct Driver {
    strategy: Box<dyn Strategy>,
    ledger: Option<Ledger>,
    dp: Option<DpConfig>,
    /// Adaptive clipping: the bound's state and the updates' noise multiplier.
    adaptive: Option<(AdaptiveClipping, f64)>,
    settings_batch: u32,
    round_timeout: Duration,
    evaluate: bool,
    seed: u64,
    /// A tree federation's settings (`None`: parameters).
    trees: Option<TreeConfig>,
    /// Trees of the current global forest (0: none yet).
    global_trees: usize,
}

/// Starts aggregators.
#[derive(Debug)]
pub struct Aggregator;

impl Aggregator {
    /// Validates `config`, binds the listener and starts serving. Sites can join at once;
    /// rounds run when [`AggregatorHandle::run_round`] is called.
    ///
    /// # Errors
    /// An invalid configuration, an empty initial model, a failed bind or TLS setup.
    pub async fn start(
        config: AggregatorConfig,
        initial_params: Vec<f32>,
        observer: Arc<dyn FlObserver>,
    ) -> Result<AggregatorHandle, FederationError> {
        config.validate()?;
        if initial_params.is_empty() {
            return Err(FederationError::Config(
                "the initial model has no parameters".into(),
            ));
        }
        if let Some(i) = initial_params.iter().position(|x| !x.is_finite()) {
            return Err(FederationError::Config(format!(
                "the initial model has a non-finite parameter at index {i}"
            )));
        }
        let model = EncodedModel::new(initial_params, config.chunk_bytes);
        Self::start_model(config, model, None, observer).await
    }

    /// Like [`Aggregator::start`], for a federation that merges trees (see the [module
    /// documentation](self#tree-federations)); there is no global forest before the first
    /// round.
    ///
    /// # Errors
    /// As [`Aggregator::start`]; DP settings or a strategy other than FedAvg, no features,
    /// no trees, fewer than 2 rows per tree.
    pub async fn start_trees(
        config: AggregatorConfig,
        trees: TreeConfig,
        observer: Arc<dyn FlObserver>,
    ) -> Result<AggregatorHandle, FederationError> {
        config.validate()?;
        trees.validate(&config)?;
        let model = EncodedModel::from_bytes(Bytes::new(), config.chunk_bytes);
        Self::start_model(config, model, Some(trees), observer).await
    }

    async fn start_model(
        config: AggregatorConfig,
        model: EncodedModel,
        trees: Option<TreeConfig>,
        observer: Arc<dyn FlObserver>,
    ) -> Result<AggregatorHandle, FederationError> {
        let strategy = config.strategy.build_with(config.settings.clone())?;
        let ledger = match (config.dp, config.resume_ledger.clone()) {
            (Some(_), Some(l)) => Some(l),
            (dp, _) => dp.map(|dp| Ledger::new(dp.budget)).transpose()?,
        };
        let first_round = ledger
            .as_ref()
            .and_then(|l| l.entries().last())
            .map_or(0, |e| u32::try_from(e.round).unwrap_or(u32::MAX));
        let num_params = model.params.len();
        let inner = Arc::new(Inner {
            keys: config.sites.clone(),
            chunk_bytes: config.chunk_bytes,
            num_params,
            trees: trees.clone(),
            events: EventFactory {
                facility_id: config.facility_id.clone(),
                node_id: config.node_id.clone(),
                role: FlRole::Server,
            },
            observer,
            state: Mutex::new(State {
                sites: BTreeMap::new(),
                sessions: HashMap::new(),
                model: Arc::new(model),
                round: first_round,
                active: None,
                finished: false,
            }),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        });
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| FederationError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FederationError::Bind {
                addr: config.listen,
                source,
            })?;
        let limit = message_limit(config.chunk_bytes);
        let service = FederationServer::new(Service {
            inner: Arc::clone(&inner),
        })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(tls) = &config.tls {
            builder = builder.tls_config(tls.to_tonic())?;
        }
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let router = builder.add_service(service);
        let server = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = shutdown_rx.await;
                })
                .await
        });
        tracing::info!(%addr, tls = config.tls.is_some(), num_params, strategy = %config.strategy, "aggregator listening");
        Ok(AggregatorHandle {
            inner,
            driver: tokio::sync::Mutex::new(Driver {
                strategy,
                ledger,
                dp: config.dp,
                adaptive: match (&config.dp, &config.adaptive_clip) {
                    (Some(dp), Some(a)) => Some(adaptive_state(dp, a)?),
                    _ => None,
                },
                settings_batch: config.batch_size,
                round_timeout: config.round_timeout,
                evaluate: config.evaluate,
                seed: config.seed,
                trees,
                global_trees: 0,
            }),
            addr,
            shutdown_tx: Some(shutdown_tx),
            server: Some(server),
            shutdown_grace: config.shutdown_grace,
        })
    }
}

/// A running aggregator. Dropping it stops the server (without telling the sites the
/// federation finished; call [`AggregatorHandle::shutdown`] for that).
pub struct AggregatorHandle {
    inner: Arc<Inner>,
    driver: tokio::sync::Mutex<Driver>,
    addr: SocketAddr,
    shutdown_tx: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    shutdown_grace: Duration,
}

impl std::fmt::Debug for AggregatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AggregatorHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current global model (empty in a tree federation).
    pub fn global_params(&self) -> Vec<f32> {
        self.inner.lock().model.params.as_ref().clone()
    }

    /// The encoded global forest of a tree federation (`None` before the first round, and
    /// in a federation of parameters).
    pub fn global_forest(&self) -> Option<Vec<u8>> {
        self.inner.trees.as_ref()?;
        let st = self.inner.lock();
        (!st.model.bytes.is_empty()).then(|| st.model.bytes.to_vec())
    }

    /// The sites that joined at least once, sorted by id.
    pub fn sites(&self) -> Vec<SiteStatus> {
        self.inner
            .lock()
            .sites
            .iter()
            .map(|(id, e)| SiteStatus {
                site_id: id.clone(),
                connected: e.live_sender().is_some(),
                joins: e.joins,
                num_examples: e.num_examples,
                last_round: e.last_round,
            })
            .collect()
    }

    /// Number of connected sites (task stream open).
    pub fn connected_sites(&self) -> usize {
        self.inner.connected().len()
    }

    /// Waits until at least `n` sites are connected.
    ///
    /// # Errors
    /// [`FederationError::WaitTimeout`] after `timeout`.
    pub async fn wait_for_sites(&self, n: usize, timeout: Duration) -> Result<(), FederationError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let connected = self.connected_sites();
            if connected >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(FederationError::WaitTimeout {
                    connected,
                    wanted: n,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `n` rounds; stops early after a refused round (privacy budget spent).
    ///
    /// # Errors
    /// The first round that fails (see [`AggregatorHandle::run_round`]).
    pub async fn run_rounds(&self, n: u32) -> Result<Vec<RoundReport>, FederationError> {
        let mut reports = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let report = self.run_round().await?;
            let refused = report.refused.is_some();
            reports.push(report);
            if refused {
                break;
            }
        }
        Ok(reports)
    }

    /// Runs one round (see the [module documentation](self)). A round refused by the privacy
    /// budget is `Ok` with [`RoundReport::refused`] set.
    ///
    /// # Errors
    /// No connected site, fewer results than the strategy's minimum before the deadline, or
    /// a failed aggregation; the global model is unchanged.
    pub async fn run_round(&self) -> Result<RoundReport, FederationError> {
        let mut driver = self.driver.lock().await;
        driver.run_round(&self.inner).await
    }

    /// Tells every connected site that the federation finished, then stops the server.
    ///
    /// Sites that are reconnecting at that moment are told when they join again, for up to
    /// [`AggregatorConfig::shutdown_grace`]; the server stops after that at the latest.
    pub async fn shutdown(mut self) -> Result<(), FederationError> {
        let senders: Vec<(String, TaskSender)> = {
            let mut st = self.inner.lock();
            st.finished = true;
            if let Some(active) = st.active.take() {
                for h in active.senders {
                    h.abort();
                }
            }
            st.sites
                .iter_mut()
                .filter_map(|(id, e)| e.tasks.take().map(|t| (id.clone(), t)))
                .collect()
        };
        let notices = senders.iter().map(|(id, tx)| async move {
            let sent = tokio::time::timeout(
                Duration::from_secs(2),
                tx.send(Ok(finished_message("the aggregator shut down"))),
            )
            .await;
            (id, matches!(sent, Ok(Ok(()))))
        });
        let told = futures_util::future::join_all(notices).await;
        {
            let mut st = self.inner.lock();
            for (id, ok) in told {
                if let (true, Some(e)) = (ok, st.sites.get_mut(id)) {
                    e.owes_notice = false;
                }
            }
        }
        drop(senders);
        let deadline = tokio::time::Instant::now() + self.shutdown_grace;
        loop {
            let owed: Vec<String> = {
                let st = self.inner.lock();
                st.sites
                    .iter()
                    .filter(|(_, e)| e.owes_notice)
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            if owed.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(?owed, "sites not told that the federation finished");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(FederationError::Transport(e)),
                Ok(Err(e)) => tracing::warn!("server task failed: {e}"),
                Err(_) => {
                    tracing::warn!("server did not stop within 5 s; aborting it");
                    server.abort();
                }
            }
        }
        tracing::info!("aggregator shut down");
        Ok(())
    }
}

impl Drop for AggregatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            // Close the task streams too, or the graceful shutdown would wait on them.
            let mut st = self.inner.lock();
            for e in st.sites.values_mut() {
                e.tasks = None;
            }
            if let Some(active) = st.active.take() {
                for h in active.senders {
                    h.abort();
                }
            }
            drop(st);
            let _ = tx.send(());
        }
    }
}

/// A validated tree contribution of a round.
struct Contribution {
    site_id: String,
    trees: Vec<u8>,
    n_trees: usize,
    num_examples: u64,
    metrics: Metrics,
}

/// The training task of a tree round (the per-site tree count and seed are filled in by
/// [`Active::header_for`]).
fn tree_header(round: u32, cfg: &TreeConfig) -> TaskHeader {
    TaskHeader {
        round,
        kind: TaskKind::Train as i32,
        plan: None,
        dp: None,
        model_bytes: 0,
        num_chunks: 0,
        model_sha256: Vec::new(),
        model_kind: ModelKind::Trees as i32,
        tree_plan: Some(crate::proto::TreePlan {
            n_trees: 0,
            // Validated to fit in u32 at start.
            max_samples: cfg.max_samples as u32,
            seed: 0,
            format_version: cfg.merger.format_version(),
        }),
    }
}

/// What one phase (training or evaluation) collected.
struct Collected {
    results: Vec<Incoming>,
    missing: Vec<String>,
}

impl Driver {
    async fn run_round(&mut self, inner: &Arc<Inner>) -> Result<RoundReport, FederationError> {
        let started = Instant::now();
        let sent0 = inner.bytes_sent.load(Ordering::Relaxed);
        let recv0 = inner.bytes_received.load(Ordering::Relaxed);
        let (round, finished) = {
            let st = inner.lock();
            (st.round + 1, st.finished)
        };
        if finished {
            return Err(FederationError::Shutdown);
        }
        let clients = inner.connected();
        if clients.is_empty() {
            return Err(FederationError::NoSites);
        }
        let plan = self.strategy.configure_round(round, &clients);
        let selected = plan.clients.len();
        if selected == 0 {
            return Err(FederationError::NoSites);
        }

        // Differential privacy: refuse before anything is sent.
        let mut dp_round = None;
        if let (Some(dp), Some(ledger)) = (self.dp, self.ledger.as_ref()) {
            let q = (selected as f64 / inner.keys.len() as f64).min(1.0);
            match ledger.check_round(q, dp.noise_multiplier) {
                Ok(_) => dp_round = Some((self.round_dp(dp), q)),
                Err(e @ DpError::BudgetExceeded { .. }) => {
                    return Ok(self.refuse(inner, round, started, &e, dp));
                }
                Err(e) => return Err(e.into()),
            }
        }
        inner.lock().round = round;
        let mut fields = EventFields::default();
        fields.metrics.insert("selected".into(), selected as f64);
        fields
            .metrics
            .insert("connected".into(), clients.len() as f64);
        inner.emit(round, phase::ROUND_STARTED, fields);
        tracing::info!(round, selected, connected = clients.len(), "round started");

        // Trees: each selected site's share of the global forest, by examples announced.
        let trees_per_site: BTreeMap<String, usize> = match &self.trees {
            Some(cfg) => {
                let examples: Vec<u64> = plan
                    .clients
                    .iter()
                    .map(|id| {
                        clients
                            .iter()
                            .find(|c| &c.client_id == id)
                            .map_or(0, |c| c.num_examples)
                    })
                    .collect();
                plan.clients
                    .iter()
                    .cloned()
                    .zip(allocate_trees(cfg.n_trees, &examples))
                    .collect()
            }
            None => BTreeMap::new(),
        };
        let header = match &self.trees {
            Some(cfg) => tree_header(round, cfg),
            None => self.train_header(round, &plan, dp_round.map(|(dp, _)| dp), selected),
        };
        let collected = self
            .collect(
                inner,
                round,
                TaskKind::Train,
                &plan.clients,
                header,
                trees_per_site,
            )
            .await;
        let mut dropped = collected.missing;
        dropped.sort();
        let (global, global_bytes) = {
            let st = inner.lock();
            (Arc::clone(&st.model.params), st.model.bytes.clone())
        };

        let mut updates = Vec::new();
        let mut reported_norms = BTreeMap::new();
        let mut contributions = Vec::new();
        let mut rejected = BTreeMap::new();
        for r in collected.results {
            match r {
                Incoming::Update {
                    site_id,
                    delta,
                    num_examples,
                    metrics,
                    norm_before_clip,
                    ..
                } => {
                    reported_norms.insert(site_id.clone(), norm_before_clip);
                    updates.push((site_id, delta, num_examples, metrics));
                }
                Incoming::Trees {
                    site_id,
                    trees,
                    n_trees,
                    num_examples,
                    metrics,
                    ..
                } => contributions.push(Contribution {
                    site_id,
                    trees,
                    n_trees,
                    num_examples,
                    metrics,
                }),
                Incoming::Rejected {
                    site_id, reason, ..
                } => {
                    rejected.insert(site_id, reason);
                }
                Incoming::Evaluation { .. } => {}
            }
        }
        updates.sort_by(|a, b| a.0.cmp(&b.0));
        contributions.sort_by(|a, b| a.site_id.cmp(&b.site_id));
        let participants: Vec<String> = updates
            .iter()
            .map(|u| u.0.clone())
            .chain(contributions.iter().map(|c| c.site_id.clone()))
            .collect();
        if participants.len() < plan.min_results.max(1) {
            let err = FederationError::TooFewResults {
                round,
                received: participants.len(),
                selected,
                min_results: plan.min_results.max(1),
            };
            self.fail(inner, round, started, &err);
            return Err(err);
        }

        let chunk_bytes = inner.chunk_bytes;
        let params_model = |(p, ex, m, eps): (Vec<f32>, Vec<String>, Metrics, Option<f64>)| {
            (EncodedModel::new(p, chunk_bytes), ex, m, eps)
        };
        let outcome = match (dp_round, self.trees.clone()) {
            (_, Some(cfg)) => self
                .merge_trees(round, &global_bytes, &cfg, &contributions)
                .map(|(bytes, m)| {
                    (
                        EncodedModel::from_bytes(bytes, chunk_bytes),
                        Vec::new(),
                        m,
                        None,
                    )
                }),
            (Some((dp, q)), None) => self
                .aggregate_dp(round, &global, updates, &reported_norms, dp, q, selected)
                .map(params_model),
            (None, None) => self
                .aggregate_plain(round, &global, updates)
                .map(params_model),
        };
        let (new_model, excluded, train_metrics, epsilon) = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.fail(inner, round, started, &e);
                return Err(e);
            }
        };
        {
            let mut st = inner.lock();
            st.model = Arc::new(new_model);
            for p in &participants {
                if let Some(e) = st.sites.get_mut(p) {
                    e.last_round = round;
                }
            }
        }

        let eval_metrics = if self.evaluate {
            self.evaluate_round(inner, round, &dropped).await
        } else {
            Metrics::new()
        };

        let report = RoundReport {
            round,
            seconds: started.elapsed().as_secs_f64(),
            participants,
            dropped,
            excluded,
            rejected,
            train_metrics,
            eval_metrics,
            epsilon,
            delta: self.dp.map(|dp| dp.budget.delta),
            bytes_sent: inner.bytes_sent.load(Ordering::Relaxed) - sent0,
            bytes_received: inner.bytes_received.load(Ordering::Relaxed) - recv0,
            refused: None,
        };
        let mut fields = EventFields {
            metrics: report.train_metrics.clone(),
            epsilon: report.epsilon,
            delta: report.delta,
            bytes_sent: report.bytes_sent,
            duration: started.elapsed(),
        };
        for (k, v) in &report.eval_metrics {
            fields.metrics.insert(format!("eval.{k}"), *v);
        }
        fields
            .metrics
            .insert("participants".into(), report.participants.len() as f64);
        fields
            .metrics
            .insert("dropped".into(), report.dropped.len() as f64);
        if self.trees.is_some() {
            fields
                .metrics
                .insert("rejected".into(), report.rejected.len() as f64);
        }
        fields
            .metrics
            .insert("bytes_received".into(), report.bytes_received as f64);
        inner.emit(round, phase::ROUND_AGGREGATED, fields);
        inner.observer.round_finished(&report);
        tracing::info!(
            round,
            seconds = report.seconds,
            participants = report.participants.len(),
            dropped = ?report.dropped,
            epsilon = ?report.epsilon,
            bytes_sent = report.bytes_sent,
            bytes_received = report.bytes_received,
            "round aggregated"
        );
        Ok(report)
    }

    fn train_header(
        &self,
        round: u32,
        plan: &RoundPlan,
        dp: Option<DpConfig>,
        selected: usize,
    ) -> TaskHeader {
        let dp = match dp {
            None => DpSettings {
                mode: crate::proto::NoiseMode::None as i32,
                clip: 0.0,
                noise_std: 0.0,
            },
            Some(dp) => match dp.mode {
                NoiseMode::Central => DpSettings {
                    mode: crate::proto::NoiseMode::Central as i32,
                    clip: dp.clip,
                    noise_std: 0.0,
                },
                NoiseMode::Distributed => DpSettings {
                    mode: crate::proto::NoiseMode::Distributed as i32,
                    clip: dp.clip,
                    noise_std: dp.noise_multiplier * dp.clip / (selected as f64).sqrt(),
                },
            },
        };
        TaskHeader {
            round,
            kind: TaskKind::Train as i32,
            plan: Some(TrainPlan {
                local_epochs: plan.local_epochs,
                learning_rate: plan.learning_rate,
                proximal_mu: plan.proximal_mu,
                batch_size: self.settings_batch,
                seed: 0,
            }),
            dp: Some(dp),
            model_bytes: 0,
            num_chunks: 0,
            model_sha256: Vec::new(),
            model_kind: ModelKind::Parameters as i32,
            tree_plan: None,
        }
    }

    /// Merges the current global forest's trees and the round's contributions into the new
    /// global forest.
    fn merge_trees(
        &mut self,
        round: u32,
        global: &Bytes,
        cfg: &TreeConfig,
        contributions: &[Contribution],
    ) -> Result<(Bytes, Metrics), FederationError> {
        let mut pool: Vec<&[u8]> = Vec::with_capacity(contributions.len() + 1);
        let mut pool_trees = 0;
        if !global.is_empty() {
            pool.push(global);
            pool_trees += self.global_trees;
        }
        let contributed: usize = contributions.iter().map(|c| c.n_trees).sum();
        pool_trees += contributed;
        pool.extend(contributions.iter().map(|c| c.trees.as_slice()));
        let merged = cfg
            .merger
            .merge(&pool, cfg.n_trees, merge_seed(self.seed, round))?;
        self.global_trees = cfg.n_trees;
        let mut metrics =
            weighted_metrics(contributions.iter().map(|c| (c.num_examples, &c.metrics)));
        metrics.insert("agg.num_clients".into(), contributions.len() as f64);
        metrics.insert(
            "agg.total_examples".into(),
            contributions.iter().map(|c| c.num_examples as f64).sum(),
        );
        metrics.insert("agg.contributed_trees".into(), contributed as f64);
        metrics.insert("agg.pool_trees".into(), pool_trees as f64);
        metrics.insert("agg.trees".into(), cfg.n_trees as f64);
        Ok((Bytes::from(merged), metrics))
    }

    /// Sends the task of a phase to `sites` and waits for their answers until all arrived
    /// or the deadline passed.
    async fn collect(
        &self,
        inner: &Arc<Inner>,
        round: u32,
        kind: TaskKind,
        sites: &[String],
        mut header: TaskHeader,
        trees_per_site: BTreeMap<String, usize>,
    ) -> Collected {
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut st = inner.lock();
            // A tree site grows its trees from its own rows: its training task carries no model.
            let model = if inner.trees.is_some() && kind == TaskKind::Train {
                Arc::new(EncodedModel::from_bytes(Bytes::new(), inner.chunk_bytes))
            } else {
                Arc::clone(&st.model)
            };
            header.model_bytes = model.len;
            header.num_chunks = model.chunks.len() as u32;
            header.model_sha256 = model.sha256.clone();
            let mut active = Active {
                round,
                kind,
                header,
                model,
                pending: sites.iter().cloned().collect(),
                results: tx,
                senders: Vec::new(),
                seed: self.seed,
                trees_per_site,
            };
            for site in sites {
                if let Some(sender) = st.sites.get(site).and_then(SiteEntry::live_sender) {
                    let handle = spawn_send(
                        inner,
                        sender.clone(),
                        active.header_for(site),
                        Arc::clone(&active.model),
                    );
                    active.senders.push(handle);
                }
            }
            st.active = Some(active);
        }
        let phase_started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.round_timeout;
        let mut results = Vec::with_capacity(sites.len());
        while results.len() < sites.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => {
                    self.progress(inner, round, &r, phase_started);
                    results.push(r);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let active = inner.lock().active.take();
        // Results accepted just before the phase closed are still in the channel.
        while let Ok(r) = rx.try_recv() {
            self.progress(inner, round, &r, phase_started);
            results.push(r);
        }
        let missing = match active {
            Some(a) => {
                for h in a.senders {
                    h.abort();
                }
                a.pending.into_iter().collect()
            }
            None => Vec::new(),
        };
        if !missing.is_empty() {
            tracing::warn!(
                round,
                kind = kind.as_str_name(),
                ?missing,
                "sites did not answer before the deadline"
            );
        }
        Collected { results, missing }
    }

    /// Reports an arrival: an event with the site as node, and the client-table callback.
    fn progress(&self, inner: &Inner, round: u32, r: &Incoming, phase_started: Instant) {
        let (site_id, num_examples, metrics, bytes, phase, update_norm) = match r {
            Incoming::Trees {
                site_id,
                num_examples,
                metrics,
                bytes,
                ..
            } => (
                site_id,
                *num_examples,
                metrics,
                *bytes,
                phase::UPDATE_RECEIVED,
                None,
            ),
            Incoming::Rejected {
                site_id,
                reason,
                bytes,
            } => {
                // The site's event: what it sent and that it was refused (the reason is in
                // the round's report and the log).
                let fields = EventFields {
                    bytes_sent: *bytes,
                    duration: phase_started.elapsed(),
                    ..EventFields::default()
                };
                let mut event = inner.events.make(round, phase::UPDATE_REJECTED, fields);
                event.node_id = site_id.clone();
                event.role = FlRole::Client;
                inner.observer.event(event);
                tracing::warn!(site_id = %site_id, round, %reason, "update rejected");
                return;
            }
            Incoming::Update {
                site_id,
                num_examples,
                metrics,
                bytes,
                delta,
                ..
            } => (
                site_id,
                *num_examples,
                metrics,
                *bytes,
                phase::UPDATE_RECEIVED,
                Some(l2_norm(delta)),
            ),
            Incoming::Evaluation {
                site_id,
                num_examples,
                metrics,
                bytes,
            } => (
                site_id,
                *num_examples,
                metrics,
                *bytes,
                phase::EVALUATION_RECEIVED,
                None,
            ),
        };
        let elapsed = phase_started.elapsed();
        // The site's event: what it sent, and how long after the task it arrived.
        let mut fields = EventFields {
            metrics: metrics.clone(),
            bytes_sent: bytes,
            duration: elapsed,
            ..EventFields::default()
        };
        fields
            .metrics
            .insert("num_examples".into(), num_examples as f64);
        if let Some(norm) = update_norm {
            fields.metrics.insert("update_norm".into(), norm);
        }
        let mut event = inner.events.make(round, phase, fields);
        event.node_id = site_id.clone();
        event.role = FlRole::Client;
        inner.observer.event(event);
        inner.observer.client_progress(&ClientProgress {
            round,
            site_id: site_id.clone(),
            phase,
            num_examples,
            metrics: metrics.clone(),
            elapsed,
            bytes_received: bytes,
            update_norm,
        });
    }

    #[allow(clippy::type_complexity)]
    fn aggregate_plain(
        &mut self,
        round: u32,
        global: &[f32],
        updates: Vec<(String, Vec<f32>, u64, Metrics)>,
    ) -> Result<(Vec<f32>, Vec<String>, Metrics, Option<f64>), FederationError> {
        let mut results = Vec::with_capacity(updates.len());
        for (site, delta, n, metrics) in updates {
            let mut u = ClientUpdate::from_delta(site, global, &delta, n)?;
            u.metrics = metrics;
            results.push(u);
        }
        let agg = self.strategy.aggregate(round, global, &results)?;
        Ok((agg.params, agg.excluded, agg.metrics, None))
    }

    /// This round's DP settings: with adaptive clipping, the current bound and the updates'
    /// share of the noise multiplier; else the configured ones.
    fn round_dp(&self, dp: DpConfig) -> DpConfig {
        match &self.adaptive {
            Some((state, update_sigma)) => DpConfig {
                clip: state.clip(),
                noise_multiplier: *update_sigma,
                ..dp
            },
            None => dp,
        }
    }

    /// The DP aggregate: re-clip, sum, noise, divide by the number selected; with adaptive
    /// clipping, also the noised count of unclipped updates and the next round's bound.
    /// `dp` is the round's ([`Driver::round_dp`]); `reported_norms` the norms before
    /// clipping the sites reported.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn aggregate_dp(
        &mut self,
        round: u32,
        global: &[f32],
        updates: Vec<(String, Vec<f32>, u64, Metrics)>,
        reported_norms: &BTreeMap<String, f64>,
        dp: DpConfig,
        q: f64,
        selected: usize,
    ) -> Result<(Vec<f32>, Vec<String>, Metrics, Option<f64>), FederationError> {
        let d = global.len();
        let noise = GaussianNoise::new(dp.noise_multiplier, dp.clip)?;
        let site_std = noise.distributed_std(selected)?;
        let bound = match dp.mode {
            NoiseMode::Central => dp.clip,
            NoiseMode::Distributed => dp.clip + site_std * ((d as f64).sqrt() + 10.0),
        };
        let mut sum = vec![0.0_f64; d];
        let mut excluded = Vec::new();
        let mut used: Vec<(u64, Metrics)> = Vec::new();
        let mut clipped = 0usize;
        // Updates the round's bound left unclipped (adaptive clipping's bits).
        let mut unclipped = 0usize;
        let mut norm_sum = 0.0;
        for (site, mut delta, n, metrics) in updates {
            if delta.len() != d || delta.iter().any(|x| !x.is_finite()) {
                tracing::warn!(site_id = %site, round, "update rejected: wrong length or non-finite");
                excluded.push(site);
                continue;
            }
            let norm = clip_l2(&mut delta, bound);
            if norm > bound {
                clipped += 1;
            }
            // The norm before any clipping: the site's report (it clips first), or in
            // central mode what arrived, whichever is larger.
            let reported = reported_norms.get(&site).copied().unwrap_or(0.0);
            let before = match dp.mode {
                NoiseMode::Central => reported.max(norm),
                NoiseMode::Distributed => reported,
            };
            if before <= dp.clip {
                unclipped += 1;
            }
            norm_sum += norm;
            for (s, x) in sum.iter_mut().zip(&delta) {
                *s += f64::from(*x);
            }
            used.push((n, metrics));
        }
        if used.is_empty() {
            return Err(fedics_fl::strategy::StrategyError::AllRejected {
                rejected: excluded.len(),
            }
            .into());
        }
        let mut sum: Vec<f32> = sum.into_iter().map(|x| x as f32).collect();
        let mut rng = secure_rng()?;
        match dp.mode {
            NoiseMode::Central => noise.add_central(&mut sum, &mut rng)?,
            NoiseMode::Distributed => {
                // Shares of the sites that did not contribute, so the sum carries σ²C².
                let missing = selected.saturating_sub(used.len());
                if missing > 0 {
                    let std = site_std * (missing as f64).sqrt();
                    fedics_fl::dp::add_gaussian_noise(&mut sum, std, &mut rng)?;
                }
            }
        }
        let k = selected as f64;
        let params: Vec<f32> = global
            .iter()
            .zip(&sum)
            .map(|(g, s)| (f64::from(*g) + f64::from(*s) / k) as f32)
            .collect();
        // The accountant's σ is the configured one: with adaptive clipping the updates' σ
        // and the count's σ_b compose to it.
        let sigma = self.dp.map_or(dp.noise_multiplier, |c| c.noise_multiplier);
        let next_clip = match self.adaptive.as_mut() {
            Some((state, _)) => {
                Some(state.update(unclipped, used.len(), selected as f64, &mut rng)?)
            }
            None => None,
        };
        let Some(ledger) = self.ledger.as_mut() else {
            return Err(FederationError::Config("DP without a ledger".into()));
        };
        let entry = ledger.record_round(u64::from(round), q, sigma, dp.clip)?;
        let mut metrics = weighted_metrics(used.iter().map(|(n, m)| (*n, m)));
        metrics.insert("agg.num_clients".into(), used.len() as f64);
        metrics.insert("agg.num_excluded".into(), excluded.len() as f64);
        metrics.insert("agg.dp_clip".into(), dp.clip);
        metrics.insert("agg.dp_noise_multiplier".into(), sigma);
        if let Some(next) = next_clip {
            metrics.insert("agg.dp_update_noise_multiplier".into(), dp.noise_multiplier);
            metrics.insert("agg.dp_next_clip".into(), next);
            metrics.insert(
                "agg.dp_unclipped_fraction".into(),
                unclipped as f64 / used.len() as f64,
            );
        }
        metrics.insert("agg.dp_q".into(), q);
        metrics.insert(
            "agg.dp_clipped_fraction".into(),
            clipped as f64 / used.len() as f64,
        );
        metrics.insert("agg.mean_update_norm".into(), norm_sum / used.len() as f64);
        excluded.sort();
        Ok((params, excluded, metrics, Some(entry.epsilon)))
    }

    async fn evaluate_round(&self, inner: &Arc<Inner>, round: u32, dropped: &[String]) -> Metrics {
        let sites: Vec<String> = inner
            .connected()
            .into_iter()
            .map(|c| c.client_id)
            .filter(|id| !dropped.contains(id))
            .collect();
        if sites.is_empty() {
            return Metrics::new();
        }
        let model_kind = if self.trees.is_some() {
            ModelKind::Trees
        } else {
            ModelKind::Parameters
        };
        let header = TaskHeader {
            round,
            kind: TaskKind::Evaluate as i32,
            plan: None,
            dp: None,
            model_bytes: 0,
            num_chunks: 0,
            model_sha256: Vec::new(),
            model_kind: model_kind as i32,
            tree_plan: None,
        };
        let collected = self
            .collect(
                inner,
                round,
                TaskKind::Evaluate,
                &sites,
                header,
                BTreeMap::new(),
            )
            .await;
        let evals: Vec<ClientEvaluation> = collected
            .results
            .into_iter()
            .filter_map(|r| match r {
                Incoming::Evaluation {
                    site_id,
                    num_examples,
                    metrics,
                    ..
                } => Some(ClientEvaluation {
                    client_id: site_id,
                    num_examples,
                    metrics,
                }),
                Incoming::Update { .. } | Incoming::Trees { .. } | Incoming::Rejected { .. } => {
                    None
                }
            })
            .collect();
        if evals.is_empty() {
            return Metrics::new();
        }
        match self.strategy.evaluate(round, &evals) {
            Ok(summary) => {
                let mut m = summary.metrics;
                m.insert("eval.num_clients".into(), summary.num_clients as f64);
                m.insert("eval.total_examples".into(), summary.total_examples as f64);
                m
            }
            Err(e) => {
                tracing::warn!(round, "evaluation not combined: {e}");
                Metrics::new()
            }
        }
    }

    fn refuse(
        &self,
        inner: &Inner,
        round: u32,
        started: Instant,
        err: &DpError,
        dp: DpConfig,
    ) -> RoundReport {
        // ε spent by the rounds that ran (none yet: no ε).
        let spent = self
            .ledger
            .as_ref()
            .and_then(|l| l.entries().last())
            .map(|e| e.epsilon);
        let message = format!("round {round} refused: {err}");
        tracing::warn!(round, "{message}");
        let mut fields = EventFields {
            epsilon: spent,
            delta: Some(dp.budget.delta),
            duration: started.elapsed(),
            ..EventFields::default()
        };
        if let DpError::BudgetExceeded {
            would_be,
            max_epsilon,
            ..
        } = err
        {
            fields.metrics.insert("would_be_epsilon".into(), *would_be);
            fields.metrics.insert("max_epsilon".into(), *max_epsilon);
        }
        inner.emit(round, phase::ROUND_REFUSED, fields);
        let report = RoundReport {
            round,
            seconds: started.elapsed().as_secs_f64(),
            participants: Vec::new(),
            dropped: Vec::new(),
            excluded: Vec::new(),
            rejected: BTreeMap::new(),
            train_metrics: Metrics::new(),
            eval_metrics: Metrics::new(),
            epsilon: spent,
            delta: Some(dp.budget.delta),
            bytes_sent: 0,
            bytes_received: 0,
            refused: Some(message),
        };
        inner.observer.round_finished(&report);
        report
    }

    fn fail(&self, inner: &Inner, round: u32, started: Instant, err: &FederationError) {
        tracing::warn!(round, "round failed: {err}");
        let fields = EventFields {
            duration: started.elapsed(),
            ..EventFields::default()
        };
        inner.emit(round, phase::ROUND_FAILED, fields);
    }
}
