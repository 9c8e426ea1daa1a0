//! Next-technique predictor: P(next technique = j | current technique = i).
//!
//! The model covers the active ATT&CK for ICS techniques of the compact table
//! [`fedics_core::attack::TECHNIQUES`] and is fully deterministic (no random numbers; ties are
//! broken by the table's id order).
//!
//! ## Prior
//!
//! Built once in [`Predictor::new`] as a dense row-stochastic matrix. For techniques `i` and
//! `j` let `d(i, j)` be the tactic distance: over all pairs of a tactic of `i` and a tactic of
//! `j` (a technique may serve two tactics), the differences `order_j - order_i` of their
//! matrix positions; `d` is the smallest non-negative difference when there is one (the
//! most plausible reading: the adversary moves forward from whichever tactic `i` served),
//! otherwise the negative difference closest to zero. The unnormalised weight is
//!
//! ```text
//! w(i→j) = exp(-beta · |d - step|)           d ≥ 0  (peaks `step` tactics ahead; default 1:
//!                                                    the next tactic of the kill chain)
//!        = floor · exp(-beta · |d|)           d < 0  (backward: a small floor)
//! w(i→i) = self_weight · exp(0)                      (repeating the same technique)
//! ```
//!
//! multiplied, when a bundle is given and `j ≠ i`, by `1 + gamma · ln(1 + co_use(i, j))`,
//! where `co_use` counts the groups, software and campaigns known to use both techniques
//! ([`AttackBundle::co_use`]). Each row is normalised to sum to 1.
//!
//! For a current technique that is **not in the table** (e.g. `"unknown"`), the prediction is
//! the *start* prior: where an attack is likely to be, knowing nothing. It favours early
//! tactics gently: `w(j) = exp(-beta/2 · o_j) · (1 + gamma · ln(1 + users(j)))`, where `o_j`
//! is the earliest matrix position of `j`'s tactics and `users(j)` the number of users of `j`
//! in the bundle (0 without one); normalised. Online counts never change it.
//!
//! ## Online update
//!
//! Every observed transition `i → j` increments a global count and a count of the facility
//! it was seen at. The predicted distribution for a facility is the posterior mean of a
//! Dirichlet-multinomial model whose Dirichlet prior has concentration `alpha · prior(·|i)`:
//!
//! ```text
//! P(j | i) = (alpha · prior(j|i) + n_global(i→j) + n_facility(i→j))
//!          / (alpha + n_global(i) + n_facility(i))
//! ```
//!
//! `alpha` is the prior's strength in pseudo-observations. The global counts include the
//! facility's own observations, so a facility's own history weighs twice as much for that
//! facility as another facility's. The numerators sum to the denominator over `j`, so every
//! row is a probability distribution.
//!
//! ## Timeframe
//!
//! Each transition keeps the running mean of its observed delays (seconds), per facility and
//! globally. The expected time until a predicted step is the facility's mean for the pair if
//! it has one, else the global mean, else a default from the tactic distance (`d ≤ 0`:
//! `0-5 minutes`, `1`: `5-15 minutes`, `2-3`: `15-60 minutes`, more: `1-4 hours`). Observed
//! means are formatted into the same buckets (`< 5 min`, `< 15 min`, `< 60 min`, `< 4 h`),
//! plus `4+ hours` for longer means.
//!
//! ## Checkpoints
//!
//! [`Predictor`] serialises to a compact, id-keyed checkpoint (config, the bundle's co-use
//! counts, transition counts and delays); deserialising rebuilds the prior from it, so a
//! checkpoint stays valid if the table's order changes (ids not in the table are dropped).

use std::collections::BTreeMap;

use fedics_core::PredictedTechnique;
use fedics_core::attack::{TECHNIQUES, TechniqueInfo};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AttackBundle;

/// Checkpoint format version written by this crate.
const CHECKPOINT_FORMAT: u32 = 1;

/// Parameters of the prior and of the posterior.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PredictorConfig {
    /// Decay rate of the weight per tactic step away from `step` (≥ 0).
    pub beta: f64,
    /// The most likely forward distance in tactics (≥ 0): 1 means the adversary most likely
    /// moves on to the next tactic of the matrix; 0 means it most likely stays in its tactic.
    pub step: f64,
    /// Multiplier of backward steps (≥ 0).
    pub floor: f64,
    /// Weight of repeating the current technique (a step at the peak distance weighs 1; ≥ 0).
    pub self_weight: f64,
    /// Strength of the co-use factor (≥ 0).
    pub gamma: f64,
    /// Prior strength in pseudo-observations (> 0).
    pub alpha: f64,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        Self {
            beta: 0.5,
            step: 1.0,
            floor: 0.02,
            self_weight: 0.3,
            gamma: 1.0,
            alpha: 10.0,
        }
    }
}

impl PredictorConfig {
    /// The config with every invalid value (non-finite, negative, or `alpha ≤ 0`) replaced by
    /// its default.
    pub fn sanitized(self) -> Self {
        let d = Self::default();
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        Self {
            beta: if ok(self.beta) { self.beta } else { d.beta },
            step: if ok(self.step) { self.step } else { d.step },
            floor: if ok(self.floor) { self.floor } else { d.floor },
            self_weight: if ok(self.self_weight) {
                self.self_weight
            } else {
                d.self_weight
            },
            gamma: if ok(self.gamma) { self.gamma } else { d.gamma },
            alpha: if ok(self.alpha) && self.alpha > 0.0 {
                self.alpha
            } else {
                d.alpha
            },
        }
    }
}

/// Count and running mean delay of one transition.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cell {
    count: u64,
    delay_n: u64,
    delay_mean: f64,
}

/// Sparse transition counts (by table index) with row totals.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counts {
    cells: BTreeMap<(u16, u16), Cell>,
    rows: BTreeMap<u16, u64>,
}

impl Counts {
    fn add(&mut self, i: u16, j: u16, delay_secs: f64) {
        let cell = self.cells.entry((i, j)).or_default();
        cell.count += 1;
        if delay_secs.is_finite() && delay_secs >= 0.0 {
            cell.delay_n += 1;
            cell.delay_mean += (delay_secs - cell.delay_mean) / cell.delay_n as f64;
        }
        *self.rows.entry(i).or_default() += 1;
    }

    fn insert(&mut self, i: u16, j: u16, cell: Cell) {
        if cell.count == 0 {
            return;
        }
        *self.rows.entry(i).or_default() += cell.count;
        self.cells.insert((i, j), cell);
    }

    fn count(&self, i: u16, j: u16) -> u64 {
        self.cells.get(&(i, j)).map_or(0, |c| c.count)
    }

    fn row(&self, i: u16) -> u64 {
        self.rows.get(&i).copied().unwrap_or(0)
    }

    fn mean_delay(&self, i: u16, j: u16) -> Option<f64> {
        self.cells
            .get(&(i, j))
            .filter(|c| c.delay_n > 0)
            .map(|c| c.delay_mean)
    }

    fn records(&self) -> Vec<TransitionRecord> {
        self.cells
            .iter()
            .map(|(&(i, j), c)| TransitionRecord {
                from: TECHNIQUES[i as usize].id.to_string(),
                to: TECHNIQUES[j as usize].id.to_string(),
                count: c.count,
                delay_n: c.delay_n,
                delay_mean: c.delay_mean,
            })
            .collect()
    }

    fn from_records(records: &[TransitionRecord]) -> Self {
        let mut counts = Counts::default();
        for r in records {
            if let (Some(i), Some(j)) = (index_of(&r.from), index_of(&r.to)) {
                let delay_ok = r.delay_mean.is_finite() && r.delay_mean >= 0.0;
                counts.insert(
                    i,
                    j,
                    Cell {
                        count: r.count,
                        delay_n: if delay_ok { r.delay_n.min(r.count) } else { 0 },
                        delay_mean: if delay_ok { r.delay_mean } else { 0.0 },
                    },
                );
            }
        }
        counts
    }
}

/// Table index of a technique id.
fn index_of(id: &str) -> Option<u16> {
    TECHNIQUES
        .iter()
        .position(|t| t.id == id)
        .and_then(|i| u16::try_from(i).ok())
}

fn orders(t: &TechniqueInfo) -> Vec<i32> {
    let mut o: Vec<i32> = t.tactic_orders().map(i32::from).collect();
    if o.is_empty() {
        o.push(0);
    }
    o
}

/// Tactic distance from `a`'s tactics to `b`'s: the smallest non-negative difference when
/// there is one, else the negative difference closest to zero.
fn tactic_distance(a: &[i32], b: &[i32]) -> i32 {
    let diffs = a.iter().flat_map(|x| b.iter().map(move |y| y - x));
    let forward = diffs.clone().filter(|d| *d >= 0).min();
    forward.or_else(|| diffs.max()).unwrap_or(0)
}

fn distance_bucket(d: i32) -> &'static str {
    match d {
        i32::MIN..=0 => "0-5 minutes",
        1 => "5-15 minutes",
        2 | 3 => "15-60 minutes",
        _ => "1-4 hours",
    }
}

fn delay_bucket(secs: f64) -> &'static str {
    if secs < 300.0 {
        "0-5 minutes"
    } else if secs < 900.0 {
        "5-15 minutes"
    } else if secs < 3600.0 {
        "15-60 minutes"
    } else if secs < 14_400.0 {
        "1-4 hours"
    } else {
        "4+ hours"
    }
}

fn normalise(row: &mut [f64]) {
    let sum: f64 = row.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        row.iter_mut().for_each(|w| *w /= sum);
    } else {
        let u = 1.0 / row.len().max(1) as f64;
        row.iter_mut().for_each(|w| *w = u);
    }
}

/// The next-technique model. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictor {
    config: PredictorConfig,
    bundle_version: Option<String>,
    /// Bundle co-use counts by table index, `i ≤ j` (the diagonal is the number of users).
    co_use: BTreeMap<(u16, u16), u32>,
    /// Row-stochastic `n x n` prior.
    prior: Vec<f64>,
    /// `n x n` tactic distances.
    distance: Vec<i32>,
    /// Start prior for an unknown current technique.
    start: Vec<f64>,
    global: Counts,
    facilities: BTreeMap<String, Counts>,
    observations: u64,
    ignored: u64,
}

impl Predictor {
    /// Builds the prior from the config (invalid values fall back to defaults, see
    /// [`PredictorConfig::sanitized`]) and, when given, the bundle's co-use counts.
    pub fn new(config: PredictorConfig, bundle: Option<&AttackBundle>) -> Self {
        let mut co_use = BTreeMap::new();
        if let Some(b) = bundle {
            for (i, a) in TECHNIQUES.iter().enumerate() {
                for (j, c) in TECHNIQUES.iter().enumerate().skip(i) {
                    let n = b.co_use(a.id, c.id);
                    if n > 0 {
                        co_use.insert((i as u16, j as u16), n);
                    }
                }
            }
        }
        Self::build(
            config,
            bundle.and_then(|b| b.version().map(str::to_string)),
            co_use,
        )
    }

    fn build(
        config: PredictorConfig,
        bundle_version: Option<String>,
        co_use: BTreeMap<(u16, u16), u32>,
    ) -> Self {
        let config = config.sanitized();
        let n = TECHNIQUES.len();
        let ords: Vec<Vec<i32>> = TECHNIQUES.iter().map(orders).collect();
        let co = |i: usize, j: usize| -> u32 {
            let key = if i <= j { (i, j) } else { (j, i) };
            co_use
                .get(&(key.0 as u16, key.1 as u16))
                .copied()
                .unwrap_or(0)
        };
        let factor = |c: u32| 1.0 + config.gamma * (1.0 + f64::from(c)).ln();

        let mut prior = vec![0.0; n * n];
        let mut distance = vec![0i32; n * n];
        for i in 0..n {
            let row = &mut prior[i * n..(i + 1) * n];
            for (j, w) in row.iter_mut().enumerate() {
                let d = tactic_distance(&ords[i], &ords[j]);
                distance[i * n + j] = d;
                *w = if i == j {
                    config.self_weight
                } else {
                    let base = if d >= 0 {
                        (-config.beta * (f64::from(d) - config.step).abs()).exp()
                    } else {
                        config.floor * (-config.beta * f64::from(-d)).exp()
                    };
                    base * factor(co(i, j))
                };
            }
            normalise(row);
        }

        let mut start: Vec<f64> = (0..n)
            .map(|j| {
                let o = ords[j].iter().copied().min().unwrap_or(0);
                (-config.beta / 2.0 * f64::from(o)).exp() * factor(co(j, j))
            })
            .collect();
        normalise(&mut start);

        Self {
            config,
            bundle_version,
            co_use,
            prior,
            distance,
            start,
            global: Counts::default(),
            facilities: BTreeMap::new(),
            observations: 0,
            ignored: 0,
        }
    }

    /// The (sanitised) configuration.
    pub fn config(&self) -> &PredictorConfig {
        &self.config
    }

    /// `x_mitre_version` of the bundle the prior was built with, if any.
    pub fn bundle_version(&self) -> Option<&str> {
        self.bundle_version.as_deref()
    }

    /// Records that `facility` moved from technique `from` to `to` after `delay_secs`.
    /// Returns `false` (and counts it in [`ignored`](Self::ignored)) when either id is not in
    /// the technique table. A non-finite or negative delay still counts the transition but
    /// does not enter the delay mean.
    pub fn observe(&mut self, facility: &str, from: &str, to: &str, delay_secs: f64) -> bool {
        let (Some(i), Some(j)) = (index_of(from), index_of(to)) else {
            self.ignored += 1;
            tracing::debug!(
                facility,
                from,
                to,
                "ignoring transition with unknown technique"
            );
            return false;
        };
        self.global.add(i, j, delay_secs);
        self.facilities
            .entry(facility.to_string())
            .or_default()
            .add(i, j, delay_secs);
        self.observations += 1;
        true
    }

    /// Transitions recorded so far (all facilities).
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// Transitions ignored because a technique id was not in the table.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// The prior P(next | current) before any observation (the start prior for an unknown
    /// current technique); 0 for an unknown next technique.
    pub fn prior(&self, current: &str, next: &str) -> f64 {
        let Some(j) = index_of(next) else { return 0.0 };
        match index_of(current) {
            Some(i) => self.prior[i as usize * TECHNIQUES.len() + j as usize],
            None => self.start[j as usize],
        }
    }

    /// Full distribution over next techniques given the current one, in table (id) order;
    /// the probabilities sum to 1. An unknown current technique gives the start prior.
    pub fn distribution(&self, facility: &str, current: &str) -> Vec<(String, f64)> {
        self.probabilities(facility, current)
            .into_iter()
            .zip(TECHNIQUES)
            .map(|(p, t)| (t.id.to_string(), p))
            .collect()
    }

    /// P(next | current) for one pair (see [`distribution`](Self::distribution)).
    pub fn probability(&self, facility: &str, current: &str, next: &str) -> f64 {
        match index_of(next) {
            Some(j) => self.probabilities(facility, current)[j as usize],
            None => 0.0,
        }
    }

    fn probabilities(&self, facility: &str, current: &str) -> Vec<f64> {
        let n = TECHNIQUES.len();
        let Some(i) = index_of(current) else {
            return self.start.clone();
        };
        let fac = self.facilities.get(facility);
        let alpha = self.config.alpha;
        let total = alpha + (self.global.row(i) + fac.map_or(0, |f| f.row(i))) as f64;
        let prior = &self.prior[i as usize * n..(i as usize + 1) * n];
        prior
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let j = j as u16;
                let counts = self.global.count(i, j) + fac.map_or(0, |f| f.count(i, j));
                (alpha * p + counts as f64) / total
            })
            .collect()
    }

    /// Expected time until `next` follows `current` at `facility`, as a bucket string.
    pub fn timeframe(&self, facility: &str, current: &str, next: &str) -> String {
        let Some(j) = index_of(next) else {
            return distance_bucket(i32::MAX).to_string();
        };
        self.timeframe_idx(facility, index_of(current), j)
            .to_string()
    }

    fn timeframe_idx(&self, facility: &str, current: Option<u16>, j: u16) -> &'static str {
        let Some(i) = current else {
            let start = orders(&TECHNIQUES[j as usize]).into_iter().min();
            return distance_bucket(start.unwrap_or(0));
        };
        let observed = self
            .facilities
            .get(facility)
            .and_then(|f| f.mean_delay(i, j))
            .or_else(|| self.global.mean_delay(i, j));
        match observed {
            Some(secs) => delay_bucket(secs),
            None => distance_bucket(self.distance[i as usize * TECHNIQUES.len() + j as usize]),
        }
    }

    /// The `k` most probable next techniques (at most 255), with names, 1-based rank, the
    /// probability from the full distribution (not renormalised) and a timeframe. Ties are
    /// broken by table (id) order.
    pub fn predict(&self, facility: &str, current: &str, k: usize) -> Vec<PredictedTechnique> {
        let probs = self.probabilities(facility, current);
        let cur = index_of(current);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(k.min(usize::from(u8::MAX)))
            .enumerate()
            .map(|(r, j)| PredictedTechnique {
                technique_id: TECHNIQUES[j].id.to_string(),
                technique_name: TECHNIQUES[j].name.to_string(),
                probability: probs[j].clamp(0.0, 1.0),
                rank: (r + 1) as u8,
                timeframe: self.timeframe_idx(facility, cur, j as u16).to_string(),
            })
            .collect()
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            config: self.config,
            bundle_version: self.bundle_version.clone(),
            co_use: self
                .co_use
                .iter()
                .map(|(&(i, j), &c)| {
                    (
                        TECHNIQUES[i as usize].id.to_string(),
                        TECHNIQUES[j as usize].id.to_string(),
                        c,
                    )
                })
                .collect(),
            observations: self.observations,
            ignored: self.ignored,
            global: self.global.records(),
            facilities: self
                .facilities
                .iter()
                .map(|(f, c)| (f.clone(), c.records()))
                .collect(),
        }
    }

    fn restore(cp: Checkpoint) -> Result<Self, String> {
        if cp.format != CHECKPOINT_FORMAT {
            return Err(format!(
                "unsupported predictor checkpoint format {} (expected {CHECKPOINT_FORMAT})",
                cp.format
            ));
        }
        let mut co_use = BTreeMap::new();
        for (a, b, c) in &cp.co_use {
            if let (Some(i), Some(j)) = (index_of(a), index_of(b))
                && *c > 0
            {
                co_use.insert((i.min(j), i.max(j)), *c);
            }
        }
        let mut p = Self::build(cp.config, cp.bundle_version, co_use);
        p.global = Counts::from_records(&cp.global);
        p.facilities = cp
            .facilities
            .iter()
            .map(|(f, r)| (f.clone(), Counts::from_records(r)))
            .collect();
        p.observations = cp.observations;
        p.ignored = cp.ignored;
        Ok(p)
    }
}

/// One transition in a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct TransitionRecord {
    from: String,
    to: String,
    count: u64,
    #[serde(default)]
    delay_n: u64,
    #[serde(default)]
    delay_mean: f64,
}

/// Serialised form of [`Predictor`].
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    format: u32,
    config: PredictorConfig,
    #[serde(default)]
    bundle_version: Option<String>,
    /// `(technique a, technique b, users of both)`, `a ≤ b` in table order.
    #[serde(default)]
    co_use: Vec<(String, String, u32)>,
    #[serde(default)]
    observations: u64,
    #[serde(default)]
    ignored: u64,
    #[serde(default)]
    global: Vec<TransitionRecord>,
    #[serde(default)]
    facilities: BTreeMap<String, Vec<TransitionRecord>>,
}

impl Serialize for Predictor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.checkpoint().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Predictor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let cp = Checkpoint::deserialize(deserializer)?;
        Self::restore(cp).map_err(serde::de::Error::custom)
    }
}
