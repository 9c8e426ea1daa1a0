//! The per-flow join of detector verdicts, with a deadline.
//!
//! A flow is complete when every expected detector has reported, or when its deadline
//! passes (then it is completed with what arrived, and the missing detectors are named),
//! so a missing or stalled detector never blocks a flow forever. The join also knows how
//! far each partition may be committed: not past the first record of a flow still waiting,
//! so that a crash redelivers everything that was not finished.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use fedics_core::AnomalyEvent;
use uuid::Uuid;

/// A flow whose verdicts are all in (or whose deadline passed).
#[derive(Debug, Clone)]
pub struct Completed {
    pub flow_id: Uuid,
    pub verdicts: Vec<AnomalyEvent>,
    pub missing: Vec<String>,
    /// Wall-clock emission time of the flow, if the source stamped it.
    pub origin_us: Option<u64>,
    pub expired: bool,
}

#[derive(Debug)]
struct Pending {
    verdicts: Vec<AnomalyEvent>,
    anchor: (u32, u64),
    origin_us: Option<u64>,
}

/// Remembered completed flows, to drop verdicts that arrive after their flow was decided.
const RECENT_CAP: usize = 200_000;

#[derive(Debug)]
pub struct Join {
    expected: Vec<String>,
    deadline: Duration,
    pending: HashMap<Uuid, Pending>,
    anchors: BTreeSet<(u32, u64)>,
    order: VecDeque<(Instant, Uuid)>,
    recent: HashSet<Uuid>,
    recent_order: VecDeque<Uuid>,
    late: u64,
}

impl Join {
    pub fn new(expected: Vec<String>, deadline: Duration) -> Self {
        Self {
            expected,
            deadline,
            pending: HashMap::new(),
            anchors: BTreeSet::new(),
            order: VecDeque::new(),
            recent: HashSet::new(),
            recent_order: VecDeque::new(),
            late: 0,
        }
    }

    /// Verdicts dropped because their flow was already decided.
    pub fn late(&self) -> u64 {
        self.late
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds one verdict delivered at (`partition`, `offset`). Returns the flow if it is now
    /// complete. A repeated verdict of the same detector replaces the earlier one.
    pub fn offer(
        &mut self,
        ev: AnomalyEvent,
        partition: u32,
        offset: u64,
        origin_us: Option<u64>,
        now: Instant,
    ) -> Option<Completed> {
        let flow_id = ev.flow_id;
        if self.recent.contains(&flow_id) {
            self.late += 1;
            return None;
        }
        let p = self.pending.entry(flow_id).or_insert_with(|| {
            self.anchors.insert((partition, offset));
            self.order.push_back((now, flow_id));
            Pending {
                verdicts: Vec::with_capacity(self.expected.len()),
                anchor: (partition, offset),
                origin_us,
            }
        });
        match p.verdicts.iter_mut().find(|v| v.detector == ev.detector) {
            Some(slot) => *slot = ev,
            None => p.verdicts.push(ev),
        }
        let complete = self
            .expected
            .iter()
            .all(|d| p.verdicts.iter().any(|v| &v.detector == d));
        if complete {
            self.finish(flow_id, false)
        } else {
            None
        }
    }

    fn finish(&mut self, flow_id: Uuid, expired: bool) -> Option<Completed> {
        let p = self.pending.remove(&flow_id)?;
        self.anchors.remove(&p.anchor);
        if self.recent.insert(flow_id) {
            self.recent_order.push_back(flow_id);
            if self.recent_order.len() > RECENT_CAP
                && let Some(old) = self.recent_order.pop_front()
            {
                self.recent.remove(&old);
            }
        }
        let missing = self
            .expected
            .iter()
            .filter(|d| !p.verdicts.iter().any(|v| &v.detector == *d))
            .cloned()
            .collect();
        Some(Completed {
            flow_id,
            verdicts: p.verdicts,
            missing,
            origin_us: p.origin_us,
            expired,
        })
    }

    /// Completes every flow whose deadline has passed at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Completed> {
        let mut out = Vec::new();
        while let Some(&(since, id)) = self.order.front() {
            if !self.pending.contains_key(&id) {
                // Completed before its deadline: just forget it.
                self.order.pop_front();
                continue;
            }
            if now.duration_since(since) < self.deadline {
                break;
            }
            self.order.pop_front();
            if let Some(c) = self.finish(id, true) {
                out.push(c);
            }
        }
        out
    }

    /// When the oldest waiting flow expires (as of the last [`Join::expire`]; flows
    /// completed since then may make this earlier than needed, never later).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(since, _)| *since + self.deadline)
    }

    /// The offset `partition` may be committed to, given that everything before
    /// `polled_next` has been offered: the first record of the oldest waiting flow.
    pub fn commit_offset(&self, partition: u32, polled_next: u64) -> u64 {
        self.anchors
            .range((partition, 0)..=(partition, u64::MAX))
            .next()
            .map(|&(_, o)| o)
            .unwrap_or(polled_next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedics_core::{FlowContext, SCHEMA_VERSION, Transport};

    fn verdict(flow: u128, detector: &str) -> AnomalyEvent {
        let t =
            chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        AnomalyEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::from_u128(flow ^ 0xff),
            flow_id: Uuid::from_u128(flow),
            facility_id: "site-1".into(),
            timestamp: t,
            detector: detector.into(),
            layer: 1,
            model_version: "v1".into(),
            score: Some(0.1),
            threshold: None,
            is_anomaly: false,
            abstain_reason: None,
            findings: vec![],
            top_features: vec![],
            context: Some(FlowContext {
                src_ip: std::net::IpAddr::from([10, 0, 0, 1]),
                src_port: 1,
                dst_ip: std::net::IpAddr::from([10, 0, 0, 2]),
                dst_port: 502,
                transport: Transport::Tcp,
                ics_protocol: None,
                ts_start: t,
                ts_end: t,
            }),
            flow: None,
        }
    }

    fn join() -> Join {
        Join::new(
            vec!["rules".into(), "iforest".into()],
            Duration::from_millis(500),
        )
    }

    #[test]
    fn completes_when_all_expected_detectors_reported() {
        let mut j = join();
        let t0 = Instant::now();
        assert!(j.offer(verdict(1, "rules"), 0, 10, Some(5), t0).is_none());
        let c = j
            .offer(verdict(1, "iforest"), 0, 11, None, t0)
            .expect("complete");
        assert_eq!(c.verdicts.len(), 2);
        assert!(c.missing.is_empty() && !c.expired);
        assert_eq!(c.origin_us, Some(5));
        assert_eq!(j.pending(), 0);
    }

    #[test]
    fn deadline_completes_a_flow_with_a_missing_detector() {
        let mut j = join();
        let t0 = Instant::now();
        assert!(j.offer(verdict(1, "rules"), 0, 0, None, t0).is_none());
        assert!(j.expire(t0 + Duration::from_millis(499)).is_empty());
        assert_eq!(j.next_deadline(), Some(t0 + Duration::from_millis(500)));
        let done = j.expire(t0 + Duration::from_millis(500));
        assert_eq!(done.len(), 1);
        assert!(done[0].expired);
        assert_eq!(done[0].missing, vec!["iforest".to_string()]);
        // A verdict arriving after the decision is dropped and counted, not re-joined.
        assert!(j.offer(verdict(1, "iforest"), 0, 1, None, t0).is_none());
        assert_eq!(j.late(), 1);
        assert_eq!(j.pending(), 0);
        assert!(j.expire(t0 + Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn commit_offset_never_passes_a_waiting_flow() {
        let mut j = join();
        let t0 = Instant::now();
        j.offer(verdict(1, "rules"), 0, 100, None, t0);
        j.offer(verdict(2, "rules"), 0, 101, None, t0);
        j.offer(verdict(3, "rules"), 1, 7, None, t0);
        assert_eq!(j.commit_offset(0, 102), 100);
        assert_eq!(j.commit_offset(1, 8), 7);
        assert_eq!(j.commit_offset(2, 3), 3);
        j.offer(verdict(1, "iforest"), 0, 102, None, t0);
        assert_eq!(j.commit_offset(0, 103), 101);
        j.offer(verdict(2, "iforest"), 0, 103, None, t0);
        assert_eq!(j.commit_offset(0, 104), 104);
    }

    #[test]
    fn duplicate_verdicts_replace() {
        let mut j = join();
        let t0 = Instant::now();
        j.offer(verdict(9, "rules"), 0, 0, None, t0);
        j.offer(verdict(9, "rules"), 0, 1, None, t0);
        let c = j
            .offer(verdict(9, "iforest"), 0, 2, None, t0)
            .expect("complete");
        assert_eq!(c.verdicts.len(), 2);
    }
}
