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

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tract_onnx::pb;

/// The deepest tree lowered.
pub const MAX_DEPTH: usize = 4_096;

/// A comparison at a branch node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node: a branch (feature, threshold, children) or a leaf (a range of
/// weights).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Node {
    mode: Mode,
    missing_true: bool,
    feature: u32,
    threshold: f32,
    /// Branch: the true child. Leaf: the first weight.
    a: u32,
    /// Branch: the false child. Leaf: one past the last weight.
    b: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// What the forest computes.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Head {
    /// Class scores, labels.
    Classifier {
        labels: Vec<i64>,
        /// Two classes, weights for one score only (onnxruntime's "binary case").
        single_score: bool,
        all_positive: bool,
    },
    /// Target values.
    Regressor { aggregate: Aggregate },
}

/// A tree ensemble as flat arrays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FlatForest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// (output index, weight) of the leaves, by ranges.
    weights: Vec<(u32, f64)>,
    n_features: usize,
    /// Classes or targets.
    n_outputs: usize,
    base_values: Vec<f64>,
    post: Post,
    head: Head,
}

/// Batches at least this large are split over the machine's cores.
const PARALLEL_ROWS: usize = 256;

/// What the flat forest gives for a batch.
#[derive(Debug, Clone)]
pub(crate) struct ForestOutput {
    /// Labels (classifier) or the first target (regressor), one per row.
    pub(crate) labels: Option<Vec<i64>>,
    /// Scores: `[rows, classes]` probabilities, or `[rows, targets]` values.
    pub(crate) scores: Vec<f64>,
    pub(crate) width: usize,
}

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

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints(node: &pb::NodeProto, name: &str) -> Vec<i64> {
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

/// Why a graph is not lowered: `Ok(None)` means "not a lone tree ensemble
/// or not a case implemented here: use tract"; `Err` is a hostile or
/// inconsistent tree, refused.
pub(crate) fn lower(graph: &pb::GraphProto, input: &str, n_features: usize) -> Result<Option<FlatForest>, String> {
    // One tree-ensemble node, and nodes after it that leave its outputs'
    // values as they are: Identity, a Cast to float or int64, a product with
    // the constant 1 (what skl2onnx and onnxmltools write around trees).
    let Some((node, rest)) = graph.node.split_first() else {
        return Ok(None);
    };
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
        match (passes, n.output.as_slice()) {
            (Some(from), [to]) => {
                let origin = renamed.get(from).copied().unwrap_or(from);
                renamed.insert(to.as_str(), origin);
            }
            _ => return Ok(None),
        }
    }
    let classifier = match node.op_type.as_str() {
        "TreeEnsembleClassifier" => true,
        "TreeEnsembleRegressor" => false,
        _ => return Ok(None),
    };
    if node.input.as_slice() != [input.to_owned()] {
        return Ok(None);
    }
    let outputs: Vec<&str> = graph
        .output
        .iter()
        .map(|o| renamed.get(o.name.as_str()).copied().unwrap_or(o.name.as_str()))
        .collect();
    let node_outputs: Vec<&str> = node.output.iter().map(String::as_str).collect();
    if outputs != node_outputs {
        return Ok(None);
    }
    if attr(node, "nodes_values_as_tensor").is_some() || attr(node, "base_values_as_tensor").is_some() {
        return Ok(None);
    }
    let post = match string(node, "post_transform").as_deref().unwrap_or("NONE") {
        "NONE" => Post::None,
        "LOGISTIC" => Post::Logistic,
        "SOFTMAX" => Post::Softmax,
        "SOFTMAX_ZERO" => Post::SoftmaxZero,
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
    if n == 0 {
        return Err("a tree ensemble without nodes".into());
    }
    for (what, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_values", values.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", trues.len()),
        ("nodes_falsenodeids", falses.len()),
    ] {
        if len != n {
            return Err(format!("{what} has {len} entries for {n} nodes"));
        }
    }
    if !missing.is_empty() && missing.len() != n {
        return Err(format!(
            "nodes_missing_value_tracks_true has {} entries for {n} nodes",
            missing.len()
        ));
    }
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
        let labels = ints(node, "classlabels_int64s");
        if labels.is_empty() {
            return Ok(None); // string labels: tract
        }
        let classes: std::collections::BTreeSet<i64> = w_ids.iter().copied().collect();
        // onnxruntime labels two classes that both have weights 1/0 by the
        // sign of the second score, whatever the class labels: left to
        // tract, once the tree is validated.
        leave_to_tract = labels.len() == 2 && classes.len() == 2;
        Head::Classifier {
            single_score: labels.len() == 2 && classes.len() == 1,
            all_positive: w_weights.iter().all(|&w| w >= 0.0),
            labels,
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
            weights.extend(by_leaf.remove(&gi).unwrap_or_default());
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
    // Every tree is a tree: no node reached twice, bounded depth.
    let mut seen = vec![false; n];
    for &root in &roots {
        let mut stack = vec![(root, 0usize)];
        while let Some((at, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(format!("a tree deeper than {MAX_DEPTH}"));
            }
            let slot = &mut seen[at as usize];
            if *slot {
                return Err(format!(
                    "node {at} is reached twice: the tree has a loop or a shared node"
                ));
            }
            *slot = true;
            let node = nodes[at as usize];
            if node.mode != Mode::Leaf {
                stack.push((node.a, depth + 1));
                stack.push((node.b, depth + 1));
            }
        }
    }
    if leave_to_tract {
        return Ok(None);
    }
    Ok(Some(FlatForest {
        nodes,
        roots,
        weights,
        n_features,
        n_outputs,
        base_values,
        post,
        head,
    }))
}

/// The most classes or targets a stored forest may have (each row
/// allocates one score per output).
pub const MAX_OUTPUTS: usize = 1 << 16;

impl FlatForest {
    /// Checks a forest read from a bundle as lowering checks a graph: every
    /// index in range, every tree a tree within [`MAX_DEPTH`], every output
    /// id and feature within bounds, finite weights.
    pub(crate) fn validate(&self, n_features: usize) -> Result<(), String> {
        if self.n_features != n_features {
            return Err(format!(
                "the forest reads {} features, the card says {n_features}",
                self.n_features
            ));
        }
        if self.n_outputs == 0 || self.n_outputs > MAX_OUTPUTS {
            return Err(format!("{} outputs", self.n_outputs));
        }
        if self.roots.is_empty() {
            return Err("no trees".into());
        }
        match &self.head {
            Head::Classifier {
                labels, single_score, ..
            } => {
                if labels.len() != self.n_outputs || (*single_score && labels.len() != 2) {
                    return Err(format!("{} labels for {} classes", labels.len(), self.n_outputs));
                }
            }
            Head::Regressor { .. } => {}
        }
        if self.base_values.len() > self.n_outputs || self.base_values.iter().any(|b| !b.is_finite()) {
            return Err("base values do not match the outputs".into());
        }
        if let Some((o, w)) = self
            .weights
            .iter()
            .find(|(o, w)| *o as usize >= self.n_outputs || !w.is_finite())
        {
            return Err(format!("a leaf weight {w} for output {o} of {}", self.n_outputs));
        }
        let n = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            let ok = if node.mode == Mode::Leaf {
                node.a <= node.b && (node.b as usize) <= self.weights.len()
            } else {
                (node.feature as usize) < n_features && (node.a as usize) < n && (node.b as usize) < n
            };
            if !ok {
                return Err(format!("node {i} points outside the forest"));
            }
        }
        let mut seen = vec![false; n];
        for &root in &self.roots {
            if root as usize >= n {
                return Err(format!("root {root} is not a node"));
            }
            let mut stack = vec![(root, 0usize)];
            while let Some((at, depth)) = stack.pop() {
                if depth > MAX_DEPTH {
                    return Err(format!("a tree deeper than {MAX_DEPTH}"));
                }
                if std::mem::replace(&mut seen[at as usize], true) {
                    return Err(format!(
                        "node {at} is reached twice: the tree has a loop or a shared node"
                    ));
                }
                let node = self.nodes[at as usize];
                if node.mode != Mode::Leaf {
                    stack.push((node.a, depth + 1));
                    stack.push((node.b, depth + 1));
                }
            }
        }
        Ok(())
    }

    /// The leaf a row reaches in the tree at `root`.
    #[inline]
    fn leaf(&self, root: u32, row: &[f32]) -> Node {
        let mut node = self.nodes[root as usize];
        while node.mode != Mode::Leaf {
            let x = row[node.feature as usize];
            let t = node.threshold;
            let go_true = if x.is_nan() && node.missing_true {
                true
            } else {
                match node.mode {
                    Mode::Leq => x <= t,
                    Mode::Lt => x < t,
                    Mode::Gte => x >= t,
                    Mode::Gt => x > t,
                    Mode::Eq => x == t,
                    Mode::Neq => x != t,
                    Mode::Leaf => unreachable!("the loop stops at leaves"),
                }
            };
            node = self.nodes[if go_true { node.a } else { node.b } as usize];
        }
        node
    }

    /// Evaluates `rows` (each `n_features` wide, row-major); large batches
    /// on every core.
    pub(crate) fn run(&self, rows: &[f64], n_rows: usize) -> ForestOutput {
        // Asked once: on Linux the answer reads the cgroup files.
        static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let threads = *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if n_rows < PARALLEL_ROWS || threads < 2 {
            return self.run_serial(rows, n_rows);
        }
        let per = n_rows.div_ceil(threads);
        let parts: Vec<ForestOutput> = std::thread::scope(|s| {
            let handles: Vec<_> = rows
                .chunks(per * self.n_features)
                .map(|chunk| s.spawn(move || self.run_serial(chunk, chunk.len() / self.n_features)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let width = parts.first().map_or(self.n_outputs, |p| p.width);
        let mut out = ForestOutput {
            labels: parts
                .first()
                .and_then(|p| p.labels.as_ref())
                .map(|_| Vec::with_capacity(n_rows)),
            scores: Vec::with_capacity(n_rows * width),
            width,
        };
        for part in parts {
            out.scores.extend(part.scores);
            if let (Some(all), Some(mine)) = (out.labels.as_mut(), part.labels) {
                all.extend(mine);
            }
        }
        out
    }

    fn run_serial(&self, rows: &[f64], n_rows: usize) -> ForestOutput {
        let width = match &self.head {
            Head::Classifier { .. } => self.n_outputs,
            Head::Regressor { .. } => self.n_outputs,
        };
        let mut scores = vec![0.0f64; n_rows * width];
        let mut labels = matches!(self.head, Head::Classifier { .. }).then(|| Vec::with_capacity(n_rows));
        let mut row32 = vec![0f32; self.n_features];
        let mut acc = vec![0f64; self.n_outputs];
        let mut has = vec![false; self.n_outputs];
        for r in 0..n_rows {
            for (dst, &src) in row32
                .iter_mut()
                .zip(&rows[r * self.n_features..(r + 1) * self.n_features])
            {
                *dst = src as f32;
            }
            acc.iter_mut().for_each(|a| *a = 0.0);
            has.iter_mut().for_each(|h| *h = false);
            let aggregate = match &self.head {
                Head::Regressor { aggregate } => *aggregate,
                Head::Classifier { .. } => Aggregate::Sum,
            };
            for &root in &self.roots {
                let leaf = self.leaf(root, &row32);
                let leaf_weights = &self.weights[leaf.a as usize..leaf.b as usize];
                match aggregate {
                    Aggregate::Sum | Aggregate::Average => {
                        for &(o, w) in leaf_weights {
                            acc[o as usize] += w;
                            has[o as usize] = true;
                        }
                    }
                    Aggregate::Min | Aggregate::Max => {
                        let mut tree = vec![0f64; self.n_outputs];
                        let mut touched = vec![false; self.n_outputs];
                        for &(o, w) in leaf_weights {
                            tree[o as usize] += w;
                            touched[o as usize] = true;
                        }
                        for o in 0..self.n_outputs {
                            if touched[o] {
                                let better = if aggregate == Aggregate::Min {
                                    tree[o] < acc[o]
                                } else {
                                    tree[o] > acc[o]
                                };
                                if !has[o] || better {
                                    acc[o] = tree[o];
                                }
                                has[o] = true;
                            }
                        }
                    }
                }
            }
            if aggregate == Aggregate::Average {
                let trees = self.roots.len() as f64;
                acc.iter_mut().for_each(|a| *a /= trees);
            }
            let out = &mut scores[r * width..(r + 1) * width];
            match &self.head {
                Head::Regressor { .. } => {
                    for o in 0..self.n_outputs {
                        out[o] = acc[o] + self.base_values.get(o).copied().unwrap_or(0.0);
                    }
                    post_vector(self.post, out);
                }
                Head::Classifier {
                    labels: classes,
                    single_score: true,
                    all_positive,
                } => {
                    let s = acc[0] + self.base_values.first().copied().unwrap_or(0.0);
                    let (label, pair) = if *all_positive {
                        (if s > 0.5 { classes[1] } else { classes[0] }, [1.0 - s, s])
                    } else {
                        let label = if s > 0.0 { classes[1] } else { classes[0] };
                        match self.post {
                            Post::Logistic => (label, [logistic(-s), logistic(s)]),
                            _ => (label, [-s, s]),
                        }
                    };
                    out.copy_from_slice(&pair);
                    if let Some(l) = labels.as_mut() {
                        l.push(label);
                    }
                }
                Head::Classifier { labels: classes, .. } => {
                    for o in 0..self.n_outputs {
                        out[o] = acc[o];
                        if let Some(b) = self.base_values.get(o) {
                            out[o] += b;
                            has[o] = true;
                        }
                    }
                    // The first class of highest score among those with a
                    // score (onnxruntime's rule).
                    let mut best: Option<usize> = None;
                    for o in 0..self.n_outputs {
                        if has[o] && best.is_none_or(|b| out[o] > out[b]) {
                            best = Some(o);
                        }
                    }
                    if let Some(l) = labels.as_mut() {
                        l.push(classes[best.unwrap_or(0)]);
                    }
                    post_vector(self.post, out);
                }
            }
        }
        ForestOutput { labels, scores, width }
    }

    /// Nodes and trees, for the card.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.roots.len(), self.nodes.len())
    }
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn post_vector(post: Post, v: &mut [f64]) {
    match post {
        Post::None => {}
        Post::Logistic => v.iter_mut().for_each(|x| *x = logistic(*x)),
        Post::Softmax => {
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = v.iter().map(|x| (x - max).exp()).sum();
            v.iter_mut().for_each(|x| *x = (*x - max).exp() / sum);
        }
        Post::SoftmaxZero => {
            let max = v
                .iter()
                .copied()
                .filter(|&x| x != 0.0)
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = v.iter().filter(|&&x| x != 0.0).map(|x| (x - max).exp()).sum();
            v.iter_mut().for_each(|x| {
                if *x != 0.0 {
                    *x = (*x - max).exp() / sum;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            ..Default::default()
        }
    }
    fn a_floats(name: &str, v: &[f32]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            floats: v.to_vec(),
            ..Default::default()
        }
    }
    fn a_strings(name: &str, v: &[&str]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    /// One tree: node 0 splits feature 1 at 0.5 into leaves 1 (true) and 2
    /// (false); one score (the second class's), 1 at leaf 1 and 0 at leaf 2.
    fn graph(edit: impl FnOnce(&mut Vec<pb::AttributeProto>)) -> pb::GraphProto {
        let mut attrs = vec![
            a_ints("nodes_treeids", &[0, 0, 0]),
            a_ints("nodes_nodeids", &[0, 1, 2]),
            a_ints("nodes_featureids", &[1, 0, 0]),
            a_floats("nodes_values", &[0.5, 0.0, 0.0]),
            a_strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
            a_ints("nodes_truenodeids", &[1, 0, 0]),
            a_ints("nodes_falsenodeids", &[2, 0, 0]),
            a_ints("nodes_missing_value_tracks_true", &[1, 0, 0]),
            a_ints("class_treeids", &[0, 0]),
            a_ints("class_nodeids", &[1, 2]),
            a_ints("class_ids", &[0, 0]),
            a_floats("class_weights", &[1.0, 0.0]),
            a_ints("classlabels_int64s", &[10, 20]),
        ];
        edit(&mut attrs);
        pb::GraphProto {
            node: vec![pb::NodeProto {
                op_type: "TreeEnsembleClassifier".into(),
                input: vec!["X".into()],
                output: vec!["label".into(), "probabilities".into()],
                attribute: attrs,
                ..Default::default()
            }],
            output: vec![
                pb::ValueInfoProto {
                    name: "label".into(),
                    ..Default::default()
                },
                pb::ValueInfoProto {
                    name: "probabilities".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn set(attrs: &mut [pb::AttributeProto], replacement: pb::AttributeProto) {
        let slot = attrs
            .iter_mut()
            .find(|a| a.name == replacement.name)
            .expect("attribute");
        *slot = replacement;
    }

    #[test]
    fn a_small_tree_runs_with_missing_value_tracks() {
        let forest = lower(&graph(|_| {}), "X", 2).expect("sound").expect("lowered");
        let out = forest.run(&[0.0, 0.2, 0.0, 0.9, 0.0, f64::NAN], 3);
        assert_eq!(out.labels, Some(vec![20, 10, 20]), "NaN goes down the true branch");
        assert_eq!(&out.scores[..2], &[0.0, 1.0]);
    }

    #[test]
    fn the_label_is_the_best_class_among_those_with_a_score() {
        // Three classes; only classes 1 and 2 get weights, both negative:
        // class 0's implicit 0 never wins (onnxruntime's rule).
        let g = graph(|a| {
            set(a, a_ints("class_ids", &[1, 2]));
            set(a, a_floats("class_weights", &[-1.0, -2.0]));
            set(a, a_ints("classlabels_int64s", &[10, 20, 30]));
        });
        let forest = lower(&g, "X", 2).expect("sound").expect("lowered");
        let out = forest.run(&[0.0, 0.2, 0.0, 0.9], 2);
        assert_eq!(out.labels, Some(vec![20, 30]));
    }

    #[test]
    fn hostile_trees_are_refused_with_the_reason() {
        let cases: Vec<(&str, pb::GraphProto)> = vec![
            (
                "not in its tree",
                graph(|a| set(a, a_ints("nodes_truenodeids", &[7, 0, 0]))),
            ),
            (
                "reached twice",
                graph(|a| set(a, a_ints("nodes_falsenodeids", &[0, 0, 0]))),
            ),
            (
                "reached twice",
                graph(|a| set(a, a_ints("nodes_falsenodeids", &[1, 0, 0]))),
            ),
            ("feature 5", graph(|a| set(a, a_ints("nodes_featureids", &[5, 0, 0])))),
            (
                "entries for 3 nodes",
                graph(|a| set(a, a_floats("nodes_values", &[0.5]))),
            ),
            ("does not exist", graph(|a| set(a, a_ints("class_nodeids", &[1, 9])))),
            ("output 4", graph(|a| set(a, a_ints("class_ids", &[4, 0])))),
            (
                "unknown node mode",
                graph(|a| set(a, a_strings("nodes_modes", &["BRANCH_XX", "LEAF", "LEAF"]))),
            ),
            (
                "attached to a branch",
                graph(|a| set(a, a_ints("class_nodeids", &[0, 2]))),
            ),
        ];
        for (words, g) in cases {
            let err = lower(&g, "X", 2).expect_err(words);
            assert!(err.contains(words), "{words}: {err}");
        }
    }

    #[test]
    fn a_stored_forest_is_checked_like_a_graph() {
        let good = lower(&graph(|_| {}), "X", 2).expect("sound").expect("lowered");
        assert!(good.validate(2).is_ok());
        assert!(good.validate(3).is_err(), "another width");
        let mut bad = good.clone();
        bad.nodes[0].a = 99;
        assert!(bad.validate(2).expect_err("out of range").contains("outside"));
        let mut looped = good.clone();
        looped.nodes[0].b = 0;
        assert!(looped.validate(2).expect_err("loop").contains("twice"));
        let mut wide = good.clone();
        wide.nodes[0].feature = 7;
        assert!(wide.validate(2).is_err());
        let mut weight = good.clone();
        weight.weights[0] = (5, 1.0);
        assert!(weight.validate(2).is_err());
        let mut leaf = good.clone();
        leaf.nodes[1].b = 1000;
        assert!(leaf.validate(2).is_err());
        let mut nan = good;
        nan.weights[0].1 = f64::NAN;
        assert!(nan.validate(2).is_err());
    }

    #[test]
    fn a_tree_deeper_than_the_limit_is_refused() {
        let depth = MAX_DEPTH + 2;
        let n = 2 * depth + 1;
        let mut tree = vec![0i64; n];
        let ids: Vec<i64> = (0..n as i64).collect();
        let mut modes = vec!["LEAF"; n];
        let (mut t, mut f) = (vec![0i64; n], vec![0i64; n]);
        // A chain: node 2k branches to leaf 2k+1 and to node 2k+2.
        for k in 0..depth {
            modes[2 * k] = "BRANCH_LEQ";
            t[2 * k] = (2 * k + 1) as i64;
            f[2 * k] = (2 * k + 2) as i64;
        }
        tree.iter_mut().for_each(|x| *x = 0);
        let g = graph(|a| {
            set(a, a_ints("nodes_treeids", &tree));
            set(a, a_ints("nodes_nodeids", &ids));
            set(a, a_ints("nodes_featureids", &vec![0; n]));
            set(a, a_floats("nodes_values", &vec![0.5; n]));
            set(a, a_strings("nodes_modes", &modes));
            set(a, a_ints("nodes_truenodeids", &t));
            set(a, a_ints("nodes_falsenodeids", &f));
            set(a, a_ints("nodes_missing_value_tracks_true", &vec![0; n]));
            set(a, a_ints("class_treeids", &[0]));
            set(a, a_ints("class_nodeids", &[1]));
            set(a, a_ints("class_ids", &[0]));
            set(a, a_floats("class_weights", &[1.0]));
        });
        let err = lower(&g, "X", 2).expect_err("too deep");
        assert!(err.contains("deeper"), "{err}");
    }
}
