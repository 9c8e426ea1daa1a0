//! Coordinate-wise median and trimmed mean.
//!
//! D. Yin, Y. Chen, K. Ramchandran, P. Bartlett, "Byzantine-Robust Distributed Learning:
//! Towards Optimal Statistical Rates", ICML 2018 (Definitions 1 and 2: for each coordinate,
//! the median of the n values; the β-trimmed mean removes the largest and the smallest β
//! fraction of the values and averages the rest).
//!
//! Both are unweighted (a client's claimed `num_examples` does not count) and work on the
//! parameters directly: the coordinate-wise median/trimmed mean of `global + Δₖ` is
//! `global +` that of the `Δₖ`, since both commute with a common shift.
//!
//! Cost: one scratch buffer of n values reused for every coordinate; the median uses
//! `select_nth_unstable_by` (O(n) per coordinate), the trimmed mean sorts the n values.

use super::{
    Aggregate, ClientInfo, ClientUpdate, RoundPlan, RoundSettings, Strategy, StrategyError, finish,
    validate,
};

/// Fills `scratch` with coordinate `j` of every client.
fn gather(scratch: &mut Vec<f32>, clients: &[&ClientUpdate], j: usize) {
    scratch.clear();
    scratch.extend(clients.iter().map(|c| c.params[j]));
}

/// Coordinate-wise median (Yin et al. 2018). For an even number of clients the median of a
/// coordinate is the mean of its two middle values. Tolerates fewer than half of the clients
/// being arbitrary.
#[derive(Debug, Clone, Default)]
pub struct Median {
    settings: RoundSettings,
}

impl Median {
    /// The median strategy with the given round settings.
    pub fn new(settings: RoundSettings) -> Self {
        Self { settings }
    }
}

/// Median of `values` (non-empty, finite); reorders them.
fn median_of(values: &mut [f32]) -> f32 {
    let n = values.len();
    let mid = n / 2;
    let (lower, upper, _) = values.select_nth_unstable_by(mid, f32::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        // The lower middle is the largest value left of the partition point.
        let below = lower.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        ((f64::from(below) + f64::from(upper)) / 2.0) as f32
    }
}

impl Strategy for Median {
    fn name(&self) -> &str {
        "median"
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
        let mut scratch = Vec::with_capacity(v.accepted.len());
        let params = (0..global.len())
            .map(|j| {
                gather(&mut scratch, &v.accepted, j);
                median_of(&mut scratch)
            })
            .collect();
        Ok(finish(params, &v.accepted, v.rejected, []))
    }
}

/// Coordinate-wise β-trimmed mean (Yin et al. 2018): per coordinate, drop the ⌊β·n⌋ largest
/// and ⌊β·n⌋ smallest values and average the remaining `n − 2⌊β·n⌋`. β ∈ [0, 0.5); with
/// ⌊β·n⌋ = 0 (few clients) it is the plain unweighted mean.
#[derive(Debug, Clone)]
pub struct TrimmedMean {
    beta: f64,
    settings: RoundSettings,
}

impl TrimmedMean {
    /// Trimmed mean with fraction `beta` (validated by [`super::StrategyConfig`]).
    pub fn new(beta: f64, settings: RoundSettings) -> Self {
        Self { beta, settings }
    }

    /// Values dropped at each end for `n` clients: ⌊β·n⌋, capped so that one value remains.
    pub fn trimmed_per_side(&self, n: usize) -> usize {
        // The small epsilon keeps e.g. 0.29·100 = 28.999999999999996 from flooring to 28.
        let k = (self.beta * n as f64 + 1e-9).floor().max(0.0) as usize;
        k.min(n.saturating_sub(1) / 2)
    }
}

impl Strategy for TrimmedMean {
    fn name(&self) -> &str {
        "trimmed-mean"
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
        let n = v.accepted.len();
        let k = self.trimmed_per_side(n);
        let kept = (n - 2 * k) as f64;
        let mut scratch = Vec::with_capacity(n);
        let params = (0..global.len())
            .map(|j| {
                gather(&mut scratch, &v.accepted, j);
                scratch.sort_unstable_by(f32::total_cmp);
                let sum: f64 = scratch[k..n - k].iter().map(|&x| f64::from(x)).sum();
                (sum / kept) as f32
            })
            .collect();
        Ok(finish(
            params,
            &v.accepted,
            v.rejected,
            [("agg.trimmed_per_side", k as f64)],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients(rows: &[&[f32]]) -> Vec<ClientUpdate> {
        rows.iter()
            .enumerate()
            .map(|(i, r)| ClientUpdate::new(format!("c{i}"), r.to_vec(), 1 + i as u64))
            .collect()
    }

    #[test]
    fn median_odd() {
        // Per coordinate: {1, 2, 100} → 2, {10, 20, 0} → 10, {3, 1, 2} → 2.
        let r = clients(&[&[1.0, 10.0, 3.0], &[2.0, 20.0, 1.0], &[100.0, 0.0, 2.0]]);
        let a = Median::default().aggregate(1, &[0.0; 3], &r).unwrap();
        assert_eq!(a.params, vec![2.0, 10.0, 2.0]);
    }

    #[test]
    fn median_even_averages_middle_pair() {
        // {1, 2, 3, 100} → (2 + 3)/2 = 2.5; {−4, 0, 4, 8} → 2.
        let r = clients(&[&[1.0, 8.0], &[100.0, -4.0], &[3.0, 0.0], &[2.0, 4.0]]);
        let a = Median::default().aggregate(1, &[0.0; 2], &r).unwrap();
        assert_eq!(a.params, vec![2.5, 2.0]);
    }

    #[test]
    fn median_ignores_example_counts() {
        let mut r = clients(&[&[1.0], &[2.0], &[3.0]]);
        r[2].num_examples = 1_000_000;
        assert_eq!(
            Median::default().aggregate(1, &[0.0], &r).unwrap().params,
            vec![2.0]
        );
    }

    #[test]
    fn trimmed_mean_drops_floor_beta_n_each_end() {
        // β = 0.25, n = 4 → k = 1: {1, 2, 3, 100} → (2 + 3)/2 = 2.5; {−50, 0, 4, 8} → 2.
        let r = clients(&[&[1.0, 8.0], &[100.0, -50.0], &[3.0, 0.0], &[2.0, 4.0]]);
        let mut s = TrimmedMean::new(0.25, RoundSettings::default());
        let a = s.aggregate(1, &[0.0; 2], &r).unwrap();
        assert_eq!(a.params, vec![2.5, 2.0]);
        assert_eq!(a.metrics["agg.trimmed_per_side"], 1.0);
        // β = 0.2, n = 5 → k = 1: {0, 1, 2, 6, 1000} → (1 + 2 + 6)/3 = 3.
        let r = clients(&[&[6.0], &[0.0], &[1000.0], &[2.0], &[1.0]]);
        let mut s = TrimmedMean::new(0.2, RoundSettings::default());
        assert_eq!(s.aggregate(1, &[0.0], &r).unwrap().params, vec![3.0]);
        // β = 0.2, n = 4 → k = 0: plain mean (1 + 2 + 3 + 6)/4 = 3.
        let r = clients(&[&[6.0], &[1.0], &[2.0], &[3.0]]);
        assert_eq!(s.aggregate(1, &[0.0], &r).unwrap().params, vec![3.0]);
    }

    #[test]
    fn trimmed_per_side_edges() {
        let s = TrimmedMean::new(0.29, RoundSettings::default());
        assert_eq!(s.trimmed_per_side(100), 29);
        let s = TrimmedMean::new(0.49, RoundSettings::default());
        assert_eq!(s.trimmed_per_side(2), 0);
        assert_eq!(s.trimmed_per_side(3), 1);
        assert_eq!(s.trimmed_per_side(1), 0);
        assert_eq!(
            TrimmedMean::new(0.0, RoundSettings::default()).trimmed_per_side(10),
            0
        );
    }

    #[test]
    fn rejected_clients_do_not_count_towards_n() {
        // The NaN client is rejected; median of the remaining {1, 2, 3} is 2.
        let r = clients(&[&[1.0], &[f32::NAN], &[2.0], &[3.0]]);
        let a = Median::default().aggregate(1, &[0.0], &r).unwrap();
        assert_eq!(a.params, vec![2.0]);
        assert_eq!(a.excluded, vec!["c1".to_string()]);
    }
}
