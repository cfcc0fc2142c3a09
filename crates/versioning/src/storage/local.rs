//! The local directory backend: the embedded default.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{ObjectVersion, Storage, Written};
use crate::error::StorageError;

/// A registry on a local directory: the embedded default.
///
/// Create-if-absent writes a temporary file, fsyncs it and hard-links it into
/// place (the link fails if the name exists, and the file is complete before
/// it is visible). Compare-and-swap takes an exclusive `flock` on a lock file
/// beside the object (`.<name>.lock`: a name no user name can take, since
/// those start with a letter or a digit), which the kernel releases if the
/// process dies. Names starting with `.` are the backend's own and are never
/// listed.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

/// The space kept free for removals on a full disk ([`Storage::release_reserve`]).
const RESERVE: &str = ".reserve";
/// Its size: room for a prune's mark, event and journal entry many times over.
const RESERVE_BYTES: usize = 1 << 20;

/// The prefix of this backend's temporary files (`.tmp-<pid>-<random>`).
const TEMP_PREFIX: &str = ".tmp-";
/// The folder, under the root, of this backend's temporary files.
const TEMP_DIR: &str = ".tmp";

impl LocalDir {
    /// A store rooted at the existing directory `root`.
    ///
    /// # Errors
    ///
    /// The I/O error if `root` is not a readable directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(std::io::Error::new(
                ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            )
            .into());
        }
        Ok(LocalDir { root })
    }

    /// A store rooted at `root`, created (with its parents) if missing.
    ///
    /// # Errors
    ///
    /// The I/O error of creating the directory.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let dir = LocalDir { root };
        dir.restore_reserve();
        Ok(dir)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// A temporary file for an object to be written in `dir`. Every
    /// temporary file lives in the registry's one temporary folder
    /// (`<root>/.tmp`, on the same file system, so linking or renaming it
    /// into place is atomic), and every write first removes the temporary
    /// files of writers that died there: whatever a killed writer left is
    /// gone after the next write, wherever it was writing.
    fn temp_in(&self, dir: &Path) -> Result<tempfile::NamedTempFile, StorageError> {
        std::fs::create_dir_all(dir)?;
        let temps = self.root.join(TEMP_DIR);
        std::fs::create_dir_all(&temps)?;
        model_persistence_core::files::sweep_dead_temps(&temps, TEMP_PREFIX);
        Ok(model_persistence_core::files::temp_file_in(&temps, TEMP_PREFIX, None)?)
    }
}

fn version_of(bytes: &[u8]) -> ObjectVersion {
    ObjectVersion::Token(hex::encode(Sha256::digest(bytes)))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Storage for LocalDir {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        self.get_at_most(key, u64::MAX)
    }

    fn get_at_most(&self, key: &str, cap: u64) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        // Refuses a FIFO, a device or a directory planted at a registry key
        // before reading it, a file over the cap from its length, and reads
        // no more than the file's size.
        let (file, len) = match model_persistence_core::files::open_regular(&self.path(key)) {
            Ok(opened) => opened,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if len > cap {
            return Err(StorageError::TooLarge { size: len, cap });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(file, len), &mut bytes)?;
        let v = version_of(&bytes);
        Ok(Some((bytes, v)))
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
        let mut lock_name = std::ffi::OsString::from(".");
        lock_name.push(path.file_name().unwrap_or_default());
        lock_name.push(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(lock_name))?;
        lock.lock()?;
        // Read as `get` reads: a FIFO or a directory planted here is an
        // error, not a read that blocks or goes on without bound.
        let current = self.get(key)?.map(|(_, version)| version);
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
            if !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            // A directory planted where an object belongs (damage that
            // `repair` clears): the object is gone once it is.
            Err(e) if e.kind() == ErrorKind::IsADirectory || path.is_dir() => {
                std::fs::remove_dir_all(&path).map_err(Into::into)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `.reserve`, a megabyte of written (not sparse) zeros set
    /// aside when the registry was created and after each prune.
    fn release_reserve(&self) -> bool {
        std::fs::remove_file(self.root.join(RESERVE)).is_ok()
    }

    fn restore_reserve(&self) {
        let path = self.root.join(RESERVE);
        if path.exists() {
            return;
        }
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&vec![0u8; RESERVE_BYTES]).and_then(|()| f.sync_all()));
        if written.is_err() {
            // No room: no reserve (a partial one would promise too much).
            let _ = std::fs::remove_file(&path);
        }
    }
}
