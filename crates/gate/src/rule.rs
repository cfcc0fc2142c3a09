//! Rules, the gate, and how a candidate is checked against them.

use std::collections::BTreeMap;

pub use model_persistence_core::Direction;
use serde::{Deserialize, Serialize};

use crate::metrics::{self, MetricFn};
use crate::report::{Check, CheckKind, Report};
use crate::stats::{Bootstrap, McNemar, Paired};

/// Metrics by name.
pub type Metrics = BTreeMap<String, f64>;

/// A margin against the baseline.
///
/// Differences are taken in the better direction: for a higher-is-better
/// metric the improvement is `candidate − baseline`, for a lower-is-better
/// metric `baseline − candidate`. The relative improvement divides that by
/// `|baseline|`, so a relative margin of 0.01 is one percent of the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Margin {
    /// In the metric's units.
    Absolute(f64),
    /// A share of `|baseline|`.
    Relative(f64),
}

/// What the candidate must do relative to the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineRule {
    /// May be worse than the baseline by at most the margin
    /// (`MayRegress(Absolute(0.0))`: match or beat it).
    MayRegress(Margin),
    /// Must be better than the baseline by at least the margin.
    MustImprove(Margin),
}

/// A statistical requirement on paired predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Significance {
    /// The candidate is significantly better at the confidence level.
    SignificantlyBetter,
    /// The candidate is not significantly worse than the baseline by more
    /// than the margin (non-inferiority): the lower bound of the interval of
    /// the improvement is above `−margin`.
    NotSignificantlyWorse {
        /// The tolerated loss, in the metric's units.
        margin: f64,
    },
}

/// Which test decides significance.
#[derive(Clone)]
pub enum Test {
    /// McNemar's test on the paired correct/incorrect outcomes (accuracy).
    /// Non-inferiority under McNemar ignores the margin: it passes unless
    /// the candidate is significantly worse.
    McNemar,
    /// A seeded bootstrap interval of the metric difference.
    Bootstrap {
        /// The bootstrap settings.
        settings: Bootstrap,
        /// The metric; [`metric_fn`](crate::metric_fn) gives the built-in ones by name.
        metric: MetricFn,
    },
}

impl std::fmt::Debug for Test {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Test::McNemar => f.write_str("McNemar"),
            Test::Bootstrap { settings, .. } => f.debug_struct("Bootstrap").field("settings", settings).finish(),
        }
    }
}

/// The rules of one metric.
#[derive(Debug, Clone)]
pub struct Rule {
    metric: String,
    direction: Direction,
    threshold: Option<f64>,
    baseline: Option<BaselineRule>,
    significance: Option<(Significance, Test, f64)>,
}

impl Rule {
    /// A rule for a metric where higher is better (no checks yet).
    pub fn higher_is_better(metric: impl Into<String>) -> Self {
        Self::new(metric, Direction::HigherIsBetter)
    }

    /// A rule for a metric where lower is better (no checks yet).
    pub fn lower_is_better(metric: impl Into<String>) -> Self {
        Self::new(metric, Direction::LowerIsBetter)
    }

    fn new(metric: impl Into<String>, direction: Direction) -> Self {
        Rule {
            metric: metric.into(),
            direction,
            threshold: None,
            baseline: None,
            significance: None,
        }
    }

    /// The absolute threshold: at least it (higher is better) or at most it
    /// (lower is better). Default: none.
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// The comparison with the baseline. Default: none.
    pub fn baseline(mut self, rule: BaselineRule) -> Self {
        self.baseline = Some(rule);
        self
    }

    /// A statistical requirement on paired predictions at `confidence`
    /// (such as 0.95), checked by [`Gate::evaluate_paired`]. Default: none.
    pub fn significance(mut self, requirement: Significance, test: Test, confidence: f64) -> Self {
        self.significance = Some((requirement, test, confidence));
        self
    }

    /// The metric's name.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// Whether higher or lower is better.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    fn improvement(&self, candidate: f64, baseline: f64) -> f64 {
        match self.direction {
            Direction::HigherIsBetter => candidate - baseline,
            Direction::LowerIsBetter => baseline - candidate,
        }
    }
}

/// What the gate does when there is no baseline (the first model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoBaseline {
    /// Baseline checks pass, noting that there was no baseline. The default.
    Pass,
    /// Baseline checks fail: a baseline is required.
    Fail,
}

/// The evaluation gate: a candidate ships only if it passes every check.
///
/// ```
/// use model_persistence_gate::{BaselineRule, Gate, Margin, Metrics, Rule};
///
/// let gate = Gate::new([
///     Rule::higher_is_better("accuracy").threshold(0.88).baseline(BaselineRule::MayRegress(Margin::Absolute(0.0))),
/// ]);
/// let candidate = Metrics::from([("accuracy".to_owned(), 0.89)]);
/// let production = Metrics::from([("accuracy".to_owned(), 0.90)]);
/// let report = gate.evaluate(&candidate, Some(&production));
/// assert!(!report.passed());
/// assert_eq!(report.checks().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Gate {
    rules: Vec<Rule>,
    no_baseline: NoBaseline,
}

impl Gate {
    /// A gate of `rules`.
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        Gate {
            rules: rules.into_iter().collect(),
            no_baseline: NoBaseline::Pass,
        }
    }

    /// What baseline checks do without a baseline. Default: [`NoBaseline::Pass`].
    pub fn when_no_baseline(mut self, policy: NoBaseline) -> Self {
        self.no_baseline = policy;
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks `candidate` against every threshold and baseline rule.
    /// Statistical rules are reported as failed: they need
    /// [`evaluate_paired`](Self::evaluate_paired).
    pub fn evaluate(&self, candidate: &Metrics, baseline: Option<&Metrics>) -> Report {
        self.run(candidate, baseline, None)
    }

    /// Checks every rule, statistical ones on `paired` predictions.
    pub fn evaluate_paired(&self, candidate: &Metrics, baseline: Option<&Metrics>, paired: &Paired) -> Report {
        self.run(candidate, baseline, Some(paired))
    }

    fn run(&self, candidate: &Metrics, baseline: Option<&Metrics>, paired: Option<&Paired>) -> Report {
        let mut checks = Vec::new();
        for rule in &self.rules {
            let cand = candidate.get(&rule.metric).copied();
            if let Some(threshold) = rule.threshold {
                checks.push(threshold_check(rule, cand, threshold));
            }
            if let Some(b) = rule.baseline {
                checks.push(self.baseline_check(rule, cand, baseline, b));
            }
            if let Some((req, test, confidence)) = &rule.significance {
                checks.push(significance_check(rule, *req, test, *confidence, paired));
            }
        }
        Report::new(checks)
    }

    fn baseline_check(&self, rule: &Rule, cand: Option<f64>, baseline: Option<&Metrics>, b: BaselineRule) -> Check {
        let mut check = Check::new(&rule.metric, CheckKind::Baseline, rule.direction, cand);
        let Some(baseline) = baseline else {
            check.passed = self.no_baseline == NoBaseline::Pass;
            check.reason = match self.no_baseline {
                NoBaseline::Pass => "no baseline: first model".into(),
                NoBaseline::Fail => "no baseline, and one is required".into(),
            };
            return check;
        };
        let base = baseline.get(&rule.metric).copied();
        check.baseline = base;
        let (Some(c), Some(bv)) = (cand, base) else {
            check.reason = match (cand, base) {
                (None, _) => "metric missing from the candidate".into(),
                _ => "metric missing from the baseline".into(),
            };
            return check;
        };
        if !c.is_finite() || !bv.is_finite() {
            check.reason = format!("not a finite value (candidate {c}, baseline {bv})");
            return check;
        }
        let improvement = rule.improvement(c, bv);
        check.difference = Some(c - bv);
        let (needed, measured, unit) = match b {
            BaselineRule::MayRegress(Margin::Absolute(m)) => (-m, improvement, ""),
            BaselineRule::MustImprove(Margin::Absolute(m)) => (m, improvement, ""),
            BaselineRule::MayRegress(Margin::Relative(m)) => (-m, relative(improvement, bv), "relative "),
            BaselineRule::MustImprove(Margin::Relative(m)) => (m, relative(improvement, bv), "relative "),
        };
        // Boundaries are inclusive, with a little slack for rounding:
        // (0.30 − 0.33) / 0.30 is −0.1000000000000001 in binary floating point.
        check.passed = measured >= needed - BOUNDARY_SLACK * needed.abs().max(1.0);
        check.reason = match (b, check.passed) {
            (BaselineRule::MayRegress(_), true) if improvement >= 0.0 => "matches or beats the baseline".into(),
            (BaselineRule::MayRegress(_), true) => format!("{unit}regression {:.4} within {:.4}", -measured, -needed),
            (BaselineRule::MayRegress(_), false) => {
                format!("{unit}regression {:.4} exceeds the tolerated {:.4}", -measured, -needed)
            }
            (BaselineRule::MustImprove(_), true) => format!("{unit}improvement {measured:.4} ≥ {needed:.4}"),
            (BaselineRule::MustImprove(_), false) => format!("{unit}improvement {measured:.4} < required {needed:.4}"),
        };
        check
    }
}

/// Slack at baseline boundaries for floating-point rounding.
const BOUNDARY_SLACK: f64 = 1e-12;

fn relative(improvement: f64, baseline: f64) -> f64 {
    if baseline == 0.0 {
        if improvement == 0.0 {
            0.0
        } else {
            improvement.signum() * f64::INFINITY
        }
    } else {
        improvement / baseline.abs()
    }
}

fn threshold_check(rule: &Rule, cand: Option<f64>, threshold: f64) -> Check {
    let mut check = Check::new(&rule.metric, CheckKind::Threshold, rule.direction, cand);
    check.threshold = Some(threshold);
    let Some(c) = cand else {
        check.reason = "metric missing from the candidate".into();
        return check;
    };
    if !c.is_finite() {
        check.reason = format!("not a finite value ({c})");
        return check;
    }
    let (passed, word) = match rule.direction {
        Direction::HigherIsBetter => (c >= threshold, if c >= threshold { "≥" } else { "<" }),
        Direction::LowerIsBetter => (c <= threshold, if c <= threshold { "≤" } else { ">" }),
    };
    check.passed = passed;
    check.reason = format!("{c:.4} {word} threshold {threshold}");
    check
}

fn significance_check(rule: &Rule, req: Significance, test: &Test, confidence: f64, paired: Option<&Paired>) -> Check {
    let mut check = Check::new(&rule.metric, CheckKind::Significance, rule.direction, None);
    let Some(paired) = paired else {
        check.reason = "needs paired predictions".into();
        return check;
    };
    let n = paired.actual.len();
    if n == 0 || paired.candidate.len() != n || paired.baseline.len() != n {
        check.reason = format!(
            "paired predictions of unequal lengths ({} labels, {} candidate, {} baseline)",
            n,
            paired.candidate.len(),
            paired.baseline.len()
        );
        return check;
    }
    let alpha = 1.0 - confidence;
    match test {
        Test::McNemar => {
            let t = McNemar::from_predictions(&paired.actual, &paired.candidate, &paired.baseline);
            let (b, c) = (t.candidate_only, t.baseline_only);
            check.difference = Some((b as f64 - c as f64) / n as f64);
            check.candidate = Some(metrics::accuracy(&paired.actual, &paired.candidate));
            check.baseline = Some(metrics::accuracy(&paired.actual, &paired.baseline));
            check.p_value = Some(t.p_value);
            let significant = t.p_value < alpha;
            let (passed, verdict) = match req {
                Significance::SignificantlyBetter => (significant && b > c, "significantly better"),
                Significance::NotSignificantlyWorse { .. } => (!(significant && c > b), "not significantly worse"),
            };
            check.passed = passed;
            check.reason = format!(
                "McNemar {b}:{c} discordant, p = {} ({}): {}{verdict}",
                if t.p_value < 1e-4 {
                    format!("{:.1e}", t.p_value)
                } else {
                    format!("{:.4}", t.p_value)
                },
                if t.exact { "exact" } else { "chi-square" },
                if passed { "" } else { "not " }
            );
        }
        Test::Bootstrap { settings, metric } => {
            let settings = Bootstrap {
                confidence,
                ..*settings
            };
            let interval = settings.difference(paired, metric);
            // Improvement in the better direction.
            let (low, high) = match rule.direction {
                Direction::HigherIsBetter => (interval.lower, interval.upper),
                Direction::LowerIsBetter => (-interval.upper, -interval.lower),
            };
            check.difference = Some(interval.estimate);
            check.interval = Some((interval.lower, interval.upper));
            let (passed, bound) = match req {
                Significance::SignificantlyBetter => (low > 0.0, "0".to_owned()),
                Significance::NotSignificantlyWorse { margin } => (low > -margin, format!("−{margin}")),
            };
            check.passed = passed && !low.is_nan();
            check.reason = format!(
                "bootstrap {:.0}% interval of the improvement [{low:.4}, {high:.4}] ({} resamples, seed {}): lower bound {} {bound}",
                confidence * 100.0,
                settings.resamples,
                settings.seed,
                if check.passed { "above" } else { "not above" }
            );
        }
    }
    check
}
