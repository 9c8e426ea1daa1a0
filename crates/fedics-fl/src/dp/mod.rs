//! Client-level differential privacy and its accountant.
//!
//! Client-level DP (McMahan, Ramage, Talwar & Zhang 2018, "Learning Differentially Private
//! Recurrent Language Models") protects the participation of a whole site: each round
//!
//! 1. sites are sampled, each independently with probability `q`;
//! 2. each sampled site's update is clipped to L2 norm `C` ([`clip_l2`]);
//! 3. Gaussian noise of standard deviation `σ·C` is added to the sum of the clipped updates,
//!    either once by the server ([`GaussianNoise::add_central`]) or as `N(0, σ²C²/n)` by each
//!    of the `n` sites before secure aggregation ([`GaussianNoise::add_distributed`]);
//! 4. the round is one step of the Poisson-subsampled Gaussian mechanism, which the
//!    [`RdpAccountant`] composes and converts to (ε, δ);
//! 5. a [`Ledger`] refuses, before it is run, a round that would take ε past the
//!    [`PrivacyBudget`].
//!
//! [`pld_epsilon`] is the second, tighter accountant (privacy loss distributions, as
//! `dp-accounting`'s `PLDAccountant`), for reporting; budgets are enforced with RDP.
//!
//! The clipping bound can follow a quantile of the update norms ([`AdaptiveClipping`],
//! Andrew et al. 2021).

mod budget;
mod mechanism;
mod pld;
mod rdp;
mod special;

pub use budget::{Ledger, LedgerEntry, PrivacyBudget};
pub use mechanism::{
    AdaptiveClipping, GaussianNoise, adaptive_update_noise_multiplier, add_gaussian_noise, clip_l2,
    l2_norm, secure_rng,
};
pub use pld::{PldOptions, pld_epsilon};
pub use rdp::{
    DeltaAt, EpsilonAt, MAX_ORDER, MAX_SERIES_TERMS, RdpAccountant, default_orders, epsilon,
    epsilon_json, rdp_poisson_gaussian,
};

/// Errors of the DP module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DpError {
    /// A parameter outside its domain (or NaN).
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter {
        /// The parameter's name, e.g. `"q"`, `"sigma"`, `"delta"`.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What was expected.
        expected: &'static str,
    },
    /// The round would take the privacy loss past the budget; nothing was recorded.
    #[error(
        "privacy budget exceeded: the round would bring ε to {would_be} at δ = {delta}, above the maximum ε = {max_epsilon}"
    )]
    BudgetExceeded {
        /// The ε the ledger would have with the round added.
        would_be: f64,
        /// The budget's maximum ε.
        max_epsilon: f64,
        /// The budget's δ.
        delta: f64,
    },
    /// A round number not after the last recorded one.
    #[error("round {round} is not after the last recorded round {last}")]
    RoundOutOfOrder {
        /// The round given.
        round: u64,
        /// The last round recorded.
        last: u64,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(String),
    /// A deserialized or constructed state that does not hold together.
    #[error("invalid accountant state: {0}")]
    InvalidState(String),
}

impl DpError {
    pub(crate) fn invalid(name: &'static str, value: f64, expected: &'static str) -> Self {
        Self::InvalidParameter {
            name,
            value,
            expected,
        }
    }
}
