//! A model registry: every published version kept, immutable and verified;
//! aliases such as `production` moved by compare-and-swap; every move
//! recorded, so rollback is one call and "which version was production at
//! time T" has an answer.
//!
//! The registry runs on a local directory (the embedded default) or, with
//! the `object-store` feature, on S3, GCS, Azure or in memory.
//!
//! ```
//! use model_persistence_versioning::{ModelRef, Registry};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let registry = Registry::create(dir.path())?;
//! assert!(registry.versions("fraud")?.is_empty());
//! let reference: ModelRef = "fraud@production".parse()?;
//! assert!(matches!(registry.resolve(&reference), Err(model_persistence_versioning::Error::AliasNotFound { .. })));
//! # Ok::<(), model_persistence_versioning::Error>(())
//! ```
//!
//! The layout, the transaction of each operation and what a crash leaves
//! are in `docs/registry.md`.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
// Errors carry the model, alias and versions they concern; registry calls do
// storage I/O, so the size of `Result` is not what costs time here.
#![allow(clippy::result_large_err)]

#[cfg(feature = "async")]
mod asynchronous;
pub mod cache;
mod error;
mod event;
mod name;
mod owner;
mod reference;
mod registry;
pub mod storage;

#[cfg(feature = "async")]
pub use asynchronous::{AsyncFollower, AsyncRegistry, AsyncWatch};
pub use cache::{BundleCache, CacheOutcome};
pub use error::{Error, Result, StorageError};
pub use event::{Event, EventKind};
pub use model_persistence_core::Direction;
pub use name::{AliasName, AttachmentName, IntoName, ModelName, NameError, NameKind, NameProblem, MAX_NAME_LEN};
pub use reference::{ModelRef, Target};
pub use registry::{
    event_id, next_version, AliasFollower, AliasTarget, Bump, Checked, Comparison, Damaged, DamagedVersion, Listing,
    Registry, RepairReport, VerifyReport, VersionInfo, VersionSpec, Watch, WatchCursor, DEFAULT_STALE_AFTER,
    MAX_ALIAS_BYTES, MAX_INDEX_BYTES, MAX_MARKER_BYTES, MAX_OBJECT_BYTES, WATCH_LATENESS,
};
pub use storage::local::LocalDir;
#[cfg(feature = "object-store")]
pub use storage::object::ObjectStorage;
pub use storage::{Fetched, ObjectVersion, Storage, Written};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
