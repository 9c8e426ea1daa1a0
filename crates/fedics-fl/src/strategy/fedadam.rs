//! FedAdam: Adam as the server optimiser.
//!
//! S. J. Reddi, Z. Charles, M. Zaheer, Z. Garrett, K. Rush, J. Konečný, S. Kumar,
//! H. B. McMahan, "Adaptive Federated Optimization", ICLR 2021, Algorithm 2 (FedAdam):
//!
//! ```text
//! Δₜ = mean of the client deltas (here weighted by examples) = weighted mean(wₖ) − xₜ
//! mₜ = β₁ mₜ₋₁ + (1 − β₁) Δₜ
//! vₜ = β₂ vₜ₋₁ + (1 − β₂) Δₜ²
//! xₜ₊₁ = xₜ + η mₜ / (√vₜ + τ)
//! ```
//!
//! with `m₋₁ = 0`, `v₋₁ = τ²` (the paper requires `v₋₁ ≥ τ²`) and, as in the paper, no bias
//! correction. The paper's defaults are used: β₁ = 0.9, β₂ = 0.99, τ = 10⁻³; the server
//! learning rate η is tuned per task in the paper (grid 10⁻³ … 10¹), we default to 10⁻².

use super::{
    Aggregate, ClientInfo, ClientUpdate, RoundPlan, RoundSettings, Strategy, StrategyError, finish,
    validate, weighted_mean,
};

/// Server-side Adam on the pseudo-gradient (Reddi et al. 2021). Keeps `m` and `v` across
/// rounds; they are sized on the first successful [`Strategy::aggregate`] and a later model of
/// another size is an error ([`StrategyError::StateMismatch`]) until [`FedAdam::reset`].
#[derive(Debug, Clone)]
pub struct FedAdam {
    eta: f64,
    beta1: f64,
    beta2: f64,
    tau: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    settings: RoundSettings,
}

impl FedAdam {
    /// Default server learning rate η.
    pub const DEFAULT_ETA: f64 = 1e-2;
    /// Default first-moment decay β₁ (paper).
    pub const DEFAULT_BETA1: f64 = 0.9;
    /// Default second-moment decay β₂ (paper).
    pub const DEFAULT_BETA2: f64 = 0.99;
    /// Default adaptivity τ (paper).
    pub const DEFAULT_TAU: f64 = 1e-3;

    /// FedAdam with the given hyper-parameters (validated by [`super::StrategyConfig`]:
    /// η > 0, β₁, β₂ ∈ [0, 1), τ > 0).
    pub fn new(eta: f64, beta1: f64, beta2: f64, tau: f64, settings: RoundSettings) -> Self {
        Self {
            eta,
            beta1,
            beta2,
            tau,
            m: Vec::new(),
            v: Vec::new(),
            settings,
        }
    }

    /// Forgets the optimiser state (e.g. after the model architecture changed).
    pub fn reset(&mut self) {
        self.m.clear();
        self.v.clear();
    }

    /// The first-moment state `m` (empty before the first round).
    pub fn first_moment(&self) -> &[f64] {
        &self.m
    }

    /// The second-moment state `v` (empty before the first round).
    pub fn second_moment(&self) -> &[f64] {
        &self.v
    }
}

impl Default for FedAdam {
    fn default() -> Self {
        Self::new(
            Self::DEFAULT_ETA,
            Self::DEFAULT_BETA1,
            Self::DEFAULT_BETA2,
            Self::DEFAULT_TAU,
            RoundSettings::default(),
        )
    }
}

impl Strategy for FedAdam {
    fn name(&self) -> &str {
        "fedadam"
    }

    fn configure_round(&self, round: u32, clients: &[ClientInfo]) -> RoundPlan {
        self.settings.plan(round, clients, 0.0, 1)
    }

    fn aggregate(
        &mut self,
        _round: u32,
        global: &[f32],
        results: &[ClientUpdate],
    ) -> Result<Aggregate, StrategyError> {
        let v = validate(global, results)?;
        if !self.m.is_empty() && self.m.len() != global.len() {
            return Err(StrategyError::StateMismatch {
                state: self.m.len(),
                global: global.len(),
            });
        }
        if self.m.is_empty() {
            self.m = vec![0.0; global.len()];
            self.v = vec![self.tau * self.tau; global.len()];
        }
        let mean = weighted_mean(&v.accepted, global.len(), v.total_examples);
        let (b1, b2) = (self.beta1, self.beta2);
        let mut delta_sq = 0.0;
        let mut step_sq = 0.0;
        let params = global
            .iter()
            .zip(mean)
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
            .map(|((&x, avg), (m, s))| {
                let x = f64::from(x);
                let delta = f64::from(avg) - x;
                *m = b1 * *m + (1.0 - b1) * delta;
                *s = b2 * *s + (1.0 - b2) * delta * delta;
                let step = self.eta * *m / (s.sqrt() + self.tau);
                delta_sq += delta * delta;
                step_sq += step * step;
                (x + step) as f32
            })
            .collect();
        Ok(finish(
            params,
            &v.accepted,
            v.rejected,
            [
                ("agg.pseudo_gradient_norm", delta_sq.sqrt()),
                ("agg.update_norm", step_sq.sqrt()),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(results: &[f32]) -> Vec<ClientUpdate> {
        vec![
            ClientUpdate::new("a", results.to_vec(), 1),
            ClientUpdate::new("b", results.to_vec(), 1),
        ]
    }

    #[test]
    fn two_rounds_match_hand_computation() {
        // η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-3, x₀ = [1, 2], clients' mean [1.5, 1] each round.
        // Round 1: Δ = [0.5, −1], m = [0.05, −0.1], v = 0.99·1e-6 + 0.01·Δ² = [0.00250099, 0.01000099],
        // x₁ = x₀ + 0.1·m/(√v + 1e-3) = [1.0980202, 1.9009950].
        // Round 2: Δ = [1.5 − x₁₀, 1 − x₁₁], x₂ = [1.2291593, 1.7678192] (computed in f64).
        let mut s = FedAdam::new(0.1, 0.9, 0.99, 1e-3, RoundSettings::default());
        let a = s.aggregate(1, &[1.0, 2.0], &same(&[1.5, 1.0])).unwrap();
        assert!((a.params[0] - 1.098_020_2).abs() < 1e-6, "{:?}", a.params);
        assert!((a.params[1] - 1.900_995).abs() < 1e-6, "{:?}", a.params);
        assert!((s.first_moment()[0] - 0.05).abs() < 1e-12);
        assert!((s.second_moment()[1] - 0.010_000_99).abs() < 1e-12);
        let b = s.aggregate(2, &a.params, &same(&[1.5, 1.0])).unwrap();
        assert!((b.params[0] - 1.229_159_3).abs() < 1e-5, "{:?}", b.params);
        assert!((b.params[1] - 1.767_819_2).abs() < 1e-5, "{:?}", b.params);
        assert!((a.metrics["agg.pseudo_gradient_norm"] - 1.25_f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn state_mismatch_and_reset() {
        let mut s = FedAdam::default();
        s.aggregate(1, &[0.0, 0.0], &same(&[1.0, 1.0])).unwrap();
        assert_eq!(
            s.aggregate(2, &[0.0], &same(&[1.0])),
            Err(StrategyError::StateMismatch {
                state: 2,
                global: 1
            })
        );
        s.reset();
        assert!(s.aggregate(2, &[0.0], &same(&[1.0])).is_ok());
    }

    #[test]
    fn error_leaves_state_untouched() {
        let mut s = FedAdam::default();
        s.aggregate(1, &[0.0], &same(&[1.0])).unwrap();
        let m = s.first_moment().to_vec();
        assert!(
            s.aggregate(2, &[0.0], &[ClientUpdate::new("a", vec![1.0], 0)])
                .is_err()
        );
        assert_eq!(s.first_moment(), &m[..]);
    }

    #[test]
    fn moves_towards_client_mean() {
        let mut s = FedAdam::default();
        let mut x = vec![0.0_f32; 4];
        for round in 1..=200 {
            x = s
                .aggregate(round, &x, &same(&[1.0, -1.0, 0.5, 0.0]))
                .unwrap()
                .params;
        }
        assert!(
            (x[0] - 1.0).abs() < 0.1 && (x[1] + 1.0).abs() < 0.1,
            "{x:?}"
        );
        assert!(x[3].abs() < 1e-6);
    }
}
