//! The groups of trees one row walks side by side, laid out when the
//! forest is built: a call does not chunk the roots and find the deepest
//! tree of each chunk again (that was about 15% of a one-row call's
//! instructions on a 300-tree model).

/// Trees one row walks side by side: more walks than registers, as the
/// spills cost less than the steps they overlap. Measured on the 300-tree
/// XGBoost model (best of 60 runs of 2,000 calls, builds run in turns,
/// the step reading feature and second child in one load): 10 lanes
/// 1,919 ns, 12 lanes 1,749 ns, 15 lanes 1,679 ns, 20 lanes 1,718 ns; the
/// 30-tree forest 273 to 282 ns at 15 lanes.
/// A group with fewer trees (the last, or a forest's only one) walks 1, 4
/// or 8 of them instead, so a lone decision tree is one walk.
pub(super) const TREE_LANES: usize = 15;

/// [`TREE_LANES`] trees one row walks side by side, laid out when the
/// forest is built (a call does not chunk the roots and find the deepest
/// tree of each chunk again).
#[derive(Debug, Clone)]
pub(super) struct TreeGroup {
    /// The trees' roots; the last group's missing trees are its first
    /// tree again (walked, not added).
    pub(super) roots: [u32; TREE_LANES],
    /// Steps to the deepest leaf of any.
    pub(super) depth: u32,
    /// How many of `roots` are trees of their own.
    pub(super) trees: u32,
}

/// The trees in groups of [`TREE_LANES`], in order.
pub(super) fn tree_groups(roots: &[u32], depths: &[u32]) -> Vec<TreeGroup> {
    roots
        .chunks(TREE_LANES)
        .zip(depths.chunks(TREE_LANES))
        .map(|(roots, depths)| TreeGroup {
            roots: std::array::from_fn(|k| roots.get(k).copied().unwrap_or(roots[0])),
            depth: depths.iter().copied().max().unwrap_or(0),
            trees: roots.len() as u32,
        })
        .collect()
}

/// A forest's nodes up to this size are walked row by row in a batch:
/// measured faster up to 3.8 MB of nodes (a 200-tree random forest grown
/// full), with the processor's 32 MB L3 cache; past that a tree's nodes
/// are kept in the cache while every row walks it.
const ROW_BY_ROW_BYTES: usize = 8 << 20;

impl<T> super::FlatForest<T> {
    /// Whether a batch walks row by row, each row through the trees
    /// [`TREE_LANES`] side by side as one row does, rather than tree by
    /// tree with eight rows side by side: when the forest has the trees to
    /// fill most of a group's walks and its nodes fit in the caches. One
    /// thread, 1000 rows, best of 3 to 5 runs of 10 calls, tree by tree
    /// against row by row: 300-tree XGBoost 2.56 against 1.69 ms, 30-tree
    /// forest 314 against 195 µs, 3,000-tree XGBoost (587 KiB of nodes)
    /// 20.3 against 15.3 ms, 200-tree forest (3.8 MB) 8.5 against 5.9 ms;
    /// a lone tree 22 µs tree by tree (eight rows side by side) and 22 to
    /// 38 µs alone.
    pub(super) fn batches_row_by_row(&self) -> bool {
        self.roots.len() >= 8 && std::mem::size_of_val(self.steps.as_slice()) <= ROW_BY_ROW_BYTES
    }
}
