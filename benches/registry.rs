#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! The registry at fleet size: list, best-by-metric, history and alias-at
//! over 10,000 versions through the index, beside the same listing read
//! from every record (the path before the index); an alias check; a load
//! through the bundle cache beside a download; publish. On the local
//! directory, and on the S3 test server when `MP_TEST_S3_URL` is set
//! (`eval "$(scripts/s3-server.sh start)"`, built with `--features
//! object-store`).
//!
//! `MP_BENCH_VERSIONS` changes the number of versions (default 10,000).
//! Last, an alias moved 10,000 times: promote and history on it.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use model_persistence::prelude::*;
use model_persistence::versioning::{BundleCache, Direction, ModelRef, Registry, VersionSpec};
use model_persistence_testkit::LinearClassifier;

/// A small model: twenty weights.
type Small = LinearClassifier;

fn card(i: usize, model: &Small) -> ModelCard {
    ModelCard::builder("bench", model)
        .metric("f1", (i % 997) as f64 / 997.0)
        .build()
        .expect("card")
}

fn versions() -> usize {
    std::env::var("MP_BENCH_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Publishes `n` versions from eight threads (as eight publishers would),
/// moving `production` every hundred.
fn fill(reg: &Registry, n: usize) {
    let model = Small {
        weights: vec![0.5; 20],
        bias: 0.0,
    };
    std::thread::scope(|s| {
        for t in 0..8 {
            let (reg, model) = (reg.clone(), model.clone());
            s.spawn(move || {
                for i in (t..n).step_by(8) {
                    let v = Version::new(1, (i / 1000) as u64, (i % 1000) as u64);
                    reg.publish_model(&model, &card(i, &model), VersionSpec::Exact(v.clone()))
                        .expect("publish");
                    if i % 100 == 0 {
                        reg.set_alias("bench", "production", &v).expect("alias");
                    }
                }
            });
        }
    });
}

fn bench_at(c: &mut Criterion, group_name: &str, reg: &Registry) {
    let n = versions();
    let start = std::time::Instant::now();
    fill(reg, n);
    eprintln!("{group_name}: published {n} versions in {:.1?}", start.elapsed());
    let start = std::time::Instant::now();
    assert_eq!(reg.versions("bench").expect("versions").len(), n);
    eprintln!("{group_name}: first listing (builds the index) {:.1?}", start.elapsed());
    let middle = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);

    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.bench_function("list_versions", |b| {
        b.iter(|| black_box(reg.versions("bench").expect("list")))
    });
    group.bench_function("list_from_records", |b| {
        b.iter(|| black_box(reg.listing_from_records("bench").expect("list")))
    });
    group.bench_function("best_by_metric", |b| {
        b.iter(|| black_box(reg.best("bench", "f1", Direction::HigherIsBetter).expect("best")))
    });
    group.bench_function("history", |b| {
        b.iter(|| black_box(reg.history("bench").expect("history")))
    });
    group.bench_function("alias_at", |b| {
        b.iter(|| black_box(reg.alias_at("bench", "production", middle).expect("alias_at")))
    });
    group.bench_function("alias_read", |b| {
        b.iter(|| black_box(reg.alias("bench", "production").expect("alias")))
    });
    let mut follower = reg.follow("bench", "production").expect("follow");
    group.bench_function("alias_check_unchanged", |b| {
        b.iter(|| black_box(follower.check().expect("check")))
    });

    // A 1 MB bundle: loaded from storage each time, or through the cache.
    let big = Small {
        weights: (0..125_000).map(|i| f64::from(i % 7) * 0.1).collect(),
        bias: 0.0,
    };
    let info = reg
        .publish_model(&big, &card(0, &big), VersionSpec::Exact(Version::new(9, 0, 0)))
        .expect("publish");
    let reference: ModelRef = format!("bench@{}", info.version).parse().expect("reference");
    group.bench_function("load_1mb_download", |b| {
        b.iter(|| black_box(reg.load::<Small>(&reference).expect("load")))
    });
    let cache_dir = tempfile::tempdir().expect("cache dir");
    let cached = reg
        .clone()
        .cache(BundleCache::new(cache_dir.path(), 64 << 20).expect("cache"));
    cached.load::<Small>(&reference).expect("fill the cache");
    group.bench_function("load_1mb_cache_hit", |b| {
        b.iter(|| black_box(cached.load::<Small>(&reference).expect("load")))
    });
    let mut i = 0;
    group.bench_function("publish_small_bundle", |b| {
        b.iter(|| {
            i += 1;
            let small = Small {
                weights: vec![0.5; 20],
                bias: 0.0,
            };
            reg.publish_model(
                &small,
                &card(i, &small),
                VersionSpec::Exact(Version::new(10, 0, i as u64)),
            )
            .expect("publish")
        })
    });
    group.finish();
}

fn bench_local(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    bench_at(c, "registry_local", &reg);
}

/// The same on the S3 test server.
fn bench_s3(c: &mut Criterion) {
    if cfg!(not(feature = "object-store")) {
        eprintln!("built without the object-store feature: the S3 registry benches need --features object-store");
        return;
    }
    let Ok(base) = std::env::var("MP_TEST_S3_URL") else {
        eprintln!(
            "MP_TEST_S3_URL is not set: the S3 registry benches need the test server \
             (eval \"$(scripts/s3-server.sh start)\")"
        );
        return;
    };
    let location = format!("{}/bench-{}", base.trim_end_matches('/'), std::process::id());
    let reg = Registry::create_url(&location).expect("s3 registry");
    bench_at(c, "registry_s3", &reg);
}

/// An alias moved 10,000 times (`MP_BENCH_MOVES`): a promotion reads and
/// writes a bounded alias object (at most 1,024 moves; older ones are in
/// segments), and the history reads every move.
fn bench_busy_alias(c: &mut Criterion) {
    let moves: usize = std::env::var("MP_BENCH_MOVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    let model = Small {
        weights: vec![0.5; 20],
        bias: 0.0,
    };
    let versions: Vec<Version> = (0..3)
        .map(|i| {
            reg.publish_model(
                &model,
                &card(i, &model),
                VersionSpec::Exact(Version::new(1, 0, i as u64)),
            )
            .expect("publish")
            .version
        })
        .collect();
    let start = std::time::Instant::now();
    for i in 0..moves {
        reg.set_alias("bench", "production", &versions[i % 3]).expect("move");
    }
    eprintln!("registry_busy_alias: {moves} moves in {:.1?}", start.elapsed());
    let mut group = c.benchmark_group("registry_busy_alias");
    let mut i = 0;
    group.bench_function("promote", |b| {
        b.iter(|| {
            i += 1;
            black_box(reg.set_alias("bench", "production", &versions[i % 3]).expect("move"))
        })
    });
    group.bench_function("history", |b| {
        b.iter(|| black_box(reg.history("bench").expect("history").len()))
    });
    group.finish();
}

criterion_group!(benches, bench_local, bench_s3, bench_busy_alias);
criterion_main!(benches);
