//! The walk: rows through the trees, and onnxruntime's rules for labels
//! and scores (the checks are in `build` and `compact`).

use ndarray::ArrayView2;

use super::groups::{TreeGroup, TREE_LANES};
use super::post::{logistic, post_vector};
use super::{
    Aggregate, Bits, Compare, Comparisons, FlatForest, ForestOutput, Head, Post, Precision, Step, PARALLEL_STEPS,
};

/// The most classes or targets a stored forest may have (each row
/// allocates one score per output).
pub const MAX_OUTPUTS: usize = 1 << 16;

/// Walks that go side by side: independent, so the processor overlaps
/// their steps instead of waiting on each comparison in turn.
const LANES: usize = 8;

/// Values a call keeps on the stack rather than in an allocation.
const SMALL: usize = 64;

/// The first `n` of `small` when they fit, else `n` values in `large`
/// (a copy of `small`'s first, the value the buffer starts with).
fn small_or_large<'a, V: Copy>(small: &'a mut [V; SMALL], large: &'a mut Vec<V>, n: usize) -> &'a mut [V] {
    if n <= SMALL {
        &mut small[..n]
    } else {
        large.resize(n, small[0]);
        large
    }
}

/// Trees whose leaves one row finds before adding them.
const BLOCK: usize = 8 * TREE_LANES;

/// A branch's comparison, chosen once per forest so the walk is
/// specialised for it.
trait Holds<T>: Copy {
    fn holds(self, at: usize, x: T, threshold: T) -> bool;
}

#[derive(Clone, Copy)]
struct Le;
#[derive(Clone, Copy)]
struct Lt;
#[derive(Clone, Copy)]
struct Equal;
/// Forests whose branches compare in more than one way.
#[derive(Clone, Copy)]
struct Each<'a>(&'a [Compare]);

impl<T: PartialOrd> Holds<T> for Le {
    #[inline(always)]
    fn holds(self, _: usize, x: T, t: T) -> bool {
        x <= t
    }
}

impl<T: PartialOrd> Holds<T> for Lt {
    #[inline(always)]
    fn holds(self, _: usize, x: T, t: T) -> bool {
        x < t
    }
}

impl<T: PartialOrd> Holds<T> for Equal {
    #[inline(always)]
    fn holds(self, _: usize, x: T, t: T) -> bool {
        x == t
    }
}

impl<T: PartialOrd> Holds<T> for Each<'_> {
    #[inline(always)]
    fn holds(self, at: usize, x: T, t: T) -> bool {
        match self.0.get(at) {
            Some(Compare::Le) | None => x <= t,
            Some(Compare::Lt) => x < t,
            Some(Compare::Eq) => x == t,
        }
    }
}

/// What a walk reads: the nodes, and the bits of the branches that send
/// missing values first, read only when `NAN` (the rows hold a NaN and
/// some branch sends it first; otherwise a NaN fails every comparison and
/// goes second, which is what those branches do).
#[derive(Clone, Copy)]
struct Walk<'a, T, H, const NAN: bool> {
    steps: &'a [Step<T>],
    nan_first: &'a Bits,
    holds: H,
}

impl<T: Precision, H: Holds<T>, const NAN: bool> Walk<'_, T, H, NAN> {
    /// One step from node `at`: to the next node when the comparison holds
    /// (or the value is missing and the node sends missing values first),
    /// else to the second child; a leaf stays. No branch on the data: the
    /// child is selected.
    #[inline(always)]
    fn step(self, at: usize, row: &[T]) -> usize {
        debug_assert!(at < self.steps.len(), "node {at} of {}", self.steps.len());
        // SAFETY: `at` is a node: walks start at roots (checked to be
        // nodes when the forest was built) and a step goes to `at + 1` (a
        // branch's first child, which pre-order puts right after it),
        // `second` (checked to be a node) or stays (a leaf). This is the
        // innermost loop of every tree model; the bounds checks were a
        // third of its instructions.
        let node = unsafe { self.steps.get_unchecked(at) };
        // The feature and the second child in one load, one of a step's
        // three (with positions as `usize`, the 300-tree model's row went
        // from 1.94 to 1.73 µs).
        // SAFETY: the two fields are side by side in the `repr(C)` node
        // (checked at compile time beside `Step`), so the eight bytes are
        // the node's.
        let link = unsafe { std::ptr::read_unaligned((&raw const node.feature).cast::<u64>()) };
        let (low, high) = (link as u32 as usize, (link >> 32) as usize);
        let (feature, second) = if cfg!(target_endian = "little") {
            (low, high)
        } else {
            (high, low)
        };
        debug_assert!(feature < row.len(), "feature {feature} of {}", row.len());
        // SAFETY: rows are `n_features` wide (sliced so by every caller),
        // and a branch's feature was checked below `n_features` when the
        // forest was built; a leaf reads feature 0, and only a forest with
        // at least one feature has a tree deeper than its root, so a leaf
        // is stepped on only when feature 0 exists.
        let x = unsafe { *row.get_unchecked(feature) };
        let mut first = self.holds.holds(at, x, node.threshold);
        if NAN {
            first |= x.is_nan() & self.nan_first.get(at);
        }
        std::hint::select_unpredictable(first, at + 1, second)
    }

    /// [`LANES`] walks side by side for `depth` steps: walk `k` from
    /// `at[k]` over `rows[k]`.
    #[inline(always)]
    fn lanes(self, depth: u32, roots: [u32; LANES], rows: [&[T]; LANES]) -> [u32; LANES] {
        let mut at = roots.map(|r| r as usize);
        for _ in 0..depth {
            for k in 0..LANES {
                at[k] = self.step(at[k], rows[k]);
            }
        }
        at.map(|a| a as u32)
    }

    /// [`LANES`] walks over the same row side by side for `depth` steps
    /// (one row pointer instead of [`LANES`] keeps the walks in registers).
    #[inline(always)]
    fn lanes_one_row<const N: usize>(self, depth: u32, roots: [u32; N], row: &[T]) -> [u32; N] {
        let mut at = roots.map(|r| r as usize);
        for _ in 0..depth {
            for a in &mut at {
                *a = self.step(*a, row);
            }
        }
        at.map(|a| a as u32)
    }

    /// The leaves of a group's trees, walked side by side: as many walks
    /// as its trees round up to (1, 4, 8 or [`TREE_LANES`]).
    #[inline(always)]
    fn group(self, g: &TreeGroup, row: &[T]) -> [u32; TREE_LANES] {
        fn narrow<const N: usize>(w: impl FnOnce([u32; N]) -> [u32; N], roots: [u32; TREE_LANES]) -> [u32; TREE_LANES] {
            let mut out = roots;
            out[..N].copy_from_slice(&w(std::array::from_fn(|k| roots[k])));
            out
        }
        match g.trees {
            1 => narrow::<1>(|r| self.lanes_one_row(g.depth, r, row), g.roots),
            2..=4 => narrow::<4>(|r| self.lanes_one_row(g.depth, r, row), g.roots),
            5..=8 => narrow::<8>(|r| self.lanes_one_row(g.depth, r, row), g.roots),
            _ => self.lanes_one_row(g.depth, g.roots, row),
        }
    }

    /// One walk of `depth` steps.
    #[inline(always)]
    fn one(self, depth: u32, root: u32, row: &[T]) -> u32 {
        let mut at = root as usize;
        for _ in 0..depth {
            at = self.step(at, row);
        }
        at as u32
    }
}

impl<T: Precision> FlatForest<T> {
    /// The weights of leaf `leaf`.
    #[inline(always)]
    fn leaf_weights(&self, leaf: u32) -> &[(u32, f64)] {
        let i = leaf as usize;
        let (start, end) = (self.leaf_start[i] as usize, self.leaf_start[i + 1] as usize);
        &self.weights[start..end]
    }

    /// Adds a leaf's weights to a row's sums.
    #[inline(always)]
    fn add(&self, leaf: u32, acc: &mut [f64], has: &mut [bool]) {
        for &(o, w) in self.leaf_weights(leaf) {
            acc[o as usize] += w;
            has[o as usize] = true;
        }
    }

    fn walker<H: Holds<T>, const NAN: bool>(&self, holds: H) -> Walk<'_, T, H, NAN> {
        Walk {
            steps: &self.steps,
            nan_first: &self.nan_first,
            holds,
        }
    }

    /// Whether `rows` need the walk that reads missing-value bits.
    fn needs_nan_walk(&self, rows: &[T]) -> bool {
        self.sends_nan_first && rows.iter().any(|x| x.is_nan())
    }

    /// Sums every tree's leaf weights per row and output, trees in their
    /// order for every row (the sums are the row-by-row sums).
    fn sum_leaves<H: Holds<T>>(&self, holds: H, rows: &[T], n_rows: usize, acc: &mut [f64], has: &mut [bool]) {
        let (nf, no) = (self.n_features, self.n_outputs);
        let row = |r: usize| &rows[r * nf..(r + 1) * nf];
        if n_rows < LANES || self.batches_row_by_row() {
            // Each row walks the trees, TREE_LANES trees side by side.
            for r in 0..n_rows {
                let (acc, has) = (&mut acc[r * no..(r + 1) * no], &mut has[r * no..(r + 1) * no]);
                let x = row(r);
                if self.needs_nan_walk(x) {
                    self.trees_side_by_side(self.walker::<H, true>(holds), x, acc, has);
                } else {
                    self.trees_side_by_side(self.walker::<H, false>(holds), x, acc, has);
                }
            }
            return;
        }
        // A batch: tree by tree (one tree's nodes stay in the cache while
        // every row walks it), LANES rows side by side.
        let groups = n_rows / LANES;
        let group_nan: Vec<bool> = (0..groups.max(1))
            .map(|g| self.needs_nan_walk(&rows[g * LANES * nf..((g + 1) * LANES * nf).min(rows.len())]))
            .collect();
        let (plain, nan) = (self.walker::<H, false>(holds), self.walker::<H, true>(holds));
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            for (g, &with_nan) in group_nan.iter().enumerate().take(groups) {
                let first = g * LANES;
                let lanes: [&[T]; LANES] = std::array::from_fn(|k| row(first + k));
                let leaves = if with_nan {
                    nan.lanes(depth, [root; LANES], lanes)
                } else {
                    plain.lanes(depth, [root; LANES], lanes)
                };
                for (k, leaf) in leaves.into_iter().enumerate() {
                    let r = first + k;
                    self.add(leaf, &mut acc[r * no..(r + 1) * no], &mut has[r * no..(r + 1) * no]);
                }
            }
            for r in groups * LANES..n_rows {
                let leaf = nan.one(depth, root, row(r));
                self.add(leaf, &mut acc[r * no..(r + 1) * no], &mut has[r * no..(r + 1) * no]);
            }
        }
    }

    /// One row through every tree, [`TREE_LANES`] trees side by side (the last
    /// group padded with its own first tree, whose extra leaves are not
    /// added). The leaves of up to [`BLOCK`] trees are found before any is
    /// added, so the walks of one group do not wait on the sums of the last.
    #[inline(always)]
    fn trees_side_by_side<H: Holds<T>, const NAN: bool>(
        &self,
        walk: Walk<'_, T, H, NAN>,
        x: &[T],
        acc: &mut [f64],
        has: &mut [bool],
    ) {
        if !self.leaf_value.is_empty() {
            // One weight per leaf, read where the leaf is: each group's
            // leaves are added as soon as they are found, in the trees'
            // order (the order of every other path), the sum in a register.
            let mut sum = acc[0];
            for group in &self.groups {
                let leaves = walk.group(group, x);
                for &leaf in &leaves[..group.trees as usize] {
                    sum += self.leaf_value[leaf as usize];
                }
            }
            (acc[0], has[0]) = (sum, true);
            return;
        }
        let mut leaves = [0u32; BLOCK];
        for groups in self.groups.chunks(BLOCK / TREE_LANES) {
            let mut found = 0;
            for group in groups {
                let out = walk.group(group, x);
                leaves[found..found + TREE_LANES].copy_from_slice(&out);
                found += group.trees as usize;
            }
            let leaves = &leaves[..found];
            if self.one_output {
                // One output: its sum stays in a register instead of
                // going through memory for every tree (same order, so the
                // same sum).
                let (mut sum, mut any) = (acc[0], has[0]);
                for &leaf in leaves {
                    for &(_, w) in self.leaf_weights(leaf) {
                        sum += w;
                        any = true;
                    }
                }
                (acc[0], has[0]) = (sum, any);
            } else {
                for &leaf in leaves {
                    self.add(leaf, acc, has);
                }
            }
        }
    }

    /// Every row's aggregate of its leaves' weights per output, and which
    /// outputs any leaf weighted.
    fn accumulate<H: Holds<T>>(&self, holds: H, rows: &[T], n_rows: usize, acc: &mut [f64], has: &mut [bool]) {
        let aggregate = self.head.aggregate();
        if matches!(aggregate, Aggregate::Sum | Aggregate::Average) {
            return self.sum_leaves(holds, rows, n_rows, acc, has);
        }
        let (nf, no) = (self.n_features, self.n_outputs);
        let walk = self.walker::<H, true>(holds);
        for r in 0..n_rows {
            let (acc, has) = (&mut acc[r * no..(r + 1) * no], &mut has[r * no..(r + 1) * no]);
            let row = &rows[r * nf..(r + 1) * nf];
            for (&root, &depth) in self.roots.iter().zip(&self.depths) {
                // Weight by weight, as onnxruntime takes the minimum or
                // maximum (a leaf weighting one output twice counts twice).
                for &(o, w) in self.leaf_weights(walk.one(depth, root, row)) {
                    let o = o as usize;
                    let better = if aggregate == Aggregate::Min {
                        w < acc[o]
                    } else {
                        w > acc[o]
                    };
                    if !has[o] || better {
                        acc[o] = w;
                    }
                    has[o] = true;
                }
            }
        }
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
        use rayon::prelude::*;
        // Small batches (one row above all) are walked here before rayon
        // is asked anything: its first question starts its pool.
        if !self.worth_splitting(n_rows) || self.n_features == 0 {
            return self.run_serial(rows, n_rows);
        }
        let threads = rayon::current_num_threads();
        if threads < 2 {
            return self.run_serial(rows, n_rows);
        }
        // One chunk per thread of rayon's pool, whose threads are started
        // once: a thread started and joined per batch cost 64 to 83 µs.
        let per = n_rows.div_ceil(threads);
        let parts: Vec<ForestOutput> = rows
            .par_chunks(per * self.n_features)
            .map(|chunk| self.run_serial(chunk, chunk.len() / self.n_features))
            .collect();
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

    /// Whether a batch is enough work to split over threads (checked
    /// without summing the depths for small batches, one row above all).
    pub(super) fn worth_splitting(&self, n_rows: usize) -> bool {
        n_rows >= 2 * LANES
            && n_rows.saturating_mul(self.depths.iter().map(|&d| d as usize).sum::<usize>()) >= PARALLEL_STEPS
    }

    pub(super) fn run_serial(&self, rows: &[f64], n_rows: usize) -> ForestOutput {
        let width = self.n_outputs;
        let no = self.n_outputs;
        let mut scores = vec![0.0f64; n_rows * width];
        let mut labels = matches!(self.head, Head::Classifier { .. }).then(|| Vec::with_capacity(n_rows));
        let aggregate = self.head.aggregate();
        // The rows in the trees' precision, converted once for the batch,
        // and the sums: on the stack for a row or a few (a call's fixed
        // cost is most of a small forest's time for one row).
        let (mut small_rows, mut large_rows) = ([T::NAN; SMALL], Vec::new());
        let buf = small_or_large(
            &mut small_rows,
            &mut large_rows,
            if T::CONVERTS { rows.len() } else { 0 },
        );
        let rows = T::row(rows, buf);
        let (mut small_acc, mut large_acc) = ([0f64; SMALL], Vec::new());
        let acc = small_or_large(&mut small_acc, &mut large_acc, n_rows * no);
        let (mut small_has, mut large_has) = ([false; SMALL], Vec::new());
        let has = small_or_large(&mut small_has, &mut large_has, n_rows * no);
        match &self.comparisons {
            Comparisons::All(Compare::Le) => self.accumulate(Le, rows, n_rows, acc, has),
            Comparisons::All(Compare::Lt) => self.accumulate(Lt, rows, n_rows, acc, has),
            Comparisons::All(Compare::Eq) => self.accumulate(Equal, rows, n_rows, acc, has),
            Comparisons::PerNode(c) => self.accumulate(Each(c), rows, n_rows, acc, has),
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
}
