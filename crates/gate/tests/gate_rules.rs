//! Every rule kind at its boundary, missing and non-finite metrics, report rendering.

use model_persistence_gate::{BaselineRule, CheckKind, Gate, Margin, Metrics, NoBaseline, Rule};

fn m(pairs: &[(&str, f64)]) -> Metrics {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn passes(gate: &Gate, cand: &[(&str, f64)], base: Option<&[(&str, f64)]>) -> bool {
    gate.evaluate(&m(cand), base.map(m).as_ref()).passed()
}

#[test]
fn thresholds_pass_at_and_fail_past_the_boundary() {
    let higher = Gate::new([Rule::higher_is_better("accuracy").threshold(0.88)]);
    assert!(passes(&higher, &[("accuracy", 0.88)], None));
    assert!(!passes(&higher, &[("accuracy", 0.879_999)], None));
    let lower = Gate::new([Rule::lower_is_better("log_loss").threshold(0.3)]);
    assert!(passes(&lower, &[("log_loss", 0.3)], None));
    assert!(!passes(&lower, &[("log_loss", 0.300_001)], None));
}

#[test]
fn absolute_regression_tolerance_boundary() {
    let gate = Gate::new([Rule::higher_is_better("auc").baseline(BaselineRule::MayRegress(Margin::Absolute(0.005)))]);
    assert!(passes(&gate, &[("auc", 0.8950)], Some(&[("auc", 0.8999)])));
    assert!(passes(&gate, &[("auc", 0.8950)], Some(&[("auc", 0.8950)])));
    assert!(!passes(&gate, &[("auc", 0.8940)], Some(&[("auc", 0.9000)])));
}

#[test]
fn relative_improvement_boundary_uses_the_absolute_baseline() {
    // Must improve by at least 1% of |baseline|.
    let gate = Gate::new([Rule::higher_is_better("score").baseline(BaselineRule::MustImprove(Margin::Relative(0.01)))]);
    assert!(passes(&gate, &[("score", 0.505)], Some(&[("score", 0.5)])));
    assert!(!passes(&gate, &[("score", 0.5049)], Some(&[("score", 0.5)])));
    // A negative baseline: -0.99 is a 1% improvement over -1.0.
    assert!(passes(&gate, &[("score", -0.99)], Some(&[("score", -1.0)])));
    assert!(!passes(&gate, &[("score", -0.9901)], Some(&[("score", -1.0)])));
}

#[test]
fn lower_is_better_baseline_rules() {
    let gate = Gate::new([Rule::lower_is_better("log_loss").baseline(BaselineRule::MayRegress(Margin::Relative(0.1)))]);
    assert!(passes(&gate, &[("log_loss", 0.33)], Some(&[("log_loss", 0.30)])));
    assert!(!passes(&gate, &[("log_loss", 0.331)], Some(&[("log_loss", 0.30)])));
    assert!(passes(&gate, &[("log_loss", 0.10)], Some(&[("log_loss", 0.30)])));
    let improve =
        Gate::new([Rule::lower_is_better("latency").baseline(BaselineRule::MustImprove(Margin::Absolute(2.0)))]);
    assert!(passes(&improve, &[("latency", 8.0)], Some(&[("latency", 10.0)])));
    assert!(!passes(&improve, &[("latency", 8.5)], Some(&[("latency", 10.0)])));
}

#[test]
fn missing_and_non_finite_metrics_fail_with_a_reason() {
    let gate = Gate::new([Rule::higher_is_better("f1")
        .threshold(0.5)
        .baseline(BaselineRule::MayRegress(Margin::Absolute(0.0)))]);
    let report = gate.evaluate(&m(&[]), Some(&m(&[("f1", 0.6)])));
    assert!(!report.passed());
    assert!(report
        .checks()
        .iter()
        .all(|c| !c.passed && c.reason.contains("missing from the candidate")));
    let report = gate.evaluate(&m(&[("f1", 0.7)]), Some(&m(&[])));
    assert!(!report.passed());
    assert!(report.checks()[1].reason.contains("missing from the baseline"));
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(!passes(&gate, &[("f1", bad)], Some(&[("f1", 0.6)])), "{bad}");
        assert!(!passes(&gate, &[("f1", 0.7)], Some(&[("f1", bad)])), "{bad}");
    }
}

#[test]
fn no_baseline_is_configurable() {
    let rule = Rule::higher_is_better("f1").baseline(BaselineRule::MayRegress(Margin::Absolute(0.0)));
    let lenient = Gate::new([rule.clone()]);
    let report = lenient.evaluate(&m(&[("f1", 0.7)]), None);
    assert!(report.passed());
    assert!(report.checks()[0].reason.contains("first model"));
    let strict = Gate::new([rule]).when_no_baseline(NoBaseline::Fail);
    assert!(!strict.evaluate(&m(&[("f1", 0.7)]), None).passed());
}

#[test]
fn an_empty_gate_does_not_pass() {
    assert!(!Gate::new([]).evaluate(&m(&[("f1", 1.0)]), None).passed());
}

#[test]
fn the_seed_report_reads_one_line_per_check() {
    let keep = BaselineRule::MayRegress(Margin::Absolute(0.0));
    let gate = Gate::new([
        Rule::higher_is_better("accuracy").threshold(0.88).baseline(keep),
        Rule::higher_is_better("precision").threshold(0.70).baseline(keep),
        Rule::higher_is_better("recall").threshold(0.65).baseline(keep),
    ]);
    let report = gate.evaluate(
        &m(&[("accuracy", 0.89), ("precision", 0.74), ("recall", 0.70)]),
        Some(&m(&[("accuracy", 0.90), ("precision", 0.72), ("recall", 0.68)])),
    );
    assert!(!report.passed());
    let failed: Vec<(&str, CheckKind)> = report.failures().map(|c| (c.metric.as_str(), c.kind)).collect();
    assert_eq!(failed, [("accuracy", CheckKind::Baseline)]);
    let table = report.to_string();
    assert_eq!(table.lines().count(), 1 + 6 + 1, "{table}");
    assert!(table.contains("✓ accuracy       threshold"), "{table}");
    assert!(table.contains("✗ accuracy       baseline"), "{table}");
    assert!(table.contains("-0.0100"), "{table}");
    assert!(
        table.lines().last().is_some_and(|l| l.starts_with("FAIL: 1 of 6")),
        "{table}"
    );
    let json = report.to_json();
    assert_eq!(json["passed"], false);
    assert_eq!(json["checks"][1]["kind"], "baseline");
    let back: model_persistence_gate::Report = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, report);
}
