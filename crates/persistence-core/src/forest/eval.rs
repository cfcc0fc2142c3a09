//! The walk: rows through the trees, onnxruntime's finishing rules, and
//! the checks of a forest read from a bundle.

use ndarray::{Array1, Array2, ArrayView2};

use super::{Aggregate, FlatForest, ForestOutput, Head, Mode, Node, Post, Precision, MAX_DEPTH, PARALLEL_ROWS};
use crate::model::ProbeValue;

impl ForestOutput {
    /// One prediction per row: the label, or the first target's value.
    pub(crate) fn predictions(self) -> Array1<ProbeValue> {
        match self.labels {
            Some(labels) => labels.into_iter().map(ProbeValue::Label).collect(),
            None => self
                .scores
                .chunks(self.width.max(1))
                .map(|r| ProbeValue::Value(r[0]))
                .collect(),
        }
    }

    /// Predictions and scores of the same run.
    pub(crate) fn both(self, n_rows: usize) -> (Array1<ProbeValue>, Option<Array2<f64>>) {
        let predictions = match &self.labels {
            Some(labels) => labels.iter().map(|&l| ProbeValue::Label(l)).collect(),
            None => self
                .scores
                .chunks(self.width.max(1))
                .map(|r| ProbeValue::Value(r[0]))
                .collect(),
        };
        (predictions, self.into_scores(n_rows))
    }

    /// The scores as `[rows, classes or targets]`.
    pub(crate) fn into_scores(self, n_rows: usize) -> Option<Array2<f64>> {
        Array2::from_shape_vec((n_rows, self.width), self.scores).ok()
    }
}

/// The most classes or targets a stored forest may have (each row
/// allocates one score per output).
pub const MAX_OUTPUTS: usize = 1 << 16;

impl<T: Precision> FlatForest<T> {
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
        if self.nodes.len() > u32::MAX as usize || self.weights.len() > u32::MAX as usize {
            return Err("more nodes or weights than a u32 indexes".into());
        }
        if self.nodes.iter().any(|n| n.mode != Mode::Leaf && n.threshold.is_nan()) {
            return Err("a branch compares with NaN".into());
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
        if let Some(&root) = self.roots.iter().find(|&&r| r as usize >= n) {
            return Err(format!("root {root} is not a node"));
        }
        if self.children_follow_parents() {
            self.check_trees_in_order()
        } else {
            self.check_trees_by_walking()
        }
    }

    /// Whether every branch's children come after it in the node array (as
    /// the forests built and lowered here are laid out): then one pass in
    /// order checks the trees.
    fn children_follow_parents(&self) -> bool {
        self.nodes
            .iter()
            .enumerate()
            .all(|(i, n)| n.mode == Mode::Leaf || (n.a as usize > i && n.b as usize > i))
    }

    /// The trees' check when children follow parents: no loop is possible,
    /// so a node reached twice is one with two parents (or a root that is
    /// also a child), and depths are known parent before child.
    fn check_trees_in_order(&self) -> Result<(), String> {
        let n = self.nodes.len();
        let mut parents = vec![0_u8; n];
        let mut depth = vec![0_u32; n];
        let twice = |at: u32| format!("node {at} is reached twice: the tree has a loop or a shared node");
        for &root in &self.roots {
            if std::mem::replace(&mut parents[root as usize], 1) != 0 {
                return Err(twice(root));
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.mode == Mode::Leaf {
                continue;
            }
            let d = depth[i] + 1;
            if d as usize > MAX_DEPTH {
                return Err(format!("a tree deeper than {MAX_DEPTH}"));
            }
            for child in [node.a, node.b] {
                if std::mem::replace(&mut parents[child as usize], 1) != 0 {
                    return Err(twice(child));
                }
                depth[child as usize] = d;
            }
        }
        Ok(())
    }

    /// The trees' check for any layout: a walk from every root.
    fn check_trees_by_walking(&self) -> Result<(), String> {
        let mut seen = vec![false; self.nodes.len()];
        for &root in &self.roots {
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
    fn leaf(&self, root: u32, row: &[T]) -> Node<T> {
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

    /// Evaluates the rows of a matrix, in place when it is in standard
    /// (row-major, contiguous) layout.
    pub(crate) fn run_view(&self, rows: ArrayView2<'_, f64>) -> ForestOutput {
        match rows.as_slice() {
            Some(data) => self.run(data, rows.nrows()),
            None => self.run(&rows.iter().copied().collect::<Vec<f64>>(), rows.nrows()),
        }
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
        // The first chunk runs on this thread: one spawn fewer per batch.
        let parts: Vec<ForestOutput> = std::thread::scope(|s| {
            let mut chunks = rows.chunks(per * self.n_features);
            let first = chunks.next().unwrap_or_default();
            let handles: Vec<_> = chunks
                .map(|chunk| s.spawn(move || self.run_serial(chunk, chunk.len() / self.n_features)))
                .collect();
            let mut parts = vec![self.run_serial(first, first.len() / self.n_features)];
            parts.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            );
            parts
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
        let width = self.n_outputs;
        let no = self.n_outputs;
        let mut scores = vec![0.0f64; n_rows * width];
        let mut labels = matches!(self.head, Head::Classifier { .. }).then(|| Vec::with_capacity(n_rows));
        let aggregate = match &self.head {
            Head::Regressor { aggregate } | Head::Classifier { aggregate, .. } => *aggregate,
        };
        // The rows in the trees' precision, converted once for the batch.
        let mut buf: Vec<T> = bytemuck::zeroed_vec(if T::CONVERTS { rows.len() } else { 0 });
        let rows = T::row(rows, &mut buf);
        let nf = self.n_features;
        let mut acc = vec![0f64; n_rows * no];
        let mut has = vec![false; n_rows * no];
        match aggregate {
            // Tree by tree over the whole batch: one tree's nodes stay in
            // the cache while every row walks it. Each row still adds the
            // trees in their order, so the sums are the row-by-row sums.
            Aggregate::Sum | Aggregate::Average => {
                for &root in &self.roots {
                    for r in 0..n_rows {
                        let leaf = self.leaf(root, &rows[r * nf..(r + 1) * nf]);
                        for &(o, w) in &self.weights[leaf.a as usize..leaf.b as usize] {
                            acc[r * no + o as usize] += w;
                            has[r * no + o as usize] = true;
                        }
                    }
                }
            }
            Aggregate::Min | Aggregate::Max => {
                let mut tree = vec![0f64; no];
                let mut touched = vec![false; no];
                for r in 0..n_rows {
                    let (acc, has) = (&mut acc[r * no..(r + 1) * no], &mut has[r * no..(r + 1) * no]);
                    for &root in &self.roots {
                        let leaf = self.leaf(root, &rows[r * nf..(r + 1) * nf]);
                        tree.iter_mut().for_each(|t| *t = 0.0);
                        touched.iter_mut().for_each(|t| *t = false);
                        for &(o, w) in &self.weights[leaf.a as usize..leaf.b as usize] {
                            tree[o as usize] += w;
                            touched[o as usize] = true;
                        }
                        for o in 0..no {
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
        }
        for r in 0..n_rows {
            let (acc, has) = (&mut acc[r * no..(r + 1) * no], &mut has[r * no..(r + 1) * no]);
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
                    ..
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
