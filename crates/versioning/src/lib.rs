//! A model registry: every published version kept, immutable and verified;
//! aliases such as `production` moved by compare-and-swap; every move
//! recorded, so rollback is one call and "which version was production at
//! time T" has an answer.
//!
//! The registry runs on a local directory (the embedded default) or, with
//! the `object-store` feature, on S3, GCS, Azure or in memory.
//!
//! ```
//! use versioning::{Registry, ModelRef};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let registry = Registry::open(dir.path().to_str().expect("utf-8 path"))?;
//! assert!(registry.versions("fraud")?.is_empty());
//! let reference: ModelRef = "fraud@production".parse()?;
//! assert!(matches!(registry.resolve(&reference), Err(versioning::Error::AliasNotFound { .. })));
//! # Ok::<(), versioning::Error>(())
//! ```
//!
//! Layout (see `docs/registry.md`):
//!
//! ```text
//! <root>/<model>/versions/<semver>/model.bundle   immutable, create-if-absent (the claim)
//! <root>/<model>/versions/<semver>/card.json
//! <root>/<model>/versions/<semver>/version.json   written last: the version is visible
//! <root>/<model>/aliases/<alias>                  compare-and-swap
//! <root>/<model>/events/<ts>-<unique>.json        one immutable object per event
//! ```
#![doc(test(attr(deny(warnings))))]
// Errors carry the model, alias and versions they concern; registry calls do
// storage I/O, so the size of `Result` is not what costs time here.
#![allow(clippy::result_large_err)]

mod error;
mod event;
mod name;
#[cfg(feature = "object-store")]
mod object;
mod registry;
mod storage;

pub use error::{Error, Result, StorageError};
pub use event::{Event, EventKind};
pub use name::{validate_name, MAX_NAME_LEN};
#[cfg(feature = "object-store")]
pub use object::ObjectStorage;
pub use registry::{
    next_version, AliasTarget, Bump, Comparison, Damaged, Direction, ModelRef, Registry, Target, VerifyReport,
    VersionInfo, VersionSpec,
};
pub use storage::{LocalDir, ObjectVersion, Storage, Written};
