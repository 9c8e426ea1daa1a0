//! From classified flows to incidents (alerts) and next-step predictions.
//!
//! An incident is one (facility, technique, source host) seen within `window` of its last
//! flow; every classified flow becomes an [`AlertEvent`] updating its incident. Incident ids
//! are derived from the incident's first flow, so a replay recreates the same ids and the
//! store merges instead of duplicating. When a facility's incidents move from one technique
//! to another the predictor learns the transition; every new incident gets a top-k forecast.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use fedics_core::{
    AlertEvent, AlertSource, AlertStatus, AttackClassification, AttackPrediction, SCHEMA_VERSION,
    Severity, attack, ids,
};
use fedics_intel::Predictor;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Incident {
    alert_id: Uuid,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    severity: Severity,
    flows: u64,
}

/// Severity from the latest tactic a technique serves and the classifier's confidence:
/// process-impacting tactics (Inhibit Response Function, Impair Process Control, Impact)
/// are critical when confident, lateral movement and later are high, discovery is medium.
pub fn severity(technique: &str, confidence: f64) -> Severity {
    let order = attack::technique(technique).and_then(|t| t.tactic_orders().max());
    match order {
        None => Severity::Low,
        Some(o) if o >= 9 => {
            if confidence >= 0.8 {
                Severity::Critical
            } else {
                Severity::High
            }
        }
        Some(o) if o >= 6 => {
            if confidence >= 0.7 {
                Severity::High
            } else {
                Severity::Medium
            }
        }
        Some(_) => {
            if confidence >= 0.7 {
                Severity::Medium
            } else {
                Severity::Low
            }
        }
    }
}

/// Open incidents of one facility by (technique, source), and updates since eviction.
type FacilityIncidents = (HashMap<(String, IpAddr), Incident>, u64);

pub struct Correlator {
    predictor: Predictor,
    window: TimeDelta,
    top_k: usize,
    /// Per facility: open incidents by (technique, source) and updates since the last
    /// eviction. Eviction compares with the facility's own clock, so how facilities
    /// interleave on the bus never changes which incidents exist.
    incidents: HashMap<String, FacilityIncidents>,
    /// Per facility: the technique and start of its latest incident.
    last: HashMap<String, (String, DateTime<Utc>)>,
}

/// What one classification produced.
pub struct Correlated {
    pub alert: AlertEvent,
    pub new_incident: bool,
    pub prediction: Option<AttackPrediction>,
}

impl Correlator {
    pub fn new(predictor: Predictor, window: TimeDelta, top_k: usize) -> Self {
        Self {
            predictor,
            window,
            top_k,
            incidents: HashMap::new(),
            last: HashMap::new(),
        }
    }

    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    pub fn on_classification(&mut self, c: &AttackClassification) -> Correlated {
        let ts = c.timestamp;
        let window = self.window;
        let (open, updates) = self.incidents.entry(c.facility_id.clone()).or_default();
        *updates += 1;
        if updates.is_multiple_of(4096) {
            open.retain(|_, i| ts - i.last_seen <= window * 2);
        }
        let key = (c.technique_id.clone(), c.context.src_ip);
        let sev = severity(&c.technique_id, c.confidence);
        let mut new_incident = false;
        let inc = open
            .entry(key)
            .and_modify(|i| {
                if ts - i.last_seen > window {
                    new_incident = true;
                }
            })
            .or_insert_with(|| {
                new_incident = true;
                Incident {
                    alert_id: Uuid::nil(),
                    first_seen: ts,
                    last_seen: ts,
                    severity: sev,
                    flows: 0,
                }
            });
        if new_incident {
            *inc = Incident {
                alert_id: ids::derive(&[
                    c.facility_id.as_bytes(),
                    c.technique_id.as_bytes(),
                    c.context.src_ip.to_string().as_bytes(),
                    c.flow_id.as_bytes(),
                ]),
                first_seen: ts,
                last_seen: ts,
                severity: sev,
                flows: 0,
            };
        }
        inc.last_seen = inc.last_seen.max(ts);
        inc.first_seen = inc.first_seen.min(ts);
        inc.severity = inc.severity.max(sev);
        inc.flows += 1;
        let inc = inc.clone();

        let mut prediction = None;
        if new_incident && c.technique_id != AttackClassification::UNKNOWN {
            if let Some((prev, prev_start)) = self.last.get(&c.facility_id)
                && prev != &c.technique_id
            {
                let delay = (ts - *prev_start).num_milliseconds() as f64 / 1000.0;
                if (0.0..=7200.0).contains(&delay) {
                    self.predictor
                        .observe(&c.facility_id, prev, &c.technique_id, delay);
                }
            }
            self.last
                .insert(c.facility_id.clone(), (c.technique_id.clone(), ts));
            let predicted = self
                .predictor
                .predict(&c.facility_id, &c.technique_id, self.top_k);
            prediction = Some(AttackPrediction {
                schema_version: SCHEMA_VERSION,
                event_id: ids::child(inc.alert_id, "prediction"),
                facility_id: c.facility_id.clone(),
                timestamp: ts,
                alert_id: inc.alert_id,
                current_technique: c.technique_id.clone(),
                current_technique_name: c.technique_name.clone(),
                predicted,
                model: "tactic-prior-markov".into(),
                observations: self.predictor.observations(),
            });
        }
        let alert = self.alert(c, &inc, prediction.clone());
        Correlated {
            alert,
            new_incident,
            prediction,
        }
    }

    fn alert(
        &self,
        c: &AttackClassification,
        inc: &Incident,
        prediction: Option<AttackPrediction>,
    ) -> AlertEvent {
        let mut sources: Vec<AlertSource> = c
            .evidence
            .iter()
            .filter(|e| e.is_anomaly)
            .map(|e| {
                let confidence = e
                    .findings
                    .iter()
                    .map(|f| f.weight)
                    .fold(e.score.unwrap_or(0.0), f64::max)
                    .clamp(0.0, 1.0);
                let evidence = if e.findings.is_empty() {
                    let feats: Vec<String> = e
                        .top_features
                        .iter()
                        .map(|f| {
                            format!("{}={:.2} ({:.0}%)", f.name, f.value, 100.0 * f.contribution)
                        })
                        .collect();
                    format!(
                        "score {:.3} above threshold {:.3}; top features: {}",
                        e.score.unwrap_or(0.0),
                        e.threshold.unwrap_or(0.0),
                        feats.join(", ")
                    )
                } else {
                    e.findings
                        .iter()
                        .map(|f| format!("[{}] {}", f.rule, f.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                AlertSource {
                    layer: e.layer,
                    model_name: e.detector.clone(),
                    model_version: e.model_version.clone(),
                    confidence,
                    detection_time: c.timestamp,
                    evidence,
                    context_evidence: serde_json::json!({
                        "score": e.score,
                        "threshold": e.threshold,
                        "findings": e.findings,
                        "top_features": e.top_features,
                    }),
                }
            })
            .collect();
        sources.push(AlertSource {
            layer: 2,
            model_name: c.classifier.clone(),
            model_version: c.classifier_version.clone(),
            confidence: c.confidence,
            detection_time: c.timestamp,
            evidence: format!("classified as {} ({})", c.technique_id, c.technique_name),
            context_evidence: serde_json::json!({ "missing_detectors": c.missing_detectors }),
        });
        let mut model_versions: BTreeMap<String, String> = c
            .evidence
            .iter()
            .map(|e| (e.detector.clone(), e.model_version.clone()))
            .collect();
        model_versions.insert(c.classifier.clone(), c.classifier_version.clone());
        if let Some(p) = &prediction {
            model_versions.insert("predictor".into(), p.model.clone());
            sources.push(AlertSource {
                layer: 3,
                model_name: "predictor".into(),
                model_version: p.model.clone(),
                confidence: p.predicted.first().map(|t| t.probability).unwrap_or(0.0),
                detection_time: c.timestamp,
                evidence: p
                    .predicted
                    .iter()
                    .map(|t| {
                        format!(
                            "#{} {} {} p={:.2} in {}",
                            t.rank, t.technique_id, t.technique_name, t.probability, t.timeframe
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                context_evidence: serde_json::json!({ "observations": p.observations }),
            });
        }
        let summary = c
            .evidence
            .iter()
            .filter(|e| e.is_anomaly)
            .map(|e| e.detector.as_str())
            .collect::<Vec<_>>()
            .join(" + ");
        AlertEvent {
            schema_version: SCHEMA_VERSION,
            event_id: ids::child(c.flow_id, "alert"),
            alert_id: inc.alert_id,
            facility_id: c.facility_id.clone(),
            timestamp: c.timestamp,
            first_seen: inc.first_seen,
            last_seen: inc.last_seen,
            severity: inc.severity,
            title: format!(
                "{} ({}) at {}",
                c.technique_name, c.technique_id, c.facility_id
            ),
            description: format!(
                "{}:{} -> {}:{}: {}",
                c.context.src_ip,
                c.context.src_port,
                c.context.dst_ip,
                c.context.dst_port,
                sources.first().map(|s| s.evidence.as_str()).unwrap_or("")
            ),
            status: AlertStatus::New,
            attack_type: c.technique_id.clone(),
            attack_name: c.technique_name.clone(),
            tactic_ids: c.tactic_ids.clone(),
            correlation_confidence: c.confidence,
            correlation_summary: format!(
                "{summary} -> {} (confidence {:.2})",
                c.classifier, c.confidence
            ),
            src_ip: c.context.src_ip,
            dst_ip: c.context.dst_ip,
            sources,
            flow_ids: vec![c.flow_id],
            model_versions,
            prediction,
        }
    }
}

/// Folds a later update of the same incident into `acc`: flows are appended, times and
/// severity widen, and the headline and evidence follow the most confident update.
/// Hands `n` back when `acc` is full or `n` belongs to another alert.
#[must_use = "an update that was not absorbed must be sent on its own"]
pub fn absorb(acc: &mut AlertEvent, n: AlertEvent) -> Option<AlertEvent> {
    if n.alert_id != acc.alert_id || acc.flow_ids.len() + n.flow_ids.len() > AlertEvent::MAX_FLOWS {
        return Some(n);
    }
    acc.first_seen = acc.first_seen.min(n.first_seen);
    acc.last_seen = acc.last_seen.max(n.last_seen);
    acc.timestamp = acc.timestamp.max(n.timestamp);
    acc.severity = acc.severity.max(n.severity);
    if n.correlation_confidence > acc.correlation_confidence {
        acc.correlation_confidence = n.correlation_confidence;
        acc.title = n.title;
        acc.description = n.description;
        acc.correlation_summary = n.correlation_summary;
        acc.sources = n.sources;
        acc.dst_ip = n.dst_ip;
    }
    acc.model_versions = n.model_versions;
    acc.flow_ids.extend(n.flow_ids);
    if acc.prediction.is_none() {
        acc.prediction = n.prediction;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedics_core::{DetectorEvidence, FlowContext, Transport};
    use fedics_intel::PredictorConfig;

    fn class(flow: u128, technique: &str, src: [u8; 4], secs: i64) -> AttackClassification {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default();
        AttackClassification {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::from_u128(flow + 1),
            flow_id: Uuid::from_u128(flow),
            facility_id: "site-1".into(),
            timestamp: t,
            technique_id: technique.into(),
            technique_name: attack::technique_name(technique).into(),
            tactic_ids: vec![],
            confidence: 0.9,
            classifier: "evidence".into(),
            classifier_version: "evidence-1".into(),
            evidence: vec![DetectorEvidence {
                detector: "rules".into(),
                layer: 1,
                model_version: "r1".into(),
                score: Some(0.9),
                threshold: None,
                is_anomaly: true,
                findings: vec![],
                top_features: vec![],
            }],
            missing_detectors: vec![],
            context: FlowContext {
                src_ip: IpAddr::from(src),
                src_port: 1,
                dst_ip: IpAddr::from([10, 1, 2, 10]),
                dst_port: 502,
                transport: Transport::Tcp,
                ics_protocol: None,
                ts_start: t,
                ts_end: t,
            },
            flow: None,
        }
    }

    fn other_alert() -> AlertEvent {
        correlator()
            .on_classification(&class(99, "T0814", [10, 9, 9, 9], 0))
            .alert
    }

    fn correlator() -> Correlator {
        Correlator::new(
            Predictor::new(PredictorConfig::default(), None),
            TimeDelta::seconds(300),
            3,
        )
    }

    #[test]
    fn flows_of_one_incident_share_an_alert_and_new_windows_open_new_ones() {
        let mut c = correlator();
        let a = c.on_classification(&class(1, "T0846", [10, 1, 3, 20], 0));
        let b = c.on_classification(&class(2, "T0846", [10, 1, 3, 20], 10));
        assert!(a.new_incident && !b.new_incident);
        assert_eq!(a.alert.alert_id, b.alert.alert_id);
        assert_ne!(a.alert.event_id, b.alert.event_id);
        let mut acc = a.alert.clone();
        assert!(absorb(&mut acc, b.alert.clone()).is_none());
        assert!(absorb(&mut acc, other_alert()).is_some());
        assert_eq!(acc.flow_ids, vec![a.alert.flow_ids[0], b.alert.flow_ids[0]]);
        assert_eq!(acc.last_seen, b.alert.last_seen);
        let p = a.prediction.expect("prediction for a new incident");
        assert_eq!(p.predicted.len(), 3);
        let other = c.on_classification(&class(3, "T0846", [10, 1, 3, 21], 11));
        assert_ne!(other.alert.alert_id, a.alert.alert_id);
        let later = c.on_classification(&class(4, "T0846", [10, 1, 3, 20], 1000));
        assert!(later.new_incident);
        assert_ne!(later.alert.alert_id, a.alert.alert_id);
    }

    #[test]
    fn replay_recreates_the_same_ids() {
        let run = || {
            let mut c = correlator();
            (0..5)
                .map(|i| {
                    c.on_classification(&class(
                        i,
                        if i < 3 { "T0846" } else { "T0855" },
                        [10, 1, 3, 20],
                        i as i64,
                    ))
                    .alert
                })
                .map(|a| (a.alert_id, a.event_id))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn transitions_teach_the_predictor() {
        let mut c = correlator();
        let before = c.predictor().observations();
        c.on_classification(&class(1, "T0846", [10, 1, 3, 20], 0));
        c.on_classification(&class(2, "T0855", [10, 1, 3, 20], 60));
        assert_eq!(c.predictor().observations(), before + 1);
    }

    #[test]
    fn severity_follows_tactics_and_confidence() {
        assert_eq!(severity("T0814", 0.9), Severity::Critical);
        assert_eq!(severity("T0814", 0.5), Severity::High);
        assert_eq!(severity("T0867", 0.9), Severity::High);
        assert_eq!(severity("T0846", 0.9), Severity::Medium);
        assert_eq!(severity("T0846", 0.5), Severity::Low);
        assert_eq!(severity("unknown", 0.99), Severity::Low);
    }
}
