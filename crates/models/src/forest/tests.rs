//! The walk form against the plain reading of the parts: random forests
//! (every branch mode, missing-value tracks, nodes in shuffled order,
//! several outputs, every aggregate) on random rows with NaN give the same
//! leaves, sums and labels as a walk that follows the parts node by node.

use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Aggregate, FlatForest, ForestParts, Head, Mode, Node, Post};

const MODES: [Mode; 6] = [Mode::Leq, Mode::Lt, Mode::Gte, Mode::Gt, Mode::Eq, Mode::Neq];

/// The leaf a row reaches, read from the parts as the ONNX operator
/// defines it.
fn reference_leaf(parts: &ForestParts<f32>, root: u32, row: &[f32]) -> Node<f32> {
    let mut node = parts.nodes[root as usize];
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
                Mode::Leaf => unreachable!(),
            }
        };
        node = parts.nodes[if go_true { node.a } else { node.b } as usize];
    }
    node
}

/// Per row and output: the aggregate of the trees' leaf weights.
fn reference_sums(parts: &ForestParts<f32>, rows: &[f32], nf: usize, aggregate: Aggregate) -> Vec<Option<f64>> {
    let no = parts.n_outputs;
    let n_rows = rows.len() / nf;
    let mut out: Vec<Option<f64>> = vec![None; n_rows * no];
    for r in 0..n_rows {
        let row = &rows[r * nf..(r + 1) * nf];
        for &root in &parts.roots {
            let leaf = reference_leaf(parts, root, row);
            // Weight by weight, as onnxruntime aggregates.
            for &(o, t) in &parts.weights[leaf.a as usize..leaf.b as usize] {
                let slot = &mut out[r * no + o as usize];
                *slot = Some(match (*slot, aggregate) {
                    (None, _) => t,
                    (Some(a), Aggregate::Sum | Aggregate::Average) => a + t,
                    (Some(a), Aggregate::Min) => a.min(t),
                    (Some(a), Aggregate::Max) => a.max(t),
                });
            }
        }
    }
    out
}

/// A random tree of at most `depth` levels appended to `nodes` (and its
/// weights), returning its root; features below `nf`, `no` outputs,
/// `per_leaf` weights in each leaf.
fn grow(
    rng: &mut Xoshiro256PlusPlus,
    nodes: &mut Vec<Node<f32>>,
    weights: &mut Vec<(u32, f64)>,
    depth: usize,
    nf: usize,
    no: usize,
    per_leaf: &std::ops::RangeInclusive<usize>,
) -> u32 {
    let at = nodes.len() as u32;
    if depth == 0 || rng.gen_bool(0.25) {
        let start = weights.len() as u32;
        for _ in 0..rng.gen_range(per_leaf.clone()) {
            weights.push((rng.gen_range(0..no) as u32, f64::from(rng.gen_range(-4i8..=4)) / 2.0));
        }
        nodes.push(Node {
            mode: Mode::Leaf,
            missing_true: false,
            feature: 0,
            threshold: 0.0,
            a: start,
            b: weights.len() as u32,
        });
        return at;
    }
    nodes.push(Node {
        mode: MODES[rng.gen_range(0..MODES.len())],
        missing_true: rng.gen_bool(0.5),
        feature: rng.gen_range(0..nf) as u32,
        // Few distinct thresholds, so `==` and ties happen.
        threshold: f32::from(rng.gen_range(-2i8..=2)) / 2.0,
        a: 0,
        b: 0,
    });
    let a = grow(rng, nodes, weights, depth - 1, nf, no, per_leaf);
    let b = grow(rng, nodes, weights, depth - 1, nf, no, per_leaf);
    nodes[at as usize].a = a;
    nodes[at as usize].b = b;
    at
}

/// The parts renumbered by a permutation (nodes in any order).
fn shuffled(mut parts: ForestParts<f32>, rng: &mut Xoshiro256PlusPlus) -> ForestParts<f32> {
    let n = parts.nodes.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(rng);
    let mut nodes = parts.nodes.clone();
    for (old, node) in parts.nodes.iter().enumerate() {
        let mut node = *node;
        if node.mode != Mode::Leaf {
            node.a = order[node.a as usize];
            node.b = order[node.b as usize];
        }
        nodes[order[old] as usize] = node;
    }
    parts.nodes = nodes;
    parts.roots.iter_mut().for_each(|r| *r = order[*r as usize]);
    parts
}

fn forest(seed: u64, uniform: Option<Mode>, aggregate: Aggregate) -> (ForestParts<f32>, Vec<f32>, usize) {
    grown(seed, uniform, aggregate, false)
}

/// A random forest; with `one_weight`, one output and one weight in every
/// leaf (what regressors and two-class boosters export).
fn grown(
    seed: u64,
    uniform: Option<Mode>,
    aggregate: Aggregate,
    one_weight: bool,
) -> (ForestParts<f32>, Vec<f32>, usize) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let nf = rng.gen_range(1..5);
    let no = if one_weight { 1 } else { rng.gen_range(1..4) };
    let per_leaf = if one_weight { 1..=1 } else { 0..=2 };
    let (mut nodes, mut weights, mut roots) = (Vec::new(), Vec::new(), Vec::new());
    // Up to two groups of trees walked side by side and a narrower rest.
    for _ in 0..rng.gen_range(1..40) {
        let depth = rng.gen_range(0..7);
        roots.push(grow(&mut rng, &mut nodes, &mut weights, depth, nf, no, &per_leaf));
    }
    if let Some(mode) = uniform {
        nodes
            .iter_mut()
            .filter(|n| n.mode != Mode::Leaf)
            .for_each(|n| n.mode = mode);
    }
    let parts = ForestParts {
        nodes,
        roots,
        weights,
        n_features: nf,
        n_outputs: no,
        base_values: Vec::new(),
        post: Post::None,
        head: Head::Regressor { aggregate },
    };
    let parts = shuffled(parts, &mut rng);
    let n_rows = rng.gen_range(1..40);
    let rows = (0..n_rows * nf)
        .map(|_| match rng.gen_range(0..8) {
            0 => f32::NAN,
            k => f32::from(k as i8 - 4) / 4.0,
        })
        .collect();
    (parts, rows, nf)
}

fn check(parts: ForestParts<f32>, rows: Vec<f32>, nf: usize, aggregate: Aggregate) {
    let forest = FlatForest::new(parts.clone()).expect("a sound forest");
    let n_rows = rows.len() / nf;
    let wide: Vec<f64> = rows.iter().map(|&x| f64::from(x)).collect();
    let out = forest.run_serial(&wide, n_rows);
    let expected = reference_sums(&parts, &rows, nf, aggregate);
    let trees = parts.roots.len() as f64;
    for (i, (got, want)) in out.scores.iter().zip(&expected).enumerate() {
        let want = match (want, aggregate) {
            (None, _) => 0.0,
            (Some(w), Aggregate::Average) => w / trees,
            (Some(w), _) => *w,
        };
        assert_eq!(*got, want, "row {} output {}", i / parts.n_outputs, i % parts.n_outputs);
    }
    // Built again from its own parts (what the stored forms write), the
    // forest is the same.
    let again = FlatForest::new(forest.parts()).expect("its parts");
    assert_eq!(again.parts().nodes.len(), forest.parts().nodes.len());
    assert_eq!(again.run_serial(&wide, n_rows).scores, out.scores);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_walk_matches_the_parts_with_mixed_modes(seed in any::<u64>()) {
        let (parts, rows, nf) = forest(seed, None, Aggregate::Sum);
        check(parts, rows, nf, Aggregate::Sum);
    }

    #[test]
    fn the_walk_matches_the_parts_with_one_mode(seed in any::<u64>(), mode in 0..MODES.len()) {
        let (parts, rows, nf) = forest(seed, Some(MODES[mode]), Aggregate::Sum);
        check(parts, rows, nf, Aggregate::Sum);
    }

    #[test]
    fn one_weight_per_leaf_matches_the_parts_alone_and_in_a_batch(seed in any::<u64>()) {
        let (parts, rows, nf) = grown(seed, None, Aggregate::Sum, true);
        let forest = FlatForest::new(parts.clone()).expect("a sound forest");
        prop_assert!(!forest.leaf_value.is_empty(), "the walk that reads leaf values");
        // A row alone takes the one-row walk; the same rows as a batch of
        // at least LANES take the tree-by-tree walk: the same sums.
        let wide: Vec<f64> = rows.iter().map(|&x| f64::from(x)).collect();
        let many: Vec<f64> = wide.iter().cycle().take(nf * 40).copied().collect();
        let batch = forest.run_serial(&many, 40).scores;
        let alone: Vec<f64> = many.chunks(nf).flat_map(|row| forest.run_serial(row, 1).scores).collect();
        prop_assert_eq!(&batch, &alone);
        check(parts, rows, nf, Aggregate::Sum);
    }

    #[test]
    fn every_aggregate_matches_the_parts(seed in any::<u64>(), which in 0..3usize) {
        let aggregate = [Aggregate::Average, Aggregate::Min, Aggregate::Max][which];
        let (parts, rows, nf) = forest(seed, None, aggregate);
        check(parts, rows, nf, aggregate);
    }
}

#[test]
fn a_large_batch_split_over_threads_matches_row_by_row() {
    let (parts, rows, nf) = forest(7, Some(Mode::Lt), Aggregate::Sum);
    let forest = FlatForest::new(parts).expect("sound");
    let steps: usize = forest.depths.iter().map(|&d| d as usize).sum();
    let n = super::PARALLEL_STEPS / steps.max(1) + 1001;
    assert!(forest.worth_splitting(n), "a batch split over threads");
    assert!(!forest.worth_splitting(1), "one row is not");
    let many: Vec<f64> = rows.iter().cycle().take(nf * n).map(|&x| f64::from(x)).collect();
    let all = forest.run(&many, n);
    let one_by_one: Vec<f64> = many
        .chunks(nf)
        .flat_map(|row| forest.run_serial(row, 1).scores)
        .collect();
    assert_eq!(all.scores, one_by_one);
}

/// `parts` with some branches sharing a child: both children one node, or
/// the second child the root of a later tree (never an earlier one, so no
/// loop), as exporters write categorical splits.
fn with_shared_nodes(mut parts: ForestParts<f32>, seed: u64) -> ForestParts<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let tree_of = |parts: &ForestParts<f32>| {
        let mut tree = vec![usize::MAX; parts.nodes.len()];
        for (t, &root) in parts.roots.iter().enumerate() {
            let mut stack = vec![root];
            while let Some(at) = stack.pop() {
                tree[at as usize] = t;
                let n = parts.nodes[at as usize];
                if n.mode != Mode::Leaf {
                    stack.extend([n.a, n.b]);
                }
            }
        }
        tree
    };
    let tree = tree_of(&parts);
    for (i, &t) in tree.iter().enumerate() {
        let node = parts.nodes[i];
        if node.mode == Mode::Leaf || t == usize::MAX || rng.gen_range(0..3) != 0 {
            continue;
        }
        let later = t + 1..parts.roots.len();
        parts.nodes[i].b = if later.is_empty() || rng.gen() {
            node.a
        } else {
            parts.roots[rng.gen_range(later)]
        };
    }
    parts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn shared_nodes_are_walked_as_under_each_parent(seed in any::<u64>()) {
        let (parts, rows, nf) = forest(seed, None, Aggregate::Sum);
        let parts = with_shared_nodes(parts, seed);
        check(parts, rows, nf, Aggregate::Sum);
    }
}

#[test]
fn nodes_shared_past_the_bound_are_refused() {
    // Forty branches, each with the next as both children: 2^40 paths.
    let mut nodes: Vec<Node<f32>> = (0..40)
        .map(|i| Node {
            mode: Mode::Leq,
            missing_true: false,
            feature: 0,
            threshold: 0.5,
            a: i + 1,
            b: i + 1,
        })
        .collect();
    nodes.push(Node {
        mode: Mode::Leaf,
        missing_true: false,
        feature: 0,
        threshold: 0.0,
        a: 0,
        b: 1,
    });
    let parts = ForestParts {
        nodes,
        roots: vec![0],
        weights: vec![(0, 1.0)],
        n_features: 1,
        n_outputs: 1,
        base_values: Vec::new(),
        post: Post::None,
        head: Head::Regressor {
            aggregate: Aggregate::Sum,
        },
    };
    let err = FlatForest::new(parts.clone()).expect_err("refused");
    assert!(err.contains("share nodes so much"), "{err}");
    // Ten such branches (1,024 paths) are a forest.
    let mut small = parts;
    small.nodes.drain(10..40);
    small.nodes[9].a = 10;
    small.nodes[9].b = 10;
    let forest = FlatForest::new(small).expect("within the bound");
    assert_eq!(forest.run(&[0.0], 1).scores, vec![1.0]);
}
