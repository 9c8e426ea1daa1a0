//! `fedics fl simulate` end to end on NSL-KDD: real gRPC peers on loopback federating the
//! MLP (and the autoencoder, and the Isolation Forest by merging trees); the federated model
//! is compared with central training, and with one Byzantine site
//! of five the robust strategies hold while FedAvg degrades (measured here, not assumed).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fedics");

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/nsl-kdd")
        .join(name)
}

fn simulate(extra: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["fl", "simulate", "--dataset", "nsl-kdd", "--json"])
        .arg("--train")
        .arg(data("KDDTrain+.txt.gz"))
        .arg("--test")
        .arg(data("KDDTest+.txt.gz"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("fedics runs");
    assert!(
        out.status.success(),
        "fl simulate {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn binary_accuracy(v: &Value) -> f64 {
    v["final"]["binary_accuracy"]
        .as_f64()
        .expect("binary accuracy")
}

#[test]
fn three_sites_federate_the_mlp_and_compare_with_central_training() {
    let v = simulate(&["--sites", "3", "--rounds", "5", "--compare-central"]);
    let rounds = v["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 5);
    for r in rounds {
        assert_eq!(r["participants"].as_array().unwrap().len(), 3, "{r}");
        assert!(r["dropped"].as_array().unwrap().is_empty());
        assert!(
            r["bytes_sent"].as_u64().unwrap() > 10_117 * 4,
            "the model crossed the wire"
        );
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(v["params"], 10_117);
    let rows: u64 = v["rows_per_site"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(rows, 125_973, "every KDDTrain+ row is at exactly one site");
    let fed = binary_accuracy(&v);
    let central = v["central"]["test"]["binary_accuracy"].as_f64().unwrap();
    println!(
        "federated {fed:.4} central {central:.4} total {}s",
        v["total_seconds"]
    );
    assert!(fed > 0.70, "federated binary accuracy {fed}");
    assert!(
        (fed - central).abs() < 0.05,
        "federated {fed} vs central {central}"
    );
}

#[test]
fn one_byzantine_site_of_five_breaks_fedavg_but_not_the_robust_strategies() {
    let common = ["--sites", "5", "--rounds", "3"];
    let clean = binary_accuracy(&simulate(&common));
    let attacked = |strategy: &str| {
        let v = simulate(
            &[
                &common[..],
                &[
                    "--byzantine",
                    "1",
                    "--byzantine-scale",
                    "100",
                    "--strategy",
                    strategy,
                ],
            ]
            .concat(),
        );
        (binary_accuracy(&v), v)
    };
    let (fedavg, _) = attacked("fedavg");
    println!("clean fedavg {clean:.4}, attacked fedavg {fedavg:.4}");
    assert!(
        fedavg < clean - 0.05,
        "FedAvg should degrade: clean {clean}, attacked {fedavg}"
    );
    for s in ["median", "trimmed-mean:beta=0.2", "krum:f=1"] {
        let (acc, v) = attacked(s);
        println!("attacked {s} {acc:.4}");
        assert!(
            (acc - clean).abs() <= 0.02 + 1e-9,
            "{s}: {acc} vs clean {clean}: {}",
            v["rounds"]
        );
    }
}

#[test]
fn differential_privacy_is_accounted_and_the_budget_enforced() {
    let v = simulate(&[
        "--sites",
        "3",
        "--rounds",
        "5",
        "--dp-noise",
        "1.0",
        "--dp-clip",
        "5.0",
        "--max-epsilon",
        "30",
    ]);
    let rounds = v["rounds"].as_array().unwrap();
    let eps: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r["epsilon"].as_f64())
        .collect();
    assert!(!eps.is_empty(), "{v}");
    assert!(
        eps.windows(2).all(|w| w[1] > w[0]),
        "ε grows round by round: {eps:?}"
    );
    // With every site in every round (q = 1) and σ = 1, the RDP accountant's ε after T
    // rounds is that of T compositions of the Gaussian mechanism; compare with the CLI.
    let out = Command::new(BIN)
        .args([
            "dp",
            "epsilon",
            "--sampling-rate",
            "1",
            "--noise-multiplier",
            "1.0",
        ])
        .args([
            "--steps",
            &eps.len().to_string(),
            "--delta",
            "1e-5",
            "--json",
        ])
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = *eps.last().unwrap();
    assert!(
        (cli["epsilon"].as_f64().unwrap() - last).abs() < 1e-3,
        "ledger {last} vs accountant {cli}"
    );
    let refused = simulate(&[
        "--sites",
        "3",
        "--rounds",
        "5",
        "--dp-noise",
        "1.0",
        "--dp-clip",
        "5.0",
        "--max-epsilon",
        "8",
    ]);
    let last = refused["rounds"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let why = last["refused"]
        .as_str()
        .expect("the round past the budget is refused");
    assert!(why.contains("maximum"), "{why}");
}

#[test]
fn adaptive_clipping_moves_the_bound_and_epsilon_stays_that_of_sigma() {
    // A first bound far below the MLP's update norms: every update is clipped, so the
    // bound grows round by round (by about e^(2·0.5) while all are clipped; the count's
    // noise moves the exponent by 2·0.3/3 = 0.2 standard deviation); ε is that of σ = 0.5
    // at q = 1 whatever the bounds.
    let v = simulate(&[
        "--sites",
        "3",
        "--rounds",
        "3",
        "--dp-noise",
        "0.5",
        "--dp-clip",
        "0.01",
        "--max-epsilon",
        "1000",
        "--dp-adaptive-quantile",
        "0.5",
        "--dp-adaptive-lr",
        "2.0",
        "--dp-count-noise",
        "0.3",
    ]);
    assert_eq!(v["dp"]["adaptive_quantile"], 0.5, "{}", v["dp"]);
    let rounds = v["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{v}");
    let clips: Vec<f64> = rounds
        .iter()
        .map(|r| {
            r["train"]["agg.dp_clip"]
                .as_f64()
                .expect("the round's bound")
        })
        .collect();
    println!("adaptive clipping, bounds per round: {clips:?}");
    assert_eq!(clips[0], 0.01);
    assert!(clips.windows(2).all(|w| w[1] > w[0]), "{clips:?}");
    for r in rounds {
        assert_eq!(r["train"]["agg.dp_noise_multiplier"], 0.5, "{r}");
        // (0.5⁻² − (2·0.3)⁻²)^(−1/2): the updates' share of σ next to the count's
        // (the JSON keeps 4 decimals).
        let z = r["train"]["agg.dp_update_noise_multiplier"]
            .as_f64()
            .unwrap();
        assert!((z - (4.0f64 - 1.0 / 0.36).powf(-0.5)).abs() < 1e-4, "{z}");
    }
    let e3 = fedics_fl::dp::epsilon(1.0, 0.5, 3, 1e-5).unwrap().epsilon;
    let e = rounds[2]["epsilon"].as_f64().unwrap();
    assert!((e - e3).abs() < 1e-3, "{e} vs {e3}");
    // Without DP there is no bound to adapt.
    let out = simulate_slice(2000, 500, &["--dp-adaptive-quantile", "0.5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--dp-adaptive-quantile") && err.contains("--dp-noise"),
        "{err}"
    );
}

#[test]
fn a_federation_is_recorded_where_the_api_serves_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fedics_store::testing::TestDb::new(
        fedics_store::Engine::Postgres,
    ));
    let v = simulate(&[
        "--sites",
        "3",
        "--rounds",
        "2",
        "--strategy",
        "fedprox:mu=0.05",
        "--dp-noise",
        "1.0",
        "--dp-clip",
        "5.0",
        "--db",
        db.url(),
    ]);
    let eps: Vec<f64> = v["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["epsilon"].as_f64())
        .collect();
    rt.block_on(async {
        let store = db.open().await;
        let (rounds, total) = store.list_fl_rounds(10, 0).await.unwrap();
        assert_eq!(total, 2);
        assert!(
            rounds
                .iter()
                .all(|r| r.status == fedics_store::RoundStatus::Completed && r.progress == 100)
        );
        let clients = store.fl_round_clients(rounds[0].id).await.unwrap();
        assert_eq!(clients.len(), 3, "one row per site");
        assert!(clients.iter().all(|c| c.loss.is_some_and(f64::is_finite)));
        // The aggregator's configuration, as the API shows it.
        let fed = store
            .latest_fl_federation()
            .await
            .unwrap()
            .expect("the federation's configuration is recorded");
        assert!(fed.id.starts_with("fl-simulate-"), "{}", fed.id);
        assert_eq!(fed.strategy, "fedprox");
        assert_eq!(fed.strategy_params.get("mu"), Some(&0.05));
        assert_eq!(fed.total_sites, 3);
        let dp = fed.dp.expect("DP settings");
        assert_eq!((dp.noise_multiplier, dp.clip_norm), (1.0, 5.0));
        assert_eq!(dp.mode, "central");
        let ledger = store.privacy_ledger(None).await.unwrap();
        assert!(ledger.iter().all(|e| e.federation_id == fed.id));
        let recorded: Vec<f64> = ledger.iter().map(|e| e.epsilon).collect();
        assert_eq!(recorded.len(), eps.len());
        for (a, b) in recorded.iter().zip(&eps) {
            assert!(
                (a - b).abs() < 1e-3,
                "ledger {recorded:?} vs report {eps:?}"
            );
        }
        store.close().await;
    });
}

/// Lines of an NSL-KDD file (gzip or plain).
fn nsl_kdd_lines(name: &str) -> Vec<String> {
    use std::io::Read;
    let bytes = std::fs::read(data(name)).expect("dataset readable");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines().map(str::to_owned).collect()
}

/// What `fl serve` and its two `fl join` sites printed, and the model files.
struct NetworkRun {
    report: Value,
    sites: Vec<Value>,
    init: Vec<u8>,
    global: Vec<u8>,
}

/// Trains an initial model of `model` (`fedics train --model …` plus `train_args`) on a
/// public slice of NSL-KDD, then runs `fl serve` for two rounds and two `fl join` sites with
/// their own slices as separate processes over loopback; a third site with a wrong key is
/// refused first.
fn federate_over_the_network(model: &str, train_args: &[&str]) -> NetworkRun {
    let dir = tempfile::tempdir().unwrap();
    let lines = nsl_kdd_lines("KDDTest+.txt.gz");
    for (name, range) in [
        ("init.data", 0..4000),
        ("site-a.data", 4000..10000),
        ("site-b.data", 10000..16000),
    ] {
        std::fs::write(dir.path().join(name), lines[range].join("\n")).unwrap();
    }
    federate_files(&dir, model, "nsl-kdd", train_args, &[], &[])
}

/// As [`federate_over_the_network`] on the data files `init.data`, `site-a.data` and
/// `site-b.data` of `dir`, of `dataset`; `join_args` go to both sites.
fn federate_files(
    dir: &tempfile::TempDir,
    model: &str,
    dataset: &str,
    train_args: &[&str],
    serve_args: &[&str],
    join_args: &[&str],
) -> NetworkRun {
    use std::process::Stdio;
    let p = |n: &str| dir.path().join(n);
    let out = Command::new(BIN)
        .args(["train", "--model", model, "--dataset", dataset])
        .args(train_args)
        .arg("--data")
        .arg(p("init.data"))
        .arg("--out")
        .arg(p("init.model"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (key_a, key_b) = ("key-of-site-a-0123456789", "key-of-site-b-0123456789");
    std::fs::write(
        p("sites.txt"),
        format!("# site id, key\nsite-a {key_a}\nsite-b {key_b}\n"),
    )
    .unwrap();
    std::fs::write(p("a.key"), key_a).unwrap();
    std::fs::write(p("b.key"), key_b).unwrap();
    std::fs::write(p("wrong.key"), "not-the-key-of-site-b-000").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new(BIN)
        .args([
            "fl",
            "serve",
            "--rounds",
            "2",
            "--json",
            "--wait-sites",
            "120",
        ])
        .args(serve_args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--model")
        .arg(p("init.model"))
        .arg("--sites-file")
        .arg(p("sites.txt"))
        .arg("--out")
        .arg(p("global.model"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let join = |site: &str, key: &str, data: &str| {
        Command::new(BIN)
            .args(["fl", "join", "--site", site, "--json", "--dataset", dataset])
            .args(join_args)
            .args(["--server", &format!("http://127.0.0.1:{port}")])
            .arg("--key-file")
            .arg(p(key))
            .arg("--model")
            .arg(p("init.model"))
            .arg("--data")
            .arg(p(data))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A site with the wrong key is refused for good (and counts for nothing).
    let intruder = join("site-b", "wrong.key", "site-b.data")
        .wait_with_output()
        .unwrap();
    assert!(!intruder.status.success(), "a wrong key must be refused");
    let err = String::from_utf8_lossy(&intruder.stderr).to_lowercase();
    assert!(
        err.contains("refused") || err.contains("unauthenticated"),
        "{err}"
    );
    let a = join("site-a", "a.key", "site-a.data");
    let b = join("site-b", "b.key", "site-b.data");
    let server = server.wait_with_output().unwrap();
    assert!(
        server.status.success(),
        "fl serve: {}",
        String::from_utf8_lossy(&server.stderr)
    );
    let report: Value = serde_json::from_slice(&server.stdout).expect("one JSON object");
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{report}");
    for r in rounds {
        assert_eq!(
            r["participants"],
            serde_json::json!(["site-a", "site-b"]),
            "{r}"
        );
    }
    let mut sites = Vec::new();
    for (name, child) in [("site-a", a), ("site-b", b)] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(s["rounds_trained"], 2, "{s}");
        assert_eq!(s["finished"], true, "{s}");
        sites.push(s);
    }
    NetworkRun {
        report,
        sites,
        init: std::fs::read(p("init.model")).unwrap(),
        global: std::fs::read(p("global.model")).unwrap(),
    }
}

#[test]
fn fl_serve_and_fl_join_federate_as_separate_processes() {
    let run = federate_over_the_network("mlp", &["--epochs", "1"]);
    assert_eq!(run.report["model"], "mlp");
    for r in run.report["rounds"].as_array().unwrap() {
        assert!(
            r["eval"]["accuracy"].as_f64().is_some(),
            "sites evaluate the global model: {r}"
        );
    }
    // The global model is a model file `fedics eval`-style tools read.
    assert_ne!(run.global, run.init, "the federation changed the weights");
}

#[test]
fn fl_serve_and_fl_join_federate_the_autoencoder_with_per_site_thresholds() {
    let run = federate_over_the_network("ae", &["--epochs", "1"]);
    let v = &run.report;
    assert_eq!(v["model"], "ae");
    for r in v["rounds"].as_array().unwrap() {
        let t = r["eval"]["threshold"].as_f64().expect("thresholds");
        assert!(t.is_finite() && t > 0.0, "{r}");
        assert!(r["eval"]["roc_auc"].as_f64().is_some(), "{r}");
    }
    // The output model carries the sites' mean threshold of the last global model.
    assert_eq!(v["threshold"], v["rounds"][1]["eval"]["threshold"]);
    println!(
        "fl serve/join ae: sites' ROC-AUC per round {} {}, threshold {}",
        v["rounds"][0]["eval"]["roc_auc"], v["rounds"][1]["eval"]["roc_auc"], v["threshold"]
    );
    assert_ne!(run.global, run.init, "the federation changed the weights");
}

#[test]
fn fl_serve_and_fl_join_federate_the_isolation_forest_by_merging_trees() {
    let run = federate_over_the_network("iforest", &["--trees", "40"]);
    let v = &run.report;
    assert_eq!(v["model"], "iforest");
    for r in v["rounds"].as_array().unwrap() {
        // Both sites grew the round's 40 trees between them, and calibrated thresholds.
        assert_eq!(r["train"]["agg.trees"], 40.0, "{r}");
        assert_eq!(r["train"]["agg.contributed_trees"], 40.0, "{r}");
        let t = r["eval"]["threshold"].as_f64().expect("thresholds");
        assert!(t > 0.0 && t < 1.0, "{r}");
        assert!(r["eval"]["roc_auc"].as_f64().unwrap() > 0.5, "{r}");
        assert_eq!(r["epsilon"], Value::Null);
    }
    assert_eq!(v["threshold"], v["rounds"][1]["eval"]["threshold"]);
    println!(
        "fl serve/join iforest: sites' ROC-AUC per round {} {}, threshold {}",
        v["rounds"][0]["eval"]["roc_auc"], v["rounds"][1]["eval"]["roc_auc"], v["threshold"]
    );
    for s in &run.sites {
        assert!(s["rows"].as_u64().unwrap() > 1000, "benign rows: {s}");
    }
    assert_ne!(run.global, run.init, "the federation grew a new forest");
}

#[test]
fn fl_serve_and_fl_join_federate_the_lstm_autoencoder_over_windows_of_flows() {
    // Each site's own simulated plant (its flows carry their ground truth); the initial
    // model is trained on a third plant's.
    let dir = tempfile::tempdir().unwrap();
    for (name, seed) in [
        ("init.data", "21"),
        ("site-a.data", "22"),
        ("site-b.data", "23"),
    ] {
        let out = Command::new(BIN)
            .args([
                "simulate", "--flows", "6000", "--sites", "1", "--seed", seed,
            ])
            .arg("--out")
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = federate_files(
        &dir,
        "lstm-ae",
        "flows",
        &[
            "--window", "20", "--stride", "2", "--hidden", "32,8", "--epochs", "5", "--lr", "0.01",
        ],
        &["--lr", "0.005"],
        // Windows 5 flows apart: more to train on; a held-out window then shares flows
        // with trained ones (the evaluation is optimistic, which this test does not weigh).
        &["--stride", "5"],
    );
    let v = &run.report;
    assert_eq!(v["model"], "lstm-ae");
    for r in v["rounds"].as_array().unwrap() {
        // Every site trained on its benign windows and calibrated its own threshold.
        assert!(
            r["train"]["loss"].as_f64().is_some_and(f64::is_finite),
            "{r}"
        );
        let t = r["eval"]["threshold"].as_f64().expect("thresholds");
        assert!(t.is_finite() && t > 0.0, "{r}");
        // The sites' held-out windows hold attacks of the simulated campaigns (scans,
        // discovery): the global model tells them from benign sequences.
        let auc = r["eval"]["roc_auc"]
            .as_f64()
            .expect("both classes held out");
        assert!(auc > 0.9, "{r}");
        assert!(r["eval"]["binary_accuracy"].as_f64().is_some(), "{r}");
    }
    assert_eq!(v["threshold"], v["rounds"][1]["eval"]["threshold"]);
    println!(
        "fl serve/join lstm-ae: sites' loss per round {} {}, ROC-AUC {} {}, threshold {}",
        v["rounds"][0]["train"]["loss"],
        v["rounds"][1]["train"]["loss"],
        v["rounds"][0]["eval"]["roc_auc"],
        v["rounds"][1]["eval"]["roc_auc"],
        v["threshold"]
    );
    for s in &run.sites {
        assert_eq!(s["model"], "lstm-ae", "{s}");
        assert!(s["windows"].as_u64().unwrap() >= 2, "benign windows: {s}");
        assert!(
            s["held_out"].as_u64().unwrap() >= 1,
            "held-out windows: {s}"
        );
    }
    assert_ne!(run.global, run.init, "the federation changed the weights");
}

#[test]
fn three_sites_federate_the_autoencoder_with_per_site_thresholds() {
    let v = simulate(&[
        "--sites",
        "3",
        "--rounds",
        "3",
        "--model",
        "ae",
        "--compare-central",
    ]);
    let rounds = v["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{v}");
    for r in rounds {
        // Every site calibrated a threshold on its own benign rows; the test uses their mean.
        let t = r["sites_eval"]["threshold"].as_f64().expect("thresholds");
        assert!(t > 0.0, "{r}");
        assert_eq!(r["test"]["threshold"], r["sites_eval"]["threshold"], "{r}");
    }
    let fed = v["final"]["roc_auc"].as_f64().unwrap();
    let central = v["central"]["test"]["roc_auc"].as_f64().unwrap();
    println!("ae: federated ROC-AUC {fed:.4}, central {central:.4}");
    assert!(fed > 0.9, "{v}");
    assert!(
        (fed - central).abs() < 0.03,
        "federated {fed} vs central {central}"
    );
}

/// `fl simulate` on NSL-KDD files of `train` and `test` lines (a slice keeps it quick).
fn simulate_slice(train: usize, test: usize, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let (tr, te) = (dir.path().join("train.txt"), dir.path().join("test.txt"));
    std::fs::write(&tr, nsl_kdd_lines("KDDTrain+.txt.gz")[..train].join("\n")).unwrap();
    std::fs::write(&te, nsl_kdd_lines("KDDTest+.txt.gz")[..test].join("\n")).unwrap();
    Command::new(BIN)
        .args(["fl", "simulate", "--dataset", "nsl-kdd", "--json"])
        .arg("--train")
        .arg(&tr)
        .arg("--test")
        .arg(&te)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("fedics runs")
}

#[test]
fn three_sites_federate_the_isolation_forest_by_merging_trees() {
    let common = ["--sites", "3", "--model", "iforest", "--trees", "60"];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(fedics_store::testing::TestDb::new(
        fedics_store::Engine::Sqlite,
    ));
    let out = simulate_slice(
        8000,
        4000,
        &[
            &common[..],
            &["--rounds", "3", "--compare-central", "--db", db.url()],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["model"], "iforest");
    assert_eq!(v["trees"], 60);
    let rounds = v["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{v}");
    for (k, r) in rounds.iter().enumerate() {
        assert_eq!(r["participants"].as_array().unwrap().len(), 3, "{r}");
        assert_eq!(r["rejected"], serde_json::json!({}), "{r}");
        assert_eq!(r["train"]["agg.trees"], 60.0, "{r}");
        assert_eq!(r["train"]["agg.contributed_trees"], 60.0, "{r}");
        // The pool: the contributions, and from round 2 the global forest's trees too.
        let pool = if k == 0 { 60.0 } else { 120.0 };
        assert_eq!(r["train"]["agg.pool_trees"], pool, "{r}");
        // Every site calibrated its own threshold; the test uses their weighted mean.
        let t = r["sites_eval"]["threshold"].as_f64().expect("thresholds");
        assert!(t > 0.0 && t < 1.0, "{r}");
        assert_eq!(r["test"]["threshold"], r["sites_eval"]["threshold"], "{r}");
        assert!(r["sites_eval"]["roc_auc"].as_f64().is_some(), "{r}");
        assert!(
            r["bytes_received"].as_u64().unwrap() > 0,
            "trees crossed the wire"
        );
        assert_eq!(r["epsilon"], Value::Null);
    }
    let fed = v["final"]["roc_auc"].as_f64().unwrap();
    let central = v["central"]["test"]["roc_auc"].as_f64().unwrap();
    assert_eq!(v["central"]["trees"], 60);
    println!("iforest: federated ROC-AUC {fed:.4}, central {central:.4}");
    assert!(fed > 0.8, "{v}");
    assert!(
        (fed - central).abs() < 0.05,
        "federated {fed} vs central {central}"
    );
    // The rounds and every site's contribution are recorded as for the other models.
    rt.block_on(async {
        let store = db.open().await;
        let (recorded, total) = store.list_fl_rounds(10, 0).await.unwrap();
        assert_eq!(total, 3);
        assert!(
            recorded
                .iter()
                .all(|r| r.status == fedics_store::RoundStatus::Completed && r.progress == 100)
        );
        for r in &recorded {
            assert_eq!(store.fl_round_clients(r.id).await.unwrap().len(), 3);
        }
        store.close().await;
    });

    // What acts on parameter vectors is refused, with a reason.
    for (extra, why) in [
        (&["--dp-noise", "1.0", "--dp-clip", "1.0"][..], "dp"),
        (&["--strategy", "median"][..], "median"),
        (&["--byzantine", "1"][..], "byzantine"),
    ] {
        let out = simulate_slice(600, 100, &[&common[..], &["--rounds", "1"], extra].concat());
        assert!(!out.status.success(), "{extra:?} must be refused");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(why) && err.contains("iforest"), "{err}");
    }
}
