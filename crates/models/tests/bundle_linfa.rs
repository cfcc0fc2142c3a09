//! Round trips of linfa's reference models, and their structural checks.

mod common;

use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use linfa_trees::DecisionTree;
use model_persistence_core::{BundleWriter, Error, InputError, LimitKind, Model, ModelCard, Predictor};
use model_persistence_models::linfa::RandomForest;
use model_persistence_testkit::{fraud_like, SplitMix64, FRAUD_FEATURES};
use ndarray::{s, Array1, Array2};
use rand::SeedableRng;

struct Split {
    train: DatasetBase<Array2<f64>, Array1<usize>>,
    test: Array2<f64>,
}

fn fraud(samples: usize) -> Split {
    let (x, y) = fraud_like(samples, 0.1, 42);
    let cut = samples * 8 / 10;
    Split {
        train: Dataset::new(x.slice(s![..cut, ..]).to_owned(), y.slice(s![..cut]).to_owned()),
        test: x.slice(s![cut.., ..]).to_owned(),
    }
}

fn card_for<M: Model>(name: &str, model: &M, data: &Split) -> ModelCard {
    ModelCard::builder(name, model)
        .version(semver::Version::new(1, 0, 0))
        .feature_names(FRAUD_FEATURES)
        .classes(["legitimate", "fraud"])
        .training_data(data.train.records().view(), "fraud_like(seed 42)")
        .build()
        .expect("valid card")
}

/// Saves at levels 0 and 9, loads both, and checks predictions are identical.
fn round_trip<M: Model<Output = usize>>(name: &str, model: &M, data: &Split) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let card = card_for(name, model, data);
    let before = model.predict(data.test.view());
    let mut sizes = Vec::new();
    for level in [0, 9] {
        let path = dir.path().join(format!("{name}-{level}.bundle"));
        let saved = BundleWriter::default()
            .level(level)
            .save(&path, model, &card)
            .expect("saves");
        sizes.push(saved.file_len());
        let loaded = model_persistence_core::load::<M>(&path).expect("loads");
        assert_eq!(loaded.card(), &card);
        assert_eq!(loaded.content_id(), saved.content_id());
        let after: Array1<usize> = loaded.model().predict(data.test.view()).expect("right width");
        assert_eq!(before, after, "{name} level {level}: predictions changed");
        // The checked predict (linfa's prelude is in scope: the call is not
        // ambiguous) gives the same answers, and a typed error for a wrong
        // width where the bare linfa model would panic inside ndarray.
        assert_eq!(loaded.predict(data.test.view()).expect("right width"), before);
        let narrow = data.test.slice(s![.., 1..]);
        match loaded.predict(narrow) {
            Err(Error::Input(InputError::Width { expected, found })) => assert_eq!((expected, found), (20, 19)),
            other => panic!("{name}: expected InputWidth, got {:?}", other.map(|a| a.len())),
        }
        // The model a load hands out checks its rows too: no predict path of
        // a loaded model panics on input (a forest indexed past the row).
        let wide = ndarray::Array2::<f64>::zeros((3, 21));
        for rows in [narrow, wide.view()] {
            assert!(
                matches!(loaded.model().predict(rows), Err(InputError::Width { .. })),
                "{name}: predict"
            );
            assert!(
                matches!(loaded.model().predict_scored(rows), Err(InputError::Width { .. })),
                "{name}: predict_scored"
            );
            assert!(
                matches!(loaded.model().scores(rows), Err(InputError::Width { .. })),
                "{name}: scores"
            );
            let any = model_persistence_models::kinds().load(&path).expect("loads by kind");
            assert!(
                matches!(any.model().predict(rows), Err(InputError::Width { .. })),
                "{name}: dynamic"
            );
            assert!(
                matches!(any.model().predict(rows), Err(InputError::Width { .. })),
                "{name}: dynamic values"
            );
        }
        assert_eq!(
            model_persistence_core::read_card(&path).expect("card"),
            card,
            "read_card differs"
        );
        let json = std::fs::read_to_string(model_persistence_core::card_json_path(&path)).expect("card json");
        assert_eq!(ModelCard::from_json(&json).expect("parses"), card);
    }
    (sizes[0], sizes[1])
}

#[test]
fn logistic_regression_round_trips() {
    let data = fraud(10_000);
    let model: FittedLogisticRegression<f64, usize> = LogisticRegression::default()
        .max_iterations(100)
        .fit(&data.train)
        .expect("fits");
    // Twenty random coefficients do not compress: the writer stores them as is.
    let (level0, level9) = round_trip("logistic", &model, &data);
    assert!(level9 <= level0, "level 9 ({level9}) larger than level 0 ({level0})");
}

#[test]
fn decision_tree_round_trips() {
    let data = fraud(10_000);
    let model = DecisionTree::params()
        .max_depth(Some(12))
        .fit(&data.train)
        .expect("fits");
    let (level0, level9) = round_trip("tree", &model, &data);
    assert!(
        level9 < level0,
        "level 9 ({level9}) not smaller than level 0 ({level0})"
    );
}

#[test]
fn random_forest_of_100_trees_round_trips() {
    let data = fraud(10_000);
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(7);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(10)), rng)
        .ensemble_size(100)
        .bootstrap_proportion(0.7)
        .feature_proportion(0.6)
        .fit(&data.train)
        .expect("fits");
    let forest = RandomForest::new(&ensemble, FRAUD_FEATURES.len()).expect("consistent");
    assert_eq!(forest.n_trees(), 100);
    let (level0, level9) = round_trip("forest", &forest, &data);
    assert!(
        level9 < level0,
        "level 9 ({level9}) not smaller than level 0 ({level0})"
    );
    let truth = fraud_like(10_000, 0.1, 42).1.slice(s![8_000..]).to_owned();
    let predicted = forest.predict(data.test.view());
    let accuracy = predicted.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64;
    assert!(
        accuracy > 0.9,
        "the forest should learn the synthetic fraud signal: {accuracy}"
    );
}

/// A tree node in linfa's serialised layout, for building hostile trees.
#[derive(serde::Serialize)]
struct Node {
    feature_idx: usize,
    feature_name: String,
    split_value: f64,
    impurity_decrease: f64,
    left_child: Option<Box<Node>>,
    right_child: Option<Box<Node>>,
    leaf_node: bool,
    prediction: usize,
    depth: usize,
}

fn leaf(depth: usize) -> Node {
    Node {
        feature_idx: 0,
        feature_name: String::new(),
        split_value: 0.0,
        impurity_decrease: 0.0,
        left_child: None,
        right_child: None,
        leaf_node: true,
        prediction: 1,
        depth,
    }
}

fn split(feature: usize, left: Option<Node>, right: Option<Node>, depth: usize) -> Node {
    Node {
        feature_idx: feature,
        feature_name: format!("f{feature}"),
        split_value: 0.5,
        impurity_decrease: 0.1,
        left_child: left.map(Box::new),
        right_child: right.map(Box::new),
        leaf_node: false,
        prediction: 0,
        depth,
    }
}

#[derive(serde::Serialize)]
struct Tree {
    root_node: Node,
    num_features: usize,
}

/// A bundle holding `tree` under a card for 3 features, hashes valid.
fn tree_bundle(tree: &Tree) -> Vec<u8> {
    // A valid card for a 3-feature tree, taken from a real small tree.
    let x = Array2::from_shape_fn((40, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f64);
    let y = Array1::from_shape_fn(40, |i| i % 2);
    let real = DecisionTree::params().fit(&Dataset::new(x, y)).expect("fits");
    let mut card = ModelCard::builder("tree", &real)
        .version(semver::Version::new(1, 0, 0))
        .n_features(3)
        .build()
        .expect("card");
    card.probe = None;
    let raw = rmp_serde::to_vec_named(tree).expect("encodes");
    let bundle_of_real = model_persistence_core::to_bytes(&real, &card).expect("encodes");
    // Same header as the real tree's bundle, new payload: re-assemble by the spec.
    let header_len = u32::from_le_bytes(bundle_of_real[12..16].try_into().expect("4 bytes")) as usize;
    let header: serde_json::Value = rmp_serde::from_slice(&bundle_of_real[16..16 + header_len]).expect("header");
    let mut header = header;
    let payload = &mut header["payload"];
    payload["codec"] = "none".into();
    payload["level"] = 0.into();
    payload["raw_len"] = raw.len().into();
    payload["stored_len"] = raw.len().into();
    payload["sha256"] = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw)).into();
    let header = rmp_serde::to_vec_named(&header).expect("encodes");
    let mut out = bundle_of_real[..12].to_vec();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    let hash = <sha2::Sha256 as sha2::Digest>::digest(&out);
    out.extend_from_slice(&hash);
    out.extend_from_slice(&raw);
    out
}

#[test]
fn a_valid_hand_built_tree_loads() {
    let tree = Tree {
        root_node: split(2, Some(leaf(1)), Some(leaf(1)), 0),
        num_features: 3,
    };
    let loaded = model_persistence_core::from_bytes::<DecisionTree<f64, usize>>(&tree_bundle(&tree)).expect("loads");
    let rows = ndarray::array![[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    assert_eq!(
        loaded.model().predict(rows.view()).expect("right width").to_vec(),
        vec![1, 1]
    );
}

#[test]
fn a_split_without_children_is_refused() {
    let tree = Tree {
        root_node: split(1, Some(leaf(1)), None, 0),
        num_features: 3,
    };
    match model_persistence_core::from_bytes::<DecisionTree<f64, usize>>(&tree_bundle(&tree)) {
        Err(Error::InvalidStructure { reason, .. }) => assert!(reason.contains("without both children"), "{reason}"),
        other => panic!("expected an invalid structure, got {other:?}"),
    }
}

#[test]
fn a_split_on_a_feature_past_the_count_is_refused() {
    let tree = Tree {
        root_node: split(7, Some(leaf(1)), Some(leaf(1)), 0),
        num_features: 3,
    };
    match model_persistence_core::from_bytes::<DecisionTree<f64, usize>>(&tree_bundle(&tree)) {
        Err(Error::InvalidStructure { reason, .. }) => assert!(reason.contains("feature 7"), "{reason}"),
        other => panic!("expected an invalid structure, got {other:?}"),
    }
}

#[test]
fn a_300_level_deep_tree_is_refused_without_overflowing_the_stack() {
    // Built bottom-up so that building it needs no recursion.
    let mut node = leaf(300);
    for depth in (0..300).rev() {
        node = split(depth % 3, Some(leaf(depth + 1)), Some(node), depth);
    }
    let tree = Tree {
        root_node: node,
        num_features: 3,
    };
    // Encoding recurses too: give it room, then load on a normal test thread.
    let bundle = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let bytes = tree_bundle(&tree);
            drop_iteratively(tree.root_node);
            bytes
        })
        .expect("thread")
        .join()
        .expect("encodes");
    match model_persistence_core::from_bytes::<DecisionTree<f64, usize>>(&bundle) {
        Err(Error::LimitExceeded {
            limit: LimitKind::Depth,
            ..
        }) => {}
        other => panic!("expected the depth limit, got {:?}", other.map(|_| ())),
    }
}

fn drop_iteratively(root: Node) {
    let mut stack = vec![root];
    while let Some(mut node) = stack.pop() {
        stack.extend(node.left_child.take().map(|b| *b));
        stack.extend(node.right_child.take().map(|b| *b));
    }
}

#[test]
fn the_forest_votes_deterministically_on_ties() {
    // Two stumps that always disagree: every row is a tie, won by the smaller label.
    let x = Array2::from_shape_fn((200, 2), |(i, j)| {
        let mut r = SplitMix64::new((i * 2 + j) as u64);
        r.next_f64()
    });
    let y0 = Array1::from_elem(200, 0_usize);
    let y1 = Array1::from_elem(200, 1_usize);
    let a = DecisionTree::params().fit(&Dataset::new(x.clone(), y0)).expect("fits");
    let b = DecisionTree::params().fit(&Dataset::new(x.clone(), y1)).expect("fits");
    let ensemble = linfa_ensemble::EnsembleLearner {
        models: vec![b, a],
        model_features: vec![vec![0, 1], vec![0, 1]],
    };
    let forest = RandomForest::new(&ensemble, 2).expect("consistent");
    assert!(forest.predict(x.view()).iter().all(|&p| p == 0));
}

#[test]
fn a_forest_whose_tree_reads_a_feature_past_the_count_is_refused() {
    let x = Array2::from_shape_fn((50, 2), |(i, j)| (i + j) as f64);
    let y = Array1::from_shape_fn(50, |i| i % 2);
    let tree = DecisionTree::params().fit(&Dataset::new(x, y)).expect("fits");
    let ensemble = linfa_ensemble::EnsembleLearner {
        models: vec![tree],
        model_features: vec![vec![0, 5]],
    };
    assert!(RandomForest::new(&ensemble, 2).is_err());
}

/// The encoded forest with the first byte of one of its columns replaced:
/// a blob (`leaves`, `branch_kinds`) or narrow integers (`features`,
/// `weight_outputs`, written `[width, bin]`).
fn with_first(forest: &RandomForest, column: &str, value: u8) -> Vec<u8> {
    let mut raw = rmp_serde::to_vec_named(forest).expect("encodes");
    let mut key = vec![0xa0 | column.len() as u8];
    key.extend_from_slice(column.as_bytes());
    let at = raw
        .windows(key.len())
        .position(|w| w == &key[..])
        .expect("the column is in the forest")
        + key.len();
    // Narrow integers: a two-element array, the width, then the bin.
    let at = if raw[at] == 0x92 { at + 2 } else { at };
    let header = match raw[at] {
        0xc4 => 2,
        0xc5 => 3,
        0xc6 => 5,
        other => panic!("{column}: a bin, not {other:#x}"),
    };
    raw[at + header] = value;
    raw
}

#[test]
fn a_hostile_flat_forest_is_refused_on_load() {
    let data = fraud(2_000);
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(1);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(5)), rng)
        .ensemble_size(3)
        .fit(&data.train)
        .expect("fits");
    let forest = RandomForest::new(&ensemble, FRAUD_FEATURES.len()).expect("consistent");
    let card = card_for("forest", &forest, &data);
    // Unchanged, the crafted bundle loads: the edits below are what is refused.
    let fine = common::craft(&card, &rmp_serde::to_vec_named(&forest).expect("encodes"), true);
    model_persistence_core::from_bytes::<RandomForest>(&fine).expect("the untouched forest loads");
    for (column, value, says) in [
        ("features", 20, "outside the forest"),
        ("features", 255, "outside the forest"),
        ("leaves", 0xff, "branches"),
        ("leaves", 0x00, "branches"),
        ("branch_kinds", 7, "unknown comparison"),
        ("weight_outputs", 9, "output 9"),
    ] {
        let bytes = common::craft(&card, &with_first(&forest, column, value), true);
        match model_persistence_core::from_bytes::<RandomForest>(&bytes) {
            Err(Error::InvalidStructure { reason, .. }) => {
                assert!(reason.contains(says), "{column} = {value}: {reason}")
            }
            other => panic!("{column} = {value}: expected a structure error, got {other:?}"),
        }
    }
}

#[test]
fn the_flat_forest_predicts_as_linfa_trees_vote() {
    let data = fraud(4_000);
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(9);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(8)), rng)
        .ensemble_size(15)
        .feature_proportion(0.5)
        .fit(&data.train)
        .expect("fits");
    let forest = RandomForest::new(&ensemble, FRAUD_FEATURES.len()).expect("consistent");
    // Each tree asked as linfa asks it: its own feature columns selected.
    let rows = &data.test;
    let mut votes = Array2::<u32>::zeros((rows.nrows(), 2));
    for (tree, features) in ensemble.models.iter().zip(&ensemble.model_features) {
        let sub = rows.select(ndarray::Axis(1), features);
        let labels: Array1<usize> = linfa::prelude::Predict::predict(tree, &sub);
        for (i, label) in labels.iter().enumerate() {
            votes[[i, *label]] += 1;
        }
    }
    let expected: Vec<usize> = votes.rows().into_iter().map(|v| usize::from(v[1] > v[0])).collect();
    assert_eq!(forest.predict(rows.view()).to_vec(), expected);
    let shares = forest.scores(rows.view()).expect("scores");
    for (i, v) in votes.rows().into_iter().enumerate() {
        assert_eq!(shares[[i, 1]], f64::from(v[1]) / 15.0);
    }
    assert_eq!(
        forest.predict_scored(rows.view()),
        (forest.predict(rows.view()), forest.scores(rows.view()))
    );
    // A view that is not in standard layout gives the same answers.
    let transposed = rows.t().to_owned();
    assert_eq!(forest.predict(transposed.t()).to_vec(), expected);
}
