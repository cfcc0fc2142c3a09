//! Tree ensembles exported to ONNX, run on the flat forest (a lone tree
//! ensemble is lowered to it) through the typed API and through the
//! server's predict path: one row and 1000 rows. Always the scikit-learn
//! forest of tests/fixtures/onnx; with `MP_BENCH_TREES=DIR` (what
//! `scripts/bench-trees.sh` sets after writing it) also the 300-tree
//! XGBoost model in DIR. The script times onnxruntime on the same graphs
//! and rows; docs/performance.md has both, measured in one run. One row is
//! also timed as runs of calls (best and median run) before criterion's
//! samples, which carry every pause of a shared machine.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use model_persistence::models::onnx::OnnxModel;
use model_persistence::persistence::AnyModel;
use model_persistence::prelude::*;
use ndarray::{s, Array2};

/// The graph in `dir/{name}.onnx` and 1000 rows from `dir/{name}.json`
/// (its rows repeated).
fn load(dir: &Path, name: &str) -> (Vec<u8>, Array2<f64>) {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).expect("rows")).expect("json");
    let rows: Vec<Vec<f64>> = serde_json::from_value(json["rows"].clone()).expect("rows");
    let width = rows[0].len();
    let x = Array2::from_shape_vec((rows.len(), width), rows.concat()).expect("rows");
    let tiled = Array2::from_shape_fn((1000, width), |(i, j)| x[[i % x.nrows(), j]]);
    (std::fs::read(dir.join(format!("{name}.onnx"))).expect("graph"), tiled)
}

fn bench(c: &mut Criterion, group: &str, graph: Vec<u8>, x: Array2<f64>) {
    let model = OnnxModel::from_graph(graph).expect("graph");
    assert!(model.runs_natively(), "{group}: on the flat forest");
    let card = ModelCard::builder("trees", &model)
        .n_features(x.ncols())
        .build()
        .expect("card");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trees.bundle");
    persistence::save(&path, &model, &card).expect("save");
    let server = ModelServer::<AnyModel>::start(Source::bundle(&path), ReloadPolicy::Manual).expect("server");
    let one = x.slice(s![..1, ..]).to_owned();
    runs_of_calls(&format!("{group}/model_predict_1_row"), || {
        black_box(persistence::Predictor::predict(&model, one.view()));
    });
    runs_of_calls(&format!("{group}/server_predict_1_row"), || {
        black_box(server.predict(one.view()).expect("ok"));
    });
    let mut group = c.benchmark_group(group);
    group.bench_function("model_predict_1_row", |b| {
        b.iter(|| black_box(persistence::Predictor::predict(&model, one.view())))
    });
    group.bench_function("model_predict_1000_rows", |b| {
        b.iter(|| black_box(persistence::Predictor::predict(&model, x.view())))
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

/// One row's time as 100 runs of 2,000 calls give it, best run and
/// median run: on a shared machine criterion's estimates carry every
/// pause of the machine, and the best and median runs are what compare
/// across builds and with onnxruntime's median of single calls.
fn runs_of_calls(name: &str, mut call: impl FnMut()) {
    const RUNS: usize = 100;
    const CALLS: u32 = 2_000;
    for _ in 0..CALLS * 20 {
        call(); // warm-up, not timed
    }
    let mut per_call: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..CALLS {
                call();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    println!(
        "{name}: runs of {CALLS} calls: best {:.0} ns, median {:.0} ns",
        per_call[0],
        per_call[RUNS / 2]
    );
}

fn onnx_trees(c: &mut Criterion) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let (graph, x) = load(&fixtures, "random_forest");
    bench(c, "onnx_forest_30_trees_depth_8", graph, x);
    match std::env::var_os("MP_BENCH_TREES") {
        Some(dir) => {
            let (graph, x) = load(Path::new(&dir), "xgboost_300");
            bench(c, "onnx_xgboost_300_trees_depth_6", graph, x);
        }
        None => eprintln!("the 300-tree XGBoost model is benched by `bash scripts/bench-trees.sh`"),
    }
}

criterion_group!(benches, onnx_trees);
criterion_main!(benches);
