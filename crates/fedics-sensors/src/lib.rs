//! # fedics-sensors: where flows come from
//!
//! [`sim`] is the ICS plant simulator: several facilities, each with an HMI, a historian,
//! an engineering workstation, PLCs running a physical process (tank level, pump, valve,
//! pressure, temperature, with noise and control logic) polled over Modbus/TCP, IT hosts,
//! and labelled attack campaigns that follow ATT&CK for ICS tactic order. It is a pure,
//! seeded iterator of [`fedics_core::FlowRecord`]s: deterministic for a seed.

pub mod sim;

pub use sim::{SimConfig, Simulator, SiteTopology};
