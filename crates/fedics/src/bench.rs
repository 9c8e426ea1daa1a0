//! `fedics bench pipeline`: throughput and latency of the embedded pipeline.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fedics_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use fedics_pipeline::Pipeline;
use fedics_sensors::{SimConfig, Simulator};
use fedics_store::Store;
use serde_json::json;

use crate::DetectArgs;
use crate::wiring;

#[derive(clap::Args, Debug)]
pub struct BenchPipelineArgs {
    /// Flows to push.
    #[arg(long, default_value_t = 200_000)]
    pub flows: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Members of the detect consumer group.
    #[arg(long, default_value_t = 1)]
    pub detect_workers: usize,
    /// Print one JSON object (the only output on stdout).
    #[arg(long)]
    pub json: bool,
    /// Run without persistence (isolates the stages from SQLite).
    #[arg(long)]
    pub no_store: bool,
    #[command(flatten)]
    pub detect: DetectArgs,
}

pub async fn pipeline(a: BenchPipelineArgs) -> Result<()> {
    let gen_started = Instant::now();
    let sim = Simulator::new(SimConfig {
        seed: a.seed,
        sites: a.sites.max(1),
        ..SimConfig::default()
    });
    let topo = sim.topology();
    let flows: Vec<_> = sim.take(a.flows).collect();
    let gen_seconds = gen_started.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().context("temporary store directory")?;
    let store = Store::open(&dir.path().join("bench.db").display().to_string()).await?;
    let bus = EmbeddedBus::new(EmbeddedConfig::default());
    let rules = wiring::rule_file(&a.detect, &topo)?;
    let models_tmp = tempfile::tempdir()?;
    let (neural, _watchers) = if a.detect.no_neural {
        (None, None)
    } else {
        let dir = match &a.detect.models_dir {
            Some(d) => d.clone(),
            None => {
                let d = models_tmp.path().to_path_buf();
                let (seed, sites) = (a.seed, a.sites.max(1));
                let dd = d.clone();
                tokio::task::spawn_blocking(move || crate::neural::ensure_models(&dd, seed, sites))
                    .await??;
                d
            }
        };
        let (m, w) = crate::neural::load_models(
            &dir,
            a.detect.lstm_stride,
            Duration::from_millis(a.detect.model_reload_ms.max(100)),
        )?;
        (Some(m), Some(w))
    };
    let components = wiring::components(
        &a.detect,
        rules,
        (!a.no_store).then(|| store.clone()),
        neural,
    )?;
    let mut config = wiring::pipeline_config(&a.detect);
    config.detect_workers = a.detect_workers.max(1);
    let pipeline = Pipeline::start(bus, config, components)?;

    let started = Instant::now();
    // Notes when the last flow has been classified (the rest is persistence catching up).
    let watch = {
        let stats = pipeline.stats().clone();
        let n = flows.len() as u64;
        tokio::spawn(async move {
            loop {
                if stats.snapshot().flows_classified >= n {
                    return started.elapsed().as_secs_f64();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for chunk in flows.chunks(1024) {
        pipeline.publish(chunk).await?;
    }
    let published_s = started.elapsed().as_secs_f64();
    let drained = pipeline.drain(Duration::from_secs(600)).await;
    let seconds = started.elapsed().as_secs_f64();
    let classified_s = if watch.is_finished() {
        watch.await.ok()
    } else {
        watch.abort();
        None
    };
    let latency = pipeline.latency().percentiles();
    let stats = pipeline.shutdown(Duration::from_secs(10)).await;
    let alerts = store.count_alerts().await?;
    let doc = json!({
        "flows": flows.len(),
        "seconds": seconds,
        "published_s": published_s,
        "all_classified_s": classified_s,
        "flows_per_s": flows.len() as f64 / seconds,
        "latency_ms": latency.map(|(p50, p99)| json!({"p50": p50, "p99": p99})),
        "alerts": alerts,
        "attack_flows_classified": stats.attacks,
        "events_persisted": stats.persisted,
        "store": !a.no_store,
        "rejected": stats.rejected,
        "incidents": stats.incidents,
        "join_deadline_expired": stats.join_deadline_expired,
        "drained": drained,
        "generate_seconds": gen_seconds,
        "detect_workers": a.detect_workers.max(1),
        "sites": a.sites,
        "peak_rss_mb": wiring::peak_rss_mb(),
        "stage_busy_s": {
            "detect": stats.busy_detect_ns as f64 / 1e9,
            "classify": stats.busy_classify_ns as f64 / 1e9,
            "predict": stats.busy_predict_ns as f64 / 1e9,
            "persist": stats.busy_persist_ns as f64 / 1e9,
        },
    });
    if a.json {
        outln!("{doc}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    }
    store.close().await;
    Ok(())
}
