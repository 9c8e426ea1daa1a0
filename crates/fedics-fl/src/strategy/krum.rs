//! Krum and Multi-Krum.
//!
//! P. Blanchard, E. M. El Mhamdi, R. Guerraoui, J. Stainer, "Machine Learning with
//! Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017 (Section 4): with n
//! clients of which at most f are Byzantine and `n > 2f + 2`, the score of client i is
//! `s(i) = Σ_{i→j} ‖Vᵢ − Vⱼ‖²` over its `n − f − 2` nearest other clients; Krum outputs the
//! vector of least score, Multi-Krum the mean of the m vectors of least score.
//!
//! Distances between the clients' parameters equal those between their updates (the global
//! model cancels), so the parameters are used directly. The `n(n − 1)/2` pairwise squared
//! distances are computed once, in `f64`. Score ties are broken by client id, which makes the
//! choice independent of the order of the results. Selection ignores `num_examples` and the
//! Multi-Krum mean is unweighted, as in the paper. `n` counts the clients left after the
//! rejection of non-finite ones.

use super::{
    Aggregate, ClientInfo, ClientUpdate, RoundPlan, RoundSettings, Strategy, StrategyError, finish,
    squared_distance, validate,
};

/// Krum (`m = 1`) or Multi-Krum (Blanchard et al. 2017). Clients not selected are reported in
/// [`Aggregate::excluded`].
#[derive(Debug, Clone)]
pub struct Krum {
    f: usize,
    /// `None`: Multi-Krum with `m = n − f`.
    m: Option<usize>,
    multi: bool,
    settings: RoundSettings,
}

impl Krum {
    /// Krum tolerating `f` Byzantine clients: selects the single best-scored client.
    pub fn single(f: usize, settings: RoundSettings) -> Self {
        Self {
            f,
            m: Some(1),
            multi: false,
            settings,
        }
    }

    /// Multi-Krum tolerating `f` Byzantine clients, averaging the `m` best-scored clients
    /// (`None`: `m = n − f`). `m` must lie in `1..=n − f`, checked when aggregating.
    pub fn multi(f: usize, m: Option<usize>, settings: RoundSettings) -> Self {
        Self {
            f,
            m,
            multi: true,
            settings,
        }
    }

    fn strategy_name(&self) -> &'static str {
        if self.multi { "multi-krum" } else { "krum" }
    }

    /// Krum scores of `vectors` (each the same length) for `f` Byzantine clients; requires
    /// `n > 2f + 2`. Returns one score per vector, in input order.
    ///
    /// # Errors
    /// [`StrategyError::TooFewClients`] when `n ≤ 2f + 2`; [`StrategyError::LengthMismatch`]
    /// (client named by its index, `#i`) when a vector's length differs from the first's.
    pub fn scores(&self, vectors: &[&[f32]]) -> Result<Vec<f64>, StrategyError> {
        let n = vectors.len();
        let f = self.f;
        if n <= 2 * f + 2 {
            return Err(StrategyError::TooFewClients {
                strategy: self.strategy_name(),
                n,
                f,
            });
        }
        if let Some((i, v)) = vectors
            .iter()
            .enumerate()
            .find(|(_, v)| v.len() != vectors[0].len())
        {
            return Err(StrategyError::LengthMismatch {
                client_id: format!("#{i}"),
                expected: vectors[0].len(),
                actual: v.len(),
            });
        }
        // Symmetric matrix of squared distances, filled from the upper triangle.
        let mut d2 = vec![0.0_f64; n * n];
        for i in 0..n {
            for j in (i + 1)..n {
                let d = squared_distance(vectors[i], vectors[j]);
                d2[i * n + j] = d;
                d2[j * n + i] = d;
            }
        }
        let neighbours = n - f - 2;
        let mut row = Vec::with_capacity(n - 1);
        let scores = (0..n)
            .map(|i| {
                row.clear();
                row.extend((0..n).filter(|&j| j != i).map(|j| d2[i * n + j]));
                // Sorting (n ≤ a few dozen) rather than selecting fixes the summation order,
                // so a score does not depend on the order of the results.
                row.sort_unstable_by(f64::total_cmp);
                row[..neighbours].iter().sum::<f64>()
            })
            .collect();
        Ok(scores)
    }
}

impl Strategy for Krum {
    fn name(&self) -> &str {
        self.strategy_name()
    }

    fn configure_round(&self, round: u32, clients: &[ClientInfo]) -> RoundPlan {
        self.settings.plan(round, clients, 0.0, 2 * self.f + 3)
    }

    fn aggregate(
        &mut self,
        _round: u32,
        global: &[f32],
        results: &[ClientUpdate],
    ) -> Result<Aggregate, StrategyError> {
        let v = validate(global, results)?;
        let n = v.accepted.len();
        let vectors: Vec<&[f32]> = v.accepted.iter().map(|c| c.params.as_slice()).collect();
        let scores = self.scores(&vectors)?;
        let f = self.f;
        let m = self.m.unwrap_or(n - f);
        if m == 0 || m > n - f {
            return Err(StrategyError::InvalidSelection { m, n, f });
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            scores[a]
                .total_cmp(&scores[b])
                .then_with(|| v.accepted[a].client_id.cmp(&v.accepted[b].client_id))
        });
        let (chosen, dropped) = order.split_at(m);
        let selected: Vec<&ClientUpdate> = chosen.iter().map(|&i| v.accepted[i]).collect();
        let params = if let [only] = selected.as_slice() {
            only.params.clone()
        } else {
            let mut acc = vec![0.0_f64; global.len()];
            for c in &selected {
                for (a, &x) in acc.iter_mut().zip(&c.params) {
                    *a += f64::from(x);
                }
            }
            let k = m as f64;
            acc.into_iter().map(|a| (a / k) as f32).collect()
        };
        let mut excluded = v.rejected;
        excluded.extend(dropped.iter().map(|&i| v.accepted[i].client_id.clone()));
        let best = scores[order[0]];
        Ok(finish(
            params,
            &selected,
            excluded,
            [("agg.krum_best_score", best), ("agg.selected", m as f64)],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: &[(&str, f32)]) -> Vec<ClientUpdate> {
        points
            .iter()
            .map(|&(id, x)| ClientUpdate::new(id, vec![x], 10))
            .collect()
    }

    fn sample() -> Vec<ClientUpdate> {
        line(&[("a", 0.0), ("b", 1.0), ("c", 2.5), ("d", 3.0), ("e", 100.0)])
    }

    #[test]
    fn scores_match_hand_computation() {
        // n = 5, f = 1 → 2 nearest neighbours.
        // a: 1 + 6.25; b: 1 + 2.25; c: 0.25 + 2.25; d: 0.25 + 4; e: 97² + 97.5².
        let k = Krum::single(1, RoundSettings::default());
        let r = sample();
        let v: Vec<&[f32]> = r.iter().map(|c| c.params.as_slice()).collect();
        assert_eq!(
            k.scores(&v).unwrap(),
            vec![7.25, 3.25, 2.5, 4.25, 9409.0 + 9506.25]
        );
    }

    #[test]
    fn krum_picks_lowest_score() {
        let a = Krum::single(1, RoundSettings::default())
            .aggregate(1, &[0.0], &sample())
            .unwrap();
        assert_eq!(a.params, vec![2.5]);
        assert_eq!(a.excluded, vec!["a", "b", "d", "e"]);
        assert_eq!(a.metrics["agg.krum_best_score"], 2.5);
    }

    #[test]
    fn multi_krum_averages_m_best() {
        // m = 3: c, b, d → (2.5 + 1 + 3)/3.
        let a = Krum::multi(1, Some(3), RoundSettings::default())
            .aggregate(1, &[0.0], &sample())
            .unwrap();
        assert!((a.params[0] - 6.5 / 3.0).abs() < 1e-6);
        assert_eq!(a.excluded, vec!["a", "e"]);
        // Default m = n − f = 4: c, b, d, a → 6.5/4; only the outlier is excluded.
        let a = Krum::multi(1, None, RoundSettings::default())
            .aggregate(1, &[0.0], &sample())
            .unwrap();
        assert_eq!(a.params, vec![1.625]);
        assert_eq!(a.excluded, vec!["e"]);
    }

    #[test]
    fn needs_more_than_2f_plus_2() {
        let mut k = Krum::single(2, RoundSettings::default());
        let err = k.aggregate(1, &[0.0], &sample()).unwrap_err();
        assert_eq!(
            err,
            StrategyError::TooFewClients {
                strategy: "krum",
                n: 5,
                f: 2
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("n = 5") && msg.contains("f = 2"), "{msg}");
        // A NaN client does not count towards n: 4 valid clients with f = 1 is too few.
        let mut r = sample();
        r[0].params[0] = f32::NAN;
        assert!(matches!(
            Krum::single(1, RoundSettings::default()).aggregate(1, &[0.0], &r),
            Err(StrategyError::TooFewClients { n: 4, f: 1, .. })
        ));
        assert_eq!(
            Krum::single(1, RoundSettings::default())
                .configure_round(1, &[])
                .min_results,
            5
        );
    }

    #[test]
    fn multi_krum_m_bounds() {
        for m in [0, 5] {
            assert_eq!(
                Krum::multi(1, Some(m), RoundSettings::default()).aggregate(1, &[0.0], &sample()),
                Err(StrategyError::InvalidSelection { m, n: 5, f: 1 })
            );
        }
    }

    #[test]
    fn ties_broken_by_client_id() {
        // Symmetric points: "x" and "y" at ±1 have equal scores around "o" at 0 with f = 0
        // (n − 2 = 1 neighbour: both score 1, "o" scores 1 too); the smallest id wins.
        let r = line(&[("y", 1.0), ("o", 0.0), ("x", -1.0)]);
        let a = Krum::single(0, RoundSettings::default())
            .aggregate(1, &[0.0], &r)
            .unwrap();
        assert_eq!(a.params, vec![0.0]);
        let r = line(&[("y", 1.0), ("x", -1.0), ("z", 5.0), ("w", -5.0), ("v", 0.0)]);
        // f = 0, 3 neighbours: v: 1 + 1 + 25 = 27; x: 1 + 4 + 16 = 21; y: 1 + 4 + 16 = 21 → x.
        let a = Krum::single(0, RoundSettings::default())
            .aggregate(1, &[0.0], &r)
            .unwrap();
        assert_eq!(a.params, vec![-1.0]);
    }
}
