//! The one error type of this crate.

/// What can go wrong while serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading or checking a bundle file failed.
    #[error("cannot load the model from {source_name}")]
    Load {
        /// The source, for people.
        source_name: String,
        /// What persistence-core found.
        #[source]
        source: model_persistence_core::Error,
    },
    /// Loading from the registry failed.
    #[error("cannot load the model from {source_name}")]
    Registry {
        /// The source, for people.
        source_name: String,
        /// What the registry found (boxed: predictions return this error
        /// type, and the hot path should not carry a large `Result`).
        #[source]
        source: Box<model_persistence_versioning::Error>,
    },
    /// The request has the wrong number of feature columns.
    #[error("the request has {found} features, the model expects {expected}")]
    FeatureCount {
        /// The model's feature count.
        expected: usize,
        /// The request's column count.
        found: usize,
    },
    /// Nothing to roll back to.
    #[error("no previously served version is held in memory")]
    NothingToRollBack,
    /// Rolling back an alias needs a registry source.
    #[error("the source {source_name} is not a registry alias")]
    NotARegistryAlias {
        /// The source, for people.
        source_name: String,
    },
    /// An A/B split was configured without variants or with zero weights.
    #[error("invalid split: {reason}")]
    InvalidSplit {
        /// Why.
        reason: String,
    },
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
