//! The compact stored form (kinds `linfa.random_forest.v3` and
//! `onnx.tree_ensemble.v3`): the walk form written as it is, with nothing a
//! reader can compute. (Over 500 lines with its unit tests, which need the
//! private columns.)
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

use super::build::{check_head, check_weights, MAX_FEATURES, MAX_NODES};
use super::{Bits, Compare, FlatForest, Head, Post, Precision, Step, MAX_DEPTH};

/// Bit 7 of a branch kind: a missing value goes to the first child.
const KIND_NAN_FIRST: u8 = 0x80;

#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "T: Precision", deserialize = "T: Precision"))]
struct Compact<T> {
    n_features: u64,
    n_outputs: u64,
    n_nodes: u64,
    #[serde(with = "model_persistence_core::blob")]
    leaves: Vec<u8>,
    #[serde(with = "model_persistence_core::blob")]
    branch_kinds: Vec<u8>,
    features: Narrow,
    #[serde(with = "model_persistence_core::blob")]
    thresholds: Vec<T>,
    leaf_counts: Narrow,
    weight_outputs: Narrow,
    #[serde(with = "model_persistence_core::blob")]
    weight_values: Vec<f64>,
    #[serde(with = "model_persistence_core::blob")]
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

impl<T: model_persistence_core::blob::Element> Serialize for Blob<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        model_persistence_core::blob::serialize(self.0, s)
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
        struct Stored(u8, #[serde(with = "model_persistence_core::blob")] Vec<u8>);
        let Stored(width, bytes) = Stored::deserialize(d)?;
        Ok(match width {
            1 => Narrow::U8(bytes),
            2 => Narrow::U16(model_persistence_core::blob::from_le_bytes(&bytes).map_err(de::Error::custom)?),
            4 => Narrow::U32(model_persistence_core::blob::from_le_bytes(&bytes).map_err(de::Error::custom)?),
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
                let nan = if self.nan_first.get(i) { KIND_NAN_FIRST } else { 0 };
                kinds.push(self.compare(i) as u8 | nan);
                features.push(step.feature);
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
    if n > MAX_NODES {
        return Err(format!("{n} nodes; a forest has at most {MAX_NODES}"));
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
    if n_weights > MAX_NODES as u64 {
        return Err(format!("{n_weights} leaf weights; a forest has at most {MAX_NODES}"));
    }
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
    let mut nan_first = Bits::new(n);
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
            feature,
            second: 0,
        });
        compares.push(compare);
        if kind & KIND_NAN_FIRST != 0 {
            nan_first.set(i);
        }
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
        groups: super::groups::tree_groups(&roots, &depths),
        leaf_value: super::build::leaf_values(&steps, &leaf_start, &weights),
        comparisons: super::build::comparisons(&steps, compares),
        steps,
        sends_nan_first: nan_first.any(),
        nan_first,
        leaf_start,
        one_output: weights.iter().all(|w| w.0 == 0),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forest::Aggregate;

    /// A compact forest of one tree: `shape` gives the leaf bit of each
    /// node; branches read feature 0 at 0.5 with `<=`, leaves weigh 1.
    fn compact(shape: &[bool]) -> Compact<f32> {
        let n_branches = shape.iter().filter(|&&l| !l).count();
        let n_leaves = shape.len() - n_branches;
        let mut leaves = vec![0u8; shape.len().div_ceil(8)];
        for (i, _) in shape.iter().enumerate().filter(|(_, &l)| l) {
            leaves[i / 8] |= 1 << (i % 8);
        }
        Compact {
            n_features: 1,
            n_outputs: 1,
            n_nodes: shape.len() as u64,
            leaves,
            branch_kinds: vec![0],
            features: Narrow::new(&vec![0; n_branches]),
            thresholds: vec![0.5; n_branches],
            leaf_counts: Narrow::new(&[]),
            weight_outputs: Narrow::new(&vec![0; n_leaves]),
            weight_values: if n_leaves > 0 { vec![1.0] } else { Vec::new() },
            base_values: Vec::new(),
            post: Post::None,
            head: Head::Regressor {
                aggregate: Aggregate::Sum,
            },
        }
    }

    fn decode(c: &Compact<f32>) -> FlatForest<f32> {
        let bytes = rmp_serde::to_vec_named(c).expect("encodes");
        rmp_serde::from_slice(&bytes).expect("decodes")
    }

    #[test]
    fn a_forest_round_trips_through_the_compact_form() {
        // A branch whose first child is a branch: B(B(L, L), L), then a lone leaf tree.
        let f = decode(&compact(&[false, false, true, true, true, true]));
        assert_eq!(f.validate(1), Ok(()));
        assert_eq!(f.size(), (2, 6));
        assert_eq!(f.depths, vec![2, 0]);
        assert_eq!(f.roots, vec![0, 5]);
        assert_eq!(f.steps[0].second, 4);
        assert_eq!(f.steps[1].second, 3);
        let again: FlatForest<f32> =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&f).expect("encodes")).expect("decodes");
        assert_eq!(format!("{:?}", again.steps), format!("{:?}", f.steps));
        assert_eq!(again.weights, f.weights);
        // x = 0 goes first, first: leaf 2 and the lone leaf.
        assert_eq!(f.run(&[0.0], 1).scores, vec![2.0]);
    }

    #[test]
    fn a_branch_without_both_children_is_refused() {
        for shape in [&[false][..], &[false, true], &[false, false, true, true]] {
            let f = decode(&compact(shape));
            let err = f.validate(1).expect_err("refused");
            assert!(err.contains("without both children"), "{shape:?}: {err}");
            assert_eq!(f.run(&[0.0], 1).scores, vec![0.0], "a refused forest walks nothing");
        }
    }

    /// A stored forest claiming more nodes than any forest may have is
    /// refused from its counts, before anything is allocated for them:
    /// a small, highly compressible payload cannot make a load take
    /// gigabytes.
    #[test]
    fn node_and_weight_counts_past_the_cap_are_refused_before_allocation() {
        let mut c = compact(&[true]);
        c.n_nodes = MAX_NODES as u64 + 1;
        let reason = build(c).expect_err("refused");
        assert!(reason.contains("at most 16777216"), "{reason}");
        // Every node a leaf, each leaf claiming 2^20 weights.
        let n = 32;
        let mut c = compact(&vec![true; n]);
        c.leaf_counts = Narrow::new(&vec![1 << 20; n]);
        let reason = build(c).expect_err("refused");
        assert!(reason.contains("leaf weights; a forest has at most"), "{reason}");
    }

    #[test]
    fn a_tree_deeper_than_the_limit_is_refused() {
        // A chain: every branch's first child is the next branch.
        let mut shape = vec![false; MAX_DEPTH + 1];
        shape.extend(vec![true; MAX_DEPTH + 2]);
        let err = decode(&compact(&shape)).validate(1).expect_err("too deep");
        assert!(err.contains("deeper"), "{err}");
        let mut shape = vec![false; MAX_DEPTH];
        shape.extend(vec![true; MAX_DEPTH + 1]);
        assert_eq!(decode(&compact(&shape)).validate(1), Ok(()), "at the limit");
    }

    #[test]
    fn inconsistent_columns_are_refused_with_the_reason() {
        let shape = [false, true, true];
        type Edit = Box<dyn Fn(&mut Compact<f32>)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("leaf bits", Box::new(|c| c.leaves.push(0))),
            ("branches", Box::new(|c| c.thresholds.push(1.0))),
            ("branches", Box::new(|c| c.features = Narrow::new(&[0, 0]))),
            ("outside", Box::new(|c| c.features = Narrow::new(&[1]))),
            ("unknown comparison", Box::new(|c| c.branch_kinds = vec![3])),
            ("weight counts", Box::new(|c| c.leaf_counts = Narrow::new(&[1]))),
            ("weights", Box::new(|c| c.leaf_counts = Narrow::new(&[1, 2]))),
            ("output 4", Box::new(|c| c.weight_outputs = Narrow::new(&[0, 4]))),
            ("leaf weight inf", Box::new(|c| c.weight_values = vec![f64::INFINITY])),
            ("NaN", Box::new(|c| c.thresholds = vec![f32::NAN])),
            (
                "no trees",
                Box::new(|c| {
                    c.n_nodes = 0;
                    c.leaves.clear();
                    c.features = Narrow::new(&[]);
                    c.thresholds.clear();
                    c.weight_outputs = Narrow::new(&[]);
                    c.weight_values.clear();
                }),
            ),
            ("0 outputs", Box::new(|c| c.n_outputs = 0)),
        ];
        for (says, edit) in cases {
            let mut c = compact(&shape);
            edit(&mut c);
            let err = decode(&c).validate(1).expect_err(says);
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn integer_columns_take_the_narrowest_width() {
        assert!(matches!(Narrow::new(&[0, 255]), Narrow::U8(_)));
        assert!(matches!(Narrow::new(&[0, 256]), Narrow::U16(_)));
        assert!(matches!(Narrow::new(&[70_000]), Narrow::U32(_)));
        for values in [vec![1u32, 200], vec![3, 60_000], vec![7, u32::MAX]] {
            let n = Narrow::new(&values);
            let back: Narrow = rmp_serde::from_slice(&rmp_serde::to_vec(&n).expect("encodes")).expect("decodes");
            assert_eq!(back, n);
            assert_eq!((0..values.len()).map(|i| back.get(i)).collect::<Vec<_>>(), values);
        }
        let odd = rmp_serde::to_vec(&(2u8, serde_bytes_like(&[1, 2, 3]))).expect("encodes");
        assert!(
            rmp_serde::from_slice::<Narrow>(&odd).is_err(),
            "3 bytes are not whole u16s"
        );
        let wide = rmp_serde::to_vec(&(8u8, serde_bytes_like(&[0; 8]))).expect("encodes");
        assert!(rmp_serde::from_slice::<Narrow>(&wide).is_err(), "no 8-byte width");
    }

    fn serde_bytes_like(b: &[u8]) -> Blob<'_, u8> {
        Blob(b)
    }
}
