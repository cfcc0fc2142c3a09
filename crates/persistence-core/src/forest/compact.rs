//! The compact stored form (kinds `linfa.random_forest.v3` and
//! `onnx.tree_ensemble.v3`): the walk form written as it is, with nothing a
//! reader can compute.
//!
//! | column | per | what |
//! |---|---|---|
//! | `leaves` | node | one bit (least significant first): the node is a leaf |
//! | `branch_kinds` | branch, or one for all | the comparison (0 `<=`, 1 `<`, 2 `==`), bit 7: a missing value goes to the first child |
//! | `features` | branch | the feature read, in the narrowest of 1, 2 or 4 bytes |
//! | `thresholds` | branch | in the forest's precision |
//! | `leaf_counts` | leaf, or none | how many weights the leaf has; none: one each |
//! | `weight_outputs` | weight | the output (class or target) weighted, narrowest width |
//! | `weight_values` | weight, or one for all | the weight |
//!
//! Nodes are each tree in pre-order, trees one after the other: a branch's
//! first child is the next node, and where its second child is follows
//! from the leaf bits, so no child index is stored and no stored value can
//! make a loop or point outside the forest. A reader checks lengths,
//! features, outputs, weights, that every branch has both children and
//! that no tree is deeper than [`MAX_DEPTH`], in one pass that builds the
//! walk form. Against the column layout of the v2 kinds (child indices,
//! roots, a mode byte per node, four-byte features and outputs, a weight
//! per leaf written out) the linfa forest of 100 trees is 0.19 times the
//! bytes before compression, so loading inflates and copies that much less.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::build::{check_head, check_weights, MAX_FEATURES};
use super::{Compare, FlatForest, Head, Post, Precision, Step, MAX_DEPTH, NAN_FIRST};

/// Bit 7 of a branch kind: a missing value goes to the first child.
const KIND_NAN_FIRST: u8 = 0x80;

#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "T: Precision", deserialize = "T: Precision"))]
struct Compact<T> {
    n_features: u64,
    n_outputs: u64,
    n_nodes: u64,
    #[serde(with = "crate::blob")]
    leaves: Vec<u8>,
    #[serde(with = "crate::blob")]
    branch_kinds: Vec<u8>,
    features: Narrow,
    #[serde(with = "crate::blob")]
    thresholds: Vec<T>,
    leaf_counts: Narrow,
    weight_outputs: Narrow,
    #[serde(with = "crate::blob")]
    weight_values: Vec<f64>,
    #[serde(with = "crate::blob")]
    base_values: Vec<f64>,
    post: Post,
    head: Head,
}

/// Unsigned integers written at the narrowest width that holds them all: a
/// width byte (1, 2 or 4) and a blob.
#[derive(Debug, PartialEq)]
enum Narrow {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Narrow {
    fn new(values: &[u32]) -> Self {
        match values.iter().copied().max().unwrap_or(0) {
            m if m <= u32::from(u8::MAX) => Narrow::U8(values.iter().map(|&x| x as u8).collect()),
            m if m <= u32::from(u16::MAX) => Narrow::U16(values.iter().map(|&x| x as u16).collect()),
            _ => Narrow::U32(values.to_vec()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Narrow::U8(v) => v.len(),
            Narrow::U16(v) => v.len(),
            Narrow::U32(v) => v.len(),
        }
    }

    /// Value `i`; the caller has checked the length.
    #[inline]
    fn get(&self, i: usize) -> u32 {
        match self {
            Narrow::U8(v) => u32::from(v[i]),
            Narrow::U16(v) => u32::from(v[i]),
            Narrow::U32(v) => v[i],
        }
    }
}

/// A slice written as a blob.
struct Blob<'a, T>(&'a [T]);

impl<T: crate::blob::Element> Serialize for Blob<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::blob::serialize(self.0, s)
    }
}

impl Serialize for Narrow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Narrow::U8(v) => (1u8, Blob(v)).serialize(s),
            Narrow::U16(v) => (2u8, Blob(v)).serialize(s),
            Narrow::U32(v) => (4u8, Blob(v)).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Narrow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored(u8, #[serde(with = "crate::blob")] Vec<u8>);
        let Stored(width, bytes) = Stored::deserialize(d)?;
        Ok(match width {
            1 => Narrow::U8(bytes),
            2 => Narrow::U16(crate::blob::from_le_bytes(&bytes).map_err(de::Error::custom)?),
            4 => Narrow::U32(crate::blob::from_le_bytes(&bytes).map_err(de::Error::custom)?),
            other => return Err(de::Error::custom(format!("an integer column {other} bytes wide"))),
        })
    }
}

impl<T: Precision> Serialize for FlatForest<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.steps.len();
        let mut leaves = vec![0u8; n.div_ceil(8)];
        let (mut kinds, mut features, mut thresholds, mut counts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, step) in self.steps.iter().enumerate() {
            if step.second as usize == i {
                leaves[i / 8] |= 1 << (i % 8);
                counts.push(self.leaf_start[i + 1] - self.leaf_start[i]);
            } else {
                let nan = if step.feature & NAN_FIRST != 0 {
                    KIND_NAN_FIRST
                } else {
                    0
                };
                kinds.push(self.compare(i) as u8 | nan);
                features.push(step.feature & !NAN_FIRST);
                thresholds.push(step.threshold);
            }
        }
        if kinds.windows(2).all(|w| w[0] == w[1]) {
            kinds.truncate(1);
        }
        if counts.iter().all(|&c| c == 1) {
            counts.clear();
        }
        let outputs: Vec<u32> = self.weights.iter().map(|w| w.0).collect();
        let mut values: Vec<f64> = self.weights.iter().map(|w| w.1).collect();
        if values.windows(2).all(|w| w[0].to_bits() == w[1].to_bits()) {
            values.truncate(1);
        }
        Compact {
            n_features: self.n_features as u64,
            n_outputs: self.n_outputs as u64,
            n_nodes: n as u64,
            leaves,
            branch_kinds: kinds,
            features: Narrow::new(&features),
            thresholds,
            leaf_counts: Narrow::new(&counts),
            weight_outputs: Narrow::new(&outputs),
            weight_values: values,
            base_values: self.base_values.clone(),
            post: self.post,
            head: self.head.clone(),
        }
        .serialize(s)
    }
}

impl<'de, T: Precision> Deserialize<'de> for FlatForest<T> {
    /// Decodes the columns and builds the walk form in one pass with every
    /// check; columns that are not a forest give a
    /// [refused](FlatForest::refused) forest, which walks nothing and which
    /// the model's structure check refuses with the reason.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = Compact::<T>::deserialize(d)?;
        let n_features = usize::try_from(c.n_features).unwrap_or(usize::MAX);
        Ok(build(c).unwrap_or_else(|reason| FlatForest::refused(reason, n_features)))
    }
}

/// The walk form of the compact columns, checked.
fn build<T: Precision>(c: Compact<T>) -> Result<FlatForest<T>, String> {
    let size = |v: u64| usize::try_from(v).map_err(|_| format!("a size of {v} past the address space"));
    let (n_features, n_outputs, n) = (size(c.n_features)?, size(c.n_outputs)?, size(c.n_nodes)?);
    check_head(&c.head, n_outputs, &c.base_values)?;
    if n_features > MAX_FEATURES {
        return Err(format!("{n_features} features; a forest reads at most {MAX_FEATURES}"));
    }
    if n > u32::MAX as usize - 1 {
        return Err("more nodes than a u32 indexes".into());
    }
    if c.leaves.len() != n.div_ceil(8) {
        return Err(format!("{} bytes of leaf bits for {n} nodes", c.leaves.len()));
    }
    let is_leaf = |i: usize| c.leaves[i / 8] & (1 << (i % 8)) != 0;
    let n_leaves = (0..n).filter(|&i| is_leaf(i)).count();
    let n_branches = n - n_leaves;
    if !(c.branch_kinds.len() == n_branches || (c.branch_kinds.len() == 1 && n_branches > 0) || n_branches == 0)
        || c.features.len() != n_branches
        || c.thresholds.len() != n_branches
    {
        return Err(format!(
            "{} branch kinds, {} features and {} thresholds for {n_branches} branches",
            c.branch_kinds.len(),
            c.features.len(),
            c.thresholds.len()
        ));
    }
    if c.leaf_counts.len() != 0 && c.leaf_counts.len() != n_leaves {
        return Err(format!("{} weight counts for {n_leaves} leaves", c.leaf_counts.len()));
    }
    let n_weights: u64 = if c.leaf_counts.len() == 0 {
        n_leaves as u64
    } else {
        (0..n_leaves).map(|i| u64::from(c.leaf_counts.get(i))).sum()
    };
    if n_weights != c.weight_outputs.len() as u64
        || !(c.weight_values.len() == c.weight_outputs.len() || (c.weight_values.len() == 1 && n_weights > 0))
    {
        return Err(format!(
            "{} weight outputs and {} values for {n_weights} weights",
            c.weight_outputs.len(),
            c.weight_values.len()
        ));
    }
    let weights: Vec<(u32, f64)> = (0..c.weight_outputs.len())
        .map(|i| {
            let value = c
                .weight_values
                .get(i)
                .or(c.weight_values.first())
                .copied()
                .unwrap_or(0.0);
            (c.weight_outputs.get(i), value)
        })
        .collect();
    check_weights(&weights, n_outputs)?;

    let mut steps = Vec::with_capacity(n);
    let mut compares = Vec::with_capacity(n);
    let mut leaf_start = Vec::with_capacity(n + 1);
    let (mut roots, mut depths) = (Vec::new(), Vec::new());
    // Branches waiting for their second child, with their depth.
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut deepest) = (0, 0);
    let (mut branch, mut leaf, mut weight) = (0, 0, 0u32);
    for i in 0..n {
        if pending.is_empty() && depth == 0 {
            roots.push(i as u32);
            deepest = 0;
        }
        leaf_start.push(weight);
        if is_leaf(i) {
            steps.push(Step {
                threshold: T::NAN,
                feature: 0,
                second: i as u32,
            });
            compares.push(Compare::Le);
            weight += if c.leaf_counts.len() == 0 {
                1
            } else {
                c.leaf_counts.get(leaf)
            };
            leaf += 1;
            deepest = deepest.max(depth);
            match pending.pop() {
                Some((p, d)) => {
                    steps[p].second = i as u32 + 1;
                    depth = d + 1;
                }
                None => {
                    depths.push(deepest as u32);
                    depth = 0;
                }
            }
            continue;
        }
        if depth >= MAX_DEPTH {
            return Err(format!("a tree deeper than {MAX_DEPTH}"));
        }
        let kind = *c.branch_kinds.get(branch).or(c.branch_kinds.first()).unwrap_or(&0);
        let compare = match kind & !KIND_NAN_FIRST {
            0 => Compare::Le,
            1 => Compare::Lt,
            2 => Compare::Eq,
            other => return Err(format!("branch {branch} has an unknown comparison {other}")),
        };
        let feature = c.features.get(branch);
        if feature as usize >= n_features {
            return Err(format!(
                "node {i} points outside the forest: feature {feature} of {n_features}"
            ));
        }
        let threshold = c.thresholds[branch];
        if threshold.is_nan() {
            return Err("a branch compares with NaN".into());
        }
        steps.push(Step {
            threshold,
            feature: feature | if kind & KIND_NAN_FIRST != 0 { NAN_FIRST } else { 0 },
            second: 0,
        });
        compares.push(compare);
        pending.push((i, depth));
        depth += 1;
        branch += 1;
    }
    if !pending.is_empty() || depth != 0 {
        return Err("the last tree has a branch without both children".into());
    }
    if roots.is_empty() {
        return Err("no trees".into());
    }
    leaf_start.push(weight);
    Ok(FlatForest {
        comparisons: super::build::comparisons(&steps, compares),
        steps,
        leaf_start,
        weights,
        roots,
        depths,
        n_features,
        n_outputs,
        base_values: c.base_values,
        post: c.post,
        head: c.head,
        refused: None,
    })
}
