//! The storage trait and the local directory backend.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::StorageError;

/// An opaque version of a stored object, for compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion(pub(crate) String);

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The object was written.
    Done,
    /// The precondition failed: the object exists (create) or changed (update).
    PreconditionFailed,
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
}

/// A registry on a local directory: the embedded default.
///
/// Create-if-absent writes a temporary file, fsyncs it and hard-links it into
/// place (the link fails if the name exists, and the file is complete before
/// it is visible). Compare-and-swap takes an exclusive `flock` on a lock file
/// beside the object, which the kernel releases if the process dies.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A store rooted at `root`, created if missing.
    ///
    /// # Errors
    ///
    /// The I/O error of creating the directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(LocalDir { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn temp_in(&self, dir: &Path) -> Result<tempfile::NamedTempFile, StorageError> {
        std::fs::create_dir_all(dir)?;
        Ok(tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?)
    }
}

fn version_of(bytes: &[u8]) -> ObjectVersion {
    ObjectVersion(hex::encode(Sha256::digest(bytes)))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Storage for LocalDir {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        match std::fs::read(self.path(key)) {
            Ok(bytes) => {
                let v = version_of(&bytes);
                Ok(Some((bytes, v)))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Written, StorageError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        let mut tmp = self.temp_in(&dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        let result = std::fs::hard_link(tmp.path(), &path);
        drop(tmp);
        match result {
            Ok(()) => {
                sync_dir(&dir)?;
                Ok(Written::Done)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Written::PreconditionFailed),
            Err(e) => Err(e.into()),
        }
    }

    fn put_if_version(
        &self,
        key: &str,
        bytes: &[u8],
        expected: Option<&ObjectVersion>,
    ) -> Result<Written, StorageError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        std::fs::create_dir_all(&dir)?;
        let mut lock_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        lock_name.push(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(lock_name))?;
        lock.lock()?;
        let current = match std::fs::read(&path) {
            Ok(b) => Some(version_of(&b)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if current.as_ref() != expected {
            return Ok(Written::PreconditionFailed);
        }
        let mut tmp = self.temp_in(&dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        sync_dir(&dir)?;
        drop(lock);
        Ok(Written::Done)
    }

    fn list_children(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let entries = match std::fs::read_dir(self.path(prefix)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut names = Vec::new();
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !name.ends_with(".lock") {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        match std::fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
