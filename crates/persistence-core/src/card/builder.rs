//! Building a card from a model, its training data and what the user adds.

use ndarray::{ArrayView2, Axis};
use semver::Version;
use time::OffsetDateTime;

use super::{hash_records, FeatureStats, ModelCard, Probe, TrainingData, DRIFT_BINS};
use crate::error::{Error, Result};
use crate::model::Model;

/// How many training rows the builder keeps as the probe by default.
pub const DEFAULT_PROBE_ROWS: usize = 5;

/// Builds a [`ModelCard`]; start with [`ModelCard::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct CardBuilder<'m, M> {
    pub(super) model: &'m M,
    pub(super) card: ModelCard,
    pub(super) training: Option<ndarray::Array2<f64>>,
    pub(super) probe_rows: usize,
    pub(super) explicit_probe: Option<ndarray::Array2<f64>>,
}

impl<M: Model> CardBuilder<'_, M> {
    /// The model's version. Default: unset (`0.0.0`); the registry replaces
    /// it with the version it publishes under, and a save to a file refuses
    /// an unset version ([`Error::UnversionedCard`]).
    pub fn version(mut self, version: Version) -> Self {
        self.card.version = version;
        self
    }

    /// The algorithm in words. Default: the model kind.
    pub fn algorithm(mut self, algorithm: impl Into<String>) -> Self {
        self.card.algorithm = algorithm.into();
        self
    }

    /// Records one hyperparameter.
    pub fn hyperparameter(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.card.hyperparameters.insert(name.into(), value.into());
        self
    }

    /// Records one metric.
    pub fn metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.card.metrics.insert(name.into(), value);
        self
    }

    /// Records several metrics.
    pub fn metrics<K: Into<String>>(mut self, metrics: impl IntoIterator<Item = (K, f64)>) -> Self {
        self.card
            .metrics
            .extend(metrics.into_iter().map(|(k, v)| (k.into(), v)));
        self
    }

    /// Feature names in column order. Default: none (columns are unnamed).
    pub fn feature_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.card.features = names.into_iter().map(Into::into).collect();
        self
    }

    /// The feature count, for models that do not record it. Default: the
    /// model's own count, else the training data's column count.
    pub fn n_features(mut self, n: usize) -> Self {
        self.card.n_features = n;
        self
    }

    /// Class names in label order. Default: none.
    pub fn classes<S: Into<String>>(mut self, classes: impl IntoIterator<Item = S>) -> Self {
        self.card.classes = classes.into_iter().map(Into::into).collect();
        self
    }

    /// The training records: fills the sample count, the data's SHA-256 (over
    /// the shape and the values as little-endian `f64`, row by row), the
    /// per-feature statistics and, unless [`probe`](Self::probe) is given,
    /// the probe from the first rows.
    pub fn training_data(mut self, records: ArrayView2<'_, f64>, source: impl Into<String>) -> Self {
        self.card.training_data = Some(TrainingData {
            samples: records.nrows() as u64,
            source: source.into(),
            sha256: hash_records(records),
        });
        self.training = Some(records.to_owned());
        self
    }

    /// Overrides the training data's hash, for example with the SHA-256 of
    /// the CSV file it was read from. Needs [`training_data`](Self::training_data) first.
    pub fn training_data_sha256(mut self, sha256: impl Into<String>) -> Self {
        if let Some(data) = &mut self.card.training_data {
            data.sha256 = sha256.into();
        }
        self
    }

    /// How many leading training rows become the probe. Default: 5.
    pub fn probe_rows(mut self, n: usize) -> Self {
        self.probe_rows = n;
        self
    }

    /// Explicit probe rows; their expected outputs are computed at `build`.
    /// Default: the first rows of the training data.
    pub fn probe(mut self, rows: ArrayView2<'_, f64>) -> Self {
        self.explicit_probe = Some(rows.to_owned());
        self
    }

    /// Records a dependency (crate name and version).
    pub fn dependency(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.card.dependencies.insert(name.into(), version.into());
        self
    }

    /// Free text notes. Default: empty.
    pub fn notes(mut self, notes: impl Into<String>) -> Self {
        self.card.notes = notes.into();
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.card.tags.push(tag.into());
        self
    }

    /// Adds an extension value.
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.card.extensions.insert(name.into(), value.into());
        self
    }

    /// The creation time. Default: now. Fix it for byte-identical rebuilds.
    pub fn created_at(mut self, at: OffsetDateTime) -> Self {
        self.card.created_at = at;
        self
    }

    /// Finishes the card: statistics and probe are computed here.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCard`] when the feature count is unknown, disagrees
    /// with the model or the data, or the model fails its structural check.
    pub fn build(self) -> Result<ModelCard> {
        let CardBuilder {
            model,
            mut card,
            training,
            probe_rows,
            explicit_probe,
        } = self;
        let invalid = |reason: String| Error::InvalidCard { reason };
        if card.n_features == 0 {
            if let Some(t) = &training {
                card.n_features = t.ncols();
            } else if !card.features.is_empty() {
                card.n_features = card.features.len();
            }
        }
        if card.n_features == 0 {
            return Err(invalid(
                "the feature count is unknown: give training data, feature names or n_features".into(),
            ));
        }
        if let Some(n) = model.n_features() {
            if n != card.n_features {
                return Err(invalid(format!(
                    "the model has {n} features, the card says {}",
                    card.n_features
                )));
            }
        }
        model
            .check_structure(card.n_features)
            .map_err(|e| invalid(format!("the model fails its structural check: {e}")))?;
        if let Some(t) = &training {
            if t.ncols() != card.n_features {
                return Err(invalid(format!(
                    "the training data has {} columns, the card says {} features",
                    t.ncols(),
                    card.n_features
                )));
            }
            card.feature_stats = t
                .axis_iter(Axis(1))
                .enumerate()
                .map(|(i, column)| {
                    let name = card.features.get(i).cloned().unwrap_or_else(|| format!("feature_{i}"));
                    FeatureStats::from_values(name.clone(), column.iter().copied()).unwrap_or(FeatureStats {
                        name,
                        mean: f64::NAN,
                        std: f64::NAN,
                        min: f64::NAN,
                        max: f64::NAN,
                        bin_edges: vec![f64::NAN; DRIFT_BINS - 1],
                        bin_fractions: vec![0.0; DRIFT_BINS],
                    })
                })
                .collect();
        }
        let probe_input = match (explicit_probe, &training) {
            (Some(rows), _) => Some(rows),
            (None, Some(t)) if probe_rows > 0 => Some(t.slice(ndarray::s![..probe_rows.min(t.nrows()), ..]).to_owned()),
            _ => None,
        };
        if let Some(rows) = probe_input {
            if rows.ncols() != card.n_features {
                return Err(invalid(format!(
                    "probe rows have {} columns, the card says {} features",
                    rows.ncols(),
                    card.n_features
                )));
            }
            let expected = model.predict(rows.view()).into_iter().map(Into::into).collect();
            card.probe = Some(Probe {
                rows: rows.outer_iter().map(|r| r.to_vec()).collect(),
                expected,
            });
        }
        card.check().map_err(|e| invalid(e.to_string()))?;
        Ok(card)
    }
}
