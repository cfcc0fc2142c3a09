//! The lowering and the walk on small hand-made trees, and hostile ones.

use tract_onnx::pb;

use super::lower::lower;
use super::MAX_DEPTH;
use crate::forest::{FlatForest, ForestParts};

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
    let parts = good.parts();
    assert!(FlatForest::new(parts.clone()).is_ok(), "its own parts build it again");
    let refused = |edit: &dyn Fn(&mut ForestParts<f32>)| {
        let mut p = parts.clone();
        edit(&mut p);
        FlatForest::new(p).expect_err("refused")
    };
    assert!(refused(&|p| p.nodes[0].a = 99).contains("outside"));
    assert!(refused(&|p| p.nodes[0].b = 0).contains("twice"), "a loop");
    assert!(refused(&|p| p.nodes[0].b = 1).contains("twice"), "a shared node");
    assert!(
        refused(&|p| p.roots.push(1)).contains("twice"),
        "a root that is a child"
    );
    assert!(refused(&|p| p.roots.push(9)).contains("not a node"));
    assert!(refused(&|p| p.nodes[0].feature = 7).contains("outside"));
    assert!(refused(&|p| p.weights[0] = (5, 1.0)).contains("output 5"));
    assert!(refused(&|p| p.nodes[1].b = 1000).contains("outside"));
    assert!(refused(&|p| p.weights[0].1 = f64::NAN).contains("NaN"));
    assert!(refused(&|p| p.nodes[0].threshold = f32::NAN).contains("NaN"));
    assert!(refused(&|p| p.roots.clear()).contains("no trees"));
    assert!(refused(&|p| p.n_outputs = 0).contains("0 outputs"));
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
