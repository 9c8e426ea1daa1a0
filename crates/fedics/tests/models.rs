//! `fedics train` and `fedics eval` as users run them: on a small labelled CSV, and with
//! the bad inputs a user will bring (missing column, non-numeric value, unseen category,
//! empty file, a model file from another version or cut short).

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fedics");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("fedics runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A CIC-IDS-like CSV: two numeric columns, a protocol column, a label.
fn write_csv(path: &Path, rows: usize, protocols: &[&str], attack_every: usize) {
    let mut s = String::from("Flow ID, Duration,Bytes,Protocol,Label\n");
    for i in 0..rows {
        let attack = attack_every > 0 && i % attack_every == 0;
        let (d, b) = if attack {
            (900.0 + i as f64 % 7.0, 90_000.0)
        } else {
            (10.0 + (i % 13) as f64, 500.0 + (i % 17) as f64 * 10.0)
        };
        let p = protocols[i % protocols.len()];
        let label = if attack { "DoS" } else { "BENIGN" };
        s.push_str(&format!("f{i},{d},{b},{p},{label}\n"));
    }
    std::fs::write(path, s).expect("write csv");
}

#[test]
fn eval_on_csv_prints_one_json_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, test) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
    write_csv(&train, 3000, &["tcp", "udp"], 10);
    // `icmp` never occurs in training: encoded as zeros and reported, not an error.
    write_csv(&test, 1000, &["tcp", "udp", "icmp"], 5);
    for model in ["iforest", "ae", "mlp"] {
        let o = run(&[
            "eval",
            "--dataset",
            "csv",
            "--label-col",
            "Label",
            "--drop-cols",
            "Flow ID",
            "--train",
            train.to_str().unwrap(),
            "--test",
            test.to_str().unwrap(),
            "--model",
            model,
            "--throughput-rows",
            "2000",
            "--epochs",
            "5",
            "--json",
        ]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("test.csv: column `Protocol`: 333 rows") && e.contains("icmp"),
            "{e}"
        );
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
        assert_eq!(v["model"], model);
        assert_eq!(v["n_test"], 1000);
        assert_eq!(v["n_features"], 4, "2 numeric + 2 one-hot protocol columns");
        assert_eq!(v["unseen_categories"]["Protocol"], 333);
        let auc = v["roc_auc"].as_f64().expect("roc_auc");
        assert!(auc > 0.9, "{model}: roc_auc {auc}");
        assert!(v["score_rows_per_s"]["single_thread"].as_f64().unwrap() > 0.0);
        assert!(v["at_threshold"]["recall"].as_f64().is_some());
        if model == "mlp" {
            assert!(v["accuracy"].as_f64().unwrap() > 0.9);
            assert!(v["per_class_recall"]["DoS"].as_f64().is_some());
        }
    }
}

#[test]
fn bad_csv_inputs_name_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.csv");
    write_csv(&good, 200, &["tcp"], 10);
    let eval = |test: &Path| {
        run(&[
            "eval",
            "--dataset",
            "csv",
            "--label-col",
            "Label",
            "--drop-cols",
            "Flow ID",
            "--train",
            good.to_str().unwrap(),
            "--test",
            test.to_str().unwrap(),
            "--model",
            "iforest",
            "--throughput-rows",
            "100",
            "--json",
        ])
    };

    let missing = dir.path().join("missing.csv");
    std::fs::write(
        &missing,
        "Flow ID,Duration,Protocol,Label\nf1,3,tcp,BENIGN\n",
    )
    .unwrap();
    let o = eval(&missing);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("missing.csv") && e.contains("Bytes"), "{e}");

    let text = dir.path().join("text.csv");
    std::fs::write(
        &text,
        "Flow ID,Duration,Bytes,Protocol,Label\nf1,3,10,tcp,BENIGN\nf2,4,lots,tcp,BENIGN\n",
    )
    .unwrap();
    let e = stderr(&eval(&text));
    assert!(
        e.contains("text.csv:3") && e.contains("`Bytes`") && e.contains("`lots`"),
        "{e}"
    );

    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let e = stderr(&eval(&empty));
    assert!(e.contains("empty.csv") && e.contains("empty file"), "{e}");

    let no_label = run(&[
        "train",
        "--dataset",
        "csv",
        "--label-col",
        "Class",
        "--data",
        good.to_str().unwrap(),
        "--model",
        "iforest",
        "--out",
        dir.path().join("m").to_str().unwrap(),
    ]);
    assert!(!no_label.status.success());
    assert!(stderr(&no_label).contains("Class"), "{}", stderr(&no_label));
}

#[test]
fn model_files_of_another_version_or_cut_short_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("train.csv");
    write_csv(&data, 500, &["tcp", "udp"], 10);
    let model = dir.path().join("ae.model");
    let o = run(&[
        "train",
        "--dataset",
        "csv",
        "--label-col",
        "Label",
        "--drop-cols",
        "Flow ID",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "ae",
        "--epochs",
        "2",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&model).expect("model written");
    assert_eq!(&bytes[..8], b"FEDICSMF");

    // The demo loads model files from its models dir: point it at broken ones.
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let demo = |name: &str| {
        run(&[
            "demo",
            "--no-http",
            "--duration",
            "0",
            "--data-dir",
            dir.path().join(name).to_str().unwrap(),
            "--models-dir",
            models.to_str().unwrap(),
        ])
    };
    // Cut short.
    std::fs::write(models.join("ae.model"), &bytes[..bytes.len() - 100]).unwrap();
    std::fs::copy(&model, models.join("lstm-ae.model")).unwrap();
    std::fs::copy(&model, models.join("mlp.model")).unwrap();
    let e = stderr(&demo("d1"));
    assert!(e.contains("ae.model") && e.contains("truncated"), "{e}");
    // Another container version.
    let mut other = bytes.clone();
    other[8] = 9;
    std::fs::write(models.join("ae.model"), &other).unwrap();
    let e = stderr(&demo("d2"));
    assert!(e.contains("container format version 9"), "{e}");
    // The right container, but an `ae` file where an LSTM-AE is expected.
    std::fs::copy(&model, models.join("ae.model")).unwrap();
    let e = stderr(&demo("d3"));
    assert!(
        e.contains("lstm-ae.model") && e.contains("holds a `ae` model, expected `lstm-ae`"),
        "{e}"
    );
}
