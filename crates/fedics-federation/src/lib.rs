//! # fedics-federation
//!
//! Federated learning over a real network: the FedICS protocol `fedics.fl.v1`
//! (`proto/fedics_fl.proto`, protobuf over gRPC with tonic), an [`Aggregator`] that runs
//! rounds with any [`fedics_fl::strategy`] and client-level DP from [`fedics_fl::dp`], and
//! [`run_site`], the runtime of a site around a [`fedics_fl::trainer::LocalTrainer`] (or
//! [`run_tree_site`] around a [`fedics_fl::trees::TreeTrainer`]).
//!
//! * **Protocol**: a site `Join`s, opens the server stream `Tasks` and receives round tasks:
//!   a header (round, training plan, DP settings, model length and SHA-256) followed by the
//!   global model in chunks of at most `chunk_bytes` (default 1 MiB), so no message grows
//!   with the model. It answers with `SubmitUpdate` (a client stream: header with examples,
//!   metrics and the SHA-256, then the update `new − global` in chunks) or
//!   `SubmitEvaluation`, and the aggregator ends the federation with `Finished`. Parameters
//!   are little-endian `f32` ([`codec`]). Every request carries a [`proto::ProtocolVersion`];
//!   another major version is refused with `FAILED_PRECONDITION`.
//! * **Authentication**: per-site API keys in `authorization: Bearer <key>` metadata,
//!   compared in constant time ([`SiteKeys`]); unknown sites and wrong keys get
//!   `UNAUTHENTICATED`.
//! * **TLS**: rustls (ring) through tonic, with optional client certificates ([`ServerTls`],
//!   [`ClientTls`]). Plaintext is for loopback and tests.
//! * **Rounds**: selection by the strategy among the connected sites, a deadline after which
//!   the round goes on with the sites that answered, DP clipping and noise (optionally
//!   with a bound that follows a quantile of the update norms, [`AdaptiveClip`]), privacy
//!   accounting that refuses a round past the budget. See [`aggregator`].
//! * **Sites**: reconnect with exponential backoff and resume under the same site id. See
//!   [`site`].
//! * **Tree federations** (protocol 1.1): the Isolation Forest is federated by merging trees,
//!   not by averaging ([`Aggregator::start_trees`], [`run_tree_site`]): sites contribute
//!   variable-length encoded trees in the same chunks, validated on receipt and rejected
//!   with a recorded reason when malformed; the global forest is sampled from the pooled
//!   trees. See [`aggregator`].
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use fedics_federation::{Aggregator, AggregatorConfig, NoopObserver, SiteConfig, SiteKeys, run_site};
//! # fn trainer() -> Box<dyn fedics_fl::trainer::LocalTrainer> { unimplemented!() }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = SiteKeys::new().with("plant-a", "key-a").with("plant-b", "key-b");
//! let config = AggregatorConfig::new("127.0.0.1:0".parse()?, keys);
//! let aggregator = Aggregator::start(config, vec![0.0; 5], Arc::new(NoopObserver)).await?;
//! let url = format!("http://{}", aggregator.addr());
//! for (id, key) in [("plant-a", "key-a"), ("plant-b", "key-b")] {
//!     let site = SiteConfig::new(url.clone(), id, key);
//!     tokio::spawn(run_site(site, trainer(), std::future::pending()));
//! }
//! aggregator.wait_for_sites(2, Duration::from_secs(30)).await?;
//! for report in aggregator.run_rounds(10).await? {
//!     println!("round {}: {:?}", report.round, report.eval_metrics);
//! }
//! aggregator.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod aggregator;
pub mod auth;
pub mod codec;
pub mod error;
pub mod observer;
pub mod site;
pub mod tls;

/// The generated protocol types and gRPC service (`fedics.fl.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("fedics.fl.v1");
}

pub use aggregator::{
    AdaptiveClip, Aggregator, AggregatorConfig, AggregatorHandle, DpConfig, NoiseMode, RoundReport,
    SiteStatus, TreeConfig,
};
pub use auth::SiteKeys;
pub use error::{FederationError, SiteError};
pub use observer::{ClientProgress, FlObserver, NoopObserver};
pub use site::{Backoff, SiteConfig, SiteSummary, run_site, run_tree_site};
pub use tls::{ClientTls, ServerTls};

/// Major version of the protocol this crate speaks; peers of another major are refused.
pub const PROTOCOL_MAJOR: u32 = 1;
/// Minor version of the protocol this crate speaks (minor versions only add fields).
pub const PROTOCOL_MINOR: u32 = 1;
/// Metadata entry of the aggregator's refusal of a join after the federation finished.
pub const FINISHED_METADATA: &str = "x-fedics-finished";
/// Default largest chunk of model bytes per message: 1 MiB.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;
/// Largest allowed chunk size: 64 MiB.
pub const MAX_CHUNK_BYTES: usize = 64 << 20;

/// The version this crate sends.
pub fn our_version() -> proto::ProtocolVersion {
    proto::ProtocolVersion {
        major: PROTOCOL_MAJOR,
        minor: PROTOCOL_MINOR,
    }
}

/// Refuses a missing version or another major version with `FAILED_PRECONDITION`.
pub(crate) fn check_version(v: Option<&proto::ProtocolVersion>) -> Result<(), tonic::Status> {
    match v {
        Some(v) if v.major == PROTOCOL_MAJOR => Ok(()),
        Some(v) => Err(tonic::Status::failed_precondition(format!(
            "protocol version {}.{} is not supported: this aggregator speaks fedics.fl.v{PROTOCOL_MAJOR} (version {PROTOCOL_MAJOR}.x)",
            v.major, v.minor
        ))),
        None => Err(tonic::Status::failed_precondition(format!(
            "the request carries no protocol version: this aggregator speaks version {PROTOCOL_MAJOR}.x"
        ))),
    }
}

/// tonic's message size limit for a chunk size: tonic's default 4 MiB, raised only when a
/// chunk plus its envelope would not fit.
pub(crate) fn message_limit(chunk_bytes: usize) -> usize {
    (4 << 20).max(chunk_bytes.saturating_add(64 << 10))
}
