//! Training the pipeline's neural detectors on flows: the dense AE and the LSTM-AE on
//! benign traffic (the 18 flow features, min-max scaled on that traffic; LSTM windows per
//! host pair in time order), the MLP on labelled traffic (benign = `normal`, attack flows
//! = their technique id).

use fedics_core::FlowRecord;
use fedics_tabular::{FlowTable, PreprocessOptions, Preprocessor};

use crate::compute::ComputeDevice;
use crate::mlp::{ClassWeight, MlpConfig, MlpModel};
use crate::train::{ProgressFn, TrainOptions};
use crate::{AeConfig, AeModel, LstmAeConfig, LstmAeModel, MlError, Result};

/// Sizes of the pipeline's models (smaller than the NSL-KDD ones: 18 features, and the
/// LSTM runs on live traffic).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowModelConfig {
    pub ae: AeConfig,
    pub ae_train: TrainOptions,
    pub lstm: LstmAeConfig,
    pub lstm_train: TrainOptions,
    /// Step between training windows of one host pair.
    pub lstm_stride: usize,
    pub mlp: MlpConfig,
    pub mlp_train: TrainOptions,
}

impl Default for FlowModelConfig {
    fn default() -> Self {
        Self {
            ae: AeConfig {
                hidden: vec![32, 8],
            },
            ae_train: TrainOptions {
                epochs: 15,
                batch_size: 128,
                threshold_quantile: 0.999,
                ..TrainOptions::default()
            },
            lstm: LstmAeConfig {
                window: 60,
                hidden: 32,
                latent: 8,
            },
            lstm_train: TrainOptions {
                epochs: 3,
                batch_size: 64,
                learning_rate: 3e-3,
                threshold_quantile: 0.999,
                ..TrainOptions::default()
            },
            lstm_stride: 5,
            mlp: MlpConfig {
                class_weight: ClassWeight::Sqrt,
                ..MlpConfig::default()
            },
            mlp_train: TrainOptions {
                epochs: 10,
                batch_size: 200,
                ..TrainOptions::default()
            },
        }
    }
}

fn table(flows: &[FlowRecord]) -> Result<FlowTable> {
    if flows.is_empty() {
        return Err(MlError::Data("no flows to train on".into()));
    }
    Ok(FlowTable::from_records(flows)?)
}

fn scaler(t: &FlowTable) -> Result<Preprocessor> {
    let mut p = Preprocessor::fit(&t.table, PreprocessOptions::min_max())?;
    p.set_training_fingerprint(t.table.fingerprint());
    Ok(p)
}

/// The dense AE on benign flows.
pub fn train_ae(
    benign: &[FlowRecord],
    config: &FlowModelConfig,
    device: ComputeDevice,
    progress: ProgressFn<'_>,
) -> Result<AeModel> {
    let t = table(benign)?;
    let pre = scaler(&t)?;
    let x = pre.transform(&t.table)?;
    AeModel::fit(
        x.as_slice(),
        x.cols(),
        Some(pre),
        &config.ae,
        &config.ae_train,
        device,
        progress,
    )
}

/// The LSTM-AE on windows of consecutive benign flows of each host pair.
pub fn train_lstm(
    benign: &[FlowRecord],
    config: &FlowModelConfig,
    device: ComputeDevice,
    progress: ProgressFn<'_>,
) -> Result<LstmAeModel> {
    let t = table(benign)?;
    let pre = scaler(&t)?;
    let x = pre.transform(&t.table)?;
    let w = t.windows(config.lstm.window, config.lstm_stride.max(1))?;
    if w.len() < 2 {
        return Err(MlError::Data(format!(
            "{} windows of {} consecutive flows of one host pair; more benign traffic is needed",
            w.len(),
            config.lstm.window
        )));
    }
    LstmAeModel::fit(
        x.as_slice(),
        x.cols(),
        w.as_flat(),
        Some(pre),
        &config.lstm,
        &config.lstm_train,
        device,
        progress,
    )
}

/// The MLP on labelled flows (classes: `normal` and every technique present).
pub fn train_mlp(
    labelled: &[FlowRecord],
    config: &FlowModelConfig,
    device: ComputeDevice,
    progress: ProgressFn<'_>,
) -> Result<MlpModel> {
    let t = table(labelled)?;
    let pre = scaler(&t)?;
    let x = pre.transform(&t.table)?;
    let mut classes: Vec<String> = t.table.labels().to_vec();
    classes.sort();
    classes.dedup();
    let labels: Vec<usize> = t
        .table
        .labels()
        .iter()
        .map(|l| classes.binary_search(l).unwrap_or(0))
        .collect();
    MlpModel::fit(
        x.as_slice(),
        x.cols(),
        &labels,
        classes,
        Some(pre),
        &config.mlp,
        &config.mlp_train,
        device,
        progress,
    )
}

/// Labelled flows as `model`'s inputs: the rows (its preprocessing) and class indices that
/// a site federating the pipeline's classifier trains on. Flows whose label is not one of
/// the model's classes (a technique it was never trained on) are left out; how many is the
/// third value.
///
/// # Errors
///
/// [`MlError::Data`] when there are no flows or the model has no preprocessing; a
/// preprocessing error when the flows do not fit it.
pub fn mlp_rows(model: &MlpModel, flows: &[FlowRecord]) -> Result<(Vec<f32>, Vec<usize>, usize)> {
    let t = table(flows)?;
    let pre = model.preprocessor.as_ref().ok_or_else(|| {
        MlError::Data("the classifier has no preprocessing; flows cannot be encoded".into())
    })?;
    let x = pre.transform(&t.table)?;
    let d = x.cols();
    let mut rows = Vec::with_capacity(x.as_slice().len());
    let mut labels = Vec::with_capacity(t.table.labels().len());
    let mut skipped = 0;
    for (row, label) in x.as_slice().chunks(d).zip(t.table.labels()) {
        match model.classes.iter().position(|c| c == label) {
            Some(y) => {
                rows.extend_from_slice(row);
                labels.push(y);
            }
            None => skipped += 1,
        }
    }
    Ok((rows, labels, skipped))
}
