//! The scikit-learn forest exported to ONNX (tests/fixtures/onnx), run on
//! the flat forest (a lone tree ensemble is lowered to it) through the
//! typed API and through the server's predict path: one row and 1000 rows.
//! `scripts/bench-onnx.py` times onnxruntime on the same graph and rows;
//! docs/performance.md has both, measured in one run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use model_persistence::persistence::onnx::OnnxModel;
use model_persistence::persistence::AnyModel;
use model_persistence::prelude::*;
use ndarray::{s, Array2};

fn rows() -> (Vec<u8>, Array2<f64>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("random_forest.json")).expect("fixture")).expect("json");
    let rows: Vec<Vec<f64>> = serde_json::from_value(json["rows"].clone()).expect("rows");
    let x = Array2::from_shape_vec((rows.len(), 20), rows.concat()).expect("rows");
    // 1000 rows: the held-out rows repeated.
    let tiled = Array2::from_shape_fn((1000, 20), |(i, j)| x[[i % x.nrows(), j]]);
    (std::fs::read(dir.join("random_forest.onnx")).expect("graph"), tiled)
}

fn onnx_forest(c: &mut Criterion) {
    let (graph, x) = rows();
    let model = OnnxModel::from_graph(graph).expect("graph");
    let card = ModelCard::builder("forest", &model)
        .n_features(20)
        .build()
        .expect("card");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("forest.bundle");
    persistence::save(&path, &model, &card).expect("save");
    let server = ModelServer::<AnyModel>::start(Source::bundle(&path), ReloadPolicy::Manual).expect("server");
    let mut group = c.benchmark_group("onnx_forest_30_trees_depth_8");
    let one = x.slice(s![..1, ..]).to_owned();
    group.bench_function("model_predict_1_row", |b| {
        b.iter(|| black_box(persistence::Model::predict(&model, one.view())))
    });
    group.bench_function("model_predict_1000_rows", |b| {
        b.iter(|| black_box(persistence::Model::predict(&model, x.view())))
    });
    group.bench_function("server_predict_1_row", |b| {
        b.iter(|| black_box(server.predict(one.view()).expect("ok")))
    });
    group.bench_function("server_predict_1000_rows", |b| {
        b.iter(|| black_box(server.predict(x.view()).expect("ok")))
    });
    group.bench_function("server_predict_scored_1000_rows", |b| {
        b.iter(|| black_box(server.predict_scored(x.view()).expect("ok")))
    });
    group.finish();
}

criterion_group!(benches, onnx_forest);
criterion_main!(benches);
