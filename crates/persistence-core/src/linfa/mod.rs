//! Adapters for linfa's reference models (feature `linfa`), one file each.
//!
//! - [`FittedLogisticRegression<f64, usize>`](linfa_logistic::FittedLogisticRegression):
//!   kind `linfa.logistic_regression.v1` (`logistic.rs`).
//! - [`DecisionTree<f64, usize>`](linfa_trees::DecisionTree): kind
//!   `linfa.decision_tree.v1` (`decision_tree.rs`). Its structural check
//!   walks every node (without recursion) and refuses a split without both
//!   children or with a feature index past the feature count, either of
//!   which would panic at predict.
//!
//! These two live here, beside the [`Model`](crate::Model) trait, and not
//! in `model-persistence-models` with the other engines: they implement a
//! trait of this crate for types of linfa's, and Rust's orphan rule allows
//! that only in the crate of the trait or of the type. The random forest
//! (`model_persistence_models::linfa::RandomForest`) is a type of its own
//! and lives with the flat forest it runs on.

mod decision_tree;
mod logistic;

/// The linfa version these adapters were written against.
pub const LINFA_VERSION: &str = "0.8.1";

/// What a linfa model's card records as its dependencies.
pub fn dependencies() -> Vec<(&'static str, &'static str)> {
    vec![("linfa", LINFA_VERSION)]
}
