//! `fedics`: the one binary. It parses the command line and wires the crates together;
//! everything it runs lives in the library crates.

/// `println!` for command output that ends the process quietly (exit 0) when stdout is
/// closed early (`fedics openapi | head`), as Unix tools do, and reports other write errors.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(anyhow::Error::from(e).context("writing to stdout"));
        }
    }};
}

mod admin;
mod api;
mod bench;
mod bench_models;
mod demo;
mod federate;
mod fl;
mod fl_net;
mod fl_record;
mod models;
mod neural;
mod serve;
mod simulate;
mod wiring;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// mimalloc: the pipeline allocates many short-lived buffers per flow; glibc's malloc
/// showed up at ~15% of the pipeline benchmark's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fedics",
    version,
    about = "Federated, privacy-preserving attack detection for industrial control systems"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole product in one process: simulated facilities, every pipeline stage,
    /// an embedded SQLite store, the API, WebSocket, docs and metrics on --bind.
    Demo(demo::DemoArgs),
    /// Serve the API (and, with --simulate, the pipeline) against a store given by URL,
    /// e.g. PostgreSQL.
    Serve(serve::ServeArgs),
    /// Manage user accounts (people: JWT login).
    User {
        #[command(subcommand)]
        what: admin::UserCommand,
    },
    /// Manage API keys (machines: sensors, sites).
    Apikey {
        #[command(subcommand)]
        what: admin::ApiKeyCommand,
    },
    /// Print the OpenAPI 3.1 document of the API.
    Openapi,
    /// Federated learning.
    Fl {
        #[command(subcommand)]
        what: fl::FlCommand,
    },
    /// Differential privacy: the accountant.
    Dp {
        #[command(subcommand)]
        what: DpCommand,
    },
    /// Write simulated plant flows (with ground truth) as JSON Lines.
    Simulate(simulate::SimulateArgs),
    /// Train a model (iforest, ae, lstm-ae, mlp) on a dataset and write its model file.
    Train(models::TrainArgs),
    /// Train on one file, evaluate on another, print one JSON object of figures.
    Eval(models::EvalArgs),
    /// Benchmarks that print one JSON document.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum DpCommand {
    /// (ε, δ) of T steps of the Poisson-subsampled Gaussian mechanism (Rényi-DP
    /// accountant, add-or-remove-one adjacency); prints {"epsilon", "order", …}.
    Epsilon {
        /// Sampling rate q (fraction of sites, or of examples, per step), 0..=1.
        #[arg(long)]
        sampling_rate: f64,
        /// Noise multiplier σ (noise std / clipping norm).
        #[arg(long)]
        noise_multiplier: f64,
        /// Number of steps (rounds) composed.
        #[arg(long)]
        steps: u64,
        /// δ, in (0, 1).
        #[arg(long, default_value_t = 1e-5)]
        delta: f64,
        /// Print JSON (the only format; accepted for symmetry with the other commands).
        #[arg(long)]
        json: bool,
        /// Also compute ε with the privacy-loss-distribution accountant (tighter than RDP,
        /// as dp-accounting's PLDAccountant; grid width 1e-4): adds `pld_epsilon`.
        #[arg(long)]
        pld: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Push N simulated flows through the embedded pipeline as fast as possible.
    Pipeline(bench::BenchPipelineArgs),
    /// Training and scoring speed of every model, against the reference figures.
    Models(bench_models::BenchModelsArgs),
}

/// Options shared by the commands that run detection.
#[derive(clap::Args, Clone, Debug)]
pub struct DetectArgs {
    /// Rule file (TOML). Default: the built-in rules plus the simulated plants' inventory.
    #[arg(long, env = "FEDICS_RULES")]
    pub rules: Option<PathBuf>,
    /// ATT&CK for ICS STIX 2.1 bundle (.json or .json.gz) for the predictor's prior.
    #[arg(long, env = "FEDICS_ATTACK_BUNDLE")]
    pub attack_bundle: Option<PathBuf>,
    /// Benign-looking flows per facility before its Isolation Forest is trained.
    #[arg(long, default_value_t = 1024)]
    pub iforest_train: usize,
    /// Train the Isolation Forest on the flows of this JSON Lines file (e.g. from
    /// `fedics simulate --no-attacks` or a capture of normal operation) instead of on each
    /// facility's first flows; one model serves every facility.
    #[arg(long)]
    pub iforest_train_file: Option<PathBuf>,
    /// How long the join waits for a flow's missing detector verdicts (ms).
    #[arg(long, default_value_t = 2000)]
    pub join_deadline_ms: u64,
    /// Directory of the neural detectors' model files (`ae.model`, `lstm-ae.model`,
    /// `mlp.model`); a file written there later (e.g. by `fedics train --out`) replaces the
    /// running model. The demo uses `<data-dir>/models` and trains missing models on
    /// simulated traffic at first start.
    #[arg(long, env = "FEDICS_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Run without the neural detectors (autoencoder, LSTM autoencoder, classifier).
    #[arg(long)]
    pub no_neural: bool,
    /// The LSTM autoencoder scores a host pair's window every this many of its flows.
    #[arg(long, default_value_t = 20)]
    pub lstm_stride: usize,
    /// How often model files are checked for a new version (ms).
    #[arg(long, default_value_t = 2000)]
    pub model_reload_ms: u64,
}

/// mimalloc's `mi_option_purge_delay` (index 15 in the `mi_option_e` enum of both the v2
/// and v3 headers bundled with libmimalloc-sys 0.1.49) and its documented default, in ms.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_PURGE_DELAY_DEFAULT_MS: std::os::raw::c_long = 10;

/// Lets mimalloc keep freed memory for a second before returning it to the OS. With the
/// default 10 ms the pipeline's steady churn of message buffers was handed back and
/// faulted in again (zeroed huge pages): ~10% of the benchmark's time, +14% throughput
/// when delayed. Only applied when the option still holds its documented default, so a
/// user's `MIMALLOC_PURGE_DELAY` or a different enum layout is left alone.
fn tune_allocator() {
    // SAFETY: `mi_option_get` and `mi_option_set` take plain integers by value and only
    // read/write mimalloc's global option table, which mimalloc documents as safe to use
    // at any time from any thread (options are atomics); no pointer or Rust memory is
    // involved, so no Rust invariant can be broken whatever the value.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000);
        }
    }
}

fn main() -> Result<()> {
    tune_allocator();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Serve(a) => serve::run(a).await,
            Command::User { what } => admin::user(what).await,
            Command::Apikey { what } => admin::apikey(what).await,
            Command::Fl { what } => fl::run(what).await,
            Command::Dp {
                what:
                    DpCommand::Epsilon {
                        sampling_rate,
                        noise_multiplier,
                        steps,
                        delta,
                        json: _,
                        pld,
                    },
            } => {
                let mut v =
                    fedics_fl::dp::epsilon_json(sampling_rate, noise_multiplier, steps, delta)?;
                if pld {
                    let e = fedics_fl::dp::pld_epsilon(
                        sampling_rate,
                        noise_multiplier,
                        steps,
                        delta,
                        fedics_fl::dp::PldOptions::default(),
                    )?;
                    v["pld_epsilon"] = serde_json::json!(e.is_finite().then_some(e));
                }
                outln!("{v}");
                Ok(())
            }
            Command::Openapi => {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&fedics_server::openapi_document())?
                );
                Ok(())
            }
            Command::Simulate(a) => simulate::run(a).await,
            Command::Train(a) => models::train(a).await,
            Command::Eval(a) => models::eval(a).await,
            Command::Bench {
                what: BenchCommand::Pipeline(a),
            } => bench::pipeline(a).await,
            Command::Bench {
                what: BenchCommand::Models(a),
            } => bench_models::models(a).await,
        }
    })
}

/// Default bind address of the demo.
pub fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000))
}
