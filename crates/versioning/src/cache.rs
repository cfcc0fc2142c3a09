//! A per-machine bundle cache keyed by content id.
//!
//! A bundle's content id names its bytes, so a cached bundle never needs
//! invalidating: it is either the right bytes or damaged, and every use
//! verifies it (the load checks every hash and the content id). Many
//! processes on one machine share one cache directory: the first to miss a
//! bundle downloads it holding an advisory lock on `.<id>.lock`, the others
//! wait for it instead of downloading it again. The kernel releases the
//! lock when its holder exits, so a downloader killed mid-way holds up no
//! one: a waiter takes over at once. The cache is
//! bounded in bytes; the least recently used bundles are evicted first.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use model_persistence_core::ContentId;

/// How long a process waits for another to finish downloading a bundle.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(120);

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
        let lock = self.dir.join(format!(".{id}.lock"));
        let owned = match DownloadLock::take(&lock) {
            Taken::Mine(owned) => Some(owned),
            Taken::Theirs(file) => {
                // Another process is downloading it: wait until its lock is
                // released (by its end, or by the kernel at its death), then
                // use its bytes or, if it died without them, download here.
                let owned = DownloadLock::wait(file, WAIT_FOR_OTHER);
                if let Some(bytes) = self.get(id) {
                    if verify(&bytes).is_ok() {
                        return Ok((bytes, CacheOutcome::Waited));
                    }
                    self.evict(id);
                }
                owned
            }
            Taken::Unlockable => None,
        };
        let result = download().and_then(|bytes| verify(&bytes).map(|()| bytes));
        if let Ok(bytes) = &result {
            self.store(id, bytes);
        }
        drop(owned);
        result.map(|bytes| (bytes, CacheOutcome::Miss))
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

/// The lock of one bundle's download: an advisory lock (`flock`) on
/// `.<id>.lock` in the cache directory. The kernel releases it when its
/// holder exits, killed or not, so a waiter takes over the moment a
/// downloader dies, and a lock file left behind holds nothing.
struct DownloadLock(fs::File);

enum Taken {
    /// This process holds the lock.
    Mine(DownloadLock),
    /// Another holds it; the open file, to wait on.
    Theirs(fs::File),
    /// The lock file cannot be opened or locked (a read-only cache
    /// directory): download without it.
    Unlockable,
}

impl DownloadLock {
    fn take(path: &Path) -> Taken {
        let file = match fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
        {
            Ok(f) => f,
            Err(_) => return Taken::Unlockable,
        };
        match file.try_lock() {
            Ok(()) => Taken::Mine(DownloadLock(file)),
            Err(fs::TryLockError::WouldBlock) => Taken::Theirs(file),
            Err(fs::TryLockError::Error(_)) => Taken::Unlockable,
        }
    }

    /// Waits at most `bound` for the holder to release `file`'s lock;
    /// returns it held by this process, or `None` when the bound ran out.
    fn wait(file: fs::File, bound: Duration) -> Option<DownloadLock> {
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Some(DownloadLock(file)),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < bound => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for DownloadLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
