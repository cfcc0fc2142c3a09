//! Saving, loading, verifying and reading the card of bundles.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::DeflateEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::card::ModelCard;
use crate::error::{Error, LimitKind, Result, Section};
use crate::format::{
    assemble, decode_exact, truncated, Codec, ContentId, Header, Limits, PayloadDescriptor, Preamble, ENCODING_MSGPACK,
    HASH_LEN, PREAMBLE_LEN,
};
use crate::model::{Model, ProbeValue};

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
}

impl Default for BundleWriter {
    fn default() -> Self {
        BundleWriter {
            level: DEFAULT_LEVEL,
            write_card_json: true,
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

    /// Whether [`save`](Self::save) also writes `<bundle>.card.json`.
    /// Default: true.
    pub fn card_json(mut self, write: bool) -> Self {
        self.write_card_json = write;
        self
    }

    /// Encodes `model` and `card` into bundle bytes.
    ///
    /// The card is checked against the model first (kind, feature count,
    /// structure, probe), so that what is written will load.
    ///
    /// # Errors
    ///
    /// The error [`load`] would give for the same model and card, or
    /// [`Error::Encode`] if the model cannot be serialised.
    pub fn to_bytes<M: Model>(&self, model: &M, card: &ModelCard) -> Result<Vec<u8>> {
        Ok(self.encode(model, card)?.0)
    }

    fn encode<M: Model>(&self, model: &M, card: &ModelCard) -> Result<(Vec<u8>, ContentId, u64)> {
        card.check()?;
        validate_model(model, card)?;
        let raw = encode_named(model, "payload")?;
        let (codec, stored) = if self.level == 0 {
            (Codec::None, raw.clone())
        } else {
            let mut enc = DeflateEncoder::new(
                Vec::with_capacity(raw.len() / 2),
                flate2::Compression::new(u32::from(self.level)),
            );
            let deflated = enc
                .write_all(&raw)
                .and_then(|()| enc.finish())
                .map_err(|source| Error::Inflate { source })?;
            // Incompressible payloads (a few random floats) are stored as is,
            // so a higher level never gives a larger file.
            if deflated.len() < raw.len() {
                (Codec::Deflate, deflated)
            } else {
                (Codec::None, raw.clone())
            }
        };
        let header = Header {
            card: card.clone(),
            payload: PayloadDescriptor {
                codec,
                level: self.level,
                encoding: ENCODING_MSGPACK.to_owned(),
                raw_len: raw.len() as u64,
                stored_len: stored.len() as u64,
                sha256: hex::encode(Sha256::digest(&stored)),
            },
            flags: 0,
        };
        let (bytes, id) = assemble(&header, &stored)?;
        Ok((bytes, id, raw.len() as u64))
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
        let (bytes, content_id, raw_len) = self.encode(model, card)?;
        write_atomic(path, &bytes)?;
        let card_path = if self.write_card_json {
            let card_path = card_json_path(path);
            write_atomic(&card_path, card.to_json()?.as_bytes())?;
            Some(card_path)
        } else {
            None
        };
        tracing::debug!(path = %path.display(), %content_id, len = bytes.len(), "saved bundle");
        Ok(Saved {
            path: path.to_owned(),
            card_path,
            content_id,
            file_len: bytes.len() as u64,
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

fn encode_named<T: Serialize + ?Sized>(value: &T, section: &'static str) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|source| Error::Encode { section, source })
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
///
/// # Errors
///
/// [`Error::Io`] naming the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(
        ".{}.",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir)
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

/// A verified model with its card and content id.
#[derive(Debug, Clone)]
pub struct Loaded<M> {
    model: M,
    card: ModelCard,
    content_id: ContentId,
}

impl<M> Loaded<M> {
    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }
    /// The card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }
    /// The content id of the bundle it came from.
    pub fn content_id(&self) -> ContentId {
        self.content_id
    }
    /// The model and its card.
    pub fn into_parts(self) -> (M, ModelCard) {
        (self.model, self.card)
    }
}

/// What [`verify`] found: every checksum holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The content id.
    pub content_id: ContentId,
    /// Format major and minor version.
    pub format: (u16, u16),
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: semver::Version,
    /// The model kind tag.
    pub kind: String,
    /// How the payload is stored.
    pub payload: PayloadDescriptor,
    /// Size of the whole file.
    pub file_len: u64,
}

/// Reads bundles under configurable [`Limits`].
///
/// [`load`], [`read_card`] and [`verify`] use the defaults.
#[derive(Debug, Clone, Default)]
pub struct BundleReader {
    limits: Limits,
}

impl BundleReader {
    /// A reader enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        BundleReader { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Loads a model of type `M` from bundle bytes, verifying before it
    /// returns: magic, format version, header hash, payload hash (before
    /// inflating), model kind, feature count, structural check, probe.
    ///
    /// # Errors
    ///
    /// The typed [`Error`] of the first check that fails.
    pub fn load_bytes<M: Model>(&self, bytes: &[u8]) -> Result<Loaded<M>> {
        self.limits.check_file_len(bytes.len() as u64)?;
        let parsed = parse_header(bytes, &self.limits)?;
        let card = &parsed.header.card;
        if card.kind != M::KIND {
            return Err(Error::WrongModelKind {
                expected: M::KIND.to_owned(),
                found: card.kind.clone(),
            });
        }
        let stored = payload_slice(bytes, &parsed)?;
        check_payload_hash(&parsed.header.payload, &Sha256::digest(stored))?;
        let raw = inflate(&parsed.header.payload, stored, &self.limits)?;
        let model: M = decode_exact(&raw, self.limits.max_depth, "payload")?;
        drop(raw);
        let ParsedHeader { header, content_id, .. } = parsed;
        validate_model(&model, &header.card)?;
        Ok(Loaded {
            model,
            card: header.card,
            content_id,
        })
    }

    /// Loads a model of type `M` from a bundle file. See
    /// [`load_bytes`](Self::load_bytes) for what is checked.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with the path, or the first failed check.
    pub fn load<M: Model>(&self, path: impl AsRef<Path>) -> Result<Loaded<M>> {
        let bytes = self.read_file(path.as_ref())?;
        self.load_bytes(&bytes)
    }

    /// Reads the card from the preamble and header alone, checking the
    /// header hash; the payload is never read, so this takes the same time
    /// whatever the model's size.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or any error of the preamble and header.
    pub fn read_card(&self, path: impl AsRef<Path>) -> Result<ModelCard> {
        Ok(self.read_header(path)?.0)
    }

    /// Reads the card and the content id from the preamble and header
    /// alone (the header hash is checked; the payload is never read): how a
    /// server tells cheaply whether a bundle changed.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or any error of the preamble and header.
    pub fn read_header(&self, path: impl AsRef<Path>) -> Result<(ModelCard, ContentId)> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut head = vec![0_u8; PREAMBLE_LEN];
        let n = read_up_to(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
        head.truncate(n);
        let preamble = Preamble::parse(&head, &self.limits)?;
        let rest = preamble.payload_start() - PREAMBLE_LEN;
        head.resize(PREAMBLE_LEN + rest, 0);
        let n = read_up_to(&mut file, &mut head[PREAMBLE_LEN..]).map_err(|e| Error::io(path, e))?;
        head.truncate(PREAMBLE_LEN + n);
        let parsed = parse_header(&head, &self.limits)?;
        Ok((parsed.header.card, parsed.content_id))
    }

    /// Reads the card from bundle bytes without touching the payload.
    ///
    /// # Errors
    ///
    /// Any error of the preamble and header.
    pub fn read_card_bytes(&self, bytes: &[u8]) -> Result<ModelCard> {
        Ok(parse_header(bytes, &self.limits)?.header.card)
    }

    /// Checks every hash and length of bundle bytes without decoding the
    /// model.
    ///
    /// # Errors
    ///
    /// The first failed check.
    pub fn verify_bytes(&self, bytes: &[u8]) -> Result<Summary> {
        self.limits.check_file_len(bytes.len() as u64)?;
        let parsed = parse_header(bytes, &self.limits)?;
        let stored = payload_slice(bytes, &parsed)?;
        check_payload_hash(&parsed.header.payload, &Sha256::digest(stored))?;
        Ok(summary(parsed, bytes.len() as u64))
    }

    /// Checks every hash and length of a bundle file without decoding the
    /// model, streaming the payload through SHA-256.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with the path, or the first failed check.
    pub fn verify(&self, path: impl AsRef<Path>) -> Result<Summary> {
        self.verify_with_progress(path, &mut |_, _| {})
    }

    /// [`verify`](Self::verify), calling `progress(hashed, total)` with the
    /// payload bytes hashed so far (every MiB and at the end), for progress
    /// bars on large bundles.
    ///
    /// # Errors
    ///
    /// Those of [`verify`](Self::verify).
    pub fn verify_with_progress(&self, path: impl AsRef<Path>, progress: &mut dyn FnMut(u64, u64)) -> Result<Summary> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        self.limits.check_file_len(file_len)?;
        let mut head = vec![0_u8; PREAMBLE_LEN];
        let n = read_up_to(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
        head.truncate(n);
        let preamble = Preamble::parse(&head, &self.limits)?;
        let payload_start = preamble.payload_start();
        head.resize(payload_start, 0);
        let n = read_up_to(&mut file, &mut head[PREAMBLE_LEN..]).map_err(|e| Error::io(path, e))?;
        head.truncate(PREAMBLE_LEN + n);
        let parsed = parse_header(&head, &self.limits)?;
        check_payload_len(&parsed.header.payload, payload_start as u64, file_len)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0_u8; 1 << 20];
        let mut remaining = parsed.header.payload.stored_len;
        while remaining > 0 {
            let want = remaining.min(buf.len() as u64) as usize;
            let got = read_up_to(&mut file, &mut buf[..want]).map_err(|e| Error::io(path, e))?;
            if got == 0 {
                return Err(truncated(
                    "payload",
                    payload_start as u64,
                    parsed.header.payload.stored_len,
                    parsed.header.payload.stored_len - remaining,
                ));
            }
            hasher.update(&buf[..got]);
            remaining -= got as u64;
            progress(
                parsed.header.payload.stored_len - remaining,
                parsed.header.payload.stored_len,
            );
        }
        check_payload_hash(&parsed.header.payload, &hasher.finalize())?;
        Ok(summary(parsed, file_len))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        self.limits.check_file_len(len)?;
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(self.limits.max_file_len.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        self.limits.check_file_len(bytes.len() as u64)?;
        Ok(bytes)
    }
}

fn summary(parsed: ParsedHeader, file_len: u64) -> Summary {
    let ParsedHeader {
        preamble,
        header,
        content_id,
    } = parsed;
    Summary {
        content_id,
        format: (preamble.major, preamble.minor),
        name: header.card.name,
        version: header.card.version,
        kind: header.card.kind,
        payload: header.payload,
        file_len,
    }
}

fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn check_payload_len(d: &PayloadDescriptor, payload_start: u64, file_len: u64) -> Result<()> {
    let available = file_len.saturating_sub(payload_start);
    if available < d.stored_len {
        return Err(truncated("payload", payload_start, d.stored_len, available));
    }
    if available > d.stored_len {
        return Err(Error::TrailingBytes {
            end: payload_start + d.stored_len,
            extra: available - d.stored_len,
        });
    }
    Ok(())
}

fn payload_slice<'b>(bytes: &'b [u8], parsed: &ParsedHeader) -> Result<&'b [u8]> {
    let start = parsed.preamble.payload_start();
    check_payload_len(&parsed.header.payload, start as u64, bytes.len() as u64)?;
    Ok(&bytes[start..])
}

fn check_payload_hash(d: &PayloadDescriptor, computed: &[u8]) -> Result<()> {
    let computed = hex::encode(computed);
    if computed != d.sha256 {
        return Err(Error::ChecksumMismatch {
            section: Section::Payload,
            expected: d.sha256.clone(),
            found: computed,
        });
    }
    Ok(())
}

/// Largest deflate expansion ratio (RFC 1951 caps a byte of input at 258
/// bytes of output per 2 bits); used to bound the initial allocation.
const MAX_DEFLATE_RATIO: u64 = 1032;

fn inflate<'b>(d: &PayloadDescriptor, stored: &'b [u8], limits: &Limits) -> Result<std::borrow::Cow<'b, [u8]>> {
    match d.codec {
        Codec::None => Ok(std::borrow::Cow::Borrowed(stored)),
        Codec::Deflate => {
            let cap = d.raw_len.min((stored.len() as u64).saturating_mul(MAX_DEFLATE_RATIO));
            let mut out = Vec::with_capacity(cap as usize);
            let decoder = flate2::read::DeflateDecoder::new(stored);
            decoder
                .take(d.raw_len.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|source| Error::Inflate { source })?;
            let got = out.len() as u64;
            if got > d.raw_len {
                return Err(Error::LimitExceeded {
                    limit: LimitKind::InflatedLen,
                    limit_value: d.raw_len.min(limits.max_inflated_len),
                    found: got,
                });
            }
            if got < d.raw_len {
                return Err(Error::Invalid {
                    section: "payload",
                    reason: format!("inflates to {got} bytes, the header declares {}", d.raw_len),
                });
            }
            Ok(std::borrow::Cow::Owned(out))
        }
    }
}

/// The checks shared by saving and loading: kind, feature count, structure,
/// probe.
fn validate_model<M: Model>(model: &M, card: &ModelCard) -> Result<()> {
    if card.kind != M::KIND {
        return Err(Error::WrongModelKind {
            expected: M::KIND.to_owned(),
            found: card.kind.clone(),
        });
    }
    if let Some(n) = model.n_features() {
        if n != card.n_features {
            return Err(Error::FeatureCountMismatch {
                card: card.n_features,
                model: n,
            });
        }
    }
    model
        .check_structure(card.n_features)
        .map_err(|e| Error::InvalidStructure {
            kind: M::KIND.to_owned(),
            reason: e.reason().to_owned(),
        })?;
    if let Some(probe) = &card.probe {
        if probe.rows.is_empty() {
            return Ok(());
        }
        let flat: Vec<f64> = probe.rows.iter().flatten().copied().collect();
        let rows = ndarray::ArrayView2::from_shape((probe.rows.len(), card.n_features), &flat).map_err(|_| {
            Error::Invalid {
                section: "card",
                reason: "probe rows do not match the feature count".into(),
            }
        })?;
        let predicted = model.predict(rows);
        for (row, (expected, found)) in probe.expected.iter().zip(predicted.iter()).enumerate() {
            let found: ProbeValue = found.clone().into();
            if *expected != found {
                return Err(Error::ProbeMismatch {
                    row,
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Loads a model of type `M` from a file with the default limits.
///
/// # Errors
///
/// See [`BundleReader::load`].
pub fn load<M: Model>(path: impl AsRef<Path>) -> Result<Loaded<M>> {
    BundleReader::default().load(path)
}

/// Loads a model of type `M` from bytes with the default limits.
///
/// # Errors
///
/// See [`BundleReader::load_bytes`].
pub fn from_bytes<M: Model>(bytes: &[u8]) -> Result<Loaded<M>> {
    BundleReader::default().load_bytes(bytes)
}

/// Reads a bundle's card (header only) with the default limits.
///
/// # Errors
///
/// See [`BundleReader::read_card`].
pub fn read_card(path: impl AsRef<Path>) -> Result<ModelCard> {
    BundleReader::default().read_card(path)
}

/// Verifies every checksum of a bundle file with the default limits.
///
/// # Errors
///
/// See [`BundleReader::verify`].
pub fn verify(path: impl AsRef<Path>) -> Result<Summary> {
    BundleReader::default().verify(path)
}

#[allow(dead_code)]
const _: usize = HASH_LEN;

type ParsedHeader = crate::format::ParsedHeader<ModelCard>;

/// Parses and verifies the header region, then checks the card.
fn parse_header(bytes: &[u8], limits: &Limits) -> Result<ParsedHeader> {
    let parsed = crate::format::parse_header::<ModelCard>(bytes, limits)?;
    parsed.header.card.check()?;
    Ok(parsed)
}
