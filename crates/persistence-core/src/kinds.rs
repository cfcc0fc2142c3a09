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
//! use model_persistence_testkit::LinearClassifier;
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

use ndarray::{Array1, Array2, ArrayView2};

use crate::bundle::{BundleReader, Loaded, Opened};
use crate::error::{Error, Result};
use crate::model::{Model, Predictor, ProbeValue};

/// A model whose type is known only at run time: a [`Predictor`] whose
/// outputs are [`ProbeValue`]s, and its kind.
pub trait DynModel: Predictor<Output = ProbeValue> + Send + Sync + std::fmt::Debug {
    /// The kind tag of the model's type.
    fn kind(&self) -> &'static str;
}

/// A model of any known kind.
pub type AnyModel = Box<dyn DynModel>;

/// A typed model as a model of any kind: the same model, its outputs as
/// [`ProbeValue`]s (what a [`Kinds`] table's loads give).
pub fn any_model<M: Model + Send + Sync + std::fmt::Debug + 'static>(model: M) -> AnyModel {
    Box::new(Erased(model))
}

/// A typed model seen as a dynamic one.
#[derive(Debug)]
struct Erased<M>(M);

impl<M: Model + Send + Sync + std::fmt::Debug> Predictor for Erased<M> {
    type Output = ProbeValue;

    fn n_features(&self) -> Option<usize> {
        self.0.n_features()
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<ProbeValue> {
        self.0.predict(rows).into_iter().map(Into::into).collect()
    }

    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
        self.0.scores(rows)
    }

    fn predict_scored(&self, rows: ArrayView2<'_, f64>) -> (Array1<ProbeValue>, Option<Array2<f64>>) {
        let (outputs, scores) = self.0.predict_scored(rows);
        (outputs.into_iter().map(Into::into).collect(), scores)
    }

    fn accepts_non_finite(&self) -> bool {
        self.0.accepts_non_finite()
    }

    fn class_names(&self) -> Option<&[String]> {
        self.0.class_names()
    }
}

impl<M: Model + Send + Sync + std::fmt::Debug> DynModel for Erased<M> {
    fn kind(&self) -> &'static str {
        M::KIND
    }
}

impl Predictor for AnyModel {
    type Output = ProbeValue;

    fn n_features(&self) -> Option<usize> {
        (**self).n_features()
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<ProbeValue> {
        (**self).predict(rows)
    }

    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
        (**self).scores(rows)
    }

    fn predict_scored(&self, rows: ArrayView2<'_, f64>) -> (Array1<ProbeValue>, Option<Array2<f64>>) {
        (**self).predict_scored(rows)
    }

    fn accepts_non_finite(&self) -> bool {
        (**self).accepts_non_finite()
    }

    fn class_names(&self) -> Option<&[String]> {
        (**self).class_names()
    }
}

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
    Ok(Loaded::from_parts(any_model(model), card, content_id))
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
    /// The kinds this crate defines: linfa's logistic regression and
    /// decision tree, with the `linfa` feature. The engines' kinds (the
    /// random forest, ONNX graphs and tree ensembles) are registered by
    /// `model_persistence_models::register`, and
    /// `model_persistence_models::kinds()` is the table of every built-in
    /// kind. The same table in tests as in users' builds.
    #[allow(unused_mut)] // Without features there is nothing to register.
    fn default() -> Self {
        let mut kinds = Kinds::empty();
        #[cfg(feature = "linfa")]
        {
            kinds.register::<linfa_logistic::FittedLogisticRegression<f64, usize>>();
            kinds.register::<linfa_trees::DecisionTree<f64, usize>>();
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

/// The load road of what a server or a registry can load and serve: any
/// [`Model`] type (typed, known at compile time), or [`AnyModel`] (any kind
/// in a [`Kinds`] table, known at run time). What the loaded model does is
/// its [`Predictor`].
pub trait Loadable: Predictor + Send + Sync + Sized + 'static {
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
}

impl<M: Model + Send + Sync + 'static> Loadable for M {
    fn load_bytes(reader: &BundleReader, _: &Kinds, bytes: &[u8]) -> Result<Loaded<Self>> {
        reader.load_bytes(bytes)
    }

    fn load_file(reader: &BundleReader, _: &Kinds, path: &Path) -> Result<Loaded<Self>> {
        reader.load(path)
    }
}

impl Loadable for AnyModel {
    fn load_bytes(reader: &BundleReader, kinds: &Kinds, bytes: &[u8]) -> Result<Loaded<Self>> {
        kinds.load_opened(reader, reader.open_bytes(bytes)?)
    }

    fn load_file(reader: &BundleReader, kinds: &Kinds, path: &Path) -> Result<Loaded<Self>> {
        kinds.load_opened(reader, reader.open_file(path)?)
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
        let (labels, scores) = self.model().predict_scored(rows)?;
        Ok(Predictions {
            labels: labels.to_vec(),
            scores,
        })
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

    impl Predictor for Sum {
        type Output = f64;
        fn n_features(&self) -> Option<usize> {
            Some(self.width)
        }
        fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
            rows.sum_axis(ndarray::Axis(1))
        }
    }

    impl Model for Sum {
        const KIND: &'static str = "test.sum.v1";
        fn check_structure(&self, _: usize) -> std::result::Result<(), StructureError> {
            Ok(())
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
