#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Registry: publish of a small bundle, list and best-by-metric over 10,000
//! versions, alias read, on the local directory.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use model_persistence::persistence::synthetic::LinearClassifier;
use model_persistence::prelude::*;
use model_persistence::versioning::{Bump, Direction, Registry, VersionSpec};

/// A small model: twenty weights.
type Small = LinearClassifier;

fn card(i: usize, model: &Small) -> ModelCard {
    ModelCard::builder("bench", model)
        .metric("f1", (i % 997) as f64 / 997.0)
        .build()
        .expect("card")
}

fn bench_registry(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    let model = Small {
        weights: vec![0.5; 20],
        bias: 0.0,
    };
    for i in 0..10_000 {
        reg.publish_model(&model, &card(i, &model), VersionSpec::Bump(Bump::Patch))
            .expect("publish");
    }
    let latest = reg.versions("bench").expect("versions").pop().expect("some").version;
    reg.set_alias("bench", "production", &latest).expect("alias");
    let mut group = c.benchmark_group("registry_local_10k");
    group.sample_size(10);
    group.bench_function("list_versions", |b| {
        b.iter(|| black_box(reg.versions("bench").expect("list")))
    });
    group.bench_function("best_by_metric", |b| {
        b.iter(|| black_box(reg.best("bench", "f1", Direction::HigherIsBetter).expect("best")))
    });
    group.bench_function("alias_read", |b| {
        b.iter(|| black_box(reg.alias("bench", "production").expect("alias")))
    });
    group.finish();

    let small_dir = tempfile::tempdir().expect("temp dir");
    let small = Registry::create(small_dir.path()).expect("registry");
    let mut group = c.benchmark_group("registry_local");
    let mut i = 0;
    group.bench_function("publish_small_bundle", |b| {
        b.iter(|| {
            i += 1;
            small
                .publish_model(&model, &card(i, &model), VersionSpec::Bump(Bump::Patch))
                .expect("publish")
        })
    });
    group.finish();
}

/// The same operations on the S3 test server (with `--features object-store`),
/// when `MP_TEST_S3_URL` is set
/// (`eval "$(scripts/s3-server.sh start)"`); 200 versions, not 10,000: on S3
/// each listed version is one GET.
fn bench_s3(c: &mut Criterion) {
    if cfg!(not(feature = "object-store")) {
        eprintln!("built without the object-store feature: skipping the S3 registry benches");
        return;
    }
    let Ok(base) = std::env::var("MP_TEST_S3_URL") else {
        eprintln!(
            "MP_TEST_S3_URL is not set: skipping the S3 registry benches (start the server with scripts/s3-server.sh)"
        );
        return;
    };
    let location = format!("{}/bench-{}", base.trim_end_matches('/'), std::process::id());
    let reg = Registry::create_url(&location).expect("s3 registry");
    let model = Small {
        weights: vec![0.5; 20],
        bias: 0.0,
    };
    for i in 0..200 {
        reg.publish_model(&model, &card(i, &model), VersionSpec::Bump(Bump::Patch))
            .expect("publish");
    }
    let latest = reg.versions("bench").expect("versions").pop().expect("some").version;
    reg.set_alias("bench", "production", &latest).expect("alias");
    let mut group = c.benchmark_group("registry_s3");
    group.sample_size(10);
    group.bench_function("list_200_versions", |b| {
        b.iter(|| black_box(reg.versions("bench").expect("list")))
    });
    group.bench_function("alias_read", |b| {
        b.iter(|| black_box(reg.alias("bench", "production").expect("alias")))
    });
    let mut i = 1_000;
    group.bench_function("publish_small_bundle", |b| {
        b.iter(|| {
            i += 1;
            reg.publish_model(&model, &card(i, &model), VersionSpec::Bump(Bump::Patch))
                .expect("publish")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_registry, bench_s3);
criterion_main!(benches);
