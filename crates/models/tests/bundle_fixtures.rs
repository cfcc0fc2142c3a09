//! Golden bundles of every released format version load forever.
//!
//! The files under `tests/fixtures/format-1/` were written by format 1.0,
//! those under `tests/fixtures/format-1.1/` by format 1.1 (numeric arrays as
//! blobs), and are committed. Set `MP_WRITE_FIXTURES=1.1` to write the 1.1
//! set again (only when it is first released, never to make this test
//! pass); the 1.0 set can no longer be written, only read.

mod common;

use std::path::PathBuf;

use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_trees::DecisionTree;
use model_persistence_core::{BundleWriter, Error, ModelCard, Predictor};
use model_persistence_models::linfa::RandomForest;
use model_persistence_testkit::{fraud_like, FRAUD_FEATURES};
use ndarray::{Array1, Array2};
use rand::SeedableRng;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format-1")
}

fn dir_1_1() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format-1.1")
}

fn tree_and_card() -> (DecisionTree<f64, usize>, ModelCard) {
    let x = Array2::from_shape_fn((60, 3), |(i, j)| ((i * 7 + j * 5) % 13) as f64 / 2.0);
    let y = Array1::from_shape_fn(60, |i| usize::from((i * 7) % 13 > 6));
    let tree = DecisionTree::params()
        .max_depth(Some(4))
        .fit(&Dataset::new(x.clone(), y))
        .expect("fits");
    let card = ModelCard::builder("golden_tree", &tree)
        .version(semver::Version::new(1, 0, 0))
        .feature_names(["a", "b", "c"])
        .classes(["no", "yes"])
        .metric("accuracy", 0.9)
        .training_data(x.view(), "golden")
        .created_at(common::fixed_time())
        .build()
        .expect("card");
    (tree, card)
}

fn write_fixtures_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("MP_WRITE_FIXTURES").as_deref() == Ok("1.1") {
            write_fixtures_1_1();
        }
    });
}

/// The golden forest: trained on fixed data with a fixed seed (linfa still
/// breaks some ties in hash-map order, so two trainings may differ).
fn forest_and_card() -> (RandomForest, ModelCard) {
    let (x, y) = fraud_like(600, 0.2, 11);
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(3);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(6)), rng)
        .ensemble_size(12)
        .bootstrap_proportion(0.7)
        .feature_proportion(0.6)
        .fit(&Dataset::new(x.clone(), y))
        .expect("fits");
    let forest = RandomForest::new(&ensemble, FRAUD_FEATURES.len()).expect("consistent");
    let card = ModelCard::builder("golden_forest", &forest)
        .version(semver::Version::new(1, 0, 0))
        .feature_names(FRAUD_FEATURES)
        .classes(["legitimate", "fraud"])
        .training_data(x.view(), "fraud_like(600, 0.2, 11)")
        .created_at(common::fixed_time())
        .build()
        .expect("card");
    (forest, card)
}

fn dense_card(model: &common::Dense) -> ModelCard {
    ModelCard::builder("dense", model)
        .version(semver::Version::new(1, 1, 0))
        .feature_names(["a", "b", "c"])
        .training_data(common::training().view(), "tests/common")
        .created_at(common::fixed_time())
        .build()
        .expect("card")
}

fn write_fixtures_1_1() {
    std::fs::create_dir_all(dir_1_1()).expect("fixture dir");
    let dense = common::Dense::from_linear(&common::linear());
    for level in [0, 9] {
        let bytes = BundleWriter::default()
            .level(level)
            .to_bytes(&dense, &dense_card(&dense))
            .expect("encodes");
        std::fs::write(dir_1_1().join(format!("dense-level{level}.bundle")), bytes).expect("writes");
    }
    let (forest, card) = forest_and_card();
    let bytes = BundleWriter::default()
        .level(3)
        .to_bytes(&forest, &card)
        .expect("encodes");
    std::fs::write(dir_1_1().join("forest-v2-level3.bundle"), bytes).expect("writes");
    // linfa's training breaks ties in hash-map order: the forest's answers
    // are recorded beside it, not retrained.
    let (rows, _) = fraud_like(300, 0.5, 5);
    let scores = Predictor::scores(&forest, rows.view()).expect("scores");
    let answers = serde_json::json!({
        "labels": Predictor::predict(&forest, rows.view()).to_vec(),
        "scores": scores.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
    });
    std::fs::write(dir_1_1().join("forest-v2-level3.json"), answers.to_string()).expect("writes");
}

/// The card as the golden fixtures recorded it: they were written before the
/// crate was renamed, when it recorded itself as `persistence-core`. The
/// fixtures are never rewritten, so the expectation carries the old name.
fn as_golden(mut card: ModelCard) -> ModelCard {
    if let Some(v) = card.dependencies.remove(model_persistence_core::CORE_DEPENDENCY) {
        card.dependencies.insert("persistence-core".to_owned(), v);
    }
    card.dependencies
        .insert(model_persistence_core::FORMAT_DEPENDENCY.to_owned(), "1.0".to_owned());
    card
}

#[test]
fn golden_format_1_bundles_load() {
    write_fixtures_if_asked();
    let model = common::linear();
    for level in [0, 9] {
        let path = dir().join(format!("linear-level{level}.bundle"));
        let loaded = model_persistence_core::load::<common::Linear>(&path).expect("golden linear bundle loads");
        assert_eq!(loaded.model(), &model);
        assert_eq!(loaded.card(), &as_golden(common::linear_card(&model)));
        let summary = model_persistence_core::verify(&path).expect("verifies");
        assert_eq!(summary.format, (1, 0));
        assert_eq!(summary.payload.level, level);
    }
    let (tree, card) = tree_and_card();
    let loaded = model_persistence_core::load::<DecisionTree<f64, usize>>(dir().join("tree-level3.bundle"))
        .expect("golden tree bundle loads");
    assert_eq!(loaded.card(), &as_golden(card));
    let rows = Array2::from_shape_fn((30, 3), |(i, j)| ((i * 3 + j) % 7) as f64);
    assert_eq!(
        Predictor::predict(loaded.model().get(), rows.view()),
        Predictor::predict(&tree, rows.view())
    );
}

#[test]
fn a_golden_bundle_of_format_2_is_refused_as_unsupported() {
    write_fixtures_if_asked();
    match model_persistence_core::load::<common::Linear>(dir().join("format-2.0.bundle")) {
        Err(Error::UnsupportedVersion {
            found_major: 2,
            found_minor: 0,
            supported_major: 1,
        }) => {}
        other => panic!("expected an unsupported version, got {other:?}"),
    }
    assert!(matches!(
        model_persistence_core::read_card(dir().join("format-2.0.bundle")),
        Err(Error::UnsupportedVersion { .. })
    ));
}

#[test]
fn a_golden_linfa_forest_of_the_node_by_node_kind_loads_as_a_flat_forest() {
    let path = dir().join("forest-v1-level3.bundle");
    assert_eq!(
        model_persistence_core::read_card(&path).expect("card").kind,
        "linfa.random_forest.v1",
        "the file keeps the kind it was written with"
    );
    // Loading converts it and replays the card's probe on the conversion.
    let loaded = model_persistence_core::load::<RandomForest>(&path).expect("a v1 forest loads");
    assert_eq!(loaded.card().kind, "linfa.random_forest.v3");
    assert_eq!(loaded.model().n_trees(), 12);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("forest-v1-level3.json")).expect("json")).expect("json");
    let rows: Vec<Vec<f64>> = serde_json::from_value(recorded["rows"].clone()).expect("rows");
    let rows = Array2::from_shape_vec((rows.len(), rows[0].len()), rows.concat()).expect("rows");
    let labels: Vec<usize> = serde_json::from_value(recorded["labels"].clone()).expect("labels");
    let scores: Vec<Vec<f64>> = serde_json::from_value(recorded["scores"].clone()).expect("scores");
    assert_eq!(Predictor::predict(loaded.model().get(), rows.view()).to_vec(), labels);
    let got = Predictor::scores(loaded.model().get(), rows.view()).expect("scores");
    assert_eq!(got.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(), scores);
    // The kinds table knows the earlier kind too.
    let any = model_persistence_models::kinds().load(&path).expect("by kind");
    assert_eq!(any.model().kind(), "linfa.random_forest.v3");
}

#[test]
fn golden_format_1_1_bundles_load() {
    write_fixtures_if_asked();
    let dense = common::Dense::from_linear(&common::linear());
    for level in [0, 9] {
        let path = dir_1_1().join(format!("dense-level{level}.bundle"));
        let loaded = model_persistence_core::load::<common::Dense>(&path).expect("golden dense bundle loads");
        assert_eq!(loaded.model(), &dense);
        assert_eq!(loaded.card(), &dense_card(&dense));
        assert_eq!(model_persistence_core::verify(&path).expect("verifies").format, (1, 1));
    }
    let path = dir_1_1().join("forest-v2-level3.bundle");
    let loaded = model_persistence_core::load::<RandomForest>(&path).expect("golden forest loads");
    assert_eq!(loaded.card().kind, "linfa.random_forest.v3");
    assert_eq!(loaded.model().n_trees(), 12);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir_1_1().join("forest-v2-level3.json")).expect("json")).expect("json");
    let (rows, _) = fraud_like(300, 0.5, 5);
    let labels: Vec<usize> = serde_json::from_value(recorded["labels"].clone()).expect("labels");
    let scores: Vec<Vec<f64>> = serde_json::from_value(recorded["scores"].clone()).expect("scores");
    assert_eq!(Predictor::predict(loaded.model().get(), rows.view()).to_vec(), labels);
    let got = Predictor::scores(loaded.model().get(), rows.view()).expect("scores");
    assert_eq!(got.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(), scores);
}

#[test]
fn a_type_reads_the_bundles_of_its_earlier_kind_and_no_other() {
    // `Dense` lists `test.linear.v1` as its earlier kind: the golden 1.0
    // linear bundles load as `Dense`, converted, the probe replayed.
    let model = common::linear();
    let loaded = model_persistence_core::load::<common::Dense>(dir().join("linear-level9.bundle")).expect("converted");
    assert_eq!(loaded.model(), &common::Dense::from_linear(&model));
    assert_eq!(loaded.card().kind, "test.dense.v2");
    // A kind it does not list is refused.
    match model_persistence_core::load::<common::Dense>(dir().join("tree-level3.bundle")) {
        Err(Error::WrongModelKind { expected, found }) => {
            assert_eq!(
                (expected.as_str(), found.as_str()),
                ("test.dense.v2", "linfa.decision_tree.v1")
            );
        }
        other => panic!("expected a wrong kind, got {other:?}"),
    }
}

#[cfg(feature = "onnx")]
#[test]
fn a_golden_onnx_tree_ensemble_of_the_node_by_node_kind_loads() {
    use model_persistence_models::onnx::TreeEnsemble;
    let path = dir().join("onnx-tree-ensemble-v1.bundle");
    assert_eq!(
        model_persistence_core::read_card(&path).expect("card").kind,
        "onnx.tree_ensemble.v1"
    );
    let loaded = model_persistence_core::load::<TreeEnsemble>(&path).expect("a v1 tree ensemble loads, probe replayed");
    assert_eq!(loaded.card().kind, "onnx.tree_ensemble.v3");
    let probe = loaded.card().probe.as_ref().expect("probe");
    assert!(
        probe.rows.iter().flatten().any(|v| v.is_nan()),
        "the probe holds missing values"
    );
    // Saved again, it is the new kind and loads as is.
    let again = model_persistence_core::to_bytes(loaded.model().get(), loaded.card()).expect("encodes");
    let reloaded = model_persistence_core::from_bytes::<TreeEnsemble>(&again).expect("reloads");
    assert_eq!(
        model_persistence_core::BundleReader::default()
            .read_card_bytes(&again)
            .expect("card")
            .kind,
        "onnx.tree_ensemble.v3"
    );
    let rows = Array2::from_shape_vec((probe.rows.len(), probe.rows[0].len()), probe.rows.concat()).expect("rows");
    assert_eq!(
        Predictor::predict(reloaded.model().get(), rows.view()),
        Predictor::predict(loaded.model().get(), rows.view())
    );
}

#[cfg(feature = "onnx")]
#[test]
fn a_golden_onnx_tree_ensemble_of_the_column_kind_loads() {
    use model_persistence_models::onnx::TreeEnsemble;
    // Written by the v2 code from the v1 golden bundle: the same forest.
    let path = dir_1_1().join("onnx-tree-ensemble-v2.bundle");
    assert_eq!(
        model_persistence_core::read_card(&path).expect("card").kind,
        "onnx.tree_ensemble.v2"
    );
    let loaded = model_persistence_core::load::<TreeEnsemble>(&path).expect("a v2 tree ensemble loads, probe replayed");
    assert_eq!(loaded.card().kind, "onnx.tree_ensemble.v3");
    let v1 = model_persistence_core::load::<TreeEnsemble>(dir().join("onnx-tree-ensemble-v1.bundle")).expect("v1");
    let probe = loaded.card().probe.as_ref().expect("probe");
    let rows = Array2::from_shape_vec((probe.rows.len(), probe.rows[0].len()), probe.rows.concat()).expect("rows");
    assert_eq!(
        Predictor::predict_scored(loaded.model().get(), rows.view()),
        Predictor::predict_scored(v1.model().get(), rows.view())
    );
    // Saved again, it is the new kind, smaller, and answers the same.
    let again = model_persistence_core::to_bytes(loaded.model().get(), loaded.card()).expect("encodes");
    let reloaded = model_persistence_core::from_bytes::<TreeEnsemble>(&again).expect("reloads");
    assert_eq!(
        Predictor::predict_scored(reloaded.model().get(), rows.view()),
        Predictor::predict_scored(loaded.model().get(), rows.view())
    );
    let raw = |bytes: &[u8]| {
        model_persistence_core::BundleReader::default()
            .read_card_bytes(bytes)
            .map(|c| c.kind)
            .expect("card")
    };
    assert_eq!(raw(&again), "onnx.tree_ensemble.v3");
}
