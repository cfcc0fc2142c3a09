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
    /// A bundle's signature is missing, or made by no trusted key
    /// ([`Source::signed_bundle`](crate::Source::signed_bundle)).
    #[error("{source_name}: the signature does not verify")]
    Signature {
        /// The source, for people.
        source_name: String,
        /// Why.
        #[source]
        source: model_persistence_core::signing::SignatureError,
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
    /// The rows cannot be given to the model: the wrong width, or a NaN or
    /// infinite value for a model that takes finite values only (the check
    /// every prediction path makes, `persistence::check_rows`).
    #[error(transparent)]
    Input(#[from] model_persistence_core::InputError),
    /// A new version's input schema differs from the one being served: a
    /// client sending rows of the old width would fail on every request.
    #[error("the new version {version} takes {found}, the served version takes {expected}: refused (build the server with `accept_schema_changes` to allow it)")]
    SchemaChanged {
        /// The refused version.
        version: model_persistence_core::Version,
        /// The served version's schema, in words.
        expected: String,
        /// The new version's schema, in words.
        found: String,
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
    /// Loading a version panicked inside third-party code (a model
    /// library on a hostile file): refused like any other bad version.
    #[error("loading the model from {source_name} panicked: {message}")]
    LoadPanicked {
        /// The source, for people.
        source_name: String,
        /// The panic's message.
        message: String,
    },
    /// An A/B split was configured without variants or with zero weights.
    #[error("invalid split: {reason}")]
    InvalidSplit {
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether the failure is of the storage (a file or an object store
    /// that could not be read), which may pass, rather than of the content
    /// (a damaged, hostile or incompatible version), which will not: a
    /// server retries the first with backoff and never re-attempts the
    /// second for the same content id.
    pub fn is_io(&self) -> bool {
        use model_persistence_core::Error as Core;
        use model_persistence_versioning::Error as Reg;
        match self {
            Error::Load { source, .. } => matches!(source, Core::Io { .. }),
            Error::Registry { source, .. } => match &**source {
                Reg::Storage { .. } => true,
                Reg::Bundle { source, .. } => matches!(source, Core::Io { .. }),
                _ => false,
            },
            _ => false,
        }
    }
}

impl Error {
    /// Whether a bundle file's payload is incomplete or damaged while its
    /// header is whole: what a file still being written looks like, so a
    /// server following a file tries the same content id again later.
    pub(crate) fn is_payload_damage(&self) -> bool {
        use model_persistence_core::{Error as Core, Section};
        matches!(
            self,
            Error::Load {
                source: Core::Truncated { .. }
                    | Core::TrailingBytes { .. }
                    | Core::ChecksumMismatch {
                        section: Section::Payload,
                        ..
                    },
                ..
            }
        )
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
