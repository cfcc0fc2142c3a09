//! linfa's decision tree: kind `linfa.decision_tree.v1`.

use linfa::prelude::Predict;
use linfa_trees::DecisionTree;
use ndarray::{Array1, ArrayView2};

use crate::model::{Model, Predictor, StructureError};

/// Checks a linfa decision tree without recursion: every internal node has
/// both children and splits on a feature below `n_features`.
fn check_tree(tree: &DecisionTree<f64, usize>, n_features: usize) -> Result<(), StructureError> {
    let mut stack = vec![(tree.root_node(), 0_usize)];
    let mut nodes = 0_usize;
    while let Some((node, depth)) = stack.pop() {
        nodes += 1;
        if node.is_leaf() {
            continue;
        }
        let (feature, split, _) = node.split();
        if feature >= n_features {
            return Err(StructureError::new(format!(
                "node {nodes} at depth {depth} splits on feature {feature}, past the {n_features} features"
            )));
        }
        if split.is_nan() {
            return Err(StructureError::new(format!(
                "node {nodes} at depth {depth} has a NaN split value"
            )));
        }
        for child in node.children() {
            match child {
                Some(child) => stack.push((child, depth + 1)),
                None => {
                    return Err(StructureError::new(format!(
                        "node {nodes} at depth {depth} is a split without both children"
                    )))
                }
            }
        }
    }
    Ok(())
}

impl Predictor for DecisionTree<f64, usize> {
    type Output = usize;

    /// linfa keeps a tree's feature count private: the card's count is
    /// authoritative and the structural check holds every split to it.
    fn n_features(&self) -> Option<usize> {
        None
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
        Predict::predict(self, &rows)
    }
}

impl Model for DecisionTree<f64, usize> {
    const KIND: &'static str = "linfa.decision_tree.v1";

    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        check_tree(self, n_features)
    }

    fn dependencies() -> Vec<(&'static str, &'static str)> {
        super::dependencies()
    }
}
