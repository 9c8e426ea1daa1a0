//! Flow JSON Lines reader and the numeric flow features.
//!
//! [`flow_features`] and [`FLOW_FEATURE_NAMES`] are the 18 features of
//! `fedics-detect::features` (moved here so every model shares them): heavy-tailed
//! counters are log-scaled; categorical facts become 0/1 indicators; ports are not used
//! as numbers.
//!
//! [`read_flows`] reads a file of one `fedics_core::FlowRecord` JSON per line (plain or
//! gzip), decoded and validated with `fedics_core::decode`. Labels come from the ground
//! truth: [`NORMAL`] for a benign flow, the ATT&CK technique id (`T0846`, ...) otherwise,
//! and [`UNLABELLED`] for a flow without ground truth (counted in
//! [`FlowReport::unlabelled`]). Per row it also keeps the facility, the host-pair key
//! `facility|src_ip|dst_ip` (directional: the initiator first) and the start time, for
//! sequence models ([`FlowTable::windows`]).

use std::io::BufRead;
use std::path::Path;

use fedics_core::{FlowRecord, Transport};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TabularError};
use crate::io::open_text;
use crate::table::{ColumnData, ColumnKind, ColumnSpec, RawTable, Schema};
use crate::windows::{Windows, sliding_windows};

/// Names of the features, in vector order.
pub const FLOW_FEATURE_NAMES: [&str; 18] = [
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

pub const N_FLOW_FEATURES: usize = FLOW_FEATURE_NAMES.len();

const ICS_PORTS: [u16; 5] = [502, 20000, 102, 44818, 2404];

/// The feature vector of a flow. Always finite for a validated flow.
pub fn flow_features(f: &FlowRecord) -> [f64; N_FLOW_FEATURES] {
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

/// Label of a benign flow.
pub const NORMAL: &str = "normal";

/// Label of a flow without ground truth.
pub const UNLABELLED: &str = "unlabelled";

/// The label of a flow: [`NORMAL`] if benign, the technique id if an attack,
/// [`UNLABELLED`] without ground truth.
pub fn flow_label(f: &FlowRecord) -> &str {
    match &f.ground_truth {
        Some(t) if t.is_benign() => NORMAL,
        Some(t) => &t.label,
        None => UNLABELLED,
    }
}

/// The host-pair key of a flow: `facility|src_ip|dst_ip`.
pub fn flow_key(f: &FlowRecord) -> String {
    format!("{}|{}|{}", f.facility_id, f.src_ip, f.dst_ip)
}

/// The schema of [`flow_features`]: 18 columns, `udp` and `ics_port` binary, the others
/// numeric.
pub fn flow_schema() -> Schema {
    Schema {
        columns: FLOW_FEATURE_NAMES
            .iter()
            .map(|&n| {
                let kind = if n == "udp" || n == "ics_port" {
                    ColumnKind::Binary
                } else {
                    ColumnKind::Numeric
                };
                ColumnSpec::new(n, kind)
            })
            .collect(),
    }
}

/// What to do with a line that is not a valid flow record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadLinePolicy {
    /// Stop with an error naming the file, the line and the decode error.
    #[default]
    Error,
    /// Skip the line and count it ([`FlowReport::skipped`]).
    Skip,
}

/// Options of [`read_flows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowReadOptions {
    pub bad_lines: BadLinePolicy,
}

/// At most this many skipped lines are described in [`FlowReport::skipped_examples`].
pub const MAX_SKIPPED_EXAMPLES: usize = 20;

/// A line left out by [`BadLinePolicy::Skip`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedLine {
    pub line: u64,
    pub message: String,
}

/// What the flow reader did besides reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowReport {
    /// Lines in the file, blank ones included.
    pub lines: u64,
    /// Empty or whitespace-only lines (always skipped).
    pub blank_lines: u64,
    /// Invalid lines skipped by [`BadLinePolicy::Skip`].
    pub skipped: u64,
    /// The first [`MAX_SKIPPED_EXAMPLES`] skipped lines with their decode errors.
    pub skipped_examples: Vec<SkippedLine>,
    /// Flows without ground truth (labelled [`UNLABELLED`]).
    pub unlabelled: u64,
}

/// Flows as a table of [`flow_features`] with per-row facility, host-pair key and time.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowTable {
    /// The 18 feature columns of [`flow_schema`]; labels per [`flow_label`].
    pub table: RawTable,
    pub facility: Vec<String>,
    /// [`flow_key`] per row.
    pub key: Vec<String>,
    /// `ts_start` in microseconds since the Unix epoch.
    pub ts_start_us: Vec<i64>,
    /// 1-based source line per row (the index in the slice + 1 for
    /// [`FlowTable::from_records`]).
    pub line: Vec<u64>,
    pub report: FlowReport,
}

impl FlowTable {
    fn empty() -> Result<Self> {
        Ok(Self {
            table: RawTable::new(flow_schema())?,
            facility: Vec::new(),
            key: Vec::new(),
            ts_start_us: Vec::new(),
            line: Vec::new(),
            report: FlowReport::default(),
        })
    }

    fn push(&mut self, f: &FlowRecord, line: u64) {
        let x = flow_features(f);
        let label = flow_label(f).to_string();
        if f.ground_truth.is_none() {
            self.report.unlabelled += 1;
        }
        let (cols, labels) = self.table.parts_mut();
        for (col, v) in cols.iter_mut().zip(x) {
            if let ColumnData::Numeric(c) = col {
                c.push(v);
            }
        }
        labels.push(label);
        self.facility.push(f.facility_id.clone());
        self.key.push(flow_key(f));
        self.ts_start_us.push(f.ts_start.timestamp_micros());
        self.line.push(line);
    }

    /// A table of in-memory flows (taken as valid: they are not re-validated).
    pub fn from_records(flows: &[FlowRecord]) -> Result<Self> {
        let mut t = Self::empty()?;
        for (i, f) in flows.iter().enumerate() {
            t.push(f, i as u64 + 1);
        }
        t.report.lines = flows.len() as u64;
        Ok(t)
    }

    pub fn n_rows(&self) -> usize {
        self.table.n_rows()
    }

    /// Row indices by start time; rows with equal times keep file order.
    pub fn time_order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.n_rows()).collect();
        idx.sort_by_key(|&i| self.ts_start_us[i]);
        idx
    }

    /// Windows of `len` consecutive flows of the same host pair in time order (see
    /// [`sliding_windows`]).
    pub fn windows(&self, len: usize, stride: usize) -> Result<Windows> {
        sliding_windows(&self.key, &self.ts_start_us, len, stride)
    }
}

/// Reads a flow JSON Lines file (plain or gzip). Blank lines are skipped.
pub fn read_flows(path: impl AsRef<Path>, options: &FlowReadOptions) -> Result<FlowTable> {
    let path = path.as_ref();
    let mut r = open_text(path)?;
    let mut t = FlowTable::empty()?;
    let mut buf = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|source| TabularError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            t.report.blank_lines += 1;
            continue;
        }
        match fedics_core::decode::<FlowRecord>(&buf) {
            Ok(f) => t.push(&f, line),
            Err(source) => match options.bad_lines {
                BadLinePolicy::Error => {
                    return Err(TabularError::BadFlow {
                        path: path.to_path_buf(),
                        line,
                        source,
                    });
                }
                BadLinePolicy::Skip => {
                    t.report.skipped += 1;
                    if t.report.skipped_examples.len() < MAX_SKIPPED_EXAMPLES {
                        t.report.skipped_examples.push(SkippedLine {
                            line,
                            message: source.to_string(),
                        });
                    }
                }
            },
        }
    }
    t.report.lines = line;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Cell;
    use std::io::Write;

    fn flow_json(
        n: u32,
        facility: &str,
        src: &str,
        dst: &str,
        sec: u32,
        truth: Option<&str>,
    ) -> String {
        let truth = truth
            .map(|t| format!(r#","ground_truth":{{"label":"{t}"}}"#))
            .unwrap_or_default();
        format!(
            r#"{{"schema_version":1,"flow_id":"00000000-0000-0000-0000-{n:012}","facility_id":"{facility}","ts_start":"2024-01-01T00:00:{sec:02}Z","ts_end":"2024-01-01T00:00:59Z","duration_ms":1000.0,"src_ip":"{src}","src_port":40000,"dst_ip":"{dst}","dst_port":502,"transport":"tcp","fwd":{{"packets":10,"bytes":1000}},"bwd":{{"packets":8,"bytes":800}},"tcp_flags":{{"syn":1,"ack":17,"fin":1,"rst":0,"psh":5,"urg":0}},"iat":{{"mean_ms":50.0,"std_ms":10.0,"min_ms":1.0,"max_ms":100.0}},"ics":{{"protocol":"modbus_tcp","requests":5,"responses":5,"function_codes":[{{"code":3,"count":4}},{{"code":6,"count":1}}],"writes":[{{"table":"holding_register","address":1,"value":7}}]}}{truth}}}"#
        )
    }

    fn write(dir: &Path, name: &str, lines: &[String]) -> std::path::PathBuf {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        p
    }

    #[test]
    fn features_are_finite_and_named() {
        let f: FlowRecord = fedics_core::decode(
            flow_json(1, "plant-a", "10.0.0.1", "10.0.0.2", 1, None).as_bytes(),
        )
        .unwrap();
        let x = flow_features(&f);
        assert!(x.iter().all(|v| v.is_finite()));
        let get = |name: &str| x[FLOW_FEATURE_NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!(get("fwd_packets_log"), 10f64.ln_1p());
        assert_eq!(get("fwd_bytes_per_packet"), 1.0);
        assert_eq!(get("modbus_function_codes"), 2.0);
        assert_eq!(get("modbus_writes_log"), 1f64.ln_1p());
        assert_eq!(get("iat_cv"), 0.2);
        assert_eq!(get("udp"), 0.0);
        assert_eq!(get("ics_port"), 1.0);
        assert_eq!(flow_schema().len(), N_FLOW_FEATURES);
    }

    #[test]
    fn reads_flows_with_labels_keys_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            flow_json(1, "plant-a", "10.0.0.1", "10.0.0.2", 30, Some("benign")),
            String::new(),
            flow_json(2, "plant-a", "10.0.0.1", "10.0.0.2", 10, Some("T0846")),
            flow_json(3, "plant-b", "10.0.0.9", "10.0.0.2", 20, None),
            flow_json(4, "plant-a", "10.0.0.1", "10.0.0.2", 20, Some("benign")),
        ];
        let p = write(dir.path(), "flows.jsonl", &lines);
        let t = read_flows(&p, &FlowReadOptions::default()).unwrap();
        assert_eq!(t.n_rows(), 4);
        assert_eq!(t.table.labels(), [NORMAL, "T0846", UNLABELLED, NORMAL]);
        assert_eq!(t.report.unlabelled, 1);
        assert_eq!(t.report.blank_lines, 1);
        assert_eq!(t.report.lines, 5);
        assert_eq!(t.line, [1, 3, 4, 5]);
        assert_eq!(t.facility, ["plant-a", "plant-a", "plant-b", "plant-a"]);
        assert_eq!(t.key[0], "plant-a|10.0.0.1|10.0.0.2");
        assert_eq!(t.key[2], "plant-b|10.0.0.9|10.0.0.2");
        assert_eq!(t.ts_start_us[1], 1_704_067_210_000_000);
        assert_eq!(t.time_order(), [1, 2, 3, 0]);
        let w = t.windows(2, 1).unwrap();
        assert_eq!(w.as_flat(), [1, 3, 3, 0]);
        // Cells equal flow_features of the decoded record.
        let f: FlowRecord = fedics_core::decode(lines[0].as_bytes()).unwrap();
        let expected: Vec<Cell<'_>> = flow_features(&f).iter().map(|&v| Cell::Num(v)).collect();
        assert_eq!(t.table.row(0), Some(expected));
        // The same from in-memory records.
        let recs: Vec<FlowRecord> = [0, 2, 3, 4]
            .iter()
            .map(|&i| fedics_core::decode(lines[i].as_bytes()).unwrap())
            .collect();
        let m = FlowTable::from_records(&recs).unwrap();
        assert_eq!(m.table, t.table);
        assert_eq!(m.key, t.key);
    }

    #[test]
    fn bad_lines_error_or_skip() {
        let dir = tempfile::tempdir().unwrap();
        let good = flow_json(1, "plant-a", "10.0.0.1", "10.0.0.2", 1, Some("benign"));
        let wrong_version = good.replace(r#""schema_version":1"#, r#""schema_version":2"#);
        let no_facility = good.replace(r#""facility_id":"plant-a""#, r#""facility_id":"""#);
        let lines = [
            good.clone(),
            "{not json".to_string(),
            wrong_version,
            no_facility,
            good,
        ];
        let p = write(dir.path(), "bad.jsonl", &lines);
        let e = read_flows(&p, &FlowReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.jsonl:2: invalid flow record: malformed JSON"),
            "{e}"
        );
        let t = read_flows(
            &p,
            &FlowReadOptions {
                bad_lines: BadLinePolicy::Skip,
            },
        )
        .unwrap();
        assert_eq!(t.n_rows(), 2);
        assert_eq!(t.report.skipped, 3);
        let lines: Vec<u64> = t.report.skipped_examples.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(
            t.report.skipped_examples[1]
                .message
                .contains("schema_version 2")
        );
        assert!(t.report.skipped_examples[2].message.contains("facility_id"));
        let e = read_flows(dir.path().join("none.jsonl"), &FlowReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.jsonl: cannot read"), "{e}");
    }
}
