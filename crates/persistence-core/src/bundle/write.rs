//! Writing bundles: encode, then save atomically with the card beside.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::validate_model;
use crate::card::ModelCard;
use crate::error::{Error, Result};
use crate::format::{assemble_head, encode_named, encode_payload, ContentId, Header};
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
}

impl Default for BundleWriter {
    fn default() -> Self {
        BundleWriter {
            level: DEFAULT_LEVEL,
            write_card_json: true,
            fsync: true,
        }
    }
}

/// A bundle encoded in memory: the head (preamble, header, header hash)
/// and the stored payload, kept apart so that saving writes them without
/// joining them first.
struct Encoded {
    head: Vec<u8>,
    stored: Vec<u8>,
    content_id: ContentId,
    raw_len: u64,
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
        let Encoded { mut head, stored, .. } = self.encode(model, card)?;
        head.extend_from_slice(&stored);
        Ok(head)
    }

    /// Skips the fsyncs of [`save`](Self::save): the rename still replaces
    /// the file in one step, but after a power loss (not a process crash)
    /// the file may be empty or partial. For scratch files, caches and
    /// benchmarks only; a registry always syncs.
    pub fn without_fsync(mut self) -> Self {
        self.fsync = false;
        self
    }

    fn encode<M: Model>(&self, model: &M, card: &ModelCard) -> Result<Encoded> {
        card.check()?;
        validate_model(model, card)?;
        let raw = encode_named(model, "payload")?;
        let raw_len = raw.len() as u64;
        let (payload, stored) = encode_payload(raw, self.level)?;
        let header = Header {
            card: card.clone(),
            payload,
            flags: 0,
        };
        let (head, content_id) = assemble_head(&header)?;
        Ok(Encoded {
            head,
            stored,
            content_id,
            raw_len,
        })
    }

    /// Saves `model` with `card` to `path`, atomically: a temporary file in
    /// the same directory is written, fsynced and renamed over `path`, then
    /// the directory is fsynced. A crash leaves the old file or the new one.
    /// The card is also written as `<path>.card.json` (same procedure).
    ///
    /// # Errors
    ///
    /// Those of [`to_bytes`](Self::to_bytes), and [`Error::Io`] with the path.
    pub fn save<M: Model>(&self, path: impl AsRef<Path>, model: &M, card: &ModelCard) -> Result<Saved> {
        let path = path.as_ref();
        let Encoded {
            head,
            stored,
            content_id,
            raw_len,
        } = self.encode(model, card)?;
        write_parts_atomic(path, &[&head, &stored], self.fsync)?;
        let file_len = (head.len() + stored.len()) as u64;
        let card_path = if self.write_card_json {
            let card_path = card_json_path(path);
            write_parts_atomic(&card_path, &[card.to_json()?.as_bytes()], self.fsync)?;
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
    write_parts_atomic(path, &[bytes], true)
}

/// [`write_atomic`] of the concatenation of `parts`, with or without the
/// fsyncs.
fn write_parts_atomic(path: &Path, parts: &[&[u8]], fsync: bool) -> Result<()> {
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
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions());
    let mut tmp = crate::files::temp_file_in(dir, &prefix, mode).map_err(|e| Error::io(dir, e))?;
    for part in parts {
        tmp.write_all(part).map_err(|e| Error::io(tmp.path(), e))?;
    }
    if fsync {
        tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
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
