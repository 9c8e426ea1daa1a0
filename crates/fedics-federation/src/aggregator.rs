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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fedics_core::FlRole;
use fedics_fl::dp::{DpError, GaussianNoise, Ledger, PrivacyBudget, clip_l2, l2_norm, secure_rng};
use fedics_fl::strategy::{
    ClientEvaluation, ClientInfo, ClientUpdate, Metrics, RoundPlan, RoundSettings, Strategy,
    StrategyConfig, weighted_metrics,
};
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
    TaskHeader, TaskKind, TaskMessage, TasksRequest, TrainPlan, UpdateChunk, task_message,
    update_chunk,
};
use crate::tls::ServerTls;
use crate::{DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, check_version, message_limit, our_version};

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
    params: Arc<Vec<f32>>,
    chunks: Vec<Bytes>,
    sha256: Vec<u8>,
    len: u64,
}

impl EncodedModel {
    fn new(params: Vec<f32>, chunk_bytes: usize) -> Self {
        let bytes = encode_params(&params);
        Self {
            chunks: split_chunks(&bytes, chunk_bytes),
            sha256: sha256(&bytes),
            len: bytes.len() as u64,
            params: Arc::new(params),
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
    },
    Evaluation {
        site_id: String,
        num_examples: u64,
        metrics: Metrics,
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
}

impl Active {
    fn header_for(&self, site_id: &str) -> TaskHeader {
        let mut h = self.header.clone();
        if let Some(plan) = h.plan.as_mut() {
            plan.seed = site_seed(self.seed, self.round, site_id);
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
    num_params: usize,
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
    let mut z = seed ^ h ^ u64::from(round).wrapping_mul(0x9E37_79B9_7F4A_7C15);
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
        self.inner.keys.authenticate(&metadata, &req.site_id)?;
        let inner = &self.inner;
        if req.num_params != inner.num_params as u64 {
            return Err(Status::failed_precondition(format!(
                "the site's model has {} parameters, the global model {}",
                req.num_params, inner.num_params
            )));
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
        Ok(Response::new(JoinReply {
            protocol_version: Some(our_version()),
            session,
            chunk_bytes: inner.chunk_bytes as u32,
            num_params: inner.num_params as u64,
            resumed,
            round,
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
        let expected = (self.inner.num_params * BYTES_PER_PARAM) as u64;
        if header.update_bytes != expected {
            return Err(Status::invalid_argument(format!(
                "the update has {} bytes, expected {expected} ({} parameters)",
                header.update_bytes, self.inner.num_params
            )));
        }
        self.expecting(&site, header.round, TaskKind::Train)?;
        let mut assembly = Reassembler::new(
            expected,
            header.update_sha256.clone(),
            self.inner.chunk_bytes,
        );
        let mut bytes = header_len;
        while let Some(msg) = stream.message().await? {
            bytes += msg.encoded_len() as u64;
            match msg.kind {
                Some(update_chunk::Kind::Data(data)) => assembly
                    .push(&data)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
                Some(update_chunk::Kind::Header(_)) => {
                    return Err(Status::invalid_argument("a second update header"));
                }
                None => {}
            }
        }
        self.inner
            .bytes_received
            .fetch_add(bytes, Ordering::Relaxed);
        let delta = assembly
            .finish()
            .map_err(|e| Status::data_loss(e.to_string()))?;
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
    settings_batch: u32,
    round_timeout: Duration,
    evaluate: bool,
    seed: u64,
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
        let strategy = config.strategy.build_with(config.settings.clone())?;
        let ledger = match (config.dp, config.resume_ledger.clone()) {
            (Some(_), Some(l)) => Some(l),
            (dp, _) => dp.map(|dp| Ledger::new(dp.budget)).transpose()?,
        };
        let first_round = ledger
            .as_ref()
            .and_then(|l| l.entries().last())
            .map_or(0, |e| u32::try_from(e.round).unwrap_or(u32::MAX));
        let num_params = initial_params.len();
        let inner = Arc::new(Inner {
            keys: config.sites.clone(),
            chunk_bytes: config.chunk_bytes,
            num_params,
            events: EventFactory {
                facility_id: config.facility_id.clone(),
                node_id: config.node_id.clone(),
                role: FlRole::Server,
            },
            observer,
            state: Mutex::new(State {
                sites: BTreeMap::new(),
                sessions: HashMap::new(),
                model: Arc::new(EncodedModel::new(initial_params, config.chunk_bytes)),
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
                settings_batch: config.batch_size,
                round_timeout: config.round_timeout,
                evaluate: config.evaluate,
                seed: config.seed,
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

    /// The current global model.
    pub fn global_params(&self) -> Vec<f32> {
        self.inner.lock().model.params.as_ref().clone()
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
                Ok(_) => dp_round = Some((dp, q)),
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

        let header = self.train_header(round, &plan, dp_round.map(|(dp, _)| dp), selected);
        let collected = self
            .collect(inner, round, TaskKind::Train, &plan.clients, header)
            .await;
        let mut dropped = collected.missing;
        dropped.sort();
        let global = Arc::clone(&inner.lock().model.params);

        let mut updates = Vec::new();
        for r in collected.results {
            if let Incoming::Update {
                site_id,
                delta,
                num_examples,
                metrics,
                ..
            } = r
            {
                updates.push((site_id, delta, num_examples, metrics));
            }
        }
        updates.sort_by(|a, b| a.0.cmp(&b.0));
        let participants: Vec<String> = updates.iter().map(|u| u.0.clone()).collect();
        if updates.len() < plan.min_results.max(1) {
            let err = FederationError::TooFewResults {
                round,
                received: updates.len(),
                selected,
                min_results: plan.min_results.max(1),
            };
            self.fail(inner, round, started, &err);
            return Err(err);
        }

        let outcome = match dp_round {
            Some((dp, q)) => self.aggregate_dp(round, &global, updates, dp, q, selected),
            None => self.aggregate_plain(round, &global, updates),
        };
        let (new_params, excluded, train_metrics, epsilon) = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.fail(inner, round, started, &e);
                return Err(e);
            }
        };
        {
            let mut st = inner.lock();
            st.model = Arc::new(EncodedModel::new(new_params, inner.chunk_bytes));
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
        }
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
    ) -> Collected {
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut st = inner.lock();
            let model = Arc::clone(&st.model);
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
            Incoming::Update {
                site_id,
                num_examples,
                metrics,
                bytes,
                delta,
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

    /// The DP aggregate: re-clip, sum, noise, divide by the number selected.
    #[allow(clippy::type_complexity)]
    fn aggregate_dp(
        &mut self,
        round: u32,
        global: &[f32],
        updates: Vec<(String, Vec<f32>, u64, Metrics)>,
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
        let Some(ledger) = self.ledger.as_mut() else {
            return Err(FederationError::Config("DP without a ledger".into()));
        };
        let entry = ledger.record_round(u64::from(round), q, dp.noise_multiplier, dp.clip)?;
        let mut metrics = weighted_metrics(used.iter().map(|(n, m)| (*n, m)));
        metrics.insert("agg.num_clients".into(), used.len() as f64);
        metrics.insert("agg.num_excluded".into(), excluded.len() as f64);
        metrics.insert("agg.dp_clip".into(), dp.clip);
        metrics.insert("agg.dp_noise_multiplier".into(), dp.noise_multiplier);
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
        let header = TaskHeader {
            round,
            kind: TaskKind::Evaluate as i32,
            plan: None,
            dp: None,
            model_bytes: 0,
            num_chunks: 0,
            model_sha256: Vec::new(),
        };
        let collected = self
            .collect(inner, round, TaskKind::Evaluate, &sites, header)
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
                Incoming::Update { .. } => None,
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
