//! # fedics-core: the FedICS vocabulary
//!
//! Every message that crosses a stage boundary is defined here as a serde type with a
//! schema version, a stable event id, a UTC timestamp and the facility it concerns.
//! This crate depends on nothing of ours, so every other crate can depend on it.
//!
//! * [`flow`]: the `network_data` flow record (5-tuple, direction-aware counters, TCP flags,
//!   inter-arrival statistics and an ICS section with Modbus details, plus ground truth).
//! * [`event`]: the events of `anomalies`, `attack_classified`, `attack_predicted`, `alerts`
//!   and `fl_events`.
//! * [`attack`]: ATT&CK for ICS technique and tactic table.
//! * [`codec`]: decoding bytes into validated events with precise errors.

pub mod attack;
pub mod codec;
pub mod event;
pub mod flow;
pub mod ids;
pub mod time;

/// Schema version carried by every event. Consumers reject any other version.
pub const SCHEMA_VERSION: u16 = 1;

/// Topic names, as used by the seeds and by every bus backend.
pub mod topics {
    pub const NETWORK_DATA: &str = "network_data";
    pub const ANOMALIES: &str = "anomalies";
    pub const ATTACK_CLASSIFIED: &str = "attack_classified";
    pub const ATTACK_PREDICTED: &str = "attack_predicted";
    pub const ALERTS: &str = "alerts";
    pub const FL_EVENTS: &str = "fl_events";
    pub const STIX: &str = "stix";
    /// All pipeline topics, in pipeline order.
    pub const ALL: &[&str] = &[
        NETWORK_DATA,
        ANOMALIES,
        ATTACK_CLASSIFIED,
        ATTACK_PREDICTED,
        ALERTS,
        FL_EVENTS,
        STIX,
    ];
}

pub use codec::{DecodeError, Validate, decode, encode};
pub use event::*;
pub use flow::*;
