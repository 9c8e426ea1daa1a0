//! # fedics-ml: neural models on burn
//!
//! The models that need a deep-learning stack live here, behind one crate boundary, so
//! that the rest of the workspace builds without burn:
//!
//! * [`dense_ae`]: a dense autoencoder over per-flow (or per-record) features; the anomaly
//!   score is the mean squared reconstruction error, and the per-feature errors explain it.
//! * [`lstm_ae`]: an LSTM autoencoder over **sliding windows of consecutive observations**
//!   (60 by default) of one key (facility and host pair, or a configured key): it flags
//!   sequences whose *order* is unusual even when every single observation is normal.
//! * [`mlp`]: a supervised MLP classifier (softmax over classes, optional class weighting
//!   for rare classes), e.g. NSL-KDD's five categories or the simulator's techniques.
//! * [`detectors`]: the three models as pipeline [`fedics_detect::Detector`]s, each reading
//!   its model from a [`slot::ModelSlot`] that a file watcher or a trainer can replace
//!   while flows are being scored (hot swap); every verdict names the model version.
//!
//! Every model is trained by our own loop ([`train`]) with Adam, seeded shuffling and a
//! progress callback, stores its threshold (a quantile of scores on held-out benign data),
//! its [`fedics_tabular::Preprocessor`] and its metadata in one versioned model file
//! ([`fedics_tabular::modelfile`]), and scores on the CPU (burn's `flex` backend) unless
//! the `cuda` feature is enabled and a CUDA device is chosen ([`compute`]).

pub mod compute;
pub mod dense_ae;
pub mod detectors;
pub mod federated;
pub mod federated_ae;
pub mod federated_lstm;
pub mod flow_models;
pub mod lstm_ae;
pub mod mlp;
pub mod slot;
pub mod train;

pub use compute::ComputeDevice;
pub use dense_ae::{AeConfig, AeModel};
pub use lstm_ae::{LstmAeConfig, LstmAeModel};
pub use mlp::{ClassWeight, MlpConfig, MlpModel};
pub use slot::ModelSlot;
pub use train::{Progress, TrainOptions};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Tabular(#[from] fedics_tabular::TabularError),
    #[error(transparent)]
    ModelFile(#[from] fedics_tabular::ModelFileError),
    #[error("model weights: {0}")]
    Weights(String),
    #[error("device: {0}")]
    Device(String),
}

pub type Result<T, E = MlError> = std::result::Result<T, E>;
