//! Peak memory of a load, counted by this test binary's allocator: crafted
//! bundles of every kind, each in the densest encoding its format allows
//! (structs as arrays, one-byte integers where floats are expected, one-leaf
//! trees), load through the dynamic road a server uses within
//! `LOAD_BYTES_PER_FILE_BYTE` times their header and inflated payload
//! (ONNX graphs with `onnx::FOLDED_BYTES_FLOOR` on top for tract), and a
//! compact forest within `forest::WALK_BYTES_PER_STORED_BYTE` times its
//! payload. The tests run one at a time: the counters are the process's.
//!
//! Past 500 lines on purpose: a counting allocator is one per test binary,
//! so every kind's crafted bundle is measured here, under the same one.
#![cfg(all(feature = "onnx", feature = "linfa"))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use model_persistence_core::{from_bytes, BundleReader, BundleWriter, ModelCard, LOAD_BYTES_PER_FILE_BYTE};
use model_persistence_models::forest::WALK_BYTES_PER_STORED_BYTE;
use model_persistence_models::onnx::{OnnxModel, TreeEnsemble, FOLDED_BYTES_FLOOR};
use prost::Message;
use tract_onnx::pb;

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(live, Ordering::SeqCst);
}

// SAFETY: every call is passed to `System` unchanged; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller's contract is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time: the counters are the whole process's.
static MEASURING: Mutex<()> = Mutex::new(());

/// Holds the other tests of this binary off while one measures.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The peak of live bytes above what was live when `f` started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

/// A float input or output of `[batch, width]`.
fn float_io(name: &str, width: i64) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: [None, Some(width)]
                        .into_iter()
                        .map(|d| pb::tensor_shape_proto::Dimension {
                            value: d.map(pb::tensor_shape_proto::dimension::Value::DimValue),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An ai.onnx.ml `TreeEnsembleRegressor` of `trees` trees, each one leaf
/// weighing 0.5, on one float input of 4 features.
fn single_leaf_trees(trees: i64) -> Vec<u8> {
    let ints = |name: &str, v: Vec<i64>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v,
        ..Default::default()
    };
    let floats = |name: &str, v: Vec<f32>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Floats as i32,
        floats: v,
        ..Default::default()
    };
    let strings = |name: &str, v: Vec<&str>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Strings as i32,
        strings: v.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    };
    let n = trees as usize;
    let node = pb::NodeProto {
        op_type: "TreeEnsembleRegressor".into(),
        domain: "ai.onnx.ml".into(),
        input: vec!["x".into()],
        output: vec!["y".into()],
        attribute: vec![
            ints("nodes_treeids", (0..trees).collect()),
            ints("nodes_nodeids", vec![0; n]),
            ints("nodes_featureids", vec![0; n]),
            floats("nodes_values", vec![0.0; n]),
            strings("nodes_modes", vec!["LEAF"; n]),
            ints("nodes_truenodeids", vec![0; n]),
            ints("nodes_falsenodeids", vec![0; n]),
            ints("target_treeids", (0..trees).collect()),
            ints("target_nodeids", vec![0; n]),
            ints("target_ids", vec![0; n]),
            floats("target_weights", vec![0.5; n]),
            pb::AttributeProto {
                name: "n_targets".into(),
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                i: 1,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
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
        graph: Some(pb::GraphProto {
            node: vec![node],
            input: vec![float_io("x", 4)],
            output: vec![float_io("y", 1)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn a_forest_load_stays_within_its_stated_multiple_of_the_payload() {
    let _alone = alone();
    let model = OnnxModel::from_graph(single_leaf_trees(400_000)).expect("a graph of one-leaf trees");
    let forest: TreeEnsemble = model.tree_ensemble().expect("lowered");
    let card = ModelCard::builder("leaves", &forest).build().expect("card");
    let bundle = BundleWriter::default()
        .level(0)
        .to_bytes(&forest, &card)
        .expect("bundle");
    let payload = BundleReader::default()
        .verify_bytes(&bundle)
        .expect("verifies")
        .payload
        .raw_len;
    drop((model, forest));
    let (loaded, peak) = peak_of(|| from_bytes::<TreeEnsemble>(&bundle).expect("loads"));
    let ratio = peak as f64 / payload as f64;
    eprintln!("payload {payload} bytes, load peak {peak} bytes: {ratio:.1}x");
    assert!(
        ratio <= WALK_BYTES_PER_STORED_BYTE as f64,
        "a load of a {payload}-byte payload peaked at {peak} bytes ({ratio:.1}x, stated {WALK_BYTES_PER_STORED_BYTE}x)"
    );
    drop(loaded);
}

// ---- every kind, through the dynamic load a server uses ----

/// A card for `kind` over `n_features` columns, with no probe (the crafted
/// payloads below are not the model the card was built for).
fn card_for(kind: &str, n_features: usize) -> ModelCard {
    let mut card = ModelCard::builder("crafted", &common::linear())
        .version(semver::Version::new(1, 0, 0))
        .build()
        .expect("card");
    card.kind = kind.to_owned();
    card.n_features = n_features;
    card.features.clear();
    card.feature_stats.clear();
    card.probe = None;
    card
}

/// Loads `bundle` through the built-in kinds table (the dynamic load a
/// server uses) and asserts its peak is within
/// [`LOAD_BYTES_PER_FILE_BYTE`] times the header and inflated payload, plus
/// `allowance`.
fn assert_bounded(what: &str, bundle: &[u8], allowance: usize) {
    let verified = BundleReader::default().verify_bytes(bundle).expect("verifies");
    let header = u32::from_le_bytes(bundle[12..16].try_into().expect("4 bytes")) as usize;
    let justified = verified.payload.raw_len as usize + header;
    let kinds = model_persistence_models::kinds();
    let (loaded, peak) = peak_of(|| kinds.load_bytes(bundle));
    let loaded = loaded.unwrap_or_else(|e| panic!("{what}: {e}"));
    let ratio = peak as f64 / justified as f64;
    eprintln!("{what}: header+payload {justified} bytes, load peak {peak} bytes: {ratio:.1}x");
    let bound = LOAD_BYTES_PER_FILE_BYTE as usize * justified + allowance;
    assert!(
        peak <= bound,
        "{what}: a load of {justified} bytes peaked at {peak} bytes ({ratio:.1}x), over its bound of {bound}"
    );
    drop(loaded);
}

/// Appends a MessagePack array header for `n` elements.
fn array(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=15 => out.push(0x90 | n as u8),
        16..=0xffff => {
            out.push(0xdc);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdd);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

/// A linfa tree node in its densest encoding (an array, one byte a field),
/// with `depth` levels of splits below it.
fn tree_node(out: &mut Vec<u8>, depth: u8, levels: u8) {
    array(out, 9);
    // feature_idx, feature_name, split_value, impurity_decrease
    out.extend_from_slice(&[0x00, 0xa0, 0x00, 0x00]);
    if levels == 0 {
        // no children, a leaf, predicting 1, at its depth
        out.extend_from_slice(&[0xc0, 0xc0, 0xc3, 0x01, depth]);
    } else {
        tree_node(out, depth + 1, levels - 1);
        tree_node(out, depth + 1, levels - 1);
        out.extend_from_slice(&[0xc2, 0x00, depth]);
    }
}

/// A linfa decision tree (as an array) of `levels` levels of splits.
fn decision_tree(out: &mut Vec<u8>, levels: u8, n_features: u8) {
    array(out, 2);
    tree_node(out, 0, levels);
    out.push(n_features);
}

#[test]
fn a_logistic_regression_of_one_byte_coefficients_stays_within_the_multiple() {
    let _alone = alone();
    let n = 1 << 20;
    let mut raw = Vec::new();
    array(&mut raw, 4);
    raw.extend_from_slice(&[0x00, 0x00]); // threshold, intercept
    array(&mut raw, 3); // ndarray: v, dim, data
    raw.push(0x01);
    array(&mut raw, 1);
    raw.extend_from_slice(&[0xce]);
    raw.extend_from_slice(&(n as u32).to_be_bytes());
    array(&mut raw, n);
    raw.extend(std::iter::repeat_n(0x00, n));
    array(&mut raw, 2); // labels: pos, neg as (class, label)
    raw.extend_from_slice(&[0x92, 0x01, 0x01, 0x92, 0x00, 0x00]);
    let bundle = common::craft(&card_for("linfa.logistic_regression.v1", n), &raw, false);
    assert_bounded("logistic regression", &bundle, 0);
}

#[test]
fn a_decision_tree_of_ten_byte_nodes_stays_within_the_multiple() {
    let _alone = alone();
    let mut raw = Vec::new();
    decision_tree(&mut raw, 17, 4);
    let bundle = common::craft(&card_for("linfa.decision_tree.v1", 4), &raw, false);
    assert_bounded("decision tree", &bundle, 0);
}

#[test]
fn a_v1_random_forest_of_one_leaf_trees_stays_within_the_multiple() {
    let _alone = alone();
    let trees = 200_000;
    let mut raw = Vec::new();
    array(&mut raw, 3);
    raw.push(0x04); // n_features
    array(&mut raw, trees);
    for _ in 0..trees {
        decision_tree(&mut raw, 0, 4);
    }
    array(&mut raw, trees);
    for _ in 0..trees {
        raw.extend_from_slice(&[0x91, 0x00]);
    }
    let bundle = common::craft(&card_for("linfa.random_forest.v1", 4), &raw, false);
    assert_bounded("random forest v1 (one-leaf trees)", &bundle, 0);
}

#[test]
fn a_v1_random_forest_of_deep_trees_stays_within_the_multiple() {
    let _alone = alone();
    let mut raw = Vec::new();
    array(&mut raw, 3);
    raw.push(0x04);
    array(&mut raw, 8);
    for _ in 0..8 {
        decision_tree(&mut raw, 15, 4);
    }
    array(&mut raw, 8);
    for _ in 0..8 {
        raw.extend_from_slice(&[0x94, 0x00, 0x01, 0x02, 0x03]);
    }
    let bundle = common::craft(&card_for("linfa.random_forest.v1", 4), &raw, false);
    assert_bounded("random forest v1 (deep trees)", &bundle, 0);
}

/// The `head` and `post` of a model's stored forest, as MessagePack values.
fn head_and_post(model: &impl serde::Serialize) -> (serde_json::Value, serde_json::Value) {
    #[derive(serde::Deserialize)]
    struct Stored {
        forest: Forest,
    }
    #[derive(serde::Deserialize)]
    struct Forest {
        head: serde_json::Value,
        post: serde_json::Value,
    }
    let stored: Stored = rmp_serde::from_slice(&rmp_serde::to_vec_named(model).expect("encodes")).expect("decodes");
    (stored.forest.head, stored.forest.post)
}

/// The columns of a forest stored one blob per column (the v2 kinds).
#[derive(serde::Serialize)]
struct Columns<T: model_persistence_core::blob::Element> {
    n_features: u64,
    n_outputs: u64,
    #[serde(with = "model_persistence_core::blob")]
    modes: Vec<u8>,
    #[serde(with = "model_persistence_core::blob")]
    features: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    thresholds: Vec<T>,
    #[serde(with = "model_persistence_core::blob")]
    a: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    b: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    roots: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    weight_outputs: Vec<u32>,
    #[serde(with = "model_persistence_core::blob")]
    weight_values: Vec<f64>,
    #[serde(with = "model_persistence_core::blob")]
    base_values: Vec<f64>,
    post: serde_json::Value,
    head: serde_json::Value,
}

/// `trees` one-leaf trees, each leaf one weight for `output`.
fn one_leaf_columns<T: model_persistence_core::blob::Element + Default>(
    trees: u32,
    n_outputs: u64,
    output: u32,
    (head, post): (serde_json::Value, serde_json::Value),
) -> Columns<T> {
    const LEAF: u8 = 6;
    let n = trees as usize;
    Columns {
        n_features: 4,
        n_outputs,
        modes: vec![LEAF; n],
        features: vec![0; n],
        thresholds: vec![T::default(); n],
        a: (0..trees).collect(),
        b: (1..=trees).collect(),
        roots: (0..trees).collect(),
        weight_outputs: vec![output; n],
        weight_values: vec![1.0; n],
        base_values: if n_outputs == 1 { vec![0.0] } else { Vec::new() },
        post,
        head,
    }
}

fn fixture(path: &str) -> Vec<u8> {
    let at = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(path);
    std::fs::read(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display()))
}

#[test]
fn random_forests_of_v2_and_v3_stay_within_the_multiple() {
    let _alone = alone();
    use model_persistence_models::linfa::RandomForest;
    let real = from_bytes::<RandomForest>(&fixture("format-1.1/forest-v2-level3.bundle"))
        .expect("fixture loads")
        .into_parts()
        .0;
    #[derive(serde::Serialize)]
    struct V2 {
        n_features: usize,
        forest: Columns<f64>,
    }
    let v2 = V2 {
        n_features: 4,
        forest: one_leaf_columns(400_000, 2, 1, head_and_post(&real)),
    };
    let raw = rmp_serde::to_vec_named(&v2).expect("encodes");
    let bundle = common::craft(&card_for("linfa.random_forest.v2", 4), &raw, false);
    assert_bounded("random forest v2", &bundle, 0);

    let forest = from_bytes::<RandomForest>(&bundle)
        .expect("a v2 forest loads")
        .into_parts()
        .0;
    let v3 = BundleWriter::default()
        .level(0)
        .to_bytes(&forest, &card_for("linfa.random_forest.v3", 4))
        .expect("bundle");
    drop(forest);
    assert_bounded("random forest v3", &v3, 0);
}

#[test]
fn tree_ensembles_of_v1_and_v2_stay_within_the_multiple() {
    let _alone = alone();
    let model = OnnxModel::from_graph(single_leaf_trees(2)).expect("a graph");
    let real: TreeEnsemble = model.tree_ensemble().expect("lowered");
    let (head, post) = head_and_post(&real);

    #[derive(serde::Serialize)]
    struct V2 {
        forest: Columns<f32>,
        n_features: usize,
    }
    let v2 = V2 {
        forest: one_leaf_columns(400_000, 1, 0, (head.clone(), post.clone())),
        n_features: 4,
    };
    let raw = rmp_serde::to_vec_named(&v2).expect("encodes");
    let bundle = common::craft(&card_for("onnx.tree_ensemble.v2", 4), &raw, false);
    assert_bounded("tree ensemble v2", &bundle, 0);

    // v1: a map per node in the file's own layout; here each node an array
    // of one-byte fields, the densest a file can be.
    let trees = 200_000;
    let mut raw = Vec::new();
    array(&mut raw, 2);
    array(&mut raw, 8);
    array(&mut raw, trees);
    for i in 0..trees {
        array(&mut raw, 6);
        raw.extend_from_slice(&[0xa4, b'L', b'e', b'a', b'f', 0xc2, 0x00, 0x00]);
        raw.push(0xce);
        raw.extend_from_slice(&(i as u32).to_be_bytes());
        raw.push(0xce);
        raw.extend_from_slice(&(i as u32 + 1).to_be_bytes());
    }
    array(&mut raw, trees);
    for i in 0..trees {
        raw.push(0xce);
        raw.extend_from_slice(&(i as u32).to_be_bytes());
    }
    array(&mut raw, trees);
    for _ in 0..trees {
        raw.extend_from_slice(&[0x92, 0x00, 0x01]);
    }
    raw.extend_from_slice(&[0x04, 0x01, 0x91, 0x00]); // n_features, n_outputs, base_values
    raw.extend(rmp_serde::to_vec(&post).expect("encodes"));
    raw.extend(rmp_serde::to_vec(&head).expect("encodes"));
    raw.push(0x04);
    let bundle = common::craft(&card_for("onnx.tree_ensemble.v1", 4), &raw, false);
    assert_bounded("tree ensemble v1", &bundle, 0);
}

/// An `onnx.v1` bundle of `graph`, stored uncompressed.
fn graph_bundle(graph: Vec<u8>) -> Vec<u8> {
    let model = OnnxModel::from_graph(graph).expect("the graph imports");
    let card = ModelCard::builder("graph", &model)
        .version(semver::Version::new(1, 0, 0))
        .build()
        .expect("card");
    BundleWriter::default()
        .level(0)
        .to_bytes(&model, &card)
        .expect("bundle")
}

#[test]
fn onnx_graphs_stay_within_the_multiple() {
    let _alone = alone();
    for name in [
        "mlp.onnx",
        "random_forest_regressor.onnx",
        "pipeline_imputer_scaler_forest.onnx",
        "xgboost.onnx",
    ] {
        let bundle = graph_bundle(fixture(&format!("onnx/{name}")));
        assert_bounded(name, &bundle, FOLDED_BYTES_FLOOR as usize);
    }
}

#[test]
fn a_card_of_one_byte_values_stays_within_the_multiple() {
    let _alone = alone();
    let mut raw = Vec::new();
    array(&mut raw, 4);
    raw.extend_from_slice(&[0x00, 0x00, 0x93, 0x01, 0x91, 0x01, 0x91, 0x00]);
    raw.extend_from_slice(&[0x92, 0x92, 0x01, 0x01, 0x92, 0x00, 0x00]);
    let mut card = card_for("linfa.logistic_regression.v1", 1);
    card.extensions
        .insert("wide".into(), serde_json::Value::Array(vec![0.into(); 1 << 20]));
    let bundle = common::craft(&card, &raw, false);
    assert_bounded("card of one-byte values", &bundle, 0);
}

#[test]
fn a_graph_that_folds_within_its_budget_stays_within_the_bound() {
    let _alone = alone();
    let node = |op: &str, inputs: &[&str], output: &str| pb::NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    // 2^20 elements folded (8 MiB as counted), under the floor.
    let graph = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            node: vec![
                node("ConstantOfShape", &["shape"], "c"),
                node("ReduceSum", &["c"], "s"),
                node("Add", &["x", "s"], "y"),
            ],
            initializer: vec![pb::TensorProto {
                name: "shape".into(),
                data_type: 7,
                dims: vec![2],
                int64_data: vec![1 << 10, 1 << 10],
                ..Default::default()
            }],
            input: vec![float_io("x", 4)],
            output: vec![float_io("y", 4)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let bundle = graph_bundle(graph);
    assert_bounded("a graph folding 2^20 elements", &bundle, FOLDED_BYTES_FLOOR as usize);
}
