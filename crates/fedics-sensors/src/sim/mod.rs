//! The ICS plant simulator.
//!
//! Time advances in export intervals (5 s by default, a flow exporter's active timeout).
//! In every interval each facility advances its physical process in 1 s steps under its PLC
//! control logic, then exports one flow per active connection: HMI and historian polling
//! each PLC over Modbus/TCP, occasional engineering-workstation sessions and operator writes,
//! and IT traffic (DNS, HTTPS, SMB). Attack campaigns add labelled flows stage by stage.
//!
//! Facilities differ on purpose (non-IID): number of PLCs and IT hosts, polling period,
//! process constants, IT activity, and which campaigns they suffer.

mod campaign;
mod process;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, TimeDelta, Utc};
use fedics_core::{
    AddressRange, DirStats, FlowRecord, FunctionCodeCount, GroundTruth, IatStats, IcsProtocol,
    IcsSection, ModbusTable, RegisterValue, SCHEMA_VERSION, TcpFlags, Transport, ids,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use campaign::{Campaign, Stage};
pub use campaign::{CampaignPlan, StagePlan, TEMPLATES};
use process::Process;

/// Modbus/TCP server port.
pub const MODBUS_PORT: u16 = 502;

/// Simulator settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    pub seed: u64,
    pub sites: usize,
    /// Simulated time of the first flow.
    pub start: DateTime<Utc>,
    /// Flow export interval (active timeout), seconds.
    pub export_interval_s: f64,
    /// Inject attack campaigns.
    pub attacks: bool,
    /// Simulated seconds before the first campaign (lets unsupervised detectors learn).
    pub first_campaign_s: f64,
    /// Simulated seconds between campaign starts at one facility.
    pub campaign_every_s: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            sites: 3,
            start: DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
            export_interval_s: 5.0,
            attacks: true,
            first_campaign_s: 600.0,
            campaign_every_s: 1500.0,
        }
    }
}

/// The hosts of one facility (its asset inventory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteTopology {
    pub facility_id: String,
    pub hmi: IpAddr,
    pub historian: IpAddr,
    pub engineering_workstation: IpAddr,
    pub plcs: Vec<IpAddr>,
    pub it_hosts: Vec<IpAddr>,
    pub dns_server: IpAddr,
    pub file_server: IpAddr,
    /// Modbus polling period of the HMI, seconds.
    pub poll_period_s: f64,
}

impl SiteTopology {
    /// Hosts allowed to write to PLCs (HMI and engineering workstation).
    pub fn allowed_writers(&self) -> Vec<IpAddr> {
        vec![self.hmi, self.engineering_workstation]
    }
}

struct Plc {
    ip: IpAddr,
    unit_id: u8,
    process: Process,
    hmi_port: u16,
    historian_port: u16,
}

struct Site {
    index: usize,
    topo: SiteTopology,
    rng: ChaCha8Rng,
    plcs: Vec<Plc>,
    it_activity: f64,
    ews_activity: f64,
    campaigns: Vec<Campaign>,
    seq: u64,
    next_ephemeral: u16,
}

/// A seeded, infinite iterator of flows from every facility, in time order.
pub struct Simulator {
    config: SimConfig,
    sites: Vec<Site>,
    /// Seconds of simulated time already generated.
    clock: f64,
    pending: VecDeque<FlowRecord>,
    emitted: u64,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let sites = (0..config.sites.max(1))
            .map(|i| Site::new(i, &config))
            .collect();
        Self {
            config,
            sites,
            clock: 0.0,
            pending: VecDeque::new(),
            emitted: 0,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Asset inventory of every facility.
    pub fn topology(&self) -> Vec<SiteTopology> {
        self.sites.iter().map(|s| s.topo.clone()).collect()
    }

    /// The campaigns scheduled at every facility, with stage times (ground truth for tests).
    pub fn campaigns(&self) -> Vec<CampaignPlan> {
        self.sites
            .iter()
            .flat_map(|s| s.campaigns.iter().map(|c| c.plan(&s.topo.facility_id)))
            .collect()
    }

    /// Simulated seconds generated so far.
    pub fn sim_seconds(&self) -> f64 {
        self.clock
    }

    /// Flows returned so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    fn step(&mut self) {
        let t0 = self.clock;
        let dt = self.config.export_interval_s.max(0.5);
        let mut out = Vec::with_capacity(64 * self.sites.len());
        for site in &mut self.sites {
            site.step(&self.config, t0, dt, &mut out);
        }
        out.sort_by(|a, b| {
            a.ts_start
                .cmp(&b.ts_start)
                .then_with(|| a.facility_id.cmp(&b.facility_id))
                .then_with(|| a.flow_id.cmp(&b.flow_id))
        });
        self.pending.extend(out);
        self.clock = t0 + dt;
    }
}

impl Iterator for Simulator {
    type Item = FlowRecord;

    fn next(&mut self) -> Option<FlowRecord> {
        while self.pending.is_empty() {
            self.step();
        }
        self.emitted += 1;
        self.pending.pop_front()
    }
}

/// One flow's measurable shape, before it becomes a record.
pub(crate) struct FlowSpec {
    pub t0: f64,
    pub dur: f64,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub transport: Transport,
    pub fwd: DirStats,
    pub bwd: DirStats,
    pub flags: TcpFlags,
    pub ics: Option<IcsSection>,
    pub label: &'static str,
    pub campaign: Option<(String, u32)>,
}

impl FlowSpec {
    pub fn new(t0: f64, dur: f64, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self {
            t0,
            dur,
            src,
            sport,
            dst,
            dport,
            transport: Transport::Tcp,
            fwd: DirStats::default(),
            bwd: DirStats::default(),
            flags: TcpFlags::default(),
            ics: None,
            label: GroundTruth::BENIGN,
            campaign: None,
        }
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Ethernet + IPv4 + TCP header bytes per packet.
const TCP_OVERHEAD: u64 = 54;
const UDP_OVERHEAD: u64 = 42;

impl Site {
    fn new(index: usize, config: &SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(
            config
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(index as u64 + 1),
        );
        let net = (index + 1).min(250) as u8;
        let n_plc = 3 + index % 3;
        let n_it = 4 + (index * 2) % 3;
        // Polling periods typical of HMIs: 0.5 s, 1 s or 2 s.
        let poll_period_s = [1.0, 0.5, 2.0][index % 3];
        let plc_ips: Vec<IpAddr> = (0..n_plc).map(|i| ip(10, net, 2, 10 + i as u8)).collect();
        let topo = SiteTopology {
            facility_id: format!("site-{}", index + 1),
            hmi: ip(10, net, 1, 10),
            historian: ip(10, net, 1, 20),
            engineering_workstation: ip(10, net, 1, 30),
            plcs: plc_ips.clone(),
            it_hosts: (0..n_it).map(|i| ip(10, net, 3, 20 + i as u8)).collect(),
            dns_server: ip(10, net, 3, 2),
            file_server: ip(10, net, 3, 5),
            poll_period_s,
        };
        let plcs = plc_ips
            .iter()
            .enumerate()
            .map(|(i, &pip)| Plc {
                ip: pip,
                unit_id: (i + 1) as u8,
                process: Process::new(&mut rng, index),
                hmi_port: rng.random_range(40000..60000),
                historian_port: rng.random_range(40000..60000),
            })
            .collect();
        let campaigns = if config.attacks {
            campaign::schedule(index, &topo, config, &mut rng)
        } else {
            Vec::new()
        };
        Self {
            index,
            topo,
            rng,
            plcs,
            it_activity: [1.0, 0.6, 1.4][index % 3],
            ews_activity: [0.05, 0.1, 0.03][index % 3],
            campaigns,
            seq: 0,
            next_ephemeral: 49152,
        }
    }

    fn ephemeral(&mut self) -> u16 {
        self.next_ephemeral = if self.next_ephemeral >= 65000 {
            49152
        } else {
            self.next_ephemeral + 1
        };
        self.next_ephemeral
    }

    fn step(&mut self, config: &SimConfig, t0: f64, dt: f64, out: &mut Vec<FlowRecord>) {
        // Attacks that change the process act before the physics runs.
        let active: Vec<Stage> = self
            .campaigns
            .iter()
            .flat_map(|c| c.stages.iter())
            .filter(|s| s.overlaps(t0, t0 + dt))
            .cloned()
            .collect();
        for plc in &mut self.plcs {
            plc.process.clear_forcing();
        }
        for s in &active {
            campaign::force_process(s, &mut self.plcs);
        }
        for plc in &mut self.plcs {
            let steps = dt.round().max(1.0) as usize;
            for k in 0..steps {
                plc.process.step(&mut self.rng, t0 + k as f64, 1.0);
            }
        }
        let mut specs = Vec::with_capacity(64);
        self.benign(t0, dt, &mut specs);
        for s in &active {
            campaign::flows(self, s, t0, dt, &mut specs);
        }
        for spec in specs {
            out.push(self.record(config, spec));
        }
    }

    fn benign(&mut self, t0: f64, dt: f64, specs: &mut Vec<FlowSpec>) {
        let period = self.topo.poll_period_s;
        for i in 0..self.plcs.len() {
            // HMI polling: FC3 holding registers 0..4 and FC1 coils 0..2 every period.
            let polls = (dt / period).round().max(1.0) as u32;
            let (hmi, hmi_port, pip) = (self.topo.hmi, self.plcs[i].hmi_port, self.plcs[i].ip);
            let jitter = self.rng.random_range(0.0..0.05);
            let mut spec = FlowSpec::new(t0 + jitter, dt - 0.1, hmi, hmi_port, pip, MODBUS_PORT);
            spec.ics = Some(self.poll_section(i, polls, true));
            modbus_counts(&mut spec, polls * 2, polls * 2, 12, 11);
            specs.push(spec);

            // Historian: one poll of the process registers per interval.
            let (hist, hist_port) = (self.topo.historian, self.plcs[i].historian_port);
            let mut spec = FlowSpec::new(
                t0 + self.rng.random_range(0.1..1.0),
                self.rng.random_range(0.005..0.03),
                hist,
                hist_port,
                pip,
                MODBUS_PORT,
            );
            spec.ics = Some(self.poll_section(i, 1, false));
            modbus_counts(&mut spec, 1, 1, 12, 17);
            specs.push(spec);

            // Engineering workstation: occasional session reading (and sometimes tuning)
            // the setpoints, always within their engineering range.
            if self.rng.random_bool(self.ews_activity) {
                let sport = self.ephemeral();
                let mut spec = FlowSpec::new(
                    t0 + self.rng.random_range(0.0..dt * 0.8),
                    self.rng.random_range(0.2..0.8),
                    self.topo.engineering_workstation,
                    sport,
                    pip,
                    MODBUS_PORT,
                );
                let plc = &self.plcs[i];
                let mut ics = section(plc.unit_id);
                count_fc(&mut ics, 3, 1);
                ics.ranges
                    .push(range(ModbusTable::HoldingRegister, 10, 2, false));
                ics.reads.push(reg(10, plc.process.sp_high_raw()));
                ics.reads.push(reg(11, plc.process.sp_low_raw()));
                let mut req = 1;
                if self.rng.random_bool(0.3) {
                    let v = self.rng.random_range(750..=880u16);
                    count_fc(&mut ics, 6, 1);
                    ics.ranges
                        .push(range(ModbusTable::HoldingRegister, 10, 1, true));
                    ics.writes.push(reg(10, v));
                    self.plcs[i].process.set_sp_high_raw(v);
                    req += 1;
                }
                ics.requests = req;
                ics.responses = req;
                spec.ics = Some(ics);
                modbus_counts(&mut spec, req, req, 12, 9);
                session_flags(&mut spec);
                specs.push(spec);
            }
        }

        // Operator: rare setpoint change from the HMI (allowed writer, in range).
        if self.rng.random_bool(0.01) && !self.plcs.is_empty() {
            let i = self.rng.random_range(0..self.plcs.len());
            let v = self.rng.random_range(150..=300u16);
            let mut spec = FlowSpec::new(
                t0 + self.rng.random_range(0.0..dt * 0.9),
                0.02,
                self.topo.hmi,
                self.plcs[i].hmi_port,
                self.plcs[i].ip,
                MODBUS_PORT,
            );
            let mut ics = section(self.plcs[i].unit_id);
            count_fc(&mut ics, 6, 1);
            ics.ranges
                .push(range(ModbusTable::HoldingRegister, 11, 1, true));
            ics.writes.push(reg(11, v));
            ics.requests = 1;
            ics.responses = 1;
            self.plcs[i].process.set_sp_low_raw(v);
            spec.ics = Some(ics);
            modbus_counts(&mut spec, 1, 1, 12, 12);
            specs.push(spec);
        }

        // Historian replicates to the IT side over HTTPS.
        let bytes = 2_000 + 400 * self.plcs.len() as u64 + self.rng.random_range(0..800);
        let sport = self.ephemeral();
        let mut spec = FlowSpec::new(
            t0 + self.rng.random_range(0.0..dt * 0.5),
            self.rng.random_range(0.05..0.3),
            self.topo.historian,
            sport,
            self.topo.file_server,
            443,
        );
        bulk_counts(&mut spec, bytes, 600);
        specs.push(spec);

        // IT hosts: DNS, HTTPS, SMB to the file server.
        for h in 0..self.topo.it_hosts.len() {
            let host = self.topo.it_hosts[h];
            if self.rng.random_bool((0.5 * self.it_activity).min(1.0)) {
                let sport = self.ephemeral();
                let mut spec = FlowSpec::new(
                    t0 + self.rng.random_range(0.0..dt),
                    self.rng.random_range(0.001..0.02),
                    host,
                    sport,
                    self.topo.dns_server,
                    53,
                );
                spec.transport = Transport::Udp;
                let q = self.rng.random_range(30..70u64);
                spec.fwd = DirStats {
                    packets: 1,
                    bytes: q + UDP_OVERHEAD,
                };
                spec.bwd = DirStats {
                    packets: 1,
                    bytes: q + self.rng.random_range(16..200) + UDP_OVERHEAD,
                };
                specs.push(spec);
            }
            if self.rng.random_bool((0.3 * self.it_activity).min(1.0)) {
                let sport = self.ephemeral();
                let bytes = log_uniform(&mut self.rng, 2_000.0, 400_000.0);
                let mut spec = FlowSpec::new(
                    t0 + self.rng.random_range(0.0..dt),
                    self.rng.random_range(0.05..2.0),
                    host,
                    sport,
                    self.topo.file_server,
                    443,
                );
                bulk_counts(&mut spec, bytes, 500);
                specs.push(spec);
            }
            if self.rng.random_bool((0.08 * self.it_activity).min(1.0)) {
                let sport = self.ephemeral();
                let bytes = log_uniform(&mut self.rng, 10_000.0, 3_000_000.0);
                let mut spec = FlowSpec::new(
                    t0 + self.rng.random_range(0.0..dt),
                    self.rng.random_range(0.1..3.0),
                    host,
                    sport,
                    self.topo.file_server,
                    445,
                );
                bulk_counts(&mut spec, bytes, 900);
                specs.push(spec);
            }
        }
        // The engineering workstation fetches project files from the file server.
        if self.rng.random_bool(0.05) {
            let sport = self.ephemeral();
            let bytes = log_uniform(&mut self.rng, 50_000.0, 4_000_000.0);
            let mut spec = FlowSpec::new(
                t0 + self.rng.random_range(0.0..dt),
                self.rng.random_range(0.2..3.0),
                self.topo.engineering_workstation,
                sport,
                self.topo.file_server,
                445,
            );
            bulk_counts(&mut spec, bytes, 900);
            specs.push(spec);
        }
    }

    /// A polling flow's ICS section: reads of the process registers (and coils for the HMI).
    fn poll_section(&mut self, i: usize, polls: u32, coils: bool) -> IcsSection {
        let plc = &self.plcs[i];
        let mut ics = section(plc.unit_id);
        let regs = plc.process.registers(&mut self.rng);
        count_fc(&mut ics, 3, polls);
        ics.ranges
            .push(range(ModbusTable::HoldingRegister, 0, 4, false));
        for (a, v) in regs.iter().enumerate() {
            ics.reads.push(reg(a as u16, *v));
        }
        let mut requests = polls;
        if coils {
            count_fc(&mut ics, 1, polls);
            ics.ranges.push(range(ModbusTable::Coil, 0, 2, false));
            let (pump, valve) = plc.process.coils();
            ics.reads.push(coil(0, pump));
            ics.reads.push(coil(1, valve));
            requests += polls;
        }
        ics.requests = requests;
        ics.responses = requests;
        ics
    }

    fn record(&mut self, config: &SimConfig, spec: FlowSpec) -> FlowRecord {
        self.seq += 1;
        let start = at(config.start, spec.t0);
        let dur = spec.dur.max(0.0);
        let end = at(config.start, spec.t0 + dur);
        let n = spec.fwd.packets + spec.bwd.packets;
        let iat = if n > 1 {
            let mean = dur * 1000.0 / (n - 1) as f64;
            let spread = self.rng.random_range(0.05..0.4);
            IatStats {
                mean_ms: mean,
                std_ms: mean * spread,
                min_ms: mean * (1.0 - spread).max(0.0) * 0.5,
                max_ms: mean * (1.0 + 3.0 * spread),
            }
        } else {
            IatStats::default()
        };
        let facility = &self.topo.facility_id;
        let flow_id = ids::derive(&[
            facility.as_bytes(),
            &self.seq.to_be_bytes(),
            &start.timestamp_micros().to_be_bytes(),
            spec.src.to_string().as_bytes(),
            &spec.sport.to_be_bytes(),
            spec.dst.to_string().as_bytes(),
            &spec.dport.to_be_bytes(),
        ]);
        FlowRecord {
            schema_version: SCHEMA_VERSION,
            flow_id,
            facility_id: facility.clone(),
            ts_start: start,
            ts_end: end,
            duration_ms: dur * 1000.0,
            src_ip: spec.src,
            src_port: spec.sport,
            dst_ip: spec.dst,
            dst_port: spec.dport,
            transport: spec.transport,
            fwd: spec.fwd,
            bwd: spec.bwd,
            tcp_flags: spec.flags,
            iat,
            ics: spec.ics,
            ground_truth: Some(GroundTruth {
                label: spec.label.to_string(),
                campaign_id: spec.campaign.as_ref().map(|c| c.0.clone()),
                stage: spec.campaign.as_ref().map(|c| c.1),
            }),
        }
    }
}

fn at(start: DateTime<Utc>, secs: f64) -> DateTime<Utc> {
    start + TimeDelta::microseconds((secs * 1e6).round() as i64)
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> u64 {
    let x: f64 = rng.random_range(lo.ln()..hi.ln());
    x.exp() as u64
}

pub(crate) fn section(unit_id: u8) -> IcsSection {
    IcsSection {
        protocol: IcsProtocol::ModbusTcp,
        unit_id: Some(unit_id),
        requests: 0,
        responses: 0,
        function_codes: Vec::new(),
        ranges: Vec::new(),
        writes: Vec::new(),
        reads: Vec::new(),
        exceptions: Vec::new(),
    }
}

pub(crate) fn count_fc(ics: &mut IcsSection, code: u8, n: u32) {
    match ics.function_codes.iter_mut().find(|f| f.code == code) {
        Some(f) => f.count += n,
        None => ics
            .function_codes
            .push(FunctionCodeCount { code, count: n }),
    }
}

pub(crate) fn range(table: ModbusTable, start: u16, count: u16, write: bool) -> AddressRange {
    AddressRange {
        table,
        start,
        count,
        write,
    }
}

pub(crate) fn reg(address: u16, value: u16) -> RegisterValue {
    RegisterValue {
        table: ModbusTable::HoldingRegister,
        address,
        value,
    }
}

pub(crate) fn coil(address: u16, on: bool) -> RegisterValue {
    RegisterValue {
        table: ModbusTable::Coil,
        address,
        value: u16::from(on),
    }
}

/// Packet/byte counters of a Modbus/TCP exchange on an established connection:
/// `req` requests of `req_pdu` bytes, `resp` responses of `resp_pdu` bytes (MBAP adds 7),
/// each side acknowledging about every second segment.
pub(crate) fn modbus_counts(spec: &mut FlowSpec, req: u32, resp: u32, req_pdu: u64, resp_pdu: u64) {
    let (req, resp) = (u64::from(req), u64::from(resp));
    let fwd_acks = resp.div_ceil(2);
    let bwd_acks = req.saturating_sub(resp).div_ceil(2);
    spec.fwd = DirStats {
        packets: req + fwd_acks,
        bytes: req * (req_pdu + 7 + TCP_OVERHEAD) + fwd_acks * TCP_OVERHEAD,
    };
    spec.bwd = DirStats {
        packets: resp + bwd_acks,
        bytes: resp * (resp_pdu + 7 + TCP_OVERHEAD) + bwd_acks * TCP_OVERHEAD,
    };
    spec.flags.psh += (req + resp) as u32;
    spec.flags.ack += (req + resp + fwd_acks + bwd_acks) as u32;
}

/// Adds a TCP handshake and teardown to a flow that opened and closed its connection.
pub(crate) fn session_flags(spec: &mut FlowSpec) {
    spec.flags.syn += 2;
    spec.flags.fin += 2;
    spec.flags.ack += 3;
    spec.fwd.packets += 3;
    spec.bwd.packets += 2;
    spec.fwd.bytes += 3 * TCP_OVERHEAD;
    spec.bwd.bytes += 2 * TCP_OVERHEAD;
}

/// Counters of a request/response bulk transfer of `bytes` downloaded by the initiator.
pub(crate) fn bulk_counts(spec: &mut FlowSpec, bytes: u64, up: u64) {
    let mss = 1448;
    let down_pk = bytes.div_ceil(mss).max(1);
    let up_pk = down_pk.div_ceil(2) + up.div_ceil(mss);
    spec.fwd = DirStats {
        packets: up_pk,
        bytes: up + up_pk * TCP_OVERHEAD,
    };
    spec.bwd = DirStats {
        packets: down_pk,
        bytes: bytes + down_pk * TCP_OVERHEAD,
    };
    spec.flags.ack += (up_pk + down_pk) as u32;
    spec.flags.psh += 2;
    session_flags(spec);
}

#[cfg(test)]
mod tests;
