//! Metrics and the direction that makes them better.
//!
//! A card's metrics are plain numbers by name; whether 0.9 beats 0.8
//! depends on the metric (accuracy: yes; log loss: no). [`Direction`] says
//! which, and lives here, beside the metrics it directs, so the registry
//! (`best`), the gate (thresholds, baselines) and the tools agree.

use serde::{Deserialize, Serialize};

/// Whether higher or lower values of a metric are better.
///
/// ```
/// use model_persistence_core::Direction;
///
/// assert!(Direction::HigherIsBetter.is_better(0.9, 0.8));
/// assert!(Direction::LowerIsBetter.is_better(0.1, 0.2));
/// assert_eq!(Direction::of_metric("log_loss"), Some(Direction::LowerIsBetter));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is better (accuracy, F1, AUC).
    HigherIsBetter,
    /// Lower is better (log loss, error rate, latency).
    LowerIsBetter,
}

impl Direction {
    /// Whether `candidate` is strictly better than `incumbent`. NaN is never better.
    pub fn is_better(self, candidate: f64, incumbent: f64) -> bool {
        match self {
            Direction::HigherIsBetter => candidate > incumbent,
            Direction::LowerIsBetter => candidate < incumbent,
        }
    }

    /// `candidate - incumbent` signed so that positive means better.
    pub fn improvement(self, candidate: f64, incumbent: f64) -> f64 {
        match self {
            Direction::HigherIsBetter => candidate - incumbent,
            Direction::LowerIsBetter => incumbent - candidate,
        }
    }

    /// The direction of a well-known metric name, `None` for others.
    ///
    /// Lower is better for names that are losses, errors, latencies or
    /// scores of badness (`loss`, `error`, `mse`, `rmse`, `mae`, `brier`,
    /// `latency`, `time`, anywhere in the name); higher for the usual
    /// scores (`accuracy`, `f1`, `precision`, `recall`, `auc`, `r2`, …).
    pub fn of_metric(name: &str) -> Option<Direction> {
        let name = name.to_ascii_lowercase();
        const LOWER: [&str; 9] = [
            "loss",
            "error",
            "mse",
            "rmse",
            "mae",
            "brier",
            "latency",
            "time",
            "perplexity",
        ];
        const HIGHER: [&str; 9] = [
            "accuracy",
            "f1",
            "precision",
            "recall",
            "auc",
            "r2",
            "score",
            "specificity",
            "kappa",
        ];
        if LOWER.iter().any(|w| name.contains(w)) {
            Some(Direction::LowerIsBetter)
        } else if HIGHER.iter().any(|w| name.contains(w)) {
            Some(Direction::HigherIsBetter)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_never_better() {
        for d in [Direction::HigherIsBetter, Direction::LowerIsBetter] {
            assert!(!d.is_better(f64::NAN, 0.5));
            assert!(!d.is_better(0.5, 0.5));
        }
    }

    #[test]
    fn well_known_metrics_have_their_direction() {
        assert_eq!(Direction::of_metric("F1"), Some(Direction::HigherIsBetter));
        assert_eq!(Direction::of_metric("roc_auc"), Some(Direction::HigherIsBetter));
        assert_eq!(Direction::of_metric("val_loss"), Some(Direction::LowerIsBetter));
        assert_eq!(Direction::of_metric("p99_latency_ms"), Some(Direction::LowerIsBetter));
        assert_eq!(Direction::of_metric("widgets"), None);
    }
}
