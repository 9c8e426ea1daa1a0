//! Rényi-DP accountant of the Poisson-subsampled Gaussian mechanism.
//!
//! # The mechanism
//!
//! Each step samples every record (here: every site) independently with probability `q`,
//! sums the sampled records' contributions, each clipped to L2 norm `C`, and adds
//! `N(0, σ²C²)` noise (σ is the *noise multiplier*). Neighbouring datasets differ by adding or
//! removing one record (the add-or-remove-one relation of Google's `dp-accounting` and
//! Opacus).
//!
//! # RDP of one step
//!
//! Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
//! Mechanism" (arXiv:1908.10530): with `μ₀ = N(0, σ²)`, `μ₁ = N(1, σ²)` and
//! `μ = (1 − q) μ₀ + q μ₁`, the RDP of order α is `ε(α) = ln(A_α) / (α − 1)` where
//!
//! ```text
//! A_α = E_{z∼μ₀} [ (μ(z) / μ₀(z))^α ]
//! ```
//!
//! * integer α (their §3.2): the binomial expansion is finite and exact,
//!   `A_α = Σ_{i=0}^{α} C(α, i) (1 − q)^(α−i) qⁱ exp((i² − i) / (2σ²))`,
//!   summed here in log space;
//! * fractional α (their §3.3): split the integral at
//!   `z₀ = σ² ln(1/q − 1) + ½`, where both terms of `μ/μ₀ = (1−q) + q e^((2z−1)/(2σ²))` are
//!   equal, and expand each side in the convergent generalized binomial series:
//!   `A_α = Σ_{i≥0} C(α,i) (1−q)^(α−i) qⁱ e^((i²−i)/(2σ²)) · ½ erfc((i − z₀)/(√2 σ))
//!        + Σ_{i≥0} C(α,i) q^(α−i) (1−q)ⁱ e^((j²−j)/(2σ²)) · ½ erfc((z₀ − j)/(√2 σ))`,
//!   `j = α − i`. `C(α, i)` changes sign for `i > α + 1`, so the tails alternate; they are
//!   summed with their signs (the exact value), in log space, until the terms fall below
//!   `e^(−30)` of the total (at most [`MAX_SERIES_TERMS`] terms; an order whose series has
//!   not converged by then is left out, as `+∞`).
//! * `q = 1` is the plain Gaussian mechanism: `ε(α) = α / (2σ²)`; `q = 0` gives 0 and
//!   `σ = 0` gives `+∞`.
//!
//! # Composition and conversion
//!
//! RDP composes additively: T steps give `T · ε(α)` at each order. The RDP curve is
//! converted to (ε, δ)-DP with the bound of Canonne, Kamath & Steinke 2020 ("The Discrete
//! Gaussian for Differential Privacy", Prop. 12) / Asoodeh et al. 2020 (eq. 20), the one
//! `dp-accounting` and Opacus ≥ 1.0 use:
//!
//! ```text
//! ε = min_α  rdp(α) + ln_1p(−1/α) − (ln δ + ln α) / (α − 1)      (α > 1.01)
//! ```
//!
//! and, as `dp-accounting` does, ε = 0 where the KL bound `δ ≥ √(1 − e^(−rdp))` already
//! holds. The inverse, [`RdpAccountant::delta`], uses
//! `ln δ = min_α (α − 1)(rdp(α) − ε + ln_1p(−1/α)) − ln α`, also capped by the KL bound.
//!
//! # Orders
//!
//! The default grid is `dp-accounting` 0.6's `DEFAULT_RDP_ORDERS`:
//! `1 + x/10` for `x = 1..=99`, the integers `11..=63`, and 128, 256, 512, 1024 (156 orders).

use serde::{Deserialize, Serialize};

use super::DpError;
use super::special::{SignedLogSum, ln_erfc, log_add};

/// Most terms summed of one fractional-order series before the order is given up.
pub const MAX_SERIES_TERMS: usize = 200_000;

/// Largest order accepted: the integer expansion costs `α + 1` terms.
pub const MAX_ORDER: f64 = 100_000.0;

/// `dp-accounting` 0.6's default RDP orders (see the module documentation).
pub fn default_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    orders.extend((11..64).map(f64::from));
    orders.extend([128.0, 256.0, 512.0, 1024.0]);
    orders
}

/// An ε together with the RDP order at which the conversion attained it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpsilonAt {
    /// The ε of (ε, δ)-DP; `+∞` when no order gives a finite bound.
    pub epsilon: f64,
    /// The optimal order α.
    pub order: f64,
}

/// A δ together with the RDP order at which the conversion attained it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeltaAt {
    /// The δ of (ε, δ)-DP, at most 1.
    pub delta: f64,
    /// The optimal order α.
    pub order: f64,
}

pub(crate) fn check_q(q: f64) -> Result<f64, DpError> {
    if (0.0..=1.0).contains(&q) {
        Ok(q)
    } else {
        Err(DpError::invalid("q", q, "a sampling rate in [0, 1]"))
    }
}

pub(crate) fn check_sigma(sigma: f64) -> Result<f64, DpError> {
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(sigma)
    } else {
        Err(DpError::invalid(
            "sigma",
            sigma,
            "a finite noise multiplier ≥ 0",
        ))
    }
}

pub(crate) fn check_delta(delta: f64) -> Result<f64, DpError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(delta)
    } else {
        Err(DpError::invalid("delta", delta, "a δ in (0, 1)"))
    }
}

fn check_order(order: f64) -> Result<f64, DpError> {
    if order > 1.0 && order <= MAX_ORDER {
        Ok(order)
    } else {
        Err(DpError::invalid(
            "order",
            order,
            "an RDP order in (1, 100000]",
        ))
    }
}

/// RDP of order `order` of one step of the Poisson-subsampled Gaussian mechanism with
/// sampling rate `q` and noise multiplier `sigma` (add-or-remove-one adjacency).
///
/// Returns `+∞` for `σ = 0` (with `q > 0`) and for a fractional order whose series did not
/// converge within [`MAX_SERIES_TERMS`] terms.
pub fn rdp_poisson_gaussian(q: f64, sigma: f64, order: f64) -> Result<f64, DpError> {
    let q = check_q(q)?;
    let sigma = check_sigma(sigma)?;
    let order = check_order(order)?;
    Ok(rdp_one(q, sigma, order))
}

/// [`rdp_poisson_gaussian`] on checked parameters.
fn rdp_one(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 {
        Some(log_a_int(q, sigma, alpha))
    } else {
        log_a_frac(q, sigma, alpha)
    };
    match log_a {
        // A_α ≥ 1 in exact arithmetic; rounding can leave ln A a hair below 0.
        Some(log_a) => (log_a / (alpha - 1.0)).max(0.0),
        None => f64::INFINITY,
    }
}

/// `ln A_α` for integer α by the finite binomial expansion, `0 < q < 1`, `σ > 0`.
fn log_a_int(q: f64, sigma: f64, alpha: f64) -> f64 {
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let two_var = 2.0 * sigma * sigma;
    let mut log_binom = 0.0_f64; // ln C(α, i), updated by C(α, i) = C(α, i−1)·(α − i + 1)/i
    let mut log_a = f64::NEG_INFINITY;
    let mut i = 0.0_f64;
    while i <= alpha {
        if i > 0.0 {
            log_binom += (alpha - i + 1.0).ln() - i.ln();
        }
        let term = log_binom + i * ln_q + (alpha - i) * ln_1mq + i * (i - 1.0) / two_var;
        log_a = log_add(log_a, term);
        i += 1.0;
    }
    log_a
}

/// `ln A_α` for fractional α by the two-sided series of Mironov et al. §3.3,
/// `0 < q < 1`, `σ > 0`. `None` when the series has not converged within
/// [`MAX_SERIES_TERMS`] terms or its sum came out non-positive.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> Option<f64> {
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let two_var = 2.0 * sigma * sigma;
    let sqrt2_sigma = std::f64::consts::SQRT_2 * sigma;
    let z0 = sigma * sigma * (ln_1mq - ln_q) + 0.5;
    let ln_half = -std::f64::consts::LN_2;

    let mut a0 = SignedLogSum::ZERO;
    let mut a1 = SignedLogSum::ZERO;
    // ln |C(α, i)| and the sign of C(α, i), by C(α, i) = C(α, i−1)·(α − i + 1)/i.
    let mut log_coef = 0.0_f64;
    let mut coef_negative = false;
    let mut last = (f64::INFINITY, f64::INFINITY);
    for n in 0..MAX_SERIES_TERMS {
        let i = n as f64;
        if n > 0 {
            let factor = alpha - i + 1.0;
            log_coef += factor.abs().ln() - i.ln();
            if factor < 0.0 {
                coef_negative = !coef_negative;
            }
        }
        let j = alpha - i;
        let log_s0 = log_coef
            + i * ln_q
            + j * ln_1mq
            + i * (i - 1.0) / two_var
            + ln_half
            + ln_erfc((i - z0) / sqrt2_sigma);
        let log_s1 = log_coef
            + j * ln_q
            + i * ln_1mq
            + j * (j - 1.0) / two_var
            + ln_half
            + ln_erfc((z0 - j) / sqrt2_sigma);
        if log_s0.is_nan() || log_s1.is_nan() {
            return None;
        }
        a0.add(coef_negative, log_s0);
        a1.add(coef_negative, log_s1);
        let total = a0.plus(a1).ln()?;
        // Past i = α + 1 the terms alternate in sign; stop once both have been decreasing
        // and are negligible next to the sum (the alternating tail is then smaller still).
        if i > alpha + 1.0
            && log_s0 < last.0
            && log_s1 < last.1
            && log_s0.max(log_s1) < total - 30.0
        {
            return Some(total);
        }
        last = (log_s0, log_s1);
    }
    None
}

/// The (ε, δ) conversion of an RDP curve (see the module documentation).
fn epsilon_of(orders: &[f64], rdp: &[f64], delta: f64) -> EpsilonAt {
    let ln_delta = delta.ln();
    let mut best = EpsilonAt {
        epsilon: f64::INFINITY,
        order: orders.first().copied().unwrap_or(f64::NAN),
    };
    for (&alpha, &r) in orders.iter().zip(rdp) {
        let eps = if delta * delta + (-r).exp_m1() > 0.0 {
            // δ ≥ √(1 − e^(−KL)) already: ε = 0.
            0.0
        } else if alpha > 1.01 {
            r + (-1.0 / alpha).ln_1p() - (ln_delta + alpha.ln()) / (alpha - 1.0)
        } else {
            f64::INFINITY
        };
        if eps < best.epsilon {
            best = EpsilonAt {
                epsilon: eps,
                order: alpha,
            };
        }
    }
    best.epsilon = best.epsilon.max(0.0);
    best
}

/// The δ for a given ε of an RDP curve (see the module documentation).
fn delta_of(orders: &[f64], rdp: &[f64], epsilon: f64) -> DeltaAt {
    let mut best_log = f64::INFINITY;
    let mut best_order = orders.first().copied().unwrap_or(f64::NAN);
    for (&alpha, &r) in orders.iter().zip(rdp) {
        // KL bound δ ≤ √(1 − e^(−rdp)).
        let mut log_delta = if r == 0.0 {
            f64::NEG_INFINITY
        } else {
            0.5 * (-(-r).exp_m1()).ln()
        };
        if alpha > 1.01 {
            let bound = (alpha - 1.0) * (r - epsilon + (-1.0 / alpha).ln_1p()) - alpha.ln();
            log_delta = log_delta.min(bound);
        }
        if log_delta < best_log {
            best_log = log_delta;
            best_order = alpha;
        }
    }
    DeltaAt {
        delta: best_log.exp().min(1.0),
        order: best_order,
    }
}

/// Rényi-DP accountant: the RDP curve, at a fixed grid of orders, of everything composed so
/// far.
///
/// Serializes as `{"orders": [...], "rdp": [...]}` with `null` standing for an infinite RDP
/// (JSON has no infinity); deserializing checks the orders and that both lists have the same
/// length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RdpState", into = "RdpState")]
pub struct RdpAccountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

/// The serialized form of [`RdpAccountant`].
#[derive(Serialize, Deserialize)]
struct RdpState {
    orders: Vec<f64>,
    rdp: Vec<Option<f64>>,
}

impl From<RdpAccountant> for RdpState {
    fn from(a: RdpAccountant) -> Self {
        Self {
            orders: a.orders,
            rdp: a
                .rdp
                .into_iter()
                .map(|r| r.is_finite().then_some(r))
                .collect(),
        }
    }
}

impl TryFrom<RdpState> for RdpAccountant {
    type Error = DpError;

    fn try_from(s: RdpState) -> Result<Self, DpError> {
        if s.orders.len() != s.rdp.len() {
            return Err(DpError::InvalidState(format!(
                "{} orders but {} RDP values",
                s.orders.len(),
                s.rdp.len()
            )));
        }
        let mut acc = Self::new(s.orders)?;
        for (slot, r) in acc.rdp.iter_mut().zip(s.rdp) {
            let r = r.unwrap_or(f64::INFINITY);
            if r.is_nan() || r < 0.0 {
                return Err(DpError::InvalidState(format!("RDP value {r} is not ≥ 0")));
            }
            *slot = r;
        }
        Ok(acc)
    }
}

impl Default for RdpAccountant {
    /// An empty accountant on [`default_orders`].
    fn default() -> Self {
        Self {
            rdp: vec![0.0; default_orders().len()],
            orders: default_orders(),
        }
    }
}

impl RdpAccountant {
    /// An empty accountant on the given orders, each in `(1, 100000]`; at least one.
    pub fn new(orders: Vec<f64>) -> Result<Self, DpError> {
        if orders.is_empty() {
            return Err(DpError::InvalidState("no RDP orders".to_owned()));
        }
        for &o in &orders {
            check_order(o)?;
        }
        Ok(Self {
            rdp: vec![0.0; orders.len()],
            orders,
        })
    }

    /// The orders α of the grid.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The composed RDP ε(α) at each order (`+∞` where unbounded).
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Whether nothing (or only steps that leak nothing) has been composed.
    pub fn is_empty(&self) -> bool {
        self.rdp.iter().all(|&r| r == 0.0)
    }

    /// Composes `steps` steps of the Poisson-subsampled Gaussian mechanism with sampling rate
    /// `q` and noise multiplier `sigma`: adds `steps · ε_step(α)` at every order.
    pub fn compose(&mut self, q: f64, sigma: f64, steps: u64) -> Result<(), DpError> {
        let q = check_q(q)?;
        let sigma = check_sigma(sigma)?;
        if steps == 0 {
            return Ok(());
        }
        let t = steps as f64;
        for (r, &alpha) in self.rdp.iter_mut().zip(&self.orders) {
            *r += t * rdp_one(q, sigma, alpha);
        }
        Ok(())
    }

    /// A copy with `steps` more steps composed; `self` is left as it is. This is how a budget
    /// is checked before a round is run.
    pub fn composed(&self, q: f64, sigma: f64, steps: u64) -> Result<Self, DpError> {
        let mut next = self.clone();
        next.compose(q, sigma, steps)?;
        Ok(next)
    }

    /// The smallest ε such that what was composed is (ε, δ)-DP, and the order attaining it.
    pub fn epsilon(&self, delta: f64) -> Result<EpsilonAt, DpError> {
        let delta = check_delta(delta)?;
        Ok(epsilon_of(&self.orders, &self.rdp, delta))
    }

    /// The smallest δ such that what was composed is (ε, δ)-DP, and the order attaining it.
    pub fn delta(&self, epsilon: f64) -> Result<DeltaAt, DpError> {
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(DpError::invalid("epsilon", epsilon, "a finite ε ≥ 0"));
        }
        Ok(delta_of(&self.orders, &self.rdp, epsilon))
    }
}

/// ε of `steps` steps of the Poisson-subsampled Gaussian mechanism (sampling rate `q`,
/// noise multiplier `sigma`) at `delta`, on the default orders.
pub fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> Result<EpsilonAt, DpError> {
    let delta = check_delta(delta)?;
    let mut acc = RdpAccountant::default();
    acc.compose(q, sigma, steps)?;
    Ok(epsilon_of(&acc.orders, &acc.rdp, delta))
}

/// The JSON the `fedics dp epsilon` command prints:
/// `{"epsilon", "order", "accountant": "rdp", "q", "sigma", "steps", "delta"}`.
/// An infinite ε is written as `null`.
pub fn epsilon_json(
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
) -> Result<serde_json::Value, DpError> {
    let e = epsilon(q, sigma, steps, delta)?;
    Ok(serde_json::json!({
        "epsilon": e.epsilon.is_finite().then_some(e.epsilon),
        "order": e.order,
        "accountant": "rdp",
        "q": q,
        "sigma": sigma,
        "steps": steps,
        "delta": delta,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (q, σ, steps, δ, ε of dp-accounting's RDP accountant, ε of dp-accounting's PLD
    /// accountant), add-or-remove-one.
    const REFERENCE: [(f64, f64, u64, f64, f64, f64); 6] = [
        (0.01, 0.5, 1, 1e-5, 4.3952, 3.0254),
        (0.01, 1.1, 10_000, 1e-5, 5.6320, 5.1926),
        (0.05, 2.0, 1000, 1e-5, 4.0244, 3.6997),
        (0.1, 0.8, 100, 1e-6, 13.950, 12.525),
        (1.0, 1.1, 100, 1e-5, 83.100, 79.275),
        (1.0, 5.0, 10, 1e-5, 2.8137, 2.5944),
    ];

    #[test]
    fn default_orders_are_dp_accounting_0_6() {
        let o = default_orders();
        assert_eq!(o.len(), 156);
        assert_eq!(o[0], 1.1);
        assert_eq!(o[98], 10.9);
        assert_eq!(o[99], 11.0);
        assert_eq!(o[151], 63.0);
        assert_eq!(&o[152..], &[128.0, 256.0, 512.0, 1024.0]);
    }

    #[test]
    fn reference_rows() {
        for (q, sigma, steps, delta, rdp_ref, pld_ref) in REFERENCE {
            let e = epsilon(q, sigma, steps, delta).unwrap();
            eprintln!(
                "q={q} σ={sigma} T={steps} δ={delta}: ε={:.4} at α={} (dp-accounting RDP {rdp_ref}, PLD {pld_ref})",
                e.epsilon, e.order
            );
            assert!(
                e.epsilon <= rdp_ref * 1.01,
                "looser than dp-accounting: {e:?} vs {rdp_ref}"
            );
            assert!(
                e.epsilon >= pld_ref,
                "tighter than PLD (impossible): {e:?} vs {pld_ref}"
            );
            assert!(
                (e.epsilon - rdp_ref).abs() <= 0.01 * rdp_ref,
                "{e:?} vs {rdp_ref}"
            );
        }
    }

    #[test]
    fn fractional_orders_match_numerical_integration() {
        // ln(A_α)/(α − 1) with A_α integrated numerically by mpmath at 40 digits
        // (tests/dp_reference.py), at orders where dp-accounting 0.6's series gives up.
        let cases = [
            (0.5, 0.6, 1.1, 0.507_852_421_923_768_8),
            (0.1, 0.6, 1.4, 0.057_772_883_206_986_05),
            (0.5, 5.0, 1.7, 0.008_602_329_867_050_394),
            (0.9, 0.6, 2.5, 3.299_549_196_365_955),
            (0.001, 0.6, 1.1, 7.866_425_388_275_461e-6),
            (0.5, 1.0, 7.3, 2.848_976_939_013_092_6),
        ];
        for (q, sigma, alpha, want) in cases {
            let got = rdp_poisson_gaussian(q, sigma, alpha).unwrap();
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "q={q} σ={sigma} α={alpha}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn plain_gaussian_closed_form() {
        // q = 1: rdp(α) = α/(2σ²) exactly.
        let mut acc = RdpAccountant::new(vec![2.0, 2.5, 32.0]).unwrap();
        acc.compose(1.0, 2.0, 3).unwrap();
        assert_eq!(acc.rdp(), &[0.75, 3.0 * 2.5 / 8.0, 12.0]);
    }

    #[test]
    fn integer_and_fractional_series_agree() {
        // The fractional series at α = k ± 1e-7 must be next to the exact integer value.
        for &(q, sigma) in &[(0.01, 0.7), (0.2, 1.3), (0.5, 3.0), (0.9, 0.9)] {
            for k in [2.0, 3.0, 5.0, 8.0] {
                let exact = rdp_one(q, sigma, k);
                for alpha in [k - 1e-7, k + 1e-7] {
                    let r = rdp_one(q, sigma, alpha);
                    assert!(
                        (r - exact).abs() <= 1e-5 * exact + 1e-12,
                        "q={q} σ={sigma} α={alpha}: {r} vs {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn small_q_matches_the_second_order_approximation() {
        // For q → 0, ln A_α ≈ α(α−1) q² (e^(1/σ²) − 1) / 2 (Mironov et al. §3.4).
        let (q, sigma) = (1e-4_f64, 2.0_f64);
        for alpha in [1.5, 2.0, 3.7, 6.0] {
            let approx = alpha * q * q * ((1.0 / (sigma * sigma)).exp_m1()) / 2.0;
            let r = rdp_one(q, sigma, alpha);
            assert!(
                (r - approx).abs() <= 1e-3 * approx,
                "α={alpha}: {r} vs {approx}"
            );
        }
    }

    #[test]
    fn rdp_is_monotone_in_order() {
        for &(q, sigma) in &[(0.001, 0.6), (0.1, 0.8), (0.5, 1.0), (0.99, 5.0)] {
            let acc = RdpAccountant::default().composed(q, sigma, 1).unwrap();
            for w in acc.rdp().windows(2) {
                assert!(w[1] >= w[0] * (1.0 - 1e-9), "q={q} σ={sigma}: {w:?}");
            }
        }
    }

    #[test]
    fn edge_cases() {
        assert_eq!(epsilon(0.0, 1.0, 100, 1e-5).unwrap().epsilon, 0.0);
        assert_eq!(epsilon(0.0, 0.0, 100, 1e-5).unwrap().epsilon, 0.0);
        assert_eq!(epsilon(0.3, 0.0, 1, 1e-5).unwrap().epsilon, f64::INFINITY);
        assert_eq!(epsilon(0.3, 1.0, 0, 1e-5).unwrap().epsilon, 0.0);
        assert_eq!(
            RdpAccountant::default().delta(1.0).unwrap().delta,
            0.0,
            "nothing composed, nothing leaked"
        );
        // Huge noise: the KL branch gives ε = 0.
        assert_eq!(epsilon(0.01, 1e4, 1, 1e-5).unwrap().epsilon, 0.0);
    }

    #[test]
    fn invalid_parameters_name_themselves() {
        let msg = |e: DpError| e.to_string();
        assert!(msg(epsilon(1.5, 1.0, 1, 1e-5).unwrap_err()).contains("q"));
        assert!(msg(epsilon(f64::NAN, 1.0, 1, 1e-5).unwrap_err()).contains("q"));
        assert!(msg(epsilon(0.1, -1.0, 1, 1e-5).unwrap_err()).contains("sigma"));
        assert!(msg(epsilon(0.1, f64::NAN, 1, 1e-5).unwrap_err()).contains("sigma"));
        assert!(msg(epsilon(0.1, 1.0, 1, 0.0).unwrap_err()).contains("delta"));
        assert!(msg(epsilon(0.1, 1.0, 1, 1.0).unwrap_err()).contains("delta"));
        assert!(msg(epsilon(0.1, 1.0, 1, f64::NAN).unwrap_err()).contains("delta"));
        assert!(msg(RdpAccountant::new(vec![1.0]).unwrap_err()).contains("order"));
        assert!(msg(RdpAccountant::default().delta(-1.0).unwrap_err()).contains("epsilon"));
    }

    #[test]
    fn delta_inverts_epsilon() {
        let acc = RdpAccountant::default().composed(0.05, 1.0, 500).unwrap();
        let e = acc.epsilon(1e-6).unwrap();
        let d = acc.delta(e.epsilon).unwrap();
        assert!((d.delta / 1e-6 - 1.0).abs() < 1e-6, "{d:?}");
        assert_eq!(d.order, e.order);
    }

    #[test]
    fn composition_is_additive() {
        let mut a = RdpAccountant::default();
        for _ in 0..10 {
            a.compose(0.1, 1.2, 1).unwrap();
        }
        let b = RdpAccountant::default().composed(0.1, 1.2, 10).unwrap();
        for (x, y) in a.rdp().iter().zip(b.rdp()) {
            assert!((x - y).abs() <= 1e-12 * y);
        }
    }

    #[test]
    fn serde_round_trip_keeps_infinities() {
        let mut acc = RdpAccountant::new(vec![2.0, 8.5]).unwrap();
        acc.compose(0.5, 0.0, 1).unwrap();
        acc.compose(0.1, 1.0, 3).unwrap();
        let json = serde_json::to_string(&acc).unwrap();
        assert_eq!(json, r#"{"orders":[2.0,8.5],"rdp":[null,null]}"#);
        let back: RdpAccountant = serde_json::from_str(&json).unwrap();
        assert_eq!(back, acc);

        // serde_json's default float parsing may be off by one ulp.
        let acc = RdpAccountant::default().composed(0.1, 1.0, 3).unwrap();
        let back: RdpAccountant =
            serde_json::from_str(&serde_json::to_string(&acc).unwrap()).unwrap();
        assert_eq!(back.orders(), acc.orders());
        for (x, y) in back.rdp().iter().zip(acc.rdp()) {
            assert!((x - y).abs() <= 1e-15 * y, "{x} vs {y}");
        }

        assert!(serde_json::from_str::<RdpAccountant>(r#"{"orders":[2.0],"rdp":[]}"#).is_err());
        assert!(serde_json::from_str::<RdpAccountant>(r#"{"orders":[0.5],"rdp":[0.0]}"#).is_err());
    }

    #[test]
    fn json_for_the_cli() {
        let v = epsilon_json(0.01, 1.1, 10_000, 1e-5).unwrap();
        assert_eq!(v["accountant"], "rdp");
        assert_eq!(v["steps"], 10_000);
        assert_eq!(v["q"], 0.01);
        let eps = v["epsilon"].as_f64().unwrap();
        assert!((eps - 5.6320).abs() < 0.01 * 5.6320);
        assert!(v["order"].as_f64().unwrap() > 1.0);
        assert!(epsilon_json(0.5, 0.0, 1, 1e-5).unwrap()["epsilon"].is_null());
        assert!(epsilon_json(2.0, 1.0, 1, 1e-5).is_err());
    }
}
