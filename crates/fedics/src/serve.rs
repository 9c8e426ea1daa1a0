//! `fedics serve`: the API against a store given by URL (PostgreSQL in production), with the
//! embedded pipeline fed by the simulator when `--simulate` is given.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fedics_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use fedics_pipeline::Pipeline;
use fedics_sensors::{SimConfig, Simulator};
use fedics_store::{Retention, Store};

use crate::{DetectArgs, wiring};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Store URL: postgres://user@host:port/db, sqlite://path or a file path.
    #[arg(long, env = "FEDICS_DB")]
    pub db: String,
    #[command(flatten)]
    pub api: crate::api::ApiArgs,
    /// Run the embedded pipeline on simulated facilities, writing to this store.
    #[arg(long)]
    pub simulate: bool,
    /// Simulated flows per second (with --simulate), while the simulated clock is behind
    /// the wall clock.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of plant history before now (with --simulate): the simulated clock starts
    /// this long before the wall clock and runs at --rate until it reaches it, then in real
    /// time. No flow is ever stamped later than the wall clock.
    #[arg(long, default_value_t = 21_600.0)]
    pub history: f64,
    /// Simulated facilities (with --simulate).
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Days flow records are kept (alerts keep their flow ids). 0 keeps them forever.
    #[arg(long, default_value_t = 30)]
    pub retain_flows_days: u32,
    /// Days classifications are kept. 0 keeps them forever.
    #[arg(long, default_value_t = 30)]
    pub retain_classifications_days: u32,
    /// Days audit records are kept. 0 keeps them forever.
    #[arg(long, default_value_t = 365)]
    pub retain_audit_days: u32,
    /// Where the neural models are read from with --simulate (default: run without them).
    #[arg(long)]
    pub models: Option<PathBuf>,
    #[command(flatten)]
    pub detect: DetectArgs,
}

pub fn retention(flows: u32, classifications: u32, audit: u32) -> Retention {
    let days = |d: u32| (d > 0).then(|| chrono::Duration::days(i64::from(d)));
    Retention {
        flows: days(flows),
        classifications: days(classifications),
        audit: days(audit),
    }
}

/// Applies `r` now and then every hour, until the process ends.
pub fn spawn_retention(store: Store, r: Retention) {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(3600));
        loop {
            t.tick().await;
            match store.apply_retention(chrono::Utc::now(), &r).await {
                Ok(done) => tracing::info!(?done, "retention applied"),
                Err(e) => tracing::warn!(error = %e, "retention failed; retrying in an hour"),
            }
        }
    });
}

pub async fn run(a: ServeArgs) -> Result<()> {
    let store = Store::open(&a.db).await.context("opening the store")?;
    tracing::info!(engine = store.engine().as_str(), "store opened");
    let auth = a.api.auth(None)?;
    crate::api::ensure_admin(&store, &auth).await?;
    let metrics = crate::api::install_metrics()?;
    spawn_retention(
        store.clone(),
        retention(
            a.retain_flows_days,
            a.retain_classifications_days,
            a.retain_audit_days,
        ),
    );
    let bundle = crate::api::bundle(a.detect.attack_bundle.as_deref())?;
    let mut builder = fedics_server::AppState::builder(store.clone(), auth)
        .ui(crate::api::web_ui())
        .config(a.api.server_config())
        .bundle(bundle)
        .metrics(metrics);

    let pipeline = if a.simulate {
        let sim = Simulator::new(SimConfig {
            seed: a.seed,
            sites: a.sites.max(1),
            start: wiring::sim_start(chrono::Utc::now(), a.history)?,
            ..SimConfig::default()
        });
        let mut detect = a.detect.clone();
        detect.no_neural = detect.no_neural || a.models.is_none();
        let rules = wiring::rule_file(&detect, &sim.topology())?;
        let neural = match &a.models {
            Some(dir) if !detect.no_neural => Some(
                crate::neural::load_models(
                    dir,
                    detect.lstm_stride,
                    Duration::from_millis(detect.model_reload_ms.max(100)),
                )?
                .0,
            ),
            _ => None,
        };
        let components = wiring::components(&detect, rules, Some(store.clone()), neural)?;
        let p = Pipeline::start(
            EmbeddedBus::new(EmbeddedConfig::default()),
            wiring::pipeline_config(&detect),
            components,
        )?;
        builder = builder.pipeline(Arc::new(crate::api::PipelineView {
            liveness: p.liveness(),
            stats: p.stats().clone(),
        }));
        Some((p, sim))
    } else {
        None
    };
    let api = crate::api::start(a.api.bind, builder.build()).await?;

    let stop = crate::demo::shutdown_signal();
    tokio::pin!(stop);
    let deadline = a
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let until = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    match pipeline {
        Some((pipeline, mut sim)) => {
            let mut pacer = wiring::Pacer::new(a.rate);
            loop {
                let n = tokio::select! {
                    _ = &mut stop => break,
                    _ = &mut until => break,
                    n = pacer.tick() => n,
                };
                let batch: Vec<_> = sim.by_ref().take(n).collect();
                if let Some(wait) = wiring::ahead_of_wall_clock(&batch, chrono::Utc::now()) {
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = &mut until => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                if let Err(e) = pipeline.publish(&batch).await {
                    tracing::error!(error = %e, "publishing flows failed");
                    break;
                }
            }
            api.stop().await;
            let s = pipeline.shutdown(Duration::from_secs(30)).await;
            tracing::info!(flows = s.flows_in, incidents = s.incidents, "stopped");
        }
        None => {
            tokio::select! {
                _ = &mut stop => {},
                _ = &mut until => {},
            }
            api.stop().await;
        }
    }
    store.close().await;
    Ok(())
}
