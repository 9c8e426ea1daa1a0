//! Tree federations over loopback gRPC with the real Isolation Forest: sites contribute
//! trees grown on their own rows, the aggregator validates and merges them (deterministically
//! for a federation seed), every site calibrates its own threshold; malformed contributions
//! are refused with a reason, recorded, and never merged.

use std::collections::BTreeMap;
use std::sync::Arc;

use fedics_detect::iforest::IsolationForest;
use fedics_detect::iforest_federated::{IForestMerger, IForestSite};
use fedics_federation::codec::sha256;
use fedics_federation::observer::phase;
use fedics_federation::proto::federation_client::FederationClient;
use fedics_federation::proto::task_message::Kind;
use fedics_federation::proto::{
    JoinRequest, ModelKind, TasksRequest, TreeContribution, UpdateChunk, UpdateHeader, update_chunk,
};
use fedics_federation::{
    Aggregator, AggregatorConfig, DpConfig, FederationError, NoiseMode, RoundReport, SiteConfig,
    SiteError, TreeConfig, run_site, run_tree_site,
};
use fedics_fl::dp::PrivacyBudget;
use fedics_fl::strategy::StrategyConfig;
use fedics_fl::trainer::{LocalPlan, LocalResult, LocalTrainer, TrainError};
use fedics_fl::trees::{TreePlan, TreeTrainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{Recorder, WAIT, authed, key, keys, loopback, site_id};

const FEATURES: usize = 4;
/// Rows of `d` features in a box near the origin; attacks beyond it in every feature.
fn rows(n: usize, d: usize, attack: bool, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * d)
        .map(|_| {
            let x: f32 = rng.random_range(0.0..0.3);
            if attack { x + 0.7 } else { x }
        })
        .collect()
}

/// A site with `n` benign rows and 40 + 40 labelled held-out rows.
fn forest_site(i: usize, n: usize) -> IForestSite {
    let seed = 10 * i as u64;
    IForestSite::new(FEATURES, rows(n, FEATURES, false, seed))
        .unwrap()
        .with_eval(
            [
                rows(40, FEATURES, false, seed + 1),
                rows(40, FEATURES, true, seed + 2),
            ]
            .concat(),
            [vec![false; 40], vec![true; 40]].concat(),
        )
        .unwrap()
}

fn trees(n_trees: usize) -> TreeConfig {
    TreeConfig {
        merger: Arc::new(IForestMerger),
        n_features: FEATURES,
        n_trees,
        max_samples: 64,
    }
}

fn site_config(url: &str, i: usize, examples: u64) -> SiteConfig {
    let mut c = SiteConfig::new(url, site_id(i), key(i));
    c.num_examples = examples;
    c
}

/// Three forest sites of 100, 200 and 300 rows, two rounds: the reports, what the observer
/// saw and the final global forest.
async fn federate(seed: u64) -> (Vec<RoundReport>, Arc<Recorder>, Vec<u8>) {
    let mut config = AggregatorConfig::new(loopback(), keys(3));
    config.seed = seed;
    let recorder = Arc::new(Recorder::default());
    let agg = Aggregator::start_trees(config, trees(30), recorder.clone())
        .await
        .unwrap();
    assert_eq!(
        agg.global_forest(),
        None,
        "no forest before the first round"
    );
    let url = format!("http://{}", agg.addr());
    let sites: Vec<_> = (0..3)
        .map(|i| {
            let n = 100 * (i + 1);
            tokio::spawn(run_tree_site(
                site_config(&url, i, n as u64),
                Box::new(forest_site(i, n)),
                std::future::pending(),
            ))
        })
        .collect();
    agg.wait_for_sites(3, WAIT).await.unwrap();
    let reports = agg.run_rounds(2).await.unwrap();
    let forest = agg.global_forest().expect("a global forest");
    assert!(agg.global_params().is_empty());
    agg.shutdown().await.unwrap();
    for s in sites {
        let summary = tokio::time::timeout(WAIT, s)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(summary.rounds_trained, 2);
        assert_eq!(summary.evaluations, 2);
        assert!(summary.finished);
    }
    (reports, recorder, forest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_contribute_trees_the_aggregator_merges_and_each_site_calibrates() {
    let (reports, recorder, forest) = federate(7).await;
    assert_eq!(reports.len(), 2);
    for (k, r) in reports.iter().enumerate() {
        assert_eq!(r.participants, vec!["site-0", "site-1", "site-2"], "{r:?}");
        assert!(r.dropped.is_empty() && r.rejected.is_empty(), "{r:?}");
        assert_eq!(r.train_metrics["agg.contributed_trees"], 30.0);
        assert_eq!(r.train_metrics["agg.trees"], 30.0);
        // Round 1 pools the contributions; round 2 also the global forest's trees.
        assert_eq!(r.train_metrics["agg.pool_trees"], 30.0 * (k + 1) as f64);
        assert!(r.eval_metrics["roc_auc"] > 0.95, "{r:?}");
        assert!(r.eval_metrics["threshold"] > 0.0, "{r:?}");
        assert!(r.bytes_received > 0 && r.bytes_sent > 0);
        assert_eq!(r.epsilon, None);
    }
    let global = IsolationForest::from_bytes(&forest).unwrap();
    assert_eq!(global.n_trees(), 30);
    assert_eq!(global.n_features(), FEATURES);
    // Trees are allocated by examples announced: the bigger the site, the more it grows.
    let clients = recorder.clients.lock().unwrap().clone();
    let grown = |site: &str| {
        clients
            .iter()
            .find(|c| c.round == 1 && c.site_id == site && c.phase == phase::UPDATE_RECEIVED)
            .map(|c| c.metrics["trees"])
            .unwrap()
    };
    let (a, b, c) = (grown("site-0"), grown("site-1"), grown("site-2"));
    assert_eq!(a + b + c, 30.0);
    assert!(a < b && b < c, "{a} {b} {c}");
    // Each site calibrates its own threshold on the same global forest.
    let thresholds: Vec<f64> = clients
        .iter()
        .filter(|c| c.round == 2 && c.phase == phase::EVALUATION_RECEIVED)
        .map(|c| c.metrics["threshold"])
        .collect();
    assert_eq!(thresholds.len(), 3);
    assert!(
        thresholds.windows(2).any(|w| w[0] != w[1]),
        "{thresholds:?}"
    );
    assert_eq!(
        recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.phase == phase::ROUND_AGGREGATED)
            .count(),
        2
    );
    // The same federation seed merges the same forest, byte for byte; another does not.
    let (_, _, again) = federate(7).await;
    assert_eq!(again, forest);
    let (_, _, other) = federate(8).await;
    assert_ne!(other, forest);
}

/// How a hand-written site spoils its contribution.
#[derive(Clone, Copy, Debug)]
enum Spoil {
    /// Announces the whole encoding, sends it without its last 10 bytes.
    Truncated,
    /// Trees over 3 features; the header claims the federation's 4.
    WrongFeatures,
    /// More trees than asked for (and says so).
    TooManyTrees,
    /// A threshold replaced by NaN (the checksum matches the spoiled bytes).
    NanThreshold,
    /// Not a forest at all.
    Garbage,
}

/// A hand-written tree site that joins, waits for its training task and answers with a
/// spoiled contribution; returns the aggregator's answer to it.
async fn spoiling_client(target: String, i: usize, spoil: Spoil) -> tonic::Status {
    let mut client = FederationClient::connect(target).await.unwrap();
    let version = Some(fedics_federation::our_version());
    let session = client
        .join(authed(
            i,
            JoinRequest {
                protocol_version: version,
                site_id: site_id(i),
                num_examples: 100,
                num_params: 0,
                model_kind: ModelKind::Trees as i32,
                n_features: FEATURES as u32,
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
    let (round, tp) = loop {
        match tasks.message().await.unwrap().and_then(|m| m.kind) {
            Some(Kind::Header(h)) => {
                assert_eq!(h.model_bytes, 0, "a tree training task carries no model");
                break (h.round, h.tree_plan.expect("a tree plan"));
            }
            Some(_) => {}
            None => panic!("the task stream ended"),
        }
    };
    let asked = tp.n_trees as usize;
    let plan = |n_trees| TreePlan {
        round,
        n_trees,
        max_samples: tp.max_samples as usize,
        seed: tp.seed,
    };
    let mut site = forest_site(i, 100);
    let good = site.grow(&plan(asked)).unwrap().trees;
    let claimed = match spoil {
        Spoil::TooManyTrees => tp.n_trees + 3,
        _ => tp.n_trees,
    };
    let (payload, announced, sent) = match spoil {
        Spoil::Truncated => {
            let cut = good[..good.len() - 10].to_vec();
            (cut, good.len() as u64, sha256(&good))
        }
        Spoil::WrongFeatures => {
            let mut three = IForestSite::new(3, rows(100, 3, false, 5)).unwrap();
            let b = three.grow(&plan(asked)).unwrap().trees;
            let sha = sha256(&b);
            (b.clone(), b.len() as u64, sha)
        }
        Spoil::TooManyTrees => {
            let b = site.grow(&plan(asked + 3)).unwrap().trees;
            let sha = sha256(&b);
            (b.clone(), b.len() as u64, sha)
        }
        Spoil::NanThreshold => {
            let mut b = good.clone();
            // The first tree's root split: its threshold at bytes 40..48.
            b[40..48].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
            let sha = sha256(&b);
            (b.clone(), b.len() as u64, sha)
        }
        Spoil::Garbage => {
            let b = vec![0xAB; 200];
            (b.clone(), 200, sha256(&b))
        }
    };
    let header = UpdateChunk {
        kind: Some(update_chunk::Kind::Header(UpdateHeader {
            protocol_version: version,
            session,
            round,
            num_examples: 100,
            metrics: BTreeMap::new(),
            update_bytes: announced,
            update_sha256: sent,
            norm_before_clip: 0.0,
            model_kind: ModelKind::Trees as i32,
            trees: Some(TreeContribution {
                format_version: tp.format_version,
                n_trees: claimed,
                n_features: FEATURES as u32,
            }),
        })),
    };
    let data = UpdateChunk {
        kind: Some(update_chunk::Kind::Data(payload.into())),
    };
    let answer = client
        .submit_update(authed(i, tokio_stream::iter(vec![header, data])))
        .await
        .expect_err("a spoiled contribution is refused");
    // Stay connected until the aggregator ends the stream.
    while let Ok(Some(_)) = tasks.message().await {}
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_contributions_are_rejected_with_a_reason_and_never_merged() {
    let spoils = [
        Spoil::Truncated,
        Spoil::WrongFeatures,
        Spoil::TooManyTrees,
        Spoil::NanThreshold,
        Spoil::Garbage,
    ];
    let n = spoils.len() + 1;
    let mut config = AggregatorConfig::new(loopback(), keys(n));
    config.evaluate = false;
    let recorder = Arc::new(Recorder::default());
    let agg = Aggregator::start_trees(config, trees(24), recorder.clone())
        .await
        .unwrap();
    let url = format!("http://{}", agg.addr());
    let honest = tokio::spawn(run_tree_site(
        site_config(&url, 0, 100),
        Box::new(forest_site(0, 100)),
        std::future::pending(),
    ));
    let rogues: Vec<_> = spoils
        .iter()
        .enumerate()
        .map(|(k, &s)| tokio::spawn(spoiling_client(url.clone(), k + 1, s)))
        .collect();
    agg.wait_for_sites(n, WAIT).await.unwrap();
    let r = agg.run_round().await.unwrap();
    assert_eq!(r.participants, vec!["site-0"], "{r:?}");
    assert!(
        r.dropped.is_empty(),
        "rejections do not wait for the deadline: {r:?}"
    );
    let expect = [
        "received",
        "expected 4 features, found 3",
        "7 trees announced, 4 were asked for",
        "non-finite",
        "magic",
    ];
    assert_eq!(r.rejected.len(), spoils.len(), "{r:?}");
    for (k, why) in expect.iter().enumerate() {
        let reason = &r.rejected[&site_id(k + 1)];
        assert!(reason.contains(why), "{:?}: {reason}", spoils[k]);
    }
    // Only the honest site's trees were pooled.
    assert_eq!(r.train_metrics["agg.num_clients"], 1.0);
    assert_eq!(r.train_metrics["agg.contributed_trees"], 4.0);
    let global = IsolationForest::from_bytes(&agg.global_forest().unwrap()).unwrap();
    assert_eq!(global.n_trees(), 24);
    let rejected_events: Vec<String> = recorder
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.phase == phase::UPDATE_REJECTED)
        .map(|e| e.node_id.clone())
        .collect();
    assert_eq!(rejected_events.len(), spoils.len());
    agg.shutdown().await.unwrap();
    for (k, rogue) in rogues.into_iter().enumerate() {
        let status = tokio::time::timeout(WAIT, rogue).await.unwrap().unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(expect[k]), "{status:?}");
    }
    tokio::time::timeout(WAIT, honest)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A parameter site (it must not join a tree federation).
struct Params;

impl LocalTrainer for Params {
    fn num_params(&self) -> usize {
        3
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_federations_refuse_dp_parameter_strategies_and_mismatched_sites() {
    let noop = || Arc::new(fedics_federation::NoopObserver);
    let mut dp = AggregatorConfig::new(loopback(), keys(2));
    dp.dp = Some(DpConfig {
        clip: 1.0,
        noise_multiplier: 1.0,
        mode: NoiseMode::Central,
        budget: PrivacyBudget::new(10.0, 1e-5).unwrap(),
    });
    let err = Aggregator::start_trees(dp, trees(10), noop())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FederationError::Config(m) if m.contains("differential privacy")),
        "{err}"
    );
    let mut median = AggregatorConfig::new(loopback(), keys(2));
    median.strategy = StrategyConfig::Median;
    let err = Aggregator::start_trees(median, trees(10), noop())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FederationError::Config(m) if m.contains("median")),
        "{err}"
    );
    let none =
        Aggregator::start_trees(AggregatorConfig::new(loopback(), keys(2)), trees(0), noop())
            .await
            .unwrap_err();
    assert!(matches!(none, FederationError::Config(_)), "{none}");

    let agg = Aggregator::start_trees(
        AggregatorConfig::new(loopback(), keys(2)),
        trees(10),
        noop(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", agg.addr());
    // Rows of another width, and a parameter site: refused for good at join.
    let three = IForestSite::new(3, rows(50, 3, false, 1)).unwrap();
    let err = run_tree_site(
        site_config(&url, 0, 50),
        Box::new(three),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SiteError::Refused(s) if s.message().contains("features")),
        "{err}"
    );
    let err = run_site(
        site_config(&url, 1, 1),
        Box::new(Params),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SiteError::Refused(s) if s.message().contains("merges trees")),
        "{err}"
    );
    // A model kind from a later protocol version is refused, not taken for parameters.
    let mut client = FederationClient::connect(url.clone()).await.unwrap();
    let err = client
        .join(authed(
            0,
            JoinRequest {
                protocol_version: Some(fedics_federation::our_version()),
                site_id: site_id(0),
                model_kind: 9,
                ..JoinRequest::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("unknown"), "{err:?}");
    agg.shutdown().await.unwrap();

    // A tree site joining a federation of parameters is refused too.
    let params = Aggregator::start(
        AggregatorConfig::new(loopback(), keys(1)),
        vec![0.0; 3],
        noop(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", params.addr());
    let err = run_tree_site(
        site_config(&url, 0, 50),
        Box::new(forest_site(0, 50)),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SiteError::Refused(s) if s.message().contains("averages parameters")),
        "{err}"
    );
    params.shutdown().await.unwrap();
}
