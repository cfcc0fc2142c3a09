//! Golden bundles of every released format version load forever.
//!
//! The files under `tests/fixtures/format-1/` were written by format 1.0 and
//! are committed. Set `MP_WRITE_FIXTURES=1` to write them again (only when a
//! new format version is released, never to make this test pass).

mod common;

use std::path::PathBuf;

use linfa::prelude::*;
use linfa_trees::DecisionTree;
use model_persistence_core::{BundleWriter, Error, Model, ModelCard};
use ndarray::{Array1, Array2};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format-1")
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
        if std::env::var_os("MP_WRITE_FIXTURES").is_some() {
            write_fixtures();
        }
    });
}

fn write_fixtures() {
    std::fs::create_dir_all(dir()).expect("fixture dir");
    let model = common::linear();
    let card = common::linear_card(&model);
    for level in [0, 9] {
        let bytes = BundleWriter::default()
            .level(level)
            .to_bytes(&model, &card)
            .expect("encodes");
        std::fs::write(dir().join(format!("linear-level{level}.bundle")), bytes).expect("writes");
    }
    let (tree, card) = tree_and_card();
    let bytes = BundleWriter::default()
        .level(3)
        .to_bytes(&tree, &card)
        .expect("encodes");
    std::fs::write(dir().join("tree-level3.bundle"), bytes).expect("writes");
    // A bundle claiming format 2.0, with a valid header hash.
    let mut future = BundleWriter::default()
        .to_bytes(&model, &common::linear_card(&model))
        .expect("encodes");
    future[8] = 2;
    let header_end = 16 + u32::from_le_bytes(future[12..16].try_into().expect("4 bytes")) as usize;
    let hash = <sha2::Sha256 as sha2::Digest>::digest(&future[..header_end]);
    future[header_end..header_end + 32].copy_from_slice(&hash);
    std::fs::write(dir().join("format-2.0.bundle"), future).expect("writes");
}

/// The card as the golden fixtures recorded it: they were written before the
/// crate was renamed, when it recorded itself as `persistence-core`. The
/// fixtures are never rewritten, so the expectation carries the old name.
fn as_golden(mut card: ModelCard) -> ModelCard {
    if let Some(v) = card.dependencies.remove(model_persistence_core::CORE_DEPENDENCY) {
        card.dependencies.insert("persistence-core".to_owned(), v);
    }
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
        Model::predict(loaded.model(), rows.view()),
        Model::predict(&tree, rows.view())
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
