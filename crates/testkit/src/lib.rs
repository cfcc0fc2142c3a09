//! Deterministic data and small models for tests, examples and benches:
//! the test kit of model-persistence, for dev-dependencies only.
//!
//! No data is downloaded: the fraud-like set is generated from a seed, so a
//! test or an example gives the same numbers on every machine.
//!
//! - the data: [`fraud_like`], [`shift_feature`], [`SplitMix64`];
//! - small models: [`LinearClassifier`], [`DenseVector`], and the table that
//!   loads them beside every built-in kind ([`kinds`]);
//! - [`golden`]: the models and card the golden fixtures were written with;
//! - [`craft`]: a bundle assembler written from `docs/format.md`,
//!   independent of the crate's own writer, for hostile and crafted files.
//!
//! Until 0.2 this was `model_persistence_testkit` (feature
//! `testing`); the facade keeps `model_persistence_testkit`
//! as a deprecated re-export for one release.
#![forbid(unsafe_code)]

pub mod craft;
pub mod golden;

use ndarray::{Array1, Array2};

/// The names of the 20 columns of [`fraud_like`].
pub const FRAUD_FEATURES: [&str; 20] = [
    "amount",
    "hour_of_day",
    "merchant_risk",
    "distance_from_home",
    "card_age_days",
    "tx_last_hour",
    "tx_last_day",
    "avg_amount_30d",
    "amount_over_avg",
    "foreign",
    "online",
    "new_device",
    "failed_pins",
    "account_age",
    "chargebacks",
    "velocity_score",
    "ip_risk",
    "email_age",
    "shipping_mismatch",
    "weekend",
];

/// A small deterministic generator (SplitMix64), so that data sets do not
/// depend on a random-number crate's version.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn next_below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
}

/// A fraud-like classification set: `samples` rows of 20 features, of which
/// `fraud_share` (rounded) are fraud (label 1), the rest legitimate (label 0),
/// shuffled. Fraud shifts seven of the features, with overlap, so a good model
/// reaches about 95% accuracy, not 100%.
pub fn fraud_like(samples: usize, fraud_share: f64, seed: u64) -> (Array2<f64>, Array1<usize>) {
    let mut rng = SplitMix64::new(seed);
    let n_fraud = ((samples as f64) * fraud_share.clamp(0.0, 1.0)).round() as usize;
    let mut labels: Vec<usize> = (0..samples).map(|i| usize::from(i < n_fraud)).collect();
    for i in (1..labels.len()).rev() {
        let j = rng.next_below(i + 1);
        labels.swap(i, j);
    }
    // Shift of each informative feature for fraud, in standard deviations.
    const SHIFTS: [(usize, f64); 7] = [(0, 1.4), (2, 1.1), (3, 0.9), (5, 1.2), (11, 0.8), (15, 1.0), (16, 0.7)];
    let mut records = Array2::zeros((samples, FRAUD_FEATURES.len()));
    for (mut row, &label) in records.rows_mut().into_iter().zip(&labels) {
        for v in row.iter_mut() {
            *v = rng.next_normal();
        }
        if label == 1 {
            for (feature, shift) in SHIFTS {
                row[feature] += shift;
            }
        }
    }
    (records, Array1::from(labels))
}

/// Shifts column `feature` of `records` by `by`, to simulate drift.
pub fn shift_feature(records: &mut Array2<f64>, feature: usize, by: f64) {
    if let Some(mut column) = (feature < records.ncols()).then(|| records.column_mut(feature)) {
        column += by;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraud_like_has_the_requested_shape_and_share() {
        let (x, y) = fraud_like(1000, 0.1, 7);
        assert_eq!(x.dim(), (1000, 20));
        assert_eq!(y.iter().filter(|&&l| l == 1).count(), 100);
        let (x2, y2) = fraud_like(1000, 0.1, 7);
        assert_eq!(x, x2);
        assert_eq!(y, y2);
        assert_ne!(fraud_like(1000, 0.1, 8).0, x);
    }
}

/// Every built-in kind ([`model_persistence_models::kinds`]) and the test
/// models: the table for tests, examples and benches that load test models
/// dynamically (a registry's `load_any`, a `ModelServer<AnyModel>`). The
/// built-in table is the same in every build; tests add what they need.
pub fn kinds() -> model_persistence_core::Kinds {
    let mut kinds = model_persistence_models::kinds();
    kinds.register::<LinearClassifier>().register::<DenseVector>();
    kinds
}

/// A minimal linear classifier (label 1 when `w·x + b ≥ 0`), for examples,
/// tests and benchmarks that need a model but not a trained one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearClassifier {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

impl model_persistence_core::Predictor for LinearClassifier {
    type Output = usize;

    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }

    fn predict(&self, rows: ndarray::ArrayView2<'_, f64>) -> Array1<usize> {
        rows.rows()
            .into_iter()
            .map(|r| usize::from(self.margin(r) >= 0.0))
            .collect()
    }

    /// The probabilities of classes 0 and 1: the logistic of the margin.
    fn scores(&self, rows: ndarray::ArrayView2<'_, f64>) -> Option<ndarray::Array2<f64>> {
        let mut out = ndarray::Array2::zeros((rows.nrows(), 2));
        for (i, r) in rows.rows().into_iter().enumerate() {
            let p = 1.0 / (1.0 + (-self.margin(r)).exp());
            out[[i, 0]] = 1.0 - p;
            out[[i, 1]] = p;
        }
        Some(out)
    }
}

impl model_persistence_core::Model for LinearClassifier {
    const KIND: &'static str = "synthetic.linear_classifier.v1";

    fn check_structure(&self, n_features: usize) -> Result<(), model_persistence_core::StructureError> {
        if self.weights.len() != n_features {
            return Err(model_persistence_core::StructureError::new(format!(
                "{} weights for {n_features} features",
                self.weights.len()
            )));
        }
        if !self.bias.is_finite() || self.weights.iter().any(|w| !w.is_finite()) {
            return Err(model_persistence_core::StructureError::new("a weight is not finite"));
        }
        Ok(())
    }
}

impl LinearClassifier {
    fn margin(&self, row: ndarray::ArrayView1<'_, f64>) -> f64 {
        row.iter().zip(&self.weights).map(|(x, w)| x * w).sum::<f64>() + self.bias
    }
}

/// One large vector of weights stored as a blob: the shape of a dense
/// model's payload, for benchmarks of large bundles. Predicts each row's
/// first column times the first weight.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DenseVector {
    /// The weights.
    #[serde(with = "model_persistence_core::blob")]
    pub weights: Vec<f64>,
}

impl model_persistence_core::Predictor for DenseVector {
    type Output = f64;

    fn n_features(&self) -> Option<usize> {
        Some(1)
    }

    fn predict(&self, rows: ndarray::ArrayView2<'_, f64>) -> Array1<f64> {
        rows.column(0)
            .mapv(|x| x * self.weights.first().copied().unwrap_or(0.0))
    }
}

impl model_persistence_core::Model for DenseVector {
    const KIND: &'static str = "synthetic.dense_vector.v1";

    fn check_structure(&self, _: usize) -> Result<(), model_persistence_core::StructureError> {
        Ok(())
    }
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
