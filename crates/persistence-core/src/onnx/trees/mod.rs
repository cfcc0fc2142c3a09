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
//! checks), `stored` (the lowered form as a model kind); the forest itself
//! and its walk are [`crate::forest`], shared with the linfa forest.

pub(crate) use crate::forest::{FlatForest, ForestOutput};

mod lower;
mod stored;
#[cfg(test)]
mod tests;

pub use crate::forest::{MAX_DEPTH, MAX_OUTPUTS};
pub(crate) use lower::lower;
pub use stored::TreeEnsemble;
