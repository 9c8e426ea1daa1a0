//! `fedics simulate`: flows as JSON Lines, with ground truth.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use fedics_sensors::{SimConfig, Simulator};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Number of flows to write.
    #[arg(long)]
    pub flows: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Number of facilities.
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Output file (JSON Lines); `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
    /// Live mode: write this many flows per second, timestamps starting now.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Benign traffic only.
    #[arg(long)]
    pub no_attacks: bool,
    /// Also write the campaign schedule (ground truth of stages) as JSON.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Simulated time of the first flow (RFC 3339). With the `sim_start` of a demo's
    /// `demo-state.json` and the same seed and sites, this reproduces what that demo saw.
    #[arg(long, value_parser = parse_time)]
    pub start: Option<DateTime<Utc>>,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    fedics_core::time::parse(s)
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-01-01T00:00:00Z: {e}"))
}

pub async fn run(a: SimulateArgs) -> Result<()> {
    let mut config = SimConfig {
        seed: a.seed,
        sites: a.sites.max(1),
        attacks: !a.no_attacks,
        ..SimConfig::default()
    };
    if let Some(start) = a.start {
        config.start = start;
    } else if a.rate.is_some() {
        config.start = Utc::now();
    }
    let mut sim = Simulator::new(config);
    if let Some(p) = &a.plan {
        let plans: Vec<_> = sim
            .campaigns()
            .into_iter()
            .take(a.sites.max(1) * 8)
            .collect();
        std::fs::write(p, serde_json::to_vec_pretty(&plans)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let to_stdout = a.out.as_os_str() == "-";
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(
            std::fs::File::create(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?,
        ))
    };
    let bar = if to_stdout {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(a.flows).with_style(
            ProgressStyle::with_template(
                "{spinner} simulating [{bar:40}] {pos}/{len} flows ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    };
    let started = Instant::now();
    let mut attacks = 0u64;
    for i in 0..a.flows {
        let Some(flow) = sim.next() else { break };
        if flow.ground_truth.as_ref().is_some_and(|g| !g.is_benign()) {
            attacks += 1;
        }
        serde_json::to_writer(&mut out, &flow)?;
        out.write_all(b"\n")?;
        if i % 1024 == 0 {
            bar.set_position(i);
        }
        if let Some(rate) = a.rate.filter(|r| *r > 0.0) {
            let due = started + Duration::from_secs_f64((i + 1) as f64 / rate);
            let now = Instant::now();
            if due > now {
                out.flush()?;
                tokio::time::sleep(due - now).await;
            }
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    tracing::info!(
        flows = a.flows,
        attack_flows = attacks,
        sim_seconds = sim.sim_seconds(),
        elapsed_s = started.elapsed().as_secs_f64(),
        "simulation written"
    );
    Ok(())
}
