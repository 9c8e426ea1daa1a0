//! Classification: from all detector verdicts of one flow to an ATT&CK for ICS technique.
//!
//! [`EvidenceClassifier`] is deterministic and explainable: every rule finding votes for
//! the technique its rule names with the rule's weight, votes combine as independent
//! evidence (`1 - Π(1 - w)`), and a model anomaly with no rule behind it is mapped from
//! what its top features and the flow's service say (bulk transfer to a file-sharing port:
//! Lateral Tool Transfer; handshake-only flows: Remote System Discovery; writes:
//! Unauthorized Command Message), otherwise `unknown`. When a model agrees that a
//! rule-flagged flow is anomalous, the model's margin adds to the confidence.

use std::collections::BTreeMap;

use fedics_core::{AnomalyEvent, AttackClassification, FlowContext};
use uuid::Uuid;

/// All verdicts on one flow, as assembled by the join. Classifiers see the flows at least
/// one detector flagged; `context` comes from a flagging verdict.
#[derive(Debug, Clone, Copy)]
pub struct JoinedFlow<'a> {
    pub flow_id: Uuid,
    pub facility_id: &'a str,
    pub context: &'a FlowContext,
    pub verdicts: &'a [AnomalyEvent],
    /// Detectors whose verdict missed the join deadline.
    pub missing: &'a [String],
    /// The flow record (flagging detectors attach it), for classifiers that work on the
    /// flow's own features, such as a supervised model.
    pub flow: Option<&'a fedics_core::FlowRecord>,
}

/// A classifier's answer for an attack flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub technique_id: String,
    pub confidence: f64,
    pub summary: String,
}

/// Names the technique behind an anomalous flow. Returns `None` for a flow no evidence
/// marks as an attack.
pub trait Classifier: Send {
    fn name(&self) -> &str;
    fn version(&self) -> String;
    fn classify(&mut self, flow: &JoinedFlow<'_>) -> Option<Classification>;
}

const FILE_PORTS: [u16; 8] = [445, 139, 21, 22, 80, 443, 3389, 5985];
const VOLUME_FEATURES: [&str; 6] = [
    "fwd_bytes_log",
    "bwd_bytes_log",
    "fwd_packets_log",
    "bwd_packets_log",
    "duration_ms_log",
    "fwd_bytes_per_packet",
];
const PROBE_FEATURES: [&str; 3] = ["syn", "rst", "fin"];

#[derive(Debug, Default, Clone)]
pub struct EvidenceClassifier;

impl EvidenceClassifier {
    pub fn new() -> Self {
        Self
    }

    /// Maps a model anomaly without rule findings to a technique and a base confidence.
    fn model_only(v: &AnomalyEvent, ctx: &FlowContext) -> (String, f64, String) {
        let margin = match (v.score, v.threshold) {
            (Some(s), Some(t)) if t < 1.0 => ((s - t) / (1.0 - t)).clamp(0.0, 1.0),
            _ => 0.0,
        };
        let top: Vec<&str> = v
            .top_features
            .iter()
            .take(3)
            .map(|f| f.name.as_str())
            .collect();
        let has = |set: &[&str]| top.iter().any(|n| set.contains(n));
        let lead = top.first().copied().unwrap_or("score");
        if has(&VOLUME_FEATURES) && FILE_PORTS.contains(&ctx.dst_port) {
            (
                "T0867".into(),
                0.5 + 0.4 * margin,
                format!(
                    "{} anomaly on file-transfer port {} led by {lead}",
                    v.detector, ctx.dst_port
                ),
            )
        } else if has(&PROBE_FEATURES) && top.first().is_some_and(|n| PROBE_FEATURES.contains(n)) {
            (
                "T0846".into(),
                0.4 + 0.4 * margin,
                format!("{} anomaly led by TCP handshake flags ({lead})", v.detector),
            )
        } else if top.first() == Some(&"modbus_writes_log") {
            (
                "T0855".into(),
                0.4 + 0.4 * margin,
                format!("{} anomaly led by Modbus writes", v.detector),
            )
        } else {
            (
                AttackClassification::UNKNOWN.into(),
                0.3 + 0.5 * margin,
                format!(
                    "{} anomaly (score {:.3}) led by {lead}",
                    v.detector,
                    v.score.unwrap_or(0.0)
                ),
            )
        }
    }
}

impl Classifier for EvidenceClassifier {
    fn name(&self) -> &str {
        "evidence"
    }

    fn version(&self) -> String {
        "evidence-1".into()
    }

    fn classify(&mut self, flow: &JoinedFlow<'_>) -> Option<Classification> {
        let anomalous: Vec<&AnomalyEvent> = flow.verdicts.iter().filter(|v| v.is_anomaly).collect();
        if anomalous.is_empty() {
            return None;
        }
        // technique -> (1 - Π(1 - w), reasons)
        let mut votes: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
        for v in &anomalous {
            for f in &v.findings {
                let t = f
                    .technique
                    .clone()
                    .unwrap_or_else(|| AttackClassification::UNKNOWN.into());
                let e = votes.entry(t).or_insert((0.0, Vec::new()));
                e.0 = 1.0 - (1.0 - e.0) * (1.0 - f.weight.clamp(0.0, 1.0));
                e.1.push(f.rule.clone());
            }
        }
        let models: Vec<&&AnomalyEvent> =
            anomalous.iter().filter(|v| v.findings.is_empty()).collect();
        if votes.is_empty() {
            // Only models fired: take the strongest mapping.
            let (t, c, why) = models
                .iter()
                .map(|v| Self::model_only(v, flow.context))
                .max_by(|a, b| a.1.total_cmp(&b.1))?;
            return Some(Classification {
                technique_id: t,
                confidence: c.clamp(0.0, 1.0),
                summary: why,
            });
        }
        // Rules fired: the best-supported technique, reinforced by agreeing models.
        let (technique, (mut conf, rules)) = votes
            .into_iter()
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0).then_with(|| b.0.cmp(&a.0)))?;
        let mut why = format!("rules {} indicate {technique}", rules.join(", "));
        for m in models {
            let margin = match (m.score, m.threshold) {
                (Some(s), Some(t)) if t < 1.0 => ((s - t) / (1.0 - t)).clamp(0.0, 1.0),
                _ => 0.0,
            };
            conf = 1.0 - (1.0 - conf) * (1.0 - 0.5 * (0.5 + 0.5 * margin));
            why.push_str(&format!(
                "; {} agrees (score {:.3})",
                m.detector,
                m.score.unwrap_or(0.0)
            ));
        }
        Some(Classification {
            technique_id: technique,
            confidence: conf.clamp(0.0, 1.0),
            summary: why,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedics_core::{FeatureContribution, RuleFinding, SCHEMA_VERSION, Transport};

    fn ctx(port: u16) -> FlowContext {
        let t =
            chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        FlowContext {
            src_ip: "10.1.3.20"
                .parse()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            src_port: 50000,
            dst_ip: "10.1.1.30"
                .parse()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            dst_port: port,
            transport: Transport::Tcp,
            ics_protocol: None,
            ts_start: t,
            ts_end: t,
        }
    }

    fn verdict(
        detector: &str,
        anomaly: bool,
        findings: Vec<RuleFinding>,
        top: &[&str],
        c: FlowContext,
    ) -> AnomalyEvent {
        AnomalyEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::nil(),
            flow_id: Uuid::nil(),
            facility_id: "site-1".into(),
            timestamp: c.ts_end,
            detector: detector.into(),
            layer: 1,
            model_version: "v".into(),
            score: Some(if anomaly { 0.8 } else { 0.4 }),
            threshold: Some(0.6),
            is_anomaly: anomaly,
            abstain_reason: None,
            findings,
            top_features: top
                .iter()
                .map(|n| FeatureContribution {
                    name: n.to_string(),
                    value: 1.0,
                    contribution: 0.5,
                })
                .collect(),
            context: Some(c),
            flow: None,
        }
    }

    fn rule(t: &str, w: f64) -> RuleFinding {
        RuleFinding {
            rule: format!("r-{t}"),
            kind: "k".into(),
            technique: Some(t.into()),
            weight: w,
            message: String::new(),
        }
    }

    fn classify(vs: &[AnomalyEvent], c: &FlowContext) -> Option<Classification> {
        EvidenceClassifier::new().classify(&JoinedFlow {
            flow_id: Uuid::nil(),
            facility_id: "site-1",
            context: c,
            verdicts: vs,
            missing: &[],
            flow: None,
        })
    }

    #[test]
    fn benign_when_nothing_fires() {
        let c = ctx(502);
        let vs = [
            verdict("rules", false, vec![], &[], c),
            verdict("iforest", false, vec![], &[], c),
        ];
        assert!(classify(&vs, &c).is_none());
    }

    #[test]
    fn strongest_rule_technique_wins_and_models_reinforce() {
        let c = ctx(502);
        let rules = verdict(
            "rules",
            true,
            vec![rule("T0855", 0.85), rule("T0806", 0.9)],
            &[],
            c,
        );
        let alone = classify(std::slice::from_ref(&rules), &c).expect("classified");
        assert_eq!(alone.technique_id, "T0806");
        assert!((alone.confidence - 0.9).abs() < 1e-12);
        let both = classify(
            &[
                rules,
                verdict("iforest", true, vec![], &["modbus_writes_log"], c),
            ],
            &c,
        )
        .expect("classified");
        assert_eq!(both.technique_id, "T0806");
        assert!(both.confidence > alone.confidence);
    }

    #[test]
    fn model_only_bulk_transfer_to_smb_is_lateral_tool_transfer() {
        let c = ctx(445);
        let vs = [verdict(
            "iforest",
            true,
            vec![],
            &["fwd_bytes_log", "duration_ms_log"],
            c,
        )];
        assert_eq!(
            classify(&vs, &c).map(|x| x.technique_id),
            Some("T0867".into())
        );
        let c2 = ctx(8080);
        let vs2 = [verdict("iforest", true, vec![], &["temperature"], c2)];
        assert_eq!(
            classify(&vs2, &c2).map(|x| x.technique_id),
            Some("unknown".into())
        );
    }

    #[test]
    fn repeated_evidence_combines_as_independent() {
        let c = ctx(502);
        let vs = [verdict(
            "rules",
            true,
            vec![rule("T0846", 0.8), rule("T0846", 0.8)],
            &[],
            c,
        )];
        let r = classify(&vs, &c).expect("classified");
        assert!((r.confidence - 0.96).abs() < 1e-12);
    }
}
