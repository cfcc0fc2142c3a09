//! The one error type of this crate.

/// The gate's errors: those of the registry it publishes to. Evaluating a
/// gate itself never fails: a missing or NaN metric is a failed check in
/// the report, not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry failed (reading the baseline, publishing, moving the alias).
    #[error(transparent)]
    Registry(#[from] model_persistence_versioning::Error),
}
