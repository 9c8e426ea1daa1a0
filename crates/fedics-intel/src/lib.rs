//! # fedics-intel: threat intelligence for FedICS
//!
//! * [`stix`]: loads the MITRE ATT&CK for ICS STIX 2.1 bundle (plain or gzip-compressed JSON)
//!   into [`AttackBundle`]: active techniques with tactics, mitigations, detection strategies
//!   and targeted assets; tactics in matrix order; which groups, software and campaigns use
//!   which techniques, and how often two techniques are used together ([`AttackBundle::co_use`]).
//! * [`predictor`]: [`Predictor`], a deterministic next-technique model. Its prior comes from
//!   the tactic order of the matrix (weighted by bundle co-use when a bundle is given); online
//!   observations of technique transitions, global and per facility, update it as a
//!   Dirichlet-multinomial posterior mean.
//!
//! The bundle itself is MITRE's (ATT&CK® is a registered trademark of The MITRE Corporation,
//! used under MITRE's ATT&CK terms of use); it is read from a path the user gives and never
//! shipped with this crate.

use std::path::PathBuf;

pub mod predictor;
pub mod stix;

pub use predictor::{Predictor, PredictorConfig};
pub use stix::{
    AnalyticRef, AttackBundle, DetectionRef, MitigationRef, TacticDetail, TechniqueDetail, UserRef,
};

/// Errors of loading threat-intelligence data.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    /// The bundle file does not exist.
    #[error("ATT&CK bundle not found: {}", path.display())]
    NotFound { path: PathBuf },
    /// The bundle file exists but cannot be read.
    #[error("cannot read ATT&CK bundle {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading from a caller-given reader failed.
    #[error("cannot read ATT&CK bundle: {0}")]
    Io(#[source] std::io::Error),
    /// The input starts with the gzip magic bytes but does not decompress.
    #[error("ATT&CK bundle has gzip magic bytes but is not a valid gzip stream: {0}")]
    Gzip(#[source] std::io::Error),
    /// The (decompressed) input is not valid JSON.
    #[error("ATT&CK bundle is not valid {format}: {message} at line {line}, column {column}")]
    Json {
        /// What was parsed: gzip-decompressed JSON or uncompressed input.
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// The input is JSON but not a STIX bundle.
    #[error("not a STIX bundle: {0}")]
    NotABundle(String),
}
