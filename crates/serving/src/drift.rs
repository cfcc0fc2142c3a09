//! Drift: live inputs against the card's training statistics.
//!
//! For each feature the population stability index compares the share of
//! live values in each training-decile bin (`a_i`) with the training share
//! (`e_i`): `PSI = Σ (a_i − e_i) · ln(a_i / e_i)`, both shares floored at
//! 1e-4 so an empty bin counts as rare, not impossible. A common reading:
//! below 0.1 stable, 0.1–0.2 moderate shift, above 0.2 significant shift.

use std::collections::VecDeque;

use model_persistence_core::{FeatureStats, DRIFT_BINS};
use serde::{Deserialize, Serialize};

/// Floor of bin shares in the PSI.
const PSI_FLOOR: f64 = 1e-4;

/// Drift detection settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftConfig {
    /// Rows in the sliding window. Default: 1,000.
    pub window: usize,
    /// PSI above which a feature is drifting. Default: 0.2.
    pub threshold: f64,
    /// Share of requests whose rows are observed. Default: 1.0.
    pub sample_share: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            window: 1_000,
            threshold: 0.2,
            sample_share: 1.0,
        }
    }
}

/// The PSI of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// The feature's name.
    pub name: String,
    /// Its population stability index over the window.
    pub psi: f64,
    /// Whether it is above the threshold.
    pub drifting: bool,
    /// Share of the window's values in each training-decile bin (the
    /// training shares are the card's `bin_fractions`).
    #[serde(default)]
    pub live_fractions: Vec<f64>,
}

/// The drift of every feature, once the window is full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Rows in the window.
    pub window: usize,
    /// Per feature, in column order.
    pub features: Vec<FeatureDrift>,
}

impl DriftReport {
    /// The names of the drifting features.
    pub fn drifting(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter(|f| f.drifting)
            .map(|f| f.name.as_str())
            .collect()
    }
}

/// The population stability index of observed bin counts against expected shares.
pub fn psi(observed: &[u64], expected: &[f64]) -> f64 {
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return 0.0;
    }
    observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| {
            let a = (o as f64 / total as f64).max(PSI_FLOOR);
            let e = e.max(PSI_FLOOR);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// A sliding window of live rows, binned by the training deciles.
#[derive(Debug)]
pub(crate) struct DriftWindow {
    stats: Vec<FeatureStats>,
    config: DriftConfig,
    bins: VecDeque<Vec<u8>>,
    counts: Vec<[u64; DRIFT_BINS]>,
}

impl DriftWindow {
    pub(crate) fn new(stats: Vec<FeatureStats>, config: DriftConfig) -> Self {
        let counts = vec![[0; DRIFT_BINS]; stats.len()];
        DriftWindow {
            stats,
            config,
            bins: VecDeque::with_capacity(config.window),
            counts,
        }
    }

    pub(crate) fn push(&mut self, row: &[f64]) {
        if row.len() != self.stats.len() || self.config.window == 0 {
            return;
        }
        let binned: Vec<u8> = self
            .stats
            .iter()
            .zip(row)
            .map(|(s, &v)| s.bin_of(v).min(DRIFT_BINS - 1) as u8)
            .collect();
        for (c, &b) in self.counts.iter_mut().zip(&binned) {
            c[usize::from(b)] += 1;
        }
        self.bins.push_back(binned);
        if self.bins.len() > self.config.window {
            if let Some(old) = self.bins.pop_front() {
                for (c, b) in self.counts.iter_mut().zip(old) {
                    c[usize::from(b)] -= 1;
                }
            }
        }
    }

    /// The report, once the window is full.
    pub(crate) fn report(&self) -> Option<DriftReport> {
        if self.bins.len() < self.config.window || self.stats.is_empty() {
            return None;
        }
        let features = self
            .stats
            .iter()
            .zip(&self.counts)
            .map(|(s, c)| {
                let psi = psi(c, &s.bin_fractions);
                let total = c.iter().sum::<u64>().max(1) as f64;
                FeatureDrift {
                    name: s.name.clone(),
                    psi,
                    drifting: psi > self.config.threshold,
                    live_fractions: c.iter().map(|&n| n as f64 / total).collect(),
                }
            })
            .collect();
        Some(DriftReport {
            window: self.bins.len(),
            features,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_of_identical_shares_is_zero_and_grows_with_shift() {
        let expected = [0.1; 10];
        assert!(psi(&[10; 10], &expected).abs() < 1e-12);
        let shifted = psi(&[0, 0, 0, 0, 0, 20, 20, 20, 20, 20], &expected);
        assert!(shifted > 1.0, "{shifted}");
        assert_eq!(psi(&[0; 10], &expected), 0.0);
    }
}
