//! The privacy-loss-distribution (PLD) accountant of the Poisson-subsampled Gaussian
//! mechanism: tighter than Rényi DP, as used by Google's `dp-accounting` (Koskela, Jälkö &
//! Honkela 2020; Meiser & Mohammadi 2018; Doroshenko et al. 2022, "Connect the Dots").
//!
//! One step's privacy loss `L = ln(P(x)/Q(x))`, `x ~ P`, is discretised on a grid of width
//! `h` by "connecting the dots" of its hockey-stick divergence (the discrete distribution
//! matches the true δ(ε) at every grid point and dominates it between them, and the mass
//! beyond the top point is an "infinite loss"), so every ε derived from it is an upper
//! bound. Composition is convolution (FFT), by repeated squaring; after every convolution
//! the tails below `tail_mass / 2` are truncated pessimistically (the upper tail becomes
//! infinite loss, the lower tail moves up into the lowest point kept). Then
//!
//! `δ(ε) = P[L = ∞] + Σ_{l > ε} P[L = l] · (1 − e^(ε − l))`,
//!
//! and ε for a target δ is the smallest ε with `δ(ε) ≤ δ`, solved exactly between grid
//! points from suffix sums.
//!
//! Add-or-remove-one adjacency: with `μ₀ = N(0, σ²)`, `μ₁ = N(1, σ²)` and the mixture
//! `μ_q = (1 − q) μ₀ + q μ₁`, *remove* compares `P = μ_q` with `Q = μ₀`, *add* compares
//! `P = μ₀` with `Q = μ_q`; the mechanism's ε is the larger of the two.

use std::f64::consts::SQRT_2;

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use super::DpError;
use super::rdp::{check_delta, check_q, check_sigma};
use super::special::{ln_erfc, log_add};

/// Discretisation and truncation of the PLD accountant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PldOptions {
    /// Grid width of the privacy loss (`dp-accounting`'s default: 1e-4).
    pub value_discretization_interval: f64,
    /// Probability mass that each truncation may move (half from each tail).
    pub tail_mass: f64,
}

impl Default for PldOptions {
    fn default() -> Self {
        Self {
            value_discretization_interval: 1e-4,
            tail_mass: 1e-15,
        }
    }
}

impl PldOptions {
    fn check(&self) -> Result<(), DpError> {
        let h = self.value_discretization_interval;
        if !(h.is_finite() && h > 0.0 && h <= 1.0) {
            return Err(DpError::invalid(
                "value_discretization_interval",
                h,
                "a grid width in (0, 1]",
            ));
        }
        let t = self.tail_mass;
        if !(t.is_finite() && t > 0.0 && t < 1e-3) {
            return Err(DpError::invalid("tail_mass", t, "a mass in (0, 1e-3)"));
        }
        Ok(())
    }
}

/// Largest grid (points) a distribution may span: beyond it the accountant refuses rather
/// than exhaust memory (ε is then far beyond any useful budget anyway).
const MAX_POINTS: usize = 1 << 25;

/// Below this length a convolution is done directly, above it by FFT.
const DIRECT_CONVOLUTION: usize = 64;

/// A discretised privacy-loss distribution: mass `p[i]` at loss `(lo + i)·h`, and the mass
/// of an infinite loss.
#[derive(Debug, Clone, PartialEq)]
struct Pmf {
    lo: i64,
    p: Vec<f64>,
    infinite: f64,
}

/// `P[N(0, 1) > x]`, accurate in both tails.
fn normal_sf(x: f64) -> f64 {
    if x == f64::INFINITY {
        0.0
    } else if x == f64::NEG_INFINITY {
        1.0
    } else {
        0.5 * ln_erfc(x / SQRT_2).exp()
    }
}

/// The "connect the dots" discretisation (Doroshenko et al. 2022) of a privacy loss on
/// the grid points `k·h`, `k` in `k_lo..=k_hi`, from the pair's hockey-stick divergence
/// `delta(ε)`: the masses are chosen so that the discrete distribution's `δ(ε)` equals the
/// true one at every grid point and, between them, lies above it (the true curve is convex
/// in `e^ε`). The mass above the top point becomes the infinite-loss mass; what is left
/// goes to the lowest point. Unlike rounding every loss up, the error does not grow with
/// the number of composed steps.
fn connect_the_dots(
    delta: impl Fn(f64) -> f64,
    (k_lo, k_hi): (i64, i64),
    h: f64,
) -> Result<Pmf, DpError> {
    let n = i128::from(k_hi) - i128::from(k_lo) + 1;
    if !(1..=MAX_POINTS as i128).contains(&n) {
        return Err(DpError::InvalidState(format!(
            "one step's privacy loss spans {n} grid points of width {h} (at most {MAX_POINTS})"
        )));
    }
    let n = n as usize;
    let eps = |i: usize| (k_lo + i as i64) as f64 * h;
    let infinite = delta(eps(n - 1)).clamp(0.0, 1.0);
    let mut p = vec![0.0; n];
    // A = Σ p_j, B = Σ p_j·e^(−ε_j) over the points above the current one.
    let (mut a, mut b) = (0.0, 0.0);
    let mut upper = infinite;
    let scale = -(-h).exp_m1(); // 1 − e^(−h)
    for i in (1..n).rev() {
        let below = delta(eps(i - 1)).clamp(upper, 1.0);
        let m = ((below - infinite - a + eps(i - 1).exp() * b) / scale).max(0.0);
        p[i] = m;
        a += m;
        b += m * (-eps(i)).exp();
        upper = below;
    }
    p[0] = (1.0 - infinite - a).max(0.0);
    Ok(Pmf {
        lo: k_lo,
        p,
        infinite,
    }
    .truncated(0.0))
}

/// `ln(1 − q + q·e^z)`.
fn mixture_log_ratio(q: f64, z: f64) -> f64 {
    if q == 1.0 {
        z
    } else {
        log_add((-q).ln_1p(), q.ln() + z)
    }
}

/// The `z` with `ln(1 − q + q·e^z) = l` (`-∞` when `l ≤ ln(1 − q)`).
fn mixture_log_ratio_inverse(q: f64, l: f64) -> f64 {
    if q == 1.0 {
        return l;
    }
    let r = l.exp_m1() / q; // e^z − 1
    if r <= -1.0 {
        f64::NEG_INFINITY
    } else {
        r.ln_1p()
    }
}

/// Standard deviations beyond which a normal's tail holds less than `tail / 4`.
fn tail_width(tail: f64) -> f64 {
    let mut k = 1.0;
    while normal_sf(k) > tail / 4.0 && k < 40.0 {
        k += 0.05;
    }
    k
}

/// One step's PLDs (remove, add).
fn one_step(q: f64, sigma: f64, o: &PldOptions) -> Result<(Pmf, Pmf), DpError> {
    let s2 = sigma * sigma;
    let h = o.value_discretization_interval;
    let k = tail_width(o.tail_mass);
    // z = (2x − 1) / 2σ² is ln(μ₁(x)/μ₀(x)); x(z) its inverse.
    let z = |x: f64| (2.0 * x - 1.0) / (2.0 * s2);
    let x_of = |z: f64| s2 * z + 0.5;
    let sf = |x: f64, mu: f64| normal_sf((x - mu) / sigma);
    // Saturating casts: a non-finite bound makes a span the check below refuses.
    let grid = |l_lo: f64, l_hi: f64| ((l_lo / h).floor() as i64, (l_hi / h).ceil() as i64);
    // Remove: P = μ_q, Q = μ₀, L = ln(1 − q + q e^z) increases with x, so L > ε ⟺ x > x_ε
    // and δ(ε) = P[x > x_ε] − e^ε Q[x > x_ε].
    let loss = |x: f64| mixture_log_ratio(q, z(x));
    let remove = connect_the_dots(
        |e| {
            let x = x_of(mixture_log_ratio_inverse(q, e));
            let sp = (1.0 - q) * sf(x, 0.0) + q * sf(x, 1.0);
            sp - e.exp() * sf(x, 0.0)
        },
        grid(loss(-k * sigma), loss(1.0 + k * sigma)),
        h,
    )?;
    // Add: P = μ₀, Q = μ_q, L = −ln(1 − q + q e^z) decreases with x, so L > ε ⟺ x < x_ε
    // and δ(ε) = P[x < x_ε] − e^ε Q[x < x_ε].
    let add = connect_the_dots(
        |e| {
            let x = x_of(mixture_log_ratio_inverse(q, -e));
            let cdf = |mu: f64| normal_sf((mu - x) / sigma);
            cdf(0.0) - e.exp() * ((1.0 - q) * cdf(0.0) + q * cdf(1.0))
        },
        grid(-loss(k * sigma), -loss(-k * sigma)),
        h,
    )?;
    Ok((remove, add))
}

impl Pmf {
    /// Drops each tail up to `tail / 2`: the lower into the lowest point kept, the upper
    /// into the infinite mass (both only ever raise the losses). Also trims zeros.
    fn truncated(mut self, tail: f64) -> Pmf {
        let budget = tail / 2.0;
        let mut start = 0;
        let mut low = 0.0;
        while start + 1 < self.p.len() && low + self.p[start] <= budget {
            low += self.p[start];
            start += 1;
        }
        let mut end = self.p.len();
        let mut high = 0.0;
        while end > start + 1 && high + self.p[end - 1] <= budget {
            high += self.p[end - 1];
            end -= 1;
        }
        self.p.truncate(end);
        self.p.drain(..start);
        if let Some(first) = self.p.first_mut() {
            *first += low;
        }
        self.lo += start as i64;
        self.infinite += high;
        self
    }

    /// The distribution of the sum of independent losses from `self` and `other`.
    fn convolve(&self, other: &Pmf, tail: f64, fft: &mut FftPlanner<f64>) -> Result<Pmf, DpError> {
        let n = self.p.len() + other.p.len() - 1;
        if n > MAX_POINTS {
            return Err(DpError::InvalidState(format!(
                "the composed privacy loss spans {n} grid points (at most {MAX_POINTS}); \
                 use a coarser grid"
            )));
        }
        let p = if self.p.len().min(other.p.len()) <= DIRECT_CONVOLUTION {
            let mut out = vec![0.0; n];
            for (i, a) in self.p.iter().enumerate() {
                for (j, b) in other.p.iter().enumerate() {
                    out[i + j] += a * b;
                }
            }
            out
        } else {
            let len = n.next_power_of_two();
            let forward = fft.plan_fft_forward(len);
            let inverse = fft.plan_fft_inverse(len);
            let pad = |v: &[f64]| {
                let mut c: Vec<Complex<f64>> = v.iter().map(|&x| Complex::new(x, 0.0)).collect();
                c.resize(len, Complex::new(0.0, 0.0));
                c
            };
            let (mut a, mut b) = (pad(&self.p), pad(&other.p));
            forward.process(&mut a);
            forward.process(&mut b);
            for (x, y) in a.iter_mut().zip(&b) {
                *x *= y;
            }
            inverse.process(&mut a);
            let scale = 1.0 / len as f64;
            // Rounding leaves values of order 1e-17 around the true ones: negatives are 0.
            a[..n].iter().map(|c| (c.re * scale).max(0.0)).collect()
        };
        Ok(Pmf {
            lo: self.lo + other.lo,
            p,
            infinite: 1.0 - (1.0 - self.infinite) * (1.0 - other.infinite),
        }
        .truncated(tail))
    }

    /// `steps`-fold composition with itself, by repeated squaring.
    fn self_compose(&self, steps: u64, tail: f64) -> Result<Pmf, DpError> {
        let mut fft = FftPlanner::new();
        let mut result: Option<Pmf> = None;
        let mut base = self.clone();
        let mut k = steps;
        while k > 0 {
            if k & 1 == 1 {
                result = Some(match result {
                    None => base.clone(),
                    Some(r) => r.convolve(&base, tail, &mut fft)?,
                });
            }
            k >>= 1;
            if k > 0 {
                base = base.convolve(&base, tail, &mut fft)?;
            }
        }
        result.ok_or_else(|| DpError::InvalidState("composition of zero steps".into()))
    }

    /// The smallest ε ≥ 0 with `δ(ε) ≤ delta` (∞ when the infinite mass alone exceeds it).
    fn epsilon(&self, h: f64, delta: f64) -> f64 {
        if self.infinite > delta {
            return f64::INFINITY;
        }
        // Suffix sums over the points above ε: S1 = Σ p, S2 = Σ p·e^(−l).
        let (mut s1, mut s2) = (0.0, 0.0);
        for i in (0..self.p.len()).rev() {
            let l = (self.lo + i as i64) as f64 * h;
            let below = if i == 0 {
                f64::NEG_INFINITY
            } else {
                (self.lo + i as i64 - 1) as f64 * h
            };
            if l <= 0.0 {
                break;
            }
            s1 += self.p[i];
            s2 += self.p[i] * (-l).exp();
            // On [max(below, 0), l): δ(ε) = inf + S1 − e^ε·S2 (points ≥ l are above ε).
            let need = self.infinite + s1 - delta;
            if need <= 0.0 {
                continue;
            }
            let eps = (need / s2).ln();
            if eps >= below.max(0.0) {
                return eps.min(l);
            }
        }
        // δ(0) ≤ delta.
        0.0
    }
}

/// ε of `steps` steps of the Poisson-subsampled Gaussian mechanism (sampling rate `q`,
/// noise multiplier `sigma`, add-or-remove-one adjacency) at `delta`, by the PLD accountant.
///
/// # Errors
///
/// [`DpError::InvalidParameter`] for parameters outside their domain;
/// [`DpError::InvalidState`] when the distribution would exceed the grid limit (a very
/// large ε: use a coarser `value_discretization_interval`).
pub fn pld_epsilon(
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
    options: PldOptions,
) -> Result<f64, DpError> {
    let q = check_q(q)?;
    let sigma = check_sigma(sigma)?;
    let delta = check_delta(delta)?;
    options.check()?;
    if steps == 0 || q == 0.0 {
        return Ok(0.0);
    }
    let h = options.value_discretization_interval;
    let (remove, add) = one_step(q, sigma, &options)?;
    let tail = options.tail_mass;
    let remove = remove.self_compose(steps, tail)?.epsilon(h, delta);
    let add = add.self_compose(steps, tail)?.epsilon(h, delta);
    Ok(remove.max(add))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// δ(ε) of the Gaussian mechanism with sensitivity/σ = μ (Balle & Wang 2018), exact.
    fn gaussian_delta(mu: f64, eps: f64) -> f64 {
        normal_sf(eps / mu - mu / 2.0) - eps.exp() * normal_sf(eps / mu + mu / 2.0)
    }

    fn gaussian_epsilon(mu: f64, delta: f64) -> f64 {
        let (mut lo, mut hi) = (0.0, 500.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if gaussian_delta(mu, mid) > delta {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }

    #[test]
    fn one_step_distributions_hold_all_the_mass() {
        for (q, sigma) in [(0.01, 1.1), (0.5, 0.8), (1.0, 2.0)] {
            let (r, a) = one_step(q, sigma, &PldOptions::default()).unwrap();
            for pmf in [r, a] {
                let total: f64 = pmf.p.iter().sum::<f64>() + pmf.infinite;
                assert!((total - 1.0).abs() < 1e-12, "{q} {sigma}: {total}");
                assert!(pmf.p.iter().all(|&x| x >= 0.0));
            }
        }
    }

    #[test]
    fn without_subsampling_the_pld_is_the_exact_gaussian_bound() {
        // q = 1: T steps of σ compose to one Gaussian mechanism with μ = √T/σ, whose ε is
        // known in closed form; the pessimistic grid may only be above it, and barely.
        for (sigma, steps, delta) in [(5.0, 10, 1e-5), (1.1, 100, 1e-5), (2.0, 1, 1e-6)] {
            let exact = gaussian_epsilon((steps as f64).sqrt() / sigma, delta);
            let pld = pld_epsilon(1.0, sigma, steps, delta, PldOptions::default()).unwrap();
            assert!(
                pld >= exact - 1e-9,
                "σ={sigma} T={steps}: {pld} < exact {exact}"
            );
            assert!(
                pld <= exact * 1.002 + 1e-3,
                "σ={sigma} T={steps}: {pld} vs {exact}"
            );
        }
    }

    #[test]
    fn matches_dp_accounting_pld_on_the_issue_table() {
        // (q, σ, steps, δ, dp-accounting PLD ε), add-or-remove-one.
        for (q, sigma, steps, delta, reference) in [
            (0.01, 0.5, 1, 1e-5, 3.0254),
            (0.05, 2.0, 1000, 1e-5, 3.6997),
            (0.1, 0.8, 100, 1e-6, 12.525),
            (1.0, 5.0, 10, 1e-5, 2.5944),
            (0.01, 1.1, 10000, 1e-5, 5.1926),
            (1.0, 1.1, 100, 1e-5, 79.275),
        ] {
            let ours = pld_epsilon(q, sigma, steps, delta, PldOptions::default()).unwrap();
            let rel = (ours - reference).abs() / reference;
            assert!(
                rel < 2e-3,
                "q={q} σ={sigma} T={steps}: {ours} vs {reference}"
            );
            let rdp = crate::dp::epsilon(q, sigma, steps, delta).unwrap().epsilon;
            assert!(ours < rdp, "PLD {ours} is not tighter than RDP {rdp}");
        }
    }

    #[test]
    fn edge_cases_and_bad_parameters() {
        let o = PldOptions::default();
        assert_eq!(pld_epsilon(0.0, 1.0, 10, 1e-5, o).unwrap(), 0.0);
        assert_eq!(pld_epsilon(0.1, 1.0, 0, 1e-5, o).unwrap(), 0.0);
        // More noise, fewer steps, larger δ: never a larger ε.
        let base = pld_epsilon(0.1, 1.0, 10, 1e-5, o).unwrap();
        assert!(pld_epsilon(0.1, 2.0, 10, 1e-5, o).unwrap() < base);
        assert!(pld_epsilon(0.1, 1.0, 5, 1e-5, o).unwrap() < base);
        assert!(pld_epsilon(0.1, 1.0, 10, 1e-3, o).unwrap() < base);
        assert!(pld_epsilon(1.5, 1.0, 1, 1e-5, o).is_err());
        assert!(pld_epsilon(0.1, 0.0, 1, 1e-5, o).is_err());
        assert!(pld_epsilon(0.1, 1.0, 1, 0.0, o).is_err());
        let coarse = PldOptions {
            value_discretization_interval: 0.0,
            ..o
        };
        assert!(pld_epsilon(0.1, 1.0, 1, 1e-5, coarse).is_err());
    }
}
