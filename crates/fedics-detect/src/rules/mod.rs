//! Physics and protocol rules: value ranges, rates of change, interlocks, Modbus function
//! code allowlist, writes from unauthorised hosts, write sweeps, rogue Modbus servers,
//! host and port scans, floods. Loaded from an editable TOML file ([`RuleFile`]).
//!
//! State is kept per facility (last value of every tag per server and unit, sliding
//! windows per source or destination), so the engine must see one facility's flows in
//! time order — which the bus guarantees by keying `network_data` by facility.

mod config;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

use fedics_core::{FlowRecord, IcsProtocol, ModbusTable, RuleFinding, Transport};

pub use config::{
    AssetInventory, BulkTransferRule, CodeMapping, Condition, DEFAULT_RULES, FloodRule,
    FunctionCodeRule, InterlockRule, RangeRule, RateRule, RuleFile, ScanHostsRule, ScanPortsRule,
    SimpleRule, Tag, WriteSweepRule,
};

use crate::{Detector, Verdict};

const MODBUS_PORT: u16 = 502;
/// Upper bound on events kept in one sliding window (memory guard against floods).
const WINDOW_CAP: usize = 100_000;
/// Facility state untouched for this many seconds is dropped.
const IDLE_EVICT_S: f64 = 600.0;

/// A sliding window of timestamped values with distinct-value counts.
#[derive(Debug)]
struct Window<T: Eq + Hash + Copy> {
    events: VecDeque<(f64, T)>,
    counts: HashMap<T, u32>,
    last: f64,
}

impl<T: Eq + Hash + Copy> Default for Window<T> {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
            counts: HashMap::new(),
            last: f64::NEG_INFINITY,
        }
    }
}

impl<T: Eq + Hash + Copy> Window<T> {
    /// Adds `v` at time `t`, forgets events older than `t - span`, returns distinct values.
    fn push(&mut self, t: f64, v: T, span: f64) -> usize {
        self.events.push_back((t, v));
        *self.counts.entry(v).or_insert(0) += 1;
        self.last = self.last.max(t);
        while let Some(&(t0, old)) = self.events.front() {
            if t0 >= t - span && self.events.len() <= WINDOW_CAP {
                break;
            }
            self.events.pop_front();
            if let Some(c) = self.counts.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&old);
                }
            }
        }
        self.counts.len()
    }
}

#[derive(Debug, Default)]
struct FacilityState {
    /// (server, unit, tag index) -> (engineering value, time)
    tags: HashMap<(IpAddr, u8, usize), (f64, f64)>,
    /// Interlocks currently seen violated on reads (edge-triggered).
    violated: HashSet<(IpAddr, u8, usize)>,
    scan_hosts: HashMap<IpAddr, Window<IpAddr>>,
    scan_ports: HashMap<(IpAddr, IpAddr), Window<u16>>,
    flood: HashMap<(IpAddr, u16), Window<u64>>,
    write_sweep: HashMap<(IpAddr, IpAddr), Window<(ModbusTable, u16)>>,
    seq: u64,
    last_gc: f64,
}

impl FacilityState {
    fn gc(&mut self, now: f64) {
        if now - self.last_gc < 60.0 {
            return;
        }
        self.last_gc = now;
        let keep = |last: f64| now - last < IDLE_EVICT_S;
        self.scan_hosts.retain(|_, w| keep(w.last));
        self.scan_ports.retain(|_, w| keep(w.last));
        self.flood.retain(|_, w| keep(w.last));
        self.write_sweep.retain(|_, w| keep(w.last));
    }
}

#[derive(Debug, Default)]
struct Inventory {
    plcs: HashSet<IpAddr>,
    writers: HashSet<IpAddr>,
}

/// The rule engine (one per detect stage; state per facility).
#[derive(Debug)]
pub struct RuleEngine {
    file: RuleFile,
    version: String,
    tag_index: HashMap<(ModbusTable, u16), usize>,
    tag_names: HashMap<String, usize>,
    /// Per tag: the range rules and the rate-of-change rules that watch it.
    range_by_tag: Vec<Vec<usize>>,
    rate_by_tag: Vec<Vec<usize>>,
    fc_allowed: [bool; 256],
    fc_technique: HashMap<u8, String>,
    inventories: HashMap<String, Inventory>,
    facilities: HashMap<String, FacilityState>,
}

fn finding(
    name: &str,
    kind: &str,
    technique: &Option<String>,
    weight: f64,
    message: String,
) -> RuleFinding {
    RuleFinding {
        rule: name.to_string(),
        kind: kind.to_string(),
        technique: technique.clone(),
        weight,
        message,
    }
}

impl RuleEngine {
    pub fn new(file: RuleFile) -> Self {
        let tag_index = file
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.table, t.address), i))
            .collect();
        let tag_names = file
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let by_tag = |names: &mut dyn Iterator<Item = &str>| {
            let mut v = vec![Vec::new(); file.tags.len()];
            for (k, name) in names.enumerate() {
                if let Some(i) = file.tags.iter().position(|t| t.name == name) {
                    v[i].push(k);
                }
            }
            v
        };
        let range_by_tag = by_tag(&mut file.range.iter().map(|r| r.tag.as_str()));
        let rate_by_tag = by_tag(&mut file.rate_of_change.iter().map(|r| r.tag.as_str()));
        let mut fc_allowed = [true; 256];
        let mut fc_technique = HashMap::new();
        if let Some(r) = &file.function_codes {
            fc_allowed = [false; 256];
            for &c in &r.allowed {
                fc_allowed[usize::from(c)] = true;
            }
            for m in &r.map {
                for &c in &m.codes {
                    fc_technique.insert(c, m.technique.clone());
                }
            }
        }
        let mut inventories: HashMap<String, Inventory> = HashMap::new();
        for a in &file.assets {
            let inv = inventories.entry(a.facility.clone()).or_default();
            inv.plcs.extend(a.plcs.iter().copied());
            inv.writers.extend(a.writers.iter().copied());
        }
        let version = format!(
            "rules-{:016x}",
            fnv1a(serde_json::to_string(&file).unwrap_or_default().as_bytes())
        );
        Self {
            file,
            version,
            tag_index,
            tag_names,
            range_by_tag,
            rate_by_tag,
            fc_allowed,
            fc_technique,
            inventories,
            facilities: HashMap::new(),
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn rules(&self) -> &RuleFile {
        &self.file
    }

    /// Evaluates every rule on one flow and updates the facility's state.
    pub fn inspect(&mut self, flow: &FlowRecord) -> Vec<RuleFinding> {
        let mut out = Vec::new();
        let t = flow.ts_start.timestamp_micros() as f64 / 1e6;
        let state = self.facilities.entry(flow.facility_id.clone()).or_default();
        state.seq += 1;
        state.gc(t);
        let packets = flow.total_packets();
        // A probe (scan or flood packet) carries no application data: a short TCP flow
        // without PSH. DNS lookups and short polls are not probes.
        let dataless = flow.transport == Transport::Tcp && flow.tcp_flags.psh == 0;

        if let Some(r) = &self.file.scan_hosts
            && dataless
            && packets <= r.max_packets
        {
            let n =
                state
                    .scan_hosts
                    .entry(flow.src_ip)
                    .or_default()
                    .push(t, flow.dst_ip, r.window_s);
            if n >= r.distinct_hosts {
                out.push(finding(
                    &r.name,
                    "scan_hosts",
                    &r.technique,
                    r.weight,
                    format!(
                        "{} probed {n} distinct hosts within {}s (threshold {})",
                        flow.src_ip, r.window_s, r.distinct_hosts
                    ),
                ));
            }
        }
        if let Some(r) = &self.file.scan_ports
            && dataless
            && packets <= r.max_packets
        {
            let n = state
                .scan_ports
                .entry((flow.src_ip, flow.dst_ip))
                .or_default()
                .push(t, flow.dst_port, r.window_s);
            if n >= r.distinct_ports {
                out.push(finding(
                    &r.name,
                    "scan_ports",
                    &r.technique,
                    r.weight,
                    format!(
                        "{} probed {n} distinct ports on {} within {}s (threshold {})",
                        flow.src_ip, flow.dst_ip, r.window_s, r.distinct_ports
                    ),
                ));
            }
        }
        if let Some(r) = &self.file.flood {
            if dataless && packets <= r.max_packets {
                let n = state
                    .flood
                    .entry((flow.dst_ip, flow.dst_port))
                    .or_default()
                    .push(t, state.seq, 1.0);
                if n >= r.flows_per_s {
                    out.push(finding(
                        &r.name,
                        "flood",
                        &r.technique,
                        r.weight,
                        format!(
                            "{n} short connections to {}:{} within 1s (threshold {})",
                            flow.dst_ip, flow.dst_port, r.flows_per_s
                        ),
                    ));
                }
            }
            let secs = flow.duration_ms / 1000.0;
            let mean_packet = flow.total_bytes() as f64 / packets.max(1) as f64;
            if secs >= 0.5 && mean_packet <= r.max_mean_packet_bytes {
                let pps = packets as f64 / secs;
                if pps > r.packets_per_s {
                    out.push(finding(
                        &r.name,
                        "flood",
                        &r.technique,
                        r.weight,
                        format!(
                            "{pps:.0} packets/s in one flow to {} (threshold {})",
                            flow.dst_ip, r.packets_per_s
                        ),
                    ));
                }
            }
        }

        if let (Some(r), Some(inv)) = (
            &self.file.bulk_transfer,
            self.inventories.get(&flow.facility_id),
        ) {
            let ot = |ip: &IpAddr| inv.plcs.contains(ip) || inv.writers.contains(ip);
            // Bytes that reached an OT host from outside the inventory.
            let delivered = match (ot(&flow.src_ip), ot(&flow.dst_ip)) {
                (false, true) => flow.fwd.bytes,
                (true, false) => flow.bwd.bytes,
                _ => 0,
            };
            if delivered >= r.min_bytes {
                let (outside, inside) = if ot(&flow.dst_ip) {
                    (flow.src_ip, flow.dst_ip)
                } else {
                    (flow.dst_ip, flow.src_ip)
                };
                out.push(finding(
                    &r.name,
                    "bulk_transfer",
                    &r.technique,
                    r.weight,
                    format!(
                        "{delivered} bytes moved from {outside} (outside the asset inventory) to OT host {inside} on port {} (threshold {})",
                        flow.dst_port, r.min_bytes
                    ),
                ));
            }
        }

        let Some(ics) = flow
            .ics
            .as_ref()
            .filter(|i| i.protocol == IcsProtocol::ModbusTcp)
        else {
            return out;
        };
        let server = if flow.src_port == MODBUS_PORT && flow.dst_port != MODBUS_PORT {
            flow.src_ip
        } else {
            flow.dst_ip
        };
        let unit = ics.unit_id.unwrap_or(0);
        let inventory = self.inventories.get(&flow.facility_id);

        if let Some(r) = &self.file.function_codes {
            for fc in &ics.function_codes {
                let code = fc.code & 0x7f;
                if !self.fc_allowed[usize::from(code)] {
                    let technique = self
                        .fc_technique
                        .get(&code)
                        .cloned()
                        .or(r.technique.clone());
                    out.push(finding(&r.name, "function_code", &technique, r.weight, format!(
                        "Modbus function code {code} ({} requests) from {} is not in the allowlist {:?}",
                        fc.count, flow.src_ip, r.allowed
                    )));
                }
            }
        }
        let is_write = !ics.writes.is_empty()
            || ics
                .function_codes
                .iter()
                .any(|f| matches!(f.code, 5 | 6 | 15 | 16 | 22 | 23));
        if is_write
            && let (Some(r), Some(inv)) = (&self.file.unauthorized_write, inventory)
            && !inv.writers.contains(&flow.src_ip)
        {
            out.push(finding(
                &r.name,
                "unauthorized_write",
                &r.technique,
                r.weight,
                format!(
                    "{} wrote {} value(s) to {server} unit {unit} but is not an authorised writer",
                    flow.src_ip,
                    ics.writes.len()
                ),
            ));
        }
        if is_write && let Some(r) = &self.file.write_sweep {
            let w = state.write_sweep.entry((flow.src_ip, server)).or_default();
            let mut n = 0;
            for wr in &ics.writes {
                n = w.push(t, (wr.table, wr.address), r.window_s);
            }
            if n >= r.distinct_addresses {
                out.push(finding(
                    &r.name,
                    "write_sweep",
                    &r.technique,
                    r.weight,
                    format!(
                        "{} wrote {n} distinct addresses on {server} within {}s (threshold {})",
                        flow.src_ip, r.window_s, r.distinct_addresses
                    ),
                ));
            }
        }
        if ics.responses > 0
            && let (Some(r), Some(inv)) = (&self.file.rogue_server, inventory)
            && !inv.plcs.contains(&server)
        {
            out.push(finding(
                &r.name,
                "rogue_server",
                &r.technique,
                r.weight,
                format!(
                    "{server} answered {} Modbus requests but is not a PLC in the inventory",
                    ics.responses
                ),
            ));
        }

        // Values written: engineering ranges, and interlocks on the state they would create.
        let tag_value = |table: ModbusTable, address: u16, raw: u16| {
            self.tag_index.get(&(table, address)).map(|&i| {
                let tag = &self.file.tags[i];
                (i, f64::from(raw) * tag.scale + tag.offset)
            })
        };
        let mut written: HashMap<usize, f64> = HashMap::new();
        for wr in &ics.writes {
            if let Some((i, v)) = tag_value(wr.table, wr.address, wr.value) {
                written.insert(i, v);
                out_of_range(&self.file.range, &self.range_by_tag[i], v, &mut out, |r| {
                    format!(
                        "{} wrote {} = {v} to {server} unit {unit}, outside [{}, {}]",
                        flow.src_ip, r.tag, r.min, r.max
                    )
                });
            }
        }
        if !written.is_empty() {
            for r in &self.file.interlock {
                let (Some(&wi), Some(&ri)) = (
                    self.tag_names.get(&r.when.tag),
                    self.tag_names.get(&r.require.tag),
                ) else {
                    continue;
                };
                if !written.contains_key(&wi) && !written.contains_key(&ri) {
                    continue;
                }
                let value = |i: usize| {
                    written
                        .get(&i)
                        .copied()
                        .or_else(|| state.tags.get(&(server, unit, i)).map(|v| v.0))
                };
                if let (Some(w), Some(q)) = (value(wi), value(ri))
                    && eq(w, r.when.equals)
                    && !eq(q, r.require.equals)
                {
                    out.push(finding(&r.name, "interlock", &r.technique, r.weight, format!(
                        "write by {} would set {} = {w} while {} = {q} on {server} unit {unit} (requires {} = {})",
                        flow.src_ip, r.when.tag, r.require.tag, r.require.tag, r.require.equals
                    )));
                }
            }
        }

        // Values reported: physical ranges, rates of change, interlock state (edge-triggered).
        let t_end = flow.ts_end.timestamp_micros() as f64 / 1e6;
        let mut touched = false;
        for rd in &ics.reads {
            let Some((i, v)) = tag_value(rd.table, rd.address, rd.value) else {
                continue;
            };
            touched = true;
            out_of_range(&self.file.range, &self.range_by_tag[i], v, &mut out, |r| {
                format!(
                    "{server} unit {unit} reported {} = {v}, outside [{}, {}]",
                    r.tag, r.min, r.max
                )
            });
            if let Some(&(prev, t_prev)) = state.tags.get(&(server, unit, i)) {
                let dt = (t_end - t_prev).max(0.0);
                for r in self.rate_by_tag[i]
                    .iter()
                    .map(|&k| &self.file.rate_of_change[k])
                {
                    let allowed = r.max_per_s * dt + r.deadband;
                    if (v - prev).abs() > allowed {
                        out.push(finding(&r.name, "rate_of_change", &r.technique, r.weight, format!(
                            "{} on {server} unit {unit} moved {prev} -> {v} in {dt:.1}s (allowed {allowed:.2})",
                            r.tag
                        )));
                    }
                }
            }
            state.tags.insert((server, unit, i), (v, t_end));
        }
        if touched {
            for (k, r) in self.file.interlock.iter().enumerate() {
                let (Some(&wi), Some(&ri)) = (
                    self.tag_names.get(&r.when.tag),
                    self.tag_names.get(&r.require.tag),
                ) else {
                    continue;
                };
                let (Some(&(w, _)), Some(&(q, _))) = (
                    state.tags.get(&(server, unit, wi)),
                    state.tags.get(&(server, unit, ri)),
                ) else {
                    continue;
                };
                let key = (server, unit, k);
                if eq(w, r.when.equals) && !eq(q, r.require.equals) {
                    if state.violated.insert(key) {
                        out.push(finding(&r.name, "interlock", &r.technique, r.weight, format!(
                            "{server} unit {unit} reports {} = {w} while {} = {q} (requires {} = {})",
                            r.when.tag, r.require.tag, r.require.tag, r.require.equals
                        )));
                    }
                } else {
                    state.violated.remove(&key);
                }
            }
        }
        out
    }
}

/// Pushes a `range` finding for every rule in `rules[watching]` that `v` violates.
fn out_of_range(
    rules: &[RangeRule],
    watching: &[usize],
    v: f64,
    out: &mut Vec<RuleFinding>,
    describe: impl Fn(&RangeRule) -> String,
) {
    for r in watching.iter().map(|&k| &rules[k]) {
        if v < r.min || v > r.max {
            out.push(finding(
                &r.name,
                "range",
                &r.technique,
                r.weight,
                describe(r),
            ));
        }
    }
}

fn eq(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// FNV-1a, 64 bit: a stable hash for version strings.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The rule engine as a pipeline detector (`rules`).
pub struct RulesDetector {
    engine: RuleEngine,
}

impl RulesDetector {
    pub fn new(file: RuleFile) -> Self {
        Self {
            engine: RuleEngine::new(file),
        }
    }
}

impl Detector for RulesDetector {
    fn name(&self) -> &str {
        "rules"
    }

    fn inspect(&mut self, flow: &FlowRecord, _earlier: &[Verdict]) -> Verdict {
        let findings = self.engine.inspect(flow);
        let score = findings.iter().map(|f| f.weight).fold(0.0, f64::max);
        Verdict {
            model_version: self.engine.version().to_string(),
            score: Some(score),
            threshold: None,
            is_anomaly: !findings.is_empty(),
            abstain_reason: None,
            findings,
            top_features: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
