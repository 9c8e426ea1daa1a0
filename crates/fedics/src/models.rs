//! `fedics train` and `fedics eval`: fit a model on a dataset (NSL-KDD, a labelled CSV, or
//! our flow JSON Lines), save it, or evaluate it against a test file and print one JSON
//! object.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use fedics_detect::iforest::IForestParams;
use fedics_detect::iforest_detector::IForestModel;
use fedics_ml::train::Progress;
use fedics_ml::{
    AeConfig, AeModel, ClassWeight, ComputeDevice, LstmAeConfig, LstmAeModel, MlpConfig, MlpModel,
    TrainOptions,
};
use fedics_tabular::{
    CsvOptions, FlowReadOptions, Matrix, NonFinitePolicy, PreprocessOptions, Preprocessor,
    RawTable, Schema,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    Iforest,
    Ae,
    LstmAe,
    Mlp,
}

impl ModelKind {
    fn name(self) -> &'static str {
        match self {
            Self::Iforest => "iforest",
            Self::Ae => "ae",
            Self::LstmAe => "lstm-ae",
            Self::Mlp => "mlp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetKind {
    /// NSL-KDD (41 features, label, difficulty; no header).
    NslKdd,
    /// A labelled CSV with a header row (`--label-col`).
    Csv,
    /// FedICS flow JSON Lines (e.g. from `fedics simulate`).
    Flows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FitOn {
    /// Train unsupervised models on the normal rows only.
    Normal,
    /// Train on every row (labels unused by unsupervised models).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NonFinite {
    Error,
    Zero,
    Drop,
}

/// How a dataset is read.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset format.
    #[arg(long, value_enum, default_value = "nsl-kdd")]
    pub dataset: DatasetKind,
    /// CSV: the label column.
    #[arg(long, default_value = "label")]
    pub label_col: String,
    /// CSV: columns to ignore (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub drop_cols: Vec<String>,
    /// CSV: columns to treat as categorical (otherwise inferred from the training file).
    #[arg(long, value_delimiter = ',')]
    pub categorical_cols: Vec<String>,
    /// CSV: labels that mean "no attack" (comma-separated, case-insensitive).
    #[arg(long, value_delimiter = ',', default_value = "normal,benign,0")]
    pub normal_labels: Vec<String>,
    /// CSV: what to do with NaN, infinite or empty numeric cells.
    #[arg(long, value_enum, default_value = "error")]
    pub non_finite: NonFinite,
    /// Scaling of numeric features (fitted on the training file only).
    #[arg(long, default_value = "min-max", value_parser = ["min-max", "standard"])]
    pub scaling: String,
}

/// Model hyper-parameters (defaults per model).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[arg(long, value_enum)]
    pub model: ModelKind,
    #[arg(long, value_enum, default_value = "normal")]
    pub fit_on: FitOn,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epochs (default: ae 10, lstm-ae 5, mlp 30).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size (default: ae 256, lstm-ae 64, mlp 200).
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Hidden layer widths (default: ae 64,16; mlp 64,32; lstm-ae: hidden,latent = 64,16).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// LSTM-AE window (consecutive observations).
    #[arg(long, default_value_t = 60)]
    pub window: usize,
    /// LSTM-AE: step between training windows.
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// MLP class weighting: none, balanced (n / (k n_c)) or sqrt (its square root).
    #[arg(long, default_value = "balanced")]
    pub class_weight: String,
    /// Isolation Forest trees.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Isolation Forest rows per tree.
    #[arg(long, default_value_t = 256)]
    pub max_samples: usize,
    /// Share of normal training rows held out to calibrate the threshold.
    #[arg(long, default_value_t = 0.1)]
    pub calibration_fraction: f64,
    /// Threshold = this quantile of held-out normal scores.
    #[arg(long, default_value_t = 0.99)]
    pub threshold_quantile: f64,
    /// Compute device: cpu, or cuda[:N] in a build with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training data file.
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the model file.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub data_args: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[arg(long)]
    pub train: PathBuf,
    #[arg(long)]
    pub test: PathBuf,
    #[command(flatten)]
    pub data_args: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Rows scored to measure throughput (the test set is repeated to reach it). LSTM-AE:
    /// windows, default 20,000.
    #[arg(long)]
    pub throughput_rows: Option<usize>,
    /// Print the result as one JSON object (otherwise as pretty JSON with a summary).
    #[arg(long)]
    pub json: bool,
}

/// A dataset file read into a table, with its labels in three forms.
pub struct Loaded {
    pub table: RawTable,
    pub is_attack: Vec<bool>,
    /// Class per row for supervised models (NSL-KDD: the 5 categories).
    pub class: Vec<String>,
    /// Sequence key and order (flows: host pair and start time; otherwise file order).
    pub key: Vec<String>,
    pub order: Vec<i64>,
}

pub fn load(path: &Path, args: &DataArgs, schema: Option<&Schema>) -> Result<Loaded> {
    let normal: Vec<String> = args
        .normal_labels
        .iter()
        .map(|s| s.trim().to_lowercase())
        .collect();
    match args.dataset {
        DatasetKind::NslKdd => {
            let d = fedics_tabular::read_nsl_kdd(path)?;
            let n = d.n_rows();
            Ok(Loaded {
                class: d
                    .categories
                    .iter()
                    .map(|c| c.as_str().to_string())
                    .collect(),
                is_attack: d.is_attack,
                table: d.table,
                key: vec![String::new(); n],
                order: (0..n as i64).collect(),
            })
        }
        DatasetKind::Csv => {
            let mut opts = CsvOptions::new(&args.label_col)
                .drop_columns(args.drop_cols.iter().cloned())
                .categorical_columns(args.categorical_cols.iter().cloned())
                .non_finite(match args.non_finite {
                    NonFinite::Error => NonFinitePolicy::Error,
                    NonFinite::Zero => NonFinitePolicy::ReplaceWithZero,
                    NonFinite::Drop => NonFinitePolicy::DropRow,
                });
            if path.extension().is_some_and(|e| e == "tsv") {
                opts = opts.delimiter(b'\t');
            }
            let t = match schema {
                Some(s) => fedics_tabular::read_csv_with_schema(path, &opts, s)?,
                None => fedics_tabular::read_csv(path, &opts)?,
            };
            let labels = t.table.labels().to_vec();
            let n = labels.len();
            Ok(Loaded {
                is_attack: labels
                    .iter()
                    .map(|l| !normal.contains(&l.trim().to_lowercase()))
                    .collect(),
                class: labels,
                table: t.table,
                key: vec![String::new(); n],
                order: (0..n as i64).collect(),
            })
        }
        DatasetKind::Flows => {
            let t = fedics_tabular::read_flows(path, &FlowReadOptions::default())?;
            let labels = t.table.labels().to_vec();
            Ok(Loaded {
                is_attack: labels.iter().map(|l| l != "normal").collect(),
                class: labels,
                table: t.table,
                key: t.key,
                order: t.ts_start_us,
            })
        }
    }
}

pub(crate) fn pre_options(args: &DataArgs) -> PreprocessOptions {
    if args.scaling == "standard" {
        PreprocessOptions::standard()
    } else {
        PreprocessOptions::min_max()
    }
}

/// A progress bar over training epochs and steps.
fn train_bar(what: &str) -> (ProgressBar, impl FnMut(&Progress)) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} epoch {msg} [{bar:30}] {pos}/{len} steps {elapsed_precise}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    let b = bar.clone();
    let cb = move |p: &Progress| {
        if p.step == 1 {
            b.set_length(p.steps_per_epoch as u64);
        }
        b.set_position(p.step as u64);
        b.set_message(format!("{}/{} loss {:.5}", p.epoch, p.epochs, p.loss));
    };
    (bar, cb)
}

fn spinner(msg: &str) -> ProgressBar {
    let s = ProgressBar::new_spinner();
    s.set_message(msg.to_string());
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    s
}

/// A fitted model of any kind.
#[allow(clippy::large_enum_variant)] // one value per command run
pub enum Fitted {
    IForest(Box<IForestModel>),
    Ae(AeModel),
    LstmAe(LstmAeModel),
    Mlp(MlpModel),
}

impl Fitted {
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Self::IForest(m) => m.save(path)?,
            Self::Ae(m) => m.save(path)?,
            Self::LstmAe(m) => m.save(path)?,
            Self::Mlp(m) => m.save(path)?,
        }
        Ok(())
    }

    fn version(&self) -> &str {
        match self {
            Self::IForest(m) => &m.version,
            Self::Ae(m) => m.version(),
            Self::LstmAe(m) => m.version(),
            Self::Mlp(m) => m.version(),
        }
    }
}

fn options(m: &ModelArgs, epochs: usize, batch: usize) -> TrainOptions {
    TrainOptions {
        epochs: m.epochs.unwrap_or(epochs),
        batch_size: m.batch_size.unwrap_or(batch),
        learning_rate: m.lr,
        seed: m.seed,
        calibration_fraction: m.calibration_fraction,
        threshold_quantile: m.threshold_quantile,
    }
}

/// Windows of `t` consecutive rows of the same key (in `order`), as row indices, over the
/// rows `keep`; returned flat.
pub(crate) fn windows_over(
    data: &Loaded,
    keep: &[usize],
    t: usize,
    stride: usize,
) -> Result<Vec<usize>> {
    let keys: Vec<&str> = keep.iter().map(|&i| data.key[i].as_str()).collect();
    let order: Vec<i64> = keep.iter().map(|&i| data.order[i]).collect();
    let w = fedics_tabular::sliding_windows(&keys, &order, t, stride.max(1))?;
    // Indices into `keep` → indices into the data.
    Ok(w.as_flat().iter().map(|&j| keep[j]).collect())
}

/// Fits `args.model` on `data` already transformed into `x`.
pub fn fit(args: &ModelArgs, data: &Loaded, x: &Matrix, pre: &Preprocessor) -> Result<Fitted> {
    let d = x.cols();
    let device: ComputeDevice = args.device.parse()?;
    let rows: Vec<usize> = match (args.model, args.fit_on) {
        (ModelKind::Mlp, _) | (_, FitOn::All) => (0..x.rows()).collect(),
        (_, FitOn::Normal) => (0..x.rows()).filter(|&i| !data.is_attack[i]).collect(),
    };
    if rows.is_empty() {
        bail!("no training rows (with --fit-on normal, the training file has no normal rows)");
    }
    let selected = x.select_rows(&rows)?;
    Ok(match args.model {
        ModelKind::Iforest => {
            let s = spinner("growing isolation forest");
            let params = IForestParams {
                n_estimators: args.trees,
                max_samples: args.max_samples,
                seed: args.seed,
            };
            let m = IForestModel::fit_table(
                selected.as_slice(),
                d,
                Some(pre.clone()),
                &params,
                args.calibration_fraction,
                args.threshold_quantile,
            )?;
            s.finish_and_clear();
            Fitted::IForest(Box::new(m))
        }
        ModelKind::Ae => {
            let hidden = if args.hidden.is_empty() {
                vec![64, 16]
            } else {
                args.hidden.clone()
            };
            let (bar, mut cb) = train_bar("ae");
            let m = AeModel::fit(
                selected.as_slice(),
                d,
                Some(pre.clone()),
                &AeConfig { hidden },
                &options(args, 10, 256),
                device,
                &mut cb,
            )?;
            bar.finish_and_clear();
            Fitted::Ae(m)
        }
        ModelKind::LstmAe => {
            let config = LstmAeConfig {
                window: args.window,
                hidden: args.hidden.first().copied().unwrap_or(64),
                latent: args.hidden.get(1).copied().unwrap_or(16),
            };
            let windows = windows_over(data, &rows, args.window, args.stride)?;
            if windows.is_empty() {
                bail!(
                    "no training windows: no key has {} consecutive training rows",
                    args.window
                );
            }
            let (bar, mut cb) = train_bar("lstm-ae");
            let m = LstmAeModel::fit(
                x.as_slice(),
                d,
                &windows,
                Some(pre.clone()),
                &config,
                &options(args, 5, 64),
                device,
                &mut cb,
            )?;
            bar.finish_and_clear();
            Fitted::LstmAe(m)
        }
        ModelKind::Mlp => {
            let mut classes: Vec<String> = data.class.clone();
            classes.sort();
            classes.dedup();
            let labels: Vec<usize> = data
                .class
                .iter()
                .map(|c| classes.binary_search(c).unwrap_or(0))
                .collect();
            let hidden = if args.hidden.is_empty() {
                vec![64, 32]
            } else {
                args.hidden.clone()
            };
            let cw: ClassWeight = args.class_weight.parse()?;
            let (bar, mut cb) = train_bar("mlp");
            let m = MlpModel::fit(
                x.as_slice(),
                d,
                &labels,
                classes,
                Some(pre.clone()),
                &MlpConfig {
                    hidden,
                    class_weight: cw,
                    ..MlpConfig::default()
                },
                &options(args, 30, 200),
                device,
                &mut cb,
            )?;
            bar.finish_and_clear();
            Fitted::Mlp(m)
        }
    })
}

pub async fn train(args: TrainArgs) -> Result<()> {
    let s = spinner("reading training data");
    let data = load(&args.data, &args.data_args, None)?;
    let pre = Preprocessor::fit(&data.table, pre_options(&args.data_args))?;
    let x = pre.transform(&data.table)?;
    s.finish_and_clear();
    let started = Instant::now();
    let m = tokio::task::block_in_place(|| fit(&args.model, &data, &x, &pre))?;
    m.save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "trained {} ({}) on {} rows in {:.1} s -> {}",
        args.model.model.name(),
        m.version(),
        x.rows(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

/// Scores per test row: the anomaly score (unsupervised) or 1 − P(normal) (MLP).
fn scores(
    m: &Fitted,
    data: &Loaded,
    x: &Matrix,
    window: usize,
    normal_labels: &[String],
) -> Result<Vec<f32>> {
    Ok(match m {
        Fitted::IForest(f) => f.score_f32(x.as_slice()),
        Fitted::Ae(a) => a.score(x.as_slice())?,
        Fitted::LstmAe(l) => {
            let w = row_windows(data, x.rows(), window);
            l.score_windows(x.as_slice(), &w)?
        }
        Fitted::Mlp(mlp) => {
            let k = mlp.classes.len();
            let normal = mlp.classes.iter().position(|c| {
                let c = c.trim().to_lowercase();
                c == "normal" || normal_labels.iter().any(|n| n.trim().to_lowercase() == c)
            });
            mlp.predict_proba(x.as_slice())?
                .chunks(k)
                .map(|p| 1.0 - normal.map(|i| p[i]).unwrap_or(0.0))
                .collect()
        }
    })
}

/// For every row, the window of `t` rows of its key that ends at it (rows too early in
/// their key's history use the key's first window).
fn row_windows(data: &Loaded, n: usize, t: usize) -> Vec<usize> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        by_key.entry(data.key[i].as_str()).or_default().push(i);
    }
    let mut out = vec![0usize; n * t];
    for rows in by_key.values_mut() {
        rows.sort_by_key(|&i| data.order[i]);
        for (pos, &i) in rows.iter().enumerate() {
            let end = pos.max(t - 1).min(rows.len() - 1);
            let start = (end + 1).saturating_sub(t);
            for (k, j) in (start..=end).enumerate() {
                out[i * t + k] = rows[j];
            }
            // A key with fewer than t rows repeats its first row at the front.
            let have = end + 1 - start;
            if have < t {
                let w = &mut out[i * t..(i + 1) * t];
                w.copy_within(0..have, t - have);
                let first = rows[start];
                w[..t - have].fill(first);
            }
        }
    }
    out
}

/// Rows (or windows) per second scoring `x` repeatedly until `total` rows, on `threads`.
fn throughput(
    m: &Fitted,
    data: &Loaded,
    x: &Matrix,
    window: usize,
    total: usize,
    threads: Option<usize>,
) -> Result<f64> {
    let n = x.rows().max(1);
    fedics_ml::compute::with_threads(threads, || -> Result<f64> {
        let started = Instant::now();
        let mut done = 0usize;
        match m {
            Fitted::LstmAe(l) => {
                let w = row_windows(data, x.rows(), window);
                while done < total {
                    let take = (total - done).min(n);
                    let s = l.score_windows(x.as_slice(), &w[..take * window])?;
                    done += s.len();
                }
            }
            Fitted::IForest(f) => {
                while done < total {
                    let s = match threads {
                        Some(1) => f.score_f32(x.as_slice()),
                        _ => f.score_f32_par(x.as_slice()),
                    };
                    done += s.len();
                }
            }
            _ => {
                while done < total {
                    done += scores(m, data, x, window, &[])?.len();
                }
            }
        }
        Ok(done as f64 / started.elapsed().as_secs_f64())
    })
}

pub async fn eval(args: EvalArgs) -> Result<()> {
    tokio::task::block_in_place(|| eval_blocking(args))
}

fn eval_blocking(args: EvalArgs) -> Result<()> {
    let s = spinner("reading data");
    let train = load(&args.train, &args.data_args, None)?;
    let test = load(&args.test, &args.data_args, Some(train.table.schema()))?;
    let pre = Preprocessor::fit(&train.table, pre_options(&args.data_args))?;
    let x_train = pre.transform(&train.table)?;
    let (x_test, unseen) = pre.transform_with_report(&test.table)?;
    s.finish_and_clear();
    for c in &unseen.columns {
        let examples: Vec<&str> = c.values.iter().take(5).map(|(v, _)| v.as_str()).collect();
        tracing::warn!(
            "{}: column `{}`: {} rows hold categories not seen in training (e.g. {}); they are encoded as all zeros",
            args.test.display(),
            c.column,
            c.rows,
            examples.join(", ")
        );
    }

    let started = Instant::now();
    let model = fit(&args.model, &train, &x_train, &pre)?;
    let fit_seconds = started.elapsed().as_secs_f64();

    let window = args.model.window;
    let test_scores = scores(
        &model,
        &test,
        &x_test,
        window,
        &args.data_args.normal_labels,
    )?;
    let mut out = serde_json::Map::new();
    out.insert("model".into(), json!(args.model.model.name()));
    out.insert("version".into(), json!(model.version()));
    out.insert(
        "dataset".into(),
        json!(format!("{:?}", args.data_args.dataset).to_lowercase()),
    );
    out.insert("n_features".into(), json!(x_train.cols()));
    let n_train = match &model {
        Fitted::IForest(m) => m.n_train,
        Fitted::Ae(m) => m.meta.n_train,
        Fitted::LstmAe(m) => m.meta.n_train,
        Fitted::Mlp(m) => m.meta.n_train,
    };
    out.insert("n_train".into(), json!(n_train));
    out.insert("n_test".into(), json!(x_test.rows()));
    let fit_on = match args.model.model {
        ModelKind::Mlp => FitOn::All,
        _ => args.model.fit_on,
    };
    out.insert("fit_on".into(), json!(format!("{fit_on:?}").to_lowercase()));
    out.insert("seed".into(), json!(args.model.seed));
    out.insert("fit_seconds".into(), json!(round(fit_seconds, 3)));
    if args.model.model == ModelKind::LstmAe {
        out.insert("window".into(), json!(window));
    }
    out.insert(
        "unseen_categories".into(),
        json!(
            unseen
                .columns
                .iter()
                .map(|c| (c.column.clone(), c.rows))
                .collect::<BTreeMap<_, _>>()
        ),
    );
    let auc = fedics_tabular::metrics::roc_auc(&test_scores, &test.is_attack).ok();
    out.insert("roc_auc".into(), json!(auc.map(|a| round(a, 4))));

    let threshold = match &model {
        Fitted::IForest(m) => Some(m.threshold),
        Fitted::Ae(m) => Some(m.threshold()),
        Fitted::LstmAe(m) => Some(m.threshold()),
        Fitted::Mlp(_) => Some(0.5),
    };
    if let Some(t) = threshold {
        out.insert("threshold".into(), json!(t));
        let bm = fedics_tabular::metrics::precision_recall_f1_at(t, &test_scores, &test.is_attack)?;
        out.insert(
            "at_threshold".into(),
            json!({
                "precision": round(bm.precision, 4),
                "recall": round(bm.recall, 4),
                "f1": round(bm.f1, 4),
                "false_positive_rate": round(bm.false_positive_rate, 4),
            }),
        );
    }
    if let Fitted::Mlp(m) = &model {
        let pred: Vec<String> = m
            .predict(x_test.as_slice())?
            .into_iter()
            .map(|i| m.classes[i].clone())
            .collect();
        let cm = fedics_tabular::metrics::confusion_matrix(&test.class, &pred)?;
        out.insert("accuracy".into(), json!(round(cm.accuracy(), 4)));
        out.insert("macro_f1".into(), json!(round(cm.macro_f1(), 4)));
        let recall: BTreeMap<String, f64> =
            fedics_tabular::metrics::per_class_recall(&test.class, &pred)?
                .into_iter()
                .map(|(c, r)| (c, round(r, 4)))
                .collect();
        out.insert("per_class_recall".into(), json!(recall));
        out.insert("class_weight".into(), json!(args.model.class_weight));
    }

    let total = args
        .throughput_rows
        .unwrap_or(if args.model.model == ModelKind::LstmAe {
            20_000
        } else {
            1_000_000
        });
    let s = spinner("measuring scoring throughput");
    let one = throughput(&model, &test, &x_test, window, total, Some(1))?;
    let all = throughput(&model, &test, &x_test, window, total, None)?;
    s.finish_and_clear();
    let unit = if args.model.model == ModelKind::LstmAe {
        "windows"
    } else {
        "rows"
    };
    out.insert(
        "score_rows_per_s".into(),
        json!({
            "single_thread": one.round(),
            "all_threads": all.round(),
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "measured_over": total,
            "unit": unit,
        }),
    );
    let v = Value::Object(out);
    if args.json {
        outln!("{v}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
