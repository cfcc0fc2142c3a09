//! ONNX tree ensembles (`ai.onnx.ml` `TreeEnsembleClassifier`,
//! `TreeEnsembleRegressor`, and opset 5's `TreeEnsemble`) lowered into a
//! flat forest run natively.
//!
//! tract runs these nodes correctly but about two thousand times slower
//! than onnxruntime, and has no `TreeEnsembleRegressor`. A graph whose
//! model is one tree-ensemble node is evaluated here instead: one array of
//! nodes, walked row by row, with onnxruntime's semantics (float32
//! thresholds, missing-value tracks, the binary-class conventions, base
//! values, aggregate functions, post transforms).
//!
//! Where the line is between tract and the flat forest:
//! - the nodes before the trees (scaling, imputation, any preprocessing
//!   tract runs: skl2onnx's `Scaler` and `Imputer` are added to tract by
//!   [`crate::onnx`]) run on tract, and their output is the forest's input;
//! - the nodes after the trees run on tract from the trees' outputs (labels
//!   int64 and probabilities float32, or values float32, as onnxruntime
//!   gives them), unless they only rename or cast them (Identity, a Cast
//!   to float or int64, a product with the constant 1: what converters
//!   write), which costs nothing;
//! - a graph whose nodes after the trees read anything else (the graph's
//!   input, say) runs wholly on tract, as does one with more than one tree
//!   ensemble, two base values for a single score, or PROBIT on a single
//!   score.
//!
//! Classes named by strings (`classlabels_strings`, what skl2onnx writes
//! for a classifier trained on string labels) are lowered too, which
//! tract 0.23.9 cannot run at all: the forest's labels are the classes'
//! indices and the names go with it
//! ([`Predictor::class_names`](model_persistence_core::Predictor::class_names)).
//!
//! Lowering validates the tree: every child index in range and in the same
//! tree, no loop, features within the input width, consistent attribute
//! lengths, depth at most [`MAX_DEPTH`]. A node two branches share (as
//! onnxmltools writes LightGBM's categorical splits: a chain of `==`
//! branches, one per category, all with the same true child) is valid, as
//! in onnxruntime, and laid out under each branch, up to a bound on the
//! nodes that makes. Opset 5's set membership (`BRANCH_MEMBER`) becomes
//! such a chain, one `==` branch per member.
//!
//! One concept per file: `lower` (where the trees are in a graph, and
//! their attributes into a forest, with its checks), `v5` (opset 5's
//! `TreeEnsemble`), `around` (the nodes before and after the trees, on
//! tract), `stored` (the lowered form as a model
//! kind); the forest itself and its walk are [`crate::forest`], shared with
//! the linfa forest.

pub(crate) use crate::forest::{FlatForest, ForestOutput};

mod around;
mod lower;
mod stored;
#[cfg(test)]
mod tests;
mod v5;

pub use crate::forest::{MAX_DEPTH, MAX_OUTPUTS};
pub(crate) use around::{Native, Ran};
pub(crate) use lower::{lower, split, Split};
pub use stored::TreeEnsemble;
