//! Shared by the examples: the fraud data split, training and metrics.
#![allow(dead_code)]

use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use linfa_trees::DecisionTree;
use model_persistence::gate::metrics::Confusion;
use model_persistence::models::linfa::RandomForest;
use model_persistence_testkit::{fraud_like, FRAUD_FEATURES};
use ndarray::{s, Array1, Array2};
use rand::SeedableRng;

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// A fraud data set split 80 / 20.
pub(crate) struct Split {
    pub(crate) train: DatasetBase<Array2<f64>, Array1<usize>>,
    pub(crate) test_x: Array2<f64>,
    pub(crate) test_y: Array1<usize>,
    pub(crate) source: String,
}

pub(crate) fn fraud_split(samples: usize, seed: u64) -> Split {
    let (x, y) = fraud_like(samples, 0.1, seed);
    let cut = samples * 8 / 10;
    Split {
        train: Dataset::new(x.slice(s![..cut, ..]).to_owned(), y.slice(s![..cut]).to_owned())
            .with_feature_names(FRAUD_FEATURES.to_vec()),
        test_x: x.slice(s![cut.., ..]).to_owned(),
        test_y: y.slice(s![cut..]).to_owned(),
        source: format!("synthetic fraud_like({samples}, 0.1, seed {seed})"),
    }
}

pub(crate) fn train_logistic(data: &Split, iterations: u64) -> Result<FittedLogisticRegression<f64, usize>> {
    Ok(LogisticRegression::default()
        .max_iterations(iterations)
        .fit(&data.train)?)
}

/// The reference random forest: `trees` trees of depth at most 12, each on
/// a bootstrap sample as large as the training set, every feature offered
/// to every tree (linfa-ensemble draws features per tree, not per split, so
/// a share of them starves the trees of the few informative features).
pub(crate) fn train_forest(data: &Split, trees: usize, seed: u64) -> Result<RandomForest> {
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(FOREST_DEPTH)), rng)
        .ensemble_size(trees)
        .bootstrap_proportion(1.0)
        .feature_proportion(1.0)
        .fit(&data.train)?;
    Ok(RandomForest::new(&ensemble, FRAUD_FEATURES.len())?)
}

/// Maximum depth of the reference forest's trees.
pub(crate) const FOREST_DEPTH: usize = 12;

/// Accuracy, precision, recall and F1 of the fraud class. Accuracy and F1
/// come from linfa's confusion matrix; precision and recall are counted
/// here, because linfa 0.8's binary precision and recall are each other's
/// (see docs/gate.md).
pub(crate) fn metrics(predicted: &Array1<usize>, truth: &Array1<usize>) -> Result<[(&'static str, f64); 4]> {
    let cm = predicted.confusion_matrix(truth)?;
    let c = Confusion::from_labels(
        truth.as_slice().unwrap_or_default(),
        predicted.as_slice().unwrap_or_default(),
    );
    Ok([
        ("accuracy", f64::from(cm.accuracy())),
        ("precision", c.precision()),
        ("recall", c.recall()),
        ("f1", f64::from(cm.f1_score())),
    ])
}

/// Ends an example: on an error, prints it for people (every cause, one a
/// line, not a `Debug` dump) and exits with status 1.
pub(crate) fn exit_on_error<T>(result: Result<T>) -> std::process::ExitCode {
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
