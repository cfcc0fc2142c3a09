//! The lowered form as a model kind of its own, stored in bundles.

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::FlatForest;
use crate::forest::{FlatForestV1, FlatForestV2};
use crate::onnx::OnnxError;
use model_persistence_core::{Earlier, Model, Predictor, ProbeValue, StructureError};

/// An ONNX tree ensemble stored in its lowered form: the flat forest's
/// arrays, not the graph, so loading parses no ONNX and needs no tract.
/// `modelctl import-onnx` writes this kind for graphs that are a lone tree
/// ensemble ([`OnnxModel::tree_ensemble`](crate::onnx::OnnxModel::tree_ensemble)); the card's `onnx` extension
/// keeps the original graph's description and SHA-256. Loading checks the
/// arrays as lowering checks a graph (indices, loops, depth, features,
/// outputs), so a hostile bundle is refused, never walked.
///
/// Trees send missing values where the graph says, so checked predictions
/// accept NaN inputs for this kind.
///
/// Kind `onnx.tree_ensemble.v3` stores the forest compact (each tree in
/// pre-order, no child index: see `docs/format.md`); bundles of
/// `onnx.tree_ensemble.v2` (one blob per column) and `v1` (a map per node)
/// are converted on load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeEnsemble {
    pub(in crate::onnx) forest: FlatForest<f32>,
    pub(in crate::onnx) n_features: usize,
}

/// The layout of `onnx.tree_ensemble.v2`.
#[derive(Deserialize)]
struct TreeEnsembleV2 {
    forest: FlatForestV2<f32>,
    n_features: usize,
}

/// The layout of `onnx.tree_ensemble.v1`.
#[derive(Deserialize)]
struct TreeEnsembleV1 {
    forest: FlatForestV1,
    n_features: usize,
}

impl TreeEnsemble {
    /// The input width.
    pub fn input_width(&self) -> usize {
        self.n_features
    }
}

impl Predictor for TreeEnsemble {
    fn accepts_non_finite(&self) -> bool {
        true
    }
    type Output = ProbeValue;

    fn n_features(&self) -> Option<usize> {
        Some(self.n_features)
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<ProbeValue> {
        self.forest.run_view(rows).predictions()
    }

    fn predict_scored(&self, rows: ArrayView2<'_, f64>) -> (Array1<ProbeValue>, Option<Array2<f64>>) {
        self.forest.run_view(rows).both(rows.nrows())
    }

    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
        self.forest.run_view(rows).into_scores(rows.nrows())
    }

    fn class_names(&self) -> Option<&[String]> {
        self.forest.class_names()
    }
}

impl Model for TreeEnsemble {
    const KIND: &'static str = "onnx.tree_ensemble.v3";
    const EARLIER_KINDS: &'static [&'static str] = &["onnx.tree_ensemble.v1", "onnx.tree_ensemble.v2"];

    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        self.forest
            .validate(n_features)
            .map_err(|reason| StructureError::new(OnnxError::Tree { reason }.to_string()))
    }

    fn from_earlier(kind: &str, payload: Earlier<'_>) -> model_persistence_core::Result<Self> {
        if kind == "onnx.tree_ensemble.v2" {
            let v2: TreeEnsembleV2 = payload.decode()?;
            return Ok(TreeEnsemble {
                forest: v2.forest.0,
                n_features: v2.n_features,
            });
        }
        let v1: TreeEnsembleV1 = payload.decode()?;
        let forest =
            FlatForest::new(v1.forest.into()).map_err(|reason| model_persistence_core::Error::InvalidStructure {
                kind: "onnx.tree_ensemble.v1".to_owned(),
                reason: OnnxError::Tree { reason }.to_string(),
            })?;
        Ok(TreeEnsemble {
            forest,
            n_features: v1.n_features,
        })
    }
}
