//! The neural detectors' models in a running pipeline: where their files are, training
//! them on simulated traffic when absent (the demo's first start), and watching the files
//! so that a newly written model replaces the running one without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use fedics_core::FlowRecord;
use fedics_ml::flow_models::{self, FlowModelConfig};
use fedics_ml::slot::{WatchGuard, watch};
use fedics_ml::train::Progress;
use fedics_ml::{AeModel, ComputeDevice, LstmAeModel, MlpModel, ModelSlot};
use fedics_sensors::{SimConfig, Simulator};

pub const AE_FILE: &str = "ae.model";
pub const LSTM_FILE: &str = "lstm-ae.model";
pub const MLP_FILE: &str = "mlp.model";

/// The model slots the detectors read, and the watchers that refill them.
#[derive(Clone, Default)]
pub struct NeuralModels {
    pub ae: ModelSlot<AeModel>,
    pub lstm: ModelSlot<LstmAeModel>,
    pub mlp: ModelSlot<MlpModel>,
    pub lstm_stride: usize,
}

/// Keeps the file watchers running.
pub struct Watchers(#[allow(dead_code)] Vec<WatchGuard>);

fn bar(what: &str) -> (ProgressBar, impl FnMut(&Progress)) {
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template("training {prefix:8} epoch {msg} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_prefix(what.to_string());
    let c = b.clone();
    (b, move |p: &Progress| {
        if p.step == 1 {
            c.set_length(p.steps_per_epoch as u64);
        }
        c.set_position(p.step as u64);
        c.set_message(format!("{}/{} loss {:.5}", p.epoch, p.epochs, p.loss));
    })
}

/// Simulated training traffic: `benign` flows without campaigns and `labelled` flows
/// with campaigns, both from seeds other than the demo's so the models never see the
/// traffic they will score.
pub fn simulated_training_flows(seed: u64, sites: usize) -> (Vec<FlowRecord>, Vec<FlowRecord>) {
    let benign = Simulator::new(SimConfig {
        seed: seed.wrapping_add(1_000_003),
        sites,
        attacks: false,
        ..SimConfig::default()
    })
    .take(40_000)
    .collect();
    let labelled = Simulator::new(SimConfig {
        seed: seed.wrapping_add(2_000_003),
        sites,
        ..SimConfig::default()
    })
    .take(60_000)
    .collect();
    (benign, labelled)
}

/// Trains and writes whichever of the three model files is missing in `dir`.
pub fn ensure_models(dir: &Path, seed: u64, sites: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ae, lstm, mlp) = (dir.join(AE_FILE), dir.join(LSTM_FILE), dir.join(MLP_FILE));
    if ae.exists() && lstm.exists() && mlp.exists() {
        return Ok(());
    }
    tracing::info!(dir = %dir.display(), "training the neural detectors on simulated traffic (first start only)");
    let (benign, labelled) = simulated_training_flows(seed, sites);
    let config = FlowModelConfig::default();
    let cpu = ComputeDevice::Cpu;
    if !ae.exists() {
        let (b, mut cb) = bar("ae");
        let m = flow_models::train_ae(&benign, &config, cpu, &mut cb)?;
        b.finish_and_clear();
        m.save(&ae)?;
        tracing::info!(version = m.version(), path = %ae.display(), "autoencoder written");
    }
    if !lstm.exists() {
        let (b, mut cb) = bar("lstm-ae");
        let m = flow_models::train_lstm(&benign, &config, cpu, &mut cb)?;
        b.finish_and_clear();
        m.save(&lstm)?;
        tracing::info!(version = m.version(), path = %lstm.display(), "LSTM autoencoder written");
    }
    if !mlp.exists() {
        let (b, mut cb) = bar("mlp");
        let m = flow_models::train_mlp(&labelled, &config, cpu, &mut cb)?;
        b.finish_and_clear();
        m.save(&mlp)?;
        tracing::info!(version = m.version(), path = %mlp.display(), "classifier written");
    }
    Ok(())
}

fn load_slot<M: Send + Sync + 'static>(
    slot: &ModelSlot<M>,
    path: PathBuf,
    every: Duration,
    load: fn(&Path, ComputeDevice) -> fedics_ml::Result<M>,
    version: fn(&M) -> String,
    guards: &mut Vec<WatchGuard>,
) -> Result<()> {
    if path.exists() {
        let m = load(&path, ComputeDevice::Cpu)?;
        tracing::info!(path = %path.display(), version = %version(&m), "model loaded");
        slot.store(m);
    } else {
        tracing::warn!(path = %path.display(), "model file absent; its detector abstains until the file appears");
    }
    guards.push(watch(slot.clone(), path, every, move |p: &Path| {
        let m = load(p, ComputeDevice::Cpu).map_err(|e| e.to_string())?;
        let v = version(&m);
        Ok((m, v))
    })?);
    Ok(())
}

/// Loads the models of `dir` and watches their files.
pub fn load_models(
    dir: &Path,
    lstm_stride: usize,
    every: Duration,
) -> Result<(NeuralModels, Watchers)> {
    let models = NeuralModels {
        lstm_stride,
        ..NeuralModels::default()
    };
    let mut guards = Vec::new();
    load_slot(
        &models.ae,
        dir.join(AE_FILE),
        every,
        AeModel::load,
        |m| m.version().to_string(),
        &mut guards,
    )?;
    load_slot(
        &models.lstm,
        dir.join(LSTM_FILE),
        every,
        LstmAeModel::load,
        |m| m.version().to_string(),
        &mut guards,
    )?;
    load_slot(
        &models.mlp,
        dir.join(MLP_FILE),
        every,
        MlpModel::load,
        |m| m.version().to_string(),
        &mut guards,
    )?;
    Ok((models, Watchers(guards)))
}
