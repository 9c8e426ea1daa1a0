//! Labelled attack campaigns. A campaign is a sequence of stages, each one ATT&CK for ICS
//! technique, ordered as the tactics of the ICS matrix order an intrusion: discovery,
//! lateral movement, impair process control, inhibit response function, impact.

use std::net::IpAddr;

use fedics_core::{DirStats, ModbusTable, Transport};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    FlowSpec, MODBUS_PORT, Plc, SimConfig, Site, SiteTopology, TCP_OVERHEAD, bulk_counts, coil,
    count_fc, ip, modbus_counts, range, reg, section, session_flags,
};

/// What a stage does on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Sweep of the control subnet for Modbus servers.
    HostSweep,
    /// Port scan of one PLC.
    PortScan,
    /// Modbus device identification (FC 43/14) and report server id (FC 17).
    DeviceId,
    /// Large SMB upload from the foothold to the engineering workstation.
    ToolTransfer,
    /// Out-of-range setpoint writes from the (compromised) engineering workstation.
    ModifyParameter,
    /// Forcing valve open and pump off, against the interlock.
    ManipulateControl,
    /// Rapid writes over many coils and registers from a non-engineering host.
    BruteForceIo,
    /// A stop command to the pump from a non-engineering host.
    UnauthorizedCommand,
    /// A rogue Modbus server answering the HMI with fabricated values.
    SpoofReporting,
    /// SYN flood against a PLC.
    Flood,
}

/// A campaign template: stage kinds with their technique and duration (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub name: &'static str,
    pub stages: &'static [(StageKind, &'static str, f64)],
}

/// The campaigns facilities suffer; facility `i` starts with template `i % 3`.
pub static TEMPLATES: &[Template] = &[
    Template {
        name: "recon-to-tamper",
        stages: &[
            (StageKind::HostSweep, "T0846", 40.0),
            (StageKind::DeviceId, "T0888", 30.0),
            (StageKind::ToolTransfer, "T0867", 60.0),
            (StageKind::ModifyParameter, "T0836", 30.0),
            (StageKind::ManipulateControl, "T0831", 40.0),
        ],
    },
    Template {
        name: "disrupt",
        stages: &[
            (StageKind::PortScan, "T0840", 25.0),
            (StageKind::BruteForceIo, "T0806", 30.0),
            (StageKind::UnauthorizedCommand, "T0855", 30.0),
            (StageKind::Flood, "T0814", 15.0),
        ],
    },
    Template {
        name: "deceive",
        stages: &[
            (StageKind::HostSweep, "T0846", 40.0),
            (StageKind::UnauthorizedCommand, "T0855", 30.0),
            (StageKind::SpoofReporting, "T0856", 60.0),
            (StageKind::Flood, "T0814", 15.0),
        ],
    },
];

/// Seconds between the end of one stage and the start of the next.
const STAGE_GAP_S: f64 = 60.0;
/// Campaigns scheduled per facility (enough for days of simulated time).
const CAMPAIGNS_PER_SITE: usize = 400;

#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub campaign_id: String,
    pub index: u32,
    pub kind: StageKind,
    pub technique: &'static str,
    pub start: f64,
    pub duration: f64,
    pub attacker: IpAddr,
    pub target: usize,
    pub port: u16,
}

impl Stage {
    pub fn overlaps(&self, a: f64, b: f64) -> bool {
        self.start < b && self.start + self.duration > a
    }

    /// Evenly spaced events `i in 0..n` of this stage that fall in `[a, b)`.
    fn events(&self, n: usize, a: f64, b: f64) -> impl Iterator<Item = (usize, f64)> + '_ {
        (0..n).filter_map(move |i| {
            let t = self.start + self.duration * i as f64 / n as f64;
            (t >= a && t < b).then_some((i, t))
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Campaign {
    pub id: String,
    pub template: &'static str,
    pub stages: Vec<Stage>,
}

/// A scheduled campaign, for tests and reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignPlan {
    pub facility_id: String,
    pub campaign_id: String,
    pub template: String,
    pub stages: Vec<StagePlan>,
}

/// A scheduled stage (times in simulated seconds from the start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    pub technique: String,
    pub kind: StageKind,
    pub start_s: f64,
    pub end_s: f64,
    pub attacker: IpAddr,
}

impl Campaign {
    pub fn plan(&self, facility: &str) -> CampaignPlan {
        CampaignPlan {
            facility_id: facility.to_string(),
            campaign_id: self.id.clone(),
            template: self.template.to_string(),
            stages: self
                .stages
                .iter()
                .map(|s| StagePlan {
                    technique: s.technique.to_string(),
                    kind: s.kind,
                    start_s: s.start,
                    end_s: s.start + s.duration,
                    attacker: s.attacker,
                })
                .collect(),
        }
    }
}

pub(crate) fn schedule(
    site: usize,
    topo: &SiteTopology,
    config: &SimConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<Campaign> {
    let mut out = Vec::with_capacity(CAMPAIGNS_PER_SITE);
    for c in 0..CAMPAIGNS_PER_SITE {
        let template = &TEMPLATES[(site + c) % TEMPLATES.len()];
        let id = format!("{}-c{}", topo.facility_id, c + 1);
        let foothold = topo.it_hosts[rng.random_range(0..topo.it_hosts.len())];
        let target = rng.random_range(0..topo.plcs.len());
        let rogue_port = rng.random_range(40000..60000);
        let mut t =
            config.first_campaign_s + 45.0 * site as f64 + config.campaign_every_s * c as f64;
        let mut stages = Vec::new();
        for (i, (kind, technique, duration)) in template.stages.iter().enumerate() {
            // After the tool transfer the intruder operates from the engineering workstation.
            let attacker = match kind {
                StageKind::ModifyParameter | StageKind::ManipulateControl => {
                    topo.engineering_workstation
                }
                _ => foothold,
            };
            stages.push(Stage {
                campaign_id: id.clone(),
                index: i as u32,
                kind: *kind,
                technique,
                start: t,
                duration: *duration,
                attacker,
                target,
                port: rogue_port,
            });
            t += duration + STAGE_GAP_S;
        }
        out.push(Campaign {
            id,
            template: template.name,
            stages,
        });
    }
    out
}

/// Applies a stage's effect on the physical process (forced outputs, changed setpoints).
pub(crate) fn force_process(stage: &Stage, plcs: &mut [Plc]) {
    let Some(plc) = plcs.get_mut(stage.target) else {
        return;
    };
    match stage.kind {
        StageKind::ModifyParameter => plc.process.forced_sp_high = Some(99.0),
        StageKind::ManipulateControl => {
            plc.process.forced_valve = Some(true);
            plc.process.forced_pump = Some(false);
        }
        StageKind::UnauthorizedCommand => plc.process.forced_pump = Some(false),
        _ => {}
    }
}

/// Emits the stage's flows that start in `[t0, t0 + dt)`.
pub(crate) fn flows(site: &mut Site, s: &Stage, t0: f64, dt: f64, out: &mut Vec<FlowSpec>) {
    let (a, b) = (t0, t0 + dt);
    let net = (site.index + 1).min(250) as u8;
    let label = s.technique;
    let tag = Some((s.campaign_id.clone(), s.index));
    let target_ip = site.topo.plcs[s.target.min(site.topo.plcs.len() - 1)];
    let unit = site.plcs[s.target.min(site.plcs.len() - 1)].unit_id;
    let push = |mut spec: FlowSpec, out: &mut Vec<FlowSpec>| {
        spec.label = label;
        spec.campaign = tag.clone();
        out.push(spec);
    };
    match s.kind {
        StageKind::HostSweep => {
            for (i, t) in s.events(254, a, b) {
                let dst = ip(10, net, 2, (i + 1) as u8);
                let sport = site.ephemeral();
                let alive = site.topo.plcs.contains(&dst);
                let mut spec = FlowSpec::new(t, 0.0, s.attacker, sport, dst, MODBUS_PORT);
                probe(&mut spec, alive, true, &mut site.rng);
                push(spec, out);
            }
        }
        StageKind::PortScan => {
            let ports: Vec<u16> = (1..=1024u16)
                .chain([1911, 2404, 4840, 20000, 44818, 47808])
                .collect();
            for (i, t) in s.events(ports.len(), a, b) {
                let port = ports[i];
                let sport = site.ephemeral();
                let mut spec = FlowSpec::new(t, 0.0, s.attacker, sport, target_ip, port);
                probe(
                    &mut spec,
                    port == MODBUS_PORT || port == 80,
                    false,
                    &mut site.rng,
                );
                push(spec, out);
            }
        }
        StageKind::DeviceId => {
            let n = site.plcs.len();
            for (i, t) in s.events(2 * n, a, b) {
                let (plc_ip, plc_unit) = (site.plcs[i / 2].ip, site.plcs[i / 2].unit_id);
                let mut ics = section(plc_unit);
                let fc = if i % 2 == 0 { 43 } else { 17 };
                count_fc(&mut ics, fc, 1);
                ics.requests = 1;
                ics.responses = 1;
                let sport = site.ephemeral();
                let mut spec = FlowSpec::new(t, 0.05, s.attacker, sport, plc_ip, MODBUS_PORT);
                spec.ics = Some(ics);
                modbus_counts(&mut spec, 1, 1, 5, 48);
                session_flags(&mut spec);
                push(spec, out);
            }
        }
        StageKind::ToolTransfer => {
            for (_, t) in s.events(4, a, b) {
                let bytes = site.rng.random_range(15_000_000..60_000_000u64);
                let sport = site.ephemeral();
                let ews = site.topo.engineering_workstation;
                let mut spec = FlowSpec::new(
                    t,
                    site.rng.random_range(8.0..25.0),
                    s.attacker,
                    sport,
                    ews,
                    445,
                );
                bulk_counts(&mut spec, bytes, 2_000);
                std::mem::swap(&mut spec.fwd, &mut spec.bwd);
                push(spec, out);
            }
        }
        StageKind::ModifyParameter => {
            for (i, t) in s.events(2, a, b) {
                let mut ics = section(unit);
                count_fc(&mut ics, 6, 1);
                let (addr, value) = if i == 0 { (10, 990) } else { (11, 20) };
                ics.ranges
                    .push(range(ModbusTable::HoldingRegister, addr, 1, true));
                ics.writes.push(reg(addr, value));
                ics.requests = 1;
                ics.responses = 1;
                let sport = site.ephemeral();
                let mut spec = FlowSpec::new(t, 0.08, s.attacker, sport, target_ip, MODBUS_PORT);
                spec.ics = Some(ics);
                modbus_counts(&mut spec, 1, 1, 5, 5);
                session_flags(&mut spec);
                push(spec, out);
            }
        }
        StageKind::ManipulateControl => {
            for (_, t) in s.events(4, a, b) {
                let mut ics = section(unit);
                count_fc(&mut ics, 5, 2);
                ics.ranges.push(range(ModbusTable::Coil, 0, 2, true));
                ics.writes.push(coil(1, true));
                ics.writes.push(coil(0, false));
                ics.requests = 2;
                ics.responses = 2;
                let sport = site.ephemeral();
                let mut spec = FlowSpec::new(t, 0.1, s.attacker, sport, target_ip, MODBUS_PORT);
                spec.ics = Some(ics);
                modbus_counts(&mut spec, 2, 2, 5, 5);
                session_flags(&mut spec);
                push(spec, out);
            }
        }
        StageKind::BruteForceIo => {
            let n = (s.duration / 1.5) as usize;
            for (_, t) in s.events(n, a, b) {
                let mut ics = section(unit);
                let coils = site.rng.random_range(8..20u32);
                let regs = site.rng.random_range(4..10u32);
                for _ in 0..coils {
                    let addr = site.rng.random_range(0..256u16);
                    ics.writes.push(coil(addr, site.rng.random_bool(0.5)));
                    ics.ranges.push(range(ModbusTable::Coil, addr, 1, true));
                }
                for _ in 0..regs {
                    let addr = site.rng.random_range(0..128u16);
                    ics.writes.push(reg(addr, site.rng.random_range(0..1000)));
                    ics.ranges
                        .push(range(ModbusTable::HoldingRegister, addr, 1, true));
                }
                count_fc(&mut ics, 5, coils);
                count_fc(&mut ics, 6, regs);
                ics.requests = coils + regs;
                ics.responses = coils + regs;
                let sport = site.ephemeral();
                let mut spec = FlowSpec::new(t, 1.2, s.attacker, sport, target_ip, MODBUS_PORT);
                spec.ics = Some(ics);
                modbus_counts(&mut spec, coils + regs, coils + regs, 5, 5);
                session_flags(&mut spec);
                push(spec, out);
            }
        }
        StageKind::UnauthorizedCommand => {
            for (_, t) in s.events(3, a, b) {
                let mut ics = section(unit);
                count_fc(&mut ics, 5, 1);
                ics.ranges.push(range(ModbusTable::Coil, 0, 1, true));
                ics.writes.push(coil(0, false));
                ics.requests = 1;
                ics.responses = 1;
                let sport = site.ephemeral();
                let mut spec = FlowSpec::new(t, 0.05, s.attacker, sport, target_ip, MODBUS_PORT);
                spec.ics = Some(ics);
                modbus_counts(&mut spec, 1, 1, 5, 5);
                session_flags(&mut spec);
                push(spec, out);
            }
        }
        StageKind::SpoofReporting => {
            // The HMI has been redirected to a rogue server answering for the target unit
            // with a calm, fabricated picture of the process.
            let polls = (dt / site.topo.poll_period_s).round().max(1.0) as u32;
            let n = (s.duration / dt).round().max(1.0) as usize;
            for (_, t) in s.events(n, a, b) {
                let mut ics = section(unit);
                count_fc(&mut ics, 3, polls);
                count_fc(&mut ics, 1, polls);
                ics.ranges
                    .push(range(ModbusTable::HoldingRegister, 0, 4, false));
                ics.ranges.push(range(ModbusTable::Coil, 0, 2, false));
                for (addr, v) in [(0, 500), (1, 350), (2, 220), (3, 30)] {
                    ics.reads.push(reg(addr, v));
                }
                ics.reads.push(coil(0, true));
                ics.reads.push(coil(1, true));
                ics.requests = 2 * polls;
                ics.responses = 2 * polls;
                let mut spec =
                    FlowSpec::new(t, dt - 0.1, site.topo.hmi, s.port, s.attacker, MODBUS_PORT);
                spec.ics = Some(ics);
                modbus_counts(&mut spec, 2 * polls, 2 * polls, 12, 11);
                push(spec, out);
            }
        }
        StageKind::Flood => {
            let n = (s.duration * 40.0) as usize;
            for (_, t) in s.events(n, a, b) {
                let sport = site.rng.random_range(1024..65535u16);
                let mut spec = FlowSpec::new(t, 0.0, s.attacker, sport, target_ip, MODBUS_PORT);
                let syns = site.rng.random_range(1..=3u32);
                spec.fwd = DirStats {
                    packets: u64::from(syns),
                    bytes: u64::from(syns) * (TCP_OVERHEAD + 6),
                };
                spec.flags.syn = syns;
                spec.dur = f64::from(syns - 1) * 1.0;
                push(spec, out);
            }
        }
    }
}

/// A TCP connect probe: SYN, then SYN-ACK and RST if the port is open, RST-ACK if closed,
/// nothing if the host is absent (two SYNs, one retransmitted).
fn probe(spec: &mut FlowSpec, open: bool, host_may_be_absent: bool, rng: &mut ChaCha8Rng) {
    spec.transport = Transport::Tcp;
    if open {
        spec.fwd = DirStats {
            packets: 2,
            bytes: 2 * (TCP_OVERHEAD + 6),
        };
        spec.bwd = DirStats {
            packets: 1,
            bytes: TCP_OVERHEAD + 6,
        };
        spec.flags.syn = 2;
        spec.flags.ack = 2;
        spec.flags.rst = 1;
        spec.dur = rng.random_range(0.0005..0.004);
    } else if host_may_be_absent {
        spec.fwd = DirStats {
            packets: 2,
            bytes: 2 * (TCP_OVERHEAD + 6),
        };
        spec.flags.syn = 2;
        spec.dur = 1.0;
    } else {
        spec.fwd = DirStats {
            packets: 1,
            bytes: TCP_OVERHEAD + 6,
        };
        spec.bwd = DirStats {
            packets: 1,
            bytes: TCP_OVERHEAD,
        };
        spec.flags.syn = 1;
        spec.flags.rst = 1;
        spec.flags.ack = 1;
        spec.dur = rng.random_range(0.0002..0.002);
    }
}
