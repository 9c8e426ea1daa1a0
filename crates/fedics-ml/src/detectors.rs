//! The neural models as pipeline detectors. Each reads its model from a [`ModelSlot`]
//! once per batch (hot swap takes effect at the next batch; every verdict names the
//! version that scored it) and abstains, with a reason, while no model is loaded.
//!
//! * [`AeDetector`] (`ae`): dense autoencoder on each flow's features; explanation = the
//!   features with the largest reconstruction error.
//! * [`LstmAeDetector`] (`lstm-ae`): keeps the last `window` observations of every key
//!   (facility and host pair) and scores the window that ends at a flow every `stride`
//!   flows of that key (the window is the unit of a sequence model; scoring every flow's
//!   window would recompute 59 of its 60 steps). Other flows get an abstention that says
//!   when their key is scored next.
//! * [`MlpDetector`] (`mlp`, layer 2): the supervised classifier; a flow it assigns to an
//!   attack class is anomalous, with a finding that votes for that class in the evidence
//!   classifier (weighted below the physics/protocol rules, so rules stay decisive).

use std::collections::{HashMap, VecDeque};

use fedics_core::{FeatureContribution, FlowRecord, RuleFinding};
use fedics_detect::{Detector, Verdict};
use fedics_tabular::{Cell, FLOW_FEATURE_NAMES, Preprocessor, flow_features, flow_key};

use crate::slot::ModelSlot;
use crate::train::top_k;
use crate::{AeModel, LstmAeModel, MlpModel};

/// Features of a flow as the model expects them (its preprocessor applied when it has one).
fn features(pre: Option<&Preprocessor>, flow: &FlowRecord, out: &mut Vec<f32>) -> bool {
    let raw = flow_features(flow);
    match pre {
        None => {
            out.extend(raw.iter().map(|&v| v as f32));
            true
        }
        Some(p) => {
            let cells: Vec<Cell<'_>> = raw.iter().map(|&v| Cell::Num(v)).collect();
            let start = out.len();
            out.resize(start + p.n_features(), 0.0);
            p.transform_row_into(&cells, &mut out[start..]).is_ok()
        }
    }
}

/// Maps an error `e` with threshold `t` to a score in (0, 1) that is 0.5 at the threshold.
fn unit_score(e: f64, t: f64) -> f64 {
    if t <= 0.0 {
        if e > 0.0 { 1.0 } else { 0.0 }
    } else {
        e / (e + t)
    }
}

/// Top-k features of per-feature errors `errs` (shares of their sum), with raw values.
fn explain(
    errs: &[f32],
    flow: &FlowRecord,
    names: &[String],
    k: usize,
) -> Vec<FeatureContribution> {
    let total: f32 = errs.iter().sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let raw = flow_features(flow);
    top_k(errs, k)
        .into_iter()
        .map(|i| FeatureContribution {
            name: names.get(i).cloned().unwrap_or_else(|| format!("f{i}")),
            value: raw.get(i).copied().unwrap_or(f64::NAN),
            contribution: f64::from(errs[i] / total),
        })
        .filter(|c| c.value.is_finite())
        .collect()
}

/// The same abstention for every flow of a batch.
fn abstain_all(n: usize, version: &str, reason: impl Into<String>) -> Vec<Verdict> {
    let reason = reason.into();
    (0..n)
        .map(|_| Verdict::abstain(version, reason.clone()))
        .collect()
}

/// Feature rows of `flows` (row-major, only the flows whose features are finite) and,
/// per flow, whether it has a row.
fn flow_rows(pre: Option<&Preprocessor>, flows: &[FlowRecord], d: usize) -> (Vec<f32>, Vec<bool>) {
    let mut rows = Vec::with_capacity(flows.len() * d);
    let mut ok = Vec::with_capacity(flows.len());
    for f in flows {
        let before = rows.len();
        let good = features(pre, f, &mut rows);
        if !good {
            rows.truncate(before);
        }
        ok.push(good);
    }
    (rows, ok)
}

/// Checks that a model takes the flow features (raw or through its preprocessor).
fn takes_flow_features(n_features: usize, pre: Option<&Preprocessor>) -> bool {
    match pre {
        None => n_features == FLOW_FEATURE_NAMES.len(),
        Some(p) => {
            p.input_schema().len() == FLOW_FEATURE_NAMES.len() && p.n_features() == n_features
        }
    }
}

/// Dense autoencoder detector.
pub struct AeDetector {
    slot: ModelSlot<AeModel>,
    top_k: usize,
}

impl AeDetector {
    pub fn new(slot: ModelSlot<AeModel>) -> Self {
        Self { slot, top_k: 5 }
    }
}

impl Detector for AeDetector {
    fn name(&self) -> &str {
        "ae"
    }

    fn inspect(&mut self, flow: &FlowRecord, earlier: &[Verdict]) -> Verdict {
        self.inspect_batch(std::slice::from_ref(flow), &[earlier.to_vec()])
            .pop()
            .unwrap_or_else(|| Verdict::abstain("ae", "no verdict"))
    }

    fn inspect_batch(&mut self, flows: &[FlowRecord], _earlier: &[Vec<Verdict>]) -> Vec<Verdict> {
        let Some(model) = self.slot.load() else {
            return abstain_all(flows.len(), "ae-none", "no autoencoder model loaded");
        };
        let pre = model.preprocessor.as_ref();
        if !takes_flow_features(model.n_features(), pre) {
            return abstain_all(
                flows.len(),
                model.version(),
                "model was not trained on flow features",
            );
        }
        let d = model.n_features();
        let (rows, ok) = flow_rows(pre, flows, d);
        let errs = match model.feature_errors(&rows) {
            Ok(e) => e,
            Err(e) => {
                return abstain_all(flows.len(), model.version(), format!("scoring failed: {e}"));
            }
        };
        let t = model.threshold();
        let mut at = 0;
        flows
            .iter()
            .zip(ok)
            .map(|(flow, good)| {
                if !good {
                    return Verdict::abstain(model.version(), "features not finite");
                }
                let e = &errs[at * d..(at + 1) * d];
                at += 1;
                let err = f64::from(e.iter().sum::<f32>() / d as f32);
                let is_anomaly = err > t;
                Verdict {
                    model_version: model.version().to_string(),
                    score: Some(unit_score(err, t)),
                    threshold: Some(0.5),
                    is_anomaly,
                    abstain_reason: None,
                    findings: Vec::new(),
                    top_features: if is_anomaly {
                        explain(e, flow, &model.meta.feature_names, self.top_k)
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }
}

/// Settings of the LSTM-AE detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmDetectorConfig {
    /// Score a key's window every `stride` of its flows.
    pub stride: usize,
    /// Keys (host pairs) kept; the least recently seen is forgotten beyond this.
    pub max_keys: usize,
}

impl Default for LstmDetectorConfig {
    fn default() -> Self {
        Self {
            stride: 20,
            max_keys: 20_000,
        }
    }
}

struct KeyState {
    rows: VecDeque<Vec<f32>>,
    since_scored: usize,
    last_seen: u64,
}

/// LSTM autoencoder detector over windows of consecutive flows of one host pair.
pub struct LstmAeDetector {
    slot: ModelSlot<LstmAeModel>,
    config: LstmDetectorConfig,
    keys: HashMap<String, KeyState>,
    /// The model version the buffered rows were preprocessed for.
    buffered_for: Option<String>,
    tick: u64,
    top_k: usize,
}

impl LstmAeDetector {
    pub fn new(slot: ModelSlot<LstmAeModel>, config: LstmDetectorConfig) -> Self {
        Self {
            slot,
            config,
            keys: HashMap::new(),
            buffered_for: None,
            tick: 0,
            top_k: 5,
        }
    }

    fn evict(&mut self) {
        if self.keys.len() < self.config.max_keys {
            return;
        }
        if let Some(k) = self
            .keys
            .iter()
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(k, _)| k.clone())
        {
            self.keys.remove(&k);
        }
    }
}

impl Detector for LstmAeDetector {
    fn name(&self) -> &str {
        "lstm-ae"
    }

    fn inspect(&mut self, flow: &FlowRecord, earlier: &[Verdict]) -> Verdict {
        self.inspect_batch(std::slice::from_ref(flow), &[earlier.to_vec()])
            .pop()
            .unwrap_or_else(|| Verdict::abstain("lstm-ae", "no verdict"))
    }

    fn inspect_batch(&mut self, flows: &[FlowRecord], _earlier: &[Vec<Verdict>]) -> Vec<Verdict> {
        let Some(model) = self.slot.load() else {
            return abstain_all(
                flows.len(),
                "lstm-ae-none",
                "no LSTM autoencoder model loaded",
            );
        };
        let pre = model.preprocessor.as_ref();
        if !takes_flow_features(model.n_features(), pre) {
            return abstain_all(
                flows.len(),
                model.version(),
                "model was not trained on flow features",
            );
        }
        // Buffered observations were scaled for the previous model: start afresh.
        if self.buffered_for.as_deref() != Some(model.version()) {
            self.keys.clear();
            self.buffered_for = Some(model.version().to_string());
        }
        let (t, d) = (model.window(), model.n_features());
        let stride = self.config.stride.max(1);
        let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(flows.len());
        let mut seqs: Vec<f32> = Vec::new();
        let mut due: Vec<usize> = Vec::new();
        let mut row = Vec::with_capacity(d);
        for (i, flow) in flows.iter().enumerate() {
            row.clear();
            if !features(pre, flow, &mut row) {
                verdicts.push(Some(Verdict::abstain(
                    model.version(),
                    "features not finite",
                )));
                continue;
            }
            self.tick += 1;
            let key = flow_key(flow);
            if !self.keys.contains_key(&key) {
                self.evict();
            }
            let st = self.keys.entry(key).or_insert_with(|| KeyState {
                rows: VecDeque::with_capacity(t),
                since_scored: 0,
                last_seen: 0,
            });
            st.last_seen = self.tick;
            if st.rows.len() == t {
                st.rows.pop_front();
            }
            st.rows.push_back(row.clone());
            st.since_scored += 1;
            if st.rows.len() < t {
                verdicts.push(Some(Verdict::abstain(
                    model.version(),
                    format!(
                        "collecting: {}/{t} observations of this host pair",
                        st.rows.len()
                    ),
                )));
            } else if st.since_scored >= stride {
                st.since_scored = 0;
                for r in &st.rows {
                    seqs.extend_from_slice(r);
                }
                due.push(i);
                verdicts.push(None);
            } else {
                verdicts.push(Some(Verdict::abstain(
                    model.version(),
                    format!(
                        "window scored every {stride} flows of a host pair; next in {}",
                        stride - st.since_scored
                    ),
                )));
            }
        }
        let scored = if due.is_empty() {
            Ok((Vec::new(), Vec::new()))
        } else {
            model.score_sequences(&seqs)
        };
        let thr = model.threshold();
        match scored {
            Ok((scores, per_feature)) => {
                for (j, &i) in due.iter().enumerate() {
                    let err = f64::from(scores[j]);
                    let is_anomaly = err > thr;
                    let pf = &per_feature[j * d..(j + 1) * d];
                    verdicts[i] = Some(Verdict {
                        model_version: model.version().to_string(),
                        score: Some(unit_score(err, thr)),
                        threshold: Some(0.5),
                        is_anomaly,
                        abstain_reason: None,
                        findings: Vec::new(),
                        top_features: if is_anomaly {
                            explain(pf, &flows[i], &model.meta.feature_names, self.top_k)
                        } else {
                            Vec::new()
                        },
                    });
                }
            }
            Err(e) => {
                for &i in &due {
                    verdicts[i] = Some(Verdict::abstain(
                        model.version(),
                        format!("scoring failed: {e}"),
                    ));
                }
            }
        }
        verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Verdict::abstain(model.version(), "not scored")))
            .collect()
    }
}

/// Supervised classifier as a (layer 2) detector.
pub struct MlpDetector {
    slot: ModelSlot<MlpModel>,
    /// A flow is an attack when its most probable class is not `normal` and has at least
    /// this probability.
    pub min_probability: f64,
    /// Weight of the classifier's vote relative to the rules' (0..=1).
    pub vote_weight: f64,
}

impl MlpDetector {
    pub fn new(slot: ModelSlot<MlpModel>) -> Self {
        Self {
            slot,
            min_probability: 0.5,
            vote_weight: 0.5,
        }
    }
}

impl Detector for MlpDetector {
    fn name(&self) -> &str {
        "mlp"
    }

    fn layer(&self) -> u8 {
        2
    }

    fn inspect(&mut self, flow: &FlowRecord, earlier: &[Verdict]) -> Verdict {
        self.inspect_batch(std::slice::from_ref(flow), &[earlier.to_vec()])
            .pop()
            .unwrap_or_else(|| Verdict::abstain("mlp", "no verdict"))
    }

    fn inspect_batch(&mut self, flows: &[FlowRecord], _earlier: &[Vec<Verdict>]) -> Vec<Verdict> {
        let Some(model) = self.slot.load() else {
            return abstain_all(flows.len(), "mlp-none", "no classifier model loaded");
        };
        let pre = model.preprocessor.as_ref();
        if !takes_flow_features(model.n_features(), pre) {
            return abstain_all(
                flows.len(),
                model.version(),
                "model was not trained on flow features",
            );
        }
        let k = model.classes.len();
        let (rows, ok) = flow_rows(pre, flows, model.n_features());
        let proba = match model.predict_proba(&rows) {
            Ok(p) => p,
            Err(e) => {
                return abstain_all(flows.len(), model.version(), format!("scoring failed: {e}"));
            }
        };
        let normal = model.classes.iter().position(|c| c == "normal");
        let mut at = 0;
        ok.into_iter()
            .map(|good| {
                if !good {
                    return Verdict::abstain(model.version(), "features not finite");
                }
                let p = &proba[at * k..(at + 1) * k];
                at += 1;
                let best = top_k(p, 1).first().copied().unwrap_or(0);
                let pb = f64::from(p[best]);
                let attack = 1.0 - normal.map(|i| f64::from(p[i])).unwrap_or(0.0);
                let is_anomaly = Some(best) != normal && pb >= self.min_probability;
                let class = &model.classes[best];
                Verdict {
                    model_version: model.version().to_string(),
                    score: Some(attack),
                    threshold: Some(0.5),
                    is_anomaly,
                    abstain_reason: None,
                    findings: if is_anomaly {
                        vec![RuleFinding {
                            rule: "mlp".into(),
                            kind: "classifier".into(),
                            technique: class.starts_with('T').then(|| class.clone()),
                            weight: (pb * self.vote_weight).clamp(0.0, 1.0),
                            message: format!("classifier: {class} with probability {pb:.2}"),
                        }]
                    } else {
                        Vec::new()
                    },
                    top_features: Vec::new(),
                }
            })
            .collect()
    }
}
