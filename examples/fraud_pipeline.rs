//! The whole lifecycle on a local registry, in the seed lesson's five
//! phases: train, save, load and validate, manage versions, serve with a
//! hot swap.
//!
//! Run with `cargo run --release --example fraud_pipeline [-- DIR]`
//! (default directory: `target/fraud_pipeline`, emptied first). The
//! registry it leaves at `DIR/registry` is the one the README's `modelctl`
//! commands are run on.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{fraud_split, metrics, train_forest, train_logistic, Result, FOREST_DEPTH};
use linfa_logistic::FittedLogisticRegression;
use model_persistence::gate::{self, Outcome, PublishRequest, Report};
use model_persistence::models::linfa::RandomForest;
use model_persistence::prelude::*;
use model_persistence_testkit::FRAUD_FEATURES;
use ndarray::s;

/// What the run produced, for the test that runs this example.
#[allow(dead_code)] // Read by tests/examples.rs, not by main.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) bundle_sizes: Vec<(String, u64)>,
    pub(crate) versions: Vec<Version>,
    pub(crate) best_by_f1: Version,
    pub(crate) served_before: Version,
    pub(crate) served_after: Version,
    pub(crate) frauds_caught: usize,
}

/// The fraud gate: absolute floors, and F1 may not regress more than 0.02.
fn fraud_gate() -> Gate {
    Gate::new([
        Rule::higher_is_better("accuracy").threshold(0.90),
        Rule::higher_is_better("recall").threshold(0.50),
        Rule::higher_is_better("f1")
            .threshold(0.60)
            .baseline(BaselineRule::MayRegress(Margin::Absolute(0.02))),
    ])
}

/// Fills the card fields every fraud model shares.
fn describe<M: Model>(
    builder: model_persistence::persistence::CardBuilder<'_, M>,
    algorithm: &str,
    metrics: [(&'static str, f64); 4],
    data: &common::Split,
) -> Result<ModelCard> {
    Ok(builder
        .algorithm(algorithm)
        .metrics(metrics)
        .feature_names(FRAUD_FEATURES)
        .classes(["legitimate", "fraud"])
        .training_data(data.train.records().view(), data.source.clone())
        .tag("fraud")
        .build()?)
}

/// `at` as RFC 3339, as modelctl prints times.
fn rfc3339(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Why a gate refused a candidate, one failed check a line.
fn refusal(report: &Report) -> String {
    report
        .failures()
        .map(|c| format!("    ✗ {}: {}", c.metric, c.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints the gate's verdict; a refused model says why.
fn print_outcome(what: &str, outcome: &Outcome) {
    println!("{what}:\n{}", outcome.report());
    match outcome {
        Outcome::Published { version, .. } => println!("  → published as {} and promoted", version.version),
        Outcome::Rejected { report, .. } => println!("  → refused, because:\n{}", refusal(report)),
        _ => {}
    }
}

pub(crate) fn run(dir: &Path, trees: usize) -> Result<Summary> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;

    println!("🎯 Phase 1: training fraud detection models...");
    let data = fraud_split(10_000, 42);
    println!(
        "  {} training rows, {} test rows, 20 features, 10% fraud",
        data.train.records().nrows(),
        data.test_y.len()
    );
    println!("Training Logistic Regression...");
    let logistic = train_logistic(&data, 150)?;
    let lr_metrics = metrics(&Predictor::predict(&logistic, data.test_x.view()), &data.test_y)?;
    println!("  Accuracy: {:.4}  F1 Score: {:.4}", lr_metrics[0].1, lr_metrics[3].1);
    println!("Training Random Forest ({trees} trees, depth ≤ {FOREST_DEPTH}, full bootstrap, all features)...");
    let forest = train_forest(&data, trees, 7)?;
    let rf_metrics = metrics(&forest.predict(data.test_x.view()), &data.test_y)?;
    println!("  Accuracy: {:.4}  F1 Score: {:.4}", rf_metrics[0].1, rf_metrics[3].1);

    println!("\n💾 Phase 2: saving models with their cards...");
    let lr_card = describe(
        ModelCard::builder("fraud_detector", &logistic)
            .version(Version::new(1, 0, 0))
            .hyperparameter("max_iterations", 150),
        "logistic regression (linfa-logistic)",
        lr_metrics,
        &data,
    )?;
    let rf_card = describe(
        ModelCard::builder("fraud_detector", &forest)
            .version(Version::new(1, 1, 0))
            .hyperparameter("n_trees", trees as u64)
            .hyperparameter("max_depth", FOREST_DEPTH as u64)
            .hyperparameter("bootstrap_proportion", 1.0)
            .hyperparameter("feature_proportion", 1.0),
        "random forest (linfa-ensemble)",
        rf_metrics,
        &data,
    )?;
    let mut bundle_sizes = Vec::new();
    for (file, saved, card) in [
        (
            "logistic_regression_v1.bundle",
            BundleWriter::default().save(dir.join("logistic_regression_v1.bundle"), &logistic, &lr_card)?,
            &lr_card,
        ),
        (
            "random_forest_v1.bundle",
            BundleWriter::default().save(dir.join("random_forest_v1.bundle"), &forest, &rf_card)?,
            &rf_card,
        ),
    ] {
        let card_kb = card.to_json()?.len() as f64 / 1024.0;
        println!(
            "✅ Model saved: {} ({:.1} KB on disk; the model encodes to {:.1} KB before compression, \
             the card with its training statistics and probe is about {:.1} KB{})",
            saved.path().display(),
            saved.file_len() as f64 / 1024.0,
            saved.raw_len() as f64 / 1024.0,
            card_kb,
            if card_kb * 1024.0 > saved.raw_len() as f64 {
                ": for a model this small the card is most of the file"
            } else {
                ""
            }
        );
        bundle_sizes.push((file.to_owned(), saved.file_len()));
    }

    println!(
        "\n🚦 Gating and publishing to the registry at {}...",
        dir.join("registry").display()
    );
    let registry = Registry::create(dir.join("registry"))?;
    let gate = fraud_gate();
    let lr_outcome = gate::evaluate_and_publish(
        &gate,
        &registry,
        PublishRequest::new(&logistic, &lr_card, "production").version(VersionSpec::Exact(Version::new(1, 0, 0))),
    )?;
    print_outcome("logistic regression, the first model (no baseline yet)", &lr_outcome);
    let rf_outcome = gate::evaluate_and_publish(
        &gate,
        &registry,
        PublishRequest::new(&forest, &rf_card, "production").version(VersionSpec::Exact(Version::new(1, 1, 0))),
    )?;
    print_outcome("random forest, against production", &rf_outcome);
    if let Outcome::Rejected { .. } = rf_outcome {
        // Kept as an experiment, not promoted: the registry keeps every version.
        registry.publish_model(&forest, &rf_card, VersionSpec::Exact(Version::new(1, 1, 0)))?;
        println!("  → published as an experiment only; production stays where it is");
    }
    println!("📋 Available models:");
    for model in registry.models()? {
        for v in registry.versions(&model)? {
            println!("  - {model} {} ({} bytes, {})", v.version, v.bundle_len, v.kind);
        }
    }

    println!("\n📦 Phase 3: loading and validating the random forest...");
    let loaded = registry.load::<RandomForest>(&"fraud_detector@1.1.0".parse()?)?;
    let card = loaded.card();
    println!("  Kind: {}  Algorithm: {}", card.kind, card.algorithm);
    println!("  Saved: {}", rfc3339(card.created_at));
    println!("✓ Validation passed (checksums, kind, feature count, tree structure, probe)");
    println!("Model card:");
    println!("  Version: {}", card.version);
    for (name, value) in &card.metrics {
        println!("  {name}: {value:.4}");
    }
    println!(
        "  Features: {}  Training rows: {}",
        card.n_features,
        card.training_data.as_ref().map_or(0, |t| t.samples)
    );
    println!("  Dependencies: {:?}", card.dependencies);
    // Three legitimate transactions, two frauds it catches and one it misses.
    let predicted = loaded.predict(data.test_x.view())?;
    let (truth, flagged) = (&data.test_y, &predicted);
    let rows = |want: usize, got: usize, n: usize| {
        (0..truth.len())
            .filter(move |&i| truth[i] == want && flagged[i] == got)
            .take(n)
    };
    let frauds = data.test_y.iter().filter(|&&y| y == 1).count();
    let frauds_caught = (0..data.test_y.len())
        .filter(|&i| data.test_y[i] == 1 && predicted[i] == 1)
        .count();
    println!(
        "Test predictions (checked: the input width is the card's); it catches {frauds_caught} of the \
         {frauds} frauds in the test set:"
    );
    for i in rows(0, 0, 3).chain(rows(1, 1, 2)).chain(rows(1, 0, 1)) {
        let verdict = match (data.test_y[i], predicted[i]) {
            (1, 1) => "fraud caught",
            (1, _) => "fraud missed",
            (_, 1) => "false alarm",
            _ => "legitimate, let through",
        };
        println!(
            "  transaction {i:>4}: predicted {}, truth {} → {verdict}",
            predicted[i], data.test_y[i]
        );
    }

    println!("\n📊 Phase 4: version management");
    let (v1, v2) = (Version::new(1, 0, 0), Version::new(1, 1, 0));
    for c in registry.compare_all("fraud_detector", &v1, &v2)? {
        println!(
            "  {:<10} {} → {}: {:.4} → {:.4} ({:+.4}, {})",
            c.metric,
            c.a,
            c.b,
            c.a_score,
            c.b_score,
            c.absolute,
            c.relative.map_or("-".to_owned(), |r| format!("{:+.1}%", r * 100.0))
        );
    }
    let best = registry
        .best("fraud_detector", "f1", Direction::HigherIsBetter)?
        .ok_or("no version has an F1")?;
    println!("Best version by F1 score: {} ({:.4})", best.version, best.metrics["f1"]);

    println!("\n🔄 Phase 5: serving fraud_detector@production with hot swaps");
    let production = registry
        .alias("fraud_detector", "production")?
        .ok_or("production is not set")?;
    println!(
        "  production is {} (the logistic regression: on this data fraud shifts a few features, \
         which a linear model captures well, so the forest was refused on F1 above)",
        production.version
    );
    let server = ModelServer::<FittedLogisticRegression<f64, usize>>::start(
        Source::registry(registry.clone(), "fraud_detector@production")?,
        ReloadPolicy::EveryRequests(100),
    )?;
    let served_before = server.status().version;
    println!("✅ Loaded: {} v{}", server.status().model_kind, served_before);
    for i in 0..5 {
        let p = server.predict(data.test_x.slice(s![i..i + 1, ..]))?;
        println!("  Request {}: Prediction = {} (v{})", i + 1, p.outputs[0], p.version);
    }
    println!("Server status: {}", serde_json::to_string_pretty(&server.status())?);

    println!("\nRetraining on fresh data (20,000 transactions) while the server keeps answering...");
    let fresh = fraud_split(20_000, 43);
    let retrained = train_logistic(&fresh, 300)?;
    let fresh_metrics = metrics(&Predictor::predict(&retrained, data.test_x.view()), &data.test_y)?;
    let fresh_card = describe(
        ModelCard::builder("fraud_detector", &retrained).hyperparameter("max_iterations", 300),
        "logistic regression (linfa-logistic), retrained",
        fresh_metrics,
        &fresh,
    )?;
    let outcome = gate::evaluate_and_publish(
        &gate,
        &registry,
        PublishRequest::new(&retrained, &fresh_card, "production"),
    )?;
    print_outcome("retrained logistic regression, against production", &outcome);
    let Outcome::Published { version, .. } = outcome else {
        return Err("the retrained model did not clear the gate".into());
    };
    println!(
        "Published {} and moved production to it; the server has not been restarted.",
        version.version
    );
    let started = Instant::now();
    let mut request = 5;
    let served_after = loop {
        request += 1;
        let p = server.predict(data.test_x.slice(s![request % 100..request % 100 + 1, ..]))?;
        if p.version == version.version || started.elapsed() > Duration::from_secs(10) {
            println!(
                "  Request {request}: Prediction = {} (v{}) ← answered by the new version",
                p.outputs[0], p.version
            );
            break p.version;
        }
    };
    let status = server.status();
    println!(
        "Server switched from v{served_before} to v{served_after} after {} requests, {} reloads, {} refused",
        status.requests_served, status.reloads, status.failed_reloads
    );
    println!("\nHistory of fraud_detector:");
    for e in registry.history("fraud_detector")? {
        println!("  {}  {}", rfc3339(e.at), e.kind);
    }
    Ok(Summary {
        bundle_sizes,
        versions: registry
            .versions("fraud_detector")?
            .into_iter()
            .map(|v| v.version)
            .collect(),
        best_by_f1: best.version,
        served_before,
        served_after,
        frauds_caught,
    })
}

fn main() -> std::process::ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/fraud_pipeline"));
    common::exit_on_error(run(&dir, 100))
}
