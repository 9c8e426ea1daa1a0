//! `fedics demo`: simulator + every stage + embedded store in one process.
//!
//! The simulated clock of a new demo starts `--history` (6 h) before the wall clock and runs
//! at `--rate` until it reaches it, then in real time: flows wait until they have ended, so
//! no flow or alert is ever stamped in the future (the alerts' `time_range` filters mean
//! wall time).
//!
//! The data directory holds the SQLite store, the editable rule file and the demo's state
//! (seed, simulated start time, flows published). A restart on the same directory replays
//! the simulation from its start at full speed — rebuilding detector and predictor state —
//! and then continues live; replayed alerts carry the same ids, so the store merges them
//! instead of duplicating.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use fedics_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use fedics_pipeline::Pipeline;
use fedics_sensors::{SimConfig, Simulator};
use fedics_store::Store;
use serde::{Deserialize, Serialize};

use crate::{DetectArgs, wiring};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where the store, rule file and demo state live.
    #[arg(long, default_value = "fedics-data")]
    pub data_dir: PathBuf,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Number of simulated facilities.
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulated flows per second (all facilities together), while the simulated clock is
    /// behind the wall clock.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of plant history before now: a new demo's simulated clock starts this long
    /// before the wall clock and runs at --rate until it reaches the wall clock, then in
    /// real time. No flow (hence no alert) is ever stamped later than the wall clock.
    #[arg(long, default_value_t = 21_600.0)]
    pub history: f64,
    /// Seconds between summary lines.
    #[arg(long, default_value_t = 5.0)]
    pub summary_every: f64,
    /// Do not serve the API (nor metrics).
    #[arg(long)]
    pub no_http: bool,
    #[command(flatten)]
    pub api: crate::api::ApiArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
    #[command(flatten)]
    pub fl: crate::federate::FederationArgs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DemoState {
    seed: u64,
    sites: usize,
    sim_start: DateTime<Utc>,
    flows_published: u64,
}

impl DemoState {
    fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
                format!("reading demo state {}", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading demo state {}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("writing demo state {}", path.display()))
    }
}

pub async fn run(a: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating data dir {}", a.data_dir.display()))?;
    let state_path = a.data_dir.join("demo-state.json");
    let mut state = match DemoState::load(&state_path)? {
        Some(s) if s.seed == a.seed && s.sites == a.sites => {
            tracing::info!(flows = s.flows_published, since = %s.sim_start, "resuming: replaying the previous run's flows, then continuing live");
            s
        }
        Some(s) => bail!(
            "data dir {} holds a demo with seed {} and {} sites; run with --seed {} --sites {} or use another --data-dir",
            a.data_dir.display(),
            s.seed,
            s.sites,
            s.seed,
            s.sites
        ),
        None => DemoState {
            seed: a.seed,
            sites: a.sites,
            sim_start: wiring::sim_start(Utc::now(), a.history)?,
            flows_published: 0,
        },
    };
    state.save(&state_path)?;

    let sim = Simulator::new(SimConfig {
        seed: a.seed,
        sites: a.sites.max(1),
        start: state.sim_start,
        ..SimConfig::default()
    });
    let topo = sim.topology();
    let rules_path = a.data_dir.join("rules.toml");
    let mut detect = a.detect.clone();
    if detect.attack_bundle.is_none() {
        // A bundle copied into the data dir (with MITRE's licence beside it) is picked up.
        detect.attack_bundle = ["ics-attack.json.gz", "ics-attack.json"]
            .iter()
            .map(|n| a.data_dir.join(n))
            .find(|p| p.is_file());
    }
    if let Some(bundle) = &detect.attack_bundle {
        let licence = bundle.with_file_name("LICENSE-ATTACK.txt");
        if !licence.is_file() {
            tracing::warn!(bundle = %bundle.display(), "MITRE's ATT&CK licence (LICENSE-ATTACK.txt) is not next to the bundle; it must travel with every copy");
        }
    }
    if detect.rules.is_none() {
        if !rules_path.exists() {
            std::fs::write(&rules_path, wiring::default_rules_text(&topo))
                .with_context(|| format!("writing {}", rules_path.display()))?;
        }
        detect.rules = Some(rules_path.clone());
    }
    let rules = wiring::rule_file(&detect, &topo)?;
    tracing::info!(path = %detect.rules.as_deref().unwrap_or(&rules_path).display(), "rules loaded (edit the file and restart to change them)");

    let db = a.data_dir.join("fedics.db");
    let store = Store::open(&db.display().to_string())
        .await
        .context("opening the store")?;
    let stored_before = store.count_alerts().await?;
    let http = if a.no_http {
        None
    } else {
        let auth = a.api.auth(Some(&a.data_dir))?;
        crate::api::ensure_admin(&store, &auth).await?;
        Some((auth, crate::api::install_metrics()?))
    };

    let models_dir = detect
        .models_dir
        .clone()
        .unwrap_or_else(|| a.data_dir.join("models"));
    let (neural, _watchers) = if detect.no_neural {
        (None, None)
    } else {
        let dir = models_dir.clone();
        let (seed, sites) = (a.seed, a.sites.max(1));
        let d = dir.clone();
        tokio::task::spawn_blocking(move || crate::neural::ensure_models(&d, seed, sites))
            .await??;
        let (m, w) = crate::neural::load_models(
            &dir,
            detect.lstm_stride,
            Duration::from_millis(detect.model_reload_ms.max(100)),
        )?;
        tracing::info!(dir = %dir.display(), "neural detectors on (write a new model file there to replace one without a restart)");
        (Some(m), Some(w))
    };
    let bus = EmbeddedBus::new(EmbeddedConfig::default());
    let components = wiring::components(&detect, rules, Some(store.clone()), neural)?;
    let pipeline = Pipeline::start(bus, wiring::pipeline_config(&detect), components)?;
    let federation = if a.fl.no_federation || detect.no_neural {
        None
    } else {
        let ctx = crate::federate::FederationContext {
            store: store.clone(),
            bus: pipeline.bus().clone(),
            models_dir: models_dir.clone(),
            seed: a.seed,
            sites: a.sites.max(1),
        };
        Some(crate::federate::Federation::start(ctx, &a.fl).await?)
    };
    let api = match http {
        None => None,
        Some((auth, metrics)) => {
            let mut config = a.api.server_config();
            if federation.is_some() && a.fl.fl_dp_noise > 0.0 {
                config.privacy_budget = config.privacy_budget.or(Some(a.fl.fl_max_epsilon));
            }
            let mut builder =
                fedics_server::AppState::builder(store.clone(), auth).ui(crate::api::web_ui());
            if let Some(f) = &federation {
                builder = builder.fl_trigger(f.trigger());
            }
            let state = builder
                .config(config)
                .bundle(crate::api::bundle(detect.attack_bundle.as_deref())?)
                .pipeline(std::sync::Arc::new(crate::api::PipelineView {
                    liveness: pipeline.liveness(),
                    stats: pipeline.stats().clone(),
                }))
                .metrics(metrics)
                .build();
            Some(crate::api::start(a.api.bind, state).await?)
        }
    };
    tracing::info!(sites = a.sites, seed = a.seed, rate = a.rate, data_dir = %a.data_dir.display(), stored_alerts = stored_before, "demo running; Ctrl-C stops it cleanly");

    let started = Instant::now();
    let deadline = a
        .duration
        .map(|d| started + Duration::from_secs_f64(d.max(0.0)));
    let replay = state.flows_published;
    let mut sim = sim;
    let mut published: u64 = 0;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut pacer = wiring::Pacer::new(a.rate);
    let mut next_summary = started + Duration::from_secs_f64(a.summary_every.max(0.5));
    let mut last = (Instant::now(), 0u64);
    let mut warned_ahead = false;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let n = if published < replay {
            (replay - published).min(4096) as usize
        } else {
            tokio::select! {
                _ = &mut stop => break,
                n = pacer.tick() => n,
            }
        };
        let batch: Vec<_> = sim.by_ref().take(n).collect();
        // The simulated clock never passes the wall clock: wait until the batch's last flow
        // has ended.
        if let Some(wait) = wiring::ahead_of_wall_clock(&batch, Utc::now()) {
            if wait > Duration::from_secs(60) && !warned_ahead {
                warned_ahead = true;
                tracing::warn!(
                    ahead_s = wait.as_secs(),
                    "the simulated clock of this data dir is ahead of the wall clock (a demo of an earlier version?): flows wait until their time (use a new --data-dir to start now)"
                );
            }
            let until = tokio::time::Instant::now() + wait;
            let until = deadline.map_or(until, |d| until.min(tokio::time::Instant::from_std(d)));
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep_until(until) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        if let Err(e) = pipeline.publish(&batch).await {
            tracing::error!(error = %e, "publishing flows failed");
            break;
        }
        published += batch.len() as u64;
        if published < replay {
            // Still replaying: let Ctrl-C through.
            if futures_ready(&mut stop).await {
                break;
            }
        }
        if Instant::now() >= next_summary {
            next_summary += Duration::from_secs_f64(a.summary_every.max(0.5));
            let s = pipeline.stats().snapshot();
            let stored = store.count_alerts().await.unwrap_or(0);
            let dt = last.0.elapsed().as_secs_f64().max(1e-9);
            let rate = (s.flows_in - last.1) as f64 / dt;
            last = (Instant::now(), s.flows_in);
            tracing::info!(
                "flows/s {:>7.0} | flows {} | anomalies {} | attack flows {} | incidents crit {} high {} med {} low {} | predictions {} | rejected {} | stored alerts {}{}",
                rate,
                s.flows_in,
                s.anomalies,
                s.attacks,
                s.alerts_critical,
                s.alerts_high,
                s.alerts_medium,
                s.alerts_low,
                s.predictions,
                s.rejected,
                stored,
                if published < replay {
                    " | replaying"
                } else {
                    ""
                }
            );
            state.flows_published = state.flows_published.max(published);
            if let Err(e) = state.save(&state_path) {
                tracing::warn!(error = %e, "could not save demo state");
            }
        }
    }
    tracing::info!("stopping: draining in-flight work");
    if let Some(api) = api {
        api.stop().await;
    }
    if let Some(f) = federation {
        f.stop().await;
    }
    let s = pipeline.shutdown(Duration::from_secs(30)).await;
    state.flows_published = state.flows_published.max(published);
    state.save(&state_path)?;
    let stored = store.count_alerts().await?;
    tracing::info!(
        flows = s.flows_in,
        attack_flows = s.attacks,
        incidents = s.incidents,
        critical = s.alerts_critical,
        high = s.alerts_high,
        medium = s.alerts_medium,
        low = s.alerts_low,
        rejected = s.rejected,
        stored_alerts = stored,
        "demo stopped"
    );
    store.close().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Whether `fut` is already complete, without waiting.
async fn futures_ready<F: std::future::Future<Output = ()> + Unpin>(fut: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = fut => true,
        _ = std::future::ready(()) => false,
    }
}
