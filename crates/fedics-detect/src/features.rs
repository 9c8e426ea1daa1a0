//! Numeric flow features for the unsupervised models. Heavy-tailed counters are
//! log-scaled; categorical facts become 0/1 indicators. Ports are not used as numbers.

use fedics_core::{FlowRecord, Transport};

/// Names of the features, in vector order.
pub const FEATURE_NAMES: [&str; 18] = [
    "fwd_packets_log",
    "bwd_packets_log",
    "fwd_bytes_log",
    "bwd_bytes_log",
    "duration_ms_log",
    "fwd_bytes_per_packet",
    "bwd_fwd_byte_ratio_log",
    "syn",
    "rst",
    "fin",
    "iat_mean_ms_log",
    "iat_cv",
    "modbus_requests_log",
    "modbus_function_codes",
    "modbus_writes_log",
    "modbus_exceptions",
    "udp",
    "ics_port",
];

pub const N_FEATURES: usize = FEATURE_NAMES.len();

const ICS_PORTS: [u16; 5] = [502, 20000, 102, 44818, 2404];

/// The feature vector of a flow. Always finite for a validated flow.
pub fn flow_features(f: &FlowRecord) -> [f64; N_FEATURES] {
    let l = |x: f64| x.max(0.0).ln_1p();
    let fwd_pk = f.fwd.packets as f64;
    let (requests, fcs, writes, exceptions) = match &f.ics {
        Some(i) => (
            f64::from(i.requests),
            i.function_codes.len() as f64,
            i.writes.len() as f64,
            i.exceptions.iter().map(|e| f64::from(e.count)).sum::<f64>(),
        ),
        None => (0.0, 0.0, 0.0, 0.0),
    };
    let cv = if f.iat.mean_ms > 0.0 {
        f.iat.std_ms / f.iat.mean_ms
    } else {
        0.0
    };
    let ics_port = ICS_PORTS.contains(&f.dst_port) || ICS_PORTS.contains(&f.src_port);
    [
        l(fwd_pk),
        l(f.bwd.packets as f64),
        l(f.fwd.bytes as f64),
        l(f.bwd.bytes as f64),
        l(f.duration_ms),
        if fwd_pk > 0.0 {
            f.fwd.bytes as f64 / fwd_pk / 100.0
        } else {
            0.0
        },
        l(f.bwd.bytes as f64) - l(f.fwd.bytes as f64),
        f64::from(f.tcp_flags.syn),
        f64::from(f.tcp_flags.rst),
        f64::from(f.tcp_flags.fin),
        l(f.iat.mean_ms),
        cv.min(100.0),
        l(requests),
        fcs,
        l(writes),
        exceptions.min(1e6),
        f64::from(u8::from(f.transport == Transport::Udp)),
        f64::from(u8::from(ics_port)),
    ]
    .map(|x| if x.is_finite() { x } else { 0.0 })
}
