//! A per-machine bundle cache keyed by content id.
//!
//! A bundle's content id names its bytes, so a cached bundle never needs
//! invalidating: it is either the right bytes or damaged, and every use
//! verifies it (the load checks every hash and the content id). Many
//! processes on one machine share one cache directory: the first to miss a
//! bundle downloads it under a lock file (`<id>.lock`, created exclusively),
//! the others wait for it instead of downloading it again. The cache is
//! bounded in bytes; the least recently used bundles are evicted first.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use model_persistence_core::ContentId;

/// How long a process waits for another to finish downloading a bundle.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(120);
/// A lock file older than this belongs to a process that is gone.
const STALE_LOCK: Duration = Duration::from_secs(300);

/// A directory of verified bundles, shared by the processes of a machine.
#[derive(Debug, Clone)]
pub struct BundleCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// What a cache lookup did, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The bundle was in the cache.
    Hit,
    /// This process downloaded it (and stored it).
    Miss,
    /// Another process was downloading it; this one waited and used theirs.
    Waited,
}

impl BundleCache {
    /// A cache in `dir` (created if missing) holding at most `max_bytes`.
    ///
    /// # Errors
    ///
    /// The I/O error of creating the directory.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(BundleCache { dir, max_bytes })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn path(&self, id: &ContentId) -> PathBuf {
        self.dir.join(format!("{id}.bundle"))
    }

    /// The cached bytes of `id`, if present (unverified: the caller's load
    /// verifies them, and calls [`evict`](Self::evict) if they fail).
    pub fn get(&self, id: &ContentId) -> Option<Vec<u8>> {
        let path = self.path(id);
        let (file, len) = model_persistence_core::files::open_regular(&path).ok()?;
        let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?);
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, len), &mut bytes).ok()?;
        // Recently used: the eviction order is by modification time.
        let _ = file.set_modified(SystemTime::now());
        Some(bytes)
    }

    /// Removes a damaged bundle.
    pub fn evict(&self, id: &ContentId) {
        tracing::warn!(%id, "evicting a damaged bundle from the cache");
        let _ = fs::remove_file(self.path(id));
    }

    /// The bytes of `id`: from the cache, or from `download` (at most one
    /// process of the machine downloads a given bundle at a time), stored
    /// for the next use. `verify` must accept the bytes before they are
    /// used or stored.
    ///
    /// # Errors
    ///
    /// `download`'s or `verify`'s error.
    pub fn get_or_fetch<E>(
        &self,
        id: &ContentId,
        mut download: impl FnMut() -> Result<Vec<u8>, E>,
        verify: impl Fn(&[u8]) -> Result<(), E>,
    ) -> Result<(Vec<u8>, CacheOutcome), E> {
        if let Some(bytes) = self.get(id) {
            if verify(&bytes).is_ok() {
                return Ok((bytes, CacheOutcome::Hit));
            }
            self.evict(id);
        }
        let lock = self.dir.join(format!("{id}.lock"));
        let locked = self.take_lock(&lock);
        if !locked {
            // Another process is downloading it: wait for its bytes.
            let start = std::time::Instant::now();
            while start.elapsed() < WAIT_FOR_OTHER && lock.exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Some(bytes) = self.get(id) {
                if verify(&bytes).is_ok() {
                    return Ok((bytes, CacheOutcome::Waited));
                }
                self.evict(id);
            }
        }
        let result = download().and_then(|bytes| verify(&bytes).map(|()| bytes));
        if let Ok(bytes) = &result {
            self.store(id, bytes);
        }
        if locked {
            let _ = fs::remove_file(&lock);
        }
        result.map(|bytes| (bytes, CacheOutcome::Miss))
    }

    /// Creates the lock file; takes over one left by a process that is gone.
    fn take_lock(&self, lock: &Path) -> bool {
        let create = || fs::OpenOptions::new().write(true).create_new(true).open(lock);
        match create() {
            Ok(mut f) => {
                let _ = write!(f, "{}", std::process::id());
                true
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let stale = fs::metadata(lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_LOCK)
                    || lock_owner_is_gone(lock);
                if stale && fs::remove_file(lock).is_ok() {
                    return create().is_ok();
                }
                false
            }
            Err(_) => false,
        }
    }

    /// Writes a verified bundle (temporary file, then rename), then evicts
    /// the least recently used bundles beyond the bound. A bundle larger
    /// than the whole cache is not stored.
    fn store(&self, id: &ContentId, bytes: &[u8]) {
        if bytes.len() as u64 > self.max_bytes {
            return;
        }
        model_persistence_core::files::sweep_dead_temps(&self.dir, ".tmp-");
        let written = (|| -> std::io::Result<()> {
            let mut tmp = model_persistence_core::files::temp_file_in(&self.dir, ".tmp-", None)?;
            tmp.write_all(bytes)?;
            tmp.persist(self.path(id)).map_err(|e| e.error)?;
            Ok(())
        })();
        if let Err(e) = written {
            tracing::warn!(%id, error = %e, "could not store a bundle in the cache");
            return;
        }
        self.evict_beyond_bound();
    }

    fn evict_beyond_bound(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let mut bundles: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".bundle"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = bundles.iter().map(|b| b.1).sum();
        bundles.sort();
        for (_, len, path) in bundles {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    /// The bytes the cache holds now.
    pub fn used_bytes(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".bundle"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Whether the pid written in a lock file is a process that is gone (only
/// knowable where `/proc` exists).
fn lock_owner_is_gone(lock: &Path) -> bool {
    let Ok(text) = fs::read_to_string(lock) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    Path::new("/proc").is_dir() && !Path::new(&format!("/proc/{pid}")).exists()
}
