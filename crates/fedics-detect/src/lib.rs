//! # fedics-detect: detectors and the classifier
//!
//! A [`Detector`] looks at one flow at a time and returns a [`Verdict`]; the detect stage
//! turns verdicts into `anomalies` events. A [`Classifier`] looks at all verdicts of one
//! flow (joined downstream) and names the ATT&CK for ICS technique. New models (the LSTM
//! autoencoder, a supervised classifier) implement these traits and plug into the
//! pipeline without touching it.
//!
//! * [`rules`]: physics and protocol rules from an editable TOML file.
//! * [`iforest`]: our Isolation Forest (scikit-learn semantics), and [`iforest_detector`]
//!   which trains one per facility on its first benign-looking flows; [`iforest_federated`]
//!   federates it by merging trees (sites and the aggregator's merge rule).
//! * [`features`]: the numeric flow features the models use.
//! * [`classifier`]: the evidence classifier mapping detector evidence to a technique.

pub mod classifier;
pub mod features;
pub mod iforest;
pub mod iforest_detector;
pub mod iforest_fast;
pub mod iforest_federated;
pub mod rules;

use fedics_core::{
    AnomalyEvent, FeatureContribution, FlowRecord, RuleFinding, SCHEMA_VERSION, ids,
};

pub use classifier::{Classification, Classifier, EvidenceClassifier, JoinedFlow};
pub use iforest_detector::{IForestDetector, IForestDetectorConfig};
pub use rules::{RuleEngine, RuleFile, RulesDetector};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("rule file: {0}")]
    RuleFile(String),
    #[error("model file {path}: {message}")]
    ModelFile { path: String, message: String },
    #[error(transparent)]
    IForest(#[from] iforest::IForestError),
    /// Parts of a model that do not fit together.
    #[error("model: {0}")]
    Model(String),
}

/// A detector's verdict on one flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub model_version: String,
    /// Anomaly score in 0..=1; `None` when the detector abstained.
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub is_anomaly: bool,
    pub abstain_reason: Option<String>,
    pub findings: Vec<RuleFinding>,
    pub top_features: Vec<FeatureContribution>,
}

impl Verdict {
    /// A verdict of a detector that could not score this flow (e.g. still training).
    pub fn abstain(model_version: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            model_version: model_version.into(),
            score: None,
            threshold: None,
            is_anomaly: false,
            abstain_reason: Some(reason.into()),
            findings: Vec::new(),
            top_features: Vec::new(),
        }
    }

    /// The `anomalies` event for this verdict. The flow record is attached only to
    /// anomalous verdicts, so alerts can show it without shipping every flow downstream.
    ///
    /// `attach_flow` lets a stage that runs several detectors on one flow attach the record
    /// to only one of its anomalous verdicts: the join needs it once per flow.
    pub fn into_event(
        self,
        detector: &str,
        layer: u8,
        flow: &FlowRecord,
        attach_flow: bool,
    ) -> AnomalyEvent {
        AnomalyEvent {
            schema_version: SCHEMA_VERSION,
            event_id: ids::child(flow.flow_id, detector),
            flow_id: flow.flow_id,
            facility_id: flow.facility_id.clone(),
            timestamp: flow.ts_end,
            detector: detector.to_string(),
            layer,
            model_version: self.model_version,
            score: self.score,
            threshold: self.threshold,
            is_anomaly: self.is_anomaly,
            abstain_reason: self.abstain_reason,
            findings: self.findings,
            top_features: self.top_features,
            context: self.is_anomaly.then(|| flow.context()),
            flow: (self.is_anomaly && attach_flow).then(|| Box::new(flow.clone())),
        }
    }
}

/// A per-flow detector. Implementations keep whatever state they need per facility; the
/// pipeline delivers one facility's flows in time order.
pub trait Detector: Send {
    /// Stable name, used as the `detector` field of events and in the join's expected set.
    fn name(&self) -> &str;

    /// Detection layer (1 = anomaly detection).
    fn layer(&self) -> u8 {
        1
    }

    /// Scores one flow. `earlier` holds the verdicts of detectors that ran before this one
    /// in the same stage (a model may use them, e.g. to train only on benign-looking flows).
    fn inspect(&mut self, flow: &FlowRecord, earlier: &[Verdict]) -> Verdict;

    /// Scores a batch of flows (in delivery order); `earlier[i]` holds the verdicts of the
    /// detectors that ran before this one on `flows[i]`. Returns one verdict per flow, in
    /// order. Models that score faster in batches (neural networks) override this; the
    /// result must equal calling [`Detector::inspect`] on each flow in turn.
    fn inspect_batch(&mut self, flows: &[FlowRecord], earlier: &[Vec<Verdict>]) -> Vec<Verdict> {
        flows
            .iter()
            .zip(earlier)
            .map(|(f, e)| self.inspect(f, e))
            .collect()
    }
}
