//! Helpers for the registry tests: a tiny model and the three backends.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;

use ndarray::{Array1, ArrayView2};
use persistence_core::{Model, ModelCard, StructureError, Version};
use serde::{Deserialize, Serialize};
use versioning::Registry;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub weights: Vec<f64>,
}

impl Model for Linear {
    const KIND: &'static str = "test.linear.v1";
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }
    fn check_structure(&self, _: usize) -> Result<(), StructureError> {
        Ok(())
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        rows.rows()
            .into_iter()
            .map(|r| r.iter().zip(&self.weights).map(|(x, w)| x * w).sum())
            .collect()
    }
}

pub fn card(name: &str, model: &Linear, metrics: &[(&str, f64)]) -> ModelCard {
    ModelCard::builder(name, Version::new(0, 0, 0), model)
        .metrics(metrics.iter().map(|(k, v)| (k.to_string(), *v)))
        .probe(ndarray::array![[1.0, 2.0]].view())
        .build()
        .expect("card")
}

pub fn model(seed: f64) -> Linear {
    Linear {
        weights: vec![seed, -seed],
    }
}

/// The registry backends every conformance test runs on.
pub fn backends() -> Vec<(&'static str, Registry, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = Registry::open(dir.path().to_str().expect("utf-8")).expect("local registry");
    let memory = Registry::with_storage(Arc::new(versioning::ObjectStorage::in_memory().expect("runtime")));
    vec![
        ("local", local, Some(dir)),
        ("memory", memory, None),
        ("s3", s3(), None),
    ]
}

/// A registry under a fresh prefix of the S3 test server's bucket.
pub fn s3() -> Registry {
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
    Registry::open(&unique).expect("s3 registry")
}
