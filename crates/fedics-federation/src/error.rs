//! Errors of the aggregator and the site runtimes.

use fedics_fl::dp::DpError;
use fedics_fl::strategy::{ConfigError, StrategyError};

/// Errors of the aggregator.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A configuration that cannot work.
    #[error("invalid aggregator configuration: {0}")]
    Config(String),
    /// The strategy configuration is invalid.
    #[error(transparent)]
    Strategy(#[from] ConfigError),
    /// Aggregation failed.
    #[error("aggregation failed: {0}")]
    Aggregate(#[from] StrategyError),
    /// Merging the trees of a tree federation failed.
    #[error("merging trees: {0}")]
    Merge(#[from] fedics_fl::trees::ContributionError),
    /// A differential-privacy parameter or the accountant failed.
    #[error("differential privacy: {0}")]
    Dp(#[from] DpError),
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// tonic's transport (e.g. the TLS configuration) failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// No site is connected to run a round with.
    #[error("no site is connected")]
    NoSites,
    /// Fewer results than the strategy needs arrived before the deadline.
    #[error(
        "round {round}: {received} of {selected} selected sites answered before the deadline, the strategy needs {min_results}"
    )]
    TooFewResults {
        /// The round.
        round: u32,
        /// Results received.
        received: usize,
        /// Sites selected.
        selected: usize,
        /// The strategy's minimum.
        min_results: usize,
    },
    /// [`crate::AggregatorHandle::wait_for_sites`] timed out.
    #[error("{connected} of {wanted} sites connected before the timeout")]
    WaitTimeout {
        /// Sites connected at the timeout.
        connected: usize,
        /// Sites waited for.
        wanted: usize,
    },
    /// The aggregator was shut down.
    #[error("the aggregator is shut down")]
    Shutdown,
}

/// Errors of a site.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A configuration that cannot work (bad URL, key not valid in metadata, …).
    #[error("invalid site configuration: {0}")]
    Config(String),
    /// The aggregator refused the site for good (bad credentials, protocol version, model
    /// size): retrying cannot help.
    #[error("refused by the aggregator: {0}")]
    Refused(tonic::Status),
    /// Reconnecting failed more times than allowed.
    #[error("gave up after {attempts} failed connection attempts; last error: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The trainer panicked.
    #[error("the local trainer panicked: {0}")]
    TrainerPanicked(String),
}
