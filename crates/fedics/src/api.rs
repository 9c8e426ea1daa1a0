//! Wiring of the API server (`fedics-server`) for `demo` and `serve`: options, secrets,
//! the metrics recorder, the first admin, and the server task.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fedics_pipeline::{Liveness, Stats};
use fedics_server::{
    AppState, AuthConfig, FacilityCounters, PipelineCounters, PipelineStatus, ServerConfig,
};
use fedics_store::{NewUser, Role, Store};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::oneshot;

/// API options shared by `demo` and `serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct ApiArgs {
    /// Address of the API, WebSocket, docs (/docs) and Prometheus metrics (/metrics).
    #[arg(long, default_value_t = crate::default_bind())]
    pub bind: SocketAddr,
    /// Serve without authentication (every caller is an admin). Refused unless --bind is
    /// a loopback address.
    #[arg(long)]
    pub no_auth: bool,
    /// File holding the JWT signing secret (at least 32 bytes). `serve` also reads
    /// FEDICS_JWT_SECRET; the demo keeps a generated one in its data dir.
    #[arg(long, env = "FEDICS_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Lifetime of issued tokens, seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
    /// Origin allowed by CORS (repeat for several), e.g. http://localhost:3000.
    #[arg(
        long = "cors-origin",
        env = "FEDICS_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Requests per second per caller (principal, else client IP); 0 turns the limit off.
    #[arg(long, default_value_t = 50)]
    pub rate_limit: u32,
    /// Burst above the rate limit.
    #[arg(long, default_value_t = 100)]
    pub rate_burst: u32,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    pub body_limit: usize,
    /// Longest a request may take, seconds (then 408).
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,
    /// Maximum ε of the federation (shown by /api/fl/privacy-metrics).
    #[arg(long)]
    pub max_epsilon: Option<f64>,
}

impl ApiArgs {
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            cors_origins: self.cors_origins.clone(),
            rate_limit_per_s: self.rate_limit,
            rate_limit_burst: self.rate_burst,
            body_limit: self.body_limit,
            request_timeout: Duration::from_secs(self.request_timeout.max(1)),
            privacy_budget: self.max_epsilon,
            ..ServerConfig::default()
        }
    }

    /// The authentication settings: `--no-auth` (loopback only), else a secret from
    /// `--jwt-secret-file`, `FEDICS_JWT_SECRET`, or (`generated_in`, the demo's data dir) a
    /// file generated there once.
    pub fn auth(&self, generated_in: Option<&Path>) -> Result<AuthConfig> {
        if self.no_auth {
            if !self.bind.ip().is_loopback() {
                bail!(
                    "--no-auth is only allowed on a loopback address (--bind {} is reachable from other hosts)",
                    self.bind
                );
            }
            tracing::warn!(
                "authentication is OFF (--no-auth): every caller on this host is an admin"
            );
            return AuthConfig::disabled().map_err(anyhow::Error::msg);
        }
        let secret = if let Some(f) = &self.jwt_secret_file {
            read_secret(f)?
        } else if let Ok(s) = std::env::var("FEDICS_JWT_SECRET") {
            s.trim().as_bytes().to_vec()
        } else if let Some(dir) = generated_in {
            generated_secret(&dir.join("jwt.secret"))?
        } else {
            bail!(
                "no JWT secret: set FEDICS_JWT_SECRET (at least 32 bytes) or pass --jwt-secret-file (or --no-auth on loopback for development)"
            );
        };
        let mut auth = AuthConfig::enabled(secret).map_err(anyhow::Error::msg)?;
        auth.token_ttl = Duration::from_secs(self.token_ttl.max(60));
        Ok(auth)
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let s = std::fs::read(path)
        .with_context(|| format!("reading the JWT secret {}", path.display()))?;
    let trimmed: Vec<u8> = s.trim_ascii().to_vec();
    Ok(trimmed)
}

/// A random secret kept in `path` (created once, readable by the owner only).
fn generated_secret(path: &Path) -> Result<Vec<u8>> {
    if path.exists() {
        return read_secret(path);
    }
    let secret = fedics_server::auth::random_hex(32);
    write_private(path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates the `admin` user when the store has no user yet: password from
/// FEDICS_ADMIN_PASSWORD, else generated and printed once.
pub async fn ensure_admin(store: &Store, auth: &AuthConfig) -> Result<()> {
    if auth.mode == fedics_server::AuthMode::Disabled || store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match std::env::var("FEDICS_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (fedics_server::auth::random_hex(12), true),
    };
    let hash = fedics_server::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
    store
        .create_user(&NewUser {
            username: "admin".into(),
            password_hash: hash,
            role: Role::Admin,
        })
        .await?;
    if generated {
        eprintln!(
            "\n  created user `admin` with password {password}\n  (shown once; change it with `fedics user add admin --role admin --password-stdin --db …`)\n"
        );
    } else {
        tracing::info!("created user `admin` with the password from FEDICS_ADMIN_PASSWORD");
    }
    Ok(())
}

/// Installs the Prometheus recorder (rendered at `/metrics`) and its upkeep task.
pub fn install_metrics() -> Result<PrometheusHandle> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let h = handle.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(5));
        loop {
            t.tick().await;
            h.run_upkeep();
        }
    });
    Ok(handle)
}

/// What `/ready` and `dashboard_update` know of the pipeline.
pub struct PipelineView {
    pub liveness: Liveness,
    pub stats: Arc<Stats>,
}

impl PipelineStatus for PipelineView {
    fn running(&self) -> bool {
        self.liveness.running()
    }

    fn snapshot(&self) -> PipelineCounters {
        counters(&self.stats)
    }
}

/// The pipeline's counters as the API shows them.
pub fn counters(stats: &Stats) -> PipelineCounters {
    let s = stats.snapshot();
    let f = stats.facilities.snapshot();
    let facility = |c: fedics_pipeline::FacilityCount| FacilityCounters {
        flows_in: c.flows_in,
        anomalies: c.anomalies,
    };
    PipelineCounters {
        flows_in: s.flows_in,
        flows_classified: s.flows_classified,
        anomalies: s.anomalies,
        attacks: s.attacks,
        join_deadline_expired: s.join_deadline_expired,
        alerts_low: s.alerts_low,
        alerts_medium: s.alerts_medium,
        alerts_high: s.alerts_high,
        alerts_critical: s.alerts_critical,
        incidents: s.incidents,
        predictions: s.predictions,
        rejected: s.rejected,
        persisted: s.persisted,
        store_errors: s.store_errors,
        facilities: f
            .facilities
            .into_iter()
            .map(|(id, c)| (id, facility(c)))
            .collect(),
        facilities_overflow: facility(f.overflow),
    }
}

/// A running API server; [`RunningApi::stop`] finishes in-flight requests and returns.
pub struct RunningApi {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningApi {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "API server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "API server task failed"),
            Err(_) => tracing::warn!("API server did not stop within 10 s"),
        }
    }
}

/// Binds `bind` and serves `state` there.
pub async fn start(bind: SocketAddr, state: AppState) -> Result<RunningApi> {
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!("binding the API to {bind} (is another process using it? pass --bind)")
    })?;
    let local = listener.local_addr()?;
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(fedics_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    tracing::info!(
        "API on http://{local}/api, docs at http://{local}/docs, metrics at http://{local}/metrics, WebSocket at ws://{local}/ws"
    );
    Ok(RunningApi { stop, task })
}

/// Loads the ATT&CK bundle for technique details, if one is configured.
pub fn bundle(path: Option<&Path>) -> Result<Option<Arc<fedics_intel::AttackBundle>>> {
    match path {
        None => Ok(None),
        Some(p) => Ok(Some(Arc::new(
            fedics_intel::AttackBundle::load(p)
                .with_context(|| format!("loading the ATT&CK bundle {}", p.display()))?,
        ))),
    }
}

/// The embedded dashboard, served at `/`.
pub fn web_ui() -> axum::Router {
    if !fedics_web::is_built() {
        tracing::warn!(
            "this binary was built without the web UI (npm was missing); / shows how to build it"
        );
    }
    fedics_web::router()
}
