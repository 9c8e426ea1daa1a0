//! Criterion benches of the neural models: a training step and inference of the dense
//! autoencoder (122-64-16-64-122, batch 256) and of the LSTM autoencoder (16 features,
//! windows of 60, hidden 64, latent 16, batch 64), on seeded random data.
//! `cargo bench -p fedics-ml --bench models`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use fedics_ml::train::no_progress;
use fedics_ml::{AeConfig, AeModel, ComputeDevice, LstmAeConfig, LstmAeModel, TrainOptions};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<f32>()).collect()
}

fn one_epoch(batch: usize) -> TrainOptions {
    TrainOptions {
        epochs: 1,
        batch_size: batch,
        calibration_fraction: 0.0,
        ..TrainOptions::default()
    }
}

fn dense_ae(c: &mut Criterion) {
    let d = 122;
    let mut g = c.benchmark_group("dense_ae");
    g.sample_size(10);
    // One epoch of 8 batches of 256 = 8 training steps.
    let train = random(256 * 8 * d, 1);
    g.throughput(Throughput::Elements(8));
    g.bench_function("train_8_steps_batch_256", |b| {
        b.iter(|| {
            AeModel::fit(
                &train,
                d,
                None,
                &AeConfig::default(),
                &one_epoch(256),
                ComputeDevice::Cpu,
                &mut no_progress,
            )
            .map(|m| m.threshold())
        })
    });
    let model = AeModel::fit(
        &train,
        d,
        None,
        &AeConfig::default(),
        &one_epoch(256),
        ComputeDevice::Cpu,
        &mut no_progress,
    )
    .expect("training on random data");
    let rows = random(4096 * d, 2);
    g.throughput(Throughput::Elements(4096));
    g.bench_function("score_4096_rows", |b| {
        b.iter(|| model.score(&rows).map(|s| s.len()))
    });
    g.finish();
}

fn lstm_ae(c: &mut Criterion) {
    let (d, t) = (16, 60);
    let mut g = c.benchmark_group("lstm_ae");
    g.sample_size(10);
    let rows = random((256 + t) * d, 3);
    // 4 batches of 64 windows = 4 training steps.
    let windows: Vec<usize> = (0..256).flat_map(|s| s..s + t).collect();
    g.throughput(Throughput::Elements(4));
    g.bench_function("train_4_steps_batch_64", |b| {
        b.iter(|| {
            LstmAeModel::fit(
                &rows,
                d,
                &windows,
                None,
                &LstmAeConfig::default(),
                &one_epoch(64),
                ComputeDevice::Cpu,
                &mut no_progress,
            )
            .map(|m| m.threshold())
        })
    });
    let model = LstmAeModel::fit(
        &rows,
        d,
        &windows,
        None,
        &LstmAeConfig::default(),
        &one_epoch(64),
        ComputeDevice::Cpu,
        &mut no_progress,
    )
    .expect("training on random data");
    g.throughput(Throughput::Elements(256));
    g.bench_function("score_256_windows", |b| {
        b.iter(|| model.score_windows(&rows, &windows).map(|s| s.len()))
    });
    g.finish();
}

criterion_group!(benches, dense_ae, lstm_ae);
criterion_main!(benches);
