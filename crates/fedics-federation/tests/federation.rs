//! End-to-end tests of the federation over loopback gRPC, with a real least-squares trainer
//! (mini-batch gradient descent on synthetic regression data).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedics_federation::observer::phase;
use fedics_federation::proto::federation_client::FederationClient;
use fedics_federation::proto::{JoinRequest, ProtocolVersion};
use fedics_federation::{
    AdaptiveClip, Aggregator, AggregatorConfig, AggregatorHandle, Backoff, ClientTls, DpConfig,
    NoiseMode, ServerTls, SiteConfig, SiteError, SiteSummary, run_site,
};
use fedics_fl::dp::PrivacyBudget;
use fedics_fl::strategy::{RoundSettings, StrategyConfig};
use fedics_fl::trainer::{LocalPlan, LocalResult, LocalTrainer, TrainError};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod common;
use common::{Recorder, WAIT, authed, init_tracing, key, keys, loopback, site_id};

// ---------------------------------------------------------------------------------------------
// A real trainer: linear least squares, y ≈ w·x + b, trained by mini-batch gradient descent.
// ---------------------------------------------------------------------------------------------

/// Features per example (the model also has a bias, the last parameter).
const DIM: usize = 4;
const TRUE_W: [f64; DIM + 1] = [1.5, -2.0, 0.5, 3.0, 0.7];

#[derive(Clone)]
struct Data {
    x: Vec<[f64; DIM]>,
    y: Vec<f64>,
}

/// `n` examples with features `N(shift, 1)` and `y = TRUE_W·x + b + N(0, noise²)`.
fn make_data(seed: u64, n: usize, shift: f64, noise: f64) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let feat = Normal::new(shift, 1.0).unwrap();
    let eps = Normal::new(0.0, noise).unwrap();
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let mut row = [0.0; DIM];
        for v in &mut row {
            *v = feat.sample(&mut rng);
        }
        let t: f64 = row.iter().zip(&TRUE_W).map(|(a, b)| a * b).sum::<f64>() + TRUE_W[DIM];
        x.push(row);
        y.push(t + eps.sample(&mut rng));
    }
    Data { x, y }
}

fn predict(w: &[f32], x: &[f64; DIM]) -> f64 {
    x.iter().zip(w).map(|(a, b)| a * f64::from(*b)).sum::<f64>() + f64::from(w[DIM])
}

fn mse(w: &[f32], d: &Data) -> f64 {
    d.x.iter()
        .zip(&d.y)
        .map(|(x, y)| (predict(w, x) - y).powi(2))
        .sum::<f64>()
        / d.x.len() as f64
}

struct LeastSquares {
    train: Data,
    test: Data,
}

impl LocalTrainer for LeastSquares {
    fn num_params(&self) -> usize {
        DIM + 1
    }

    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        if global.len() != DIM + 1 {
            return Err(TrainError(format!("model of {} parameters", global.len())));
        }
        let mut w: Vec<f64> = global.iter().map(|&v| f64::from(v)).collect();
        let n = self.train.x.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
        let lr = f64::from(plan.learning_rate);
        let mu = f64::from(plan.proximal_mu);
        let batch = plan.batch_size.max(1);
        for _ in 0..plan.local_epochs {
            order.shuffle(&mut rng);
            for idx in order.chunks(batch) {
                let mut grad = [0.0; DIM + 1];
                for &i in idx {
                    let x = &self.train.x[i];
                    let pred: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + w[DIM];
                    let err = pred - self.train.y[i];
                    for j in 0..DIM {
                        grad[j] += err * x[j];
                    }
                    grad[DIM] += err;
                }
                for j in 0..=DIM {
                    let prox = mu * (w[j] - f64::from(global[j]));
                    w[j] -= lr * (grad[j] / idx.len() as f64 + prox);
                }
            }
        }
        let params: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let mut metrics = BTreeMap::new();
        metrics.insert("loss".into(), mse(&params, &self.train));
        Ok(LocalResult {
            params,
            num_examples: n as u64,
            metrics,
        })
    }

    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError> {
        let mut metrics = BTreeMap::new();
        metrics.insert("loss".into(), mse(global, &self.test));
        Ok((self.test.x.len() as u64, metrics))
    }
}

/// Least squares on the pooled data: the normal equations, solved by Gaussian elimination.
fn central_solution(parts: &[&Data]) -> Vec<f64> {
    const P: usize = DIM + 1;
    let mut a = [[0.0_f64; P + 1]; P];
    for d in parts {
        for (x, y) in d.x.iter().zip(&d.y) {
            let mut row = [1.0; P];
            row[..DIM].copy_from_slice(x);
            for i in 0..P {
                for j in 0..P {
                    a[i][j] += row[i] * row[j];
                }
                a[i][P] += row[i] * y;
            }
        }
    }
    for col in 0..P {
        let pivot = (col..P)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        for r in 0..P {
            if r != col {
                let f = a[r][col] / a[col][col];
                let pivot_row = a[col];
                for (x, p) in a[r].iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    (0..P).map(|i| a[i][P] / a[i][i]).collect()
}

fn distance(w: &[f32], v: &[f64]) -> f64 {
    w.iter()
        .zip(v)
        .map(|(a, b)| (f64::from(*a) - b).powi(2))
        .sum::<f64>()
        .sqrt()
}

// ---------------------------------------------------------------------------------------------
// Trainer wrappers for the failure cases.
// ---------------------------------------------------------------------------------------------

/// Scales its update by `factor` (a Byzantine site).
struct Scaled {
    inner: LeastSquares,
    factor: f32,
}

impl LocalTrainer for Scaled {
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        let mut r = self.inner.fit(global, plan)?;
        for (p, g) in r.params.iter_mut().zip(global) {
            *p = g + self.factor * (*p - g);
        }
        Ok(r)
    }
    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError> {
        self.inner.evaluate(global)
    }
}

/// Blocks in round 1 until released (a site that stops mid-round).
struct Stalls {
    inner: LeastSquares,
    release: std::sync::mpsc::Receiver<()>,
}

impl LocalTrainer for Stalls {
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        if plan.round == 1 {
            // Released by the test; the timeout only keeps a failed test from hanging.
            let _ = self.release.recv_timeout(Duration::from_secs(120));
        }
        self.inner.fit(global, plan)
    }
    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError> {
        self.inner.evaluate(global)
    }
}

// ---------------------------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------------------------

fn settings(lr: f32, epochs: u32) -> RoundSettings {
    RoundSettings {
        local_epochs: epochs,
        learning_rate: lr,
        ..RoundSettings::default()
    }
}

/// A running site and the switch that cancels it.
struct SiteTask {
    handle: JoinHandle<Result<SiteSummary, SiteError>>,
    cancel: Option<oneshot::Sender<()>>,
}

impl SiteTask {
    async fn finish(mut self) -> Result<SiteSummary, SiteError> {
        let _ = self.cancel.take();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("site did not stop")
            .expect("site task panicked")
    }
}

fn spawn_site(config: SiteConfig, trainer: Box<dyn LocalTrainer>) -> SiteTask {
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(run_site(config, trainer, async move {
        // Cancelled when the sender is used or dropped... only when used: a dropped sender
        // means the test let go of the switch, not that it wants the site to stop.
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    }));
    SiteTask {
        handle,
        cancel: Some(tx),
    }
}

impl SiteTask {
    fn cancel(&mut self) {
        if let Some(tx) = self.cancel.take() {
            let _ = tx.send(());
        }
    }
}

fn site_config(url: &str, i: usize) -> SiteConfig {
    let mut c = SiteConfig::new(url, site_id(i), key(i));
    c.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        max_attempts: None,
    };
    c
}

fn url(h: &AggregatorHandle) -> String {
    format!("http://{}", h.addr())
}

fn least_squares(seed: u64, n: usize, shift: f64) -> LeastSquares {
    LeastSquares {
        train: make_data(seed, n, shift, 0.05),
        test: make_data(seed + 1000, 100, shift, 0.05),
    }
}

// ---------------------------------------------------------------------------------------------
// (a) convergence
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedavg_three_sites_converge_to_the_central_solution() {
    init_tracing();
    let sizes = [120, 200, 300];
    let shifts = [0.0, 0.3, -0.3];
    let trainers: Vec<LeastSquares> = (0..3)
        .map(|i| least_squares(i as u64, sizes[i], shifts[i]))
        .collect();
    let central = central_solution(&trainers.iter().map(|t| &t.train).collect::<Vec<_>>());
    let mut config = AggregatorConfig::new(loopback(), keys(3));
    config.settings = settings(0.05, 5);
    config.batch_size = 16;
    let recorder = Arc::new(Recorder::default());
    let initial = vec![0.0_f32; DIM + 1];
    let start_distance = distance(&initial, &central);
    let agg = Aggregator::start(config, initial, recorder.clone())
        .await
        .unwrap();
    let sites: Vec<SiteTask> = trainers
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut c = site_config(&url(&agg), i);
            c.num_examples = sizes[i] as u64;
            spawn_site(c, Box::new(t))
        })
        .collect();
    agg.wait_for_sites(3, WAIT).await.unwrap();
    let reports = agg.run_rounds(5).await.unwrap();
    assert_eq!(reports.len(), 5);
    for r in &reports {
        assert_eq!(r.participants, vec!["site-0", "site-1", "site-2"]);
        assert!(r.dropped.is_empty(), "{:?}", r.dropped);
        assert!(r.refused.is_none());
        assert!(r.bytes_sent > 0 && r.bytes_received > 0);
        assert!(r.eval_metrics.contains_key("loss"), "{:?}", r.eval_metrics);
        println!(
            "round {}: {:.3} s, train loss {:.5}, eval loss {:.5}, sent {} B, received {} B",
            r.round,
            r.seconds,
            r.train_metrics["loss"],
            r.eval_metrics["loss"],
            r.bytes_sent,
            r.bytes_received
        );
    }
    assert!(reports[4].eval_metrics["loss"] < reports[0].eval_metrics["loss"]);
    let w = agg.global_params();
    let d = distance(&w, &central);
    println!("distance to the central solution: {start_distance:.3} -> {d:.5}; w = {w:?}");
    assert!(start_distance > 3.0);
    assert!(d < 0.05, "FedAvg ended {d} from the central solution");

    // Events: one start and one aggregation per round, an update per site and round.
    assert_eq!(recorder.phases(phase::ROUND_STARTED).len(), 5);
    assert_eq!(recorder.phases(phase::ROUND_AGGREGATED).len(), 5);
    assert_eq!(recorder.phases(phase::UPDATE_RECEIVED).len(), 15);
    assert_eq!(recorder.reports.lock().unwrap().len(), 5);
    for e in recorder.events.lock().unwrap().iter() {
        fedics_core::Validate::validate(e).unwrap();
    }
    let updates = recorder.phases(phase::UPDATE_RECEIVED);
    assert!(
        updates
            .iter()
            .all(|e| e.role == fedics_core::FlRole::Client && e.bytes_sent > 0)
    );
    assert!(
        recorder
            .clients
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.site_id == "site-2" && c.phase == phase::UPDATE_RECEIVED)
    );

    agg.shutdown().await.unwrap();
    for s in sites {
        let summary = s.handle.await.unwrap().unwrap();
        assert!(summary.finished);
        assert_eq!(summary.rounds_trained, 5);
        assert_eq!(summary.evaluations, 5);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) a model of several MiB in chunks
// ---------------------------------------------------------------------------------------------

/// Checks that the global model arrives bit-exact and answers with fixed parameters.
struct Echo {
    expected_global: Arc<Vec<f32>>,
    answer: Arc<Vec<f32>>,
    seen_exact: Arc<Mutex<Vec<bool>>>,
}

impl LocalTrainer for Echo {
    fn num_params(&self) -> usize {
        self.expected_global.len()
    }
    fn fit(&mut self, global: &[f32], _plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        let exact = global.len() == self.expected_global.len()
            && global
                .iter()
                .zip(self.expected_global.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits());
        self.seen_exact.lock().unwrap().push(exact);
        Ok(LocalResult {
            params: self.answer.as_ref().clone(),
            num_examples: 1,
            metrics: BTreeMap::new(),
        })
    }
    fn evaluate(&mut self, _global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError> {
        Ok((1, BTreeMap::new()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_of_several_mib_streams_in_chunks_bit_exact() {
    init_tracing();
    const N: usize = 2_000_000; // 8 MB of f32
    const CHUNK: usize = 256 << 10;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let initial: Vec<f32> = (0..N).map(|_| rng.random_range(-1.0..1.0)).collect();
    let answer: Vec<f32> = (0..N).map(|_| rng.random_range(-1.0..1.0)).collect();
    // What the aggregator must end with: global + (answer − global), in f32 as on the wire.
    let expected: Vec<f32> = initial
        .iter()
        .zip(&answer)
        .map(|(g, a)| g + (a - g))
        .collect();
    let initial = Arc::new(initial);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut config = AggregatorConfig::new(loopback(), keys(1));
    config.chunk_bytes = CHUNK;
    config.evaluate = false;
    config.settings.min_fit_clients = 1;
    let agg = Aggregator::start(
        config,
        initial.as_ref().clone(),
        Arc::new(fedics_federation::NoopObserver),
    )
    .await
    .unwrap();
    let site = spawn_site(
        site_config(&url(&agg), 0),
        Box::new(Echo {
            expected_global: Arc::clone(&initial),
            answer: Arc::new(answer),
            seen_exact: Arc::clone(&seen),
        }),
    );
    agg.wait_for_sites(1, WAIT).await.unwrap();
    let report = agg.run_round().await.unwrap();
    assert_eq!(report.participants, vec!["site-0"]);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![true],
        "the model arrived altered"
    );
    let global = agg.global_params();
    assert_eq!(global.len(), N);
    assert!(
        global
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the update arrived altered"
    );
    let payload = (N * 4) as u64;
    println!(
        "2M params in {} chunks of {CHUNK} B: {:.3} s, sent {} B, received {} B",
        payload.div_ceil(CHUNK as u64),
        report.seconds,
        report.bytes_sent,
        report.bytes_received
    );
    assert!(report.bytes_sent >= payload && report.bytes_sent < payload + payload / 100);
    assert!(report.bytes_received >= payload && report.bytes_received < payload + payload / 100);
    agg.shutdown().await.unwrap();
    let summary = site.finish().await.unwrap();
    assert!(summary.bytes_received >= payload);
    assert!(summary.bytes_sent >= payload);
}

// ---------------------------------------------------------------------------------------------
// (c) dropout
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_stalls_is_dropped_at_the_deadline() {
    init_tracing();
    let mut config = AggregatorConfig::new(loopback(), keys(3));
    config.settings = settings(0.05, 2);
    config.round_timeout = Duration::from_secs(4);
    let recorder = Arc::new(Recorder::default());
    let agg = Aggregator::start(config, vec![0.0; DIM + 1], recorder.clone())
        .await
        .unwrap();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let mut sites = vec![
        spawn_site(
            site_config(&url(&agg), 0),
            Box::new(least_squares(0, 100, 0.0)),
        ),
        spawn_site(
            site_config(&url(&agg), 1),
            Box::new(least_squares(1, 100, 0.0)),
        ),
    ];
    sites.push(spawn_site(
        site_config(&url(&agg), 2),
        Box::new(Stalls {
            inner: least_squares(2, 100, 0.0),
            release: release_rx,
        }),
    ));
    agg.wait_for_sites(3, WAIT).await.unwrap();
    let before = agg.global_params();
    let r1 = agg.run_round().await.unwrap();
    assert_eq!(r1.participants, vec!["site-0", "site-1"]);
    assert_eq!(r1.dropped, vec!["site-2"]);
    assert_ne!(agg.global_params(), before, "the round did not aggregate");
    // The dropped site is not asked to evaluate.
    assert_eq!(r1.eval_metrics["eval.num_clients"], 2.0);
    let aggregated = recorder.phases(phase::ROUND_AGGREGATED);
    assert_eq!(aggregated[0].metrics["dropped"], 1.0);

    // Released, the site's late update is refused; the next round goes on.
    release_tx.send(()).unwrap();
    let r2 = agg.run_round().await.unwrap();
    assert!(r2.participants.len() >= 2, "{r2:?}");
    agg.shutdown().await.unwrap();
    let summaries: Vec<SiteSummary> = {
        let mut out = Vec::new();
        for s in sites {
            out.push(s.finish().await.unwrap());
        }
        out
    };
    assert_eq!(summaries[2].rejected_updates, 1, "{:?}", summaries[2]);
    assert!(summaries[0].rounds_trained == 2 && summaries[1].rounds_trained == 2);
}

// ---------------------------------------------------------------------------------------------
// (d) robustness
// ---------------------------------------------------------------------------------------------

async fn attacked_federation(strategy: StrategyConfig) -> f64 {
    let honest: Vec<LeastSquares> = (0..4).map(|i| least_squares(10 + i, 150, 0.0)).collect();
    let central = central_solution(&honest.iter().map(|t| &t.train).collect::<Vec<_>>());
    let mut config = AggregatorConfig::new(loopback(), keys(5));
    config.strategy = strategy.clone();
    config.settings = settings(0.05, 5);
    config.batch_size = 16;
    config.evaluate = false;
    let agg = Aggregator::start(
        config,
        vec![0.0; DIM + 1],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await
    .unwrap();
    let mut sites: Vec<SiteTask> = honest
        .into_iter()
        .enumerate()
        .map(|(i, t)| spawn_site(site_config(&url(&agg), i), Box::new(t)))
        .collect();
    sites.push(spawn_site(
        site_config(&url(&agg), 4),
        Box::new(Scaled {
            inner: least_squares(14, 150, 0.0),
            factor: 100.0,
        }),
    ));
    agg.wait_for_sites(5, WAIT).await.unwrap();
    let reports = agg.run_rounds(5).await.unwrap();
    assert!(reports.iter().all(|r| r.participants.len() == 5));
    let d = distance(&agg.global_params(), &central);
    println!("{strategy}: distance to the honest solution {d:.4}");
    agg.shutdown().await.unwrap();
    for s in sites {
        s.finish().await.unwrap();
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robust_strategies_resist_a_scaled_update_fedavg_does_not() {
    init_tracing();
    let fedavg = attacked_federation(StrategyConfig::FedAvg).await;
    let robust = [
        StrategyConfig::Median,
        StrategyConfig::TrimmedMean { beta: 0.2 },
        StrategyConfig::Krum { f: 1 },
    ];
    for s in robust {
        let d = attacked_federation(s.clone()).await;
        assert!(d < 0.1, "{s} ended {d} from the honest solution");
        assert!(
            fedavg.is_nan() || fedavg > 100.0 * d,
            "FedAvg ({fedavg}) is not far worse than {s} ({d})"
        );
    }
    assert!(
        fedavg.is_nan() || fedavg > 10.0,
        "FedAvg stayed close: {fedavg}"
    );
}

// ---------------------------------------------------------------------------------------------
// (e) differential privacy
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dp_rounds_spend_epsilon_and_the_round_past_the_budget_is_refused() {
    init_tracing();
    let (sigma, delta) = (1.0, 1e-5);
    // All 3 of 3 sites take part: q = 1. Allow two rounds, not three.
    let e2 = fedics_fl::dp::epsilon(1.0, sigma, 2, delta)
        .unwrap()
        .epsilon;
    let e3 = fedics_fl::dp::epsilon(1.0, sigma, 3, delta)
        .unwrap()
        .epsilon;
    let max_epsilon = (e2 + e3) / 2.0;
    let mut config = AggregatorConfig::new(loopback(), keys(3));
    config.settings = settings(0.05, 2);
    config.dp = Some(DpConfig {
        clip: 0.5,
        noise_multiplier: sigma,
        mode: NoiseMode::Central,
        budget: PrivacyBudget::new(max_epsilon, delta).unwrap(),
    });
    let recorder = Arc::new(Recorder::default());
    let agg = Aggregator::start(config, vec![0.0; DIM + 1], recorder.clone())
        .await
        .unwrap();
    let sites: Vec<SiteTask> = (0..3)
        .map(|i| {
            spawn_site(
                site_config(&url(&agg), i),
                Box::new(least_squares(20 + i as u64, 100, 0.0)),
            )
        })
        .collect();
    agg.wait_for_sites(3, WAIT).await.unwrap();
    let reports = agg.run_rounds(5).await.unwrap();
    assert_eq!(reports.len(), 3, "{reports:?}");
    let (r1, r2, r3) = (&reports[0], &reports[1], &reports[2]);
    let (e_1, e_2) = (r1.epsilon.unwrap(), r2.epsilon.unwrap());
    println!("ε after round 1: {e_1:.3}, round 2: {e_2:.3}; budget {max_epsilon:.3}");
    assert!(e_1 > 0.0 && e_2 > e_1);
    assert!((e_2 - e2).abs() < 1e-9 * e2);
    assert_eq!(r1.delta, Some(delta));
    assert_eq!(r1.participants.len(), 3);
    assert_eq!(r1.train_metrics["agg.dp_clip"], 0.5);
    // The server clipped: the mean update has norm at most C (plus the noise).
    assert!(r1.train_metrics["agg.mean_update_norm"] <= 0.5 + 1e-6);
    let before = agg.global_params();
    let msg = r3.refused.as_deref().expect("round 3 was not refused");
    println!("{msg}");
    assert!(msg.contains("privacy budget exceeded"), "{msg}");
    assert!(msg.contains(&format!("maximum ε = {max_epsilon}")), "{msg}");
    assert!(msg.contains(&format!("would bring ε to {e3}")), "{msg}");
    assert!(r3.participants.is_empty() && r3.bytes_sent == 0);
    assert_eq!(r3.epsilon, Some(e_2));
    assert_eq!(
        agg.global_params(),
        before,
        "a refused round changed the model"
    );
    let refused = recorder.phases(phase::ROUND_REFUSED);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].round_id, 3);
    assert!((refused[0].metrics["would_be_epsilon"] - e3).abs() < 1e-9 * e3);
    // Refused again: the budget does not come back.
    assert!(agg.run_round().await.unwrap().refused.is_some());
    agg.shutdown().await.unwrap();
    for s in sites {
        assert_eq!(s.finish().await.unwrap().rounds_trained, 2);
    }
}

/// An aggregator of `config` (events ignored) and `n` least-squares sites (data seeds
/// `seed_base + i`), all joined.
async fn least_squares_federation(
    config: AggregatorConfig,
    n: usize,
    seed_base: u64,
) -> (AggregatorHandle, Vec<SiteTask>) {
    let agg = Aggregator::start(
        config,
        vec![0.0; DIM + 1],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await
    .unwrap();
    let sites: Vec<SiteTask> = (0..n)
        .map(|i| {
            spawn_site(
                site_config(&url(&agg), i),
                Box::new(least_squares(seed_base + i as u64, 100, 0.0)),
            )
        })
        .collect();
    agg.wait_for_sites(n, WAIT).await.unwrap();
    (agg, sites)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_dp_noise_is_added_by_the_sites() {
    init_tracing();
    let mut config = AggregatorConfig::new(loopback(), keys(3));
    config.settings = settings(0.05, 2);
    config.evaluate = false;
    config.dp = Some(DpConfig {
        clip: 1.0,
        noise_multiplier: 0.5,
        mode: NoiseMode::Distributed,
        budget: PrivacyBudget::new(1e6, 1e-5).unwrap(),
    });
    let (agg, sites) = least_squares_federation(config, 3, 30).await;
    let reports = agg.run_rounds(3).await.unwrap();
    assert_eq!(reports.len(), 3);
    let eps: Vec<f64> = reports.iter().map(|r| r.epsilon.unwrap()).collect();
    assert!(eps[0] < eps[1] && eps[1] < eps[2], "{eps:?}");
    // Each site clipped to C = 1 and added N(0, σ²C²/3) per coordinate: the norms the
    // aggregator sees exceed C (the noise), yet stay within its bound C + s(√d + 10).
    let s = 0.5 / 3f64.sqrt();
    let bound = 1.0 + s * (((DIM + 1) as f64).sqrt() + 10.0);
    for r in &reports {
        let norm = r.train_metrics["agg.mean_update_norm"];
        assert!(norm <= bound, "{norm} > {bound}");
        assert_eq!(r.train_metrics["agg.dp_clipped_fraction"], 0.0);
    }
    agg.shutdown().await.unwrap();
    for s in sites {
        s.finish().await.unwrap();
    }
}

/// A site that sends back the global model unchanged: a zero update, so that whatever the
/// new global model differs by is the DP noise alone.
struct Still {
    n: usize,
}

impl LocalTrainer for Still {
    fn num_params(&self) -> usize {
        self.n
    }
    fn fit(&mut self, global: &[f32], _plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        Ok(LocalResult {
            params: global.to_vec(),
            num_examples: 1,
            metrics: BTreeMap::new(),
        })
    }
    fn evaluate(&mut self, _global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError> {
        Ok((1, BTreeMap::new()))
    }
}

/// Mean and standard deviation of the values.
fn mean_sd(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    (mean, var.sqrt())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_noise_in_the_global_model_has_the_standard_deviation_dp_promises() {
    // k sites send zero updates of d parameters; one DP round turns the global model from 0
    // into noise/k, whose coordinates must have mean 0 and standard deviation σ_u·C/k
    // (σ_u: the updates' noise multiplier; with adaptive clipping its share of σ). With
    // d = 40,000 the sample deviation is within 2 % of the truth but for a 5.7σ draw.
    init_tracing();
    const D: usize = 40_000;
    const K: usize = 4;
    let (sigma, clip) = (1.2, 0.5);
    let adaptive = AdaptiveClip {
        target_quantile: 0.5,
        learning_rate: 0.2,
        count_noise_std: 1.0,
    };
    let cases = [
        (NoiseMode::Central, None, sigma),
        (NoiseMode::Distributed, None, sigma),
        (
            NoiseMode::Central,
            Some(adaptive),
            fedics_fl::dp::adaptive_update_noise_multiplier(sigma, 1.0).unwrap(),
        ),
    ];
    for (mode, adaptive, update_sigma) in cases {
        let mut config = AggregatorConfig::new(loopback(), keys(K));
        config.evaluate = false;
        config.dp = Some(DpConfig {
            clip,
            noise_multiplier: sigma,
            mode,
            budget: PrivacyBudget::new(1e6, 1e-5).unwrap(),
        });
        config.adaptive_clip = adaptive;
        let agg = Aggregator::start(
            config,
            vec![0.0; D],
            Arc::new(fedics_federation::NoopObserver),
        )
        .await
        .unwrap();
        let sites: Vec<SiteTask> = (0..K)
            .map(|i| spawn_site(site_config(&url(&agg), i), Box::new(Still { n: D })))
            .collect();
        agg.wait_for_sites(K, WAIT).await.unwrap();
        let report = agg.run_round().await.unwrap();
        assert_eq!(report.participants.len(), K, "{report:?}");
        let (mean, sd) = mean_sd(&agg.global_params());
        let want = update_sigma * clip / K as f64;
        println!(
            "{mode:?}, adaptive {}: noise sd {sd:.5}, expected {want:.5}, mean {mean:.2e}",
            adaptive.is_some()
        );
        assert!(
            (sd / want - 1.0).abs() < 0.02,
            "{mode:?}: sd {sd} vs {want}"
        );
        // The mean of D draws of N(0, want²) is within 6 standard errors of 0.
        assert!(mean.abs() < 6.0 * want / (D as f64).sqrt(), "{mean}");
        agg.shutdown().await.unwrap();
        for s in sites {
            s.finish().await.unwrap();
        }
    }
}

/// Six DP rounds of five least-squares sites with adaptive clipping from `initial_clip`.
async fn adaptive_run(initial_clip: f64) -> Vec<fedics_federation::RoundReport> {
    let mut config = AggregatorConfig::new(loopback(), keys(5));
    // Small local steps: an update is a small share of the distance to the optimum, so
    // even the noise of a bound far too large does not make it as large as that bound.
    config.settings = settings(0.005, 1);
    config.evaluate = false;
    config.dp = Some(DpConfig {
        clip: initial_clip,
        noise_multiplier: ADAPTIVE_SIGMA,
        mode: NoiseMode::Central,
        budget: PrivacyBudget::new(1e6, 1e-5).unwrap(),
    });
    config.adaptive_clip = Some(AdaptiveClip {
        target_quantile: 0.5,
        // Each round moves the bound by about e^(±1) while all or none are clipped.
        learning_rate: 2.0,
        count_noise_std: ADAPTIVE_COUNT_NOISE,
    });
    let (agg, sites) = least_squares_federation(config, 5, 40).await;
    let reports = agg.run_rounds(6).await.unwrap();
    agg.shutdown().await.unwrap();
    for s in sites {
        s.finish().await.unwrap();
    }
    reports
}

const ADAPTIVE_SIGMA: f64 = 0.5;
/// σ_b: the noise on the fraction of unclipped updates is σ_b / 5 = 0.06, so a bound that
/// clips every update (fraction 0, target 0.5) grows unless the noise draw is 8 standard
/// deviations off.
const ADAPTIVE_COUNT_NOISE: f64 = 0.3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_clipping_follows_the_update_norms_and_keeps_the_accounted_sigma() {
    init_tracing();
    let update_sigma =
        fedics_fl::dp::adaptive_update_noise_multiplier(ADAPTIVE_SIGMA, ADAPTIVE_COUNT_NOISE)
            .unwrap();
    assert!(update_sigma > ADAPTIVE_SIGMA);
    // From far below every update norm (all clipped) and far above (none clipped).
    for (initial, grows) in [(1e-5, true), (1e4, false)] {
        let reports = adaptive_run(initial).await;
        assert_eq!(reports.len(), 6);
        let clips: Vec<f64> = reports
            .iter()
            .map(|r| r.train_metrics["agg.dp_clip"])
            .collect();
        println!("adaptive clipping from {initial}: bounds per round {clips:?}");
        assert_eq!(clips[0], initial);
        for (i, r) in reports.iter().enumerate() {
            let m = &r.train_metrics;
            // The accountant's σ is the configured one; the updates carry their share.
            assert_eq!(m["agg.dp_noise_multiplier"], ADAPTIVE_SIGMA);
            assert!((m["agg.dp_update_noise_multiplier"] - update_sigma).abs() < 1e-12);
            let fraction = m["agg.dp_unclipped_fraction"];
            if let Some(next) = reports.get(i + 1) {
                assert_eq!(next.train_metrics["agg.dp_clip"], m["agg.dp_next_clip"]);
            }
            // While every update is clipped the bound grows; while none is, it shrinks.
            if fraction == 0.0 {
                assert!(m["agg.dp_next_clip"] > clips[i], "round {}: {m:?}", i + 1);
            }
            if fraction == 1.0 {
                assert!(m["agg.dp_next_clip"] < clips[i], "round {}: {m:?}", i + 1);
            }
        }
        let last = reports[5].train_metrics["agg.dp_next_clip"];
        if grows {
            assert!(last > 50.0 * initial, "{clips:?} → {last}");
        } else {
            assert!(last < initial / 50.0, "{clips:?} → {last}");
        }
        // ε after six rounds is that of the configured σ at q = 1, whatever the bounds.
        let e6 = fedics_fl::dp::epsilon(1.0, ADAPTIVE_SIGMA, 6, 1e-5)
            .unwrap()
            .epsilon;
        let e = reports[5].epsilon.unwrap();
        assert!((e - e6).abs() < 1e-9 * e6, "{e} vs {e6}");
    }
}

#[tokio::test]
async fn adaptive_clipping_needs_dp_and_a_count_noise_above_half_sigma() {
    let mut config = AggregatorConfig::new(loopback(), keys(2));
    config.adaptive_clip = Some(AdaptiveClip {
        target_quantile: 0.5,
        learning_rate: 0.2,
        count_noise_std: 1.0,
    });
    let no_dp = Aggregator::start(
        config.clone(),
        vec![0.0; 3],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await;
    let Err(err) = no_dp else {
        panic!("adaptive clipping without DP was accepted")
    };
    let err = err.to_string();
    assert!(err.contains("without DP"), "{err}");
    config.dp = Some(DpConfig {
        clip: 1.0,
        noise_multiplier: 1.0,
        mode: NoiseMode::Central,
        budget: PrivacyBudget::new(10.0, 1e-5).unwrap(),
    });
    config.adaptive_clip = Some(AdaptiveClip {
        count_noise_std: 0.5,
        ..config.adaptive_clip.unwrap()
    });
    let low = Aggregator::start(
        config,
        vec![0.0; 3],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await;
    let Err(err) = low else {
        panic!("a count noise σ_b = σ/2 was accepted")
    };
    let err = err.to_string();
    assert!(err.contains("count_noise_std"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// (f) authentication and versions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_and_protocol_versions_are_refused() {
    init_tracing();
    let recorder = Arc::new(Recorder::default());
    let agg = Aggregator::start(
        AggregatorConfig::new(loopback(), keys(2)),
        vec![0.0; DIM + 1],
        recorder.clone(),
    )
    .await
    .unwrap();
    let target = url(&agg);

    // A site with another site's key, and an unknown site.
    for (id, k) in [("site-0", key(1)), ("site-9", key(0))] {
        let config = SiteConfig::new(&target, id, k);
        let err = run_site(
            config,
            Box::new(least_squares(0, 10, 0.0)),
            std::future::pending(),
        )
        .await
        .unwrap_err();
        match err {
            SiteError::Refused(s) => assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s}"),
            e => panic!("{id}: {e}"),
        }
    }

    // Raw calls: no credentials, another major version, a model of the wrong size.
    let mut client = FederationClient::connect(target.clone()).await.unwrap();
    let join = |major: u32, num_params: u64| JoinRequest {
        protocol_version: Some(ProtocolVersion { major, minor: 0 }),
        site_id: "site-0".into(),
        num_examples: 1,
        num_params,
        // A 1.0 peer: no model kind (parameters).
        ..JoinRequest::default()
    };
    let err = client.join(join(1, 5)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let authed = |req: JoinRequest| {
        let mut r = tonic::Request::new(req);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", key(0)).parse().unwrap(),
        );
        r
    };
    let err = client.join(authed(join(2, 5))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("protocol version 2.0 is not supported"),
        "{}",
        err.message()
    );
    let err = client.join(authed(join(1, 6))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("6 parameters"), "{}", err.message());
    // Each refused credential is recorded against the id it claimed.
    let refused: Vec<String> = recorder
        .phases(phase::JOIN_REFUSED)
        .into_iter()
        .map(|e| e.node_id)
        .collect();
    assert_eq!(refused, vec!["site-0", "site-9", "site-0"], "{refused:?}");
    let ok = client.join(authed(join(1, 5))).await.unwrap().into_inner();
    assert!(!ok.session.is_empty());
    assert_eq!(ok.protocol_version.unwrap().major, 1);
    agg.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// (g) TLS
// ---------------------------------------------------------------------------------------------

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "FedICS test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![purpose];
        let cert = p.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        server: leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth),
        client: leaf("site-0", ExtendedKeyUsagePurpose::ClientAuth),
        ca: ca.pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_round_trip() {
    init_tracing();
    let pki = pki();
    let mut config = AggregatorConfig::new(loopback(), keys(2));
    config.settings = settings(0.05, 3);
    config.tls = Some(ServerTls {
        cert_pem: pki.server.0.clone(),
        key_pem: pki.server.1.clone(),
        client_ca_pem: Some(pki.ca.clone()),
    });
    let agg = Aggregator::start(
        config,
        vec![0.0; DIM + 1],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await
    .unwrap();
    let target = format!("https://127.0.0.1:{}", agg.addr().port());
    let tls = ClientTls {
        ca_pem: pki.ca.clone(),
        domain: Some("localhost".into()),
        identity: Some(pki.client.clone()),
    };
    let sites: Vec<SiteTask> = (0..2)
        .map(|i| {
            let mut c = site_config(&target, i);
            c.tls = Some(tls.clone());
            spawn_site(c, Box::new(least_squares(40 + i as u64, 100, 0.0)))
        })
        .collect();
    agg.wait_for_sites(2, WAIT).await.unwrap();
    let reports = agg.run_rounds(2).await.unwrap();
    assert!(reports.iter().all(|r| r.participants.len() == 2));
    assert!(reports[1].eval_metrics["loss"] < reports[0].train_metrics["loss"] * 10.0);

    // Without a client certificate the handshake fails: the site gives up.
    let mut c = site_config(&target, 1);
    c.tls = Some(ClientTls {
        identity: None,
        ..tls.clone()
    });
    c.backoff.max_attempts = Some(2);
    let err = run_site(
        c,
        Box::new(least_squares(0, 10, 0.0)),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SiteError::GaveUp { .. }), "{err}");
    // Plaintext to the TLS port fails as well.
    let mut c = site_config(&format!("http://{}", agg.addr()), 1);
    c.backoff.max_attempts = Some(2);
    let err = run_site(
        c,
        Box::new(least_squares(0, 10, 0.0)),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SiteError::GaveUp { .. }), "{err}");

    agg.shutdown().await.unwrap();
    for s in sites {
        assert!(s.finish().await.unwrap().finished);
    }
}

// ---------------------------------------------------------------------------------------------
// (h) reconnect
// ---------------------------------------------------------------------------------------------

/// A TCP proxy whose connections can be cut, to break a site's network path.
struct Proxy {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let c = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c.lock().unwrap().push(conn);
            }
        });
        Self {
            addr,
            conns,
            accept,
        }
    }

    /// Drops every open connection (both sides see the socket close).
    fn cut(&self) -> usize {
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        let n = conns.len();
        for c in conns {
            c.abort();
        }
        n
    }
}

async fn wait_for_joins(agg: &AggregatorHandle, site: &str, joins: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = agg.sites().into_iter().find(|s| s.site_id == site);
        if s.as_ref().is_some_and(|s| s.joins >= joins && s.connected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{site} did not join {joins} times: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_resume_after_a_network_cut_and_a_restart() {
    init_tracing();
    let mut config = AggregatorConfig::new(loopback(), keys(2));
    config.settings = settings(0.05, 2);
    let agg = Aggregator::start(
        config,
        vec![0.0; DIM + 1],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await
    .unwrap();
    let proxy = Proxy::start(agg.addr()).await;
    let mut direct = spawn_site(
        site_config(&url(&agg), 0),
        Box::new(least_squares(50, 100, 0.0)),
    );
    let proxied = spawn_site(
        site_config(&format!("http://{}", proxy.addr), 1),
        Box::new(least_squares(51, 100, 0.0)),
    );
    agg.wait_for_sites(2, WAIT).await.unwrap();
    let r1 = agg.run_round().await.unwrap();
    assert_eq!(r1.participants, vec!["site-0", "site-1"]);

    // Network cut on site-1's path: it reconnects on its own and joins again.
    assert!(proxy.cut() >= 1);
    wait_for_joins(&agg, "site-1", 2).await;
    let r2 = agg.run_round().await.unwrap();
    assert_eq!(r2.participants, vec!["site-0", "site-1"], "{r2:?}");

    // Restart of site-0's process: a new runtime under the same id resumes.
    direct.cancel();
    let first = direct.finish().await.unwrap();
    assert!(!first.finished);
    assert_eq!(first.rounds_trained, 2);
    let restarted = spawn_site(
        site_config(&url(&agg), 0),
        Box::new(least_squares(50, 100, 0.0)),
    );
    wait_for_joins(&agg, "site-0", 2).await;
    let r3 = agg.run_round().await.unwrap();
    assert_eq!(r3.participants, vec!["site-0", "site-1"], "{r3:?}");
    let status = agg.sites();
    assert!(status.iter().all(|s| s.last_round == 3), "{status:?}");

    agg.shutdown().await.unwrap();
    let s1 = proxied.finish().await.unwrap();
    assert!(
        s1.finished && s1.joins >= 2 && s1.rounds_trained == 3,
        "{s1:?}"
    );
    let s0 = restarted.finish().await.unwrap();
    assert!(s0.finished && s0.rounds_trained == 1, "{s0:?}");
    proxy.accept.abort();
}

// ---------------------------------------------------------------------------------------------
// DP: the aggregator does not trust the sites' clipping
// ---------------------------------------------------------------------------------------------

/// A hand-written client that joins, waits for its training task and answers with an
/// update of norm 1000, ignoring the task's clipping bound.
async fn unclipped_client(target: String, i: usize) -> Result<(), tonic::Status> {
    use fedics_federation::codec::{encode_params, sha256};
    use fedics_federation::proto::task_message::Kind;
    use fedics_federation::proto::{TasksRequest, UpdateChunk, UpdateHeader, update_chunk};
    let mut client = FederationClient::connect(target).await.unwrap();
    let version = Some(fedics_federation::our_version());
    let session = client
        .join(authed(
            i,
            JoinRequest {
                protocol_version: version,
                site_id: site_id(i),
                num_examples: 100,
                num_params: (DIM + 1) as u64,
                ..JoinRequest::default()
            },
        ))
        .await?
        .into_inner()
        .session;
    let mut tasks = client
        .tasks(authed(
            i,
            TasksRequest {
                protocol_version: version,
                session: session.clone(),
            },
        ))
        .await?
        .into_inner();
    let round = loop {
        match tasks.message().await?.and_then(|m| m.kind) {
            Some(Kind::Header(h)) => {
                assert_eq!(h.dp.unwrap().clip, 0.5, "the task carries the clip");
                break h.round;
            }
            Some(_) => {}
            None => return Ok(()),
        }
    };
    let delta = vec![1000.0 / ((DIM + 1) as f32).sqrt(); DIM + 1];
    let bytes = encode_params(&delta);
    let header = UpdateChunk {
        kind: Some(update_chunk::Kind::Header(UpdateHeader {
            protocol_version: version,
            session,
            round,
            num_examples: 100,
            metrics: BTreeMap::new(),
            update_bytes: bytes.len() as u64,
            update_sha256: sha256(&bytes),
            norm_before_clip: 0.0,
            ..UpdateHeader::default()
        })),
    };
    let data = UpdateChunk {
        kind: Some(update_chunk::Kind::Data(bytes)),
    };
    client
        .submit_update(authed(i, tokio_stream::iter(vec![header, data])))
        .await?;
    // Stay connected until the aggregator ends the stream.
    while tasks.message().await?.is_some() {}
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregator_clips_updates_the_site_did_not() {
    init_tracing();
    let clip = 0.5;
    let mut config = AggregatorConfig::new(loopback(), keys(3));
    config.settings = settings(0.05, 2);
    config.evaluate = false;
    config.dp = Some(DpConfig {
        clip,
        noise_multiplier: 0.01,
        mode: NoiseMode::Central,
        budget: PrivacyBudget::new(1e9, 1e-5).unwrap(),
    });
    let agg = Aggregator::start(
        config,
        vec![0.0; DIM + 1],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await
    .unwrap();
    let sites: Vec<SiteTask> = (0..2)
        .map(|i| {
            spawn_site(
                site_config(&url(&agg), i),
                Box::new(least_squares(60 + i as u64, 100, 0.0)),
            )
        })
        .collect();
    let rogue = tokio::spawn(unclipped_client(url(&agg), 2));
    agg.wait_for_sites(3, WAIT).await.unwrap();
    let before = agg.global_params();
    let r = agg.run_round().await.unwrap();
    assert_eq!(r.participants, vec!["site-0", "site-1", "site-2"]);
    assert!(r.train_metrics["agg.dp_clipped_fraction"] > 0.3, "{r:?}");
    // Three updates of norm ≤ C averaged over 3, plus noise of std σC/3 per coordinate.
    let moved = distance(
        &agg.global_params(),
        &before.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
    );
    let noise_bound = 6.0 * 0.01 * clip / 3.0 * ((DIM + 1) as f64).sqrt();
    assert!(moved <= clip + noise_bound, "the model moved {moved}");
    agg.shutdown().await.unwrap();
    rogue.await.unwrap().unwrap();
    for s in sites {
        s.finish().await.unwrap();
    }
}

/// Signals when round 1's training starts, then waits to be released.
struct PausesInRoundOne {
    inner: LeastSquares,
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    release: std::sync::mpsc::Receiver<()>,
    paused: bool,
}

impl LocalTrainer for PausesInRoundOne {
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    fn fit(&mut self, global: &[f32], plan: &LocalPlan) -> Result<LocalResult, TrainError> {
        if plan.round == 1 && !self.paused {
            self.paused = true;
            let _ = self.entered.send(());
            let _ = self.release.recv_timeout(Duration::from_secs(120));
        }
        self.inner.fit(global, plan)
    }
    fn evaluate(&mut self, global: &[f32]) -> Result<(u64, BTreeMap<String, f64>), TrainError> {
        self.inner.evaluate(global)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_cut_off_mid_round_still_contributes_to_the_round() {
    init_tracing();
    let mut config = AggregatorConfig::new(loopback(), keys(2));
    config.settings = settings(0.05, 2);
    let agg = Aggregator::start(
        config,
        vec![0.0; DIM + 1],
        Arc::new(fedics_federation::NoopObserver),
    )
    .await
    .unwrap();
    let proxy = Proxy::start(agg.addr()).await;
    let (entered_tx, mut entered_rx) = tokio::sync::mpsc::unbounded_channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let direct = spawn_site(
        site_config(&url(&agg), 0),
        Box::new(least_squares(70, 100, 0.0)),
    );
    let proxied = spawn_site(
        site_config(&format!("http://{}", proxy.addr), 1),
        Box::new(PausesInRoundOne {
            inner: least_squares(71, 100, 0.0),
            entered: entered_tx,
            release: release_rx,
            paused: false,
        }),
    );
    agg.wait_for_sites(2, WAIT).await.unwrap();
    // While site-1 trains on round 1, its connection is cut.
    let control = async {
        entered_rx.recv().await.unwrap();
        assert!(proxy.cut() >= 1);
        release_tx.send(()).unwrap();
    };
    let (report, ()) = tokio::join!(agg.run_round(), control);
    let report = report.unwrap();
    assert_eq!(report.participants, vec!["site-0", "site-1"], "{report:?}");
    assert!(report.dropped.is_empty());
    agg.shutdown().await.unwrap();
    assert!(proxied.finish().await.unwrap().rounds_trained >= 1);
    direct.finish().await.unwrap();
    proxy.accept.abort();
}

/// What a hostile site sends instead of an honest update.
#[derive(Clone, Copy, Debug)]
enum BadUpdate {
    /// The header announces the full update; fewer bytes follow.
    Truncated,
    /// A well-formed update with one parameter fewer than the model has.
    WrongShape,
    /// The right length, with a NaN in it.
    NotFinite,
    /// Round 1's update sent again in round 2.
    Replayed,
}

/// A site that joins with site `i`'s key, sends `bad` and returns the aggregator's answer
/// to it (for `Replayed`: the answer to the replay in round 2).
async fn hostile_client(target: String, i: usize, bad: BadUpdate) -> tonic::Status {
    use fedics_federation::codec::{encode_params, sha256};
    use fedics_federation::proto::task_message::Kind;
    use fedics_federation::proto::{TasksRequest, UpdateChunk, UpdateHeader, update_chunk};
    let mut client = FederationClient::connect(target).await.unwrap();
    let version = Some(fedics_federation::our_version());
    let session = client
        .join(authed(
            i,
            JoinRequest {
                protocol_version: version,
                site_id: site_id(i),
                num_examples: 100,
                num_params: (DIM + 1) as u64,
                ..JoinRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .session;
    let mut tasks = client
        .tasks(authed(
            i,
            TasksRequest {
                protocol_version: version,
                session: session.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let update = |round: u32, delta: &[f32], cut: usize| {
        let bytes = encode_params(delta);
        let header = UpdateChunk {
            kind: Some(update_chunk::Kind::Header(UpdateHeader {
                protocol_version: version,
                session: session.clone(),
                round,
                num_examples: 100,
                metrics: BTreeMap::new(),
                update_bytes: bytes.len() as u64,
                update_sha256: sha256(&bytes),
                norm_before_clip: 0.0,
                ..UpdateHeader::default()
            })),
        };
        let data = UpdateChunk {
            kind: Some(update_chunk::Kind::Data(bytes.slice(..bytes.len() - cut))),
        };
        vec![header, data]
    };
    let mut first = None;
    loop {
        let round = match tasks.message().await.unwrap().and_then(|m| m.kind) {
            Some(Kind::Header(h)) if h.kind == 1 => h.round,
            Some(_) => continue,
            None => panic!("the task stream ended before the bad update was sent"),
        };
        let good = vec![0.01_f32; DIM + 1];
        let msgs = match bad {
            // The header announces the whole update; 8 bytes are missing.
            BadUpdate::Truncated => update(round, &good, 8),
            BadUpdate::WrongShape => update(round, &good[..DIM], 0),
            BadUpdate::NotFinite => {
                let mut v = good.clone();
                v[2] = f32::NAN;
                update(round, &v, 0)
            }
            BadUpdate::Replayed => match first.take() {
                None => {
                    let msgs = update(round, &good, 0);
                    first = Some(msgs.clone());
                    client
                        .submit_update(authed(i, tokio_stream::iter(msgs)))
                        .await
                        .unwrap();
                    continue;
                }
                Some(old) => old,
            },
        };
        return client
            .submit_update(authed(i, tokio_stream::iter(msgs)))
            .await
            .unwrap_err();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_are_rejected_with_a_reason_recorded_and_never_aggregated() {
    init_tracing();
    let mut config = AggregatorConfig::new(loopback(), keys(6));
    config.settings = settings(0.05, 1);
    config.evaluate = false;
    config.round_timeout = Duration::from_secs(5);
    let recorder = Arc::new(Recorder::default());
    let agg = Aggregator::start(config, vec![0.0; DIM + 1], recorder.clone())
        .await
        .unwrap();
    let honest: Vec<SiteTask> = (0..2)
        .map(|i| {
            spawn_site(
                site_config(&url(&agg), i),
                Box::new(least_squares(70 + i as u64, 100, 0.0)),
            )
        })
        .collect();
    let kinds = [
        BadUpdate::Truncated,
        BadUpdate::WrongShape,
        BadUpdate::NotFinite,
        BadUpdate::Replayed,
    ];
    let hostile: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(k, &bad)| tokio::spawn(hostile_client(url(&agg), k + 2, bad)))
        .collect();
    agg.wait_for_sites(6, WAIT).await.unwrap();
    let r1 = agg.run_round().await.unwrap();
    // Round 1: the three malformed updates are rejected with their reasons; the replaying
    // site's first update is honest and counts.
    let reasons = &r1.rejected;
    assert_eq!(
        reasons.keys().cloned().collect::<Vec<_>>(),
        vec!["site-2", "site-3", "site-4"],
        "{r1:?}"
    );
    assert!(reasons["site-2"].contains("bytes"), "{reasons:?}");
    assert!(reasons["site-3"].contains("expected"), "{reasons:?}");
    assert!(
        reasons["site-4"].contains("not a finite number"),
        "{reasons:?}"
    );
    assert_eq!(r1.participants, vec!["site-0", "site-1", "site-5"]);
    assert!(agg.global_params().iter().all(|x| x.is_finite()));
    // Round 2: the replayed round-1 update is refused as stale and recorded.
    let r2 = agg.run_round().await;
    let mut answers = Vec::new();
    for h in hostile {
        answers.push(h.await.unwrap());
    }
    for (status, bad) in answers.iter().zip(kinds) {
        match bad {
            BadUpdate::Replayed => {
                assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
                assert!(status.message().contains("round 1"), "{status:?}");
            }
            _ => assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "{bad:?}: {status:?}"
            ),
        }
    }
    let rejected_events: Vec<(u64, String)> = recorder
        .phases(phase::UPDATE_REJECTED)
        .into_iter()
        .map(|e| (e.round_id, e.node_id))
        .collect();
    for site in ["site-2", "site-3", "site-4"] {
        assert!(
            rejected_events.contains(&(1, site.into())),
            "{rejected_events:?}"
        );
    }
    assert!(
        rejected_events.contains(&(1, "site-5".into())),
        "the replay is recorded against the round it claims: {rejected_events:?}"
    );
    // The replaying site never sent round 2 an update: dropped at the deadline.
    let r2 = r2.unwrap();
    assert!(r2.dropped.contains(&"site-5".to_string()), "{r2:?}");
    assert!(agg.global_params().iter().all(|x| x.is_finite()));
    agg.shutdown().await.unwrap();
    for s in honest {
        s.finish().await.unwrap();
    }
}
