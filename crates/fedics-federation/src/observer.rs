//! What the aggregator reports while it runs: [`fedics_core::FlEvent`]s (for the `fl_events`
//! topic) and richer callbacks that fill round and client tables.

use std::collections::BTreeMap;
use std::time::Duration;

use fedics_core::{FlEvent, FlRole, SCHEMA_VERSION};

use crate::aggregator::RoundReport;

/// Event phases the aggregator emits (`FlEvent::phase`).
pub mod phase {
    /// A site joined (or re-joined) the federation.
    pub const SITE_JOINED: &str = "site_joined";
    /// A site left.
    pub const SITE_LEFT: &str = "site_left";
    /// A round started: tasks are being sent.
    pub const ROUND_STARTED: &str = "round_started";
    /// A site's update arrived and was accepted.
    pub const UPDATE_RECEIVED: &str = "update_received";
    /// A site's update was refused on receipt (malformed, not finite, replayed or not
    /// asked for); never aggregated.
    pub const UPDATE_REJECTED: &str = "update_rejected";
    /// A join was refused for its credentials (unknown site, wrong or missing key).
    pub const JOIN_REFUSED: &str = "join_refused";
    /// A site's evaluation arrived.
    pub const EVALUATION_RECEIVED: &str = "evaluation_received";
    /// The round's updates were aggregated into a new global model.
    pub const ROUND_AGGREGATED: &str = "round_aggregated";
    /// The round was refused before it ran (privacy budget).
    pub const ROUND_REFUSED: &str = "round_refused";
    /// The round ran but failed (too few results, aggregation error).
    pub const ROUND_FAILED: &str = "round_failed";
}

/// One site's contribution to a round, as the aggregator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientProgress {
    /// Round number.
    pub round: u32,
    /// Site id.
    pub site_id: String,
    /// `update_received` or `evaluation_received`.
    pub phase: &'static str,
    /// Examples the site reported.
    pub num_examples: u64,
    /// The site's metrics (training or evaluation).
    pub metrics: BTreeMap<String, f64>,
    /// Time from the start of the round (or of the evaluation) to the arrival.
    pub elapsed: Duration,
    /// Bytes of the site's payload received.
    pub bytes_received: u64,
    /// L2 norm of the update before the aggregator's clipping (DP only).
    pub update_norm: Option<f64>,
}

/// Receives the aggregator's events. Called from the aggregator's tasks: keep it quick and
/// non-blocking (hand off to a channel for anything slow).
pub trait FlObserver: Send + Sync {
    /// An event for the `fl_events` topic.
    fn event(&self, event: FlEvent);

    /// A site's update or evaluation arrived (one row of a client table).
    fn client_progress(&self, _progress: &ClientProgress) {}

    /// A round finished, was refused or failed (one row of a round table).
    fn round_finished(&self, _report: &RoundReport) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl FlObserver for NoopObserver {
    fn event(&self, _event: FlEvent) {}
}

/// Builds [`FlEvent`]s of one node.
#[derive(Debug, Clone)]
pub(crate) struct EventFactory {
    pub facility_id: String,
    pub node_id: String,
    pub role: FlRole,
}

/// The optional fields of an event.
#[derive(Debug, Default)]
pub(crate) struct EventFields {
    pub metrics: BTreeMap<String, f64>,
    pub epsilon: Option<f64>,
    pub delta: Option<f64>,
    pub bytes_sent: u64,
    pub duration: Duration,
}

impl EventFactory {
    pub fn make(&self, round: u32, phase: &str, fields: EventFields) -> FlEvent {
        FlEvent {
            schema_version: SCHEMA_VERSION,
            event_id: uuid::Uuid::new_v4(),
            facility_id: self.facility_id.clone(),
            timestamp: chrono::Utc::now(),
            round_id: u64::from(round),
            role: self.role,
            node_id: self.node_id.clone(),
            phase: phase.to_owned(),
            // Events must hold finite metrics only.
            metrics: fields
                .metrics
                .into_iter()
                .filter(|(_, v)| v.is_finite())
                .collect(),
            epsilon: fields.epsilon.filter(|e| e.is_finite()),
            delta: fields.delta,
            bytes_sent: fields.bytes_sent,
            duration_ms: fields.duration.as_secs_f64() * 1e3,
        }
    }
}
