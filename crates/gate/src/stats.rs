//! Significance tests on paired predictions: McNemar's test and a seeded
//! bootstrap confidence interval of a metric difference.

use crate::metrics::Confusion;
use crate::metrics::{MetricFn, Sample};
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// Below this many discordant pairs, McNemar's test uses the exact binomial
/// distribution instead of the chi-square approximation.
pub const MCNEMAR_EXACT_BELOW: u64 = 25;

/// The result of McNemar's test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Rows the candidate got right and the baseline wrong.
    pub candidate_only: u64,
    /// Rows the baseline got right and the candidate wrong.
    pub baseline_only: u64,
    /// The statistic: chi-square with continuity correction, or `None` for the exact test.
    pub statistic: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the exact binomial test was used.
    pub exact: bool,
}

impl McNemar {
    /// McNemar's test from the two discordant counts.
    ///
    /// With fewer than [`MCNEMAR_EXACT_BELOW`] discordant pairs the exact
    /// two-sided binomial test (p = 0.5) is used; otherwise the chi-square
    /// statistic `(|b − c| − 1)² / (b + c)` with one degree of freedom.
    pub fn from_counts(candidate_only: u64, baseline_only: u64) -> Self {
        let (b, c) = (candidate_only, baseline_only);
        let n = b + c;
        if n == 0 {
            return McNemar {
                candidate_only: b,
                baseline_only: c,
                statistic: None,
                p_value: 1.0,
                exact: true,
            };
        }
        if n < MCNEMAR_EXACT_BELOW {
            let k = b.min(c);
            let tail: f64 = (0..=k)
                .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
                .sum();
            return McNemar {
                candidate_only: b,
                baseline_only: c,
                statistic: None,
                p_value: (2.0 * tail).min(1.0),
                exact: true,
            };
        }
        let diff = (b as f64 - c as f64).abs() - 1.0;
        let stat = diff.max(0.0).powi(2) / n as f64;
        McNemar {
            candidate_only: b,
            baseline_only: c,
            statistic: Some(stat),
            // The approximation of erfc(0) is 1.00000003: a p-value is at most 1.
            p_value: erfc((stat / 2.0).sqrt()).min(1.0),
            exact: false,
        }
    }

    /// McNemar's test on paired predictions of the same rows.
    pub fn from_predictions(actual: &[usize], candidate: &[usize], baseline: &[usize]) -> Self {
        let (mut b, mut c) = (0, 0);
        for ((a, x), y) in actual.iter().zip(candidate).zip(baseline) {
            match (x == a, y == a) {
                (true, false) => b += 1,
                (false, true) => c += 1,
                _ => {}
            }
        }
        Self::from_counts(b, c)
    }
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

fn ln_factorial(n: u64) -> f64 {
    (2..=n).map(|i| (i as f64).ln()).sum()
}

/// The complementary error function (W. J. Cody's rational Chebyshev
/// approximation as given in Numerical Recipes' `erfcc`; relative error
/// below 1.2e-7 everywhere).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Settings of a bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Number of resamples. Default: 1,000.
    pub resamples: usize,
    /// Confidence level of the interval. Default: 0.95.
    pub confidence: f64,
    /// Seed of the resampling. Default: 0.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: 1_000,
            confidence: 0.95,
            seed: 0,
        }
    }
}

/// A percentile confidence interval of `candidate − baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The difference on the full sample.
    pub estimate: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// The confidence level.
    pub confidence: f64,
}

/// Paired predictions of a candidate and a baseline on the same hold-out rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paired {
    /// The true labels.
    pub actual: Vec<usize>,
    /// The candidate's predicted labels.
    pub candidate: Vec<usize>,
    /// The baseline's predicted labels.
    pub baseline: Vec<usize>,
    /// The candidate's positive-class scores (optional: for AUC, log loss).
    pub candidate_scores: Vec<f64>,
    /// The baseline's positive-class scores (optional).
    pub baseline_scores: Vec<f64>,
}

impl Bootstrap {
    /// The percentile interval of `metric(candidate) − metric(baseline)`
    /// over `resamples` resamples of the rows, drawn with a seeded generator:
    /// the same seed gives the same interval.
    pub fn difference(&self, paired: &Paired, metric: &MetricFn) -> Interval {
        let n = paired.actual.len();
        let estimate = match metric {
            MetricFn::Confusion(f) => {
                f(&Confusion::from_labels(&paired.actual, &paired.candidate))
                    - f(&Confusion::from_labels(&paired.actual, &paired.baseline))
            }
            MetricFn::Sample(f) => {
                f(&Sample {
                    actual: &paired.actual,
                    predicted: &paired.candidate,
                    scores: &paired.candidate_scores,
                }) - f(&Sample {
                    actual: &paired.actual,
                    predicted: &paired.baseline,
                    scores: &paired.baseline_scores,
                })
            }
        };
        if n == 0 || self.resamples == 0 || paired.candidate.len() != n || paired.baseline.len() != n {
            return Interval {
                estimate,
                lower: estimate,
                upper: estimate,
                confidence: self.confidence,
            };
        }
        let mut rng = SplitMix64::new(self.seed);
        let mut draw = move || ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize;
        let mut diffs = Vec::with_capacity(self.resamples);
        match metric {
            MetricFn::Confusion(f) => {
                for _ in 0..self.resamples {
                    let (mut c, mut b) = (Confusion::default(), Confusion::default());
                    for _ in 0..n {
                        let i = draw();
                        let a = paired.actual[i] == 1;
                        c.add(a, paired.candidate[i] == 1);
                        b.add(a, paired.baseline[i] == 1);
                    }
                    diffs.push(f(&c) - f(&b));
                }
            }
            MetricFn::Sample(f) => {
                let has_scores = paired.candidate_scores.len() == n && paired.baseline_scores.len() == n;
                let (mut actual, mut cand, mut base) = (vec![0; n], vec![0; n], vec![0; n]);
                let (mut cand_s, mut base_s) = if has_scores {
                    (vec![0.0; n], vec![0.0; n])
                } else {
                    (Vec::new(), Vec::new())
                };
                for _ in 0..self.resamples {
                    for j in 0..n {
                        let i = draw();
                        actual[j] = paired.actual[i];
                        cand[j] = paired.candidate[i];
                        base[j] = paired.baseline[i];
                        if has_scores {
                            cand_s[j] = paired.candidate_scores[i];
                            base_s[j] = paired.baseline_scores[i];
                        }
                    }
                    let c = f(&Sample {
                        actual: &actual,
                        predicted: &cand,
                        scores: &cand_s,
                    });
                    let b = f(&Sample {
                        actual: &actual,
                        predicted: &base,
                        scores: &base_s,
                    });
                    diffs.push(c - b);
                }
            }
        }
        diffs.retain(|d| !d.is_nan());
        diffs.sort_by(f64::total_cmp);
        let alpha = (1.0 - self.confidence.clamp(0.0, 1.0)) / 2.0;
        let at = |q: f64| {
            let last = diffs.len().checked_sub(1)?;
            let idx = ((last as f64) * q).round() as usize;
            diffs.get(idx.min(last)).copied()
        };
        Interval {
            estimate,
            lower: at(alpha).unwrap_or(f64::NAN),
            upper: at(1.0 - alpha).unwrap_or(f64::NAN),
            confidence: self.confidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207_050_285).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_792_949_715).abs() < 1e-7);
        assert!((erfc(2.0) - 0.004_677_734_981_047).abs() < 1e-8);
    }

    #[test]
    fn mcnemar_exact_for_11_to_1_is_significant() {
        // Exact binomial: 2 * (C(12,0) + C(12,1)) / 2^12 = 26 / 4096.
        let t = McNemar::from_counts(11, 1);
        assert!(t.exact);
        assert!((t.p_value - 26.0 / 4096.0).abs() < 1e-12, "{}", t.p_value);
        assert!(t.p_value < 0.05);
    }

    #[test]
    fn mcnemar_chi_square_for_25_to_15_is_not_significant() {
        // (|25 - 15| - 1)^2 / 40 = 2.025, p = 0.1547 (chi-square, 1 df).
        let t = McNemar::from_counts(25, 15);
        assert!(!t.exact);
        assert!((t.statistic.expect("chi-square") - 2.025).abs() < 1e-12);
        assert!((t.p_value - 0.154_6).abs() < 1e-3, "{}", t.p_value);
        assert!(t.p_value > 0.05);
    }

    #[test]
    fn mcnemar_textbook_chi_square() {
        // A classic example: b = 121, c = 59 gives chi-square (with correction) 20.68, p < 0.001.
        let t = McNemar::from_counts(121, 59);
        assert!((t.statistic.expect("chi-square") - 20.672).abs() < 1e-2);
        assert!(t.p_value < 1e-4);
        assert_eq!(McNemar::from_counts(0, 0).p_value, 1.0);
        assert_eq!(McNemar::from_counts(5, 5).p_value, 1.0);
    }
}
