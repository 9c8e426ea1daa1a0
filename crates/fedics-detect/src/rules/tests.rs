use chrono::{DateTime, TimeDelta, Utc};
use fedics_core::{
    DirStats, FlowRecord, FunctionCodeCount, IatStats, IcsProtocol, IcsSection, ModbusTable,
    RegisterValue, SCHEMA_VERSION, TcpFlags, Transport,
};
use uuid::Uuid;

use super::*;

const ASSETS: &str = r#"
[[assets]]
facility = "site-1"
plcs = ["10.1.2.10", "10.1.2.11"]
writers = ["10.1.1.10", "10.1.1.30"]
"#;

fn engine() -> RuleEngine {
    let text = format!("{DEFAULT_RULES}{ASSETS}");
    RuleEngine::new(RuleFile::parse(&text).expect("default rules parse"))
}

fn t(secs: f64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default()
        + TimeDelta::microseconds((secs * 1e6) as i64)
}

fn flow(at: f64, src: &str, dst: &str, dport: u16) -> FlowRecord {
    FlowRecord {
        schema_version: SCHEMA_VERSION,
        flow_id: Uuid::nil(),
        facility_id: "site-1".into(),
        ts_start: t(at),
        ts_end: t(at + 0.01),
        duration_ms: 10.0,
        src_ip: src.parse().expect("ip"),
        src_port: 50000,
        dst_ip: dst.parse().expect("ip"),
        dst_port: dport,
        transport: Transport::Tcp,
        fwd: DirStats {
            packets: 1,
            bytes: 60,
        },
        bwd: DirStats {
            packets: 1,
            bytes: 60,
        },
        tcp_flags: TcpFlags {
            syn: 1,
            ..TcpFlags::default()
        },
        iat: IatStats::default(),
        ics: None,
        ground_truth: None,
    }
}

fn modbus(
    at: f64,
    src: &str,
    dst: &str,
    fcs: &[u8],
    writes: &[RegisterValue],
    reads: &[RegisterValue],
) -> FlowRecord {
    let mut f = flow(at, src, dst, 502);
    f.fwd = DirStats {
        packets: 20,
        bytes: 1400,
    };
    f.bwd = DirStats {
        packets: 20,
        bytes: 1400,
    };
    f.ics = Some(IcsSection {
        protocol: IcsProtocol::ModbusTcp,
        unit_id: Some(1),
        requests: 10,
        responses: 10,
        function_codes: fcs
            .iter()
            .map(|&code| FunctionCodeCount { code, count: 1 })
            .collect(),
        ranges: Vec::new(),
        writes: writes.to_vec(),
        reads: reads.to_vec(),
        exceptions: Vec::new(),
    });
    f
}

fn hr(address: u16, value: u16) -> RegisterValue {
    RegisterValue {
        table: ModbusTable::HoldingRegister,
        address,
        value,
    }
}

fn coil(address: u16, on: bool) -> RegisterValue {
    RegisterValue {
        table: ModbusTable::Coil,
        address,
        value: u16::from(on),
    }
}

fn kinds(f: &[RuleFinding]) -> Vec<&str> {
    f.iter().map(|x| x.kind.as_str()).collect()
}

const HMI: &str = "10.1.1.10";
const EWS: &str = "10.1.1.30";
const PLC: &str = "10.1.2.10";
const IT: &str = "10.1.3.20";

#[test]
fn benign_polling_fires_nothing() {
    let mut e = engine();
    for i in 0..50 {
        let reads = [hr(0, 500 + i), hr(1, 350), coil(0, true), coil(1, true)];
        let f = modbus(f64::from(i) * 5.0, HMI, PLC, &[3, 1], &[], &reads);
        assert!(e.inspect(&f).is_empty(), "poll {i}");
    }
}

#[test]
fn range_rule_on_written_setpoint() {
    let mut e = engine();
    let ok = modbus(0.0, EWS, PLC, &[6], &[hr(10, 850)], &[]);
    assert!(e.inspect(&ok).is_empty());
    let bad = modbus(1.0, EWS, PLC, &[6], &[hr(10, 990)], &[]);
    let f = e.inspect(&bad);
    assert_eq!(kinds(&f), vec!["range"]);
    assert_eq!(f[0].technique.as_deref(), Some("T0836"));
}

#[test]
fn rate_of_change_rule_with_deadband() {
    let mut e = engine();
    assert!(
        e.inspect(&modbus(0.0, HMI, PLC, &[3], &[], &[hr(0, 400)]))
            .is_empty()
    );
    // +3 % in 5 s is within 2 %/s * 5 s + 2 % deadband.
    assert!(
        e.inspect(&modbus(5.0, HMI, PLC, &[3], &[], &[hr(0, 430)]))
            .is_empty()
    );
    // +30 % in 5 s is not.
    let f = e.inspect(&modbus(10.0, HMI, PLC, &[3], &[], &[hr(0, 730)]));
    assert_eq!(kinds(&f), vec!["rate_of_change"]);
}

#[test]
fn interlock_rule_on_writes_and_edge_triggered_on_reads() {
    let mut e = engine();
    // Known state: pump off, valve closed.
    assert!(
        e.inspect(&modbus(
            0.0,
            HMI,
            PLC,
            &[1],
            &[],
            &[coil(0, false), coil(1, false)]
        ))
        .is_empty()
    );
    // Opening the valve while the pump is off violates valve => pump.
    let f = e.inspect(&modbus(1.0, EWS, PLC, &[5], &[coil(1, true)], &[]));
    assert_eq!(kinds(&f), vec!["interlock"]);
    assert_eq!(f[0].technique.as_deref(), Some("T0831"));
    // Reads showing the violated state fire once, then not again until it clears.
    let bad = [coil(0, false), coil(1, true)];
    assert_eq!(
        kinds(&e.inspect(&modbus(5.0, HMI, PLC, &[1], &[], &bad))),
        vec!["interlock"]
    );
    assert!(
        e.inspect(&modbus(10.0, HMI, PLC, &[1], &[], &bad))
            .is_empty()
    );
    assert!(
        e.inspect(&modbus(
            15.0,
            HMI,
            PLC,
            &[1],
            &[],
            &[coil(0, true), coil(1, true)]
        ))
        .is_empty()
    );
    assert_eq!(
        kinds(&e.inspect(&modbus(20.0, HMI, PLC, &[1], &[], &bad))),
        vec!["interlock"]
    );
}

#[test]
fn function_code_rule_maps_codes_to_techniques() {
    let mut e = engine();
    let f = e.inspect(&modbus(0.0, IT, PLC, &[43], &[], &[]));
    assert_eq!(kinds(&f), vec!["function_code"]);
    assert_eq!(f[0].technique.as_deref(), Some("T0888"));
    let f = e.inspect(&modbus(1.0, IT, PLC, &[100], &[], &[]));
    assert_eq!(f[0].technique.as_deref(), Some("T0855"));
    assert!(
        e.inspect(&modbus(2.0, HMI, PLC, &[3, 16], &[], &[]))
            .is_empty()
    );
}

#[test]
fn unauthorized_write_and_write_sweep() {
    let mut e = engine();
    let f = e.inspect(&modbus(0.0, IT, PLC, &[5], &[coil(0, false)], &[]));
    assert_eq!(kinds(&f), vec!["unauthorized_write"]);
    assert!(
        e.inspect(&modbus(1.0, HMI, PLC, &[5], &[coil(0, true)], &[]))
            .is_empty()
    );
    let many: Vec<RegisterValue> = (100..110).map(|a| coil(a, true)).collect();
    let f = e.inspect(&modbus(2.0, IT, PLC, &[5], &many, &[]));
    assert!(kinds(&f).contains(&"write_sweep"), "{f:?}");
    assert!(f.iter().any(|x| x.technique.as_deref() == Some("T0806")));
}

#[test]
fn rogue_server_needs_inventory() {
    let mut e = engine();
    let f = e.inspect(&modbus(0.0, HMI, "10.1.3.21", &[3], &[], &[hr(0, 500)]));
    assert_eq!(kinds(&f), vec!["rogue_server"]);
    // Facilities without an inventory are not judged.
    let mut other = modbus(0.0, HMI, "10.9.3.21", &[3], &[], &[]);
    other.facility_id = "site-9".into();
    assert!(e.inspect(&other).is_empty());
}

#[test]
fn host_scan_threshold_and_window() {
    let mut e = engine();
    let mut fired = 0;
    for i in 0..30u8 {
        let f = e.inspect(&flow(f64::from(i) * 0.1, IT, &format!("10.1.2.{i}"), 502));
        if kinds(&f).contains(&"scan_hosts") {
            fired += 1;
        }
    }
    // The 10th distinct host crosses the threshold: 21 of 30 probes fire.
    assert_eq!(fired, 21);
    // Long after the window, a new probe does not fire.
    assert!(e.inspect(&flow(500.0, IT, "10.1.2.200", 502)).is_empty());
    // Big flows are not probes.
    let mut e = engine();
    for i in 0..30u8 {
        let mut f = flow(f64::from(i), IT, &format!("10.1.2.{i}"), 443);
        f.fwd.packets = 100;
        assert!(e.inspect(&f).is_empty());
    }
}

#[test]
fn port_scan_threshold() {
    let mut e = engine();
    let fired = (1..=20u16)
        .filter(|p| {
            kinds(&e.inspect(&flow(f64::from(*p) * 0.01, IT, PLC, *p))).contains(&"scan_ports")
        })
        .count();
    assert_eq!(fired, 11);
}

#[test]
fn flood_by_connection_rate_and_packet_rate() {
    let mut e = engine();
    let fired = (0..40)
        .filter(|i| kinds(&e.inspect(&flow(f64::from(*i) * 0.02, IT, PLC, 502))).contains(&"flood"))
        .count();
    assert_eq!(fired, 21);
    let mut big = flow(100.0, IT, "10.1.2.11", 502);
    big.fwd.packets = 10_000;
    big.duration_ms = 1000.0;
    assert!(kinds(&e.inspect(&big)).contains(&"flood"));
    // A bulk transfer at the same packet rate is not a flood.
    let mut bulk = flow(200.0, IT, "10.1.1.30", 445);
    bulk.fwd = DirStats {
        packets: 10_000,
        bytes: 14_000_000,
    };
    bulk.duration_ms = 1000.0;
    assert!(!kinds(&e.inspect(&bulk)).contains(&"flood"));
}

#[test]
fn port_scan_is_not_a_flood() {
    let mut e = engine();
    for p in 1..=200u16 {
        let f = e.inspect(&flow(f64::from(p) * 0.01, IT, PLC, p));
        assert!(!kinds(&f).contains(&"flood"), "port {p}: {f:?}");
    }
}

#[test]
fn rule_file_errors_name_the_rule_and_field() {
    let bad = DEFAULT_RULES.replace("technique = \"T0836\"", "technique = \"T9999\"");
    let err = RuleFile::parse(&bad)
        .expect_err("unknown technique rejected")
        .to_string();
    assert!(
        err.contains("setpoint_high_engineering_range") && err.contains("technique"),
        "{err}"
    );
    let bad = DEFAULT_RULES.replace("tag = \"tank_level\"", "tag = \"nope\"");
    let err = RuleFile::parse(&bad)
        .expect_err("unknown tag rejected")
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let err = RuleFile::parse("version = 1\nbogus = 3")
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn only_dataless_tcp_flows_count_as_probes() {
    let mut e = engine();
    // DNS lookups to many resolvers are UDP: not a host scan.
    for i in 0..30u8 {
        let mut f = flow(f64::from(i) * 0.1, IT, &format!("10.1.3.{i}"), 53);
        f.transport = Transport::Udp;
        assert!(e.inspect(&f).is_empty());
    }
    // Short polls carrying Modbus data to one PLC are not a flood.
    for i in 0..40 {
        let mut f = flow(10.0 + f64::from(i) * 0.02, HMI, PLC, 502);
        f.tcp_flags.psh = 2;
        assert!(!kinds(&e.inspect(&f)).contains(&"flood"), "poll {i}");
    }
}

#[test]
fn bulk_transfer_into_ot_zone() {
    let mut e = engine();
    // 20 MB pushed from an IT host to the engineering workstation.
    let mut up = flow(0.0, IT, EWS, 445);
    up.fwd = DirStats {
        packets: 14_000,
        bytes: 20_000_000,
    };
    up.tcp_flags.psh = 10;
    let f = e.inspect(&up);
    assert_eq!(kinds(&f), vec!["bulk_transfer"]);
    assert_eq!(f[0].technique.as_deref(), Some("T0867"));
    // The workstation downloading 20 MB from outside crosses the zone too.
    let mut down = flow(1.0, EWS, "10.1.3.5", 445);
    down.bwd = DirStats {
        packets: 14_000,
        bytes: 20_000_000,
    };
    down.tcp_flags.psh = 10;
    assert_eq!(kinds(&e.inspect(&down)), vec!["bulk_transfer"]);
    // Small transfers and transfers between IT hosts do not.
    let mut small = flow(2.0, IT, EWS, 445);
    small.fwd = DirStats {
        packets: 100,
        bytes: 2_000_000,
    };
    small.tcp_flags.psh = 10;
    assert!(e.inspect(&small).is_empty());
    let mut it = flow(3.0, IT, "10.1.3.5", 445);
    it.fwd = DirStats {
        packets: 14_000,
        bytes: 50_000_000,
    };
    it.tcp_flags.psh = 10;
    assert!(e.inspect(&it).is_empty());
}
