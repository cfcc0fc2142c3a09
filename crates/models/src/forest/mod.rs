//! The flat forest: tree ensembles as flat arrays, walked without
//! recursion, boxing, branches on the data or copies of rows.
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
//! A forest is built from its parts (`ForestParts`: nodes in any order,
//! as a graph or a file gives them) once, with every check a hostile file
//! needs; what is built can always be walked. The built form is laid out
//! for the walk: the nodes of each tree in pre-order, so a branch's first
//! child is the next node and only the other is stored; every branch mode
//! rewritten as one of three comparisons (`<=`, `<`, `==`) that send
//! missing values (NaN) to the second child unless the node's missing bit
//! says otherwise (`>=` is `<` with the children swapped, and so on); a
//! leaf a node whose comparison (with NaN) always fails and whose second
//! child is itself, so a walk that reaches it stays. A walk is then a fixed
//! number of steps per tree (its depth), each a comparison and a select
//! with no branch, and several walks go side by side so the processor
//! overlaps them.
//!
//! One concept per file: `build` (parts into the walk form, with the
//! checks), `eval` (the walk and onnxruntime's finishing rules), `groups`
//! (the trees one row walks side by side, laid out at build), `compact`
//! (the stored form: the walk form with nothing a reader can compute),
//! `layout` (the earlier stored forms, read to convert), `post` (the
//! transforms of the scores).

use serde::{Deserialize, Serialize};

#[cfg(feature = "onnx")]
use model_persistence_core::ProbeValue;

/// The deepest tree accepted.
pub const MAX_DEPTH: usize = 4_096;

/// A comparison at a branch node, as graphs and stored forests give it.
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

/// One node as graphs and stored forests give it: a branch (feature,
/// threshold, children) or a leaf (a range of weights). The derived serde
/// layout is the one `onnx.tree_ensemble.v1` stored, read by its conversion
/// only.
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
    /// The inverse of the normal distribution's CDF, computed as
    /// onnxruntime computes it (single precision, Winitzki's
    /// approximation of the inverse error function).
    Probit,
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
        /// The classes' names when the graph names them with strings
        /// (`classlabels_strings`): then `labels` are `0..n`, the index of
        /// each class's name here. Empty for integer labels.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    /// Target values.
    Regressor { aggregate: Aggregate },
}

impl Head {
    fn aggregate(&self) -> Aggregate {
        match self {
            Head::Regressor { aggregate } | Head::Classifier { aggregate, .. } => *aggregate,
        }
    }
}

/// The precision rows are compared in: `f32` (ONNX) or `f64` (linfa).
pub(crate) trait Precision:
    model_persistence_core::blob::Element
    + PartialOrd
    + std::fmt::Debug
    + Serialize
    + for<'de> Deserialize<'de>
    + Send
    + Sync
{
    /// Whether rows (always `f64`) are converted to be compared.
    const CONVERTS: bool;
    /// Every comparison with it is false: a leaf's threshold.
    const NAN: Self;
    /// A threshold is never NaN; a row value may be.
    fn is_nan(self) -> bool;
    /// Rows in this precision: `f64` rows as they are, others converted
    /// into `buf` (as long as `src` when [`CONVERTS`](Self::CONVERTS)).
    fn row<'a>(src: &'a [f64], buf: &'a mut [Self]) -> &'a [Self];
}

impl Precision for f32 {
    const CONVERTS: bool = true;
    const NAN: f32 = f32::NAN;
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
    const NAN: f64 = f64::NAN;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn row<'a>(src: &'a [f64], _: &'a mut [f64]) -> &'a [f64] {
        src
    }
}

/// A forest as graphs and stored forests give it, before its checks: nodes
/// in any order, trees named by their roots.
#[derive(Debug, Clone)]
pub(crate) struct ForestParts<T> {
    pub(crate) nodes: Vec<Node<T>>,
    pub(crate) roots: Vec<u32>,
    /// (output index, weight) of the leaves, by the leaves' ranges.
    pub(crate) weights: Vec<(u32, f64)>,
    pub(crate) n_features: usize,
    /// Classes or targets.
    pub(crate) n_outputs: usize,
    pub(crate) base_values: Vec<f64>,
    pub(crate) post: Post,
    pub(crate) head: Head,
}

/// The comparison of a branch in the walk form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Compare {
    Le = 0,
    Lt = 1,
    Eq = 2,
}

/// One node of the walk form. A branch goes to the next node when its
/// comparison holds (or the value is missing and the node's bit in
/// `nan_first` is set), else to `second`; a leaf has a NaN threshold and
/// itself as `second`, so a walk that reaches it stays.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub(crate) struct Step<T> {
    pub(crate) threshold: T,
    pub(crate) feature: u32,
    pub(crate) second: u32,
}

// The walk reads `feature` and `second` as one `u64`.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(Step<f32>, second) == offset_of!(Step<f32>, feature) + 4);
    assert!(offset_of!(Step<f64>, second) == offset_of!(Step<f64>, feature) + 4);
};

/// One bit per node.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub(crate) fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    pub(crate) fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 != 0)
    }

    pub(crate) fn any(&self) -> bool {
        self.0.iter().any(|&w| w != 0)
    }
}

/// How the branches of a forest compare: all alike (the usual case, one
/// walk specialised for it), or one comparison per node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Comparisons {
    All(Compare),
    PerNode(Vec<Compare>),
}

/// A checked tree ensemble in its walk form (see the module's docs).
#[derive(Debug, Clone)]
pub(crate) struct FlatForest<T> {
    /// Every tree's nodes in pre-order, trees one after the other.
    steps: Vec<Step<T>>,
    /// The branches that send a missing value to their first child.
    nan_first: Bits,
    /// Whether any does.
    sends_nan_first: bool,
    comparisons: Comparisons,
    /// Node `i`'s weights are `weights[leaf_start[i]..leaf_start[i + 1]]`
    /// (none for a branch); one entry more than nodes.
    leaf_start: Vec<u32>,
    /// (output index, weight), in node order.
    weights: Vec<(u32, f64)>,
    /// Whether every weight is for output 0 (one target, or the single
    /// score of two classes).
    one_output: bool,
    /// When every leaf has exactly one weight, for output 0: node `i`'s
    /// weight (0 for a branch), what one row's walk adds without the
    /// indirection through `leaf_start`; else empty.
    leaf_value: Vec<f64>,
    roots: Vec<u32>,
    /// Steps from each root to its deepest leaf.
    depths: Vec<u32>,
    /// The trees as one row walks them, side by side.
    groups: Vec<groups::TreeGroup>,
    n_features: usize,
    /// Classes or targets.
    n_outputs: usize,
    base_values: Vec<f64>,
    post: Post,
    head: Head,
    /// Why the parts read from a file are not a forest: such a forest has
    /// no trees, and [`validate`](FlatForest::validate) refuses it with the
    /// reason, so loading reports a structure error, not a decode error.
    refused: Option<String>,
}

/// Batches whose walk is at least this many steps (rows times the sum of
/// the trees' depths) are split over the cores (rayon's pool, whose
/// threads start once): about 0.2 ms of one core's work. Set when a thread
/// was started per batch (15 to 80 µs measured); kept, as a second vCPU of
/// the shared machine here gave 1.06 to 1.6 times one. A row count alone
/// split small forests' batches too early and large forests' too late.
const PARALLEL_STEPS: usize = 150_000;

/// What the flat forest gives for a batch.
#[derive(Debug, Clone)]
pub(crate) struct ForestOutput {
    /// Labels (classifier), one per row.
    pub(crate) labels: Option<Vec<i64>>,
    /// Scores: `[rows, classes]` probabilities, or `[rows, targets]` values.
    pub(crate) scores: Vec<f64>,
    pub(crate) width: usize,
}

impl ForestOutput {
    /// One prediction per row: the label, or the first target's value.
    #[cfg(feature = "onnx")]
    pub(crate) fn predictions(self) -> ndarray::Array1<ProbeValue> {
        match self.labels {
            Some(labels) => labels.into_iter().map(ProbeValue::Label).collect(),
            None => self
                .scores
                .chunks(self.width.max(1))
                .map(|r| ProbeValue::Value(r[0]))
                .collect(),
        }
    }

    /// Predictions and scores of the same run.
    #[cfg(feature = "onnx")]
    pub(crate) fn both(self, n_rows: usize) -> (ndarray::Array1<ProbeValue>, Option<ndarray::Array2<f64>>) {
        let predictions = match &self.labels {
            Some(labels) => labels.iter().map(|&l| ProbeValue::Label(l)).collect(),
            None => self
                .scores
                .chunks(self.width.max(1))
                .map(|r| ProbeValue::Value(r[0]))
                .collect(),
        };
        (predictions, self.into_scores(n_rows))
    }

    /// The scores as `[rows, classes or targets]`.
    pub(crate) fn into_scores(self, n_rows: usize) -> Option<ndarray::Array2<f64>> {
        ndarray::Array2::from_shape_vec((n_rows, self.width), self.scores).ok()
    }
}

mod build;
mod compact;
mod eval;
mod groups;
mod layout;
mod post;
#[cfg(test)]
mod tests;

pub use build::{MAX_NODES, WALK_BYTES_PER_STORED_BYTE};
pub use eval::MAX_OUTPUTS;
#[cfg(feature = "onnx")]
pub(crate) use layout::FlatForestV1;
pub(crate) use layout::FlatForestV2;
