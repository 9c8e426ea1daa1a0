//! Criterion benches of the per-flow detector work: Isolation Forest scoring (single row
//! and batch), the rule engine, feature extraction, and decoding a flow from the bus.
//! `cargo bench -p fedics-detect`.
//!
//! The `iforest_122` group scores NSL-KDD shaped rows (122 features after one-hot
//! encoding) with 100 trees, psi = 256: the per-row `f64` scorer, the compiled `f32`
//! batch scorer on one thread, and the same with rayon on 2 threads.
//! `cargo bench -p fedics-detect --bench detectors -- iforest_122`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fedics_core::{FlowRecord, decode, encode};
use fedics_detect::features::{N_FEATURES, flow_features};
use fedics_detect::iforest::{IForestParams, IsolationForest};
use fedics_detect::rules::{AssetInventory, DEFAULT_RULES, RuleEngine, RuleFile};
use fedics_sensors::{SimConfig, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn flows(n: usize) -> (Vec<FlowRecord>, Vec<fedics_sensors::SiteTopology>) {
    let sim = Simulator::new(SimConfig::default());
    let topo = sim.topology();
    (sim.take(n).collect(), topo)
}

/// NSL-KDD after one-hot encoding: 38 numeric columns scaled to [0, 1] followed by the
/// one-hot groups of `protocol_type` (3), `service` (70) and `flag` (11): 122 features.
const ONE_HOT_GROUPS: [usize; 3] = [3, 70, 11];
const N_NUMERIC: usize = 38;
const NSL_FEATURES: usize = 122;

fn nsl_kdd_like(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * NSL_FEATURES);
    for _ in 0..n {
        for _ in 0..N_NUMERIC {
            // Like the real columns, many are mostly zero.
            let v = if rng.random_bool(0.4) {
                0.0
            } else {
                rng.random::<f64>()
            };
            out.push(v);
        }
        for width in ONE_HOT_GROUPS {
            let hot = rng.random_range(0..width);
            out.extend((0..width).map(|j| if j == hot { 1.0 } else { 0.0 }));
        }
    }
    out
}

fn bench_iforest_122(c: &mut Criterion) {
    let train = nsl_kdd_like(10_000, 1);
    let forest =
        IsolationForest::fit(&train, NSL_FEATURES, &IForestParams::default()).expect("forest fits");
    let compiled = forest.compile().expect("forest compiles");
    let n_rows = 20_000;
    let rows = nsl_kdd_like(n_rows, 2);
    let rows32: Vec<f32> = rows.iter().map(|&v| v as f32).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("thread pool");

    let mut g = c.benchmark_group("iforest_122");
    g.throughput(Throughput::Elements(n_rows as u64));
    g.bench_function("score_f64_per_row", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for row in rows.chunks_exact(NSL_FEATURES) {
                acc += forest.score(black_box(row));
            }
            black_box(acc)
        })
    });
    g.bench_function("compiled_f32_1_thread", |b| {
        b.iter(|| black_box(compiled.score_batch_f32(black_box(&rows32))))
    });
    g.bench_function("compiled_f32_rayon_2_threads", |b| {
        b.iter(|| pool.install(|| black_box(compiled.score_batch_f32_par(black_box(&rows32)))))
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let (flows, topo) = flows(20_000);
    let rows: Vec<f64> = flows.iter().flat_map(flow_features).collect();
    let forest = IsolationForest::fit(
        &rows[..4096 * N_FEATURES],
        N_FEATURES,
        &IForestParams::default(),
    )
    .expect("forest fits");

    let mut g = c.benchmark_group("iforest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("score_one", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % flows.len();
            black_box(forest.score(&rows[i * N_FEATURES..(i + 1) * N_FEATURES]))
        })
    });
    g.throughput(Throughput::Elements((rows.len() / N_FEATURES) as u64));
    g.bench_function("score_batch_20k", |b| {
        b.iter(|| black_box(forest.score_batch(&rows)))
    });
    g.finish();

    let assets: Vec<AssetInventory> = topo
        .iter()
        .map(|t| AssetInventory {
            facility: t.facility_id.clone(),
            plcs: t.plcs.clone(),
            writers: t.allowed_writers(),
        })
        .collect();
    let rules = RuleFile::parse(&format!(
        "{DEFAULT_RULES}{}",
        RuleFile::assets_toml(&assets)
    ))
    .expect("rules parse");
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(flows.len() as u64));
    g.bench_function("inspect_20k_flows", |b| {
        b.iter_batched(
            || RuleEngine::new(rules.clone()),
            |mut e| {
                for f in &flows {
                    black_box(e.inspect(f));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let payloads: Vec<Vec<u8>> = flows.iter().map(|f| encode(f).expect("encodes")).collect();
    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Elements(1));
    g.bench_function("features", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % flows.len();
            black_box(flow_features(&flows[i]))
        })
    });
    g.bench_function("decode_validate", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % payloads.len();
            black_box(decode::<FlowRecord>(&payloads[i]).ok())
        })
    });
    g.bench_function("encode", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % flows.len();
            black_box(encode(&flows[i]).ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_iforest_122);
criterion_main!(benches);
