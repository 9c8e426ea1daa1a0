//! Predictor tests. Those that need the real ATT&CK bundle print a note and pass without it.

use std::path::Path;
use std::sync::OnceLock;

use fedics_core::attack::{TECHNIQUES, technique};
use fedics_intel::{AttackBundle, Predictor, PredictorConfig};

const BUNDLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/mitre/ics-attack.json.gz"
);

fn real_bundle() -> Option<&'static AttackBundle> {
    static B: OnceLock<Option<AttackBundle>> = OnceLock::new();
    B.get_or_init(|| {
        let path = Path::new(BUNDLE);
        path.exists()
            .then(|| AttackBundle::load(path).expect("real bundle loads"))
    })
    .as_ref()
}

fn predictor_with_bundle_if_any() -> Predictor {
    if real_bundle().is_none() {
        println!("note: {BUNDLE} not found; using the tactic-order prior only");
    }
    Predictor::new(PredictorConfig::default(), real_bundle())
}

fn min_order(id: &str) -> u8 {
    technique(id).unwrap().min_order()
}

fn max_order(id: &str) -> u8 {
    technique(id).unwrap().tactic_orders().max().unwrap()
}

fn assert_rows_sum_to_one(p: &Predictor, facility: &str) {
    assert_rows(p, facility, true);
}

fn assert_rows(p: &Predictor, facility: &str, strictly_positive: bool) {
    for t in TECHNIQUES.iter().map(|t| t.id).chain(["unknown", ""]) {
        let d = p.distribution(facility, t);
        assert_eq!(d.len(), TECHNIQUES.len());
        let sum: f64 = d.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-9, "row {t} sums to {sum}");
        assert!(
            d.iter()
                .all(|(_, p)| (*p > 0.0 || (!strictly_positive && *p == 0.0)) && *p <= 1.0),
            "row {t}"
        );
    }
}

#[test]
fn every_row_is_a_distribution() {
    let plain = Predictor::new(PredictorConfig::default(), None);
    assert_rows_sum_to_one(&plain, "f1");
    let mut p = predictor_with_bundle_if_any();
    assert_rows_sum_to_one(&p, "f1");
    for (k, (a, b)) in [("T0846", "T0855"), ("T0855", "T0831"), ("T0883", "T0846")]
        .into_iter()
        .enumerate()
    {
        for _ in 0..=k {
            assert!(p.observe("f1", a, b, 120.0));
            assert!(p.observe("f2", a, b, 120.0));
        }
    }
    assert_rows_sum_to_one(&p, "f1");
    assert_rows_sum_to_one(&p, "f2");
    assert_rows_sum_to_one(&p, "never-seen");
    // Extreme configs stay distributions too.
    for config in [
        PredictorConfig {
            floor: 0.0,
            self_weight: 0.0,
            ..Default::default()
        },
        PredictorConfig {
            beta: 0.0,
            gamma: 0.0,
            ..Default::default()
        },
        PredictorConfig {
            beta: 50.0,
            alpha: 1e-9,
            ..Default::default()
        },
        PredictorConfig {
            beta: f64::NAN,
            alpha: -1.0,
            floor: f64::INFINITY,
            ..Default::default()
        },
    ] {
        let p = Predictor::new(config, real_bundle());
        // A zero floor or self weight may give zero probabilities.
        assert_rows(&p, "f1", false);
    }
}

#[test]
fn tactic_order_prior_from_discovery() {
    for p in [
        Predictor::new(PredictorConfig::default(), None),
        predictor_with_bundle_if_any(),
    ] {
        let discovery = min_order("T0846");
        let d = p.distribution("f", "T0846");
        let later: f64 = d
            .iter()
            .filter(|(id, _)| min_order(id) > discovery)
            .map(|x| x.1)
            .sum();
        let earlier: f64 = d
            .iter()
            .filter(|(id, _)| max_order(id) < discovery)
            .map(|x| x.1)
            .sum();
        assert!(later > earlier, "later {later} vs earlier {earlier}");
        assert!(earlier < 0.05, "backward mass {earlier}");
        let top = p.predict("f", "T0846", 3);
        assert_eq!(top.len(), 3);
        for t in &top {
            assert!(
                max_order(&t.technique_id) >= discovery,
                "{t:?} is before Discovery"
            );
        }
        let ranks: Vec<u8> = top.iter().map(|t| t.rank).collect();
        assert_eq!(ranks, [1, 2, 3]);
        assert!(top.windows(2).all(|w| w[0].probability >= w[1].probability));
    }
}

#[test]
fn observing_a_transition_raises_it_monotonically_to_rank_one() {
    let mut p = predictor_with_bundle_if_any();
    let mut last = p.probability("f1", "T0846", "T0855");
    let before_rank = p
        .predict("f1", "T0846", TECHNIQUES.len())
        .iter()
        .find(|t| t.technique_id == "T0855")
        .unwrap()
        .rank;
    assert!(before_rank > 1);
    for n in 1..=10 {
        assert!(p.observe("f1", "T0846", "T0855", 600.0));
        let now = p.probability("f1", "T0846", "T0855");
        assert!(now > last, "observation {n}: {now} <= {last}");
        last = now;
    }
    assert_eq!(p.observations(), 10);
    let top = p.predict("f1", "T0846", 3);
    assert_eq!(top[0].technique_id, "T0855");
    assert_eq!(top[0].technique_name, "Unauthorized Command Message");
    assert_eq!(top[0].rank, 1);
    assert!((top[0].probability - last).abs() < 1e-15);
}

#[test]
fn facility_counts_only_affect_that_facility_beyond_global() {
    let base = predictor_with_bundle_if_any();
    let mut p = base.clone();
    for _ in 0..5 {
        p.observe("plant-a", "T0846", "T0855", 60.0);
    }
    let prior = base.probability("x", "T0846", "T0855");
    let a = p.probability("plant-a", "T0846", "T0855");
    let b = p.probability("plant-b", "T0846", "T0855");
    let c = p.probability("plant-c", "T0846", "T0855");
    assert!(b > prior, "global counts reach other facilities");
    assert_eq!(
        b, c,
        "facilities without own counts see the same global posterior"
    );
    assert!(a > b, "own counts add to the global ones");
    // Exactly the documented posterior mean.
    let alpha = p.config().alpha;
    assert!((b - (alpha * prior + 5.0) / (alpha + 5.0)).abs() < 1e-12);
    assert!((a - (alpha * prior + 10.0) / (alpha + 10.0)).abs() < 1e-12);
    // Other rows are untouched.
    assert_eq!(
        p.distribution("plant-a", "T0855"),
        base.distribution("plant-a", "T0855")
    );
}

#[test]
fn co_use_factor_changes_the_prior() {
    let Some(bundle) = real_bundle() else {
        println!("note: {BUNDLE} not found; skipping");
        return;
    };
    let plain = Predictor::new(PredictorConfig::default(), None);
    let with = Predictor::new(PredictorConfig::default(), Some(bundle));
    assert_eq!(with.bundle_version(), Some("18.1"));
    assert_eq!(plain.bundle_version(), None);
    let mut changed = 0;
    for t in TECHNIQUES {
        if plain.distribution("f", t.id) != with.distribution("f", t.id) {
            changed += 1;
        }
    }
    assert!(changed > 0);
    // A co-used successor gains relative to a same-distance successor that is not co-used.
    let (a, b, n) = TECHNIQUES
        .iter()
        .flat_map(|a| TECHNIQUES.iter().map(move |b| (a.id, b.id)))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (a, b, bundle.co_use(a, b)))
        .max_by_key(|x| x.2)
        .unwrap();
    assert!(n > 0);
    let ratio_with = with.prior(a, b) / plain.prior(a, b);
    let gamma = PredictorConfig::default().gamma;
    let factor = 1.0 + gamma * (1.0 + f64::from(n)).ln();
    // Row normalisation differs, but the pair's own factor dominates for the most co-used pair.
    assert!(ratio_with > 1.0, "{a}->{b}: {ratio_with}");
    assert!(ratio_with < factor);
    // gamma = 0 switches the factor off.
    let off = Predictor::new(
        PredictorConfig {
            gamma: 0.0,
            ..Default::default()
        },
        Some(bundle),
    );
    assert_eq!(off.distribution("f", a), plain.distribution("f", a));
}

#[test]
fn identical_inputs_give_identical_outputs() {
    let run = || {
        let mut p = predictor_with_bundle_if_any();
        let steps = [
            ("a", "T0883", "T0846", 30.0),
            ("a", "T0846", "T0843", 400.0),
            ("b", "T0846", "T0855", 1200.0),
            ("a", "T0843", "T0831", 5000.0),
            ("b", "bogus", "T0831", 1.0),
        ];
        for (f, x, y, d) in steps {
            p.observe(f, x, y, d);
        }
        let out: Vec<_> = TECHNIQUES
            .iter()
            .map(|t| (p.distribution("a", t.id), p.predict("b", t.id, 5)))
            .collect();
        (p, out)
    };
    let (p1, o1) = run();
    let (p2, o2) = run();
    assert_eq!(o1, o2);
    assert_eq!(p1, p2);
    assert_eq!(
        serde_json::to_string(&p1).unwrap(),
        serde_json::to_string(&p2).unwrap()
    );
}

#[test]
fn timeframe_defaults_from_distance_and_follows_observed_delays() {
    let mut p = Predictor::new(PredictorConfig::default(), None);
    // T0846 (Discovery) -> T0843 Program Download (Lateral Movement): one step forward.
    assert_eq!(p.timeframe("f", "T0846", "T0843"), "5-15 minutes");
    // Same tactic.
    assert_eq!(p.timeframe("f", "T0846", "T0840"), "0-5 minutes");
    // T0846 -> T0855 (Impair Process Control): five steps.
    assert_eq!(p.timeframe("f", "T0846", "T0855"), "1-4 hours");
    // Backward.
    assert_eq!(p.timeframe("f", "T0846", "T0883"), "0-5 minutes");

    p.observe("f", "T0846", "T0855", 100.0);
    p.observe("f", "T0846", "T0855", 300.0);
    // Mean 200 s at f, also the global mean.
    assert_eq!(p.timeframe("f", "T0846", "T0855"), "0-5 minutes");
    assert_eq!(p.timeframe("g", "T0846", "T0855"), "0-5 minutes");
    p.observe("g", "T0846", "T0855", 2000.0);
    // g's own mean 2000 s; f keeps 200 s; the global mean is 800 s.
    assert_eq!(p.timeframe("g", "T0846", "T0855"), "15-60 minutes");
    assert_eq!(p.timeframe("f", "T0846", "T0855"), "0-5 minutes");
    assert_eq!(p.timeframe("h", "T0846", "T0855"), "5-15 minutes");
    p.observe("h", "T0846", "T0840", 20_000.0);
    assert_eq!(p.timeframe("h", "T0846", "T0840"), "4+ hours");
    // A bad delay counts the transition but not the delay.
    assert!(p.observe("k", "T0846", "T0843", f64::NAN));
    assert_eq!(p.timeframe("k", "T0846", "T0843"), "5-15 minutes");
    let top = p.predict("g", "T0846", 1);
    assert_eq!(top[0].technique_id, "T0855");
    assert_eq!(top[0].timeframe, "15-60 minutes");
}

#[test]
fn unknown_ids_do_not_panic() {
    let mut p = predictor_with_bundle_if_any();
    assert!(!p.observe("f", "T9999", "T0846", 1.0));
    assert!(!p.observe("f", "T0846", "unknown", 1.0));
    assert_eq!(p.observations(), 0);
    assert_eq!(p.ignored(), 2);
    // Unknown current: the start prior, favouring early tactics.
    let d = p.distribution("f", "unknown");
    let early: f64 = d
        .iter()
        .filter(|(id, _)| min_order(id) <= 2)
        .map(|x| x.1)
        .sum();
    let avg = |lo: u8, hi: u8| {
        let v: Vec<f64> = d
            .iter()
            .filter(|(id, _)| (lo..=hi).contains(&min_order(id)))
            .map(|x| x.1)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(avg(0, 0) > avg(11, 11), "{early}");
    let top = p.predict("f", "unknown", 5);
    assert_eq!(top.len(), 5);
    assert!(top.iter().all(|t| !t.timeframe.is_empty()));
    assert!(p.predict("f", "T0846", 0).is_empty());
    assert_eq!(p.predict("f", "T0846", 1000).len(), TECHNIQUES.len());
    assert_eq!(p.probability("f", "T0846", "T9999"), 0.0);
}

#[test]
fn serde_round_trip_keeps_the_model() {
    let mut p = predictor_with_bundle_if_any();
    p.observe("a", "T0846", "T0855", 123.456789);
    p.observe("a", "T0846", "T0855", 98.7654321);
    p.observe("b", "T0855", "T0831", 4321.0);
    p.observe("b", "nope", "T0831", 1.0);
    let json = serde_json::to_string(&p).unwrap();
    let q: Predictor = serde_json::from_str(&json).unwrap();
    assert_eq!(q.observations(), p.observations());
    assert_eq!(q.ignored(), p.ignored());
    assert_eq!(q.config(), p.config());
    assert_eq!(q.bundle_version(), p.bundle_version());
    for f in ["a", "b", "c"] {
        for t in TECHNIQUES.iter().map(|t| t.id).chain(["unknown"]) {
            let (dp, dq) = (p.distribution(f, t), q.distribution(f, t));
            for ((ip, xp), (iq, xq)) in dp.iter().zip(&dq) {
                assert_eq!(ip, iq);
                assert!((xp - xq).abs() < 1e-12, "{f} {t} {ip}");
            }
            let (pp, pq) = (p.predict(f, t, 5), q.predict(f, t, 5));
            let ids = |v: &[fedics_core::PredictedTechnique]| {
                v.iter()
                    .map(|x| (x.technique_id.clone(), x.timeframe.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&pp), ids(&pq));
        }
    }
    // Serialising again gives the same checkpoint.
    assert_eq!(
        serde_json::to_value(&q).unwrap(),
        serde_json::to_value(&p).unwrap()
    );
    // Bad checkpoints are errors.
    let mut v = serde_json::to_value(&p).unwrap();
    v["format"] = serde_json::json!(99);
    assert!(serde_json::from_value::<Predictor>(v).is_err());
    assert!(serde_json::from_str::<Predictor>("{}").is_err());
}

#[test]
fn prior_expects_the_next_tactic_of_the_kill_chain() {
    // Without counts or a bundle, the most likely step after Discovery is Lateral Movement.
    let p = Predictor::new(PredictorConfig::default(), None);
    let discovery = min_order("T0846");
    let top = p.predict("f", "T0846", 1);
    assert_eq!(min_order(&top[0].technique_id), discovery + 1, "{top:?}");
    // Staying in the tactic is less likely than moving one step, more than jumping far.
    let same = p.probability("f", "T0846", "T0840");
    let next = p.probability("f", "T0846", &top[0].technique_id);
    let far = p.probability("f", "T0846", "T0831");
    assert!(next > same && same > far, "{next} {same} {far}");
    // With step 0 the same tactic is the most likely.
    let stay = Predictor::new(
        PredictorConfig {
            step: 0.0,
            ..PredictorConfig::default()
        },
        None,
    );
    assert_eq!(
        min_order(&stay.predict("f", "T0846", 1)[0].technique_id),
        discovery
    );
}
