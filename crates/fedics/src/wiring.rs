//! Builds the pipeline's components from the command line.

use std::sync::Arc;
use std::time::Duration;

use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use fedics_core::{FlowRecord, decode};
use fedics_detect::features::flow_features;
use fedics_detect::iforest_detector::{IForestDetector, IForestDetectorConfig, IForestModel};
use fedics_detect::rules::{AssetInventory, DEFAULT_RULES, RuleFile, RulesDetector};
use fedics_detect::{Detector, EvidenceClassifier};
use fedics_intel::{AttackBundle, Predictor, PredictorConfig};
use fedics_ml::detectors::{AeDetector, LstmAeDetector, LstmDetectorConfig, MlpDetector};
use fedics_pipeline::{Components, DetectorFactory, PipelineConfig};
use fedics_sensors::SiteTopology;
use fedics_store::Store;

use crate::DetectArgs;
use crate::neural::NeuralModels;

/// The asset inventories of simulated facilities.
pub fn assets(topo: &[SiteTopology]) -> Vec<AssetInventory> {
    topo.iter()
        .map(|t| AssetInventory {
            facility: t.facility_id.clone(),
            plcs: t.plcs.clone(),
            writers: t.allowed_writers(),
        })
        .collect()
}

/// The default rule text with the simulated plants' inventory appended.
pub fn default_rules_text(topo: &[SiteTopology]) -> String {
    format!(
        "{DEFAULT_RULES}\n# ---- Asset inventory of the simulated facilities ----\n{}",
        RuleFile::assets_toml(&assets(topo))
    )
}

pub fn rule_file(args: &DetectArgs, topo: &[SiteTopology]) -> Result<RuleFile> {
    match &args.rules {
        Some(p) => RuleFile::load(p).context("loading the rule file"),
        None => RuleFile::parse(&default_rules_text(topo)).context("built-in rules"),
    }
}

pub fn predictor(args: &DetectArgs) -> Result<Predictor> {
    let bundle = match &args.attack_bundle {
        Some(p) => {
            let b = AttackBundle::load(p)
                .with_context(|| format!("loading ATT&CK bundle {}", p.display()))?;
            tracing::info!(path = %p.display(), version = b.version().unwrap_or("?"), techniques = b.technique_count(), "ATT&CK for ICS bundle loaded");
            Some(b)
        }
        None => {
            tracing::info!(
                "no ATT&CK bundle given (--attack-bundle): predictor uses the tactic-order prior only"
            );
            None
        }
    };
    Ok(Predictor::new(PredictorConfig::default(), bundle.as_ref()))
}

/// Fits an Isolation Forest on the flows of a JSON Lines file. Lines that are not valid
/// flows are reported (line number and reason) and skipped; an empty result is an error.
pub fn iforest_from_file(path: &Path, config: &IForestDetectorConfig) -> Result<IForestModel> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    let (mut good, mut bad) = (0usize, 0usize);
    for (n, line) in std::io::BufRead::lines(std::io::BufReader::new(file)).enumerate() {
        let line = line.with_context(|| format!("reading {} line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match decode::<FlowRecord>(line.as_bytes()) {
            Ok(f) => {
                rows.extend_from_slice(&flow_features(&f));
                good += 1;
            }
            Err(e) => {
                bad += 1;
                if bad <= 10 {
                    tracing::warn!(file = %path.display(), line = n + 1, reason = e.reason(), error = %e, "skipping a line that is not a valid flow");
                }
            }
        }
    }
    if good < 2 {
        bail!(
            "{}: {good} valid flows ({bad} rejected); at least 2 are needed to train",
            path.display()
        );
    }
    let model = IForestModel::fit(&rows, config, chrono::Utc::now())?;
    tracing::info!(file = %path.display(), flows = good, rejected = bad, version = %model.version, threshold = model.threshold, "isolation forest trained from file");
    Ok(model)
}

pub fn components(
    args: &DetectArgs,
    rules: RuleFile,
    store: Option<Store>,
    neural: Option<NeuralModels>,
) -> Result<Components> {
    let iforest = IForestDetectorConfig {
        train_size: args.iforest_train.max(16),
        ..IForestDetectorConfig::default()
    };
    let pretrained = match &args.iforest_train_file {
        Some(p) => Some(iforest_from_file(p, &iforest)?),
        None => None,
    };
    let factory: DetectorFactory = Arc::new(move || {
        let forest = match &pretrained {
            Some(m) => IForestDetector::with_model(iforest.clone(), m.clone()),
            None => IForestDetector::new(iforest.clone()),
        };
        let mut d: Vec<Box<dyn Detector>> = vec![
            Box::new(RulesDetector::new(rules.clone())),
            Box::new(forest),
        ];
        if let Some(n) = &neural {
            d.push(Box::new(AeDetector::new(n.ae.clone())));
            d.push(Box::new(LstmAeDetector::new(
                n.lstm.clone(),
                LstmDetectorConfig {
                    stride: n.lstm_stride.max(1),
                    ..LstmDetectorConfig::default()
                },
            )));
            d.push(Box::new(MlpDetector::new(n.mlp.clone())));
        }
        d
    });
    Ok(Components {
        detectors: factory,
        classifier: Box::new(EvidenceClassifier::new()),
        predictor: predictor(args)?,
        store,
    })
}

pub fn pipeline_config(args: &DetectArgs) -> PipelineConfig {
    PipelineConfig {
        join_deadline: Duration::from_millis(args.join_deadline_ms.max(1)),
        ..PipelineConfig::default()
    }
}

/// Peak resident set size of this process in MiB (Linux), if available.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Paces simulated flows at a rate: every 50 ms tick, the flows due since the last one
/// (fractions carried over, at least one per tick).
pub struct Pacer {
    interval: tokio::time::Interval,
    per_tick: f64,
    carry: f64,
}

impl Pacer {
    const TICK: std::time::Duration = std::time::Duration::from_millis(50);

    pub fn new(flows_per_s: f64) -> Self {
        let mut interval = tokio::time::interval(Self::TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            interval,
            per_tick: (flows_per_s.max(1.0) * Self::TICK.as_secs_f64()).max(1.0),
            carry: 0.0,
        }
    }

    /// Waits for the next tick; returns how many flows are due.
    pub async fn tick(&mut self) -> usize {
        self.interval.tick().await;
        self.carry += self.per_tick;
        let n = self.carry.floor();
        self.carry -= n;
        n as usize
    }
}

/// The simulated start of a new simulation: `history` seconds before `now` (`--history`).
pub fn sim_start(now: DateTime<Utc>, history: f64) -> Result<DateTime<Utc>> {
    if !(history.is_finite() && (0.0..=365.0 * 86_400.0).contains(&history)) {
        bail!("--history {history}: expected 0 to 31536000 seconds");
    }
    Ok(now - chrono::TimeDelta::milliseconds((history * 1000.0).round() as i64))
}

/// How long until the latest end of `flows` is no longer after `now` (`None`: it is not):
/// a simulation waits that long before publishing them, so no flow is stamped in the future.
pub fn ahead_of_wall_clock(flows: &[FlowRecord], now: DateTime<Utc>) -> Option<Duration> {
    let latest = flows.iter().map(|f| f.ts_end).max()?;
    (latest - now).to_std().ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedics_sensors::{SimConfig, Simulator};

    #[test]
    fn a_new_demo_starts_its_history_before_now() {
        let now = Utc::now();
        assert_eq!(
            sim_start(now, 3600.0).unwrap(),
            now - chrono::TimeDelta::seconds(3600)
        );
        assert_eq!(sim_start(now, 0.0).unwrap(), now);
        assert!(sim_start(now, -1.0).is_err());
        assert!(sim_start(now, f64::NAN).is_err());
    }

    #[test]
    fn flows_wait_until_their_end_has_passed() {
        let now = Utc::now();
        let flows: Vec<_> = Simulator::new(SimConfig {
            start: now,
            ..SimConfig::default()
        })
        .take(200)
        .collect();
        let latest = flows.iter().map(|f| f.ts_end).max().unwrap();
        assert!(latest > now);
        assert_eq!(ahead_of_wall_clock(&flows, latest), None);
        assert_eq!(
            ahead_of_wall_clock(&flows, latest + chrono::TimeDelta::seconds(1)),
            None
        );
        assert_eq!(
            ahead_of_wall_clock(&flows, latest - chrono::TimeDelta::milliseconds(1500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(ahead_of_wall_clock(&[], now), None);
    }
}
