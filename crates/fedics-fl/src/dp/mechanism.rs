//! The Gaussian mechanism on model updates: L2 clipping, Gaussian noise, adaptive clipping.
//!
//! Noise is drawn from a cryptographically secure generator: the functions take any
//! `R: CryptoRng` (tests pass a seeded `ChaCha20Rng`), and [`secure_rng`] gives a ChaCha20
//! generator seeded from the operating system. Gaussian variates come from
//! `rand_distr::Normal` in `f64` and are added to the `f32` parameters; like every
//! floating-point sampler this is not hardened against the floating-point attacks of
//! Mironov 2012 ("On Significance of the Least Significant Bits for Differential Privacy").

use rand::{CryptoRng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

use super::DpError;

/// L2 norm of `v`, accumulated in `f64`.
pub fn l2_norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Clips `update` to L2 norm at most `c`: scales it by `c / ‖update‖` when `‖update‖ > c`
/// and leaves it untouched otherwise. Returns the norm *before* clipping.
///
/// `c = +∞` never clips. A `c` that is NaN or negative is treated as 0, and an update whose
/// norm is not finite (NaN or infinite entries) is set to zero: both fall back to the output
/// with sensitivity 0 rather than let an unbounded contribution through.
pub fn clip_l2(update: &mut [f32], c: f64) -> f64 {
    let norm = l2_norm(update);
    let c = if c.is_nan() { 0.0 } else { c.max(0.0) };
    if !norm.is_finite() {
        update.fill(0.0);
    } else if norm > c {
        let scale = c / norm;
        for x in update.iter_mut() {
            *x = (f64::from(*x) * scale) as f32;
        }
    }
    norm
}

/// A ChaCha20 generator seeded from the operating system's random source.
pub fn secure_rng() -> Result<ChaCha20Rng, DpError> {
    ChaCha20Rng::try_from_os_rng().map_err(|e| DpError::Rng(e.to_string()))
}

/// Adds independent `N(0, std²)` noise to each entry of `v`. `std = 0` leaves `v` as it is.
pub fn add_gaussian_noise<R: CryptoRng + ?Sized>(
    v: &mut [f32],
    std: f64,
    rng: &mut R,
) -> Result<(), DpError> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(DpError::invalid(
            "std",
            std,
            "a finite standard deviation ≥ 0",
        ));
    }
    if std == 0.0 {
        return Ok(());
    }
    let normal = Normal::new(0.0, std)
        .map_err(|_| DpError::invalid("std", std, "a finite standard deviation ≥ 0"))?;
    for x in v.iter_mut() {
        *x = (f64::from(*x) + normal.sample(rng)) as f32;
    }
    Ok(())
}

/// The Gaussian mechanism of one round: clipping bound `C` and noise multiplier `σ`, so
/// that the sum of the clipped updates receives noise of standard deviation `σ·C`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaussianNoise {
    noise_multiplier: f64,
    clip: f64,
}

impl GaussianNoise {
    /// `noise_multiplier` σ: finite, ≥ 0; `clip` C: finite, > 0.
    pub fn new(noise_multiplier: f64, clip: f64) -> Result<Self, DpError> {
        if !(noise_multiplier.is_finite() && noise_multiplier >= 0.0) {
            return Err(DpError::invalid(
                "sigma",
                noise_multiplier,
                "a finite noise multiplier ≥ 0",
            ));
        }
        if !(clip.is_finite() && clip > 0.0) {
            return Err(DpError::invalid(
                "clip",
                clip,
                "a finite clipping bound > 0",
            ));
        }
        Ok(Self {
            noise_multiplier,
            clip,
        })
    }

    /// σ.
    pub fn noise_multiplier(&self) -> f64 {
        self.noise_multiplier
    }

    /// C.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// `σ·C`, the standard deviation of the noise on the sum (central DP).
    pub fn central_std(&self) -> f64 {
        self.noise_multiplier * self.clip
    }

    /// `σ·C/√n`, the standard deviation each of `n` sites adds so that the securely
    /// aggregated sum carries `N(0, σ²C²)` (distributed DP).
    pub fn distributed_std(&self, sites: usize) -> Result<f64, DpError> {
        if sites == 0 {
            return Err(DpError::invalid("sites", 0.0, "at least one site"));
        }
        Ok(self.central_std() / (sites as f64).sqrt())
    }

    /// Clips one site's update to `C`; returns its norm before clipping.
    pub fn clip_update(&self, update: &mut [f32]) -> f64 {
        clip_l2(update, self.clip)
    }

    /// Central DP: adds `N(0, σ²C²)` to each entry of the sum of clipped updates.
    pub fn add_central<R: CryptoRng + ?Sized>(
        &self,
        sum: &mut [f32],
        rng: &mut R,
    ) -> Result<(), DpError> {
        add_gaussian_noise(sum, self.central_std(), rng)
    }

    /// Distributed DP: adds this site's share `N(0, σ²C²/n)` to its clipped update, for `n`
    /// sites whose noised updates are summed by secure aggregation. The guarantee holds only
    /// if all `n` shares reach the sum.
    pub fn add_distributed<R: CryptoRng + ?Sized>(
        &self,
        update: &mut [f32],
        sites: usize,
        rng: &mut R,
    ) -> Result<(), DpError> {
        add_gaussian_noise(update, self.distributed_std(sites)?, rng)
    }
}

/// The noise multiplier left for the updates when the adaptive-clipping count takes its
/// share of the privacy: `σ_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)` (Andrew et al. 2021, §3), so that
/// the pair (noised sum of updates, noised count of unclipped updates) is as private as one
/// Gaussian mechanism of noise multiplier `z`. Requires `2σ_b > z`; `σ_b = ∞` (no count)
/// gives `z`.
pub fn adaptive_update_noise_multiplier(z: f64, count_noise_std: f64) -> Result<f64, DpError> {
    if !(z.is_finite() && z > 0.0) {
        return Err(DpError::invalid(
            "sigma",
            z,
            "a finite noise multiplier > 0",
        ));
    }
    if count_noise_std.is_nan() || 2.0 * count_noise_std <= z {
        return Err(DpError::invalid(
            "count_noise_std",
            count_noise_std,
            "a count noise σ_b with 2σ_b greater than the noise multiplier",
        ));
    }
    let rest = z.powi(-2) - (2.0 * count_noise_std).powi(-2);
    Ok(rest.powf(-0.5))
}

/// Adaptive clipping to a quantile of the update norms (Andrew, Thakkar, McMahan &
/// Ramaswamy 2021, "Differentially Private Learning with Adaptive Clipping").
///
/// Each round, each participating site reports `bᵢ = 1[‖Δᵢ‖ ≤ C]`. The server forms the
/// noised fraction of unclipped updates
/// `b̃ = (Σᵢ (bᵢ − ½) + N(0, σ_b²)) / m + ½`, with `m` the *expected* number of participants
/// (public; centring the bits makes the sum's sensitivity ½), and moves C geometrically
/// towards the target quantile γ: `C ← C · exp(−η (b̃ − γ))`. With count noise σ_b the updates
/// must be noised with [`adaptive_update_noise_multiplier`] for the accountant's σ to hold.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdaptiveClipping {
    clip: f64,
    target_quantile: f64,
    learning_rate: f64,
    count_noise_std: f64,
}

impl AdaptiveClipping {
    /// Starts at `initial_clip` (> 0), aiming at quantile `target_quantile` ∈ [0, 1] with
    /// learning rate `learning_rate` (> 0; the paper uses 0.2) and count noise
    /// `count_noise_std` σ_b ≥ 0 (the paper suggests `m / 20`).
    pub fn new(
        initial_clip: f64,
        target_quantile: f64,
        learning_rate: f64,
        count_noise_std: f64,
    ) -> Result<Self, DpError> {
        if !(initial_clip.is_finite() && initial_clip > 0.0) {
            return Err(DpError::invalid(
                "clip",
                initial_clip,
                "a finite clipping bound > 0",
            ));
        }
        if !(0.0..=1.0).contains(&target_quantile) {
            return Err(DpError::invalid(
                "target_quantile",
                target_quantile,
                "a quantile in [0, 1]",
            ));
        }
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(DpError::invalid(
                "learning_rate",
                learning_rate,
                "a finite learning rate > 0",
            ));
        }
        if !(count_noise_std.is_finite() && count_noise_std >= 0.0) {
            return Err(DpError::invalid(
                "count_noise_std",
                count_noise_std,
                "a finite standard deviation ≥ 0",
            ));
        }
        Ok(Self {
            clip: initial_clip,
            target_quantile,
            learning_rate,
            count_noise_std,
        })
    }

    /// The current clipping bound C.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// The bit a site reports for an update of norm `norm`: whether it was not clipped.
    pub fn unclipped(&self, norm: f64) -> bool {
        norm <= self.clip
    }

    /// Updates C from `unclipped` of `participants` reported bits, with `expected_sites` the
    /// expected number of participants `m` (> 0). Returns the new C.
    pub fn update<R: CryptoRng + ?Sized>(
        &mut self,
        unclipped: usize,
        participants: usize,
        expected_sites: f64,
        rng: &mut R,
    ) -> Result<f64, DpError> {
        if unclipped > participants {
            return Err(DpError::invalid(
                "unclipped",
                unclipped as f64,
                "at most the number of participants",
            ));
        }
        if !(expected_sites.is_finite() && expected_sites > 0.0) {
            return Err(DpError::invalid(
                "expected_sites",
                expected_sites,
                "a finite expected number of sites > 0",
            ));
        }
        let mut centred = [(unclipped as f64 - 0.5 * participants as f64) as f32];
        add_gaussian_noise(&mut centred, self.count_noise_std, rng)?;
        let fraction = f64::from(centred[0]) / expected_sites + 0.5;
        let next = self.clip * (-self.learning_rate * (fraction - self.target_quantile)).exp();
        // Keep C a usable bound even after a run of extreme noise draws.
        if next.is_finite() && next > 0.0 {
            self.clip = next;
        }
        Ok(self.clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn clipping_scales_only_above_the_bound() {
        let mut v = [3.0_f32, 4.0];
        assert_eq!(clip_l2(&mut v, 10.0), 5.0);
        assert_eq!(v, [3.0, 4.0]);
        assert_eq!(clip_l2(&mut v, 5.0), 5.0);
        assert_eq!(v, [3.0, 4.0]);
        assert_eq!(clip_l2(&mut v, 1.0), 5.0);
        assert!((l2_norm(&v) - 1.0).abs() < 1e-6);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);

        let mut w = [1.0_f32, f32::NAN];
        assert!(clip_l2(&mut w, 1.0).is_nan());
        assert_eq!(w, [0.0, 0.0]);
        let mut w = [1.0_f32, 1.0];
        clip_l2(&mut w, f64::NAN);
        assert_eq!(w, [0.0, 0.0]);
        let mut w = [1e30_f32, 1.0];
        clip_l2(&mut w, f64::INFINITY);
        assert_eq!(w, [1e30, 1.0]);
    }

    #[test]
    fn noise_has_the_requested_spread() {
        let g = GaussianNoise::new(1.5, 2.0).unwrap();
        assert_eq!(g.central_std(), 3.0);
        assert_eq!(g.distributed_std(9).unwrap(), 1.0);
        assert!(g.distributed_std(0).is_err());

        let mut rng = rng();
        let n = 100_000;
        let mut v = vec![1.0_f32; n];
        g.add_central(&mut v, &mut rng).unwrap();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 3.0).abs() < 0.05, "{}", var.sqrt());

        // The sum of n distributed shares has the central spread.
        let sites = 16;
        let mut total = vec![0.0_f64; 20_000];
        for _ in 0..sites {
            let mut share = vec![0.0_f32; total.len()];
            g.add_distributed(&mut share, sites, &mut rng).unwrap();
            for (t, s) in total.iter_mut().zip(&share) {
                *t += f64::from(*s);
            }
        }
        let sd = (total.iter().map(|x| x * x).sum::<f64>() / total.len() as f64).sqrt();
        assert!((sd - 3.0).abs() < 0.1, "{sd}");
    }

    #[test]
    fn seeded_noise_is_reproducible_and_os_seeded_is_not() {
        let g = GaussianNoise::new(1.0, 1.0).unwrap();
        let (mut a, mut b) = (vec![0.0_f32; 8], vec![0.0_f32; 8]);
        g.add_central(&mut a, &mut rng()).unwrap();
        g.add_central(&mut b, &mut rng()).unwrap();
        assert_eq!(a, b);
        let (mut c, mut d) = (vec![0.0_f32; 8], vec![0.0_f32; 8]);
        g.add_central(&mut c, &mut secure_rng().unwrap()).unwrap();
        g.add_central(&mut d, &mut secure_rng().unwrap()).unwrap();
        assert_ne!(c, d);
    }

    #[test]
    fn invalid_mechanism_parameters() {
        assert!(GaussianNoise::new(-1.0, 1.0).is_err());
        assert!(GaussianNoise::new(f64::NAN, 1.0).is_err());
        assert!(GaussianNoise::new(1.0, 0.0).is_err());
        assert!(add_gaussian_noise(&mut [0.0], f64::NAN, &mut rng()).is_err());
        let e = GaussianNoise::new(1.0, -2.0).unwrap_err().to_string();
        assert!(e.contains("clip"), "{e}");
    }

    #[test]
    fn adaptive_clipping_tracks_the_quantile() {
        // Norms uniform on [0, 10]: the median is 5.
        let mut ac = AdaptiveClipping::new(0.5, 0.5, 0.2, 0.0).unwrap();
        let mut rng = rng();
        let norms: Vec<f64> = (0..100).map(|i| f64::from(i) / 9.9).collect();
        for _ in 0..300 {
            let unclipped = norms.iter().filter(|&&n| ac.unclipped(n)).count();
            ac.update(unclipped, norms.len(), norms.len() as f64, &mut rng)
                .unwrap();
        }
        assert!((ac.clip() - 5.0).abs() < 0.3, "{}", ac.clip());

        // With count noise it still gets there, roughly.
        let mut ac = AdaptiveClipping::new(20.0, 0.5, 0.2, 5.0).unwrap();
        for _ in 0..500 {
            let unclipped = norms.iter().filter(|&&n| ac.unclipped(n)).count();
            ac.update(unclipped, norms.len(), norms.len() as f64, &mut rng)
                .unwrap();
        }
        assert!((ac.clip() - 5.0).abs() < 1.5, "{}", ac.clip());
        assert!(ac.update(5, 4, 4.0, &mut rng).is_err());
    }

    #[test]
    fn update_noise_multiplier_of_adaptive_clipping() {
        // z = 1, σ_b = m/20 with m = 100: σ_Δ = (1 − 1/100)^(−1/2).
        let s = adaptive_update_noise_multiplier(1.0, 5.0).unwrap();
        assert!((s - (1.0_f64 - 0.01).powf(-0.5)).abs() < 1e-12);
        assert_eq!(
            adaptive_update_noise_multiplier(1.0, f64::INFINITY).unwrap(),
            1.0
        );
        assert!(adaptive_update_noise_multiplier(1.0, 0.5).is_err());
        assert!(adaptive_update_noise_multiplier(0.0, 5.0).is_err());
    }
}
