//! Loader tests. The real ATT&CK for ICS bundle is read from the shared data directory; the
//! tests that need it print a note and pass when it is absent.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use fedics_core::attack::{TACTICS, TECHNIQUES};
use fedics_intel::{AttackBundle, IntelError};

const BUNDLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/mitre/ics-attack.json.gz"
);

fn real_bundle() -> Option<&'static AttackBundle> {
    static B: OnceLock<Option<AttackBundle>> = OnceLock::new();
    B.get_or_init(|| {
        let path = Path::new(BUNDLE);
        if !path.exists() {
            return None;
        }
        let t = Instant::now();
        let b = AttackBundle::load(path).expect("real bundle loads");
        println!("loaded {BUNDLE} in {:?}", t.elapsed());
        Some(b)
    })
    .as_ref()
}

macro_rules! bundle_or_skip {
    () => {
        match real_bundle() {
            Some(b) => b,
            None => {
                println!("note: {BUNDLE} not found; skipping");
                return;
            }
        }
    };
}

#[test]
fn real_bundle_version_counts_and_tactic_order() {
    let b = bundle_or_skip!();
    assert_eq!(b.version(), Some("18.1"));
    assert_eq!(b.techniques().count(), 83);
    assert_eq!(b.technique_count(), 83);
    assert_eq!(b.skipped(), 0);
    let ids: Vec<&str> = b.tactics().iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "TA0108", "TA0104", "TA0110", "TA0111", "TA0103", "TA0102", "TA0109", "TA0100",
            "TA0101", "TA0107", "TA0106", "TA0105"
        ]
    );
    for (i, t) in b.tactics().iter().enumerate() {
        assert_eq!(usize::from(t.order), i);
    }
    assert_eq!(b.tactic("discovery").map(|t| t.id.as_str()), Some("TA0102"));
    // Deprecated techniques are not served.
    assert!(b.techniques().all(|t| t.id.starts_with("T0")));
}

#[test]
fn t0846_has_name_tactic_mitigations_and_detection() {
    let b = bundle_or_skip!();
    let t = b.technique("T0846").expect("T0846 present");
    assert_eq!(t.name, "Remote System Discovery");
    assert_eq!(t.tactics, ["TA0102"]);
    assert!(t.stix_id.starts_with("attack-pattern--"));
    assert!(!t.description.is_empty());
    assert_eq!(
        t.url.as_deref(),
        Some("https://attack.mitre.org/techniques/T0846")
    );
    assert!(!t.mitigations.is_empty());
    for m in &t.mitigations {
        assert!(
            m.id.as_deref().is_some_and(|id| id.starts_with('M')),
            "{m:?}"
        );
        assert!(!m.name.is_empty());
    }
    assert!(!t.detection.is_empty());
    let d = &t.detection[0];
    assert!(d.id.as_deref().is_some_and(|id| id.starts_with("DET")));
    assert!(!d.name.is_empty());
    assert!(d.analytics.iter().all(|a| !a.description.is_empty()));
    assert!(b.technique("T9999").is_none());
    // Every active technique has exactly one detection strategy in v18.1.
    assert!(b.techniques().all(|t| t.detection.len() == 1));
    assert!(b.techniques().any(|t| !t.assets.is_empty()));
}

/// Guards `fedics_core::attack`'s compact table: ids, names and tactics (in matrix order)
/// must equal the bundle's active techniques exactly.
#[test]
fn bundle_equals_core_table() {
    let b = bundle_or_skip!();
    let from_bundle: Vec<(String, String, Vec<String>)> = b
        .techniques()
        .map(|t| (t.id.clone(), t.name.clone(), t.tactics.clone()))
        .collect();
    let mut from_table: Vec<(String, String, Vec<String>)> = TECHNIQUES
        .iter()
        .map(|t| {
            (
                t.id.to_string(),
                t.name.to_string(),
                t.tactics.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect();
    from_table.sort();
    assert_eq!(from_bundle, from_table);
    let tactics: Vec<(&str, &str, &str, u8)> = b
        .tactics()
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.shortname.as_str(),
                t.name.as_str(),
                t.order,
            )
        })
        .collect();
    let core: Vec<(&str, &str, &str, u8)> = TACTICS
        .iter()
        .map(|t| (t.id, t.shortname, t.name, t.order))
        .collect();
    assert_eq!(tactics, core);
}

#[test]
fn co_use_is_symmetric_and_positive_somewhere() {
    let b = bundle_or_skip!();
    let ids: Vec<&str> = b.techniques().map(|t| t.id.as_str()).collect();
    let mut positive = 0;
    for a in &ids {
        for c in &ids {
            assert_eq!(b.co_use(a, c), b.co_use(c, a), "{a} {c}");
            if a != c && b.co_use(a, c) > 0 {
                positive += 1;
            }
        }
        // The diagonal is the number of users; no pair exceeds it.
        let users = b.users_of(a).len() as u32;
        assert_eq!(b.co_use(a, a), users);
        for (n, count) in b.co_use_neighbours(a) {
            assert!(count > 0 && count <= users, "{a} {n}");
            assert_ne!(&n, a);
        }
    }
    assert!(positive > 0);
    assert_eq!(b.co_use("T0846", "T9999"), 0);
    assert!(b.co_use_neighbours("T9999").is_empty());
    let nb = b.co_use_neighbours("T0846");
    assert!(nb.windows(2).all(|w| w[0].1 >= w[1].1));
}

#[test]
fn users_include_groups_software_and_attributed_campaigns() {
    let b = bundle_or_skip!();
    let all: Vec<_> = b.techniques().flat_map(|t| b.users_of(&t.id)).collect();
    for kind in ["intrusion-set", "malware", "campaign"] {
        assert!(all.iter().any(|u| u.stix_type == kind), "{kind}");
    }
    // Sandworm Team is credited with techniques of the Ukraine campaigns attributed to it.
    assert!(
        all.iter()
            .any(|u| u.name == "Sandworm Team" && !u.direct && u.stix_type == "intrusion-set")
    );
    // Deprecated or revoked users never appear.
    assert!(all.iter().all(|u| u.attack_id.is_some()));
}

#[test]
fn gzip_and_plain_json_load_the_same() {
    let path = Path::new(BUNDLE);
    if !path.exists() {
        println!("note: {BUNDLE} not found; skipping");
        return;
    }
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut plain)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A misleading extension: detection is by magic bytes.
    let json_path = dir.path().join("bundle.json.gz");
    std::fs::File::create(&json_path)
        .unwrap()
        .write_all(&plain)
        .unwrap();
    let from_plain = AttackBundle::load(&json_path).expect("plain JSON loads");
    let from_gz = AttackBundle::load(path).expect("gzip loads");
    let from_reader = AttackBundle::from_reader(std::fs::File::open(path).unwrap()).unwrap();
    assert_eq!(from_plain.version(), from_gz.version());
    let a: Vec<_> = from_plain.techniques().cloned().collect();
    let b: Vec<_> = from_gz.techniques().cloned().collect();
    let c: Vec<_> = from_reader.techniques().cloned().collect();
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(from_plain.tactics(), from_gz.tactics());
}

#[test]
fn garbage_input_is_an_error_not_a_panic() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"hello world".to_vec()),
        ("binary", (0..=255u8).cycle().take(4096).collect()),
        ("gzip magic only", vec![0x1f, 0x8b]),
        ("truncated gzip", {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(br#"{"type":"bundle","objects":[]}"#).unwrap();
            let v = e.finish().unwrap();
            v[..v.len() / 2].to_vec()
        }),
        ("gzip of garbage", {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"not json {").unwrap();
            e.finish().unwrap()
        }),
        (
            "truncated json",
            br#"{"type":"bundle","objects":[{"type":"#.to_vec(),
        ),
        ("array", b"[1,2,3]".to_vec()),
        ("number", b"42".to_vec()),
        (
            "wrong type",
            br#"{"type":"indicator","objects":[]}"#.to_vec(),
        ),
        ("type not string", br#"{"type":7,"objects":[]}"#.to_vec()),
        ("no type", br#"{"objects":[]}"#.to_vec()),
        ("no objects", br#"{"type":"bundle"}"#.to_vec()),
        (
            "objects not array",
            br#"{"type":"bundle","objects":{}}"#.to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let err = AttackBundle::from_slice(&bytes).expect_err(name);
        let msg = err.to_string();
        println!("{name}: {msg}");
        assert!(!msg.is_empty());
        match name {
            "text" | "binary" | "truncated json" => {
                assert!(
                    matches!(err, IntelError::Json { line: 1, .. }),
                    "{name}: {err:?}"
                );
                assert!(msg.contains("line 1, column"), "{msg}");
            }
            "gzip of garbage" => {
                assert!(matches!(err, IntelError::Json { .. }), "{name}: {err:?}");
                assert!(msg.contains("gzip-decompressed"), "{msg}");
            }
            "gzip magic only" | "truncated gzip" => {
                assert!(matches!(err, IntelError::Gzip(_)), "{name}: {err:?}")
            }
            "array" | "number" | "wrong type" | "type not string" | "no type" | "no objects"
            | "objects not array" => {
                assert!(matches!(err, IntelError::NotABundle(_)), "{name}: {err:?}")
            }
            _ => {}
        }
    }
    let missing = Path::new("/nonexistent/fedics/ics-attack.json.gz");
    let err = AttackBundle::load(missing).unwrap_err();
    assert!(matches!(err, IntelError::NotFound { .. }));
    assert!(
        err.to_string()
            .contains("/nonexistent/fedics/ics-attack.json.gz")
    );
}

#[test]
fn malformed_objects_are_skipped_and_counted() {
    let json = r#"{
      "type": "bundle", "id": "bundle--1",
      "objects": [
        {"type": "x-mitre-collection", "id": "x-mitre-collection--1", "x_mitre_version": "1.0"},
        {"type": "x-mitre-tactic", "id": "x-mitre-tactic--a", "name": "Discovery",
         "x_mitre_shortname": "discovery",
         "external_references": [{"source_name": "mitre-attack", "external_id": "TA0102"}]},
        {"type": "x-mitre-tactic", "id": "x-mitre-tactic--b", "name": "Impact",
         "x_mitre_shortname": "impact",
         "external_references": [{"source_name": "mitre-attack", "external_id": "TA0105"}]},
        {"type": "x-mitre-matrix", "id": "x-mitre-matrix--1",
         "tactic_refs": ["x-mitre-tactic--b", "x-mitre-tactic--a"]},
        {"type": "attack-pattern", "id": "attack-pattern--1", "name": "Scan",
         "kill_chain_phases": [{"kill_chain_name": "mitre-ics-attack", "phase_name": "impact"},
                               {"kill_chain_name": "mitre-ics-attack", "phase_name": "discovery"}],
         "external_references": [{"source_name": "mitre-attack", "external_id": "T0001",
                                  "url": "https://example.org/T0001"}]},
        {"type": "attack-pattern", "id": "attack-pattern--2", "name": "Wreck",
         "kill_chain_phases": [{"kill_chain_name": "mitre-ics-attack", "phase_name": "impact"}],
         "external_references": [{"source_name": "mitre-attack", "external_id": "T0002"}]},
        {"type": "attack-pattern", "id": "attack-pattern--3", "name": "Old",
         "x_mitre_deprecated": true, "external_references": []},
        {"type": "attack-pattern", "id": "attack-pattern--bad", "name": 17},
        {"type": "attack-pattern", "id": "attack-pattern--noid", "name": "No id"},
        "not an object",
        {"type": "relationship", "id": "relationship--bad", "relationship_type": "uses"},
        {"type": "x-custom-thing", "id": "x-custom-thing--1", "name": 5},
        {"type": "malware", "id": "malware--1", "name": "Bad Tool"},
        {"type": "intrusion-set", "id": "intrusion-set--1", "name": "Crew"},
        {"type": "campaign", "id": "campaign--1", "name": "Op"},
        {"type": "relationship", "id": "relationship--1", "relationship_type": "uses",
         "source_ref": "malware--1", "target_ref": "attack-pattern--1"},
        {"type": "relationship", "id": "relationship--2", "relationship_type": "uses",
         "source_ref": "malware--1", "target_ref": "attack-pattern--2"},
        {"type": "relationship", "id": "relationship--3", "relationship_type": "uses",
         "source_ref": "campaign--1", "target_ref": "attack-pattern--2"},
        {"type": "relationship", "id": "relationship--4", "relationship_type": "uses",
         "source_ref": "campaign--1", "target_ref": "attack-pattern--1"},
        {"type": "relationship", "id": "relationship--5", "relationship_type": "attributed-to",
         "source_ref": "campaign--1", "target_ref": "intrusion-set--1"},
        {"type": "relationship", "id": "relationship--6", "relationship_type": "uses",
         "source_ref": "intrusion-set--1", "target_ref": "attack-pattern--3"}
      ]
    }"#;
    let b = AttackBundle::from_slice(json.as_bytes()).expect("loads despite bad objects");
    // name 17, missing ATT&CK id, a non-object, relationship without refs.
    assert_eq!(b.skipped(), 4);
    assert_eq!(b.version(), Some("1.0"));
    let ids: Vec<&str> = b.tactics().iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["TA0105", "TA0102"]);
    let t = b.technique("T0001").unwrap();
    assert_eq!(t.tactics, ["TA0105", "TA0102"]);
    assert_eq!(t.url.as_deref(), Some("https://example.org/T0001"));
    assert_eq!(b.techniques().count(), 2);
    // Malware and campaign use both; the group inherits the campaign's usage; the deprecated
    // technique is not counted.
    assert_eq!(b.co_use("T0001", "T0002"), 3);
    let users = b.users_of("T0002");
    let names: Vec<(&str, bool)> = users.iter().map(|u| (u.name.as_str(), u.direct)).collect();
    assert_eq!(names, [("Op", true), ("Crew", false), ("Bad Tool", true)]);
}
