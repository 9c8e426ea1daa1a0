//! Live counters shared by the stages (for the demo's summary line and the bench), and
//! the end-to-end latency recorder. Prometheus metrics are emitted alongside through the
//! `metrics` facade.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use fedics_core::Severity;

#[derive(Debug, Default)]
pub struct Stats {
    pub flows_in: AtomicU64,
    pub flows_classified: AtomicU64,
    pub anomalies: AtomicU64,
    pub attacks: AtomicU64,
    pub join_deadline_expired: AtomicU64,
    pub alerts_low: AtomicU64,
    pub alerts_medium: AtomicU64,
    pub alerts_high: AtomicU64,
    pub alerts_critical: AtomicU64,
    pub incidents: AtomicU64,
    pub predictions: AtomicU64,
    pub rejected: AtomicU64,
    pub persisted: AtomicU64,
    pub store_errors: AtomicU64,
    /// Nanoseconds each stage spent working on batches (not waiting for them).
    pub busy_detect_ns: AtomicU64,
    pub busy_classify_ns: AtomicU64,
    pub busy_predict_ns: AtomicU64,
    pub busy_persist_ns: AtomicU64,
    /// Flows taken in and flows judged anomalous, per facility (detect stage).
    pub facilities: FacilityCounters,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub flows_in: u64,
    pub flows_classified: u64,
    pub anomalies: u64,
    pub attacks: u64,
    pub join_deadline_expired: u64,
    pub alerts_low: u64,
    pub alerts_medium: u64,
    pub alerts_high: u64,
    pub alerts_critical: u64,
    pub incidents: u64,
    pub predictions: u64,
    pub rejected: u64,
    pub persisted: u64,
    pub store_errors: u64,
    pub busy_detect_ns: u64,
    pub busy_classify_ns: u64,
    pub busy_predict_ns: u64,
    pub busy_persist_ns: u64,
}

impl Stats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn incident(&self, s: Severity) {
        let c = match s {
            Severity::Low => &self.alerts_low,
            Severity::Medium => &self.alerts_medium,
            Severity::High => &self.alerts_high,
            Severity::Critical => &self.alerts_critical,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.incidents.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the time since `since` to a stage's busy counter.
    pub fn busy(c: &AtomicU64, since: std::time::Instant) {
        c.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            flows_in: g(&self.flows_in),
            flows_classified: g(&self.flows_classified),
            anomalies: g(&self.anomalies),
            attacks: g(&self.attacks),
            join_deadline_expired: g(&self.join_deadline_expired),
            alerts_low: g(&self.alerts_low),
            alerts_medium: g(&self.alerts_medium),
            alerts_high: g(&self.alerts_high),
            alerts_critical: g(&self.alerts_critical),
            incidents: g(&self.incidents),
            predictions: g(&self.predictions),
            rejected: g(&self.rejected),
            persisted: g(&self.persisted),
            store_errors: g(&self.store_errors),
            busy_detect_ns: g(&self.busy_detect_ns),
            busy_classify_ns: g(&self.busy_classify_ns),
            busy_predict_ns: g(&self.busy_predict_ns),
            busy_persist_ns: g(&self.busy_persist_ns),
        }
    }
}

/// Facilities counted separately at most; flows of any further facility are counted in
/// [`FacilitySnapshot::overflow`] (facility ids come from the data).
pub const MAX_FACILITIES: usize = 256;

/// Longest facility id counted under its own name (bytes); longer ones go to the overflow.
pub const MAX_FACILITY_ID_BYTES: usize = 128;

/// Cumulative counts of one facility.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FacilityCount {
    /// Flows the detect stage took in (decoded and judged).
    pub flows_in: u64,
    /// Of those, flows with at least one anomalous verdict (a flow flagged by two detectors
    /// counts once).
    pub anomalies: u64,
}

impl FacilityCount {
    fn add(&mut self, o: FacilityCount) {
        self.flows_in = self.flows_in.saturating_add(o.flows_in);
        self.anomalies = self.anomalies.saturating_add(o.anomalies);
    }
}

/// Per-facility counters, bounded to [`MAX_FACILITIES`] names.
#[derive(Debug, Default)]
pub struct FacilityCounters {
    inner: Mutex<FacilitySnapshot>,
}

/// A point-in-time copy of [`FacilityCounters`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FacilitySnapshot {
    /// By facility id.
    pub facilities: BTreeMap<String, FacilityCount>,
    /// Flows of facilities beyond [`MAX_FACILITIES`] (or with ids longer than
    /// [`MAX_FACILITY_ID_BYTES`]), all together.
    pub overflow: FacilityCount,
}

/// Counts of one batch by facility, added to [`FacilityCounters`] under one lock.
#[derive(Debug, Default)]
pub struct FacilityBatch {
    // Few facilities per batch: a linear scan beats hashing.
    counts: Vec<(String, FacilityCount)>,
}

impl FacilityBatch {
    /// One flow of `facility`, anomalous or not.
    pub fn flow(&mut self, facility: &str, anomalous: bool) {
        let add = FacilityCount {
            flows_in: 1,
            anomalies: u64::from(anomalous),
        };
        match self.counts.iter_mut().find(|(f, _)| f.as_str() == facility) {
            Some((_, c)) => c.add(add),
            None => self.counts.push((facility.to_string(), add)),
        }
    }
}

impl FacilityCounters {
    fn lock(&self) -> std::sync::MutexGuard<'_, FacilitySnapshot> {
        // Every update is a sequence of saturating additions: a panic mid-way cannot leave
        // the map inconsistent, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a batch's counts.
    pub fn add(&self, batch: FacilityBatch) {
        if batch.counts.is_empty() {
            return;
        }
        let mut s = self.lock();
        for (facility, c) in batch.counts {
            let known = s.facilities.len();
            match s.facilities.get_mut(&facility) {
                Some(e) => e.add(c),
                None if known < MAX_FACILITIES && facility.len() <= MAX_FACILITY_ID_BYTES => {
                    s.facilities.insert(facility, c);
                }
                None => s.overflow.add(c),
            }
        }
    }

    pub fn snapshot(&self) -> FacilitySnapshot {
        self.lock().clone()
    }
}

/// End-to-end latencies (flow emitted → classified), in microseconds.
#[derive(Debug, Default)]
pub struct LatencyRecorder {
    samples: Mutex<Vec<u32>>,
}

impl LatencyRecorder {
    pub fn record_batch(&self, micros: &[u32]) {
        if micros.is_empty() {
            return;
        }
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: keep at most 4M samples (16 MiB); later samples replace by stride.
        if s.len() < 4_000_000 {
            s.extend_from_slice(micros);
        }
    }

    /// (p50, p99) in milliseconds, or `None` without samples.
    pub fn percentiles(&self) -> Option<(f64, f64)> {
        let mut s = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if s.is_empty() {
            return None;
        }
        s.sort_unstable();
        let at = |q: f64| f64::from(s[((s.len() - 1) as f64 * q).round() as usize]) / 1000.0;
        Some((at(0.50), at(0.99)))
    }

    pub fn count(&self) -> usize {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Microseconds since the Unix epoch (wall clock), for origin headers.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_counts_add_up_per_facility() {
        let c = FacilityCounters::default();
        let mut b = FacilityBatch::default();
        b.flow("plant-a", false);
        b.flow("plant-b", true);
        b.flow("plant-a", true);
        c.add(b);
        let mut b = FacilityBatch::default();
        b.flow("plant-a", false);
        c.add(b);
        let s = c.snapshot();
        assert_eq!(
            s.facilities.get("plant-a"),
            Some(&FacilityCount {
                flows_in: 3,
                anomalies: 1
            })
        );
        assert_eq!(
            s.facilities.get("plant-b"),
            Some(&FacilityCount {
                flows_in: 1,
                anomalies: 1
            })
        );
        assert_eq!(s.overflow, FacilityCount::default());
    }

    #[test]
    fn facility_map_is_bounded_and_counts_the_overflow() {
        let c = FacilityCounters::default();
        for i in 0..MAX_FACILITIES + 10 {
            let mut b = FacilityBatch::default();
            b.flow(&format!("f{i:04}"), i % 2 == 0);
            c.add(b);
        }
        let mut b = FacilityBatch::default();
        b.flow(&"x".repeat(MAX_FACILITY_ID_BYTES + 1), true);
        // A facility already known keeps being counted under its name.
        b.flow("f0000", false);
        c.add(b);
        let s = c.snapshot();
        assert_eq!(s.facilities.len(), MAX_FACILITIES);
        assert_eq!(s.facilities["f0000"].flows_in, 2);
        assert_eq!(
            s.overflow,
            FacilityCount {
                flows_in: 11,
                anomalies: 6
            }
        );
        let total: u64 = s.facilities.values().map(|f| f.flows_in).sum();
        assert_eq!(total + s.overflow.flows_in, (MAX_FACILITIES + 12) as u64);
    }
}
