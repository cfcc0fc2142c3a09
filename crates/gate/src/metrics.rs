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
/// (binary, label 1 positive), `roc_auc`, `log_loss` (these two need scores).
pub fn metric_fn(name: &str) -> Option<MetricFn> {
    Some(match name {
        "accuracy" => MetricFn::Confusion(Confusion::accuracy),
        "precision" => MetricFn::Confusion(Confusion::precision),
        "recall" => MetricFn::Confusion(Confusion::recall),
        "f1" | "f1_score" => MetricFn::Confusion(Confusion::f1),
        "roc_auc" | "auc" => MetricFn::custom(|s: &Sample<'_>| roc_auc(s.actual, s.scores)),
        "log_loss" => MetricFn::custom(|s: &Sample<'_>| log_loss(s.actual, s.scores)),
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

#[cfg(test)]
mod tests {
    use super::*;

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
