//! The evaluation gate on the churn scenario: thresholds and a baseline,
//! then the statistical mode on paired predictions.
//!
//! Run with `cargo run --release --example quality_gate`.

use model_persistence::gate::{
    metric_fn, BaselineRule, Bootstrap, Gate, Margin, McNemar, Metrics, Paired, Rule, Significance, Test,
};
use model_persistence_testkit::SplitMix64;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What the run decided, for the test that runs this example.
#[allow(dead_code)] // Read by tests/examples.rs, not by main.
pub(crate) struct Summary {
    pub(crate) candidate_passed: bool,
    pub(crate) tiny_gain_significant: bool,
    pub(crate) real_gain_significant: bool,
}

fn metrics(pairs: &[(&str, f64)]) -> Metrics {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Paired hold-out predictions of two churn models: the baseline errs on
/// `base_err` of the rows, the candidate on `cand_err`, independently.
fn paired(n: usize, cand_err: f64, base_err: f64, seed: u64) -> Paired {
    let mut rng = SplitMix64::new(seed);
    let actual: Vec<usize> = (0..n).map(|_| usize::from(rng.next_f64() < 0.3)).collect();
    let mut predict = |err: f64| -> Vec<usize> {
        actual
            .iter()
            .map(|&a| if rng.next_f64() < err { 1 - a } else { a })
            .collect()
    };
    let candidate = predict(cand_err);
    let baseline = predict(base_err);
    Paired {
        actual,
        candidate,
        baseline,
        ..Paired::default()
    }
}

pub(crate) fn run() -> Result<Summary> {
    println!("🚦 The churn gate: thresholds 0.88 / 0.70 / 0.65, baseline = production (0.90 / 0.72 / 0.68)\n");
    let match_or_beat = BaselineRule::MayRegress(Margin::Absolute(0.0));
    let gate = Gate::new([
        Rule::higher_is_better("accuracy")
            .threshold(0.88)
            .baseline(match_or_beat),
        Rule::higher_is_better("precision")
            .threshold(0.70)
            .baseline(match_or_beat),
        Rule::higher_is_better("recall").threshold(0.65).baseline(match_or_beat),
    ]);
    let production = metrics(&[("accuracy", 0.90), ("precision", 0.72), ("recall", 0.68)]);
    let candidate = metrics(&[("accuracy", 0.89), ("precision", 0.74), ("recall", 0.70)]);
    let report = gate.evaluate(&candidate, Some(&production));
    println!("Candidate v1.3.0 (accuracy 0.89 clears 0.88, but production has 0.90):\n{report}");
    println!(
        "{}\n",
        if report.passed() {
            "PASS: serialise as v1.3.0"
        } else {
            "→ not serialised: investigate, retrain"
        }
    );
    println!(
        "As JSON, for the registry and for scripts:\n{}\n",
        serde_json::to_string_pretty(&report.to_json())?
    );

    println!("📐 Statistical mode: is a gain real, or noise?\n");
    let settings = Bootstrap {
        resamples: 1_000,
        confidence: 0.95,
        seed: 7,
    };
    let f1 = metric_fn("f1").ok_or("f1 is built in")?;
    let stat_gate = Gate::new([
        Rule::higher_is_better("accuracy").significance(Significance::SignificantlyBetter, Test::McNemar, 0.95),
        Rule::higher_is_better("f1").significance(
            Significance::NotSignificantlyWorse { margin: 0.02 },
            Test::Bootstrap { settings, metric: f1 },
            0.95,
        ),
    ]);
    // 2,000 rows, a 0.1-point accuracy gain: noise.
    let tiny = paired(2_000, 0.119, 0.120, 1);
    let t = McNemar::from_predictions(&tiny.actual, &tiny.candidate, &tiny.baseline);
    let tiny_report = stat_gate.evaluate_paired(&Metrics::new(), None, &tiny);
    println!(
        "A tiny gain on 2,000 rows (McNemar {}:{}):\n{tiny_report}\n",
        t.candidate_only, t.baseline_only
    );
    // 10,000 rows, a 3-point gain: real.
    let real = paired(10_000, 0.09, 0.12, 2);
    let real_report = stat_gate.evaluate_paired(&Metrics::new(), None, &real);
    println!("A 3-point gain on 10,000 rows:\n{real_report}");
    let significant = |r: &model_persistence::gate::Report| r.checks().first().is_some_and(|c| c.passed);
    Ok(Summary {
        candidate_passed: report.passed(),
        tiny_gain_significant: significant(&tiny_report),
        real_gain_significant: significant(&real_report),
    })
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
