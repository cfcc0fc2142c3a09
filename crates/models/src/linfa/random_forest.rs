//! A random forest of linfa decision trees, run on the flat forest: kind
//! `linfa.random_forest.v3` (`v1` and `v2` converted on load).

use linfa_ensemble::EnsembleLearner;
use linfa_trees::DecisionTree;
use model_persistence_core::linfa::{dependencies, LINFA_VERSION};
use model_persistence_core::{Earlier, Model, Predictor, StructureError};
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::forest::{Aggregate, FlatForest, FlatForestV2, ForestParts, Head, Mode, Node, Post, MAX_DEPTH, MAX_OUTPUTS};

/// A random forest of linfa decision trees, as built by linfa-ensemble,
/// stored and run as a flat forest.
///
/// linfa-ensemble's `EnsembleLearner` has no serde support and votes by
/// walking boxed nodes after copying each tree's feature columns. This type
/// flattens the trees once, when it is built, into the project's
/// [flat forest](crate::forest): node arrays, the feature of each split
/// already mapped to the input's column, leaves that vote for their label.
/// Prediction walks those arrays on the rows as given, without copying
/// them; ties go to the smallest label (linfa's own vote breaks ties in
/// hash-map order). Scores are each label's share of the votes, one column
/// per label from 0 to the largest (at least two).
///
/// Kind `linfa.random_forest.v3` stores the forest compact (see
/// `docs/format.md`); bundles of `linfa.random_forest.v2` and
/// `linfa.random_forest.v1` (linfa's trees, node by node) are converted on
/// load, and their card's probe is replayed on the converted forest.
///
/// # Examples
///
/// ```no_run
/// use linfa::prelude::*;
/// use linfa_ensemble::EnsembleLearnerParams;
/// use linfa_trees::DecisionTree;
/// use model_persistence_models::linfa::RandomForest;
/// # #[allow(dead_code)]
/// # fn demo(dataset: linfa::DatasetBase<ndarray::Array2<f64>, ndarray::Array1<usize>>) -> Result<(), Box<dyn std::error::Error>> {
/// let ensemble = EnsembleLearnerParams::new(DecisionTree::params())
///     .ensemble_size(100)
///     .fit(&dataset)?;
/// let forest = RandomForest::new(&ensemble, dataset.nfeatures())?;
/// assert_eq!(forest.n_trees(), 100);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RandomForest {
    n_features: usize,
    forest: FlatForest<f64>,
}

/// The fields `linfa.random_forest.v2` stored.
#[derive(Deserialize)]
struct ForestV2 {
    n_features: usize,
    forest: FlatForestV2<f64>,
}

/// The fields `linfa.random_forest.v1` stored.
#[derive(Deserialize)]
struct ForestV1 {
    n_features: usize,
    trees: Vec<DecisionTree<f64, usize>>,
    tree_features: Vec<Vec<usize>>,
}

impl RandomForest {
    /// Flattens a fitted ensemble trained on `n_features` columns.
    ///
    /// # Errors
    ///
    /// A [`StructureError`] if the ensemble is inconsistent with
    /// `n_features` (no tree, a tree reading a feature past it, a split
    /// without both children, a NaN split) or deeper than
    /// [`crate::forest::MAX_DEPTH`].
    pub fn new(
        ensemble: &EnsembleLearner<DecisionTree<f64, usize>>,
        n_features: usize,
    ) -> Result<Self, StructureError> {
        Ok(RandomForest {
            n_features,
            forest: flatten(&ensemble.models, &ensemble.model_features, n_features)?,
        })
    }

    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.forest.size().0
    }

    /// The number of nodes, leaves included, over all trees.
    pub fn n_nodes(&self) -> usize {
        self.forest.size().1
    }
}

/// The trees of an ensemble as one flat forest: each split's feature mapped
/// through its tree's feature subset, `x < split` going to the left child
/// (linfa's rule), each leaf one vote for its label.
fn flatten(
    trees: &[DecisionTree<f64, usize>],
    subsets: &[Vec<usize>],
    n_features: usize,
) -> Result<FlatForest<f64>, StructureError> {
    if trees.is_empty() {
        return Err(StructureError::new("the forest has no tree"));
    }
    if trees.len() != subsets.len() {
        return Err(StructureError::new(format!(
            "{} trees but {} feature subsets",
            trees.len(),
            subsets.len()
        )));
    }
    let mut nodes: Vec<Node<f64>> = Vec::new();
    let mut weights = Vec::new();
    let mut roots = Vec::with_capacity(trees.len());
    let mut max_label = 1_usize;
    let index = |i: usize| u32::try_from(i).map_err(|_| StructureError::new("more nodes than a u32 indexes"));
    for (t, (tree, features)) in trees.iter().zip(subsets).enumerate() {
        if let Some(f) = features.iter().find(|&&f| f >= n_features) {
            return Err(StructureError::new(format!(
                "tree {t} reads feature {f}, past the {n_features} features"
            )));
        }
        Model::check_structure(tree, features.len()).map_err(|e| StructureError::new(format!("tree {t}: {e}")))?;
        roots.push(index(nodes.len())?);
        // (node, where its index goes: the parent and which child)
        let mut stack = vec![(tree.root_node(), None::<(usize, bool)>, 0_usize)];
        while let Some((node, parent, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(StructureError::new(format!("tree {t} is deeper than {MAX_DEPTH}")));
            }
            let at = nodes.len();
            if let Some((p, left)) = parent {
                if left {
                    nodes[p].a = index(at)?;
                } else {
                    nodes[p].b = index(at)?;
                }
            }
            match (node.prediction(), node.children().as_slice()) {
                (Some(label), _) => {
                    max_label = max_label.max(label);
                    let first = index(weights.len())?;
                    weights.push((u32::try_from(label).unwrap_or(u32::MAX), 1.0));
                    nodes.push(leaf(first, first + 1));
                }
                (None, [Some(l), Some(r)]) => {
                    let (feature, split, _) = node.split();
                    nodes.push(Node {
                        mode: Mode::Lt,
                        missing_true: false,
                        feature: index(features[feature])?,
                        threshold: split,
                        a: 0,
                        b: 0,
                    });
                    stack.push((r, Some((at, false)), depth + 1));
                    stack.push((l, Some((at, true)), depth + 1));
                }
                // The tree's structural check refused a split without both children.
                (None, _) => {
                    return Err(StructureError::new(format!(
                        "tree {t} has a split without both children"
                    )))
                }
            }
        }
    }
    if max_label >= MAX_OUTPUTS {
        return Err(StructureError::new(format!(
            "a leaf votes for label {max_label}; labels stop at {}",
            MAX_OUTPUTS - 1
        )));
    }
    FlatForest::new(ForestParts {
        nodes,
        roots,
        weights,
        n_features,
        n_outputs: max_label + 1,
        base_values: Vec::new(),
        post: Post::None,
        head: Head::Classifier {
            labels: (0..=max_label as i64).collect(),
            single_score: false,
            all_positive: true,
            aggregate: Aggregate::Average,
            names: Vec::new(),
        },
    })
    .map_err(StructureError::new)
}

fn leaf(first: u32, end: u32) -> Node<f64> {
    Node {
        mode: Mode::Leaf,
        missing_true: false,
        feature: 0,
        threshold: 0.0,
        a: first,
        b: end,
    }
}

impl Predictor for RandomForest {
    type Output = usize;

    fn n_features(&self) -> Option<usize> {
        Some(self.n_features)
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
        let out = self.forest.run_view(rows);
        out.labels
            .unwrap_or_default()
            .into_iter()
            .map(|l| usize::try_from(l).unwrap_or(0))
            .collect()
    }

    /// The share of trees voting for each label, one column per label from
    /// 0 to the largest any leaf votes for (at least two columns).
    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<ndarray::Array2<f64>> {
        self.forest.run_view(rows).into_scores(rows.nrows())
    }

    /// One walk of the trees for both.
    fn predict_scored(&self, rows: ArrayView2<'_, f64>) -> (Array1<usize>, Option<ndarray::Array2<f64>>) {
        let out = self.forest.run_view(rows);
        let labels = out
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|l| usize::try_from(l).unwrap_or(0))
            .collect();
        (labels, out.into_scores(rows.nrows()))
    }
}

impl Model for RandomForest {
    const KIND: &'static str = "linfa.random_forest.v3";
    const EARLIER_KINDS: &'static [&'static str] = &["linfa.random_forest.v1", "linfa.random_forest.v2"];

    /// The checks of any flat forest read from a file: every index in range,
    /// every tree a tree of bounded depth, features within `n_features`.
    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        self.forest.validate(n_features).map_err(StructureError::new)?;
        if !matches!(self.forest.head(), Head::Classifier { .. }) {
            return Err(StructureError::new("a random forest of linfa trees is a classifier"));
        }
        Ok(())
    }

    fn from_earlier(kind: &str, payload: Earlier<'_>) -> model_persistence_core::Result<Self> {
        if kind == "linfa.random_forest.v2" {
            let v2: ForestV2 = payload.decode()?;
            return Ok(RandomForest {
                n_features: v2.n_features,
                forest: v2.forest.0,
            });
        }
        let v1: ForestV1 = payload.decode()?;
        let forest = flatten(&v1.trees, &v1.tree_features, v1.n_features).map_err(|e| {
            model_persistence_core::Error::InvalidStructure {
                kind: "linfa.random_forest.v1".to_owned(),
                reason: e.reason().to_owned(),
            }
        })?;
        Ok(RandomForest {
            n_features: v1.n_features,
            forest,
        })
    }

    fn dependencies() -> Vec<(&'static str, &'static str)> {
        let mut deps = dependencies();
        deps.push(("linfa-ensemble", LINFA_VERSION));
        deps
    }
}
