//! `fedics bench models`: training and scoring speed of every model on data shaped like
//! the reference runs (scikit-learn 1.9.1 / PyTorch 2.15 on this kind of machine),
//! printed as one JSON document with our figure, the reference figure and their ratio.
//!
//! Data are seeded synthetic rows of the reference shapes (122 features in [0, 1] with
//! one-hot groups like NSL-KDD after preprocessing; LSTM input of 16 features), so the
//! benchmark needs no dataset; `fedics eval` gives the quality figures on real data.

use std::time::Instant;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use fedics_detect::iforest::IForestParams;
use fedics_detect::iforest_detector::IForestModel;
use fedics_ml::compute::with_threads;
use fedics_ml::train::no_progress;
use fedics_ml::{
    AeConfig, AeModel, ComputeDevice, LstmAeConfig, LstmAeModel, MlpConfig, MlpModel, TrainOptions,
};

#[derive(clap::Args, Debug)]
pub struct BenchModelsArgs {
    /// Print one JSON object (the only output on stdout).
    #[arg(long)]
    pub json: bool,
    /// LSTM-AE training sequences (the reference used 20,000).
    #[arg(long, default_value_t = 20_000)]
    pub lstm_sequences: usize,
    /// Rows scored for the forest and AE throughput.
    #[arg(long, default_value_t = 1_000_000)]
    pub score_rows: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Reference figures from the issue (1 thread).
const SKLEARN_IFOREST_ROWS_PER_S: f64 = 255_000.0;
const TORCH_AE_S_PER_EPOCH: f64 = 0.26;
const TORCH_LSTM_S_PER_EPOCH: f64 = 6.5;
const TORCH_LSTM_SEQ_PER_S: f64 = 21_000.0;

/// NSL-KDD-like rows: 38 numeric columns in [0, 1] (skewed towards 0) and one-hot groups
/// of 3, 70 and 11 columns.
fn tabular(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * 122);
    for _ in 0..n {
        for _ in 0..38 {
            let u: f32 = rng.random();
            out.push(u * u * u);
        }
        for g in [3usize, 70, 11] {
            let hot = rng.random_range(0..g);
            out.extend((0..g).map(|i| if i == hot { 1.0 } else { 0.0 }));
        }
    }
    out
}

fn ratio(a: f64, b: f64) -> f64 {
    (a / b * 100.0).round() / 100.0
}

pub async fn models(a: BenchModelsArgs) -> Result<()> {
    tokio::task::block_in_place(|| run(a))
}

fn run(a: BenchModelsArgs) -> Result<()> {
    let cpu = ComputeDevice::Cpu;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    // Isolation Forest: 100 trees, psi 256, 122 features.
    let train = tabular(60_000, a.seed);
    let started = Instant::now();
    let forest = IForestModel::fit_table(
        &train,
        122,
        None,
        &IForestParams {
            n_estimators: 100,
            max_samples: 256,
            seed: a.seed,
        },
        0.1,
        0.99,
    )?;
    let if_fit = started.elapsed().as_secs_f64();
    let test = tabular(20_000, a.seed + 1);
    let rate = |par: bool| {
        let started = Instant::now();
        let mut done = 0;
        while done < a.score_rows {
            done += if par {
                forest.score_f32_par(&test).len()
            } else {
                forest.score_f32(&test).len()
            };
        }
        done as f64 / started.elapsed().as_secs_f64()
    };
    let if_one = with_threads(Some(1), || rate(false));
    let if_all = with_threads(None, || rate(true));

    // Dense AE 122-64-16-64-122, 10 epochs, batch 256, on 67,343 rows (NSL-KDD normal).
    let ae_rows = tabular(67_343, a.seed + 2);
    let ae_opts = TrainOptions {
        epochs: 3,
        batch_size: 256,
        calibration_fraction: 0.0,
        seed: a.seed,
        ..TrainOptions::default()
    };
    let (ae_epoch_s, ae) = with_threads(Some(1), || -> Result<(f64, AeModel)> {
        let started = Instant::now();
        let m = AeModel::fit(
            &ae_rows,
            122,
            None,
            &AeConfig::default(),
            &ae_opts,
            cpu,
            &mut no_progress,
        )?;
        Ok((started.elapsed().as_secs_f64() / ae_opts.epochs as f64, m))
    })?;
    let ae_score = with_threads(Some(1), || -> Result<f64> {
        let started = Instant::now();
        let mut done = 0;
        while done < a.score_rows {
            done += ae.score(&test)?.len();
        }
        Ok(done as f64 / started.elapsed().as_secs_f64())
    })?;

    // LSTM-AE: 16 features, windows of 60, batch 64, hidden 64, latent 16.
    let t = 60;
    let n_rows = a.lstm_sequences + t;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed + 3);
    let seq_rows: Vec<f32> = (0..n_rows * 16).map(|_| rng.random::<f32>()).collect();
    let windows: Vec<usize> = (0..a.lstm_sequences).flat_map(|s| s..s + t).collect();
    let lstm_opts = TrainOptions {
        epochs: 1,
        batch_size: 64,
        calibration_fraction: 0.0,
        seed: a.seed,
        ..TrainOptions::default()
    };
    let (lstm_epoch_s, lstm) = with_threads(Some(1), || -> Result<(f64, LstmAeModel)> {
        let started = Instant::now();
        let m = LstmAeModel::fit(
            &seq_rows,
            16,
            &windows,
            None,
            &LstmAeConfig::default(),
            &lstm_opts,
            cpu,
            &mut no_progress,
        )?;
        Ok((started.elapsed().as_secs_f64(), m))
    })?;
    let score_windows = &windows[..windows.len().min(5_000 * t)];
    let lstm_rate = |threads: Option<usize>| {
        with_threads(threads, || -> Result<f64> {
            let started = Instant::now();
            let n = lstm.score_windows(&seq_rows, score_windows)?.len();
            Ok(n as f64 / started.elapsed().as_secs_f64())
        })
    };
    let lstm_one = lstm_rate(Some(1))?;
    let lstm_all = lstm_rate(None)?;

    // MLP 122-64-32-5, one epoch of 125,973 rows, batch 200.
    let mlp_rows = tabular(125_973, a.seed + 4);
    let labels: Vec<usize> = (0..125_973).map(|i| i % 5).collect();
    let mlp_opts = TrainOptions {
        epochs: 1,
        batch_size: 200,
        seed: a.seed,
        ..TrainOptions::default()
    };
    let mlp_epoch_s = with_threads(Some(1), || -> Result<f64> {
        let started = Instant::now();
        MlpModel::fit(
            &mlp_rows,
            122,
            &labels,
            (0..5).map(|c| format!("c{c}")).collect(),
            None,
            &MlpConfig::default(),
            &mlp_opts,
            cpu,
            &mut no_progress,
        )?;
        Ok(started.elapsed().as_secs_f64())
    })?;

    let doc = json!({
        "threads": threads,
        "iforest": {
            "fit_seconds": (if_fit * 1000.0).round() / 1000.0,
            "score_rows_per_s_1_thread": if_one.round(),
            "score_rows_per_s_all_threads": if_all.round(),
            "sklearn_rows_per_s_1_thread": SKLEARN_IFOREST_ROWS_PER_S,
            "speedup_vs_sklearn_1_thread": ratio(if_one, SKLEARN_IFOREST_ROWS_PER_S),
        },
        "dense_ae": {
            "train_s_per_epoch_1_thread": (ae_epoch_s * 1000.0).round() / 1000.0,
            "torch_s_per_epoch_1_thread": TORCH_AE_S_PER_EPOCH,
            "speedup_vs_torch": ratio(TORCH_AE_S_PER_EPOCH, ae_epoch_s),
            "score_rows_per_s_1_thread": ae_score.round(),
        },
        "lstm_ae": {
            "sequences": a.lstm_sequences,
            "window": t,
            "train_s_per_epoch_1_thread": (lstm_epoch_s * 100.0).round() / 100.0,
            "torch_s_per_epoch_1_thread": TORCH_LSTM_S_PER_EPOCH,
            "speedup_vs_torch": ratio(TORCH_LSTM_S_PER_EPOCH * a.lstm_sequences as f64 / 20_000.0, lstm_epoch_s),
            "infer_sequences_per_s_1_thread": lstm_one.round(),
            "infer_sequences_per_s_all_threads": lstm_all.round(),
            "torch_infer_sequences_per_s_1_thread": TORCH_LSTM_SEQ_PER_S,
            "infer_speedup_vs_torch": ratio(lstm_one, TORCH_LSTM_SEQ_PER_S),
        },
        "mlp": {
            "train_s_per_epoch_1_thread": (mlp_epoch_s * 1000.0).round() / 1000.0,
        },
    });
    if a.json {
        outln!("{doc}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}
