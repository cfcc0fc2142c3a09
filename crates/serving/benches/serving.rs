#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Prediction through the server against the bare model, and latency while
//! a writer swaps versions continuously.

use model_persistence_core::Predictor;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use model_persistence_core::{BundleWriter, ModelCard, Version};
use model_persistence_serving::{ModelServer, ReloadPolicy, Source};
use model_persistence_testkit::LinearClassifier;

fn write(path: &std::path::Path, patch: u64) {
    let model = LinearClassifier {
        weights: vec![0.5; 20],
        bias: patch as f64 * 1e-3,
    };
    let card = ModelCard::builder("bench", &model)
        .version(Version::new(1, 0, patch))
        .build()
        .expect("card");
    BundleWriter::default()
        .without_card_json()
        .save(path, &model, &card)
        .expect("save");
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

fn latencies(server: &ModelServer<LinearClassifier>, rows: ndarray::ArrayView2<'_, f64>, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        black_box(server.predict(rows).expect("predict"));
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    write(&path, 0);
    let server = ModelServer::<LinearClassifier>::start(Source::bundle(&path), ReloadPolicy::Manual).expect("start");
    let bare = server.live();
    let rows = ndarray::Array2::from_elem((1, 20), 0.25);
    let mut group = c.benchmark_group("serving_single_row");
    group.bench_function("bare_model", |b| {
        b.iter(|| black_box(bare.model().predict(black_box(rows.view()))))
    });
    group.bench_function("through_server", |b| {
        b.iter(|| black_box(server.predict(black_box(rows.view())).expect("ok")))
    });
    group.finish();

    // p50 / p99 steady state versus while swapping continuously.
    let steady = latencies(&server, rows.view(), 2_000_000);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (server, stop, path) = (server.clone(), Arc::clone(&stop), path.clone());
        std::thread::spawn(move || {
            let mut patch = 1;
            while !stop.load(Ordering::Relaxed) {
                write(&path, patch);
                server.reload_if_updated().expect("reload");
                patch += 1;
            }
            patch - 1
        })
    };
    let swapping = latencies(&server, rows.view(), 2_000_000);
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    eprintln!(
        "latency steady p50 {:?} p99 {:?}; while swapping ({swaps} swaps) p50 {:?} p99 {:?}",
        percentile(&steady, 0.5),
        percentile(&steady, 0.99),
        percentile(&swapping, 0.5),
        percentile(&swapping, 0.99)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
