//! An always-valid sequential test of two proportions: the mixture
//! sequential probability ratio test (mSPRT) with a normal mixture over the
//! difference, as in Johari, Pekelis and Walsh, "Always Valid Inference:
//! Continuous Monitoring of A/B Tests" (Operations Research, 2022).
//!
//! A fixed-sample test looked at after every outcome, and stopped the first
//! time its p-value dips under alpha, rejects far more often than alpha
//! (with enough looks, almost surely). The mSPRT's p-value is valid at any
//! stopping time: `p_n = min(p_{n-1}, 1 / Λ_n)` where
//!
//! `Λ_n = sqrt(V / (V + τ²)) · exp(τ² Δ² / (2 V (V + τ²)))`,
//!
//! `Δ` the observed difference of the two proportions, `V` its variance
//! (`p_a(1−p_a)/n_a + p_b(1−p_b)/n_b`, with each proportion smoothed as
//! `(s + 1) / (n + 2)` so that an arm that is always right has a variance)
//! and `τ` the spread of differences the test is tuned to find. The running
//! minimum makes `p_n` never increase: once under alpha, it stays.

use serde::{Deserialize, Serialize};

/// Settings of the sequential test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sequential {
    /// The false-positive rate the test keeps, however often it is looked
    /// at. Default: 0.05.
    pub alpha: f64,
    /// The standard deviation of the normal mixture over the difference:
    /// about the size of difference worth finding. Default: 0.05.
    pub tau: f64,
    /// Outcomes each arm needs before the test may decide (the variance
    /// estimate is poor below it). Default: 100.
    pub min_samples: u64,
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential {
            alpha: 0.05,
            tau: 0.05,
            min_samples: 100,
        }
    }
}

/// Successes out of trials of one arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Proportion {
    /// Successes (correct predictions, say).
    pub successes: u64,
    /// Trials.
    pub trials: u64,
}

impl Proportion {
    /// The observed proportion (0 for no trials).
    pub fn rate(&self) -> f64 {
        if self.trials == 0 {
            0.0
        } else {
            self.successes as f64 / self.trials as f64
        }
    }

    fn smoothed(&self) -> f64 {
        (self.successes as f64 + 1.0) / (self.trials as f64 + 2.0)
    }
}

/// Where the test stands after the latest outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialState {
    /// `rate(b) − rate(a)`.
    pub difference: f64,
    /// The natural logarithm of the mixture likelihood ratio of the latest
    /// look (the ratio itself overflows when the arms are far apart).
    pub log_likelihood_ratio: f64,
    /// The always-valid p-value: the least `1 / Λ` seen so far, at most 1.
    pub p_value: f64,
    /// Whether the test has decided (`p_value ≤ alpha` with both arms past
    /// `min_samples`).
    pub decided: bool,
    /// The arms' counts at the latest look.
    pub a: Proportion,
    /// The arms' counts at the latest look.
    pub b: Proportion,
}

/// A running mSPRT of arm `b` against arm `a`: feed it the arms' counts
/// after every outcome (or every batch), in any order of looks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlwaysValid {
    settings: Sequential,
    p_value: f64,
    looks: u64,
}

impl AlwaysValid {
    /// A test that has seen nothing (p-value 1).
    pub fn new(settings: Sequential) -> Self {
        AlwaysValid {
            settings,
            p_value: 1.0,
            looks: 0,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Sequential {
        &self.settings
    }

    /// How many looks the test has had.
    pub fn looks(&self) -> u64 {
        self.looks
    }

    /// Looks at the arms' counts now.
    pub fn update(&mut self, a: Proportion, b: Proportion) -> SequentialState {
        self.looks += 1;
        let ready = a.trials >= self.settings.min_samples && b.trials >= self.settings.min_samples;
        let ln = if ready {
            log_likelihood_ratio(a, b, self.settings.tau)
        } else {
            0.0
        };
        if !ln.is_nan() {
            // 1/Λ = exp(−ln Λ): 0 when Λ overflows, never NaN.
            self.p_value = self.p_value.min((-ln).exp()).min(1.0);
        }
        SequentialState {
            difference: b.rate() - a.rate(),
            log_likelihood_ratio: ln,
            p_value: self.p_value,
            decided: ready && self.p_value <= self.settings.alpha,
            a,
            b,
        }
    }
}

/// The mixture likelihood ratio `Λ` of the difference of `b` and `a`
/// (infinite when the arms are far apart: see [`log_likelihood_ratio`]).
pub fn likelihood_ratio(a: Proportion, b: Proportion, tau: f64) -> f64 {
    log_likelihood_ratio(a, b, tau).exp()
}

/// `ln Λ = ½ ln(V / (V + τ²)) + τ² Δ² / (2 V (V + τ²))`; 0 (Λ = 1) when an
/// arm has no trials or `τ` is not positive.
pub fn log_likelihood_ratio(a: Proportion, b: Proportion, tau: f64) -> f64 {
    if a.trials == 0 || b.trials == 0 || tau.is_nan() || tau <= 0.0 {
        return 0.0;
    }
    let (pa, pb) = (a.smoothed(), b.smoothed());
    let v = pa * (1.0 - pa) / a.trials as f64 + pb * (1.0 - pb) / b.trials as f64;
    let t2 = tau * tau;
    let d = b.rate() - a.rate();
    0.5 * (v / (v + t2)).ln() + t2 * d * d / (2.0 * v * (v + t2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p_value_starts_at_one_never_rises_and_waits_for_min_samples() {
        let mut t = AlwaysValid::new(Sequential::default());
        let s = t.update(
            Proportion {
                successes: 0,
                trials: 10,
            },
            Proportion {
                successes: 10,
                trials: 10,
            },
        );
        assert_eq!((s.p_value, s.decided), (1.0, false), "too few samples to decide");
        let mut last = 1.0;
        for n in (100..=2000).step_by(100) {
            let s = t.update(
                Proportion {
                    successes: n * 8 / 10,
                    trials: n,
                },
                Proportion {
                    successes: n * 9 / 10,
                    trials: n,
                },
            );
            assert!(s.p_value <= last && s.p_value <= 1.0);
            last = s.p_value;
        }
        assert!(last < 0.01, "a 10-point difference over 2000 outcomes is found: {last}");
    }

    #[test]
    fn arms_far_apart_decide_at_once_instead_of_overflowing() {
        let mut t = AlwaysValid::new(Sequential::default());
        let s = t.update(
            Proportion {
                successes: 0,
                trials: 500,
            },
            Proportion {
                successes: 500,
                trials: 500,
            },
        );
        assert!(likelihood_ratio(s.a, s.b, 0.05).is_infinite());
        assert!(s.log_likelihood_ratio.is_finite());
        assert!(s.decided && s.p_value == 0.0, "{s:?}");
    }

    #[test]
    fn equal_arms_keep_a_likelihood_ratio_near_or_below_one() {
        let a = Proportion {
            successes: 900,
            trials: 1000,
        };
        assert!(likelihood_ratio(a, a, 0.05) < 1.0);
        assert_eq!(likelihood_ratio(Proportion::default(), a, 0.05), 1.0);
    }
}
