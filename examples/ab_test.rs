//! A 50 / 50 split between two versions, sticky per customer, with counts
//! per variant, and a shadow model compared off the hot path.
//!
//! Run with `cargo run --release --example ab_test`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{fraud_split, metrics, train_logistic, Result};
use linfa_logistic::FittedLogisticRegression;
use model_persistence::prelude::*;
use model_persistence::serving::{AbSplit, ModelServer, ReloadPolicy, Source};
use model_persistence::versioning::{Registry, VersionSpec};
use model_persistence_testkit::FRAUD_FEATURES;
use ndarray::s;

type Lr = FittedLogisticRegression<f64, usize>;

/// What the run measured, for the test that runs this example.
#[allow(dead_code)] // Read by tests/examples.rs, not by main.
pub(crate) struct Summary {
    pub(crate) counts: Vec<(String, u64)>,
    pub(crate) sticky: bool,
    pub(crate) shadow_compared: u64,
    pub(crate) shadow_disagreement: f64,
}

pub(crate) fn run(dir: &Path, customers: usize) -> Result<Summary> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let registry = Registry::create(dir)?;
    println!("Training two versions of the fraud model...");
    for (iterations, seed) in [(50_u64, 42_u64), (300, 44)] {
        let data = fraud_split(10_000, seed);
        let model = train_logistic(&data, iterations)?;
        let m = metrics(&Predictor::predict(&model, data.test_x.view()), &data.test_y)?;
        let card = ModelCard::builder("fraud", &model)
            .metrics(m)
            .feature_names(FRAUD_FEATURES)
            .training_data(data.train.records().view(), data.source.clone())
            .hyperparameter("max_iterations", iterations)
            .build()?;
        let info = registry.publish_model(
            &model,
            &card,
            VersionSpec::Bump(model_persistence::versioning::Bump::Minor),
        )?;
        println!("  published fraud {} (F1 {:.4})", info.version, info.metrics["f1"]);
    }
    registry.set_alias("fraud", "control", &Version::new(1, 0, 0))?;
    registry.set_alias("fraud", "treatment", &Version::new(1, 1, 0))?;
    let serve = |reference: &str| -> Result<ModelServer<Lr>> {
        Ok(ModelServer::start(
            Source::registry(registry.clone(), reference)?,
            ReloadPolicy::Manual,
        )?)
    };
    let split = AbSplit::new(
        [
            ("control".to_owned(), serve("fraud@control")?, 50),
            ("treatment".to_owned(), serve("fraud@treatment")?, 50),
        ],
        2024,
    )?;
    // The control also runs with the treatment as a shadow on 20% of requests.
    let shadowed: ModelServer<Lr> = ModelServer::builder(Source::registry(registry.clone(), "fraud@control")?)
        .policy(ReloadPolicy::Manual)
        .shadow(serve("fraud@treatment")?, 0.2)
        .start()?;

    println!("\nServing {customers} customers, each twice...");
    let traffic = fraud_split(10_000, 99).test_x;
    let mut sticky = true;
    for round in 0..2 {
        for c in 0..customers {
            let key = format!("customer-{c}");
            let row = traffic.slice(s![c % traffic.nrows()..c % traffic.nrows() + 1, ..]);
            let (variant, _) = split.predict(&key, row)?;
            sticky &= variant == split.assign(&key);
            if round == 0 {
                shadowed.predict(row)?;
            }
        }
    }
    println!("{:<10} {:>6} {:>8}", "variant", "weight", "served");
    let counts: Vec<(String, u64)> = split
        .counts()
        .into_iter()
        .map(|v| {
            println!("{:<10} {:>6} {:>8}", v.name, v.weight, v.served);
            (v.name, v.served)
        })
        .collect();
    println!("Every customer stayed with one variant: {sticky}");

    let sampled = (customers as u64) / 5;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (shadow, dropped) = loop {
        let status = shadowed.status();
        let shadow = status.shadow.clone().ok_or("the shadow is configured")?;
        if shadow.compared + status.observations_dropped >= sampled || Instant::now() > deadline {
            break (shadow, status.observations_dropped);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "\nShadow v{} on 20% of the control's requests: {sampled} sampled, {} compared, {} disagreed ({:.2}%)",
        shadow.version,
        shadow.compared,
        shadow.disagreed,
        shadow.disagreement_rate * 100.0
    );
    if dropped > 0 {
        println!(
            "  {dropped} sampled requests were not compared: the shadow runs on one observer thread behind a \
             bounded queue, and when it falls behind, observations are dropped (and counted) rather than \
             making a request wait. How many depends on the machine's load, so it varies between runs."
        );
    }
    Ok(Summary {
        counts,
        sticky,
        shadow_compared: shadow.compared,
        shadow_disagreement: shadow.disagreement_rate,
    })
}

fn main() -> std::process::ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/ab_test"));
    common::exit_on_error(run(&dir, 10_000))
}
