//! The one error type of this crate.

use semver::Version;

use crate::name::NameError;

/// Everything that can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model, alias or attachment name is not allowed.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// There is no registry at this location: create one with
    /// `Registry::create` (or `modelctl init`).
    #[error("no registry at {location:?}: create one with `modelctl init {location}` or `Registry::create`")]
    RegistryNotFound {
        /// The path or URL.
        location: String,
    },
    /// The attachment exists already; attachments are immutable like versions.
    #[error("{model} {version} already has an attachment {name:?}: attachments are immutable")]
    AttachmentExists {
        /// The model.
        model: String,
        /// The version.
        version: Version,
        /// The attachment.
        name: String,
    },
    /// The version is already published; versions are never overwritten.
    #[error("{model} {version} already exists: versions are immutable")]
    VersionExists {
        /// The model.
        model: String,
        /// The version.
        version: Version,
    },
    /// No such version.
    #[error("{model} has no version {version}")]
    VersionNotFound {
        /// The model.
        model: String,
        /// The version.
        version: Version,
    },
    /// The model has no version at all.
    #[error("no model named {model}")]
    ModelNotFound {
        /// The model.
        model: String,
    },
    /// A pruner is removing this version: it cannot become an alias target.
    #[error("{model} {version} is being pruned and cannot be promoted")]
    VersionRetiring {
        /// The model.
        model: String,
        /// The version.
        version: Version,
    },
    /// No such alias.
    #[error("{model} has no alias {alias}")]
    AliasNotFound {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
    },
    /// A compare-and-swap on an alias lost: it no longer points where the caller believed.
    #[error("alias {model}@{alias} moved: expected {}, found {}", show(.expected), show(.found))]
    AliasConflict {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
        /// Where the caller believed it pointed.
        expected: Option<Version>,
        /// Where it points.
        found: Option<Version>,
    },
    /// The alias has no earlier target to roll back to.
    #[error("alias {model}@{alias} has no earlier target to roll back to")]
    NothingToRollBack {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
    },
    /// A version lacks the metric asked for.
    #[error("{model} {version} has no metric {metric:?}")]
    MetricMissing {
        /// The model.
        model: String,
        /// The version.
        version: Version,
        /// The metric.
        metric: String,
    },
    /// A stored bundle failed to load or verify.
    #[error("bundle of {model} {version}")]
    Bundle {
        /// The model.
        model: String,
        /// The version.
        version: Version,
        /// What persistence-core found.
        #[source]
        source: model_persistence_core::Error,
    },
    /// A version's bundle is internally valid but is not the bundle its
    /// record names: someone with write access to the storage swapped it.
    #[error(
        "bundle of {model} {version} is not the one published: its content id is {found}, the record says {expected}"
    )]
    ContentIdMismatch {
        /// The model.
        model: String,
        /// The version.
        version: Version,
        /// The content id recorded at publication.
        expected: model_persistence_core::ContentId,
        /// The content id of the bundle found.
        found: model_persistence_core::ContentId,
    },
    /// A version's signature is missing or does not verify against the
    /// registry's trusted keys ([`Registry::trust`](crate::Registry::trust)).
    #[error("{model} {version}: signature refused")]
    Signature {
        /// The model.
        model: String,
        /// The version.
        version: Version,
        /// Why.
        #[source]
        source: model_persistence_core::signing::SignatureError,
    },
    /// A bundle given to publish is not valid.
    #[error("the bundle to publish is not valid")]
    InvalidBundle {
        /// What persistence-core found.
        #[source]
        source: model_persistence_core::Error,
    },
    /// A stored record (alias pointer, version record, event) is not what this crate writes.
    #[error("corrupt registry record {key}")]
    CorruptRecord {
        /// The storage key.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A version record that describes another model or version than the
    /// place it is stored at.
    #[error("the record {key} describes {found}")]
    MisplacedRecord {
        /// The storage key.
        key: String,
        /// What the record says it is.
        found: String,
    },
    /// The `card.json` beside a bundle differs from the card inside it.
    #[error("{key} differs from the card inside the bundle")]
    CardMismatch {
        /// The storage key of the card.
        key: String,
    },
    /// An object every committed version has is missing.
    #[error("{key} is missing")]
    MissingObject {
        /// The storage key.
        key: String,
    },
    /// An alias points at a version that is not committed.
    #[error("alias {model}@{alias} points at {version}, which is not a committed version")]
    DanglingAlias {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
        /// Where it points.
        version: Version,
    },
    /// An alias object is damaged, so the log of its moves, which its
    /// history is read from, is lost: a history without them would be wrong.
    #[error(
        "the history of alias {model}@{alias} is unreadable: its object is damaged \
         (`modelctl verify` names it, `modelctl repair` says what to do)"
    )]
    AliasHistoryUnreadable {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
        /// Why the alias object could not be read.
        #[source]
        source: Box<Error>,
    },
    /// A storage operation failed.
    #[error("storage error on {key}")]
    Storage {
        /// The storage key.
        key: String,
        /// The backend's error.
        #[source]
        source: StorageError,
    },
    /// A registry location could not be opened.
    #[error("cannot open registry at {location:?}: {reason}")]
    InvalidLocation {
        /// The path or URL.
        location: String,
        /// Why.
        reason: String,
    },
    /// Publishing kept colliding with concurrent publishers.
    #[error("gave up publishing {model} after {attempts} attempts lost to concurrent publishers")]
    TooManyConflicts {
        /// The model.
        model: String,
        /// Attempts made.
        attempts: usize,
    },
}

impl Error {
    /// Whether the error is about one stored object being unreadable as
    /// what it should be (malformed JSON, a FIFO or a directory where a
    /// record belongs), as opposed to the storage failing: such an error
    /// concerns that object alone, and is reported without hiding the rest.
    pub fn is_damage(&self) -> bool {
        match self {
            Error::CorruptRecord { .. }
            | Error::MisplacedRecord { .. }
            | Error::Storage {
                source: StorageError::TooLarge { .. },
                ..
            } => true,
            Error::Storage {
                source: StorageError::Io(e),
                ..
            } => e.kind() == std::io::ErrorKind::InvalidInput,
            _ => false,
        }
    }
}

impl Error {
    /// Whether the storage is out of space (`ENOSPC`, or a quota).
    pub fn is_out_of_space(&self) -> bool {
        let Error::Storage {
            source: StorageError::Io(io),
            ..
        } = self
        else {
            return false;
        };
        matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }
}

fn show(v: &Option<Version>) -> String {
    v.as_ref().map_or_else(|| "nothing".to_owned(), ToString::to_string)
}

/// A storage backend's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A local file system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An object larger than the cap for its kind (see the registry's
    /// layout): refused before it is read.
    #[error("the object is {size} bytes, over the cap of {cap} bytes for its kind")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// An object store error.
    #[cfg(feature = "object-store")]
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
