//! The model card: what makes a bundle self-describing.

use std::collections::BTreeMap;

use ndarray::{ArrayView2, Axis};
use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::format::{FORMAT_MAJOR, FORMAT_MINOR};
use crate::model::{Model, ProbeValue};

/// The dependency name under which a card records the bundle format
/// (`major.minor`) it was built for.
pub const FORMAT_DEPENDENCY: &str = "model-persistence-format";

/// The dependency name under which a card records this crate's version.
pub const CORE_DEPENDENCY: &str = "model-persistence-core";

/// Number of bins of the per-feature histograms kept for drift detection.
pub const DRIFT_BINS: usize = 10;

/// The model's passport: where it came from, how well it did, what it needs.
///
/// A card travels inside the bundle header (so [`read_card`](crate::read_card)
/// never touches the model) and beside it as `<bundle>.card.json`.
/// Build one with [`ModelCard::builder`], which fills what it can by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelCard {
    /// The model's name, such as `fraud_detector`.
    pub name: String,
    /// The model's semantic version.
    pub version: Version,
    /// The stable kind tag of the model type ([`Model::KIND`]).
    pub kind: String,
    /// When the card was built, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The learning algorithm, in words.
    pub algorithm: String,
    /// Hyperparameters, by name.
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    /// Evaluation metrics, by name (`accuracy`, `f1`…).
    #[serde(default, with = "crate::float::map")]
    pub metrics: BTreeMap<String, f64>,
    /// Feature names, in column order (empty if unnamed).
    #[serde(default)]
    pub features: Vec<String>,
    /// Number of input features.
    pub n_features: usize,
    /// Class names, in label order (empty for regressors).
    #[serde(default)]
    pub classes: Vec<String>,
    /// What the model was trained on.
    #[serde(default)]
    pub training_data: Option<TrainingData>,
    /// Crates and versions the bundle depends on, including the format.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Per-feature statistics of the training data, for drift detection.
    #[serde(default)]
    pub feature_stats: Vec<FeatureStats>,
    /// Input rows with the outputs the model gave when saved.
    #[serde(default)]
    pub probe: Option<Probe>,
    /// Free text.
    #[serde(default)]
    pub notes: String,
    /// Labels such as `baseline` or `candidate`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Anything else, by name.
    #[serde(default)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

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

/// Golden rows and the outputs the model gave for them when it was saved.
///
/// Loading replays them: a model that deserialises but predicts differently
/// (a damaged float, a changed algorithm) is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Probe {
    /// Input rows, each of `n_features` values.
    #[serde(with = "crate::float::rows")]
    pub rows: Vec<Vec<f64>>,
    /// The expected output of each row.
    pub expected: Vec<ProbeValue>,
}

impl ModelCard {
    /// Starts a card for `model`, filling the kind, the feature count (when
    /// the model knows it), `created_at` (now) and the dependencies.
    ///
    /// The version is left unset (`0.0.0`) unless [`CardBuilder::version`]
    /// gives one: a card built for publishing needs none, since the registry
    /// assigns the version it publishes under.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ndarray::{array, Array1, ArrayView2};
    /// # use model_persistence_core::{Model, StructureError};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Mean;
    /// # impl Model for Mean {
    /// #     const KIND: &'static str = "example.mean.v1";
    /// #     type Output = f64;
    /// #     fn n_features(&self) -> Option<usize> { Some(2) }
    /// #     fn check_structure(&self, _: usize) -> Result<(), StructureError> { Ok(()) }
    /// #     fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> { rows.rows().into_iter().map(|r| r.sum() / 2.0).collect() }
    /// # }
    /// use model_persistence_core::ModelCard;
    ///
    /// let train = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
    /// let card = ModelCard::builder("mean", &Mean).version(semver::Version::new(1, 0, 0))
    ///     .feature_names(["a", "b"])
    ///     .metric("mae", 0.5)
    ///     .training_data(train.view(), "inline example")
    ///     .build()?;
    /// assert_eq!(card.n_features, 2);
    /// assert_eq!(card.feature_stats.len(), 2);
    /// assert_eq!(card.probe.as_ref().map(|p| p.rows.len()), Some(3));
    /// # Ok::<(), model_persistence_core::Error>(())
    /// ```
    pub fn builder<'m, M: Model>(name: impl Into<String>, model: &'m M) -> CardBuilder<'m, M> {
        let mut dependencies = BTreeMap::new();
        dependencies.insert(FORMAT_DEPENDENCY.to_owned(), format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"));
        dependencies.insert(CORE_DEPENDENCY.to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        for (name, version) in M::dependencies() {
            dependencies.insert(name.to_owned(), version.to_owned());
        }
        CardBuilder {
            model,
            card: ModelCard {
                name: name.into(),
                version: Version::new(0, 0, 0),
                kind: M::KIND.to_owned(),
                created_at: OffsetDateTime::now_utc(),
                algorithm: M::KIND.to_owned(),
                hyperparameters: BTreeMap::new(),
                metrics: BTreeMap::new(),
                features: Vec::new(),
                n_features: model.n_features().unwrap_or(0),
                classes: Vec::new(),
                training_data: None,
                dependencies,
                feature_stats: Vec::new(),
                probe: None,
                notes: String::new(),
                tags: Vec::new(),
                extensions: BTreeMap::new(),
            },
            training: None,
            probe_rows: DEFAULT_PROBE_ROWS,
            explicit_probe: None,
        }
    }

    /// The card as pretty JSON, as written to `<bundle>.card.json`.
    ///
    /// # Errors
    ///
    /// [`Error::CardJson`] if a value cannot be written as JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|source| Error::CardJson { source })
    }

    /// Parses a card from JSON and checks it.
    ///
    /// # Errors
    ///
    /// [`Error::CardJson`] for malformed JSON, [`Error::Invalid`] for an
    /// inconsistent card.
    pub fn from_json(json: &str) -> Result<Self> {
        let card: ModelCard = serde_json::from_str(json).map_err(|source| Error::CardJson { source })?;
        card.check()?;
        Ok(card)
    }

    /// Checks the card's internal consistency.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the first inconsistency.
    pub fn check(&self) -> Result<()> {
        let invalid = |reason: String| Error::Invalid {
            section: "card",
            reason,
        };
        if self.name.is_empty() {
            return Err(invalid("the name is empty".into()));
        }
        if self.kind.is_empty() {
            return Err(invalid("the kind is empty".into()));
        }
        if !self.features.is_empty() && self.features.len() != self.n_features {
            return Err(invalid(format!(
                "{} feature names for {} features",
                self.features.len(),
                self.n_features
            )));
        }
        if !self.feature_stats.is_empty() && self.feature_stats.len() != self.n_features {
            return Err(invalid(format!(
                "{} feature statistics for {} features",
                self.feature_stats.len(),
                self.n_features
            )));
        }
        for (i, stats) in self.feature_stats.iter().enumerate() {
            if stats.bin_edges.len() + 1 != stats.bin_fractions.len() {
                return Err(invalid(format!(
                    "feature statistics {i}: {} bin edges for {} bins",
                    stats.bin_edges.len(),
                    stats.bin_fractions.len()
                )));
            }
        }
        if let Some(probe) = &self.probe {
            if probe.rows.len() != probe.expected.len() {
                return Err(invalid(format!(
                    "the probe has {} rows and {} expected outputs",
                    probe.rows.len(),
                    probe.expected.len()
                )));
            }
            if let Some((i, row)) = probe.rows.iter().enumerate().find(|(_, r)| r.len() != self.n_features) {
                return Err(invalid(format!(
                    "probe row {i} has {} values for {} features",
                    row.len(),
                    self.n_features
                )));
            }
        }
        Ok(())
    }
}

/// How many training rows the builder keeps as the probe by default.
pub const DEFAULT_PROBE_ROWS: usize = 5;

/// Builds a [`ModelCard`]; start with [`ModelCard::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct CardBuilder<'m, M> {
    model: &'m M,
    card: ModelCard,
    training: Option<ndarray::Array2<f64>>,
    probe_rows: usize,
    explicit_probe: Option<ndarray::Array2<f64>>,
}

impl<M: Model> CardBuilder<'_, M> {
    /// The model's version. Default: unset (`0.0.0`); the registry replaces
    /// it with the version it publishes under, so only bundles saved outside
    /// a registry need one.
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
