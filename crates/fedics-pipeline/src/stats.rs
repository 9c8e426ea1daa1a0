//! Live counters shared by the stages (for the demo's summary line and the bench), and
//! the end-to-end latency recorder. Prometheus metrics are emitted alongside through the
//! `metrics` facade.

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
