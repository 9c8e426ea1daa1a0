//! Privacy budget and the ledger that enforces it.
//!
//! A federated round that samples each site with probability `q` and noises the sum of the
//! updates clipped to `C` with `N(0, σ²C²)` is one step of the Poisson-subsampled Gaussian
//! mechanism. The [`Ledger`] composes the rounds in an [`RdpAccountant`] and checks each
//! round *before* it runs: [`Ledger::check_round`] computes the ε the ledger would have with
//! the round added, without committing it, and fails with [`DpError::BudgetExceeded`] when
//! that ε is above the budget; [`Ledger::record_round`] does the same check and commits.

use serde::{Deserialize, Serialize};

use super::DpError;
use super::rdp::{EpsilonAt, RdpAccountant, check_delta, check_q, check_sigma};

/// The (ε, δ) a training run may spend: ε at most `max_epsilon` at the fixed `delta`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyBudget {
    /// The largest ε allowed.
    pub max_epsilon: f64,
    /// The δ at which ε is measured, in (0, 1); commonly below 1 / (number of sites).
    pub delta: f64,
}

impl PrivacyBudget {
    /// A checked budget: `max_epsilon` finite and ≥ 0, `delta` in (0, 1).
    pub fn new(max_epsilon: f64, delta: f64) -> Result<Self, DpError> {
        let budget = Self { max_epsilon, delta };
        budget.validate()?;
        Ok(budget)
    }

    fn validate(&self) -> Result<(), DpError> {
        if !(self.max_epsilon.is_finite() && self.max_epsilon >= 0.0) {
            return Err(DpError::invalid(
                "max_epsilon",
                self.max_epsilon,
                "a finite ε ≥ 0",
            ));
        }
        check_delta(self.delta)?;
        Ok(())
    }
}

/// One recorded round.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The round number.
    pub round: u64,
    /// Sampling rate of the sites.
    pub q: f64,
    /// Noise multiplier.
    pub sigma: f64,
    /// Clipping bound of the round.
    pub clip: f64,
    /// ε spent up to and including this round, at the budget's δ.
    pub epsilon: f64,
    /// The RDP order at which that ε was attained.
    pub order: f64,
}

/// The record of a training run's privacy loss, refusing rounds past its budget.
///
/// Serializes as `{"budget", "accountant", "entries"}`; deserializing checks the budget and
/// that the rounds are in increasing order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LedgerState")]
pub struct Ledger {
    budget: PrivacyBudget,
    accountant: RdpAccountant,
    entries: Vec<LedgerEntry>,
}

/// The deserialized form of [`Ledger`], checked by `TryFrom`.
#[derive(Deserialize)]
struct LedgerState {
    budget: PrivacyBudget,
    accountant: RdpAccountant,
    entries: Vec<LedgerEntry>,
}

impl TryFrom<LedgerState> for Ledger {
    type Error = DpError;

    fn try_from(s: LedgerState) -> Result<Self, DpError> {
        s.budget.validate()?;
        for w in s.entries.windows(2) {
            if w[1].round <= w[0].round {
                return Err(DpError::RoundOutOfOrder {
                    round: w[1].round,
                    last: w[0].round,
                });
            }
        }
        Ok(Self {
            budget: s.budget,
            accountant: s.accountant,
            entries: s.entries,
        })
    }
}

impl Ledger {
    /// An empty ledger on the default RDP orders.
    pub fn new(budget: PrivacyBudget) -> Result<Self, DpError> {
        Self::with_accountant(budget, RdpAccountant::default())
    }

    /// An empty ledger whose accountant starts from `accountant` (e.g. other orders, or loss
    /// spent elsewhere).
    pub fn with_accountant(
        budget: PrivacyBudget,
        accountant: RdpAccountant,
    ) -> Result<Self, DpError> {
        budget.validate()?;
        Ok(Self {
            budget,
            accountant,
            entries: Vec::new(),
        })
    }

    /// The budget.
    pub fn budget(&self) -> PrivacyBudget {
        self.budget
    }

    /// The accountant holding the composed RDP curve.
    pub fn accountant(&self) -> &RdpAccountant {
        &self.accountant
    }

    /// The rounds recorded, in order.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// ε spent so far at the budget's δ.
    pub fn spent(&self) -> Result<EpsilonAt, DpError> {
        self.accountant.epsilon(self.budget.delta)
    }

    /// The ε the ledger would have after one more round at sampling rate `q` and noise
    /// multiplier `sigma`; nothing is committed. Fails with [`DpError::BudgetExceeded`] when
    /// that ε is above the budget's maximum.
    pub fn check_round(&self, q: f64, sigma: f64) -> Result<EpsilonAt, DpError> {
        self.check_rounds(q, sigma, 1)
    }

    /// Like [`Ledger::check_round`] for `rounds` more rounds.
    pub fn check_rounds(&self, q: f64, sigma: f64, rounds: u64) -> Result<EpsilonAt, DpError> {
        let next = self.accountant.composed(q, sigma, rounds)?;
        let e = next.epsilon(self.budget.delta)?;
        if e.epsilon > self.budget.max_epsilon {
            return Err(DpError::BudgetExceeded {
                would_be: e.epsilon,
                max_epsilon: self.budget.max_epsilon,
                delta: self.budget.delta,
            });
        }
        Ok(e)
    }

    /// Checks the round as [`Ledger::check_round`] does and, if it fits, commits it. `round`
    /// must come after the last recorded round; `clip` is recorded (finite, > 0). On any
    /// error nothing is recorded.
    pub fn record_round(
        &mut self,
        round: u64,
        q: f64,
        sigma: f64,
        clip: f64,
    ) -> Result<LedgerEntry, DpError> {
        let q = check_q(q)?;
        let sigma = check_sigma(sigma)?;
        if !(clip.is_finite() && clip > 0.0) {
            return Err(DpError::invalid(
                "clip",
                clip,
                "a finite clipping bound > 0",
            ));
        }
        if let Some(last) = self.entries.last()
            && round <= last.round
        {
            return Err(DpError::RoundOutOfOrder {
                round,
                last: last.round,
            });
        }
        let e = self.check_round(q, sigma)?;
        self.accountant.compose(q, sigma, 1)?;
        let entry = LedgerEntry {
            round,
            q,
            sigma,
            clip,
            epsilon: e.epsilon,
            order: e.order,
        };
        self.entries.push(entry);
        Ok(entry)
    }

    /// How many more rounds at (`q`, `sigma`) fit in the budget, up to `limit`.
    pub fn rounds_left(&self, q: f64, sigma: f64, limit: u64) -> Result<u64, DpError> {
        check_q(q)?;
        check_sigma(sigma)?;
        // ε grows with the number of rounds: binary search for the last one that fits.
        let fits = |n: u64| -> Result<bool, DpError> {
            match self.check_rounds(q, sigma, n) {
                Ok(_) => Ok(true),
                Err(DpError::BudgetExceeded { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        };
        if fits(limit)? {
            return Ok(limit);
        }
        let (mut lo, mut hi) = (0_u64, limit); // fits(lo) (nothing added), !fits(hi)
        if !fits(0)? {
            return Ok(0);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dp::epsilon;

    #[test]
    fn refuses_the_round_that_would_exceed_the_budget() {
        let budget = PrivacyBudget::new(3.0, 1e-5).unwrap();
        let mut ledger = Ledger::new(budget).unwrap();
        let (q, sigma) = (0.1, 1.0);
        let mut round = 0;
        let err = loop {
            round += 1;
            let preview = ledger.check_round(q, sigma);
            match ledger.record_round(round, q, sigma, 0.5) {
                Ok(entry) => {
                    assert_eq!(
                        preview.unwrap(),
                        EpsilonAt {
                            epsilon: entry.epsilon,
                            order: entry.order
                        }
                    );
                    assert!(entry.epsilon <= 3.0);
                }
                Err(e) => {
                    assert_eq!(preview.unwrap_err(), e);
                    break e;
                }
            }
        };
        let recorded = ledger.entries().len() as u64;
        assert_eq!(recorded, round - 1);
        assert!(recorded >= 3, "{recorded}");
        // Nothing was committed by the refusal.
        let spent = ledger.spent().unwrap();
        assert_eq!(
            spent.epsilon,
            ledger.entries()[recorded as usize - 1].epsilon
        );
        let direct = epsilon(q, sigma, recorded, 1e-5).unwrap();
        assert!((spent.epsilon - direct.epsilon).abs() <= 1e-12 * direct.epsilon);
        match err {
            DpError::BudgetExceeded {
                would_be,
                max_epsilon,
                ..
            } => {
                assert!(would_be > 3.0);
                assert_eq!(max_epsilon, 3.0);
                let direct = epsilon(q, sigma, recorded + 1, 1e-5).unwrap().epsilon;
                assert!((would_be - direct).abs() <= 1e-12 * direct);
            }
            e => panic!("{e}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("maximum ε = 3"), "{msg}");
        assert_eq!(ledger.rounds_left(q, sigma, 1000).unwrap(), 0);
    }

    #[test]
    fn rounds_left_matches_stepping() {
        let ledger = Ledger::new(PrivacyBudget::new(2.0, 1e-6).unwrap()).unwrap();
        let n = ledger.rounds_left(0.02, 1.2, 1_000_000).unwrap();
        assert!(epsilon(0.02, 1.2, n, 1e-6).unwrap().epsilon <= 2.0);
        assert!(epsilon(0.02, 1.2, n + 1, 1e-6).unwrap().epsilon > 2.0);
        assert_eq!(ledger.rounds_left(0.02, 1.2, 10).unwrap(), 10);
    }

    #[test]
    fn rejects_bad_input_and_out_of_order_rounds() {
        assert!(PrivacyBudget::new(f64::NAN, 1e-5).is_err());
        assert!(PrivacyBudget::new(1.0, 0.0).is_err());
        let mut ledger = Ledger::new(PrivacyBudget::new(10.0, 1e-5).unwrap()).unwrap();
        ledger.record_round(5, 0.01, 1.0, 1.0).unwrap();
        assert_eq!(
            ledger.record_round(5, 0.01, 1.0, 1.0).unwrap_err(),
            DpError::RoundOutOfOrder { round: 5, last: 5 }
        );
        assert!(ledger.record_round(6, 1.5, 1.0, 1.0).is_err());
        assert!(ledger.record_round(6, 0.01, 1.0, 0.0).is_err());
        assert!(ledger.record_round(6, 0.01, -1.0, 1.0).is_err());
        assert_eq!(ledger.entries().len(), 1);
        // σ = 0 is an infinite loss: always refused.
        assert!(matches!(
            ledger.record_round(6, 0.01, 0.0, 1.0),
            Err(DpError::BudgetExceeded { .. })
        ));
    }

    #[test]
    fn serde_round_trip() {
        let mut ledger = Ledger::new(PrivacyBudget::new(8.0, 1e-5).unwrap()).unwrap();
        for r in 1..=3 {
            ledger.record_round(r, 0.05, 1.1, 0.8).unwrap();
        }
        let json = serde_json::to_string(&ledger).unwrap();
        let back: Ledger = serde_json::from_str(&json).unwrap();
        assert_eq!(back.entries(), ledger.entries());
        assert_eq!(back.budget(), ledger.budget());
        let (a, b) = (back.spent().unwrap(), ledger.spent().unwrap());
        assert!((a.epsilon - b.epsilon).abs() <= 1e-14 * b.epsilon);

        let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
        bad["budget"]["delta"] = serde_json::json!(2.0);
        assert!(serde_json::from_value::<Ledger>(bad).is_err());
        let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
        bad["entries"][2]["round"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Ledger>(bad).is_err());
    }
}
