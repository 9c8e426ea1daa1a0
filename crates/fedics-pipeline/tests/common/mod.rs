//! Shared wiring for the end-to-end tests: the default rules with the simulated plants'
//! inventory, the rules + Isolation Forest detectors, the evidence classifier.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fedics_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use fedics_core::FlowRecord;
use fedics_detect::iforest_detector::{IForestDetector, IForestDetectorConfig};
use fedics_detect::rules::{AssetInventory, DEFAULT_RULES, RuleFile, RulesDetector};
use fedics_detect::{Detector, EvidenceClassifier};
use fedics_intel::{Predictor, PredictorConfig};
use fedics_pipeline::{Components, DetectorFactory, Pipeline, PipelineConfig};
use fedics_sensors::SiteTopology;
use fedics_store::Store;
use uuid::Uuid;

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
    components_with(topo, store, Arc::new(Vec::new))
}

/// Extra detectors (run after the rules and the forest) for every detect worker.
pub type Extra = Arc<dyn Fn() -> Vec<Box<dyn Detector>> + Send + Sync>;

pub fn components_with(topo: &[SiteTopology], store: Option<Store>, extra: Extra) -> Components {
    let rules = rules(topo);
    let factory: DetectorFactory = Arc::new(move || {
        let mut d = vec![
            Box::new(RulesDetector::new(rules.clone())) as Box<dyn Detector>,
            Box::new(IForestDetector::new(IForestDetectorConfig::default())),
        ];
        d.extend(extra());
        d
    });
    Components {
        detectors: factory,
        classifier: Box::new(EvidenceClassifier::new()),
        predictor: Predictor::new(PredictorConfig::default(), None),
        store,
    }
}

pub fn start(topo: &[SiteTopology], store: Option<Store>) -> Pipeline<EmbeddedBus> {
    start_with(topo, store, Arc::new(Vec::new))
}

pub fn start_with(
    topo: &[SiteTopology],
    store: Option<Store>,
    extra: Extra,
) -> Pipeline<EmbeddedBus> {
    let bus = EmbeddedBus::new(EmbeddedConfig::default());
    let config = PipelineConfig {
        join_deadline: Duration::from_millis(500),
        ..PipelineConfig::default()
    };
    Pipeline::start(bus, config, components_with(topo, store, extra)).expect("pipeline starts")
}

/// Detection per technique (flows, alerted flows, alerted-as counts) and on benign flows
/// (flows, false positives), from the store's alerted flows.
pub struct Quality {
    pub per: BTreeMap<String, (usize, usize, BTreeMap<String, usize>)>,
    pub benign: usize,
    pub fp: usize,
}

impl Quality {
    pub fn of(flows: &[FlowRecord], alerted: &HashMap<Uuid, String>) -> Self {
        let mut q = Quality {
            per: BTreeMap::new(),
            benign: 0,
            fp: 0,
        };
        for f in flows {
            let label = f
                .ground_truth
                .as_ref()
                .map(|g| g.label.clone())
                .unwrap_or_default();
            let hit = alerted.get(&f.flow_id);
            if label == "benign" {
                q.benign += 1;
                q.fp += usize::from(hit.is_some());
            } else {
                let e = q.per.entry(label).or_default();
                e.0 += 1;
                if let Some(t) = hit {
                    e.1 += 1;
                    *e.2.entry(t.clone()).or_default() += 1;
                }
            }
        }
        q
    }

    pub fn recall(&self, technique: &str) -> f64 {
        let (n, d, _) = self.per.get(technique).cloned().unwrap_or_default();
        d as f64 / n.max(1) as f64
    }

    pub fn fpr(&self) -> f64 {
        self.fp as f64 / self.benign.max(1) as f64
    }

    pub fn print(&self) {
        println!("technique  flows  detected  recall  classified-as");
        for (t, (n, d, as_)) in &self.per {
            println!("{t:9} {n:6} {d:9} {:7.3}  {as_:?}", *d as f64 / *n as f64);
        }
        println!(
            "benign flows {}, false positives {}, FPR {:.4}",
            self.benign,
            self.fp,
            self.fpr()
        );
    }
}

/// Runs `flows` through a pipeline (rules, forest, `extra`) into a fresh store and
/// measures detection quality.
pub async fn run_quality(topo: &[SiteTopology], flows: &[FlowRecord], extra: Extra) -> Quality {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path()).await;
    let pipeline = start_with(topo, Some(store.clone()), extra);
    for chunk in flows.chunks(2048) {
        pipeline.publish(chunk).await.expect("publish");
    }
    assert!(
        pipeline.drain(Duration::from_secs(600)).await,
        "pipeline drained"
    );
    let stats = pipeline.shutdown(Duration::from_secs(10)).await;
    assert_eq!(stats.rejected, 0);
    println!("pipeline stats: {stats:?}");
    let alerted = store.flows_alerted().await.expect("alerted flows");
    Quality::of(flows, &alerted)
}

pub async fn store(dir: &std::path::Path) -> Store {
    Store::open(&dir.join("fedics.db").display().to_string())
        .await
        .expect("store opens")
}
