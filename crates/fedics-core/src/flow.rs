//! The `network_data` flow record.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{Validate, ValidationError, finite, version};

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
    Icmp,
    Other,
}

/// Packet and byte counters of one direction (forward = initiator to responder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DirStats {
    pub packets: u64,
    pub bytes: u64,
}

/// Counts of TCP flags seen over the flow (both directions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFlags {
    pub syn: u32,
    pub ack: u32,
    pub fin: u32,
    pub rst: u32,
    pub psh: u32,
    pub urg: u32,
}

/// Packet inter-arrival time statistics in milliseconds (all packets of the flow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IatStats {
    pub mean_ms: f64,
    pub std_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

/// Industrial protocol carried by a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IcsProtocol {
    ModbusTcp,
    Dnp3,
    Other,
}

/// Modbus data table an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModbusTable {
    Coil,
    DiscreteInput,
    InputRegister,
    HoldingRegister,
}

/// How often a function code was seen in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCodeCount {
    pub code: u8,
    pub count: u32,
}

/// A contiguous address range touched by requests (read or write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRange {
    pub table: ModbusTable,
    pub start: u16,
    pub count: u16,
    pub write: bool,
}

/// A register or coil value: written by a request, or reported by a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterValue {
    pub table: ModbusTable,
    pub address: u16,
    pub value: u16,
}

/// Exception responses seen, per function code and exception code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionCount {
    pub function: u8,
    pub code: u8,
    pub count: u32,
}

/// The industrial section of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcsSection {
    pub protocol: IcsProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<u8>,
    pub requests: u32,
    pub responses: u32,
    #[serde(default)]
    pub function_codes: Vec<FunctionCodeCount>,
    #[serde(default)]
    pub ranges: Vec<AddressRange>,
    /// Values written by requests, in order (last write to an address wins).
    #[serde(default)]
    pub writes: Vec<RegisterValue>,
    /// Last value reported per address by responses in this flow.
    #[serde(default)]
    pub reads: Vec<RegisterValue>,
    #[serde(default)]
    pub exceptions: Vec<ExceptionCount>,
}

/// Ground truth carried by simulated or labelled flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// `"benign"` or an ATT&CK for ICS technique id such as `"T0846"`.
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Position of this technique in its campaign (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
}

impl GroundTruth {
    pub const BENIGN: &'static str = "benign";

    pub fn benign() -> Self {
        Self {
            label: Self::BENIGN.into(),
            campaign_id: None,
            stage: None,
        }
    }

    pub fn is_benign(&self) -> bool {
        self.label == Self::BENIGN
    }
}

/// One flow as exported by a sensor: a bidirectional connection summary over an
/// export interval. Published on `network_data`, keyed by facility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub schema_version: u16,
    pub flow_id: Uuid,
    pub facility_id: String,
    #[serde(with = "crate::time::rfc3339")]
    pub ts_start: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub ts_end: DateTime<Utc>,
    pub duration_ms: f64,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
    pub fwd: DirStats,
    pub bwd: DirStats,
    pub tcp_flags: TcpFlags,
    pub iat: IatStats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ics: Option<IcsSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth: Option<GroundTruth>,
}

impl FlowRecord {
    /// The compact context carried downstream with every verdict.
    pub fn context(&self) -> FlowContext {
        FlowContext {
            src_ip: self.src_ip,
            src_port: self.src_port,
            dst_ip: self.dst_ip,
            dst_port: self.dst_port,
            transport: self.transport,
            ics_protocol: self.ics.as_ref().map(|i| i.protocol),
            ts_start: self.ts_start,
            ts_end: self.ts_end,
        }
    }

    pub fn total_packets(&self) -> u64 {
        self.fwd.packets + self.bwd.packets
    }

    pub fn total_bytes(&self) -> u64 {
        self.fwd.bytes + self.bwd.bytes
    }
}

impl Validate for FlowRecord {
    fn schema_version(&self) -> u16 {
        self.schema_version
    }

    fn validate(&self) -> Result<(), ValidationError> {
        version(self.schema_version)?;
        if self.facility_id.trim().is_empty() {
            return Err(ValidationError::new(
                "facility_id",
                "a non-empty facility id",
            ));
        }
        if self.ts_end < self.ts_start {
            return Err(ValidationError::new("ts_end", "a time not before ts_start"));
        }
        finite("duration_ms", self.duration_ms)?;
        if self.duration_ms < 0.0 {
            return Err(ValidationError::new(
                "duration_ms",
                "a non-negative duration",
            ));
        }
        finite("iat.mean_ms", self.iat.mean_ms)?;
        finite("iat.std_ms", self.iat.std_ms)?;
        finite("iat.min_ms", self.iat.min_ms)?;
        finite("iat.max_ms", self.iat.max_ms)?;
        if self.total_packets() == 0 {
            return Err(ValidationError::new(
                "fwd.packets",
                "at least one packet in the flow",
            ));
        }
        Ok(())
    }
}

/// What downstream stages need to know about a flow without carrying the whole record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlowContext {
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ics_protocol: Option<IcsProtocol>,
    #[serde(with = "crate::time::rfc3339")]
    pub ts_start: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    pub ts_end: DateTime<Utc>,
}
