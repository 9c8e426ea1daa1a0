//! # fedics-fl
//!
//! Federated learning, the parts that do not depend on a model framework or a transport:
//!
//! * [`dp`]: client-level differential privacy (McMahan et al. 2018): clipping of each
//!   site's update, Gaussian noise on the sum, and the Rényi-DP accountant of the
//!   Poisson-subsampled Gaussian mechanism with conversion to (ε, δ) and budget enforcement.
//! * [`strategy`]: aggregation strategies as values behind one interface.
//! * [`trainer`]: what a site runs each round ([`trainer::LocalTrainer`]).
//! * [`trees`]: federations that merge trees instead of averaging parameters (the Isolation
//!   Forest): what a site runs ([`trees::TreeTrainer`]) and the aggregator's validation and
//!   merge rule ([`trees::TreeMerger`]).
//!
//! Model parameters travel as flat `f32` vectors; the model crates flatten and restore them.
//! Trees travel as the model crate's versioned encoding.

pub mod dp;
pub mod strategy;
pub mod trainer;
pub mod trees;
