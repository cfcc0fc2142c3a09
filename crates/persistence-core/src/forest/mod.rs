//! The flat forest: tree ensembles as flat arrays, walked without
//! recursion, boxing or copying rows.
//!
//! One forest serves every tree model of the project: the linfa random
//! forest ([`linfa::RandomForest`](crate::linfa::RandomForest)) and ONNX
//! tree ensembles from scikit-learn, XGBoost and LightGBM
//! ([`onnx::TreeEnsemble`](crate::onnx::TreeEnsemble)). Its semantics are
//! onnxruntime's: branch modes, missing-value tracks, leaf weights per
//! output, base values, aggregate functions and post transforms. Thresholds
//! are `f32` for ONNX (onnxruntime compares in single precision) and `f64`
//! for linfa (which compares in double): the forest is generic over the
//! precision rows are compared in.
//!
//! One concept per file: `eval` (the walk, the finishing rules, the checks
//! of a forest read from a file), `layout` (the stored form: one blob per
//! column).

// Each user of the forest (linfa, onnx) is behind its feature; with one of
// them off, what only the other uses is unused.
#![cfg_attr(not(all(feature = "linfa", feature = "onnx")), allow(dead_code, unused_imports))]

use serde::{Deserialize, Serialize};

/// The deepest tree accepted.
pub const MAX_DEPTH: usize = 4_096;

/// A comparison at a branch node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node: a branch (feature, threshold, children) or a leaf (a range of
/// weights). The derived serde layout is the one `onnx.tree_ensemble.v1`
/// stored, read by its conversion only.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Node<T> {
    pub(crate) mode: Mode,
    pub(crate) missing_true: bool,
    pub(crate) feature: u32,
    pub(crate) threshold: T,
    /// Branch: the true child. Leaf: the first weight.
    pub(crate) a: u32,
    /// Branch: the false child. Leaf: one past the last weight.
    pub(crate) b: u32,
}

/// The transform applied to the aggregated scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

/// How the trees' weights for one output are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

fn sum() -> Aggregate {
    Aggregate::Sum
}

/// What the forest computes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Head {
    /// Class scores, labels.
    Classifier {
        labels: Vec<i64>,
        /// Two classes, weights for one score only (onnxruntime's "binary case").
        single_score: bool,
        all_positive: bool,
        /// Sum (ONNX) or average (a voting forest: scores are vote shares).
        #[serde(default = "sum")]
        aggregate: Aggregate,
    },
    /// Target values.
    Regressor { aggregate: Aggregate },
}

/// The precision rows are compared in: `f32` (ONNX) or `f64` (linfa).
pub(crate) trait Precision:
    crate::blob::Element + PartialOrd + std::fmt::Debug + Serialize + for<'de> Deserialize<'de> + Send + Sync
{
    /// Whether rows (always `f64`) are converted to be compared.
    const CONVERTS: bool;
    /// A threshold is never NaN; a row value may be.
    fn is_nan(self) -> bool;
    /// Rows in this precision: `f64` rows as they are, others converted
    /// into `buf` (as long as `src` when [`CONVERTS`](Self::CONVERTS)).
    fn row<'a>(src: &'a [f64], buf: &'a mut [Self]) -> &'a [Self];
}

impl Precision for f32 {
    const CONVERTS: bool = true;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn row<'a>(src: &'a [f64], buf: &'a mut [f32]) -> &'a [f32] {
        for (d, &s) in buf.iter_mut().zip(src) {
            *d = s as f32;
        }
        buf
    }
}

impl Precision for f64 {
    const CONVERTS: bool = false;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn row<'a>(src: &'a [f64], _: &'a mut [f64]) -> &'a [f64] {
        src
    }
}

/// A tree ensemble as flat arrays.
#[derive(Debug, Clone)]
pub(crate) struct FlatForest<T> {
    pub(crate) nodes: Vec<Node<T>>,
    pub(crate) roots: Vec<u32>,
    /// (output index, weight) of the leaves, by ranges.
    pub(crate) weights: Vec<(u32, f64)>,
    pub(crate) n_features: usize,
    /// Classes or targets.
    pub(crate) n_outputs: usize,
    pub(crate) base_values: Vec<f64>,
    pub(crate) post: Post,
    pub(crate) head: Head,
}

/// Batches at least this large are split over the machine's cores.
const PARALLEL_ROWS: usize = 256;

/// What the flat forest gives for a batch.
#[derive(Debug, Clone)]
pub(crate) struct ForestOutput {
    /// Labels (classifier), one per row.
    pub(crate) labels: Option<Vec<i64>>,
    /// Scores: `[rows, classes]` probabilities, or `[rows, targets]` values.
    pub(crate) scores: Vec<f64>,
    pub(crate) width: usize,
}

mod eval;
mod layout;

pub use eval::MAX_OUTPUTS;
pub(crate) use layout::FlatForestV1;
