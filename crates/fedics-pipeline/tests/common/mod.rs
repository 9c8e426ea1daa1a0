//! Shared wiring for the end-to-end tests: the default rules with the simulated plants'
//! inventory, the rules + Isolation Forest detectors, the evidence classifier.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use fedics_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use fedics_detect::iforest_detector::{IForestDetector, IForestDetectorConfig};
use fedics_detect::rules::{AssetInventory, DEFAULT_RULES, RuleFile, RulesDetector};
use fedics_detect::{Detector, EvidenceClassifier};
use fedics_intel::{Predictor, PredictorConfig};
use fedics_pipeline::{Components, DetectorFactory, Pipeline, PipelineConfig};
use fedics_sensors::SiteTopology;
use fedics_store::Store;

pub fn rules(topo: &[SiteTopology]) -> RuleFile {
    let assets: Vec<AssetInventory> = topo
        .iter()
        .map(|t| AssetInventory {
            facility: t.facility_id.clone(),
            plcs: t.plcs.clone(),
            writers: t.allowed_writers(),
        })
        .collect();
    RuleFile::parse(&format!(
        "{DEFAULT_RULES}{}",
        RuleFile::assets_toml(&assets)
    ))
    .expect("rules parse")
}

pub fn components(topo: &[SiteTopology], store: Option<Store>) -> Components {
    let rules = rules(topo);
    let factory: DetectorFactory = Arc::new(move || {
        vec![
            Box::new(RulesDetector::new(rules.clone())) as Box<dyn Detector>,
            Box::new(IForestDetector::new(IForestDetectorConfig::default())),
        ]
    });
    Components {
        detectors: factory,
        classifier: Box::new(EvidenceClassifier::new()),
        predictor: Predictor::new(PredictorConfig::default(), None),
        store,
    }
}

pub fn start(topo: &[SiteTopology], store: Option<Store>) -> Pipeline<EmbeddedBus> {
    let bus = EmbeddedBus::new(EmbeddedConfig::default());
    let config = PipelineConfig {
        join_deadline: Duration::from_millis(500),
        ..PipelineConfig::default()
    };
    Pipeline::start(bus, config, components(topo, store)).expect("pipeline starts")
}

pub async fn store(dir: &std::path::Path) -> Store {
    Store::open(&dir.join("fedics.db").display().to_string())
        .await
        .expect("store opens")
}
