//! The lowering and the walk on small hand-made trees, and hostile ones.

use tract_onnx::pb;

use super::lower::{lower, split};
use super::MAX_DEPTH;
use crate::forest::{FlatForest, ForestParts};

/// A graph that is a lone tree ensemble on `input`, lowered.
fn lower_graph(g: &pb::GraphProto, input: &str, n_features: usize) -> Result<Option<FlatForest<f32>>, String> {
    let split = split(g, input).expect("a lone tree ensemble");
    assert!(split.prefix.is_empty());
    lower(split.node, n_features)
}

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
    let forest = lower_graph(&graph(|_| {}), "X", 2).expect("sound").expect("lowered");
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
    let forest = lower_graph(&g, "X", 2).expect("sound").expect("lowered");
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
        ("loop", graph(|a| set(a, a_ints("nodes_falsenodeids", &[0, 0, 0])))),
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
        let err = lower_graph(&g, "X", 2).expect_err(words);
        assert!(err.contains(words), "{words}: {err}");
    }
}

#[test]
fn a_stored_forest_is_checked_like_a_graph() {
    let good = lower_graph(&graph(|_| {}), "X", 2).expect("sound").expect("lowered");
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
    assert!(refused(&|p| p.nodes[0].b = 0).contains("loop"), "a loop");
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
    let err = lower_graph(&g, "X", 2).expect_err("too deep");
    assert!(err.contains("deeper"), "{err}");
}

/// The tree of [`graph`] after a node that scales its input by 2: the
/// nodes before the trees run on tract, and a hostile tree after them is
/// refused as one on the input is.
fn after_a_product(edit: impl FnOnce(&mut Vec<pb::AttributeProto>)) -> pb::ModelProto {
    let mut g = graph(edit);
    g.node[0].input = vec!["Z".into()];
    g.node.insert(
        0,
        pb::NodeProto {
            op_type: "Mul".into(),
            input: vec!["X".into(), "two".into()],
            output: vec!["Z".into()],
            ..Default::default()
        },
    );
    g.initializer.push(pb::TensorProto {
        name: "two".into(),
        data_type: 1,
        dims: vec![1, 2],
        float_data: vec![2.0, 2.0],
        ..Default::default()
    });
    g.input.push(pb::ValueInfoProto {
        name: "X".into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    });
    pb::ModelProto {
        ir_version: 8,
        graph: Some(g),
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            pb::OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        ..Default::default()
    }
}

#[test]
fn nodes_before_the_trees_run_on_tract_and_a_hostile_tree_after_them_is_refused() {
    let native = super::Native::build(&after_a_product(|_| {}), "X", 2)
        .expect("sound")
        .expect("trees after a product");
    assert!(native.has_prefix());
    // Feature 1 is doubled before the split at 0.5: 0.3 now goes false.
    let rows = ndarray::arr2(&[[0.0, 0.2], [0.0, 0.3], [0.0, f64::NAN]]);
    let super::Ran::Forest(out) = native.run(rows.view()).expect("runs") else {
        panic!("the graph's outputs are the trees'");
    };
    assert_eq!(out.labels, Some(vec![20, 10, 20]), "0.4 <= 0.5, 0.6 > 0.5, NaN true");
    let hostile = after_a_product(|a| set(a, a_ints("nodes_featureids", &[7, 0, 0])));
    let err = super::Native::build(&hostile, "X", 2).err().expect("refused");
    assert!(err.contains("feature 7"), "{err}");
}

fn a_tensor(name: &str, data_type: i32, raw: Vec<u8>) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        t: Some(pb::TensorProto {
            name: name.into(),
            data_type,
            dims: vec![raw.len() as i64 / if data_type == 1 { 4 } else { 1 }],
            raw_data: raw,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Opset 5's `TreeEnsemble` of one tree: node 0 splits feature 1 at 0.5
/// (`<=`) into node 1 (true) and leaf 2 (false); node 1 splits feature 0 at
/// 0 into leaves 0 and 1. Leaves weigh 1, 2 and 3.
fn v5(edit: impl FnOnce(&mut Vec<pb::AttributeProto>)) -> pb::NodeProto {
    let mut attrs = vec![
        a_ints("nodes_featureids", &[1, 0]),
        a_tensor("nodes_splits", 1, f32_bytes(&[0.5, 0.0])),
        a_tensor("nodes_modes", 2, vec![0, 0]),
        a_ints("nodes_truenodeids", &[1, 0]),
        a_ints("nodes_trueleafs", &[0, 1]),
        a_ints("nodes_falsenodeids", &[2, 1]),
        a_ints("nodes_falseleafs", &[1, 1]),
        a_ints("tree_roots", &[0]),
        a_ints("leaf_targetids", &[0, 0, 0]),
        a_tensor("leaf_weights", 1, f32_bytes(&[1.0, 2.0, 3.0])),
    ];
    edit(&mut attrs);
    pb::NodeProto {
        op_type: "TreeEnsemble".into(),
        input: vec!["X".into()],
        output: vec!["Y".into()],
        attribute: attrs,
        ..Default::default()
    }
}

#[test]
fn opset_5_trees_are_lowered_and_hostile_ones_refused() {
    let forest = lower(&v5(|_| {}), 2).expect("sound").expect("lowered");
    let out = forest.run(&[-1.0, 0.2, 1.0, 0.2, 0.0, 0.9], 3);
    assert_eq!(out.scores, vec![1.0, 2.0, 3.0]);
    let cases = [
        ("leaf 7 of 3", v5(|a| set(a, a_ints("nodes_falsenodeids", &[7, 1])))),
        (
            "outside the 2 nodes",
            v5(|a| set(a, a_ints("nodes_truenodeids", &[5, 0]))),
        ),
        ("loop", v5(|a| set(a, a_ints("nodes_truenodeids", &[0, 0])))),
        ("feature 4", v5(|a| set(a, a_ints("nodes_featureids", &[4, 0])))),
        (
            "nodes_trueleafs has 1 entries",
            v5(|a| set(a, a_ints("nodes_trueleafs", &[0]))),
        ),
        ("tree root 9", v5(|a| set(a, a_ints("tree_roots", &[9])))),
        ("target 1 of 1", v5(|a| set(a, a_ints("leaf_targetids", &[0, 1, 0])))),
        (
            "unknown node mode 9",
            v5(|a| set(a, a_tensor("nodes_modes", 2, vec![0, 9]))),
        ),
        (
            "not float32",
            v5(|a| set(a, a_tensor("leaf_weights", 2, vec![1, 2, 3]))),
        ),
        (
            "1099511627776 outputs",
            v5(|a| {
                a.push(pb::AttributeProto {
                    name: "n_targets".into(),
                    i: 1 << 40,
                    ..Default::default()
                })
            }),
        ),
        (
            "not whole float32s",
            v5(|a| set(a, a_tensor("leaf_weights", 1, vec![0; 7]))),
        ),
    ];
    for (words, node) in cases {
        let err = lower(&node, 2).expect_err(words);
        assert!(err.contains(words), "{words}: {err}");
    }
}

/// Node 1 of [`v5`] made a set-membership node on feature 0, its set
/// `values` as `membership_values` holds them.
fn member(missing_true: i64, values: &[f32]) -> pb::NodeProto {
    v5(|a| {
        set(a, a_tensor("nodes_modes", 2, vec![0, 6]));
        a.push(a_tensor("membership_values", 1, f32_bytes(values)));
        a.push(a_ints("nodes_missing_value_tracks_true", &[0, missing_true]));
    })
}

#[test]
fn set_membership_is_exact_and_sends_missing_values_where_the_node_says() {
    // Feature 0 tested against {1, 4, 7}: members to leaf 0 (weight 1),
    // the rest to leaf 1 (weight 2); feature 1 at 0.2 reaches the node.
    let xs = [1.0, 1.5, 4.0, 7.0, 2.0, -1.0, f64::NAN];
    let rows: Vec<f64> = xs.iter().flat_map(|&x| [x, 0.2]).collect();
    let forest = lower(&member(0, &[1.0, 4.0, 7.0, f32::NAN]), 2)
        .expect("sound")
        .expect("lowered");
    assert_eq!(forest.run(&rows, xs.len()).scores, [1.0, 2.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    // Missing values to the members' side; the last set's NaN left out.
    let forest = lower(&member(1, &[1.0, 4.0, 7.0]), 2).expect("sound").expect("lowered");
    assert_eq!(forest.run(&rows, xs.len()).scores, [1.0, 2.0, 1.0, 1.0, 2.0, 2.0, 1.0]);
    // One member is one equality.
    let forest = lower(&member(0, &[-1.0, f32::NAN]), 2)
        .expect("sound")
        .expect("lowered");
    assert_eq!(forest.run(&rows, xs.len()).scores, [2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 2.0]);

    let cases = [
        ("empty set", member(0, &[f32::NAN])),
        (
            "2 sets for 1 set-membership",
            member(0, &[1.0, f32::NAN, 2.0, f32::NAN]),
        ),
        (
            "no membership_values",
            v5(|a| set(a, a_tensor("nodes_modes", 2, vec![0, 6]))),
        ),
    ];
    for (words, node) in cases {
        let err = lower(&node, 2).expect_err(words);
        assert!(err.contains(words), "{words}: {err}");
    }
    // A set longer than a tree may be deep is refused, not walked: each
    // member is one step deeper.
    let many: Vec<f32> = (0..5_000u16).map(f32::from).collect();
    let err = lower(&member(0, &many), 2).expect_err("too deep");
    assert!(err.contains("deep"), "{err}");
    // Double-precision members, as double-precision thresholds, are
    // left to tract.
    let double = v5(|a| {
        set(a, a_tensor("nodes_modes", 2, vec![0, 6]));
        a.push(a_tensor("membership_values", 11, 1f64.to_le_bytes().to_vec()));
    });
    assert!(lower(&double, 2).expect("not refused").is_none());
}

#[test]
fn graph_outputs_that_are_not_the_trees_outputs_in_order_are_left_to_tract() {
    // Only the probabilities, no node after the trees: the forest's output
    // (labels first) is not the graph's, so the graph is not lowered.
    let mut g = graph(|_| {});
    g.output.remove(0);
    assert!(split(&g, "X").is_none(), "probabilities alone");
    let mut g = graph(|_| {});
    g.output.swap(0, 1);
    assert!(split(&g, "X").is_none(), "outputs swapped");
    assert!(split(&graph(|_| {}), "X").is_some(), "the trees' outputs in order");
}
