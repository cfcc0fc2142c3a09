//! The same registry on S3-compatible object storage.
//!
//! Point it at a bucket with a URL and the usual AWS variables:
//!
//! ```sh
//! export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=eu-west-1
//! # for a non-AWS server (SeaweedFS, MinIO, ...) also:
//! export AWS_ENDPOINT=http://127.0.0.1:18333 AWS_ALLOW_HTTP=true
//! cargo run --release --features object-store --example s3_registry -- s3://my-bucket/models
//! ```
//!
//! The test server of this repository works too:
//! `eval "$(scripts/s3-server.sh start)"` then run it without arguments
//! (it reads `MP_TEST_S3_URL`).
//!
//! It can be run again on the same prefix: each run publishes three more
//! versions and moves `production` to the best one with a compare-and-swap
//! from wherever it pointed.

mod common;

use model_persistence::prelude::*;
use model_persistence::versioning::{Bump, Direction, Registry, VersionSpec};
use model_persistence_testkit::LinearClassifier;

use common::Result;

/// What the run did, for the test that runs this example.
#[allow(dead_code)] // Read by tests/examples.rs, not by main.
pub(crate) struct Summary {
    pub(crate) versions: Vec<Version>,
    pub(crate) production: Version,
    pub(crate) damaged: usize,
}

pub(crate) fn run(location: &str) -> Result<Summary> {
    println!("☁️  Registry at {location}");
    let registry = Registry::create_url(location)?;
    let earlier = registry.versions("churn")?.len();
    if earlier > 0 {
        println!("  the registry already holds {earlier} versions of churn: publishing three more");
    }
    for (i, f1) in [0.71, 0.78, 0.74].into_iter().enumerate() {
        let model = LinearClassifier {
            weights: vec![1.0, -0.5, i as f64],
            bias: 0.1,
        };
        let card = ModelCard::builder("churn", &model)
            .metric("f1", f1)
            .feature_names(["tenure", "spend", "complaints"])
            .build()?;
        let info = registry.publish_model(&model, &card, VersionSpec::Bump(Bump::Minor))?;
        println!(
            "  published churn {} ({} bytes, F1 {f1})",
            info.version, info.bundle_len
        );
    }
    let best = registry
        .best("churn", "f1", Direction::HigherIsBetter)?
        .ok_or("no F1")?;
    let current = registry.alias("churn", "production")?.map(|t| t.version);
    registry.set_alias_if("churn", "production", &best.version, current.as_ref())?;
    println!("  production -> {} (best by F1)", best.version);
    let loaded = registry.load::<LinearClassifier>(&"churn@production".parse()?)?;
    println!(
        "  loaded and verified churn@production: content id {}",
        loaded.content_id().short()
    );
    let report = registry.verify("churn")?;
    println!(
        "  verified {} versions, {} damaged",
        report.checked,
        report.damaged.len()
    );
    for e in registry.history("churn")? {
        println!("  {}  {}", e.at.replace_nanosecond(0).unwrap_or(e.at), e.kind);
    }
    Ok(Summary {
        versions: registry.versions("churn")?.into_iter().map(|v| v.version).collect(),
        production: loaded.card().version.clone(),
        damaged: report.damaged.len(),
    })
}

fn main() -> std::process::ExitCode {
    let Some(location) = std::env::args().nth(1).or_else(|| std::env::var("MP_TEST_S3_URL").ok()) else {
        eprintln!("error: give a registry URL such as s3://bucket/prefix (see the top of examples/s3_registry.rs)");
        return std::process::ExitCode::FAILURE;
    };
    common::exit_on_error(run(&location))
}
