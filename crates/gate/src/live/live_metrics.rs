//! Live metrics of one version or variant, from its joined outcomes.

use serde::{Deserialize, Serialize};

use super::feedback::Arm;
use super::sequential::Proportion;

/// The running counts of one arm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub(crate) predictions: u64,
    pub(crate) expired: u64,
    outcomes: u64,
    correct: u64,
    tp: u64,
    fp: u64,
    fn_: u64,
    scored: u64,
    brier: f64,
    log_loss: f64,
}

impl Counts {
    pub(crate) fn add(&mut self, predicted: i64, actual: i64, score: Option<f64>, positive: i64) {
        self.outcomes += 1;
        self.correct += u64::from(predicted == actual);
        match (predicted == positive, actual == positive) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => {}
        }
        if let Some(p) = score {
            let p = p.clamp(0.0, 1.0);
            let y = f64::from(u8::from(actual == positive));
            self.scored += 1;
            self.brier += (p - y).powi(2);
            let q = if y == 1.0 { p } else { 1.0 - p };
            self.log_loss -= q.max(1e-15).ln();
        }
    }

    pub(crate) fn metrics(&self, arm: Arm) -> LiveMetrics {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let precision = ratio(self.tp, self.tp + self.fp);
        let recall = ratio(self.tp, self.tp + self.fn_);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        LiveMetrics {
            arm,
            predictions: self.predictions,
            outcomes: self.outcomes,
            expired: self.expired,
            correct: self.correct,
            true_positives: self.tp,
            false_positives: self.fp,
            false_negatives: self.fn_,
            accuracy: ratio(self.correct, self.outcomes),
            precision,
            recall,
            f1,
            scored: self.scored,
            brier: (self.scored > 0).then(|| self.brier / self.scored as f64),
            log_loss: (self.scored > 0).then(|| self.log_loss / self.scored as f64),
        }
    }
}

/// What the outcomes say of one version or variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveMetrics {
    /// The version, and variant.
    pub arm: Arm,
    /// Predictions recorded.
    pub predictions: u64,
    /// Predictions joined with their outcome.
    pub outcomes: u64,
    /// Predictions dropped unmatched (past the window, or over capacity).
    pub expired: u64,
    /// Outcomes predicted right.
    pub correct: u64,
    /// Positive predicted, positive actual.
    pub true_positives: u64,
    /// Positive predicted, negative actual.
    pub false_positives: u64,
    /// Negative predicted, positive actual.
    pub false_negatives: u64,
    /// `correct / outcomes`.
    pub accuracy: Option<f64>,
    /// Of the positive predictions, the share right.
    pub precision: Option<f64>,
    /// Of the positive outcomes, the share found.
    pub recall: Option<f64>,
    /// The harmonic mean of precision and recall.
    pub f1: Option<f64>,
    /// Outcomes whose prediction had a score.
    pub scored: u64,
    /// Mean squared error of the positive-label probability (lower is better).
    pub brier: Option<f64>,
    /// Mean negative log-likelihood of the outcome (lower is better).
    pub log_loss: Option<f64>,
}

/// A live metric a guardrail or an A/B test judges by: a proportion, so
/// that its sequential test is one of two proportions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveMetric {
    /// Correct over outcomes.
    Accuracy,
    /// True positives over positive predictions.
    Precision,
    /// True positives over positive outcomes.
    Recall,
}

impl LiveMetric {
    /// The metric's successes and trials in `m`.
    pub fn proportion(self, m: &LiveMetrics) -> Proportion {
        let (successes, trials) = match self {
            LiveMetric::Accuracy => (m.correct, m.outcomes),
            LiveMetric::Precision => (m.true_positives, m.true_positives + m.false_positives),
            LiveMetric::Recall => (m.true_positives, m.true_positives + m.false_negatives),
        };
        Proportion { successes, trials }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            LiveMetric::Accuracy => "accuracy",
            LiveMetric::Precision => "precision",
            LiveMetric::Recall => "recall",
        }
    }
}
