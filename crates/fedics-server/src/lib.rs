//! # fedics-server
//!
//! The API a SOC uses: the seeds' REST paths and JSON shapes (`/api/alerts`, `/api/fl/*`,
//! `/api/predictions`, `/api/mitre/*`), their WebSocket protocol on `/ws`, liveness and
//! readiness, Prometheus metrics, and an OpenAPI 3.1 document generated from the handlers
//! (served with Swagger UI at `/docs`, embedded, no CDN).
//!
//! Everything it serves comes from the [`fedics_store::Store`] the pipeline writes to
//! (SQLite or PostgreSQL); live messages come from the store's change feed, announced only
//! after a commit, so a WebSocket client never hears of an alert it cannot then fetch.
//!
//! ## Security
//!
//! * Callers authenticate with a JWT bearer token (HS256 only, from `POST /api/auth/login`
//!   with an argon2id-hashed password) or an API key (`X-API-Key: fedics_<prefix>_<secret>`,
//!   stored as a SHA-256, compared in constant time). Roles: `viewer` (read), `analyst`
//!   (read, alert status, prediction validation, create alerts/predictions), `admin`
//!   (everything: federation control, audit log).
//! * Every state-changing request is written to the audit log (who, what, when, outcome),
//!   with secrets redacted.
//! * Per-caller rate limit (by principal, else by client IP), CORS allowlist, body size
//!   limit, request timeout; validation errors are 422 with the offending field named
//!   (FastAPI's shape, which the seeds' dashboard understands); internal errors are logged
//!   and answered with a generic message.
//! * [`AuthMode::Disabled`] exists for loopback development only; the binary refuses it on
//!   any other address.

mod audit;
pub mod auth;
mod error;
mod limits;
mod openapi;
mod params;
mod routes;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use fedics_intel::AttackBundle;
use fedics_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

pub use auth::{AuthConfig, AuthMode, Principal, PrincipalKind};
pub use error::ApiError;
pub use openapi::openapi_document;
pub use routes::pipeline::{
    FacilityCounters, HISTORY_MAX, PipelineCounters, PipelineHistory, PipelineSample,
};
pub use ws::Hub;

/// What the server knows of the pipeline running beside it (if any).
pub trait PipelineStatus: Send + Sync {
    /// Whether every stage is running.
    fn running(&self) -> bool;
    /// Live counters (flows in, anomalies, alerts…, per facility), sampled for
    /// `dashboard_update` messages and `GET /api/pipeline/counters`.
    fn snapshot(&self) -> PipelineCounters;
}

/// Starts a federated-learning round on request (`POST /api/fl/rounds/trigger`). Provided
/// by the process that runs the aggregator; without one the endpoint answers 503.
pub trait FlTrigger: Send + Sync {
    /// Starts a round; returns its row id in the store, or why it cannot start.
    fn trigger(&self) -> futures_util::future::BoxFuture<'_, Result<i64, String>>;
}

/// Limits and policies of one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Origins allowed by CORS (exact matches, e.g. `http://localhost:3000`). Empty: none.
    pub cors_origins: Vec<String>,
    /// Requests per second per caller (principal, else client IP); 0 disables the limit.
    pub rate_limit_per_s: u32,
    /// Burst allowed above the rate.
    pub rate_limit_burst: u32,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Longest a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Messages queued per WebSocket connection before it is closed as too slow.
    pub ws_queue: usize,
    /// Interval of `dashboard_update` messages.
    pub dashboard_every: Duration,
    /// The configured ε budget of the federation, shown by `/api/fl/privacy-metrics`.
    pub privacy_budget: Option<f64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            rate_limit_per_s: 50,
            rate_limit_burst: 100,
            body_limit: 256 * 1024,
            request_timeout: Duration::from_secs(30),
            ws_queue: 256,
            dashboard_every: Duration::from_secs(5),
            privacy_budget: None,
        }
    }
}

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub auth: AuthConfig,
    pub config: ServerConfig,
    pub bundle: Option<Arc<AttackBundle>>,
    pub pipeline: Option<Arc<dyn PipelineStatus>>,
    pub fl_trigger: Option<Arc<dyn FlTrigger>>,
    pub metrics: Option<PrometheusHandle>,
    pub ui: Option<Router>,
    pub hub: Hub,
    pub limiter: limits::Limiter,
}

/// Builder of an [`AppState`].
pub struct AppStateBuilder {
    store: Store,
    auth: AuthConfig,
    config: ServerConfig,
    bundle: Option<Arc<AttackBundle>>,
    pipeline: Option<Arc<dyn PipelineStatus>>,
    fl_trigger: Option<Arc<dyn FlTrigger>>,
    metrics: Option<PrometheusHandle>,
    ui: Option<Router>,
}

impl AppStateBuilder {
    /// A router for every path the API does not serve (the web UI), outside the API's
    /// authentication, audit and rate limits.
    pub fn ui(mut self, ui: Router) -> Self {
        self.ui = Some(ui);
        self
    }
    pub fn config(mut self, c: ServerConfig) -> Self {
        self.config = c;
        self
    }
    /// The ATT&CK for ICS bundle, for technique descriptions, detections and mitigations.
    pub fn bundle(mut self, b: Option<Arc<AttackBundle>>) -> Self {
        self.bundle = b;
        self
    }
    pub fn pipeline(mut self, p: Arc<dyn PipelineStatus>) -> Self {
        self.pipeline = Some(p);
        self
    }
    pub fn fl_trigger(mut self, t: Arc<dyn FlTrigger>) -> Self {
        self.fl_trigger = Some(t);
        self
    }
    /// The Prometheus recorder's handle, rendered at `/metrics`.
    pub fn metrics(mut self, h: PrometheusHandle) -> Self {
        self.metrics = Some(h);
        self
    }

    /// Builds the state and starts the WebSocket hub (it follows the store's change feed;
    /// must be called inside a Tokio runtime).
    pub fn build(self) -> AppState {
        let hub = Hub::start(
            self.store.clone(),
            self.config.ws_queue,
            self.config.dashboard_every,
            self.pipeline.clone(),
        );
        let limiter =
            limits::Limiter::new(self.config.rate_limit_per_s, self.config.rate_limit_burst);
        AppState {
            inner: Arc::new(Inner {
                store: self.store,
                auth: self.auth,
                config: self.config,
                bundle: self.bundle,
                pipeline: self.pipeline,
                fl_trigger: self.fl_trigger,
                metrics: self.metrics,
                ui: self.ui,
                hub,
                limiter,
            }),
        }
    }
}

impl AppState {
    pub fn builder(store: Store, auth: AuthConfig) -> AppStateBuilder {
        AppStateBuilder {
            store,
            auth,
            config: ServerConfig::default(),
            bundle: None,
            pipeline: None,
            fl_trigger: None,
            metrics: None,
            ui: None,
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn auth(&self) -> &AuthConfig {
        &self.inner.auth
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }
}

/// The whole application: API routes, `/ws`, `/health`, `/ready`, `/metrics`,
/// `/openapi.json`, `/docs`, with the security layers.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `app` on `listener` until `shutdown` resolves (then finishes in-flight requests).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
