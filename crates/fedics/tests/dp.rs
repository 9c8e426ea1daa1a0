//! `fedics dp epsilon`: the accountant from the command line, against published values.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fedics");

fn epsilon(q: &str, sigma: &str, steps: &str, delta: &str) -> std::process::Output {
    Command::new(BIN)
        .args([
            "dp",
            "epsilon",
            "--sampling-rate",
            q,
            "--noise-multiplier",
            sigma,
        ])
        .args(["--steps", steps, "--delta", delta, "--json"])
        .output()
        .unwrap()
}

#[test]
fn prints_epsilon_and_order_matching_dp_accounting() {
    // dp-accounting 0.6 RDP figures (add-or-remove-one).
    for (q, sigma, steps, delta, expected) in [
        ("0.01", "1.1", "10000", "1e-5", 5.6320),
        ("1.0", "5.0", "10", "1e-5", 2.8137),
    ] {
        let out = epsilon(q, sigma, steps, delta);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let eps = v["epsilon"].as_f64().unwrap();
        assert!(
            (eps - expected).abs() / expected < 1e-3,
            "{q} {sigma} {steps}: {eps} vs {expected}"
        );
        assert!(v["order"].as_f64().unwrap() > 1.0);
    }
}

#[test]
fn refuses_invalid_parameters_naming_them() {
    let out = epsilon("1.5", "1.0", "10", "1e-5");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("q") || err.contains("sampling"), "{err}");
    let out = epsilon("0.1", "1.0", "10", "2");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("delta")
    );
}

#[test]
fn pld_flag_adds_the_tighter_pld_epsilon() {
    // dp-accounting PLD figure for the same parameters (add-or-remove-one): 2.5944.
    let out = Command::new(BIN)
        .args([
            "dp",
            "epsilon",
            "--sampling-rate",
            "1.0",
            "--noise-multiplier",
            "5.0",
        ])
        .args(["--steps", "10", "--delta", "1e-5", "--json", "--pld"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pld = v["pld_epsilon"].as_f64().unwrap();
    assert!((pld - 2.5944).abs() / 2.5944 < 2e-3, "{pld}");
    assert!(pld < v["epsilon"].as_f64().unwrap());
    // Without the flag the output is the RDP accountant's alone.
    let plain = epsilon("1.0", "5.0", "10", "1e-5");
    let v: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(v.get("pld_epsilon").is_none());
}
