//! The rule file (TOML) and its validation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use fedics_core::ModbusTable;
use serde::{Deserialize, Serialize};

use crate::DetectError;

/// The default rules shipped with FedICS (written to a data dir by `fedics demo`).
pub const DEFAULT_RULES: &str = include_str!("default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub version: u32,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub range: Vec<RangeRule>,
    #[serde(default)]
    pub rate_of_change: Vec<RateRule>,
    #[serde(default)]
    pub interlock: Vec<InterlockRule>,
    #[serde(default)]
    pub function_codes: Option<FunctionCodeRule>,
    #[serde(default)]
    pub unauthorized_write: Option<SimpleRule>,
    #[serde(default)]
    pub write_sweep: Option<WriteSweepRule>,
    #[serde(default)]
    pub rogue_server: Option<SimpleRule>,
    #[serde(default)]
    pub bulk_transfer: Option<BulkTransferRule>,
    #[serde(default)]
    pub scan_hosts: Option<ScanHostsRule>,
    #[serde(default)]
    pub scan_ports: Option<ScanPortsRule>,
    #[serde(default)]
    pub flood: Option<FloodRule>,
    #[serde(default)]
    pub assets: Vec<AssetInventory>,
}

/// A process variable: a Modbus address and its scale to engineering units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub name: String,
    pub table: ModbusTable,
    pub address: u16,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    #[serde(default)]
    pub unit: String,
}

fn small_packet() -> f64 {
    200.0
}

fn one() -> f64 {
    1.0
}

/// What every rule carries: the technique it indicates and how strongly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleRule {
    pub name: String,
    pub technique: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeRule {
    pub name: String,
    pub tag: String,
    pub min: f64,
    pub max: f64,
    pub technique: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub name: String,
    pub tag: String,
    pub max_per_s: f64,
    #[serde(default)]
    pub deadband: f64,
    pub technique: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub tag: String,
    pub equals: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterlockRule {
    pub name: String,
    pub when: Condition,
    pub require: Condition,
    pub technique: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeMapping {
    pub codes: Vec<u8>,
    pub technique: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCodeRule {
    pub name: String,
    pub allowed: Vec<u8>,
    pub technique: Option<String>,
    pub weight: f64,
    #[serde(default)]
    pub map: Vec<CodeMapping>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSweepRule {
    pub name: String,
    pub distinct_addresses: usize,
    pub window_s: f64,
    pub technique: Option<String>,
    pub weight: f64,
}

/// Large transfers crossing into the OT zone: bytes delivered to an inventoried OT host
/// (PLC or writer) by a host outside the inventory, in either direction of the flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkTransferRule {
    pub name: String,
    pub min_bytes: u64,
    pub technique: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanHostsRule {
    pub name: String,
    pub distinct_hosts: usize,
    pub window_s: f64,
    pub max_packets: u64,
    pub technique: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanPortsRule {
    pub name: String,
    pub distinct_ports: usize,
    pub window_s: f64,
    pub max_packets: u64,
    pub technique: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodRule {
    pub name: String,
    /// Probe-like flows to one destination within one second.
    pub flows_per_s: usize,
    /// Packet rate within one flow (flows of at least half a second)...
    pub packets_per_s: f64,
    /// ...made of small packets (bulk transfers are not floods).
    #[serde(default = "small_packet")]
    pub max_mean_packet_bytes: f64,
    pub max_packets: u64,
    pub technique: Option<String>,
    pub weight: f64,
}

/// A facility's asset inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetInventory {
    pub facility: String,
    /// Hosts that serve Modbus (PLCs, RTUs).
    pub plcs: Vec<IpAddr>,
    /// Hosts allowed to write to PLCs (HMI, engineering workstations).
    pub writers: Vec<IpAddr>,
}

impl RuleFile {
    /// Parses and validates a rule file; errors name the rule and field at fault.
    pub fn parse(text: &str) -> Result<Self, DetectError> {
        let file: RuleFile =
            toml::from_str(text).map_err(|e| DetectError::RuleFile(e.to_string()))?;
        file.validate()?;
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<Self, DetectError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DetectError::RuleFile(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| match e {
            DetectError::RuleFile(m) => DetectError::RuleFile(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn default_rules() -> Result<Self, DetectError> {
        Self::parse(DEFAULT_RULES)
    }

    fn validate(&self) -> Result<(), DetectError> {
        let bad = |rule: &str, field: &str, expected: &str| {
            Err(DetectError::RuleFile(format!(
                "rule `{rule}`: field `{field}`: expected {expected}"
            )))
        };
        if self.version != 1 {
            return bad("(file)", "version", "1");
        }
        let tags: HashMap<&str, &Tag> = self.tags.iter().map(|t| (t.name.as_str(), t)).collect();
        let known_tag = |rule: &str, field: &str, tag: &str| {
            if tags.contains_key(tag) {
                Ok(())
            } else {
                bad(
                    rule,
                    field,
                    &format!("a tag defined in [[tags]] (found `{tag}`)"),
                )
            }
        };
        for t in &self.tags {
            if !t.scale.is_finite() || t.scale == 0.0 || !t.offset.is_finite() {
                return bad(&t.name, "scale", "a finite, non-zero number");
            }
        }
        // What every rule carries: a known technique (if any) and a weight in [0, 1].
        let mut common: Vec<(&str, Option<&str>, f64)> = Vec::new();
        common.extend(
            self.range
                .iter()
                .map(|r| (r.name.as_str(), r.technique.as_deref(), r.weight)),
        );
        common.extend(
            self.rate_of_change
                .iter()
                .map(|r| (r.name.as_str(), r.technique.as_deref(), r.weight)),
        );
        common.extend(
            self.interlock
                .iter()
                .map(|r| (r.name.as_str(), r.technique.as_deref(), r.weight)),
        );
        if let Some(r) = &self.function_codes {
            common.push((r.name.as_str(), r.technique.as_deref(), r.weight));
            common.extend(
                r.map
                    .iter()
                    .map(|m| (r.name.as_str(), Some(m.technique.as_str()), r.weight)),
            );
        }
        for r in [&self.unauthorized_write, &self.rogue_server]
            .into_iter()
            .flatten()
        {
            common.push((r.name.as_str(), r.technique.as_deref(), r.weight));
        }
        if let Some(r) = &self.write_sweep {
            common.push((r.name.as_str(), r.technique.as_deref(), r.weight));
        }
        if let Some(r) = &self.bulk_transfer {
            common.push((r.name.as_str(), r.technique.as_deref(), r.weight));
            if r.min_bytes == 0 {
                return bad(&r.name, "min_bytes", "a positive number of bytes");
            }
        }
        if let Some(r) = &self.scan_hosts {
            common.push((r.name.as_str(), r.technique.as_deref(), r.weight));
        }
        if let Some(r) = &self.scan_ports {
            common.push((r.name.as_str(), r.technique.as_deref(), r.weight));
        }
        if let Some(r) = &self.flood {
            common.push((r.name.as_str(), r.technique.as_deref(), r.weight));
        }
        for (name, t, w) in common {
            if let Some(t) = t
                && fedics_core::attack::technique(t).is_none()
            {
                return bad(
                    name,
                    "technique",
                    &format!("an ATT&CK for ICS technique id such as T0846 (found `{t}`)"),
                );
            }
            if !(0.0..=1.0).contains(&w) {
                return bad(name, "weight", "a number in [0, 1]");
            }
        }
        // Kind-specific fields.
        for r in &self.range {
            known_tag(&r.name, "tag", &r.tag)?;
            if r.min.is_nan() || r.max.is_nan() || r.min > r.max {
                return bad(&r.name, "min", "a number not above max");
            }
        }
        for r in &self.rate_of_change {
            known_tag(&r.name, "tag", &r.tag)?;
            if !positive(r.max_per_s) || r.deadband.is_nan() || r.deadband < 0.0 {
                return bad(
                    &r.name,
                    "max_per_s",
                    "a positive rate and a non-negative deadband",
                );
            }
        }
        for r in &self.interlock {
            known_tag(&r.name, "when.tag", &r.when.tag)?;
            known_tag(&r.name, "require.tag", &r.require.tag)?;
        }
        let windowed = |name: &str, field: &str, count: usize, window: f64| {
            if count < 2 || !positive(window) {
                bad(name, field, "at least 2, with a positive window_s")
            } else {
                Ok(())
            }
        };
        if let Some(r) = &self.write_sweep {
            windowed(
                &r.name,
                "distinct_addresses",
                r.distinct_addresses,
                r.window_s,
            )?;
        }
        if let Some(r) = &self.scan_hosts {
            windowed(&r.name, "distinct_hosts", r.distinct_hosts, r.window_s)?;
        }
        if let Some(r) = &self.scan_ports {
            windowed(&r.name, "distinct_ports", r.distinct_ports, r.window_s)?;
        }
        if let Some(r) = &self.flood
            && (r.flows_per_s < 2
                || !positive(r.packets_per_s)
                || !positive(r.max_mean_packet_bytes))
        {
            return bad(
                &r.name,
                "flows_per_s",
                "at least 2, with positive packets_per_s and max_mean_packet_bytes",
            );
        }
        Ok(())
    }

    /// Renders the inventories as TOML `[[assets]]` tables (appended to a rule file).
    pub fn assets_toml(assets: &[AssetInventory]) -> String {
        let mut out = String::new();
        for a in assets {
            let list = |v: &[IpAddr]| {
                v.iter()
                    .map(|ip| format!("\"{ip}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "\n[[assets]]\nfacility = \"{}\"\nplcs = [{}]\nwriters = [{}]\n",
                a.facility,
                list(&a.plcs),
                list(&a.writers)
            ));
        }
        out
    }
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}
