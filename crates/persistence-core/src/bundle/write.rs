//! Writing bundles: encode, then save atomically with the card beside.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::validate_model;
use crate::card::ModelCard;
use crate::error::{Error, Result};
use crate::format::{
    assemble_head, compress, descriptor, encode_named, encode_payload, encoded_len, Codec, ContentId, Header, HASH_LEN,
};
use crate::model::Model;

/// The default compression level: a balance of size and speed.
pub const DEFAULT_LEVEL: u8 = 3;

/// Writes bundles. [`save`] and [`to_bytes`] use the defaults.
///
/// # Examples
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn demo<M: model_persistence_core::Model>(model: &M, card: &model_persistence_core::ModelCard) -> model_persistence_core::Result<()> {
/// use model_persistence_core::BundleWriter;
///
/// let saved = BundleWriter::default().level(9).save("models/fraud.bundle", model, card)?;
/// println!("{} bytes, content id {}", saved.file_len(), saved.content_id());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BundleWriter {
    level: u8,
    write_card_json: bool,
    fsync: bool,
    unversioned: bool,
}

impl Default for BundleWriter {
    fn default() -> Self {
        BundleWriter {
            level: DEFAULT_LEVEL,
            write_card_json: true,
            fsync: true,
            unversioned: false,
        }
    }
}

/// What a save produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    path: PathBuf,
    card_path: Option<PathBuf>,
    content_id: ContentId,
    file_len: u64,
    raw_len: u64,
}

impl Saved {
    /// Where the bundle is.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Where the card JSON is, if one was written.
    pub fn card_path(&self) -> Option<&Path> {
        self.card_path.as_deref()
    }
    /// The bundle's content id.
    pub fn content_id(&self) -> ContentId {
        self.content_id
    }
    /// Size of the bundle file in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// Size of the encoded model before compression.
    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }
}

impl BundleWriter {
    /// Compression level, 0 (stored as is) to 9 (smallest); values above 9
    /// are taken as 9. Default: [`DEFAULT_LEVEL`] (3).
    pub fn level(mut self, level: u8) -> Self {
        self.level = level.min(9);
        self
    }

    /// Makes [`save`](Self::save) write the bundle alone, without
    /// `<bundle>.card.json` beside it. Default: the card JSON is written.
    pub fn without_card_json(mut self) -> Self {
        self.write_card_json = false;
        self
    }

    /// Encodes `model` and `card` into bundle bytes.
    ///
    /// The card is checked against the model first (kind, feature count,
    /// structure, probe), so that what is written will load.
    ///
    /// # Errors
    ///
    /// The error [`load`](crate::load) would give for the same model and card, or
    /// [`Error::Encode`] if the model cannot be serialised.
    pub fn to_bytes<M: Model>(&self, model: &M, card: &ModelCard) -> Result<Vec<u8>> {
        card.check()?;
        validate_model(model, card)?;
        let (payload, stored) = encode_payload(encode_named(model, "payload")?, self.level)?;
        let header = Header {
            card: card.clone(),
            payload,
            flags: 0,
        };
        let (mut bytes, _) = assemble_head(&header)?;
        bytes.extend_from_slice(&stored);
        Ok(bytes)
    }

    /// Skips the fsyncs of [`save`](Self::save): the rename still replaces
    /// the file in one step, but after a power loss (not a process crash)
    /// the file may be empty or partial. For scratch files, caches and
    /// benchmarks only; a registry always syncs.
    pub fn without_fsync(mut self) -> Self {
        self.fsync = false;
        self
    }

    /// Lets [`save`](Self::save) write a card without a version (`0.0.0`):
    /// for a bundle on its way to a registry, which gives it the version it
    /// publishes under (`modelctl import-onnx` without `--version`).
    pub fn unversioned(mut self) -> Self {
        self.unversioned = true;
        self
    }

    /// Saves `model` with `card` to `path`, atomically: a temporary file in
    /// the same directory is written, fsynced and renamed over `path`, then
    /// the directory is fsynced. A crash leaves the old file or the new one.
    /// The card is also written as `<path>.card.json` (same procedure).
    ///
    /// # Errors
    ///
    /// Those of [`to_bytes`](Self::to_bytes), [`Error::Io`] with the path,
    /// and [`Error::UnversionedCard`] for a card whose version was never set
    /// (`0.0.0`): a file outside a registry carries its own version (unless
    /// [`unversioned`](Self::unversioned)).
    pub fn save<M: Model>(&self, path: impl AsRef<Path>, model: &M, card: &ModelCard) -> Result<Saved> {
        let path = path.as_ref();
        if card.version == semver::Version::new(0, 0, 0) && !self.unversioned {
            return Err(Error::UnversionedCard {
                name: card.name.clone(),
            });
        }
        card.check()?;
        validate_model(model, card)?;
        if self.level == 0 {
            return self.save_stored(path, model, card);
        }
        let raw = encode_named(model, "payload")?;
        let raw_len = raw.len() as u64;
        let (codec, stored) = compress(raw, self.level)?;
        // The header's length does not depend on the payload's hash (a
        // fixed-width hex string): the payload is written at its offset
        // while a second thread hashes it, then the head is written before it.
        let mut header = Header {
            card: card.clone(),
            payload: descriptor(codec, self.level, raw_len, stored.len() as u64, &[0; HASH_LEN]),
            flags: 0,
        };
        let head_len = assemble_head(&header)?.0.len();
        let mut content_id = None;
        write_atomic_with(path, self.fsync, |file| {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(head_len as u64))?;
            let hash = write_hashing(file, &stored)?;
            header.payload = descriptor(codec, self.level, raw_len, stored.len() as u64, &hash);
            content_id = Some(write_head(file, &header, head_len)?);
            Ok(())
        })?;
        self.finish(path, card, content_id, (head_len + stored.len()) as u64, raw_len)
    }

    /// Saves at level 0 without encoding the payload into a buffer first:
    /// its length is counted, then the model is serialised straight into
    /// the file at its offset, large blobs written while a second thread
    /// hashes them (a 100 MB model is never copied in memory).
    fn save_stored<M: Model>(&self, path: &Path, model: &M, card: &ModelCard) -> Result<Saved> {
        let raw_len = encoded_len(model, "payload")?;
        let mut header = Header {
            card: card.clone(),
            payload: descriptor(Codec::None, 0, raw_len, raw_len, &[0; HASH_LEN]),
            flags: 0,
        };
        let head_len = assemble_head(&header)?.0.len();
        let mut content_id = None;
        write_atomic_with(path, self.fsync, |file| {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(head_len as u64))?;
            let mut out = HashingWriter::new(file);
            rmp_serde::encode::write_named(&mut out, model).map_err(std::io::Error::other)?;
            let (written, hash) = out.finish()?;
            if written != raw_len {
                return Err(std::io::Error::other(format!(
                    "the model encoded to {written} bytes after counting {raw_len}"
                )));
            }
            header.payload = descriptor(Codec::None, 0, raw_len, raw_len, &hash);
            content_id = Some(write_head(file, &header, head_len)?);
            Ok(())
        })?;
        self.finish(path, card, content_id, head_len as u64 + raw_len, raw_len)
    }

    /// The card JSON beside a saved bundle, and what was saved.
    fn finish(
        &self,
        path: &Path,
        card: &ModelCard,
        content_id: Option<ContentId>,
        file_len: u64,
        raw_len: u64,
    ) -> Result<Saved> {
        let content_id = content_id.ok_or_else(|| Error::Invalid {
            section: "header",
            reason: "the bundle was written without its head".to_owned(),
        })?;
        let card_path = if self.write_card_json {
            let card_path = card_json_path(path);
            let json = card.to_json()?;
            write_atomic_with(&card_path, self.fsync, |f| f.write_all(json.as_bytes()))?;
            Some(card_path)
        } else {
            None
        };
        tracing::debug!(path = %path.display(), %content_id, len = file_len, "saved bundle");
        Ok(Saved {
            path: path.to_owned(),
            card_path,
            content_id,
            file_len,
            raw_len,
        })
    }
}

/// Writes the head (preamble, header, header hash) at the start of the
/// file, where `head_len` bytes were left for it before the payload.
fn write_head(file: &mut File, header: &Header<ModelCard>, head_len: usize) -> std::io::Result<ContentId> {
    use std::io::{Seek, SeekFrom};
    let (head, id) = assemble_head(header).map_err(std::io::Error::other)?;
    if head.len() != head_len {
        return Err(std::io::Error::other(
            "the header changed length when its hash was filled in",
        ));
    }
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&head)?;
    Ok(id)
}

/// A writer into the file that hashes what it writes: small writes are
/// gathered and hashed on this thread, a large one is written while a
/// second thread hashes it.
struct HashingWriter<'f> {
    file: &'f mut File,
    hasher: sha2::Sha256,
    gathered: Vec<u8>,
    written: u64,
}

/// Writes at least this large are hashed on a second thread.
const LARGE_WRITE: usize = 8 << 20;

impl<'f> HashingWriter<'f> {
    fn new(file: &'f mut File) -> Self {
        HashingWriter {
            file,
            hasher: sha2::Digest::new(),
            gathered: Vec::with_capacity(64 << 10),
            written: 0,
        }
    }

    fn write_gathered(&mut self) -> std::io::Result<()> {
        sha2::Digest::update(&mut self.hasher, &self.gathered);
        self.file.write_all(&self.gathered)?;
        self.gathered.clear();
        Ok(())
    }

    /// The bytes written and their SHA-256.
    fn finish(mut self) -> std::io::Result<(u64, [u8; HASH_LEN])> {
        self.write_gathered()?;
        Ok((self.written, sha2::Digest::finalize(self.hasher).into()))
    }
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.written += data.len() as u64;
        if data.len() < LARGE_WRITE {
            self.gathered.extend_from_slice(data);
            if self.gathered.len() >= 64 << 10 {
                self.write_gathered()?;
            }
            return Ok(data.len());
        }
        self.write_gathered()?;
        let mut hasher = std::mem::replace(&mut self.hasher, sha2::Digest::new());
        let file = &mut *self.file;
        let (written, hasher) = std::thread::scope(|s| {
            let hashing = s.spawn(move || {
                sha2::Digest::update(&mut hasher, data);
                hasher
            });
            (file.write_all(data), hashing.join())
        });
        self.hasher = hasher.map_err(|_| std::io::Error::other("the hashing thread failed"))?;
        written.map(|()| data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `bytes` to `file` and returns their SHA-256, hashed on a second
/// thread while large payloads are written.
fn write_hashing(file: &mut File, bytes: &[u8]) -> std::io::Result<[u8; HASH_LEN]> {
    use sha2::{Digest, Sha256};
    if bytes.len() < 8 << 20 {
        file.write_all(bytes)?;
        return Ok(Sha256::digest(bytes).into());
    }
    std::thread::scope(|s| {
        let hasher = s.spawn(|| -> [u8; HASH_LEN] { Sha256::digest(bytes).into() });
        let written = file.write_all(bytes);
        let hash = hasher
            .join()
            .map_err(|_| std::io::Error::other("the hashing thread failed"))?;
        written.map(|()| hash)
    })
}

/// The path of the card JSON written beside a bundle: `<bundle>.card.json`.
pub fn card_json_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".card.json");
    bundle.with_file_name(name)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync
/// dir). A file replaced keeps its permissions; a new file gets 0666 minus
/// the umask. Temporary files of writers that died are removed on the way.
///
/// # Errors
///
/// [`Error::Io`] naming the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, true, |f| f.write_all(bytes))
}

/// [`write_atomic`] of what `fill` writes into the temporary file, with or
/// without the fsyncs.
fn write_atomic_with(path: &Path, fsync: bool, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(
        ".{}.tmp-",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    crate::files::sweep_dead_temps(dir, &prefix);
    // A file replaced keeps its mode; a new one gets 0666 minus the umask.
    let old = std::fs::metadata(path).ok();
    let mode = old.as_ref().map(|m| m.permissions());
    let mut tmp = crate::files::temp_file_in(dir, &prefix, mode).map_err(|e| Error::io(dir, e))?;
    fill(tmp.as_file_mut()).map_err(|e| Error::io(tmp.path(), e))?;
    if fsync {
        tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    }
    let replaced = hold_large(path, old.as_ref());
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    release_in_background(replaced);
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Files from this size that a save replaces are released off the caller's
/// path.
const RELEASE_IN_BACKGROUND_FROM: u64 = 8 << 20;

/// The file a save is about to replace, held open if it is large: renaming
/// over it then only unlinks it, and the kernel frees its pages (tens of
/// milliseconds for 100 MB) when the last handle closes, which
/// [`release_in_background`] does on another thread. Nothing is left on
/// disk either way: the inode is already unlinked, and a process that exits
/// first closes the handle with everything else.
#[cfg(unix)]
fn hold_large(path: &Path, old: Option<&std::fs::Metadata>) -> Option<File> {
    let large = old.is_some_and(|m| m.is_file() && m.len() >= RELEASE_IN_BACKGROUND_FROM);
    large.then(|| File::open(path).ok()).flatten()
}

/// Elsewhere a file held open may not be renamed over: nothing is held.
#[cfg(not(unix))]
fn hold_large(_: &Path, _: Option<&std::fs::Metadata>) -> Option<File> {
    None
}

fn release_in_background(file: Option<File>) {
    if let Some(file) = file {
        // If no thread can be started, the handle is closed here instead.
        let _ = std::thread::Builder::new()
            .name("release-replaced".into())
            .spawn(move || drop(file));
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Saves with the default writer (level 3, card JSON beside).
///
/// # Errors
///
/// See [`BundleWriter::save`].
pub fn save<M: Model>(path: impl AsRef<Path>, model: &M, card: &ModelCard) -> Result<Saved> {
    BundleWriter::default().save(path, model, card)
}

/// Encodes with the default writer (level 3).
///
/// # Errors
///
/// See [`BundleWriter::to_bytes`].
pub fn to_bytes<M: Model>(model: &M, card: &ModelCard) -> Result<Vec<u8>> {
    BundleWriter::default().to_bytes(model, card)
}
