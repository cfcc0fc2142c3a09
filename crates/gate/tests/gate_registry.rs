//! The gate in front of the registry: a pass publishes and promotes, a fail publishes nothing.

use model_persistence_core::{ModelCard, Version};
use model_persistence_gate::{evaluate_and_publish, BaselineRule, Gate, Margin, Outcome, PublishRequest, Rule};
use model_persistence_testkit::LinearClassifier;
use model_persistence_versioning::{Registry, VersionSpec};

fn candidate(accuracy: f64, precision: f64, recall: f64) -> (LinearClassifier, ModelCard) {
    let model = LinearClassifier {
        weights: vec![accuracy, -precision, recall],
        bias: 0.1,
    };
    let card = ModelCard::builder("churn", &model)
        .metrics([("accuracy", accuracy), ("precision", precision), ("recall", recall)])
        .probe(ndarray::array![[1.0, 0.5, -0.5]].view())
        .build()
        .expect("card");
    (model, card)
}

fn seed_gate() -> Gate {
    let keep = BaselineRule::MayRegress(Margin::Absolute(0.0));
    Gate::new([
        Rule::higher_is_better("accuracy").threshold(0.88).baseline(keep),
        Rule::higher_is_better("precision").threshold(0.70).baseline(keep),
        Rule::higher_is_better("recall").threshold(0.65).baseline(keep),
    ])
}

#[test]
fn the_seed_scenario_pass_publishes_and_promotes_fail_publishes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    let gate = seed_gate();

    // The production baseline: 0.90 / 0.72 / 0.68 (the first model, no baseline yet).
    let (m, c) = candidate(0.90, 0.72, 0.68);
    let outcome = evaluate_and_publish(
        &gate,
        &reg,
        PublishRequest::new(&m, &c, "production").version(VersionSpec::Exact(Version::new(1, 2, 0))),
    )
    .expect("registry works");
    assert!(matches!(
        outcome,
        Outcome::Published {
            alias_moved: true,
            baseline: None,
            ..
        }
    ));
    assert_eq!(
        reg.alias("churn", "production").expect("alias").map(|t| t.version),
        Some(Version::new(1, 2, 0))
    );

    // A candidate at 0.89 clears the 0.88 threshold but regresses against 0.90: refused.
    let (m, c) = candidate(0.89, 0.74, 0.70);
    let outcome = evaluate_and_publish(&gate, &reg, PublishRequest::new(&m, &c, "production")).expect("registry works");
    let Outcome::Rejected { report, baseline } = outcome else {
        panic!("the 0.89 candidate must be refused");
    };
    assert_eq!(baseline, Some(Version::new(1, 2, 0)));
    let failed: Vec<&str> = report.failures().map(|c| c.metric.as_str()).collect();
    assert_eq!(failed, ["accuracy"]);
    assert!(
        report.checks().iter().any(|c| c.metric == "accuracy" && c.passed),
        "the threshold check passes"
    );
    assert_eq!(
        reg.versions("churn").expect("versions").len(),
        1,
        "a failed gate publishes nothing"
    );

    // A better candidate passes, is published as 1.3.0, promoted, and its report is stored.
    let (m, c) = candidate(0.913, 0.741, 0.698);
    let outcome = evaluate_and_publish(&gate, &reg, PublishRequest::new(&m, &c, "production")).expect("registry works");
    let Outcome::Published { version, .. } = outcome else {
        panic!("the better candidate must pass");
    };
    assert_eq!(version.version, Version::new(1, 3, 0));
    assert_eq!(
        reg.alias("churn", "production").expect("alias").map(|t| t.version),
        Some(Version::new(1, 3, 0))
    );
    let stored = reg
        .attachment("churn", &version.version, "gate_report")
        .expect("read")
        .expect("stored");
    assert_eq!(stored["baseline"], "1.2.0");
    assert_eq!(stored["report"]["passed"], true);
    // The history says why: published, then the alias moved.
    let history = reg.history("churn").expect("history");
    assert_eq!(history.len(), 4);
}

#[test]
fn keep_alias_publishes_without_promoting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    let (m, c) = candidate(0.95, 0.9, 0.9);
    let outcome = evaluate_and_publish(&seed_gate(), &reg, PublishRequest::new(&m, &c, "staging").keep_alias())
        .expect("registry works");
    assert!(matches!(outcome, Outcome::Published { alias_moved: false, .. }));
    assert_eq!(reg.alias("churn", "staging").expect("alias"), None);
}
