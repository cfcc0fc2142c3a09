//! Helpers for the registry tests: a tiny model and the three backends.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;

use model_persistence_core::ModelCard;
use model_persistence_versioning::Registry;

/// The test model: the library's minimal linear classifier.
pub type Linear = model_persistence_testkit::LinearClassifier;

pub fn card(name: &str, model: &Linear, metrics: &[(&str, f64)]) -> ModelCard {
    ModelCard::builder(name, model)
        .metrics(metrics.iter().map(|(k, v)| (k.to_string(), *v)))
        .probe(ndarray::array![[1.0, 2.0]].view())
        .build()
        .expect("card")
}

pub fn model(seed: f64) -> Linear {
    Linear {
        weights: vec![seed, -seed],
        bias: 0.0,
    }
}

/// The registry backends every conformance test runs on.
pub fn backends() -> Vec<(&'static str, Registry, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = Registry::create(dir.path()).expect("local registry");
    let memory = Registry::with_storage(Arc::new(
        model_persistence_versioning::ObjectStorage::in_memory().expect("runtime"),
    ));
    vec![
        ("local", local, Some(dir)),
        ("memory", memory, None),
        ("s3", s3(), None),
    ]
}

/// A registry under a fresh prefix of the S3 test server's bucket.
pub fn s3() -> Registry {
    Registry::create_url(&s3_url()).expect("s3 registry")
}

/// A fresh prefix of the S3 test server's bucket, as a URL.
pub fn s3_url() -> String {
    let base = std::env::var("MP_TEST_S3_URL").unwrap_or_else(|_| {
        panic!(
            "MP_TEST_S3_URL is not set: the S3 conformance tests need the SeaweedFS test server. \
             Run `bash scripts/test.sh`, or start it with `eval \"$(scripts/s3-server.sh start)\"`"
        )
    });
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = format!(
        "{}/{}-{}-{}",
        base.trim_end_matches('/'),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    unique
}
