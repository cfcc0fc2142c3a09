//! The gate's report: data (serde) and a table for people.

use model_persistence_core::Direction;
use serde::{Deserialize, Serialize};

/// What a check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckKind {
    /// The candidate against an absolute threshold.
    Threshold,
    /// The candidate against the baseline.
    Baseline,
    /// A significance test on paired predictions.
    Significance,
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckKind::Threshold => "threshold",
            CheckKind::Baseline => "baseline",
            CheckKind::Significance => "significance",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Check {
    /// The metric.
    pub metric: String,
    /// What is compared.
    pub kind: CheckKind,
    /// Whether higher or lower is better.
    pub direction: Direction,
    /// The candidate's value.
    pub candidate: Option<f64>,
    /// The threshold, for threshold checks.
    pub threshold: Option<f64>,
    /// The baseline's value.
    pub baseline: Option<f64>,
    /// `candidate − baseline` (for McNemar: the discordance difference over the rows).
    pub difference: Option<f64>,
    /// The p-value, for McNemar's test.
    pub p_value: Option<f64>,
    /// The confidence interval of the difference, for the bootstrap.
    pub interval: Option<(f64, f64)>,
    /// The verdict.
    pub passed: bool,
    /// Why, in words.
    pub reason: String,
}

impl Check {
    pub(crate) fn new(metric: &str, kind: CheckKind, direction: Direction, candidate: Option<f64>) -> Self {
        Check {
            metric: metric.to_owned(),
            kind,
            direction,
            candidate,
            threshold: None,
            baseline: None,
            difference: None,
            p_value: None,
            interval: None,
            passed: false,
            reason: String::new(),
        }
    }
}

/// The outcome of a gate: every check, and whether all passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    passed: bool,
    checks: Vec<Check>,
}

impl Report {
    pub(crate) fn new(checks: Vec<Check>) -> Self {
        Report {
            passed: !checks.is_empty() && checks.iter().all(|c| c.passed),
            checks,
        }
    }

    /// Whether every check passed (a gate without checks does not pass).
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// The checks, in rule order.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

impl std::fmt::Display for Report {
    /// One line per check: verdict, metric, check, candidate, threshold,
    /// baseline, difference and the reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "  {:<14} {:<12} {:>9} {:>9} {:>9} {:>10}  reason",
            "metric", "check", "candidate", "threshold", "baseline", "difference"
        )?;
        for c in &self.checks {
            let diff = c.difference.map_or_else(|| "-".to_owned(), |d| format!("{d:+.4}"));
            writeln!(
                f,
                "{} {:<14} {:<12} {:>9} {:>9} {:>9} {:>10}  {}",
                if c.passed { "✓" } else { "✗" },
                c.metric,
                c.kind.to_string(),
                cell(c.candidate),
                cell(c.threshold),
                cell(c.baseline),
                diff,
                c.reason
            )?;
        }
        write!(
            f,
            "{}",
            if self.passed {
                "PASS: every check cleared".to_owned()
            } else {
                format!(
                    "FAIL: {} of {} checks failed",
                    self.failures().count(),
                    self.checks.len()
                )
            }
        )
    }
}
