//! Log-space arithmetic and `ln erfc`, the numerical helpers of the accountant.
//!
//! Everything the accountant sums can over- or underflow `f64` by hundreds of orders of
//! magnitude (terms like `exp((i² − i) / 2σ²)` or `erfc(50)`), so the sums are carried as
//! logarithms: `ln(eˣ + eʸ) = max + ln_1p(e^(min − max))` (log-sum-exp), and signed sums as a
//! sign and the logarithm of the magnitude.

use std::f64::consts::{FRAC_2_SQRT_PI, LN_2, PI};

/// `ln(eᵃ + eᵇ)` without overflow: `max(a, b) + ln_1p(e^(min − max))`.
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    if hi == f64::INFINITY {
        return f64::INFINITY;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// A sum of signed terms each given as `(sign, ln |term|)`, kept as a sign and `ln |sum|`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignedLogSum {
    /// `ln |sum|`; `-∞` for an empty (zero) sum.
    log_abs: f64,
    /// Whether the sum is negative.
    negative: bool,
}

impl SignedLogSum {
    pub(crate) const ZERO: Self = Self {
        log_abs: f64::NEG_INFINITY,
        negative: false,
    };

    /// Adds `(−1)^negative · e^log_term`.
    pub(crate) fn add(&mut self, negative: bool, log_term: f64) {
        if log_term == f64::NEG_INFINITY {
            return;
        }
        if self.log_abs == f64::NEG_INFINITY {
            *self = Self {
                log_abs: log_term,
                negative,
            };
            return;
        }
        if negative == self.negative {
            self.log_abs = log_add(self.log_abs, log_term);
            return;
        }
        // Opposite signs: |x| − |y| with the sign of the larger one.
        let (big, small, big_negative) = if self.log_abs >= log_term {
            (self.log_abs, log_term, self.negative)
        } else {
            (log_term, self.log_abs, negative)
        };
        if big == small {
            *self = Self::ZERO;
            return;
        }
        self.log_abs = big + (-(small - big).exp()).ln_1p();
        self.negative = big_negative;
    }

    /// Sum of two signed sums.
    pub(crate) fn plus(mut self, other: Self) -> Self {
        self.add(other.negative, other.log_abs);
        self
    }

    /// `ln sum`, or `None` when the sum is negative (it is then not a logarithm of anything).
    pub(crate) fn ln(self) -> Option<f64> {
        if self.negative && self.log_abs > f64::NEG_INFINITY {
            None
        } else {
            Some(self.log_abs)
        }
    }
}

/// `erf(x)` for `|x| < 2` by the everywhere-positive series
/// `erf x = (2/√π) e^(−x²) Σₙ 2ⁿ x^(2n+1) / (1·3·5···(2n+1))` (Abramowitz & Stegun 7.1.6),
/// which has no cancellation between its terms.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0_f64;
    while n < 200.0 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
        if term.abs() <= 1e-17 * sum.abs() {
            break;
        }
    }
    FRAC_2_SQRT_PI * (-x2).exp() * sum
}

/// `√π · e^(x²) · erfc(x)` for `x ≥ 2` by the continued fraction (A&S 7.1.14)
/// `√π e^(x²) erfc x = 1 / (x + (1/2) / (x + 1 / (x + (3/2) / (x + 2 / (x + …)))))`,
/// evaluated with the modified Lentz algorithm.
fn erfcx_cf(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0_f64;
    for n in 1..500 {
        let a = f64::from(n) * 0.5;
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        d = 1.0 / d;
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    1.0 / f
}

/// `ln erfc(x)`, accurate to about 1e-13 (relative) over the whole real line, including
/// the far right tail where `erfc` itself underflows (`ln erfc(100) ≈ −10005.18`).
///
/// * `x ≥ 2`: `ln erfc x = −x² + ln(√π e^(x²) erfc x) − ½ ln π` with the continued fraction;
/// * `|x| < 2`: `ln(1 − erf x)` with the positive series;
/// * `x ≤ −2`: `erfc x = 2 − erfc(−x)`, so `ln erfc x = ln 2 + ln_1p(−erfc(−x)/2)`.
pub(crate) fn ln_erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return f64::NEG_INFINITY;
    }
    if x >= 2.0 {
        -x * x + erfcx_cf(x).ln() - 0.5 * PI.ln()
    } else if x > -2.0 {
        (-erf_series(x)).ln_1p()
    } else {
        let y = -x;
        let tail = if y == f64::INFINITY {
            0.0
        } else {
            (-y * y).exp() * erfcx_cf(y) / PI.sqrt()
        };
        LN_2 + (-0.5 * tail).ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_erfc_matches_reference_values() {
        // ln(2) + scipy.special.log_ndtr(-x·√2), i.e. ln erfc(x), from SciPy 1.17.
        let cases: [(f64, f64); 21] = [
            (-30.0, LN_2),
            (-5.0, 0.693_147_180_559_176_6),
            (-2.5, 0.692_943_683_847_171_2),
            (-2.0, 0.690_805_573_646_587_7),
            (-1.0, 0.611_232_317_678_070_5),
            (-0.3, 0.284_145_897_141_408_25),
            (0.0, 0.0),
            (0.1, -0.119_304_973_737_395_57),
            (0.5, -0.735_011_129_837_084_8),
            (1.0, -1.849_605_509_933_249),
            (1.5, -3.384_492_089_551_553_6),
            (1.99, -5.320_852_015_139_978),
            (2.0, -5.364_941_264_616_64),
            (2.01, -5.409_215_264_190_246),
            (3.0, -10.720_363_041_981_116),
            (5.0, -27.200_889_545_537_446),
            (10.0, -102.879_889_024_844_93),
            (20.0, -403.569_343_334_104_4),
            (30.0, -903.974_117_110_644_2),
            (100.0, -10_005.177_585_122_668),
            (1e4, -100_000_009.782_705_35),
        ];
        for (x, want) in cases {
            let got = ln_erfc(x);
            let tol = 1e-12 * f64::max(1.0, want.abs());
            assert!(
                (got - want).abs() <= tol,
                "ln_erfc({x}) = {got}, want {want}"
            );
        }
        assert_eq!(ln_erfc(f64::INFINITY), f64::NEG_INFINITY);
        assert!((ln_erfc(f64::NEG_INFINITY) - LN_2).abs() < 1e-15);
        assert!(ln_erfc(f64::NAN).is_nan());
    }

    #[test]
    fn log_add_and_signed_sums() {
        assert!((log_add(0.0, 0.0) - LN_2).abs() < 1e-15);
        assert_eq!(log_add(f64::NEG_INFINITY, 3.0), 3.0);
        assert!((log_add(1000.0, 1000.0) - (1000.0 + LN_2)).abs() < 1e-12);

        let mut s = SignedLogSum::ZERO;
        s.add(false, 5.0_f64.ln());
        s.add(true, 3.0_f64.ln());
        assert!((s.ln().unwrap_or(f64::NAN) - 2.0_f64.ln()).abs() < 1e-15);
        s.add(true, 4.0_f64.ln());
        assert_eq!(s.ln(), None);
        let t = s.plus({
            let mut u = SignedLogSum::ZERO;
            u.add(false, 3.0_f64.ln());
            u
        });
        assert!((t.ln().unwrap_or(f64::NAN) - 1.0_f64.ln()).abs() < 1e-15);
    }
}
