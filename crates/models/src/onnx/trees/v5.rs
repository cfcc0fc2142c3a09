//! `ai.onnx.ml` opset 5's `TreeEnsemble`: interior nodes and leaves in
//! arrays of their own, modes and thresholds as tensors, one target and
//! one weight per leaf, a child either a node or a leaf. Lowered into the
//! same flat forest, with the same checks. A set-membership node
//! (`BRANCH_MEMBER`) becomes a chain of `BRANCH_EQ` nodes, one per member,
//! each sending a member to the node's true child (shared, so laid out
//! under each) and the last the rest to its false child: exact membership,
//! as the operator defines it and as onnxruntime unrolls it.
//! Double-precision thresholds are left to tract.

use tract_onnx::pb;

use super::lower::{attr, ints, node_columns};
use crate::forest::{Aggregate, FlatForest, ForestParts, Head, Mode, Node, Post};

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const DOUBLE: i32 = 11;

fn tensor<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::TensorProto> {
    attr(node, name).and_then(|a| a.t.as_ref())
}

/// A float32 tensor's values; `Err` for another element type.
fn f32s(t: &pb::TensorProto, name: &str) -> Result<Vec<f32>, String> {
    match t.data_type {
        FLOAT if !t.float_data.is_empty() => Ok(t.float_data.clone()),
        FLOAT if t.raw_data.len().is_multiple_of(4) => Ok(t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        FLOAT => Err(format!("{name} holds {} bytes, not whole float32s", t.raw_data.len())),
        other => Err(format!("{name} is a tensor of element type {other}, not float32")),
    }
}

/// A uint8 tensor's values (stored as int32 or raw bytes).
fn u8s(t: &pb::TensorProto, name: &str) -> Result<Vec<u8>, String> {
    match t.data_type {
        UINT8 if !t.int32_data.is_empty() => t
            .int32_data
            .iter()
            .map(|&v| u8::try_from(v).map_err(|_| format!("{name} holds {v}, not a byte")))
            .collect(),
        UINT8 => Ok(t.raw_data.clone()),
        other => Err(format!("{name} is a tensor of element type {other}, not uint8")),
    }
}

/// `nodes_modes`' value for a set-membership node.
const MEMBER: u8 = 6;

/// Each node's set of members (empty for a node of another mode), read
/// from `membership_values` (the sets in the order of their nodes, each
/// ended by NaN); `Ok(None)` for double-precision members, left to tract.
fn member_sets(node: &pb::NodeProto, modes: &[u8]) -> Result<Option<Vec<Vec<f32>>>, String> {
    let wanted = modes.iter().filter(|&&m| m == MEMBER).count();
    let values = match tensor(node, "membership_values") {
        None if wanted == 0 => return Ok(Some(Vec::new())),
        None => return Err(format!("{wanted} set-membership nodes and no membership_values")),
        Some(t) if t.data_type == DOUBLE => return Ok(None),
        Some(t) => f32s(t, "membership_values")?,
    };
    let mut sets = values.split(|v| v.is_nan()).map(<[f32]>::to_vec).collect::<Vec<_>>();
    if sets.last().is_some_and(Vec::is_empty) {
        sets.pop(); // the NaN that ends the last set
    }
    if sets.len() != wanted {
        return Err(format!(
            "membership_values holds {} sets for {wanted} set-membership nodes",
            sets.len()
        ));
    }
    let mut sets = sets.into_iter();
    modes
        .iter()
        .enumerate()
        .map(|(i, &m)| match (m == MEMBER).then(|| sets.next()).flatten() {
            Some(set) if set.is_empty() => Err(format!("node {i} tests membership of an empty set")),
            Some(set) => Ok(set),
            None => Ok(Vec::new()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A `TreeEnsemble` node lowered for an input `n_features` wide:
/// `Ok(None)` for a case left to tract, `Err` for a hostile or
/// inconsistent tree.
pub(super) fn lower(node: &pb::NodeProto, n_features: usize) -> Result<Option<FlatForest<f32>>, String> {
    let int = |name: &str, default: i64| attr(node, name).map_or(default, |a| a.i);
    let post = match int("post_transform", 0) {
        0 => Post::None,
        1 => Post::Softmax,
        2 => Post::Logistic,
        3 => Post::SoftmaxZero,
        4 => Post::Probit,
        other => return Err(format!("unknown post_transform {other}")),
    };
    let aggregate = match int("aggregate_function", 1) {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        other => return Err(format!("unknown aggregate_function {other}")),
    };
    let n_outputs = usize::try_from(int("n_targets", 1))
        .ok()
        .filter(|&n| n > 0)
        .ok_or("n_targets is not a positive count")?;
    let splits = tensor(node, "nodes_splits").ok_or("no nodes_splits")?;
    if splits.data_type == DOUBLE {
        return Ok(None);
    }
    let splits = f32s(splits, "nodes_splits")?;
    let modes = u8s(tensor(node, "nodes_modes").ok_or("no nodes_modes")?, "nodes_modes")?;
    let sets = member_sets(node, &modes)?;
    let Some(sets) = sets else {
        return Ok(None);
    };
    let features = ints(node, "nodes_featureids");
    let (trues, true_leaf) = (ints(node, "nodes_truenodeids"), ints(node, "nodes_trueleafs"));
    let (falses, false_leaf) = (ints(node, "nodes_falsenodeids"), ints(node, "nodes_falseleafs"));
    let missing = ints(node, "nodes_missing_value_tracks_true");
    let targets = ints(node, "leaf_targetids");
    let leaf_weights = f32s(tensor(node, "leaf_weights").ok_or("no leaf_weights")?, "leaf_weights")?;
    let n = modes.len();
    node_columns(
        n,
        &[
            ("nodes_featureids", features.len()),
            ("nodes_splits", splits.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_trueleafs", true_leaf.len()),
            ("nodes_falsenodeids", falses.len()),
            ("nodes_falseleafs", false_leaf.len()),
        ],
        missing.len(),
    )?;
    if targets.len() != leaf_weights.len() {
        return Err(format!(
            "leaf_targetids has {} entries, leaf_weights {}",
            targets.len(),
            leaf_weights.len()
        ));
    }
    // Interior node i is node i; then the chains of the set-membership
    // nodes past their first member; then each reference to a leaf is a
    // leaf node of its own (a one-leaf tree references its leaf twice).
    let chained: usize = sets.iter().map(|s| s.len().saturating_sub(1)).sum();
    let first_leaf = n + chained;
    if first_leaf >= u32::MAX as usize {
        return Err("more nodes than a u32 indexes".into());
    }
    let mut nodes: Vec<Node<f32>> = Vec::with_capacity(3 * n + chained);
    let mut weights = Vec::with_capacity(2 * n);
    let mut leaves: Vec<Node<f32>> = Vec::with_capacity(2 * n);
    let mut child = |id: i64, is_leaf: i64, from: usize| -> Result<u32, String> {
        let id = usize::try_from(id).map_err(|_| format!("node {from} points at {id}"))?;
        if is_leaf == 0 {
            return if id < n {
                Ok(id as u32)
            } else {
                Err(format!("node {from} points at node {id}, outside the {n} nodes"))
            };
        }
        let (Some(&target), Some(&w)) = (targets.get(id), leaf_weights.get(id)) else {
            return Err(format!("node {from} points at leaf {id} of {}", targets.len()));
        };
        let target = usize::try_from(target)
            .ok()
            .filter(|&t| t < n_outputs)
            .ok_or_else(|| format!("leaf {id} weights target {target} of {n_outputs}"))?;
        let start = weights.len() as u32;
        weights.push((target as u32, f64::from(w)));
        leaves.push(Node {
            mode: Mode::Leaf,
            missing_true: false,
            feature: 0,
            threshold: 0.0,
            a: start,
            b: start + 1,
        });
        u32::try_from(first_leaf + leaves.len() - 1).map_err(|_| "more nodes than a u32 indexes".to_string())
    };
    let mut chains: Vec<Node<f32>> = Vec::with_capacity(chained);
    for i in 0..n {
        let mode = match modes[i] {
            0 => Mode::Leq,
            1 => Mode::Lt,
            2 => Mode::Gte,
            3 => Mode::Gt,
            4 | MEMBER => Mode::Eq,
            5 => Mode::Neq,
            other => return Err(format!("unknown node mode {other}")),
        };
        let feature = usize::try_from(features[i])
            .ok()
            .filter(|&f| f < n_features)
            .ok_or_else(|| format!("node {i} reads feature {} of an input {n_features} wide", features[i]))?;
        let (a, b) = (child(trues[i], true_leaf[i], i)?, child(falses[i], false_leaf[i], i)?);
        let node = Node {
            mode,
            missing_true: missing.get(i).is_some_and(|&t| t != 0),
            feature: feature as u32,
            threshold: splits[i],
            a,
            b,
        };
        match sets.get(i).map(Vec::as_slice) {
            Some([first, rest @ ..]) if modes[i] == MEMBER => {
                // Member by member: the true child on a member, the next
                // member's node otherwise, the false child after the last.
                // Member k + 1 is chain node `base + k`.
                let base = (n + chains.len()) as u32;
                let after = |k: usize| if k < rest.len() { base + k as u32 } else { b };
                nodes.push(Node {
                    threshold: *first,
                    b: after(0),
                    ..node
                });
                for (k, &value) in rest.iter().enumerate() {
                    chains.push(Node {
                        threshold: value,
                        b: after(k + 1),
                        ..node
                    });
                }
            }
            _ => nodes.push(node),
        }
    }
    nodes.extend(chains);
    nodes.extend(leaves);
    let roots = ints(node, "tree_roots")
        .into_iter()
        .map(|r| {
            usize::try_from(r)
                .ok()
                .filter(|&r| r < n)
                .map(|r| r as u32)
                .ok_or_else(|| format!("tree root {r} is not one of the {n} nodes"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    if roots.is_empty() {
        return Err("no tree_roots".into());
    }
    // No loop, bounded depth, shared nodes laid out under each parent,
    // with the checks of a forest read from a bundle.
    FlatForest::new(ForestParts {
        nodes,
        roots,
        weights,
        n_features,
        n_outputs,
        base_values: Vec::new(),
        post,
        head: Head::Regressor { aggregate },
    })
    .map(Some)
}
