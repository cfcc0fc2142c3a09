//! Parts into the walk form, with every check a hostile graph or file
//! needs: indices in range, no loop, trees within [`MAX_DEPTH`] (a node
//! that two branches share is laid out under each, within a bound),
//! features within the input, outputs and weights sound.

use super::eval::MAX_OUTPUTS;
use super::{Bits, Compare, Comparisons, FlatForest, ForestParts, Head, Mode, Node, Precision, Step, MAX_DEPTH};

/// The widest input a forest may read (features are `u32`).
pub(super) const MAX_FEATURES: usize = u32::MAX as usize;

/// The walk form of one branch: its comparison, whether its children swap
/// (`>=` is `<` with them swapped, `>` is `<=`, `!=` is `==`), and where a
/// missing value goes.
fn normalise(mode: Mode, missing_true: bool) -> (Compare, bool, bool) {
    let (compare, swap) = match mode {
        Mode::Leq | Mode::Leaf => (Compare::Le, false),
        Mode::Lt => (Compare::Lt, false),
        Mode::Eq => (Compare::Eq, false),
        Mode::Gte => (Compare::Lt, true),
        Mode::Gt => (Compare::Le, true),
        Mode::Neq => (Compare::Eq, true),
    };
    // NaN fails every comparison but `!=`: it goes to the true child when
    // the node tracks missing values there, or compares with `!=`.
    let nan_to_true = missing_true || mode == Mode::Neq;
    (compare, swap, nan_to_true != swap)
}

impl<T: Precision> FlatForest<T> {
    /// Checks the parts and lays them out for the walk.
    ///
    /// # Errors
    ///
    /// A sentence saying what is wrong, for a forest that is not one: an
    /// index out of range, a loop, nodes shared so much that the trees laid
    /// out whole would pass a bound, a tree deeper than [`MAX_DEPTH`], a
    /// feature past the input, an output past the outputs, a weight or base
    /// value that is not finite.
    pub(crate) fn new(parts: ForestParts<T>) -> Result<Self, String> {
        let ForestParts {
            nodes,
            roots,
            weights,
            n_features,
            n_outputs,
            base_values,
            post,
            head,
        } = parts;
        check_head(&head, n_outputs, &base_values)?;
        if n_features > MAX_FEATURES {
            return Err(format!("{n_features} features; a forest reads at most {MAX_FEATURES}"));
        }
        if roots.is_empty() {
            return Err("no trees".into());
        }
        if nodes.len() > u32::MAX as usize || weights.len() > u32::MAX as usize {
            return Err("more nodes or weights than a u32 indexes".into());
        }
        check_weights(&weights, n_outputs)?;
        let n = nodes.len();
        for (i, node) in nodes.iter().enumerate() {
            let ok = if node.mode == Mode::Leaf {
                node.a <= node.b && (node.b as usize) <= weights.len()
            } else {
                (node.feature as usize) < n_features && (node.a as usize) < n && (node.b as usize) < n
            };
            if !ok {
                return Err(format!("node {i} points outside the forest"));
            }
            if node.mode != Mode::Leaf && node.threshold.is_nan() {
                return Err("a branch compares with NaN".into());
            }
        }
        if let Some(&root) = roots.iter().find(|&&r| r as usize >= n) {
            return Err(format!("root {root} is not a node"));
        }

        if n > MAX_NODES || weights.len() > MAX_NODES {
            return Err(format!(
                "{n} nodes and {} leaf weights; a forest has at most {MAX_NODES} of each",
                weights.len()
            ));
        }
        // Every tree in pre-order, the child a branch goes to when its
        // (normalised) comparison holds first.
        let mut steps = Vec::with_capacity(n);
        let mut compares = Vec::with_capacity(n);
        let mut nan_first_at = Vec::new();
        let mut leaf_start = Vec::with_capacity(n + 1);
        let mut ordered = Vec::with_capacity(weights.len());
        let mut new_roots = Vec::with_capacity(roots.len());
        let mut depths = Vec::with_capacity(roots.len());
        check_no_loop(&nodes, &roots)?;
        // A node that two branches share (onnxmltools writes LightGBM's
        // categorical splits so) is laid out under each: the walk form is
        // a tree. Bounded, so that a file of nested shared nodes cannot
        // make it take memory without bound.
        let (most_steps, most_weights) = (
            n.clamp(MAX_UNFOLDED, MAX_NODES),
            weights.len().clamp(MAX_UNFOLDED, MAX_NODES),
        );
        // (node, the branch whose second child it is, its depth)
        let mut stack: Vec<(u32, Option<usize>, usize)> = Vec::new();
        for &root in &roots {
            new_roots.push(steps.len() as u32);
            let mut deepest = 0;
            stack.push((root, None, 0));
            while let Some((at, parent, depth)) = stack.pop() {
                if depth > MAX_DEPTH {
                    return Err(format!("a tree deeper than {MAX_DEPTH}"));
                }
                let here = steps.len();
                if here >= most_steps || ordered.len() > most_weights {
                    return Err(format!(
                        "the trees share nodes so much that laying each tree out whole would take more than \
                         {most_steps} nodes or {most_weights} leaf weights"
                    ));
                }
                if let Some(p) = parent {
                    let slot: &mut Step<T> = &mut steps[p];
                    slot.second = here as u32;
                }
                let node: Node<T> = nodes[at as usize];
                leaf_start.push(ordered.len() as u32);
                if node.mode == Mode::Leaf {
                    deepest = deepest.max(depth);
                    ordered.extend_from_slice(&weights[node.a as usize..node.b as usize]);
                    steps.push(Step {
                        threshold: T::NAN,
                        feature: 0,
                        second: here as u32,
                    });
                    compares.push(Compare::Le);
                    continue;
                }
                let (compare, swap, nan_first) = normalise(node.mode, node.missing_true);
                let (first, second) = if swap { (node.b, node.a) } else { (node.a, node.b) };
                steps.push(Step {
                    threshold: node.threshold,
                    feature: node.feature,
                    second: 0,
                });
                compares.push(compare);
                if nan_first {
                    nan_first_at.push(here);
                }
                stack.push((second, Some(here), depth + 1));
                stack.push((first, None, depth + 1));
            }
            depths.push(deepest as u32);
        }
        if ordered.len() > u32::MAX as usize {
            return Err("more leaf weights than a u32 indexes".into());
        }
        leaf_start.push(ordered.len() as u32);
        let mut nan_bits = Bits::new(steps.len());
        for i in nan_first_at {
            nan_bits.set(i);
        }
        Ok(FlatForest {
            groups: super::groups::tree_groups(&new_roots, &depths),
            leaf_value: leaf_values(&steps, &leaf_start, &ordered),
            comparisons: comparisons(&steps, compares),
            steps,
            sends_nan_first: nan_bits.any(),
            nan_first: nan_bits,
            leaf_start,
            one_output: ordered.iter().all(|w| w.0 == 0),
            weights: ordered,
            roots: new_roots,
            depths,
            n_features,
            n_outputs,
            base_values,
            post,
            head,
            refused: None,
        })
    }

    /// A forest read from a file whose parts are not a forest: it walks no
    /// tree, and [`validate`](Self::validate) gives `reason`.
    pub(crate) fn refused(reason: String, n_features: usize) -> Self {
        FlatForest {
            steps: Vec::new(),
            nan_first: Bits::default(),
            sends_nan_first: false,
            comparisons: Comparisons::All(Compare::Le),
            leaf_start: vec![0],
            weights: Vec::new(),
            one_output: true,
            leaf_value: Vec::new(),
            roots: Vec::new(),
            depths: Vec::new(),
            groups: Vec::new(),
            n_features,
            n_outputs: 1,
            base_values: Vec::new(),
            post: super::Post::None,
            head: Head::Regressor {
                aggregate: super::Aggregate::Sum,
            },
            refused: Some(reason),
        }
    }

    /// The forest's parts, nodes in the walk's order (building them again
    /// gives this forest).
    #[cfg(test)]
    pub(crate) fn parts(&self) -> ForestParts<T> {
        let nodes = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.second as usize == i {
                    Node {
                        mode: Mode::Leaf,
                        missing_true: false,
                        feature: 0,
                        threshold: s.threshold,
                        a: self.leaf_start[i],
                        b: self.leaf_start[i + 1],
                    }
                } else {
                    Node {
                        mode: match self.compare(i) {
                            Compare::Le => Mode::Leq,
                            Compare::Lt => Mode::Lt,
                            Compare::Eq => Mode::Eq,
                        },
                        missing_true: self.nan_first.get(i),
                        feature: s.feature,
                        threshold: s.threshold,
                        a: i as u32 + 1,
                        b: s.second,
                    }
                }
            })
            .collect();
        ForestParts {
            nodes,
            roots: self.roots.clone(),
            weights: self.weights.clone(),
            n_features: self.n_features,
            n_outputs: self.n_outputs,
            base_values: self.base_values.clone(),
            post: self.post,
            head: self.head.clone(),
        }
    }

    /// The comparison of node `i`.
    pub(crate) fn compare(&self, i: usize) -> Compare {
        match &self.comparisons {
            Comparisons::All(c) => *c,
            Comparisons::PerNode(c) => c[i],
        }
    }

    /// Checks the forest reads `n_features` features, as the card says, and
    /// was not [refused](Self::refused).
    pub(crate) fn validate(&self, n_features: usize) -> Result<(), String> {
        if let Some(reason) = &self.refused {
            return Err(reason.clone());
        }
        if self.n_features != n_features {
            return Err(format!(
                "the forest reads {} features, the card says {n_features}",
                self.n_features
            ));
        }
        Ok(())
    }

    /// Trees and nodes, for the card.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.roots.len(), self.steps.len())
    }

    /// The width of the rows it walks.
    #[cfg(feature = "onnx")]
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// The scores it gives per row (classes or targets).
    #[cfg(feature = "onnx")]
    pub(crate) fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// What the forest computes.
    #[cfg(feature = "linfa")]
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }

    /// The classes' names, when the labels are indices into them (see
    /// [`Head::Classifier`]).
    #[cfg(feature = "onnx")]
    pub(crate) fn class_names(&self) -> Option<&[String]> {
        match &self.head {
            Head::Classifier { names, .. } if !names.is_empty() => Some(names),
            _ => None,
        }
    }
}

/// The most nodes (and leaf weights) the walk form of a forest whose trees
/// share nodes may have beyond those of its parts: about 100 MB.
const MAX_UNFOLDED: usize = 1 << 22;

/// The most nodes, and the most leaf weights, of any forest: 16,777,216
/// each (a 10,000-tree LightGBM model of 255 leaves a tree has 5.1 million
/// nodes). The walk form takes at most 33 bytes a node and 16 a weight,
/// so about 830 MB at most, whatever a file claims: lowering a graph and
/// reading a stored forest both refuse more, before they allocate for it.
pub const MAX_NODES: usize = 1 << 24;

/// The most bytes a forest load allocates at its peak for each byte of its
/// (inflated) payload, the payload itself aside. The stored form amplifies
/// most for trees that are one leaf sharing one weight: a leaf bit and a
/// one-byte output, about 1.1 bytes, become a 12-byte step, a comparison,
/// a 4-byte weight start, a 16-byte weight and a tree's root, depth and
/// group in the walk form, besides the decoded columns while it is built.
/// Measured at 53x on such a crafted forest of 400,000 trees
/// (`tests/bundle_memory.rs`, which holds loads to this bound); a trained
/// forest's nodes carry their own thresholds and weights, and amplify far
/// less. With [`MAX_NODES`], no load of a forest exceeds about 1.1 GB.
pub const WALK_BYTES_PER_STORED_BYTE: usize = 64;

/// Refuses a forest in which a node leads back to itself (a walk would
/// never reach a leaf). Nodes are in range.
fn check_no_loop<T>(nodes: &[Node<T>], roots: &[u32]) -> Result<(), String> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    // (node, whether its children were pushed)
    let mut stack: Vec<(u32, bool)> = Vec::new();
    for &root in roots {
        stack.push((root, false));
        while let Some((at, expanded)) = stack.pop() {
            let i = at as usize;
            if expanded {
                state[i] = DONE;
                continue;
            }
            match state[i] {
                DONE => continue,
                ON_PATH => return Err(format!("node {at} leads back to itself: the tree has a loop")),
                _ => {}
            }
            state[i] = ON_PATH;
            stack.push((at, true));
            let node = &nodes[i];
            if node.mode != Mode::Leaf {
                for child in [node.a, node.b] {
                    match state[child as usize] {
                        ON_PATH => return Err(format!("node {child} leads back to itself: the tree has a loop")),
                        NEW => stack.push((child, false)),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every node's weight when each leaf has exactly one, for output 0 (0
/// for a branch); else nothing.
pub(super) fn leaf_values<T>(steps: &[Step<T>], leaf_start: &[u32], weights: &[(u32, f64)]) -> Vec<f64> {
    let one = |i: usize| match weights.get(leaf_start[i] as usize..leaf_start[i + 1] as usize) {
        Some([(0, w)]) => Some(*w),
        _ => None,
    };
    let values: Option<Vec<f64>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| if s.second as usize == i { one(i) } else { Some(0.0) })
        .collect();
    values.unwrap_or_default()
}

/// One comparison for the whole forest when its branches agree.
pub(super) fn comparisons<T>(steps: &[Step<T>], compares: Vec<Compare>) -> Comparisons {
    let mut branches = compares
        .iter()
        .zip(steps)
        .enumerate()
        .filter(|(i, (_, s))| s.second as usize != *i)
        .map(|(_, (c, _))| *c);
    let first = branches.next().unwrap_or(Compare::Le);
    if branches.all(|c| c == first) {
        Comparisons::All(first)
    } else {
        Comparisons::PerNode(compares)
    }
}

pub(super) fn check_head(head: &Head, n_outputs: usize, base_values: &[f64]) -> Result<(), String> {
    if n_outputs == 0 || n_outputs > MAX_OUTPUTS {
        return Err(format!("{n_outputs} outputs"));
    }
    if let Head::Classifier {
        labels,
        single_score,
        names,
        ..
    } = head
    {
        if labels.len() != n_outputs || (*single_score && labels.len() != 2) {
            return Err(format!("{} labels for {n_outputs} classes", labels.len()));
        }
        if !names.is_empty() && (names.len() != labels.len() || labels.iter().zip(0..).any(|(&l, i)| l != i)) {
            return Err(format!(
                "{} class names for the labels {labels:?}: names go with the labels 0 to n - 1",
                names.len()
            ));
        }
    }
    if base_values.len() > n_outputs || base_values.iter().any(|b| !b.is_finite()) {
        return Err("base values do not match the outputs".into());
    }
    Ok(())
}

pub(super) fn check_weights(weights: &[(u32, f64)], n_outputs: usize) -> Result<(), String> {
    match weights.iter().find(|(o, w)| *o as usize >= n_outputs || !w.is_finite()) {
        Some((o, w)) => Err(format!("a leaf weight {w} for output {o} of {n_outputs}")),
        None => Ok(()),
    }
}
