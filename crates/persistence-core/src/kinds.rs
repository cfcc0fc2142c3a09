//! Models of any kind behind one type: a table of known kinds turns any
//! bundle into a dynamic model by its card's kind.
//!
//! A typed load (`load::<RandomForest>`) fixes the model type at compile
//! time. In production the algorithm behind a name changes: a logistic
//! regression is replaced by a forest, an A/B test compares the two. A
//! [`Kinds`] table knows which Rust type reads which kind; loading through it
//! gives a [`Loaded<AnyModel>`] after exactly the checks of a typed load
//! (kind, feature count, structure, probe).
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use model_persistence_core::synthetic::LinearClassifier;
//! use model_persistence_core::{to_bytes, Error, Kinds, ModelCard};
//!
//! let model = LinearClassifier { weights: vec![1.0, -1.0], bias: 0.0 };
//! let card = ModelCard::builder("doc", &model).n_features(2).build()?;
//! let bytes = to_bytes(&model, &card)?;
//!
//! let mut kinds = Kinds::empty();
//! assert!(matches!(kinds.load_bytes(&bytes), Err(Error::UnknownKind { .. })));
//! kinds.register::<LinearClassifier>();
//! let loaded = kinds.load_bytes(&bytes)?;
//! assert_eq!(loaded.model().kind(), "synthetic.linear_classifier.v1");
//! let p = loaded.predict(ndarray::array![[2.0, 1.0]].view())?;
//! assert_eq!(p.labels, vec![model_persistence_core::ProbeValue::Label(1)]);
//! assert!(p.scores.is_some_and(|s| s[[0, 1]] > 0.5));
//! # }
//! # Ok::<(), model_persistence_core::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::bundle::{BundleReader, Loaded, Opened};
use crate::error::{Error, Result};
use crate::model::{Model, ProbeValue};

/// A model whose type is known only at run time.
pub trait DynModel: Send + Sync + std::fmt::Debug {
    /// The kind tag of the model's type.
    fn kind(&self) -> &'static str;

    /// One output per row (a label, or a value for regressors).
    fn predict_values(&self, rows: ArrayView2<'_, f64>) -> Vec<ProbeValue>;

    /// The scores, where the model has them (see [`Model::scores`]).
    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>>;

    /// Outputs and scores in one pass (see [`Model::predict_scored`]).
    fn predict_scored_values(&self, rows: ArrayView2<'_, f64>) -> (Vec<ProbeValue>, Option<Array2<f64>>);

    /// [`Model::accepts_non_finite`] of the model.
    fn accepts_non_finite(&self) -> bool;

    /// [`Model::class_names`] of the model.
    fn class_names(&self) -> Option<&[String]>;
}

impl<M: Model + Send + Sync + std::fmt::Debug + 'static> DynModel for M {
    fn kind(&self) -> &'static str {
        M::KIND
    }

    fn predict_values(&self, rows: ArrayView2<'_, f64>) -> Vec<ProbeValue> {
        Model::predict(self, rows).into_iter().map(Into::into).collect()
    }

    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
        Model::scores(self, rows)
    }

    fn predict_scored_values(&self, rows: ArrayView2<'_, f64>) -> (Vec<ProbeValue>, Option<Array2<f64>>) {
        let (outputs, scores) = Model::predict_scored(self, rows);
        (outputs.into_iter().map(Into::into).collect(), scores)
    }

    fn accepts_non_finite(&self) -> bool {
        Model::accepts_non_finite(self)
    }

    fn class_names(&self) -> Option<&[String]> {
        Model::class_names(self)
    }
}

/// A model of any known kind.
pub type AnyModel = Box<dyn DynModel>;

/// What a dynamic model answers for some rows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Predictions {
    /// One output per row.
    pub labels: Vec<ProbeValue>,
    /// One row of scores per input row, where the model has them.
    pub scores: Option<Array2<f64>>,
}

type Loader = fn(&BundleReader, Opened<'_>) -> Result<Loaded<AnyModel>>;

fn load_as<M: Model + Send + Sync + std::fmt::Debug + 'static>(
    reader: &BundleReader,
    opened: Opened<'_>,
) -> Result<Loaded<AnyModel>> {
    let loaded = reader.load_opened::<M>(opened)?;
    let content_id = loaded.content_id();
    let (model, card) = loaded.into_parts();
    Ok(Loaded::from_parts(Box::new(model) as AnyModel, card, content_id))
}

/// The table of known kinds: which Rust type reads which kind tag.
#[derive(Clone)]
pub struct Kinds {
    table: BTreeMap<&'static str, Loader>,
    reader: BundleReader,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kinds").field("known", &self.known()).finish()
    }
}

impl Default for Kinds {
    /// The built-in kinds: linfa's logistic regression, decision tree and
    /// random forest with the `linfa` feature, ONNX graphs and tree
    /// ensembles with `onnx`. The same table in tests as in users' builds:
    /// the test models are added by
    /// `synthetic::kinds()` (feature `testing`).
    #[allow(unused_mut)] // Without features there is nothing to register.
    fn default() -> Self {
        let mut kinds = Kinds::empty();
        #[cfg(feature = "linfa")]
        {
            kinds.register::<linfa_logistic::FittedLogisticRegression<f64, usize>>();
            kinds.register::<linfa_trees::DecisionTree<f64, usize>>();
            kinds.register::<crate::linfa::RandomForest>();
        }
        #[cfg(feature = "onnx")]
        {
            kinds.register::<crate::onnx::OnnxModel>();
            kinds.register::<crate::onnx::TreeEnsemble>();
        }
        kinds
    }
}

impl Kinds {
    /// A table with no kind at all.
    pub fn empty() -> Self {
        Kinds {
            table: BTreeMap::new(),
            reader: BundleReader::default(),
        }
    }

    /// Registers a model type of your own under its [`Model::KIND`] and
    /// its [`Model::EARLIER_KINDS`].
    pub fn register<M: Model + Send + Sync + std::fmt::Debug + 'static>(&mut self) -> &mut Self {
        self.table.insert(M::KIND, load_as::<M>);
        for kind in M::EARLIER_KINDS {
            self.table.insert(kind, load_as::<M>);
        }
        self
    }

    /// The reader (and its limits) loads go through. Default: the default limits.
    pub fn reader(mut self, reader: BundleReader) -> Self {
        self.reader = reader;
        self
    }

    /// Whether a kind is known.
    pub fn knows(&self, kind: &str) -> bool {
        self.table.contains_key(kind)
    }

    /// The known kinds, sorted.
    pub fn known(&self) -> Vec<&'static str> {
        self.table.keys().copied().collect()
    }

    /// Loads bundle bytes as whatever kind their card names, with every
    /// check of a typed load.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKind`] naming the kind and the known ones, or the
    /// typed load's error.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<Loaded<AnyModel>> {
        self.load_opened(&self.reader, self.reader.open_bytes(bytes)?)
    }

    /// [`load_bytes`](Self::load_bytes) from a file, on the road of a typed
    /// load: one open, one parse of the header, the payload read once and
    /// hashed as it is read.
    ///
    /// # Errors
    ///
    /// Those of [`BundleReader::load`] and [`Error::UnknownKind`].
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Loaded<AnyModel>> {
        self.load_opened(&self.reader, self.reader.open_file(path.as_ref())?)
    }

    /// Loads an opened bundle with `reader` as its card's kind.
    fn load_opened(&self, reader: &BundleReader, opened: Opened<'_>) -> Result<Loaded<AnyModel>> {
        let Some(loader) = self.table.get(opened.card().kind.as_str()) else {
            return Err(Error::UnknownKind {
                kind: opened.card().kind.clone(),
                known: self.known().into_iter().map(str::to_owned).collect(),
            });
        };
        loader(reader, opened)
    }
}

/// What a server or a registry can load and serve: any [`Model`] type
/// (typed, known at compile time), or [`AnyModel`] (any kind in a
/// [`Kinds`] table, known at run time).
pub trait Loadable: Sized + Send + Sync + 'static {
    /// What one row gives.
    type Output: Clone + PartialEq + std::fmt::Debug + Into<ProbeValue> + Send + Sync + 'static;

    /// Loads bundle bytes, with every check of a typed load.
    ///
    /// # Errors
    ///
    /// The first failed check; [`Error::UnknownKind`] for a dynamic load of
    /// a kind `kinds` does not know.
    fn load_bytes(reader: &BundleReader, kinds: &Kinds, bytes: &[u8]) -> Result<Loaded<Self>>;

    /// Loads a bundle file, with every check of a typed load.
    ///
    /// # Errors
    ///
    /// As [`load_bytes`](Self::load_bytes), and I/O errors with the path.
    fn load_file(reader: &BundleReader, kinds: &Kinds, path: &Path) -> Result<Loaded<Self>>;

    /// One output per row.
    fn outputs(&self, rows: ArrayView2<'_, f64>) -> ndarray::Array1<Self::Output>;

    /// The scores, where the model has them (see [`Model::scores`]).
    fn output_scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>>;

    /// Outputs and scores in one pass (see [`Model::predict_scored`]).
    fn outputs_scored(&self, rows: ArrayView2<'_, f64>) -> (ndarray::Array1<Self::Output>, Option<Array2<f64>>);

    /// Whether the model takes NaN and infinite inputs
    /// ([`Model::accepts_non_finite`]).
    fn takes_non_finite(&self) -> bool;

    /// The names its labels index ([`Model::class_names`]).
    fn label_names(&self) -> Option<&[String]>;
}

impl<M: Model + Send + Sync + 'static> Loadable for M {
    type Output = M::Output;

    fn load_bytes(reader: &BundleReader, _: &Kinds, bytes: &[u8]) -> Result<Loaded<Self>> {
        reader.load_bytes(bytes)
    }

    fn load_file(reader: &BundleReader, _: &Kinds, path: &Path) -> Result<Loaded<Self>> {
        reader.load(path)
    }

    fn outputs(&self, rows: ArrayView2<'_, f64>) -> ndarray::Array1<Self::Output> {
        Model::predict(self, rows)
    }

    fn output_scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
        Model::scores(self, rows)
    }

    fn outputs_scored(&self, rows: ArrayView2<'_, f64>) -> (ndarray::Array1<Self::Output>, Option<Array2<f64>>) {
        Model::predict_scored(self, rows)
    }

    fn takes_non_finite(&self) -> bool {
        Model::accepts_non_finite(self)
    }

    fn label_names(&self) -> Option<&[String]> {
        Model::class_names(self)
    }
}

impl Loadable for AnyModel {
    type Output = ProbeValue;

    fn load_bytes(reader: &BundleReader, kinds: &Kinds, bytes: &[u8]) -> Result<Loaded<Self>> {
        kinds.load_opened(reader, reader.open_bytes(bytes)?)
    }

    fn load_file(reader: &BundleReader, kinds: &Kinds, path: &Path) -> Result<Loaded<Self>> {
        kinds.load_opened(reader, reader.open_file(path)?)
    }

    fn outputs(&self, rows: ArrayView2<'_, f64>) -> ndarray::Array1<ProbeValue> {
        self.predict_values(rows).into()
    }

    fn output_scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
        self.scores(rows)
    }

    fn outputs_scored(&self, rows: ArrayView2<'_, f64>) -> (ndarray::Array1<ProbeValue>, Option<Array2<f64>>) {
        let (outputs, scores) = self.predict_scored_values(rows);
        (outputs.into(), scores)
    }

    fn takes_non_finite(&self) -> bool {
        self.accepts_non_finite()
    }

    fn label_names(&self) -> Option<&[String]> {
        self.class_names()
    }
}

impl Loaded<AnyModel> {
    /// Labels and scores for `rows`, after checking their width against the
    /// card's features.
    ///
    /// # Errors
    ///
    /// [`Error::Input`] for rows of the wrong width, or with a NaN or
    /// infinite value when the model does not take them.
    pub fn predict(&self, rows: ArrayView2<'_, f64>) -> Result<Predictions> {
        Ok(self.model().predict(rows)?)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, ArrayView2};
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::bundle::counts;
    use crate::model::StructureError;
    use crate::{BundleWriter, ModelCard};

    /// The sum of each row.
    #[derive(Debug, Serialize, Deserialize)]
    struct Sum {
        width: usize,
    }

    impl Model for Sum {
        const KIND: &'static str = "test.sum.v1";
        type Output = f64;
        fn n_features(&self) -> Option<usize> {
            Some(self.width)
        }
        fn check_structure(&self, _: usize) -> std::result::Result<(), StructureError> {
            Ok(())
        }
        fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
            rows.sum_axis(ndarray::Axis(1))
        }
    }

    #[test]
    fn a_dynamic_load_opens_once_and_parses_the_header_once() {
        let model = Sum { width: 3 };
        let card = ModelCard::builder("sum", &model)
            .version(semver::Version::new(1, 0, 0))
            .n_features(3)
            .build()
            .expect("card");
        let mut kinds = Kinds::empty();
        kinds.register::<Sum>();
        let dir = std::env::temp_dir().join(format!("mp-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for level in [0, 3] {
            let path = dir.join(format!("sum-{level}.bundle"));
            BundleWriter::default()
                .level(level)
                .without_fsync()
                .save(&path, &model, &card)
                .expect("saves");
            let (loaded, opens, parses) = counts::during(|| kinds.load(&path));
            assert_eq!(loaded.expect("loads").model().kind(), "test.sum.v1");
            assert_eq!(
                (opens, parses),
                (1, 1),
                "level {level}: opens and header parses of a dynamic file load"
            );
            let bytes = std::fs::read(&path).expect("reads");
            let (loaded, opens, parses) = counts::during(|| kinds.load_bytes(&bytes));
            loaded.expect("loads");
            assert_eq!((opens, parses), (0, 1), "level {level}: a dynamic load of bytes");
            let (loaded, opens, parses) =
                counts::during(|| AnyModel::load_file(&BundleReader::default(), &kinds, &path));
            loaded.expect("loads");
            assert_eq!((opens, parses), (1, 1), "level {level}: the load a server makes");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
