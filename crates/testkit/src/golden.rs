//! The models and card the golden fixtures (`tests/fixtures/`) were
//! written with, and small models the format's tests share. Their kinds
//! (`test.*`) are never registered by default.

use model_persistence_core::{Model, ModelCard, Predictor, StructureError};
use ndarray::{array, Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// `w·x + b` for each row.
pub fn affine(rows: ArrayView2<'_, f64>, weights: &[f64], bias: f64) -> Array1<f64> {
    rows.rows()
        .into_iter()
        .map(|r| r.iter().zip(weights).map(|(x, w)| x * w).sum::<f64>() + bias)
        .collect()
}

/// `y = w·x + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

impl Predictor for Linear {
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        affine(rows, &self.weights, self.bias)
    }
}

impl Model for Linear {
    const KIND: &'static str = "test.linear.v1";
    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        if self.weights.len() != n_features {
            return Err(StructureError::new("weight count differs from feature count"));
        }
        Ok(())
    }
}

/// A model of another kind with the same serialised shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherLinear {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

impl Predictor for OtherLinear {
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        Array1::zeros(rows.nrows())
    }
}

impl Model for OtherLinear {
    const KIND: &'static str = "test.other.v1";
    fn check_structure(&self, _: usize) -> Result<(), StructureError> {
        Ok(())
    }
}

/// The model of the golden fixtures.
pub fn linear() -> Linear {
    Linear {
        weights: vec![0.5, -1.25, 2.0],
        bias: 0.125,
    }
}

/// The training rows of the golden fixtures' cards.
pub fn training() -> Array2<f64> {
    array![
        [1.0, 2.0, 3.0],
        [0.5, 0.25, -1.0],
        [-2.0, 4.0, 0.0],
        [3.0, 3.0, 3.0],
        [0.0, 0.0, 1.0],
        [7.0, -1.0, 2.0]
    ]
}

/// The creation time of the golden fixtures' cards.
pub fn fixed_time() -> time::OffsetDateTime {
    time::macros::datetime!(2026-01-02 03:04:05 UTC)
}

/// The golden fixtures' card for `model`.
pub fn linear_card(model: &Linear) -> ModelCard {
    ModelCard::builder("linear", model)
        .version(semver::Version::new(1, 2, 3))
        .feature_names(["a", "b", "c"])
        .metric("mse", 0.25)
        .training_data(training().view(), "tests/common")
        .created_at(fixed_time())
        .notes("a small model for tests")
        .tag("test")
        .build()
        .expect("valid card")
}

/// `y = w·x + b` with its numbers as blobs (format 1.1): kind
/// `test.dense.v2`, reading `test.linear.v1` bundles as its earlier kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    #[serde(with = "model_persistence_core::blob")]
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
    /// One id per feature (a `u32` blob).
    #[serde(with = "model_persistence_core::blob")]
    pub ids: Vec<u32>,
    #[serde(with = "model_persistence_core::blob::array")]
    /// A 2-D `f32` array blob.
    pub scale: Array2<f32>,
}

impl Dense {
    /// The same model, in the newer layout.
    pub fn from_linear(l: &Linear) -> Dense {
        Dense {
            weights: l.weights.clone(),
            bias: l.bias,
            ids: (0..l.weights.len() as u32).collect(),
            scale: Array2::from_elem((2, l.weights.len()), 0.5),
        }
    }
}

impl Predictor for Dense {
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        affine(rows, &self.weights, self.bias)
    }
}

impl Model for Dense {
    const KIND: &'static str = "test.dense.v2";
    const EARLIER_KINDS: &'static [&'static str] = &["test.linear.v1"];
    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        if self.weights.len() != n_features || self.ids.len() != n_features || self.scale.ncols() != n_features {
            return Err(StructureError::new("column counts differ from the feature count"));
        }
        Ok(())
    }
    fn from_earlier(_: &str, payload: model_persistence_core::Earlier<'_>) -> model_persistence_core::Result<Self> {
        Ok(Dense::from_linear(&payload.decode::<Linear>()?))
    }
}
