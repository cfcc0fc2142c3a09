#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Bundle save, load, verify and read_card: the random forest of 100 trees
//! and a 100 MB `f64` payload. Sizes are printed beside the times.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_trees::DecisionTree;
use model_persistence::models::linfa::RandomForest;
use model_persistence::prelude::*;
use model_persistence_testkit::{fraud_like, DenseVector, SplitMix64, FRAUD_FEATURES};
use rand::SeedableRng;

fn forest() -> (RandomForest, ModelCard) {
    let (x, y) = fraud_like(10_000, 0.1, 42);
    let data = Dataset::new(x, y);
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(7);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(10)), rng)
        .ensemble_size(100)
        .bootstrap_proportion(0.7)
        .feature_proportion(0.6)
        .fit(&data)
        .expect("fits");
    let forest = RandomForest::new(&ensemble, FRAUD_FEATURES.len()).expect("consistent");
    let card = ModelCard::builder("forest", &forest)
        .version(Version::new(1, 0, 0))
        .feature_names(FRAUD_FEATURES)
        .training_data(data.records().view(), "bench")
        .build()
        .expect("card");
    (forest, card)
}

fn bench_forest(c: &mut Criterion) {
    let (forest, card) = forest();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("forest_100_trees");
    group.sample_size(20);
    for level in [0_u8, 3, 9] {
        let writer = BundleWriter::default().level(level).without_card_json();
        let path = dir.path().join(format!("forest-{level}.bundle"));
        let saved = writer.save(&path, &forest, &card).expect("saves");
        eprintln!(
            "forest level {level}: file {} bytes, raw model {} bytes",
            saved.file_len(),
            saved.raw_len()
        );
        group.bench_with_input(BenchmarkId::new("save", level), &level, |b, _| {
            b.iter(|| writer.save(&path, &forest, &card).expect("saves"))
        });
        group.bench_with_input(BenchmarkId::new("load", level), &level, |b, _| {
            b.iter(|| black_box(persistence::load::<RandomForest>(&path).expect("loads")))
        });
        // The load `modelctl serve` and every `ModelServer<AnyModel>` make.
        let kinds = model_persistence::models::kinds();
        group.bench_with_input(BenchmarkId::new("load_dynamic", level), &level, |b, _| {
            b.iter(|| black_box(kinds.load(&path).expect("loads")))
        });
    }
    group.finish();
}

fn bench_large(c: &mut Criterion) {
    let mut rng = SplitMix64::new(1);
    // 100 MB of encoded payload: 12.5 M floats of 8 bytes in one blob.
    let model = DenseVector {
        weights: (0..12_500_000).map(|_| rng.next_normal()).collect(),
    };
    let card = ModelCard::builder("dense", &model)
        .version(Version::new(1, 0, 0))
        .n_features(1)
        .build()
        .expect("card");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("payload_100mb");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for level in [0_u8, 3] {
        let writer = BundleWriter::default().level(level).without_card_json();
        let path = dir.path().join(format!("dense-{level}.bundle"));
        let saved = writer.save(&path, &model, &card).expect("saves");
        eprintln!(
            "100 MB payload level {level}: file {} bytes, raw {} bytes",
            saved.file_len(),
            saved.raw_len()
        );
        group.throughput(Throughput::Bytes(saved.raw_len()));
        group.bench_with_input(BenchmarkId::new("save", level), &level, |b, _| {
            b.iter(|| writer.save(&path, &model, &card).expect("saves"))
        });
        group.bench_with_input(BenchmarkId::new("load", level), &level, |b, _| {
            b.iter(|| black_box(persistence::load::<DenseVector>(&path).expect("loads")))
        });
        let kinds = model_persistence_testkit::kinds();
        group.bench_with_input(BenchmarkId::new("load_dynamic", level), &level, |b, _| {
            b.iter(|| black_box(kinds.load(&path).expect("loads")))
        });
        group.bench_with_input(BenchmarkId::new("verify", level), &level, |b, _| {
            b.iter(|| black_box(persistence::verify(&path).expect("verifies")))
        });
        group.bench_with_input(BenchmarkId::new("read_file_bytes", level), &level, |b, _| {
            b.iter(|| black_box(std::fs::read(&path).expect("reads")))
        });
        group.bench_with_input(BenchmarkId::new("read_card", level), &level, |b, _| {
            b.iter(|| black_box(persistence::read_card(&path).expect("card")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_forest, bench_large);
criterion_main!(benches);
