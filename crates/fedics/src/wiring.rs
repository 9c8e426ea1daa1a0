//! Builds the pipeline's components from the command line.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fedics_detect::iforest_detector::{IForestDetector, IForestDetectorConfig};
use fedics_detect::rules::{AssetInventory, DEFAULT_RULES, RuleFile, RulesDetector};
use fedics_detect::{Detector, EvidenceClassifier};
use fedics_intel::{AttackBundle, Predictor, PredictorConfig};
use fedics_pipeline::{Components, DetectorFactory, PipelineConfig};
use fedics_sensors::SiteTopology;
use fedics_store::Store;

use crate::DetectArgs;

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

pub fn components(args: &DetectArgs, rules: RuleFile, store: Option<Store>) -> Result<Components> {
    let iforest = IForestDetectorConfig {
        train_size: args.iforest_train.max(16),
        ..IForestDetectorConfig::default()
    };
    let factory: DetectorFactory = Arc::new(move || {
        vec![
            Box::new(RulesDetector::new(rules.clone())) as Box<dyn Detector>,
            Box::new(IForestDetector::new(iforest.clone())),
        ]
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
