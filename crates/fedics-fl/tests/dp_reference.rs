//! The RDP accountant against Google's `dp-accounting` 0.6 on a grid of
//! (q, σ, steps, δ): our ε must be within 1% of dp-accounting's RDP ε, or tighter than it
//! but never below its PLD ε (PLD is near-exact: no correct bound lies under it). Where we
//! are tighter it is at fractional orders that dp-accounting 0.6 leaves out (its series
//! stops after 1000 terms and adds the terms' absolute values); the one-step RDP at such
//! orders is checked against numerical integration (mpmath, 40 digits) to 1e-5.
//!
//! The reference values are computed at test time by `tests/dp_reference.py` in a virtual
//! environment with `dp-accounting==0.6.*` from PyPI: `$FEDICS_DP_VENV`, or
//! `<workspace>/target/dp-venv`, created (python3 -m venv + pip) when missing. Only when
//! python3 or the install is unavailable is the test skipped, with a message saying why.

use std::path::{Path, PathBuf};
use std::process::Command;

use fedics_fl::dp::{epsilon, rdp_poisson_gaussian};
use serde::Deserialize;

#[derive(Deserialize)]
struct Point {
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
    rdp_epsilon: Option<f64>,
    rdp_order: f64,
    pld_epsilon: Option<f64>,
}

#[derive(Deserialize)]
struct ExactRdp {
    q: f64,
    sigma: f64,
    order: f64,
    rdp: f64,
}

#[derive(Deserialize)]
struct Reference {
    epsilon: Vec<Point>,
    rdp: Vec<ExactRdp>,
}

fn venv_dir() -> PathBuf {
    match std::env::var_os("FEDICS_DP_VENV") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dp-venv"),
    }
}

fn has_dp_accounting(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import dp_accounting, dp_accounting.pld, dp_accounting.rdp",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The venv's python with dp-accounting importable, setting it up if needed; `Err` says why
/// it could not be.
fn python_with_dp_accounting() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    if python.exists() && has_dp_accounting(&python) {
        return Ok(python);
    }
    if !python.exists() {
        let out = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .output()
            .map_err(|e| format!("python3 not runnable: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "python3 -m venv {} failed: {}",
                venv.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    eprintln!(
        "installing dp-accounting==0.6.* into {} ...",
        venv.display()
    );
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "dp-accounting==0.6.*"])
        .output()
        .map_err(|e| format!("pip not runnable: {e}"))?;
    if !out.status.success() || !has_dp_accounting(&python) {
        return Err(format!(
            "pip install dp-accounting==0.6.* failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(python)
}

#[test]
fn rdp_epsilon_matches_dp_accounting_on_a_grid() {
    let python = match python_with_dp_accounting() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIPPED dp_reference: no Python with dp-accounting ({why})");
            return;
        }
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dp_reference.py");
    let out = Command::new(&python)
        .arg(&script)
        .output()
        .expect("run dp_reference.py");
    assert!(
        out.status.success(),
        "dp_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Reference = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    let points = &reference.epsilon;
    assert!(points.len() >= 100, "only {} points", points.len());
    assert!(!reference.rdp.is_empty());

    let mut failures = Vec::new();
    let mut max_rdp_rel = 0.0_f64;
    for x in &reference.rdp {
        let ours = rdp_poisson_gaussian(x.q, x.sigma, x.order).expect("valid parameters");
        max_rdp_rel = max_rdp_rel.max((ours - x.rdp).abs() / x.rdp);
        if (ours - x.rdp).abs() > 1e-5 * x.rdp + 1e-12 {
            failures.push(format!(
                "one-step RDP q={} σ={} α={}: ours {ours:e}, numerical integration {:e}",
                x.q, x.sigma, x.order, x.rdp
            ));
        }
    }
    println!(
        "dp_reference: one-step RDP at {} fractional (q, σ, α) points, max relative deviation \
         from numerical integration {max_rdp_rel:.2e}",
        reference.rdp.len()
    );

    let (mut max_rel, mut max_rel_within, mut within, mut tighter) = (0.0_f64, 0.0_f64, 0, 0);
    for p in points {
        let ours = epsilon(p.q, p.sigma, p.steps, p.delta).expect("valid parameters");
        let label = format!(
            "q={} σ={} T={} δ={}: ours {:.6} (α={}), dp-accounting RDP {:?} (α={}), PLD {:?}",
            p.q,
            p.sigma,
            p.steps,
            p.delta,
            ours.epsilon,
            ours.order,
            p.rdp_epsilon,
            p.rdp_order,
            p.pld_epsilon
        );
        if let Some(pld) = p.pld_epsilon
            && ours.epsilon < pld
        {
            failures.push(format!("below PLD: {label}"));
            continue;
        }
        let Some(rdp) = p.rdp_epsilon else {
            // dp-accounting found no finite bound; anything not below PLD is fine.
            continue;
        };
        let rel = (ours.epsilon - rdp) / rdp.max(1e-12);
        max_rel = max_rel.max(rel.abs());
        if (ours.epsilon - rdp).abs() <= 0.01 * rdp + 1e-9 {
            within += 1;
            max_rel_within = max_rel_within.max(rel.abs());
        } else if ours.epsilon < rdp && p.pld_epsilon.is_some() {
            // Tighter than dp-accounting (its fractional-order series adds |terms| and gives
            // up after 1000 of them) but, as checked above, not below PLD.
            tighter += 1;
            println!(
                "tighter than dp-accounting by {:.2}%: {label}",
                -100.0 * rel
            );
        } else {
            failures.push(format!("off by {:.3}%: {label}", 100.0 * rel));
        }
    }
    println!(
        "dp_reference: {} points, {within} within 1% of dp-accounting RDP, {tighter} tighter \
         (not below PLD); max |relative deviation| {:.4}% among those within, {:.2}% overall",
        points.len(),
        100.0 * max_rel_within,
        100.0 * max_rel
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
