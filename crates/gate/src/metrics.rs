//! Classification metrics on labels, predictions and scores.
//!
//! Binary metrics treat label 1 as the positive class. A ratio whose
//! denominator is zero (no predicted positives for precision, no actual
//! positives for recall) is 0, as scikit-learn's `zero_division=0`.

use std::sync::Arc;

/// One resample (or the full sample) of paired predictions.
#[derive(Debug)]
pub struct Sample<'a> {
    /// The true labels.
    pub actual: &'a [usize],
    /// One model's predicted labels.
    pub predicted: &'a [usize],
    /// The same model's positive-class scores (empty if none were given).
    pub scores: &'a [f64],
}

/// A metric of one model's predictions, for the bootstrap.
#[derive(Clone)]
pub enum MetricFn {
    /// A function of the binary confusion counts: the bootstrap counts
    /// resampled rows directly, without copying them (fast).
    Confusion(fn(&Confusion) -> f64),
    /// Any function of a resampled sample (labels, predictions, scores).
    Sample(Arc<dyn Fn(&Sample<'_>) -> f64 + Send + Sync>),
}

impl std::fmt::Debug for MetricFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricFn::Confusion(_) => "MetricFn::Confusion",
            MetricFn::Sample(_) => "MetricFn::Sample",
        })
    }
}

impl MetricFn {
    /// A user-supplied metric of a sample.
    pub fn custom(f: impl Fn(&Sample<'_>) -> f64 + Send + Sync + 'static) -> Self {
        MetricFn::Sample(Arc::new(f))
    }
}

/// A built-in metric by name: `accuracy`, `precision`, `recall`, `f1`
/// (binary, label 1 positive), `roc_auc`, `log_loss`, `brier_score` (these three need scores).
pub fn metric_fn(name: &str) -> Option<MetricFn> {
    Some(match name {
        "accuracy" => MetricFn::Confusion(Confusion::accuracy),
        "precision" => MetricFn::Confusion(Confusion::precision),
        "recall" => MetricFn::Confusion(Confusion::recall),
        "f1" | "f1_score" => MetricFn::Confusion(Confusion::f1),
        "roc_auc" | "auc" => MetricFn::custom(|s: &Sample<'_>| roc_auc(s.actual, s.scores)),
        "log_loss" => MetricFn::custom(|s: &Sample<'_>| log_loss(s.actual, s.scores)),
        "brier_score" | "brier" => MetricFn::custom(|s: &Sample<'_>| brier_score(s.actual, s.scores)),
        _ => return None,
    })
}

/// The counts of a binary confusion matrix (positive class: label 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Predicted 1, actual 1.
    pub tp: u64,
    /// Predicted 1, actual 0.
    pub fp: u64,
    /// Predicted 0, actual 0.
    pub tn: u64,
    /// Predicted 0, actual 1.
    pub fn_: u64,
}

impl Confusion {
    /// Counts over pairs of (actual, predicted); labels other than 0 and 1
    /// count as 0.
    pub fn from_labels(actual: &[usize], predicted: &[usize]) -> Self {
        let mut c = Confusion::default();
        for (&a, &p) in actual.iter().zip(predicted) {
            c.add(a == 1, p == 1);
        }
        c
    }

    /// Counts one (actual, predicted) pair, `true` meaning label 1.
    pub fn add(&mut self, actual: bool, predicted: bool) {
        match (actual, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }

    fn ratio(num: u64, den: u64) -> f64 {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    }

    /// Share of correct predictions.
    pub fn accuracy(&self) -> f64 {
        Self::ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
    /// TP / (TP + FP).
    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }
    /// TP / (TP + FN).
    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall: 2TP / (2TP + FP + FN).
    pub fn f1(&self) -> f64 {
        Self::ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

/// Accuracy of `predicted` against `actual` (any number of classes).
pub fn accuracy(actual: &[usize], predicted: &[usize]) -> f64 {
    let n = actual.len().min(predicted.len());
    if n == 0 {
        return 0.0;
    }
    actual.iter().zip(predicted).filter(|(a, p)| a == p).count() as f64 / n as f64
}

/// Area under the ROC curve of positive-class `scores` (label 1 positive),
/// by the rank-sum (Mann–Whitney) formula with ties counted as one half.
/// `NaN` if either class is absent.
pub fn roc_auc(actual: &[usize], scores: &[f64]) -> f64 {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(actual.iter().map(|&a| a == 1)).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut positives) = (0.0, 0_u64);
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for p in &pairs[i..=j] {
            if p.1 {
                rank_sum += mean_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = pairs.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// Mean binary cross-entropy of positive-class probabilities, clipped to
/// `[1e-15, 1 - 1e-15]`.
pub fn log_loss(actual: &[usize], probabilities: &[f64]) -> f64 {
    let n = actual.len().min(probabilities.len());
    if n == 0 {
        return f64::NAN;
    }
    let sum: f64 = actual
        .iter()
        .zip(probabilities)
        .map(|(&a, &p)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if a == 1 {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    sum / n as f64
}

/// Mean squared difference between positive-class probabilities and the
/// outcomes (label 1 is 1, others 0); lower is better. `NaN` if empty.
pub fn brier_score(actual: &[usize], probabilities: &[f64]) -> f64 {
    let n = actual.len().min(probabilities.len());
    if n == 0 {
        return f64::NAN;
    }
    actual
        .iter()
        .zip(probabilities)
        .map(|(&a, &p)| {
            let y = if a == 1 { 1.0 } else { 0.0 };
            (p - y) * (p - y)
        })
        .sum::<f64>()
        / n as f64
}

/// Every metric the gate knows for a binary classifier's answers on a
/// hold-out set: accuracy, precision, recall and F1 from the labels, and
/// ROC AUC, log loss and Brier score when positive-class scores are given.
/// Label 1 is the positive class.
///
/// ```
/// use model_persistence_gate::metrics::evaluate;
///
/// let m = evaluate(&[1, 0, 1, 0], &[1, 0, 0, 0], Some(&[0.9, 0.2, 0.4, 0.1]));
/// assert_eq!(m["accuracy"], 0.75);
/// assert_eq!(m["roc_auc"], 1.0);
/// assert!(m.contains_key("brier_score") && m.contains_key("log_loss"));
/// ```
pub fn evaluate(actual: &[usize], predicted: &[usize], positive_scores: Option<&[f64]>) -> crate::Metrics {
    let c = Confusion::from_labels(actual, predicted);
    let mut m = crate::Metrics::new();
    m.insert("accuracy".into(), c.accuracy());
    m.insert("precision".into(), c.precision());
    m.insert("recall".into(), c.recall());
    m.insert("f1".into(), c.f1());
    if let Some(scores) = positive_scores {
        m.insert("roc_auc".into(), roc_auc(actual, scores));
        m.insert("log_loss".into(), log_loss(actual, scores));
        m.insert("brier_score".into(), brier_score(actual, scores));
    }
    m
}

/// [`evaluate`] on what a dynamic model answered: labels that are not
/// class labels count as class 0, and the scores' column 1 is the positive
/// class's probability.
pub fn evaluate_predictions(actual: &[usize], predictions: &model_persistence_core::Predictions) -> crate::Metrics {
    let predicted: Vec<usize> = predictions
        .labels
        .iter()
        .map(|l| match l {
            model_persistence_core::ProbeValue::Label(l) => usize::try_from(*l).unwrap_or(0),
            model_persistence_core::ProbeValue::Value(_) => 0,
        })
        .collect();
    let positive: Option<Vec<f64>> = predictions
        .scores
        .as_ref()
        .filter(|s| s.ncols() >= 2)
        .map(|s| s.column(1).to_vec());
    evaluate(actual, &predicted, positive.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brier_score_is_the_mean_squared_error_of_probabilities() {
        assert_eq!(brier_score(&[1, 0], &[1.0, 0.0]), 0.0);
        assert_eq!(brier_score(&[1, 0], &[0.5, 0.5]), 0.25);
        assert!(brier_score(&[], &[]).is_nan());
    }

    #[test]
    fn confusion_metrics_match_hand_counts() {
        let actual = [1, 1, 1, 0, 0, 0, 0, 1];
        let predicted = [1, 1, 0, 0, 0, 1, 0, 0];
        let c = Confusion::from_labels(&actual, &predicted);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 3,
                fn_: 2
            }
        );
        assert_eq!(c.accuracy(), 5.0 / 8.0);
        assert_eq!(c.precision(), 2.0 / 3.0);
        assert_eq!(c.recall(), 0.5);
        assert!((c.f1() - 4.0 / 7.0).abs() < 1e-15);
        assert_eq!(accuracy(&actual, &predicted), 5.0 / 8.0);
    }

    #[test]
    fn zero_division_is_zero() {
        let c = Confusion::from_labels(&[0, 0], &[0, 0]);
        assert_eq!(c.precision(), 0.0);
        assert_eq!(c.recall(), 0.0);
        assert_eq!(c.f1(), 0.0);
    }

    #[test]
    fn auc_of_perfect_random_and_inverted_scores() {
        let actual = [0, 0, 1, 1];
        assert_eq!(roc_auc(&actual, &[0.1, 0.2, 0.8, 0.9]), 1.0);
        assert_eq!(roc_auc(&actual, &[0.9, 0.8, 0.2, 0.1]), 0.0);
        assert_eq!(roc_auc(&actual, &[0.5, 0.5, 0.5, 0.5]), 0.5);
        // scikit-learn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.75
        assert_eq!(roc_auc(&actual, &[0.1, 0.4, 0.35, 0.8]), 0.75);
        assert!(roc_auc(&[1, 1], &[0.2, 0.3]).is_nan());
    }

    #[test]
    fn log_loss_of_known_values() {
        // scikit-learn: log_loss([1, 0], [0.9, 0.2]) == 0.164252033486018
        assert!((log_loss(&[1, 0], &[0.9, 0.2]) - 0.164_252_033_486_018).abs() < 1e-12);
        assert!(log_loss(&[1], &[0.0]).is_finite());
    }
}
