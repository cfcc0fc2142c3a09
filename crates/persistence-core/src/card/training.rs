//! What a card records about the training data: its size, source and
//! hash, and per-feature statistics that drift detection compares live
//! inputs against.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Number of bins of the per-feature histograms kept for drift detection.
pub const DRIFT_BINS: usize = 10;

/// What a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrainingData {
    /// Number of training rows.
    pub samples: u64,
    /// Where the data came from (a file name, a query, a generator and seed).
    pub source: String,
    /// SHA-256 of the data, hex.
    pub sha256: String,
}

/// Statistics of one feature over the training data.
///
/// The bin edges are the training deciles; `bin_fractions` is the share of
/// training rows in each bin, which is what the population stability index
/// compares live inputs against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FeatureStats {
    /// The feature's name.
    pub name: String,
    /// Mean.
    #[serde(with = "crate::float")]
    pub mean: f64,
    /// Population standard deviation.
    #[serde(with = "crate::float")]
    pub std: f64,
    /// Smallest value.
    #[serde(with = "crate::float")]
    pub min: f64,
    /// Largest value.
    #[serde(with = "crate::float")]
    pub max: f64,
    /// Interior bin edges, ascending (`DRIFT_BINS - 1` of them): bin `i` holds
    /// values `v` with `edges[i-1] <= v < edges[i]`.
    #[serde(with = "crate::float::vec")]
    pub bin_edges: Vec<f64>,
    /// Share of training rows in each bin (`DRIFT_BINS` of them, summing to 1).
    #[serde(with = "crate::float::vec")]
    pub bin_fractions: Vec<f64>,
}

impl FeatureStats {
    /// Computes the statistics of one column of training values.
    ///
    /// Non-finite values are ignored. Returns `None` if no value is finite.
    pub fn from_values(name: impl Into<String>, values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut sorted: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let var = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let bin_edges: Vec<f64> = (1..DRIFT_BINS)
            .map(|i| {
                let idx = (i * sorted.len()) / DRIFT_BINS;
                sorted.get(idx).copied().unwrap_or(mean)
            })
            .collect();
        let mut counts = [0_u64; DRIFT_BINS];
        for v in &sorted {
            counts[bin_index(&bin_edges, *v)] += 1;
        }
        Some(FeatureStats {
            name: name.into(),
            mean,
            std: var.sqrt(),
            min: sorted.first().copied().unwrap_or(mean),
            max: sorted.last().copied().unwrap_or(mean),
            bin_fractions: counts.iter().map(|&c| c as f64 / n).collect(),
            bin_edges,
        })
    }

    /// The bin a value falls into, by the interior edges.
    pub fn bin_of(&self, value: f64) -> usize {
        bin_index(&self.bin_edges, value)
    }
}

fn bin_index(edges: &[f64], value: f64) -> usize {
    edges.partition_point(|edge| *edge <= value)
}

/// SHA-256 of a matrix: its shape as two little-endian `u64`, then every
/// value as a little-endian `f64`, row by row. Hex.
pub fn hash_records(records: ArrayView2<'_, f64>) -> String {
    let mut hasher = Sha256::new();
    hasher.update((records.nrows() as u64).to_le_bytes());
    hasher.update((records.ncols() as u64).to_le_bytes());
    for v in records.iter() {
        hasher.update(v.to_le_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_split_uniform_values_evenly() {
        let stats = FeatureStats::from_values("x", (0..1000).map(f64::from)).expect("finite values");
        assert_eq!(stats.bin_edges.len(), DRIFT_BINS - 1);
        for f in &stats.bin_fractions {
            assert!((f - 0.1).abs() < 1e-9, "{f}");
        }
        assert_eq!(stats.min, 0.0);
        assert_eq!(stats.max, 999.0);
        assert_eq!(stats.bin_of(-5.0), 0);
        assert_eq!(stats.bin_of(5000.0), DRIFT_BINS - 1);
    }

    #[test]
    fn stats_of_no_finite_value_is_none() {
        assert!(FeatureStats::from_values("x", [f64::NAN, f64::INFINITY]).is_none());
    }

    #[test]
    fn records_hash_depends_on_shape_and_values() {
        let a = ndarray::array![[1.0, 2.0], [3.0, 4.0]];
        let b = ndarray::array![[1.0, 2.0, 3.0, 4.0]];
        let c = ndarray::array![[1.0, 2.0], [3.0, 4.5]];
        assert_ne!(hash_records(a.view()), hash_records(b.view()));
        assert_ne!(hash_records(a.view()), hash_records(c.view()));
        assert_eq!(hash_records(a.view()), hash_records(a.clone().view()));
    }
}
