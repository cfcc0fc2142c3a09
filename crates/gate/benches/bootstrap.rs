#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Bootstrap of F1 with 1,000 resamples on 100,000 paired predictions, and
//! McNemar's test on the same rows.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use model_persistence_gate::{metric_fn, Bootstrap, McNemar, Paired};
use model_persistence_testkit::SplitMix64;

fn paired(n: usize) -> Paired {
    let mut rng = SplitMix64::new(5);
    let actual: Vec<usize> = (0..n).map(|_| usize::from(rng.next_f64() < 0.1)).collect();
    let noisy = |rng: &mut SplitMix64, flip: f64| -> Vec<usize> {
        actual
            .iter()
            .map(|&a| if rng.next_f64() < flip { 1 - a } else { a })
            .collect()
    };
    let candidate = noisy(&mut rng, 0.04);
    let baseline = noisy(&mut rng, 0.05);
    Paired {
        actual,
        candidate,
        baseline,
        ..Paired::default()
    }
}

fn bench(c: &mut Criterion) {
    let p = paired(100_000);
    let f1 = metric_fn("f1").expect("built in");
    let mut group = c.benchmark_group("gate_100k_predictions");
    group.sample_size(10);
    group.bench_function("bootstrap_f1_1000_resamples", |b| {
        b.iter(|| black_box(Bootstrap::default().difference(&p, &f1)))
    });
    group.bench_function("mcnemar", |b| {
        b.iter(|| black_box(McNemar::from_predictions(&p.actual, &p.candidate, &p.baseline)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
