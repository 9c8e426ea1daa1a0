//! What the federation's end-to-end tests share: an observer that records everything, site
//! ids and keys, and requests with a site's credentials.

// Each test binary includes this module and uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use fedics_core::FlEvent;
use fedics_federation::{ClientProgress, FlObserver, RoundReport, SiteKeys};

/// How long a test waits for anything the federation should do by itself.
pub const WAIT: Duration = Duration::from_secs(30);

/// Every event, client progress and round report the aggregator reports.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<FlEvent>>,
    pub clients: Mutex<Vec<ClientProgress>>,
    pub reports: Mutex<Vec<RoundReport>>,
}

impl FlObserver for Recorder {
    fn event(&self, e: FlEvent) {
        self.events.lock().unwrap().push(e);
    }
    fn client_progress(&self, p: &ClientProgress) {
        self.clients.lock().unwrap().push(p.clone());
    }
    fn round_finished(&self, r: &RoundReport) {
        self.reports.lock().unwrap().push(r.clone());
    }
}

impl Recorder {
    /// The events of one phase, in order.
    pub fn phases(&self, phase: &str) -> Vec<FlEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.phase == phase)
            .cloned()
            .collect()
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn site_id(i: usize) -> String {
    format!("site-{i}")
}

pub fn key(i: usize) -> String {
    format!("key-{i}-0123456789abcdef")
}

/// Keys of sites 0..n.
pub fn keys(n: usize) -> SiteKeys {
    (0..n).fold(SiteKeys::new(), |k, i| k.with(site_id(i), key(i)))
}

/// A request with site `i`'s credentials.
pub fn authed<T>(i: usize, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", key(i)).parse().unwrap(),
    );
    r
}
