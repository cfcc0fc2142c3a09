//! The main job: train fraud models with linfa, save them with their cards,
//! read a card without loading the model, load with verification.
//!
//! Run with `cargo run --release --example fraud_pipeline [-- DIR]`.

use std::path::PathBuf;

use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_logistic::LogisticRegression;
use linfa_trees::DecisionTree;
use model_persistence::persistence::linfa::RandomForest;
use model_persistence::persistence::synthetic::{fraud_like, FRAUD_FEATURES};
use model_persistence::prelude::*;
use ndarray::{s, Array1};
use rand::SeedableRng;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Accuracy and F1 from linfa's confusion matrix; precision and recall of the
/// fraud class (label 1) from the same counts.
fn metrics(predicted: &Array1<usize>, truth: &Array1<usize>) -> Result<[(&'static str, f64); 4]> {
    let cm = predicted.confusion_matrix(truth)?;
    let count = |p: usize, t: usize| predicted.iter().zip(truth).filter(|&(&a, &b)| a == p && b == t).count() as f64;
    let (tp, fp, fn_) = (count(1, 1), count(1, 0), count(0, 1));
    Ok([
        ("accuracy", f64::from(cm.accuracy())),
        ("precision", if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 }),
        ("recall", if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 }),
        ("f1", f64::from(cm.f1_score())),
    ])
}

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/fraud_pipeline"));
    std::fs::create_dir_all(&dir)?;

    println!("🎯 Training fraud detection models...");
    let (x, y) = fraud_like(10_000, 0.1, 42);
    let cut = 8_000;
    let train = Dataset::new(x.slice(s![..cut, ..]).to_owned(), y.slice(s![..cut]).to_owned())
        .with_feature_names(FRAUD_FEATURES.to_vec());
    let (x_test, y_test) = (x.slice(s![cut.., ..]).to_owned(), y.slice(s![cut..]).to_owned());

    println!("Training Logistic Regression...");
    let logistic = LogisticRegression::default().max_iterations(150).fit(&train)?;
    let logistic_metrics = metrics(&Model::predict(&logistic, x_test.view()), &y_test)?;
    println!(
        "  Accuracy: {:.4}  F1 Score: {:.4}",
        logistic_metrics[0].1, logistic_metrics[3].1
    );

    println!("Training Random Forest (100 trees)...");
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(7);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(10)), rng)
        .ensemble_size(100)
        .bootstrap_proportion(0.7)
        .feature_proportion(0.6)
        .fit(&train)?;
    let forest = RandomForest::new(ensemble, FRAUD_FEATURES.len())?;
    let forest_metrics = metrics(&forest.predict(x_test.view()), &y_test)?;
    println!(
        "  Accuracy: {:.4}  F1 Score: {:.4}",
        forest_metrics[0].1, forest_metrics[3].1
    );

    println!("\n💾 Saving models...");
    let logistic_card = ModelCard::builder("logistic_regression", Version::new(1, 0, 0), &logistic)
        .algorithm("logistic regression (linfa-logistic)")
        .hyperparameter("max_iterations", 150)
        .metrics(logistic_metrics)
        .feature_names(FRAUD_FEATURES)
        .classes(["legitimate", "fraud"])
        .training_data(train.records().view(), "synthetic fraud_like(10000, 0.1, seed 42)")
        .build()?;
    let forest_card = ModelCard::builder("random_forest", Version::new(1, 0, 0), &forest)
        .algorithm("random forest (linfa-ensemble)")
        .hyperparameter("n_trees", 100)
        .hyperparameter("max_depth", 10)
        .metrics(forest_metrics)
        .feature_names(FRAUD_FEATURES)
        .classes(["legitimate", "fraud"])
        .training_data(train.records().view(), "synthetic fraud_like(10000, 0.1, seed 42)")
        .build()?;
    let lr_path = dir.join("logistic_regression_v1.bundle");
    let rf_path = dir.join("random_forest_v1.bundle");
    for (path, saved) in [
        (
            &lr_path,
            BundleWriter::default().save(&lr_path, &logistic, &logistic_card)?,
        ),
        (&rf_path, BundleWriter::default().save(&rf_path, &forest, &forest_card)?),
    ] {
        println!(
            "✅ Model saved: {} ({:.2} KB; model {:.2} KB before compression)",
            path.display(),
            saved.file_len() as f64 / 1024.0,
            saved.raw_len() as f64 / 1024.0
        );
    }

    println!("\n📋 Card of {} (header only, model not loaded):", rf_path.display());
    let card = persistence::read_card(&rf_path)?;
    println!(
        "  Version: {}  Kind: {}  Created: {}",
        card.version, card.kind, card.created_at
    );
    for (name, value) in &card.metrics {
        println!("  {name}: {value:.4}");
    }
    println!(
        "  Features: {}  Training rows: {}",
        card.n_features,
        card.training_data.as_ref().map_or(0, |t| t.samples)
    );

    println!("\n📦 Loading Random Forest model...");
    let summary = persistence::verify(&rf_path)?;
    println!("✓ Checksums verified (content id {})", summary.content_id.short());
    let loaded = persistence::load::<RandomForest>(&rf_path)?;
    println!("✓ Validation passed: kind, feature count, structure, probe");
    let predictions = loaded.model().predict(x_test.slice(s![..5, ..]));
    println!("Test predictions: {:?}", predictions.to_vec());
    Ok(())
}
