//! The earlier stored forms of a flat forest, read to convert bundles of
//! earlier kinds: the column layout of the v2 kinds (one blob per column:
//! modes, features, thresholds, children, roots, leaf weights) and the map
//! per node of `onnx.tree_ensemble.v1`. Both are built with every check of
//! [`FlatForest::new`].

use serde::{de, Deserialize, Deserializer};

use super::{FlatForest, ForestParts, Head, Mode, Node, Post, Precision};

const MODES: [Mode; 7] = [
    Mode::Leq,
    Mode::Lt,
    Mode::Gte,
    Mode::Gt,
    Mode::Eq,
    Mode::Neq,
    Mode::Leaf,
];
/// The bit of a mode byte that sends missing values down the true branch.
const MISSING_TRUE: u8 = 0x80;

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Precision"))]
struct Columns<T> {
    n_features: u64,
    n_outputs: u64,
    /// The mode's index in [`MODES`], with [`MISSING_TRUE`].
    #[serde(with = "model_persistence_core::blob")]
    modes: Vec<u8>,
    #[serde(with = "model_persistence_core::blob")]
    features: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    thresholds: Vec<T>,
    #[serde(with = "model_persistence_core::blob")]
    a: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    b: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    roots: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    weight_outputs: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    weight_values: Vec<f64>,
    #[serde(with = "model_persistence_core::blob")]
    base_values: Vec<f64>,
    post: Post,
    head: Head,
}

/// A forest stored in the column layout of `linfa.random_forest.v2` and
/// `onnx.tree_ensemble.v2`, read to convert bundles of those kinds.
pub(crate) struct FlatForestV2<T>(pub(crate) FlatForest<T>);

impl<'de, T: Precision> Deserialize<'de> for FlatForestV2<T> {
    /// Decodes the columns and builds the forest with every check of
    /// [`FlatForest::new`]; parts that are not a forest give a
    /// [refused](FlatForest::refused) forest, which walks nothing and which
    /// the model's structure check refuses with the reason.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = Columns::<T>::deserialize(d)?;
        let n = c.modes.len();
        if [c.features.len(), c.thresholds.len(), c.a.len(), c.b.len()] != [n; 4] {
            return Err(de::Error::custom("the node columns have different lengths"));
        }
        if c.weight_outputs.len() != c.weight_values.len() {
            return Err(de::Error::custom("the weight columns have different lengths"));
        }
        let size = |v: u64| usize::try_from(v).map_err(|_| de::Error::custom("a size past the address space"));
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let byte = c.modes[i];
            let mode = *MODES
                .get(usize::from(byte & !MISSING_TRUE))
                .ok_or_else(|| de::Error::custom(format!("node {i} has an unknown mode {byte}")))?;
            nodes.push(Node {
                mode,
                missing_true: byte & MISSING_TRUE != 0,
                feature: c.features[i],
                threshold: c.thresholds[i],
                a: c.a[i],
                b: c.b[i],
            });
        }
        let n_features = size(c.n_features)?;
        let parts = ForestParts {
            nodes,
            roots: c.roots,
            weights: c.weight_outputs.into_iter().zip(c.weight_values).collect(),
            n_features,
            n_outputs: size(c.n_outputs)?,
            base_values: c.base_values,
            post: c.post,
            head: c.head,
        };
        Ok(FlatForestV2(
            FlatForest::new(parts).unwrap_or_else(|reason| FlatForest::refused(reason, n_features)),
        ))
    }
}

/// The layout `onnx.tree_ensemble.v1` stored (a map per node), read to
/// convert bundles of that kind.
#[derive(Deserialize)]
pub(crate) struct FlatForestV1 {
    nodes: Vec<Node<f32>>,
    roots: Vec<u32>,
    weights: Vec<(u32, f64)>,
    n_features: usize,
    n_outputs: usize,
    base_values: Vec<f64>,
    post: Post,
    head: Head,
}

impl From<FlatForestV1> for ForestParts<f32> {
    fn from(v: FlatForestV1) -> Self {
        ForestParts {
            nodes: v.nodes,
            roots: v.roots,
            weights: v.weights,
            n_features: v.n_features,
            n_outputs: v.n_outputs,
            base_values: v.base_values,
            post: v.post,
            head: v.head,
        }
    }
}
