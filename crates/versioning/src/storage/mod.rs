//! The storage trait the registry runs on, and its backends: one file per
//! backend (`local` for a directory, `object` for any `object_store`), and the
//! public `conformance` suite (feature `conformance`) any backend can run.

use std::fmt::Debug;

use crate::error::StorageError;

#[cfg(feature = "conformance")]
pub mod conformance;
pub(crate) mod local;
#[cfg(feature = "object-store")]
pub(crate) mod object;

/// The version of a stored object a backend gave, for compare-and-swap: a
/// writer passes back the version it read, and the write happens only if
/// the object is still at it.
///
/// A version a backend did not make (an entity tag given to a directory, a
/// token given to an object store) matches no object: a conditional write
/// with it fails its precondition, and a conditional read fetches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectVersion {
    /// A backend's own token for the object's state, such as the SHA-256 of
    /// its bytes (a directory).
    Token(String),
    /// An object store's entity tag and version id, as the store returned
    /// them (either may be missing, as stores differ).
    Object {
        /// The entity tag (`ETag`).
        e_tag: Option<String>,
        /// The version id, for stores with versioning.
        version: Option<String>,
    },
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The object was written.
    Done,
    /// The precondition failed: the object exists (create) or changed (update).
    PreconditionFailed,
}

/// What a conditional read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The object is still at the version the caller knows.
    Unchanged,
    /// There is no object.
    Absent,
    /// The object changed (or the caller knew none): its bytes and version.
    Changed(Vec<u8>, ObjectVersion),
}

/// A small synchronous key–value store: what the registry needs and no more.
///
/// Keys are `/`-separated paths of validated names. Implementations must make
/// each write atomic (a reader sees the old bytes or the new, never a mix),
/// [`put_if_absent`](Storage::put_if_absent) must never overwrite, and
/// [`put_if_version`](Storage::put_if_version) must be a compare-and-swap.
pub trait Storage: Send + Sync + Debug {
    /// The object's bytes and version, or `None` if absent.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError>;

    /// The object's bytes only if it changed from `known`: one conditional
    /// request on object storage (`If-None-Match` with the ETag), which
    /// answers "not modified" without the body. The default reads the
    /// object and compares versions.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn get_if_changed(&self, key: &str, known: Option<&ObjectVersion>) -> Result<Fetched, StorageError> {
        self.get_if_changed_at_most(key, known, u64::MAX)
    }

    /// [`get_if_changed`](Self::get_if_changed), refusing an object of more
    /// than `cap` bytes as [`get_at_most`](Self::get_at_most) does. The
    /// default reads with `get_at_most` and compares versions.
    ///
    /// # Errors
    ///
    /// [`StorageError::TooLarge`], and the backend's error.
    fn get_if_changed_at_most(
        &self,
        key: &str,
        known: Option<&ObjectVersion>,
        cap: u64,
    ) -> Result<Fetched, StorageError> {
        Ok(match self.get_at_most(key, cap)? {
            None => Fetched::Absent,
            Some((_, v)) if Some(&v) == known => Fetched::Unchanged,
            Some((bytes, v)) => Fetched::Changed(bytes, v),
        })
    }

    /// Writes only if no object exists at `key`.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Written, StorageError>;

    /// Writes only if the object is at `expected` (or absent, for `None`).
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn put_if_version(
        &self,
        key: &str,
        bytes: &[u8],
        expected: Option<&ObjectVersion>,
    ) -> Result<Written, StorageError>;

    /// The direct children names under `prefix` (one level, like `ls`), sorted.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn list_children(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Removes an object; absent is not an error.
    ///
    /// # Errors
    ///
    /// The backend's error.
    fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// [`get`](Self::get), refusing an object of more than `cap` bytes
    /// with [`StorageError::TooLarge`], before its bytes are read where the
    /// backend knows the size first (a local file's length, an object's
    /// metadata). The default reads, then checks.
    ///
    /// # Errors
    ///
    /// [`StorageError::TooLarge`], and those of [`get`](Self::get).
    fn get_at_most(&self, key: &str, cap: u64) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        match self.get(key)? {
            Some((bytes, _)) if bytes.len() as u64 > cap => Err(StorageError::TooLarge {
                size: bytes.len() as u64,
                cap,
            }),
            other => Ok(other),
        }
    }

    /// Frees the space this backend keeps in reserve for removals, so that
    /// the few small writes a removal makes before it deletes anything (a
    /// prune's mark, event and journal entry) succeed on a full disk;
    /// whether there was a reserve to free. Backends that do not run out of
    /// space keep none: the default frees nothing.
    fn release_reserve(&self) -> bool {
        false
    }

    /// Sets the reserve aside again where there is room for it (best
    /// effort; without room, the next removal on a full disk fails as it
    /// would have without a reserve). The default does nothing.
    fn restore_reserve(&self) {}
}
