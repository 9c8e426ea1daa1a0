//! Criterion benches of the per-flow detector work: Isolation Forest scoring (single row
//! and batch), the rule engine, feature extraction, and decoding a flow from the bus.
//! `cargo bench -p fedics-detect`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fedics_core::{FlowRecord, decode, encode};
use fedics_detect::features::{N_FEATURES, flow_features};
use fedics_detect::iforest::{IForestParams, IsolationForest};
use fedics_detect::rules::{AssetInventory, DEFAULT_RULES, RuleEngine, RuleFile};
use fedics_sensors::{SimConfig, Simulator};

fn flows(n: usize) -> (Vec<FlowRecord>, Vec<fedics_sensors::SiteTopology>) {
    let sim = Simulator::new(SimConfig::default());
    let topo = sim.topology();
    (sim.take(n).collect(), topo)
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

criterion_group!(benches, bench);
criterion_main!(benches);
