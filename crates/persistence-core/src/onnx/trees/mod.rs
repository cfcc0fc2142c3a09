//! ONNX tree ensembles (`ai.onnx.ml` `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor`) lowered into a flat forest run natively.
//!
//! tract runs these nodes correctly but about two thousand times slower
//! than onnxruntime, and has no `TreeEnsembleRegressor`. A graph that is one
//! tree-ensemble node on the graph's input (what skl2onnx writes for
//! scikit-learn's forests and trees with `zipmap=False`) is evaluated here
//! instead: one array of nodes, walked row by row, with onnxruntime's
//! semantics (float32 thresholds, missing-value tracks, the binary-class
//! conventions, base values, aggregate functions, post transforms). Anything
//! outside what is implemented (PROBIT, string labels, pre- or
//! post-processing nodes) stays on tract.
//!
//! Lowering validates the tree: every child index in range and in the same
//! tree, no node reached twice (so no loop), features within the input
//! width, consistent attribute lengths, depth at most [`MAX_DEPTH`].

//!
//! One concept per file: `lower` (from the graph's attributes, with its
//! checks), `eval` (the walk, onnxruntime's finishing rules, and the checks
//! of a stored forest), `stored` (the lowered form as a model kind).

use serde::{Deserialize, Serialize};

/// The deepest tree lowered.
pub const MAX_DEPTH: usize = 4_096;

/// A comparison at a branch node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node: a branch (feature, threshold, children) or a leaf (a range of
/// weights).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Node {
    mode: Mode,
    missing_true: bool,
    feature: u32,
    threshold: f32,
    /// Branch: the true child. Leaf: the first weight.
    a: u32,
    /// Branch: the false child. Leaf: one past the last weight.
    b: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// What the forest computes.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Head {
    /// Class scores, labels.
    Classifier {
        labels: Vec<i64>,
        /// Two classes, weights for one score only (onnxruntime's "binary case").
        single_score: bool,
        all_positive: bool,
    },
    /// Target values.
    Regressor { aggregate: Aggregate },
}

/// A tree ensemble as flat arrays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FlatForest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// (output index, weight) of the leaves, by ranges.
    weights: Vec<(u32, f64)>,
    n_features: usize,
    /// Classes or targets.
    n_outputs: usize,
    base_values: Vec<f64>,
    post: Post,
    head: Head,
}

/// Batches at least this large are split over the machine's cores.
const PARALLEL_ROWS: usize = 256;

/// What the flat forest gives for a batch.
#[derive(Debug, Clone)]
pub(crate) struct ForestOutput {
    /// Labels (classifier) or the first target (regressor), one per row.
    pub(crate) labels: Option<Vec<i64>>,
    /// Scores: `[rows, classes]` probabilities, or `[rows, targets]` values.
    pub(crate) scores: Vec<f64>,
    pub(crate) width: usize,
}

mod eval;
mod lower;
mod stored;
#[cfg(test)]
mod tests;

pub use eval::MAX_OUTPUTS;
pub(crate) use lower::lower;
pub use stored::TreeEnsemble;
