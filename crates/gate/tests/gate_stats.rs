//! Statistical rules: McNemar on paired predictions, bootstrap intervals.

use model_persistence_gate::{metric_fn, Bootstrap, Gate, McNemar, Metrics, Paired, Rule, Significance, Test};
use model_persistence_testkit::SplitMix64;

/// 10,000 rows; the candidate and baseline disagree on exactly `b` rows the
/// candidate gets right and `c` rows the baseline gets right.
fn discordant(b: usize, c: usize) -> Paired {
    let n = 10_000;
    let actual: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let mut candidate = actual.clone();
    let mut baseline = actual.clone();
    for i in 0..b {
        baseline[i] = 1 - actual[i];
    }
    for i in b..b + c {
        candidate[i] = 1 - actual[i];
    }
    Paired {
        actual,
        candidate,
        baseline,
        ..Paired::default()
    }
}

#[test]
fn mcnemar_on_10000_rows_11_to_1_is_significant_25_to_15_is_not() {
    let gate = Gate::new([Rule::higher_is_better("accuracy").significance(
        Significance::SignificantlyBetter,
        Test::McNemar,
        0.95,
    )]);
    let strong = discordant(11, 1);
    let t = McNemar::from_predictions(&strong.actual, &strong.candidate, &strong.baseline);
    assert_eq!((t.candidate_only, t.baseline_only), (11, 1));
    assert!(gate.evaluate_paired(&Metrics::new(), None, &strong).passed());
    let weak = discordant(25, 15);
    let report = gate.evaluate_paired(&Metrics::new(), None, &weak);
    assert!(!report.passed(), "{report}");
    assert!(report.checks()[0].reason.contains("p = 0.15"), "{report}");
    // Non-inferiority: 15:25 against the candidate is not significant either.
    let non_inferior = Gate::new([Rule::higher_is_better("accuracy").significance(
        Significance::NotSignificantlyWorse { margin: 0.0 },
        Test::McNemar,
        0.95,
    )]);
    assert!(non_inferior
        .evaluate_paired(&Metrics::new(), None, &discordant(15, 25))
        .passed());
    assert!(!non_inferior
        .evaluate_paired(&Metrics::new(), None, &discordant(1, 11))
        .passed());
}

/// Synthetic predictions whose true accuracies differ by `gap`.
fn synthetic(n: usize, cand_err: f64, base_err: f64, seed: u64) -> Paired {
    let mut rng = SplitMix64::new(seed);
    let actual: Vec<usize> = (0..n).map(|_| usize::from(rng.next_f64() < 0.5)).collect();
    let mut flip = |err: f64| -> Vec<usize> {
        actual
            .iter()
            .map(|&a| if rng.next_f64() < err { 1 - a } else { a })
            .collect()
    };
    let candidate = flip(cand_err);
    let baseline = flip(base_err);
    Paired {
        actual,
        candidate,
        baseline,
        ..Paired::default()
    }
}

#[test]
fn bootstrap_is_reproducible_for_a_seed() {
    let p = synthetic(2_000, 0.10, 0.12, 1);
    let acc = metric_fn("accuracy").expect("built in");
    let settings = Bootstrap {
        resamples: 500,
        confidence: 0.95,
        seed: 42,
    };
    let a = settings.difference(&p, &acc);
    let b = settings.difference(&p, &acc);
    assert_eq!(a, b);
    let c = Bootstrap { seed: 43, ..settings }.difference(&p, &acc);
    assert_ne!(a, c, "another seed should give another interval");
    assert!(a.lower <= a.estimate && a.estimate <= a.upper, "{a:?}");
}

#[test]
fn bootstrap_interval_covers_the_true_difference() {
    // True accuracy difference: 0.88 - 0.85 = +0.03. Over 40 independent data
    // sets, a 95% interval should cover it nearly always (expected ~38).
    let acc = metric_fn("accuracy").expect("built in");
    let covered = (0..40)
        .filter(|&seed| {
            let p = synthetic(3_000, 0.12, 0.15, 100 + seed);
            let i = Bootstrap {
                resamples: 400,
                confidence: 0.95,
                seed,
            }
            .difference(&p, &acc);
            i.lower <= 0.03 && 0.03 <= i.upper
        })
        .count();
    assert!(covered >= 34, "covered {covered} of 40");
}

#[test]
fn bootstrap_rules_decide_better_and_non_inferior() {
    let f1 = metric_fn("f1").expect("built in");
    let settings = Bootstrap {
        resamples: 300,
        confidence: 0.95,
        seed: 9,
    };
    let better = Gate::new([Rule::higher_is_better("f1").significance(
        Significance::SignificantlyBetter,
        Test::Bootstrap {
            settings,
            metric: f1.clone(),
        },
        0.95,
    )]);
    assert!(better
        .evaluate_paired(&Metrics::new(), None, &synthetic(5_000, 0.05, 0.15, 3))
        .passed());
    assert!(!better
        .evaluate_paired(&Metrics::new(), None, &synthetic(5_000, 0.10, 0.10, 3))
        .passed());
    let non_inferior = Gate::new([Rule::higher_is_better("f1").significance(
        Significance::NotSignificantlyWorse { margin: 0.05 },
        Test::Bootstrap { settings, metric: f1 },
        0.95,
    )]);
    assert!(non_inferior
        .evaluate_paired(&Metrics::new(), None, &synthetic(5_000, 0.10, 0.10, 4))
        .passed());
    assert!(!non_inferior
        .evaluate_paired(&Metrics::new(), None, &synthetic(5_000, 0.25, 0.10, 4))
        .passed());
    // Without paired predictions a statistical rule cannot pass.
    assert!(!non_inferior.evaluate(&Metrics::new(), None).passed());
}

#[test]
fn user_supplied_metrics_work_with_the_bootstrap() {
    let error_rate = model_persistence_gate::MetricFn::custom(|s: &model_persistence_gate::Sample<'_>| {
        1.0 - model_persistence_gate::metrics::accuracy(s.actual, s.predicted)
    });
    let gate = Gate::new([Rule::lower_is_better("error_rate").significance(
        Significance::SignificantlyBetter,
        Test::Bootstrap {
            settings: Bootstrap::default(),
            metric: error_rate,
        },
        0.99,
    )]);
    assert!(gate
        .evaluate_paired(&Metrics::new(), None, &synthetic(5_000, 0.05, 0.15, 8))
        .passed());
}
