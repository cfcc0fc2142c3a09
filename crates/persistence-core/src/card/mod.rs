//! The model card: what makes a bundle self-describing.
//!
//! [`ModelCard`] and its checks here; the builder that fills it from a model
//! and its training data in `builder`; what it records about the training
//! data (statistics for drift, the data's hash) in `training`.

use std::collections::BTreeMap;

use semver::Version;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::format::{FORMAT_MAJOR, FORMAT_MINOR};
use crate::model::{Model, ProbeValue};

mod builder;
mod training;

pub use builder::{CardBuilder, DEFAULT_PROBE_ROWS};
pub use training::{hash_records, FeatureStats, TrainingData, DRIFT_BINS};

/// The dependency name under which a card records the bundle format
/// (`major.minor`) it was built for.
pub const FORMAT_DEPENDENCY: &str = "model-persistence-format";

/// The dependency name under which a card records this crate's version.
pub const CORE_DEPENDENCY: &str = "model-persistence-core";

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
    /// # use model_persistence_core::{Model, Predictor, StructureError};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Mean;
    /// # impl Predictor for Mean {
    /// #     type Output = f64;
    /// #     fn n_features(&self) -> Option<usize> { Some(2) }
    /// #     fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> { rows.rows().into_iter().map(|r| r.sum() / 2.0).collect() }
    /// # }
    ///
    /// # impl Model for Mean {
    /// #     const KIND: &'static str = "example.mean.v1";
    /// #     fn check_structure(&self, _: usize) -> Result<(), StructureError> { Ok(()) }
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
                classes: model.class_names().map(<[String]>::to_vec).unwrap_or_default(),
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
