//! The site runtime: joins the aggregator, trains on its tasks, uploads the updates.
//!
//! [`run_site`] joins, opens the task stream and handles each task in turn: it reassembles
//! the global model from its chunks (verifying the SHA-256), trains with the
//! [`LocalTrainer`] on a blocking thread, computes the update `new − global`, clips it and
//! adds its noise share when the task's DP settings say so, and uploads it in chunks; an
//! evaluation task is answered with the trainer's metrics. When the connection breaks it
//! reconnects with exponential backoff (with jitter) and joins again under the same site id,
//! which resumes it: the aggregator resends the task of a round still waiting for it. It
//! returns when the aggregator says the federation finished, when `cancel` completes, or
//! on a refusal that retrying cannot fix (credentials, protocol version, model size).
//!
//! [`run_tree_site`] is the same runtime for a tree federation around a [`TreeTrainer`]: a
//! training task says how many trees to grow (and carries no model), the site uploads its
//! encoded trees in chunks; an evaluation task carries the global forest, of variable length
//! (at most [`SiteConfig::max_model_bytes`]), which the trainer validates before using it.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use fedics_fl::dp::{add_gaussian_noise, clip_l2, secure_rng};
use fedics_fl::trainer::{LocalPlan, LocalTrainer};
use fedics_fl::trees::{TreePlan, TreeTrainer};
use prost::Message;
use rand::Rng;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::codec::{
    BYTES_PER_PARAM, Reassembler, decode_params, encode_params, sha256, split_chunks,
};
use crate::error::SiteError;
use crate::proto::federation_client::FederationClient;
use crate::proto::{
    EvaluationResult, JoinRequest, LeaveRequest, ModelKind, NoiseMode, TaskHeader, TaskKind,
    TasksRequest, TreeContribution, UpdateChunk, UpdateHeader, task_message, update_chunk,
};
use crate::tls::ClientTls;
use crate::{DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, message_limit, our_version};

/// Reconnection policy: waits `initial`, doubling up to `max`, with ±20 % jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// First wait after a failure (default 200 ms).
    pub initial: Duration,
    /// Longest wait (default 10 s).
    pub max: Duration,
    /// Consecutive failed attempts (connect or join) before giving up; `None`: never.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

/// Configuration of a site. `Debug` does not print the API key.
#[derive(Clone)]
pub struct SiteConfig {
    /// The aggregator's URL: `http://host:port`, or `https://host:port` with [`Self::tls`].
    pub server: String,
    /// The site's id, as configured on the aggregator.
    pub site_id: String,
    /// The site's API key.
    pub api_key: String,
    /// TLS settings (required for `https`).
    pub tls: Option<ClientTls>,
    /// Training examples announced at join (0: unknown).
    pub num_examples: u64,
    /// Reconnection policy.
    pub backoff: Backoff,
    /// Timeout of a connection attempt (default 10 s).
    pub connect_timeout: Duration,
    /// Tree federations: the largest global forest the site accepts, in bytes (default
    /// 256 MiB; a parameter model's length is fixed by the trainer instead).
    pub max_model_bytes: u64,
}

impl std::fmt::Debug for SiteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteConfig")
            .field("server", &self.server)
            .field("site_id", &self.site_id)
            .field("api_key", &"<redacted>")
            .field("tls", &self.tls)
            .field("num_examples", &self.num_examples)
            .field("backoff", &self.backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_model_bytes", &self.max_model_bytes)
            .finish()
    }
}

impl SiteConfig {
    /// A plaintext site with the default backoff.
    pub fn new(
        server: impl Into<String>,
        site_id: impl Into<String>,
        api_key: impl Into<String>,
    ) -> Self {
        Self {
            server: server.into(),
            site_id: site_id.into(),
            api_key: api_key.into(),
            tls: None,
            num_examples: 0,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            max_model_bytes: 256 << 20,
        }
    }
}

/// What a site did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteSummary {
    /// Updates accepted by the aggregator.
    pub rounds_trained: u32,
    /// Evaluations accepted by the aggregator.
    pub evaluations: u32,
    /// Successful joins (more than 1: the site reconnected).
    pub joins: u32,
    /// Last round whose update was accepted.
    pub last_round: u32,
    /// Updates the aggregator refused (e.g. late, after the round's deadline).
    pub rejected_updates: u32,
    /// Tasks the trainer failed on.
    pub train_failures: u32,
    /// Bytes of update and evaluation messages sent.
    pub bytes_sent: u64,
    /// Bytes of task messages received.
    pub bytes_received: u64,
    /// True when the aggregator ended the federation (false: cancelled).
    pub finished: bool,
}

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone)]
struct BearerAuth(MetadataValue<Ascii>);

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(crate::auth::AUTHORIZATION, self.0.clone());
        Ok(request)
    }
}

type Client = FederationClient<InterceptedService<Channel, BearerAuth>>;

/// How a connection ended.
enum Ended {
    /// The aggregator said the federation finished.
    Finished,
    /// The connection or session was lost; reconnect.
    Lost(String),
}

/// A failure that ends the site.
enum Fatal {
    Refused(Status),
    Panicked(String),
}

/// Runs a site until the federation finishes, `cancel` completes, or the aggregator refuses
/// it for good. On `cancel` the site leaves the federation (best effort).
///
/// # Errors
/// [`SiteError::Config`] for an unusable URL or key, [`SiteError::Refused`] when the
/// aggregator refuses the credentials, the protocol version or the model size,
/// [`SiteError::GaveUp`] after [`Backoff::max_attempts`] failed attempts,
/// [`SiteError::TrainerPanicked`].
pub async fn run_site<F>(
    config: SiteConfig,
    trainer: Box<dyn LocalTrainer>,
    cancel: F,
) -> Result<SiteSummary, SiteError>
where
    F: Future<Output = ()> + Send,
{
    run(config, SiteModel::Params(trainer), cancel).await
}

/// Runs a site of a tree federation (see [`run_site`] and the [module documentation](self)).
///
/// # Errors
/// As [`run_site`]; the aggregator also refuses a site whose rows have another number of
/// features than the federation's, or a federation of parameters.
pub async fn run_tree_site<F>(
    config: SiteConfig,
    trainer: Box<dyn TreeTrainer>,
    cancel: F,
) -> Result<SiteSummary, SiteError>
where
    F: Future<Output = ()> + Send,
{
    run(config, SiteModel::Trees(trainer), cancel).await
}

/// What a site trains.
enum SiteModel {
    Params(Box<dyn LocalTrainer>),
    Trees(Box<dyn TreeTrainer>),
}

async fn run<F>(config: SiteConfig, trainer: SiteModel, cancel: F) -> Result<SiteSummary, SiteError>
where
    F: Future<Output = ()> + Send,
{
    let auth = MetadataValue::try_from(format!("Bearer {}", config.api_key))
        .map_err(|_| SiteError::Config("the API key is not valid in metadata".into()))?;
    let mut endpoint = Endpoint::from_shared(config.server.clone())
        .map_err(|e| SiteError::Config(format!("server URL {:?}: {e}", config.server)))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Some(tls) = &config.tls {
        endpoint = endpoint
            .tls_config(tls.to_tonic())
            .map_err(|e| SiteError::Config(format!("TLS: {e}")))?;
    }
    let mut site = Site {
        config,
        endpoint,
        auth: BearerAuth(auth),
        trainer: Some(trainer),
        summary: SiteSummary::default(),
        session: None,
    };
    let outcome = {
        let run = site.run();
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => Some(r),
            () = cancel => None,
        }
    };
    match outcome {
        Some(Ok(())) => Ok(site.summary),
        Some(Err(e)) => Err(e),
        None => {
            tracing::info!(site_id = %site.config.site_id, "site cancelled");
            site.leave().await;
            Ok(site.summary)
        }
    }
}

struct Site {
    config: SiteConfig,
    endpoint: Endpoint,
    auth: BearerAuth,
    trainer: Option<SiteModel>,
    summary: SiteSummary,
    session: Option<(Client, String)>,
}

/// Whether the aggregator's answer to a join means retrying cannot help.
fn is_fatal(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::InvalidArgument
    )
}

impl Site {
    async fn run(&mut self) -> Result<(), SiteError> {
        let backoff = self.config.backoff.clone();
        let mut delay = backoff.initial;
        let mut failures = 0u32;
        loop {
            let joins_before = self.summary.joins;
            let last = match self.connect_and_serve().await {
                Ok(Ended::Finished) => {
                    self.summary.finished = true;
                    return Ok(());
                }
                Ok(Ended::Lost(reason)) => reason,
                Err(Fatal::Refused(status)) => {
                    tracing::error!(site_id = %self.config.site_id, "refused: {}", status.message());
                    return Err(SiteError::Refused(status));
                }
                Err(Fatal::Panicked(m)) => return Err(SiteError::TrainerPanicked(m)),
            };
            self.session = None;
            if self.summary.joins > joins_before {
                // The connection worked for a while: start the backoff over.
                failures = 0;
                delay = backoff.initial;
            }
            failures += 1;
            if let Some(max) = backoff.max_attempts
                && failures >= max
            {
                return Err(SiteError::GaveUp {
                    attempts: failures,
                    last,
                });
            }
            let jitter = rand::rng().random_range(0.8..1.2);
            let wait = delay.mul_f64(jitter);
            tracing::warn!(site_id = %self.config.site_id, ?wait, "connection lost ({last}); reconnecting");
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(backoff.max);
        }
    }

    /// One connection: join, then serve tasks until the stream ends.
    async fn connect_and_serve(&mut self) -> Result<Ended, Fatal> {
        let channel = match self.endpoint.connect().await {
            Ok(c) => c,
            Err(e) => return Ok(Ended::Lost(format!("connect: {e}"))),
        };
        let mut client = FederationClient::with_interceptor(channel.clone(), self.auth.clone());
        let (num_params, kind, n_features) = match self.trainer.as_ref() {
            Some(SiteModel::Params(t)) => (t.num_params(), ModelKind::Parameters, 0),
            Some(SiteModel::Trees(t)) => (0, ModelKind::Trees, t.n_features()),
            None => (0, ModelKind::Parameters, 0),
        };
        let Ok(n_features) = u32::try_from(n_features) else {
            return Err(Fatal::Refused(Status::invalid_argument(format!(
                "{n_features} features do not fit the protocol"
            ))));
        };
        let reply = match client
            .join(JoinRequest {
                protocol_version: Some(our_version()),
                site_id: self.config.site_id.clone(),
                num_examples: self.config.num_examples,
                num_params: num_params as u64,
                model_kind: kind as i32,
                n_features,
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.metadata().contains_key(crate::FINISHED_METADATA) => {
                tracing::info!(site_id = %self.config.site_id, "the federation has finished");
                return Ok(Ended::Finished);
            }
            Err(s) if is_fatal(&s) => return Err(Fatal::Refused(s)),
            Err(s) => return Ok(Ended::Lost(format!("join: {s}"))),
        };
        let chunk_bytes = (reply.chunk_bytes as usize).clamp(1, MAX_CHUNK_BYTES);
        let chunk_bytes = if reply.chunk_bytes == 0 {
            DEFAULT_CHUNK_BYTES
        } else {
            chunk_bytes
        };
        let limit = message_limit(chunk_bytes);
        let mut client = FederationClient::with_interceptor(channel, self.auth.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.summary.joins += 1;
        let session = reply.session;
        self.session = Some((client.clone(), session.clone()));
        tracing::info!(site_id = %self.config.site_id, resumed = reply.resumed, round = reply.round, "joined");

        let mut stream = match client
            .tasks(TasksRequest {
                protocol_version: Some(our_version()),
                session: session.clone(),
            })
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) => return Ok(Ended::Lost(format!("tasks: {s}"))),
        };
        if kind == ModelKind::Trees
            && ModelKind::try_from(reply.model_kind).unwrap_or(ModelKind::Unspecified)
                != ModelKind::Trees
        {
            return Err(Fatal::Refused(Status::failed_precondition(
                "the aggregator does not run a tree federation",
            )));
        }
        let expected = (num_params * BYTES_PER_PARAM) as u64;
        let mut assembly: Option<(TaskHeader, Reassembler)> = None;
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(Ended::Lost("the task stream ended".into())),
                Err(s) => return Ok(Ended::Lost(format!("task stream: {s}"))),
            };
            self.summary.bytes_received += msg.encoded_len() as u64;
            match msg.kind {
                Some(task_message::Kind::Header(h)) => {
                    if assembly.is_some() {
                        tracing::debug!("a new task replaces an incomplete one");
                    }
                    let fits = match kind {
                        ModelKind::Trees => h.model_bytes <= self.config.max_model_bytes,
                        _ => h.model_bytes == expected,
                    };
                    if !fits {
                        tracing::warn!(
                            round = h.round,
                            "task with a model of {} bytes, expected {}; ignored",
                            h.model_bytes,
                            match kind {
                                ModelKind::Trees =>
                                    format!("at most {}", self.config.max_model_bytes),
                                _ => expected.to_string(),
                            }
                        );
                        assembly = None;
                        continue;
                    }
                    let r = Reassembler::new(h.model_bytes, h.model_sha256.clone(), chunk_bytes);
                    if r.is_complete() {
                        // No model follows (a tree training task).
                        if let Some(ended) = self
                            .finish_task(&mut client, &session, h, r, chunk_bytes)
                            .await?
                        {
                            return Ok(ended);
                        }
                        assembly = None;
                        continue;
                    }
                    assembly = Some((h, r));
                }
                Some(task_message::Kind::Chunk(c)) => {
                    let Some((h, r)) = assembly.as_mut() else {
                        continue;
                    };
                    if c.round != h.round {
                        tracing::warn!(
                            round = h.round,
                            chunk_round = c.round,
                            "chunk of another round; task dropped"
                        );
                        assembly = None;
                        continue;
                    }
                    if let Err(e) = r.push(&c.data) {
                        tracing::warn!(round = h.round, "bad model chunk: {e}; task dropped");
                        assembly = None;
                        continue;
                    }
                    if r.is_complete()
                        && let Some((h, r)) = assembly.take()
                        && let Some(ended) = self
                            .finish_task(&mut client, &session, h, r, chunk_bytes)
                            .await?
                    {
                        return Ok(ended);
                    }
                }
                Some(task_message::Kind::Finished(f)) => {
                    tracing::info!(site_id = %self.config.site_id, reason = %f.reason, "federation finished");
                    self.leave().await;
                    return Ok(Ended::Finished);
                }
                None => {}
            }
        }
    }

    /// Verifies a complete model and runs its task.
    async fn finish_task(
        &mut self,
        client: &mut Client,
        session: &str,
        header: TaskHeader,
        assembly: Reassembler,
        chunk_bytes: usize,
    ) -> Result<Option<Ended>, Fatal> {
        let model = match assembly.finish_bytes() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(round = header.round, "model refused: {e}");
                return Ok(None);
            }
        };
        if matches!(self.trainer, Some(SiteModel::Trees(_))) {
            return self
                .handle_tree_task(client, session, header, model, chunk_bytes)
                .await;
        }
        match decode_params(&model) {
            Some(global) => {
                self.handle_task(client, session, header, global, chunk_bytes)
                    .await
            }
            None => {
                tracing::warn!(
                    round = header.round,
                    "model refused: not whole f32 parameters"
                );
                Ok(None)
            }
        }
    }

    /// Runs one task of a tree federation; `Some(Lost)` when the connection or session
    /// broke meanwhile.
    async fn handle_tree_task(
        &mut self,
        client: &mut Client,
        session: &str,
        header: TaskHeader,
        global: Vec<u8>,
        chunk_bytes: usize,
    ) -> Result<Option<Ended>, Fatal> {
        let round = header.round;
        match TaskKind::try_from(header.kind) {
            Ok(TaskKind::Train) => {
                let Some(tp) = header.tree_plan else {
                    tracing::warn!(round, "tree training task without a plan; ignored");
                    return Ok(None);
                };
                let plan = TreePlan {
                    round,
                    n_trees: tp.n_trees as usize,
                    max_samples: tp.max_samples as usize,
                    seed: tp.seed,
                };
                let wanted = tp.format_version;
                let result = self
                    .blocking(move |m| match m {
                        SiteModel::Trees(t) => {
                            let version = t.format_version();
                            if version != wanted {
                                return Err(format!(
                                    "the aggregator reads tree format version {wanted}, this site writes version {version}"
                                ));
                            }
                            t.grow(&plan).map_err(|e| e.to_string())
                        }
                        SiteModel::Params(_) => Err("not a tree site".into()),
                    })
                    .await?;
                let c = match result {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(round, "growing trees failed: {e}");
                        self.summary.train_failures += 1;
                        return Ok(None);
                    }
                };
                let (Ok(n_trees), Ok(n_features)) = (
                    u32::try_from(c.n_trees),
                    u32::try_from(match &self.trainer {
                        Some(SiteModel::Trees(t)) => t.n_features(),
                        _ => 0,
                    }),
                ) else {
                    tracing::error!(round, "the contribution's counts do not fit the protocol");
                    self.summary.train_failures += 1;
                    return Ok(None);
                };
                let header = UpdateHeader {
                    protocol_version: Some(our_version()),
                    session: session.to_owned(),
                    round,
                    num_examples: c.num_examples,
                    metrics: c.metrics,
                    update_bytes: c.trees.len() as u64,
                    update_sha256: sha256(&c.trees),
                    norm_before_clip: 0.0,
                    model_kind: ModelKind::Trees as i32,
                    trees: Some(TreeContribution {
                        format_version: tp.format_version,
                        n_trees,
                        n_features,
                    }),
                };
                self.upload(client, header, c.trees.into(), chunk_bytes)
                    .await
            }
            Ok(TaskKind::Evaluate) => {
                let result = self
                    .blocking(move |m| match m {
                        SiteModel::Trees(t) => t.evaluate(&global).map_err(|e| e.to_string()),
                        SiteModel::Params(_) => Err("not a tree site".into()),
                    })
                    .await?;
                self.submit_evaluation(client, session, round, result).await
            }
            _ => {
                tracing::warn!(round, kind = header.kind, "unknown task kind; ignored");
                Ok(None)
            }
        }
    }

    /// Uploads an update (header, then the payload in chunks).
    async fn upload(
        &mut self,
        client: &mut Client,
        header: UpdateHeader,
        payload: bytes::Bytes,
        chunk_bytes: usize,
    ) -> Result<Option<Ended>, Fatal> {
        let round = header.round;
        let header_msg = UpdateChunk {
            kind: Some(update_chunk::Kind::Header(header)),
        };
        let messages: Vec<UpdateChunk> = std::iter::once(header_msg)
            .chain(
                split_chunks(&payload, chunk_bytes)
                    .into_iter()
                    .map(|c| UpdateChunk {
                        kind: Some(update_chunk::Kind::Data(c)),
                    }),
            )
            .collect();
        let sent: u64 = messages.iter().map(|m| m.encoded_len() as u64).sum();
        match client.submit_update(tokio_stream::iter(messages)).await {
            Ok(_) => {
                self.summary.bytes_sent += sent;
                self.summary.rounds_trained += 1;
                self.summary.last_round = round;
                tracing::debug!(round, sent, "update accepted");
                Ok(None)
            }
            Err(s) => self.submit_failed(round, s),
        }
    }

    /// Sends an evaluation's result.
    async fn submit_evaluation(
        &mut self,
        client: &mut Client,
        session: &str,
        round: u32,
        result: Result<(u64, BTreeMap<String, f64>), String>,
    ) -> Result<Option<Ended>, Fatal> {
        let (num_examples, metrics) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(round, "evaluation failed: {e}");
                self.summary.train_failures += 1;
                return Ok(None);
            }
        };
        let msg = EvaluationResult {
            protocol_version: Some(our_version()),
            session: session.to_owned(),
            round,
            num_examples,
            metrics,
        };
        let sent = msg.encoded_len() as u64;
        match client.submit_evaluation(msg).await {
            Ok(_) => {
                self.summary.bytes_sent += sent;
                self.summary.evaluations += 1;
                Ok(None)
            }
            Err(s) => self.submit_failed(round, s),
        }
    }

    /// Runs one task; `Some(Lost)` when the connection or session broke meanwhile.
    async fn handle_task(
        &mut self,
        client: &mut Client,
        session: &str,
        header: TaskHeader,
        global: Vec<f32>,
        chunk_bytes: usize,
    ) -> Result<Option<Ended>, Fatal> {
        let round = header.round;
        match TaskKind::try_from(header.kind) {
            Ok(TaskKind::Train) => {
                let plan = header.plan.unwrap_or_default();
                let local = LocalPlan {
                    round,
                    local_epochs: plan.local_epochs,
                    learning_rate: plan.learning_rate,
                    proximal_mu: plan.proximal_mu,
                    batch_size: plan.batch_size as usize,
                    seed: plan.seed,
                };
                let global = std::sync::Arc::new(global);
                let g = std::sync::Arc::clone(&global);
                let result = self
                    .blocking(move |m| match m {
                        SiteModel::Params(t) => t.fit(&g, &local).map_err(|e| e.to_string()),
                        SiteModel::Trees(_) => Err("not a parameter site".into()),
                    })
                    .await?;
                let result = match result {
                    Ok(r) if r.params.len() == global.len() => r,
                    Ok(r) => {
                        tracing::error!(
                            round,
                            "the trainer returned {} parameters, expected {}",
                            r.params.len(),
                            global.len()
                        );
                        self.summary.train_failures += 1;
                        return Ok(None);
                    }
                    Err(e) => {
                        tracing::error!(round, "training failed: {e}");
                        self.summary.train_failures += 1;
                        return Ok(None);
                    }
                };
                let mut delta: Vec<f32> = result
                    .params
                    .iter()
                    .zip(global.iter())
                    .map(|(n, g)| n - g)
                    .collect();
                let mut norm_before_clip = 0.0;
                if let Some(dp) = header.dp {
                    let mode = NoiseMode::try_from(dp.mode).unwrap_or(NoiseMode::None);
                    if matches!(mode, NoiseMode::Central | NoiseMode::Distributed) {
                        norm_before_clip = clip_l2(&mut delta, dp.clip);
                    }
                    if mode == NoiseMode::Distributed && dp.noise_std > 0.0 {
                        let noised = secure_rng().map_err(|e| e.to_string()).and_then(|mut rng| {
                            add_gaussian_noise(&mut delta, dp.noise_std, &mut rng)
                                .map_err(|e| e.to_string())
                        });
                        if let Err(e) = noised {
                            // Never send an update without its noise share.
                            tracing::error!(round, "cannot add the DP noise: {e}; update withheld");
                            self.summary.train_failures += 1;
                            return Ok(None);
                        }
                    }
                }
                let bytes = encode_params(&delta);
                let header = UpdateHeader {
                    protocol_version: Some(our_version()),
                    session: session.to_owned(),
                    round,
                    num_examples: result.num_examples,
                    metrics: result.metrics,
                    update_bytes: bytes.len() as u64,
                    update_sha256: sha256(&bytes),
                    norm_before_clip,
                    model_kind: ModelKind::Parameters as i32,
                    trees: None,
                };
                self.upload(client, header, bytes, chunk_bytes).await
            }
            Ok(TaskKind::Evaluate) => {
                let result = self
                    .blocking(move |m| match m {
                        SiteModel::Params(t) => t.evaluate(&global).map_err(|e| e.to_string()),
                        SiteModel::Trees(_) => Err("not a parameter site".into()),
                    })
                    .await?;
                self.submit_evaluation(client, session, round, result).await
            }
            _ => {
                tracing::warn!(round, kind = header.kind, "unknown task kind; ignored");
                Ok(None)
            }
        }
    }

    fn submit_failed(&mut self, round: u32, status: Status) -> Result<Option<Ended>, Fatal> {
        match status.code() {
            Code::FailedPrecondition => {
                // Late or unexpected: the round went on without us.
                tracing::warn!(round, "result refused: {}", status.message());
                self.summary.rejected_updates += 1;
                Ok(None)
            }
            Code::InvalidArgument => {
                // The aggregator refused what we sent (e.g. a tree contribution that failed
                // its validation) and recorded why; the connection is fine, a reconnect
                // would not change the verdict.
                tracing::error!(round, "update rejected: {}", status.message());
                self.summary.rejected_updates += 1;
                Ok(None)
            }
            Code::Unauthenticated | Code::PermissionDenied => Err(Fatal::Refused(status)),
            _ => Ok(Some(Ended::Lost(format!("submit: {status}")))),
        }
    }

    /// Runs `f` on the trainer on a blocking thread.
    async fn blocking<T, F>(&mut self, f: F) -> Result<T, Fatal>
    where
        T: Send + 'static,
        F: FnOnce(&mut SiteModel) -> T + Send + 'static,
    {
        let Some(mut trainer) = self.trainer.take() else {
            return Err(Fatal::Panicked("the trainer was lost".into()));
        };
        let joined = tokio::task::spawn_blocking(move || {
            let out = f(&mut trainer);
            (trainer, out)
        })
        .await;
        match joined {
            Ok((trainer, out)) => {
                self.trainer = Some(trainer);
                Ok(out)
            }
            Err(e) => Err(Fatal::Panicked(e.to_string())),
        }
    }

    /// Leaves the federation, best effort.
    async fn leave(&mut self) {
        if let Some((mut client, session)) = self.session.take() {
            let leave = client.leave(LeaveRequest {
                protocol_version: Some(our_version()),
                session,
            });
            match tokio::time::timeout(Duration::from_secs(2), leave).await {
                Ok(Ok(_)) => tracing::debug!(site_id = %self.config.site_id, "left"),
                Ok(Err(s)) => tracing::debug!("leave: {s}"),
                Err(_) => tracing::debug!("leave timed out"),
            }
        }
    }
}
