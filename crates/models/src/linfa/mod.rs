//! linfa's models (feature `linfa`).
//!
//! - [`RandomForest`]: a random forest built with linfa-ensemble (whose
//!   `EnsembleLearner` has no serde support), flattened into the
//!   [flat forest](crate::forest): kind `linfa.random_forest.v3`, stored
//!   compact, voting deterministically (ties go to the smallest label, where
//!   linfa's own vote breaks ties in hash-map order); `v1` and `v2` bundles
//!   are converted on load.
//! - linfa's logistic regression and decision tree are adapted in
//!   `model_persistence_core::linfa` (the orphan rule puts an adapter of a
//!   foreign type beside the trait) and registered here with the forest.

use model_persistence_core::Kinds;

mod random_forest;

pub use model_persistence_core::linfa::LINFA_VERSION;
pub use random_forest::RandomForest;

/// Registers linfa's kinds: the logistic regression, the decision tree and
/// the random forest (with their earlier kinds).
pub fn register(kinds: &mut Kinds) {
    kinds
        .register::<linfa_logistic::FittedLogisticRegression<f64, usize>>()
        .register::<linfa_trees::DecisionTree<f64, usize>>()
        .register::<RandomForest>();
}
