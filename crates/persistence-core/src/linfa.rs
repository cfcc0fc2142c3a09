//! Adapters for linfa's reference models (feature `linfa`).
//!
//! - [`FittedLogisticRegression<f64, usize>`](linfa_logistic::FittedLogisticRegression):
//!   kind `linfa.logistic_regression.v1`.
//! - [`DecisionTree<f64, usize>`](linfa_trees::DecisionTree): kind
//!   `linfa.decision_tree.v1`. Its structural check walks every node (without
//!   recursion) and refuses a split without both children or with a feature
//!   index past the feature count, either of which would panic at predict.
//! - [`RandomForest`]: a random forest built with linfa-ensemble, whose
//!   `EnsembleLearner` has no serde support; this wrapper persists its public
//!   fields (the trees and each tree's feature subset) and votes
//!   deterministically (ties go to the smallest label), where linfa's own
//!   vote breaks ties in hash-map order.

use linfa::prelude::Predict;
use linfa_ensemble::EnsembleLearner;
use linfa_logistic::FittedLogisticRegression;
use linfa_trees::DecisionTree;
use ndarray::{Array1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::model::{Model, StructureError};

/// The linfa version these adapters were written against.
pub const LINFA_VERSION: &str = "0.8.1";

fn linfa_deps() -> Vec<(&'static str, &'static str)> {
    vec![("linfa", LINFA_VERSION)]
}

impl Model for FittedLogisticRegression<f64, usize> {
    const KIND: &'static str = "linfa.logistic_regression.v1";
    type Output = usize;

    fn n_features(&self) -> Option<usize> {
        Some(self.params().len())
    }

    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        if self.params().len() != n_features {
            return Err(StructureError::new(format!(
                "{} coefficients for {n_features} features",
                self.params().len()
            )));
        }
        if !self.intercept().is_finite() || self.params().iter().any(|p| !p.is_finite()) {
            return Err(StructureError::new("a coefficient is not finite"));
        }
        let labels = self.labels();
        if labels.pos.class == labels.neg.class {
            return Err(StructureError::new("the positive and negative class are the same"));
        }
        Ok(())
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
        Predict::predict(self, &rows)
    }

    /// One column per class label up to the larger of the two, the two
    /// classes holding their probabilities.
    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<ndarray::Array2<f64>> {
        let p = self.predict_probabilities(&rows);
        let (pos, neg) = (self.labels().pos.class, self.labels().neg.class);
        let mut out = ndarray::Array2::zeros((rows.nrows(), pos.max(neg) + 1));
        for (i, p) in p.iter().enumerate() {
            out[[i, pos]] = *p;
            out[[i, neg]] = 1.0 - p;
        }
        Some(out)
    }

    fn dependencies() -> Vec<(&'static str, &'static str)> {
        linfa_deps()
    }
}

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

impl Model for DecisionTree<f64, usize> {
    const KIND: &'static str = "linfa.decision_tree.v1";
    type Output = usize;

    /// linfa keeps a tree's feature count private: the card's count is
    /// authoritative and the structural check holds every split to it.
    fn n_features(&self) -> Option<usize> {
        None
    }

    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        check_tree(self, n_features)
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
        Predict::predict(self, &rows)
    }

    fn dependencies() -> Vec<(&'static str, &'static str)> {
        linfa_deps()
    }
}

/// A random forest of linfa decision trees, as built by linfa-ensemble.
///
/// # Examples
///
/// ```no_run
/// use linfa::prelude::*;
/// use linfa_ensemble::EnsembleLearnerParams;
/// use linfa_trees::DecisionTree;
/// use model_persistence_core::linfa::RandomForest;
/// # #[allow(dead_code)]
/// # fn demo(dataset: linfa::DatasetBase<ndarray::Array2<f64>, ndarray::Array1<usize>>) -> Result<(), Box<dyn std::error::Error>> {
/// let ensemble = EnsembleLearnerParams::new(DecisionTree::params())
///     .ensemble_size(100)
///     .fit(&dataset)?;
/// let forest = RandomForest::new(ensemble, dataset.nfeatures())?;
/// assert_eq!(forest.trees().len(), 100);
/// # Ok(()) }
/// ```
#[derive(Deserialize)]
#[serde(from = "ForestRepr")]
pub struct RandomForest {
    n_features: usize,
    ensemble: EnsembleLearner<DecisionTree<f64, usize>>,
}

impl std::fmt::Debug for RandomForest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomForest")
            .field("n_features", &self.n_features)
            .field("trees", &self.ensemble.models.len())
            .finish()
    }
}

/// The persisted fields of an `EnsembleLearner`.
#[derive(Deserialize)]
struct ForestRepr {
    n_features: usize,
    trees: Vec<DecisionTree<f64, usize>>,
    tree_features: Vec<Vec<usize>>,
}

/// The same fields, borrowed for saving.
#[derive(Serialize)]
struct ForestReprRef<'a> {
    n_features: usize,
    trees: &'a [DecisionTree<f64, usize>],
    tree_features: &'a [Vec<usize>],
}

impl Serialize for RandomForest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ForestReprRef {
            n_features: self.n_features,
            trees: &self.ensemble.models,
            tree_features: &self.ensemble.model_features,
        }
        .serialize(s)
    }
}

impl From<ForestRepr> for RandomForest {
    fn from(r: ForestRepr) -> Self {
        RandomForest {
            n_features: r.n_features,
            ensemble: EnsembleLearner {
                models: r.trees,
                model_features: r.tree_features,
            },
        }
    }
}

impl RandomForest {
    /// Wraps a fitted ensemble trained on `n_features` columns.
    ///
    /// # Errors
    ///
    /// A [`StructureError`] if the ensemble is inconsistent with `n_features`.
    pub fn new(ensemble: EnsembleLearner<DecisionTree<f64, usize>>, n_features: usize) -> Result<Self, StructureError> {
        let forest = RandomForest { n_features, ensemble };
        forest.check_structure(n_features)?;
        Ok(forest)
    }

    /// The trees.
    pub fn trees(&self) -> &[DecisionTree<f64, usize>] {
        &self.ensemble.models
    }

    /// The ensemble as linfa built it.
    pub fn ensemble(&self) -> &EnsembleLearner<DecisionTree<f64, usize>> {
        &self.ensemble
    }

    /// The ensemble, giving up the wrapper.
    pub fn into_ensemble(self) -> EnsembleLearner<DecisionTree<f64, usize>> {
        self.ensemble
    }
}

impl Model for RandomForest {
    const KIND: &'static str = "linfa.random_forest.v1";
    type Output = usize;

    fn n_features(&self) -> Option<usize> {
        Some(self.n_features)
    }

    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        let e = &self.ensemble;
        if e.models.is_empty() {
            return Err(StructureError::new("the forest has no tree"));
        }
        if e.models.len() != e.model_features.len() {
            return Err(StructureError::new(format!(
                "{} trees but {} feature subsets",
                e.models.len(),
                e.model_features.len()
            )));
        }
        for (i, (tree, features)) in e.models.iter().zip(&e.model_features).enumerate() {
            if let Some(f) = features.iter().find(|&&f| f >= n_features) {
                return Err(StructureError::new(format!(
                    "tree {i} reads feature {f}, past the {n_features} features"
                )));
            }
            check_tree(tree, features.len()).map_err(|e| StructureError::new(format!("tree {i}: {e}")))?;
        }
        Ok(())
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
        self.votes(rows)
            .into_iter()
            .map(|v| {
                // Highest count; among equals the smallest label (BTreeMap order, first wins).
                v.into_iter()
                    .fold(None::<(usize, u32)>, |best, (label, count)| match best {
                        Some((_, c)) if c >= count => best,
                        _ => Some((label, count)),
                    })
                    .map_or(0, |(label, _)| label)
            })
            .collect()
    }

    /// The share of trees voting for each class, one column per label from
    /// 0 to the largest label voted (at least two columns).
    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<ndarray::Array2<f64>> {
        let votes = self.votes(rows);
        let classes = votes
            .iter()
            .filter_map(|v| v.keys().next_back())
            .max()
            .map_or(2, |&m| (m + 1).max(2));
        let trees = self.ensemble.models.len().max(1) as f64;
        let mut out = ndarray::Array2::zeros((votes.len(), classes));
        for (i, v) in votes.iter().enumerate() {
            for (&label, &count) in v {
                out[[i, label]] = f64::from(count) / trees;
            }
        }
        Some(out)
    }

    fn dependencies() -> Vec<(&'static str, &'static str)> {
        let mut deps = linfa_deps();
        deps.push(("linfa-ensemble", LINFA_VERSION));
        deps
    }
}

impl RandomForest {
    /// Each row's votes: label to number of trees.
    fn votes(&self, rows: ArrayView2<'_, f64>) -> Vec<std::collections::BTreeMap<usize, u32>> {
        let mut votes: Vec<std::collections::BTreeMap<usize, u32>> = vec![Default::default(); rows.nrows()];
        for (tree, features) in self.ensemble.models.iter().zip(&self.ensemble.model_features) {
            let sub = rows.select(Axis(1), features);
            let predicted: Array1<usize> = Predict::predict(tree, &sub);
            for (v, p) in votes.iter_mut().zip(predicted) {
                *v.entry(p).or_insert(0) += 1;
            }
        }
        votes
    }
}
