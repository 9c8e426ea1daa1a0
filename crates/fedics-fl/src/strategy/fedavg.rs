//! FedAvg and FedProx.
//!
//! * H. B. McMahan, E. Moore, D. Ramage, S. Hampson, B. Agüera y Arcas, "Communication-Efficient
//!   Learning of Deep Networks from Decentralized Data", AISTATS 2017 (Algorithm 1: the server
//!   sets `w ← Σₖ (nₖ/n) wₖ`).
//! * T. Li, A. K. Sahu, M. Zaheer, M. Sanjabi, A. Talwalkar, V. Smith, "Federated Optimization
//!   in Heterogeneous Networks", MLSys 2020 (Algorithm 2: each client approximately minimises
//!   `hₖ(w; wᵗ) = Fₖ(w) + μ/2‖w − wᵗ‖²`; the server averages as FedAvg).

use super::{
    Aggregate, ClientInfo, ClientUpdate, RoundPlan, RoundSettings, Strategy, StrategyError,
    distance, finish, squared_distance, validate, weighted_mean,
};

/// Federated averaging: the new global model is the example-weighted mean of the clients'
/// parameters, `Σₖ nₖ·wₖ / Σₖ nₖ` (McMahan et al. 2017). Clients with zero examples get
/// zero weight. Not robust: one client can move the result arbitrarily far.
#[derive(Debug, Clone, Default)]
pub struct FedAvg {
    settings: RoundSettings,
}

impl FedAvg {
    /// FedAvg with the given round settings.
    pub fn new(settings: RoundSettings) -> Self {
        Self { settings }
    }
}

impl Strategy for FedAvg {
    fn name(&self) -> &str {
        "fedavg"
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
        let params = weighted_mean(&v.accepted, global.len(), v.total_examples);
        let step = distance(&params, global);
        Ok(finish(
            params,
            &v.accepted,
            v.rejected,
            [("agg.update_norm", step)],
        ))
    }
}

/// FedProx (Li et al. 2020): the round plan carries the proximal coefficient μ, with which each
/// client adds `μ/2‖w − w_global‖²` to its local loss (gradient: [`proximal_gradient`]);
/// aggregation is FedAvg's. μ = 0 is FedAvg.
#[derive(Debug, Clone)]
pub struct FedProx {
    mu: f32,
    inner: FedAvg,
}

impl FedProx {
    /// FedProx with proximal coefficient `mu` (≥ 0; validated by [`super::StrategyConfig`]).
    pub fn new(mu: f32, settings: RoundSettings) -> Self {
        Self {
            mu,
            inner: FedAvg::new(settings),
        }
    }

    /// The proximal coefficient μ.
    pub fn mu(&self) -> f32 {
        self.mu
    }
}

impl Strategy for FedProx {
    fn name(&self) -> &str {
        "fedprox"
    }

    fn configure_round(&self, round: u32, clients: &[ClientInfo]) -> RoundPlan {
        self.inner.settings.plan(round, clients, self.mu, 1)
    }

    fn aggregate(
        &mut self,
        round: u32,
        global: &[f32],
        results: &[ClientUpdate],
    ) -> Result<Aggregate, StrategyError> {
        self.inner.aggregate(round, global, results)
    }
}

/// Gradient of FedProx's proximal term `μ/2‖w − w_global‖²` with respect to `w`:
/// `μ·(w − w_global)`. The trainer adds it to the loss gradient (or use
/// [`add_proximal_gradient`] to do so in place).
///
/// # Errors
/// [`StrategyError::ProximalLength`] when the vectors differ in length.
pub fn proximal_gradient(w: &[f32], w_global: &[f32], mu: f32) -> Result<Vec<f32>, StrategyError> {
    check_lengths(w, w_global)?;
    Ok(w.iter()
        .zip(w_global)
        .map(|(&x, &g)| mu * (x - g))
        .collect())
}

/// Adds `μ·(w − w_global)` to `grad` in place (no allocation).
///
/// # Errors
/// [`StrategyError::ProximalLength`] when `w`, `w_global` and `grad` are not all equally long.
pub fn add_proximal_gradient(
    grad: &mut [f32],
    w: &[f32],
    w_global: &[f32],
    mu: f32,
) -> Result<(), StrategyError> {
    check_lengths(w, w_global)?;
    if grad.len() != w.len() {
        return Err(StrategyError::ProximalLength {
            local: w.len(),
            global: grad.len(),
        });
    }
    for ((g, &x), &wg) in grad.iter_mut().zip(w).zip(w_global) {
        *g += mu * (x - wg);
    }
    Ok(())
}

/// The proximal term's value `μ/2‖w − w_global‖²`, for logging the local objective.
///
/// # Errors
/// [`StrategyError::ProximalLength`] when the vectors differ in length.
pub fn proximal_term(w: &[f32], w_global: &[f32], mu: f32) -> Result<f64, StrategyError> {
    check_lengths(w, w_global)?;
    Ok(0.5 * f64::from(mu) * squared_distance(w, w_global))
}

fn check_lengths(w: &[f32], w_global: &[f32]) -> Result<(), StrategyError> {
    if w.len() == w_global.len() {
        Ok(())
    } else {
        Err(StrategyError::ProximalLength {
            local: w.len(),
            global: w_global.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::ClientEvaluation;

    fn upd(id: &str, p: &[f32], n: u64) -> ClientUpdate {
        ClientUpdate::new(id, p.to_vec(), n)
    }

    #[test]
    fn fedavg_weights_by_examples() {
        // (1·[1, 2] + 3·[3, 4]) / 4 = [2.5, 3.5]
        let mut s = FedAvg::default();
        let a = s
            .aggregate(
                1,
                &[0.0, 0.0],
                &[upd("a", &[1.0, 2.0], 1), upd("b", &[3.0, 4.0], 3)],
            )
            .unwrap();
        assert_eq!(a.params, vec![2.5, 3.5]);
        assert!(a.excluded.is_empty());
        assert_eq!(a.metrics["agg.num_clients"], 2.0);
        assert_eq!(a.metrics["agg.total_examples"], 4.0);
    }

    #[test]
    fn fedavg_zero_example_client_has_no_weight() {
        let mut s = FedAvg::default();
        let a = s
            .aggregate(1, &[0.0], &[upd("a", &[1.0], 0), upd("b", &[5.0], 2)])
            .unwrap();
        assert_eq!(a.params, vec![5.0]);
    }

    #[test]
    fn fedavg_metrics_weighted_by_examples() {
        let mut s = FedAvg::default();
        let r = [
            upd("a", &[0.0], 1)
                .with_metric("loss", 1.0)
                .with_metric("acc", 0.5),
            upd("b", &[0.0], 3).with_metric("loss", 3.0),
            upd("c", &[0.0], 4).with_metric("loss", f64::NAN),
        ];
        let a = s.aggregate(1, &[0.0], &r).unwrap();
        // loss: (1·1 + 3·3) / 4 (c's NaN skipped); acc only from a.
        assert_eq!(a.metrics["loss"], 2.5);
        assert_eq!(a.metrics["acc"], 0.5);
    }

    #[test]
    fn fedavg_rejects_non_finite_client() {
        let mut s = FedAvg::default();
        let r = [
            upd("a", &[1.0, 1.0], 1),
            upd("bad", &[f32::NAN, 0.0], 100),
            upd("c", &[3.0, 3.0], 1),
            upd("inf", &[0.0, f32::INFINITY], 100),
        ];
        let a = s.aggregate(1, &[0.0, 0.0], &r).unwrap();
        assert_eq!(a.params, vec![2.0, 2.0]);
        assert_eq!(a.excluded, vec!["bad".to_string(), "inf".to_string()]);
        assert_eq!(a.metrics["agg.num_excluded"], 2.0);
    }

    #[test]
    fn fedavg_input_errors() {
        let mut s = FedAvg::default();
        assert_eq!(s.aggregate(1, &[0.0], &[]), Err(StrategyError::NoResults));
        assert_eq!(
            s.aggregate(1, &[], &[upd("a", &[], 1)]),
            Err(StrategyError::EmptyModel)
        );
        assert_eq!(
            s.aggregate(1, &[0.0, f32::NAN], &[upd("a", &[0.0, 0.0], 1)]),
            Err(StrategyError::NonFiniteGlobal { index: 1 })
        );
        let err = s
            .aggregate(
                1,
                &[0.0, 0.0],
                &[upd("a", &[0.0, 0.0], 1), upd("b", &[0.0], 1)],
            )
            .unwrap_err();
        assert_eq!(
            err,
            StrategyError::LengthMismatch {
                client_id: "b".into(),
                expected: 2,
                actual: 1
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("client b") && msg.contains('1') && msg.contains('2'),
            "{msg}"
        );
        assert_eq!(
            s.aggregate(1, &[0.0], &[upd("a", &[0.0], 0), upd("b", &[1.0], 0)]),
            Err(StrategyError::ZeroExamples { clients: 2 })
        );
        assert_eq!(
            s.aggregate(1, &[0.0], &[upd("a", &[0.0], 1), upd("a", &[1.0], 1)]),
            Err(StrategyError::DuplicateClient {
                client_id: "a".into()
            })
        );
        assert_eq!(
            s.aggregate(1, &[0.0], &[upd("a", &[f32::NAN], 1)]),
            Err(StrategyError::AllRejected { rejected: 1 })
        );
    }

    #[test]
    fn fedprox_aggregates_as_fedavg_and_plans_mu() {
        let mut p = FedProx::new(0.01, RoundSettings::default());
        let a = p
            .aggregate(
                1,
                &[0.0, 0.0],
                &[upd("a", &[1.0, 2.0], 1), upd("b", &[3.0, 4.0], 3)],
            )
            .unwrap();
        assert_eq!(a.params, vec![2.5, 3.5]);
        let plan = p.configure_round(3, &[ClientInfo::new("b", 1), ClientInfo::new("a", 1)]);
        assert_eq!(plan.proximal_mu, 0.01);
        assert_eq!(plan.clients, vec!["a", "b"]);
        assert_eq!(plan.round, 3);
        assert_eq!(FedAvg::default().configure_round(1, &[]).proximal_mu, 0.0);
    }

    #[test]
    fn proximal_gradient_and_term() {
        // 0.5·([1, 2] − [0, 1]) = [0.5, 0.5]; term = 0.5/2·(1 + 1) = 0.5
        assert_eq!(
            proximal_gradient(&[1.0, 2.0], &[0.0, 1.0], 0.5).unwrap(),
            vec![0.5, 0.5]
        );
        assert_eq!(proximal_term(&[1.0, 2.0], &[0.0, 1.0], 0.5).unwrap(), 0.5);
        let mut g = vec![1.0, -1.0];
        add_proximal_gradient(&mut g, &[1.0, 2.0], &[0.0, 1.0], 0.5).unwrap();
        assert_eq!(g, vec![1.5, -0.5]);
        assert_eq!(
            proximal_gradient(&[1.0], &[0.0, 1.0], 0.5),
            Err(StrategyError::ProximalLength {
                local: 1,
                global: 2
            })
        );
        assert!(add_proximal_gradient(&mut [0.0], &[1.0, 2.0], &[0.0, 1.0], 0.5).is_err());
    }

    #[test]
    fn evaluate_weights_by_examples() {
        let s = FedAvg::default();
        let e = |id: &str, n, loss| ClientEvaluation {
            client_id: id.into(),
            num_examples: n,
            metrics: [("loss".to_string(), loss)].into_iter().collect(),
        };
        let sum = s.evaluate(1, &[e("a", 10, 0.2), e("b", 30, 0.6)]).unwrap();
        assert!((sum.metrics["loss"] - 0.5).abs() < 1e-12);
        assert_eq!(sum.total_examples, 40);
        assert_eq!(sum.num_clients, 2);
        assert_eq!(s.evaluate(1, &[]), Err(StrategyError::NoResults));
        assert_eq!(
            s.evaluate(1, &[e("a", 0, 0.2)]),
            Err(StrategyError::ZeroExamples { clients: 1 })
        );
    }

    #[test]
    fn from_delta_adds_global() {
        let u = ClientUpdate::from_delta("a", &[1.0, 2.0], &[0.5, -1.0], 3).unwrap();
        assert_eq!(u.params, vec![1.5, 1.0]);
        assert!(ClientUpdate::from_delta("a", &[1.0, 2.0], &[0.5], 3).is_err());
    }
}
