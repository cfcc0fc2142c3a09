//! Lowering: a graph's tree-ensemble attributes into a [`FlatForest`], with
//! every check a hostile graph needs.

use std::collections::HashMap;

use tract_onnx::pb;

use crate::forest::{Aggregate, FlatForest, ForestParts, Head, Mode, Node, Post};

/// Whether `name` is a constant (initializer) equal to 1 in every element.
fn is_one(graph: &pb::GraphProto, name: &str) -> bool {
    graph.initializer.iter().find(|t| t.name == name).is_some_and(|t| {
        const FLOAT: i32 = 1;
        const DOUBLE: i32 = 11;
        match t.data_type {
            FLOAT if !t.float_data.is_empty() => t.float_data.iter().all(|&v| v == 1.0),
            FLOAT => !t.raw_data.is_empty() && t.raw_data.chunks(4).all(|c| c == 1.0f32.to_le_bytes()),
            DOUBLE if !t.double_data.is_empty() => t.double_data.iter().all(|&v| v == 1.0),
            DOUBLE => !t.raw_data.is_empty() && t.raw_data.chunks(8).all(|c| c == 1.0f64.to_le_bytes()),
            _ => false,
        }
    })
}

pub(super) fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(super) fn ints(node: &pb::NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

fn floats(node: &pb::NodeProto, name: &str) -> Vec<f32> {
    attr(node, name).map(|a| a.floats.clone()).unwrap_or_default()
}

fn string(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn strings(node: &pb::NodeProto, name: &str) -> Vec<String> {
    attr(node, name)
        .map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Where a graph's tree ensemble is: its node, the nodes before it that
/// compute its input from the graph's (none when the node reads the graph's
/// input itself), and the nodes after it that compute the graph's outputs
/// from its outputs (none when they only rename or cast them). The nodes
/// before and after run on tract.
pub(crate) struct Split<'a> {
    pub(crate) node: &'a pb::NodeProto,
    pub(crate) prefix: &'a [pb::NodeProto],
    pub(crate) suffix: &'a [pb::NodeProto],
}

/// The graph's one tree-ensemble node and what is around it; `None` (the
/// whole graph runs on tract) when a node after the trees reads anything
/// but the trees' outputs, constants and what such nodes compute, or the
/// trees' input is not the graph's or computed before them.
pub(crate) fn split<'a>(graph: &'a pb::GraphProto, input: &str) -> Option<Split<'a>> {
    let is_trees = |n: &pb::NodeProto| {
        matches!(
            n.op_type.as_str(),
            "TreeEnsembleClassifier" | "TreeEnsembleRegressor" | "TreeEnsemble"
        )
    };
    let at = graph.node.iter().position(is_trees)?;
    let (prefix, rest) = graph.node.split_at(at);
    let (node, rest) = rest.split_first()?;
    // With no node after the trees, the graph's outputs must be the trees'
    // in order: the forest's output is read as such.
    let suffix = if passes_through(graph, node, rest) {
        &[]
    } else if !rest.is_empty() && computed_from_trees(graph, node, rest) {
        rest
    } else {
        return None;
    };
    let [from] = node.input.as_slice() else {
        return None;
    };
    let computed = prefix.iter().any(|n| n.output.contains(from));
    match (prefix.is_empty(), from == input) {
        (true, true) => Some(Split { node, prefix, suffix }),
        (false, false) if computed => Some(Split { node, prefix, suffix }),
        _ => None,
    }
}

/// Whether the nodes after the trees leave their outputs' values as they
/// are (Identity, a Cast to float or int64, a product with the constant 1:
/// what skl2onnx and onnxmltools write around trees) and the graph's
/// outputs are the trees' outputs, in order.
fn passes_through(graph: &pb::GraphProto, node: &pb::NodeProto, rest: &[pb::NodeProto]) -> bool {
    let mut renamed: HashMap<&str, &str> = HashMap::new();
    for n in rest {
        let passes = match (n.op_type.as_str(), n.input.as_slice()) {
            ("Identity", [from]) => Some(from.as_str()),
            ("Cast", [from]) => attr(n, "to")
                .filter(|a| matches!(a.i, 1 | 7 | 11))
                .map(|_| from.as_str()),
            ("Mul", [a, b]) if is_one(graph, b) => Some(a.as_str()),
            ("Mul", [a, b]) if is_one(graph, a) => Some(b.as_str()),
            _ => None,
        };
        let (Some(from), [to]) = (passes, n.output.as_slice()) else {
            return false;
        };
        let origin = renamed.get(from).copied().unwrap_or(from);
        renamed.insert(to.as_str(), origin);
    }
    let outputs: Vec<&str> = graph
        .output
        .iter()
        .map(|o| renamed.get(o.name.as_str()).copied().unwrap_or(o.name.as_str()))
        .collect();
    outputs == node.output.iter().map(String::as_str).collect::<Vec<_>>()
}

/// Whether every node after the trees reads only the trees' outputs,
/// constants and what the nodes before it compute, and every output of the
/// graph is computed so.
fn computed_from_trees(graph: &pb::GraphProto, node: &pb::NodeProto, rest: &[pb::NodeProto]) -> bool {
    let mut known: std::collections::HashSet<&str> = node.output.iter().map(String::as_str).collect();
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    known.insert(""); // an optional input left out
    for n in rest {
        if !n.input.iter().all(|i| known.contains(i.as_str())) {
            return false;
        }
        known.extend(n.output.iter().map(String::as_str));
    }
    graph.output.iter().all(|o| known.contains(o.name.as_str()))
}

/// That there are nodes, every node column has one entry per node, and
/// the optional missing-value tracks one per node or none.
pub(super) fn node_columns(n: usize, columns: &[(&str, usize)], missing: usize) -> Result<(), String> {
    if n == 0 {
        return Err("a tree ensemble without nodes".into());
    }
    for &(what, len) in columns {
        if len != n {
            return Err(format!("{what} has {len} entries for {n} nodes"));
        }
    }
    if missing != 0 && missing != n {
        return Err(format!(
            "nodes_missing_value_tracks_true has {missing} entries for {n} nodes"
        ));
    }
    Ok(())
}

/// A tree-ensemble node lowered for an input `n_features` wide: `Ok(None)`
/// for a case not implemented here (left to tract); `Err` for a hostile or
/// inconsistent tree, refused.
pub(crate) fn lower(node: &pb::NodeProto, n_features: usize) -> Result<Option<FlatForest<f32>>, String> {
    if node.op_type == "TreeEnsemble" {
        return super::v5::lower(node, n_features);
    }
    let classifier = node.op_type == "TreeEnsembleClassifier";
    if attr(node, "nodes_values_as_tensor").is_some() || attr(node, "base_values_as_tensor").is_some() {
        return Ok(None);
    }
    let post = match string(node, "post_transform").as_deref().unwrap_or("NONE") {
        "NONE" => Post::None,
        "LOGISTIC" => Post::Logistic,
        "SOFTMAX" => Post::Softmax,
        "SOFTMAX_ZERO" => Post::SoftmaxZero,
        "PROBIT" => Post::Probit,
        _ => return Ok(None),
    };
    let tree_ids = ints(node, "nodes_treeids");
    let node_ids = ints(node, "nodes_nodeids");
    let features = ints(node, "nodes_featureids");
    let values = floats(node, "nodes_values");
    let modes = strings(node, "nodes_modes");
    let trues = ints(node, "nodes_truenodeids");
    let falses = ints(node, "nodes_falsenodeids");
    let missing = ints(node, "nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    node_columns(
        n,
        &[
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_values", values.len()),
            ("nodes_modes", modes.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
        ],
        missing.len(),
    )?;
    let (w_trees, w_nodes, w_ids, w_weights) = if classifier {
        (
            ints(node, "class_treeids"),
            ints(node, "class_nodeids"),
            ints(node, "class_ids"),
            floats(node, "class_weights"),
        )
    } else {
        (
            ints(node, "target_treeids"),
            ints(node, "target_nodeids"),
            ints(node, "target_ids"),
            floats(node, "target_weights"),
        )
    };
    let m = w_trees.len();
    if w_nodes.len() != m || w_ids.len() != m || w_weights.len() != m {
        return Err("the leaf weight attributes have different lengths".into());
    }
    let mut leave_to_tract = false;
    let head = if classifier {
        let mut labels = ints(node, "classlabels_int64s");
        // String labels: the forest's labels are their indices, and the
        // names go with it.
        let names = if labels.is_empty() {
            let names = strings(node, "classlabels_strings");
            labels = (0..names.len() as i64).collect();
            names
        } else {
            Vec::new()
        };
        let classes: std::collections::BTreeSet<i64> = w_ids.iter().copied().collect();
        // onnxruntime labels two classes that both have weights 1/0 by the
        // sign of the second score, whatever the class labels: left to
        // tract, once the tree is validated.
        leave_to_tract = labels.len() == 2 && classes.len() == 2;
        Head::Classifier {
            single_score: labels.len() == 2 && classes.len() == 1,
            all_positive: w_weights.iter().all(|&w| w >= 0.0),
            labels,
            aggregate: Aggregate::Sum,
            names,
        }
    } else {
        Head::Regressor {
            aggregate: match string(node, "aggregate_function").as_deref().unwrap_or("SUM") {
                "SUM" => Aggregate::Sum,
                "AVERAGE" => Aggregate::Average,
                "MIN" => Aggregate::Min,
                "MAX" => Aggregate::Max,
                other => return Err(format!("unknown aggregate_function {other:?}")),
            },
        }
    };
    let n_outputs = match &head {
        Head::Classifier { labels, .. } => labels.len(),
        Head::Regressor { .. } => {
            usize::try_from(attr(node, "n_targets").map_or(1, |a| a.i)).map_err(|_| "a negative n_targets")?
        }
    };
    if n_outputs == 0 {
        return Err("no classes or targets".into());
    }
    let base_values: Vec<f64> = floats(node, "base_values").into_iter().map(f64::from).collect();
    let single_score = matches!(&head, Head::Classifier { single_score: true, .. });
    // A single score takes one base value (gradient boosting's prior); two
    // base values follow onnxruntime conventions not implemented here.
    if single_score && base_values.len() > 1 {
        return Ok(None);
    }
    // PROBIT of a single score gives onnxruntime one probability column,
    // not the two every other binary case gives: left to tract.
    if single_score && post == Post::Probit {
        return Ok(None);
    }
    if !single_score && !base_values.is_empty() && base_values.len() != n_outputs {
        return Ok(None);
    }

    // Global index of each (tree, node id); roots are each tree's first node.
    let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
    let mut roots = Vec::new();
    let mut tree_of_root: HashMap<i64, u32> = HashMap::new();
    for i in 0..n {
        let gi = u32::try_from(i).map_err(|_| "too many nodes")?;
        if index.insert((tree_ids[i], node_ids[i]), gi).is_some() {
            return Err(format!("tree {} has node id {} twice", tree_ids[i], node_ids[i]));
        }
        if let std::collections::hash_map::Entry::Vacant(e) = tree_of_root.entry(tree_ids[i]) {
            e.insert(gi);
            roots.push(gi);
        }
    }
    // Leaf weights, grouped by node.
    let one_target = matches!(head, Head::Regressor { .. }) && n_outputs == 1;
    let mut by_leaf: HashMap<u32, Vec<(u32, f64)>> = HashMap::new();
    for j in 0..m {
        let leaf = *index.get(&(w_trees[j], w_nodes[j])).ok_or_else(|| {
            format!(
                "a weight names node {} of tree {}, which does not exist",
                w_nodes[j], w_trees[j]
            )
        })?;
        let out = usize::try_from(w_ids[j])
            .ok()
            .filter(|&o| o < n_outputs)
            .ok_or_else(|| format!("a weight names output {} of {n_outputs}", w_ids[j]))?;
        by_leaf
            .entry(leaf)
            .or_default()
            .push((out as u32, f64::from(w_weights[j])));
    }
    let mut nodes = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(m);
    for i in 0..n {
        let mode = match modes[i].as_str() {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            other => return Err(format!("unknown node mode {other:?}")),
        };
        let gi = i as u32;
        let node = if mode == Mode::Leaf {
            let start = weights.len() as u32;
            let mut mine = by_leaf.remove(&gi).unwrap_or_default();
            // onnxruntime reads one weight per leaf (the first) for a
            // single-target regressor, whatever the aggregate.
            if one_target {
                mine.truncate(1);
            }
            weights.extend(mine);
            Node {
                mode,
                missing_true: false,
                feature: 0,
                threshold: 0.0,
                a: start,
                b: weights.len() as u32,
            }
        } else {
            let feature = usize::try_from(features[i])
                .ok()
                .filter(|&f| f < n_features)
                .ok_or_else(|| format!("node {i} reads feature {} of an input {n_features} wide", features[i]))?;
            let child = |id: i64| {
                index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                    format!(
                        "node {i} of tree {} points at node {id}, which is not in its tree",
                        tree_ids[i]
                    )
                })
            };
            Node {
                mode,
                missing_true: missing.get(i).is_some_and(|&t| t != 0),
                feature: feature as u32,
                threshold: values[i],
                a: child(trues[i])?,
                b: child(falses[i])?,
            }
        };
        nodes.push(node);
    }
    if by_leaf.keys().next().is_some() {
        return Err("a weight is attached to a branch node".into());
    }
    // No loop, bounded depth, shared nodes laid out under each parent,
    // with the checks of a forest read from a bundle.
    let forest = FlatForest::new(ForestParts {
        nodes,
        roots,
        weights,
        n_features,
        n_outputs,
        base_values,
        post,
        head,
    })?;
    Ok((!leave_to_tract).then_some(forest))
}
