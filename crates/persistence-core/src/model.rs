//! The two halves of a model: what it does ([`Predictor`]) and how it is
//! stored ([`Model`]).

use ndarray::{Array1, ArrayView2};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// What a model does: predict, and what a caller must know to call it (its
/// width, whether it takes missing values, the names of its classes).
///
/// One trait for every model a caller holds: a typed model (any [`Model`]),
/// a model of any kind loaded by its card ([`AnyModel`](crate::AnyModel),
/// whose output is a [`ProbeValue`]), and what a server serves. How a model
/// is stored (its kind, layout and checks) is the other half, [`Model`].
///
/// The methods trust their rows: callers pass exactly the model's width,
/// and finite values unless [`accepts_non_finite`](Predictor::accepts_non_finite).
/// The road for rows from outside is a loaded model's
/// [`CheckedModel`](crate::CheckedModel), which checks them first and
/// returns a `Result`.
pub trait Predictor {
    /// What one prediction is: a class label or a score.
    type Output: Clone + PartialEq + std::fmt::Debug + Into<ProbeValue> + Send + Sync + 'static;

    /// The number of input features, if the model records it.
    fn n_features(&self) -> Option<usize>;

    /// Predicts one output per row.
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<Self::Output>;

    /// Scores beside the labels, where the model has them: one row per
    /// input row; for a classifier one column per class (in label order)
    /// holding its probability, for a regressor one column with the raw
    /// score. `None` (the default) for models without scores.
    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<ndarray::Array2<f64>> {
        let _ = rows;
        None
    }

    /// Outputs and scores of the same rows in one pass, where the model can
    /// give both at once (a forest walks its trees once for both). The
    /// default calls [`predict`](Predictor::predict), then
    /// [`scores`](Predictor::scores).
    fn predict_scored(&self, rows: ArrayView2<'_, f64>) -> (Array1<Self::Output>, Option<ndarray::Array2<f64>>) {
        (self.predict(rows), self.scores(rows))
    }

    /// Whether the model gives meaningful answers for inputs with NaN or
    /// infinite values (a tree with missing-value branches does; a linear
    /// model does not). Checked predictions refuse such inputs for models
    /// that do not. Default: false.
    fn accepts_non_finite(&self) -> bool {
        false
    }

    /// The classes' names, for a classifier whose labels are indices into
    /// them (an ONNX graph with string class labels predicts `0..n`, the
    /// index of each name here). `None` (the default) for labels that are
    /// their own names.
    fn class_names(&self) -> Option<&[String]> {
        None
    }
}

/// How a model is stored: a model type that can be saved to and loaded
/// from a bundle.
///
/// The trait asks for what loading needs to refuse a bad file before it
/// reaches a caller: a stable kind tag (never `std::any::type_name`, which
/// changes between compiler versions), a structural check that catches what
/// would panic at prediction, and (through [`Predictor`]) `predict`, so the
/// card's golden probe can be replayed.
///
/// # Examples
///
/// ```
/// use ndarray::{Array1, ArrayView2};
/// use model_persistence_core::{Model, Predictor, StructureError};
/// use serde::{Deserialize, Serialize};
///
/// /// Predicts the sum of the inputs times a weight.
/// #[derive(Serialize, Deserialize)]
/// struct Scaled { weights: Vec<f64> }
///
/// impl Predictor for Scaled {
///     type Output = f64;
///     fn n_features(&self) -> Option<usize> { Some(self.weights.len()) }
///     fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
///         rows.rows().into_iter()
///             .map(|r| r.iter().zip(&self.weights).map(|(x, w)| x * w).sum())
///             .collect()
///     }
/// }
///
/// impl Model for Scaled {
///     const KIND: &'static str = "example.scaled.v1";
///     fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
///         if self.weights.len() != n_features { return Err(StructureError::new("wrong width")); }
///         if self.weights.iter().all(|w| w.is_finite()) { Ok(()) }
///         else { Err(StructureError::new("a weight is not finite")) }
///     }
/// }
///
/// let model = Scaled { weights: vec![2.0, 0.5] };
/// assert!(model.check_structure(2).is_ok());
/// assert_eq!(model.predict(ndarray::array![[1.0, 4.0]].view()).to_vec(), vec![4.0]);
/// ```
pub trait Model: Predictor + Serialize + DeserializeOwned {
    /// A stable tag naming the model type and its serialised layout, such as
    /// `linfa.decision_tree.v1`. Loading refuses a bundle whose card names
    /// another kind.
    const KIND: &'static str;

    /// Checks what deserialisation cannot: that the model is internally
    /// consistent for inputs of `n_features` columns, so that `predict`
    /// cannot panic on them.
    ///
    /// # Errors
    ///
    /// A [`StructureError`] saying what is inconsistent.
    fn check_structure(&self, n_features: usize) -> Result<(), StructureError>;

    /// How far a replayed probe value may lie from the recorded one, as a
    /// fraction of the recorded value's magnitude (of 1 below magnitude 1).
    /// The default, 0, asks for the same bits: right for every model whose
    /// arithmetic is the project's own or otherwise fixed in its order, so
    /// the same on every CPU. A model run by a library that picks its
    /// kernels per CPU (tract's SIMD matrix products: a graph saved on an
    /// AVX2 machine gives other last bits on an AVX-512 one) returns the
    /// spread those kernels make, so a bundle moved between machines still
    /// loads, and a different model still does not. Labels always compare
    /// exactly.
    fn probe_tolerance(&self) -> f64 {
        0.0
    }

    /// Kinds of earlier layouts of this type that loading still accepts,
    /// each converted by [`from_earlier`](Model::from_earlier): how a type
    /// changes its layout (a new kind) without orphaning its bundles.
    /// Default: none.
    const EARLIER_KINDS: &'static [&'static str] = &[];

    /// Decodes a payload of one of [`EARLIER_KINDS`](Model::EARLIER_KINDS)
    /// into this type; called with no other kind. The converted model then
    /// passes the same checks as any other (structure, and the card's probe
    /// replayed: the conversion must reproduce the earlier predictions).
    ///
    /// # Errors
    ///
    /// The decoding error of the payload. The default refuses the kind.
    fn from_earlier(kind: &str, payload: Earlier<'_>) -> crate::Result<Self> {
        let _ = payload;
        Err(crate::Error::WrongModelKind {
            expected: Self::KIND.to_owned(),
            found: kind.to_owned(),
        })
    }

    /// Crates (name, version) the model's serialised form depends on; the
    /// card builder records them.
    fn dependencies() -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

/// The payload of a bundle of an earlier kind, handed to
/// [`Model::from_earlier`] to decode in the earlier layout.
#[derive(Debug, Clone, Copy)]
pub struct Earlier<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) max_depth: usize,
}

impl Earlier<'_> {
    /// Decodes the payload as `T` under the reader's limits, refusing bytes
    /// past the value.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) and the limit errors of any
    /// payload.
    pub fn decode<T: DeserializeOwned>(&self) -> crate::Result<T> {
        crate::format::decode_exact(self.bytes, self.max_depth, "payload")
    }
}

/// Why a model failed its structural check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureError {
    reason: String,
}

impl StructureError {
    /// A structural error with a reason in plain words.
    pub fn new(reason: impl Into<String>) -> Self {
        StructureError { reason: reason.into() }
    }

    /// The reason in plain words.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl std::fmt::Display for StructureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for StructureError {}

/// One prediction as the card's probe records it.
///
/// Labels compare as integers, values compare bit for bit (any NaN equals
/// any NaN): the probe asks for an exact reproduction, not an approximate one.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeValue {
    /// A class label.
    Label(i64),
    /// A score, probability or regression output.
    Value(#[serde(with = "crate::float")] f64),
}

impl PartialEq for ProbeValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ProbeValue::Label(a), ProbeValue::Label(b)) => a == b,
            // Bit for bit, except that every NaN equals every NaN: JSON and
            // many tools do not keep a NaN's sign or payload.
            (ProbeValue::Value(a), ProbeValue::Value(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            _ => false,
        }
    }
}

impl ProbeValue {
    /// Whether `found` reproduces this recorded value: labels exactly;
    /// values bit for bit when `tolerance` is 0 (any NaN equals any NaN),
    /// otherwise within `tolerance` times the recorded value's magnitude (or
    /// `tolerance` below magnitude 1). See [`Model::probe_tolerance`].
    pub fn reproduced_by(&self, found: &ProbeValue, tolerance: f64) -> bool {
        match (self, found) {
            (ProbeValue::Value(a), ProbeValue::Value(b)) if tolerance > 0.0 && a.is_finite() && b.is_finite() => {
                (a - b).abs() <= tolerance * a.abs().max(1.0)
            }
            _ => self == found,
        }
    }
}

impl std::fmt::Display for ProbeValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeValue::Label(l) => write!(f, "label {l}"),
            ProbeValue::Value(v) => write!(f, "value {v:?}"),
        }
    }
}

impl From<f64> for ProbeValue {
    fn from(v: f64) -> Self {
        ProbeValue::Value(v)
    }
}

impl From<f32> for ProbeValue {
    fn from(v: f32) -> Self {
        ProbeValue::Value(f64::from(v))
    }
}

impl From<usize> for ProbeValue {
    fn from(v: usize) -> Self {
        ProbeValue::Label(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<i64> for ProbeValue {
    fn from(v: i64) -> Self {
        ProbeValue::Label(v)
    }
}

impl From<bool> for ProbeValue {
    fn from(v: bool) -> Self {
        ProbeValue::Label(i64::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tolerance_admits_close_values_only() {
        let recorded = ProbeValue::Value(0.25);
        assert!(!recorded.reproduced_by(&ProbeValue::Value(0.250_000_1), 0.0));
        assert!(recorded.reproduced_by(&ProbeValue::Value(0.250_000_1), 1e-5));
        assert!(!recorded.reproduced_by(&ProbeValue::Value(0.26), 1e-5));
        assert!(ProbeValue::Value(1e6).reproduced_by(&ProbeValue::Value(1e6 + 1.0), 1e-5));
        assert!(!ProbeValue::Value(1e6).reproduced_by(&ProbeValue::Value(1e6 + 100.0), 1e-5));
        assert!(!recorded.reproduced_by(&ProbeValue::Value(f64::NAN), 1e-5));
        assert!(ProbeValue::Value(f64::NAN).reproduced_by(&ProbeValue::Value(f64::NAN), 1e-5));
        assert!(!ProbeValue::Label(1).reproduced_by(&ProbeValue::Label(2), 1e-5));
    }

    #[test]
    fn probe_values_compare_exactly() {
        assert_eq!(ProbeValue::from(0.1_f64), ProbeValue::Value(0.1));
        assert_ne!(ProbeValue::Value(0.1), ProbeValue::Value(0.1 + f64::EPSILON));
        assert_eq!(ProbeValue::Value(f64::NAN), ProbeValue::Value(f64::NAN));
        assert_eq!(ProbeValue::Value(-f64::NAN), ProbeValue::Value(f64::NAN));
        assert_ne!(ProbeValue::Value(0.0), ProbeValue::Value(-0.0));
        assert_ne!(ProbeValue::Label(1), ProbeValue::Value(1.0));
        assert_eq!(ProbeValue::from(3_usize), ProbeValue::Label(3));
    }
}
