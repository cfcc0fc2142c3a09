//! Reading bundles: verified loads, the card from the header alone, and
//! checksums without decoding.
//!
//! Past 500 lines on purpose: every road into a bundle (a typed or dynamic
//! load, from a file or bytes, the card alone, a verify) opens it through
//! the same header parse here, so the checks of each stay side by side.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::validate_model;
use crate::card::ModelCard;
use crate::checked::CheckedModel;
use crate::error::{Error, Result};
use crate::files::NotRegular;
use crate::format::{
    check_payload_hash, check_payload_len, decode_exact, inflate, inflate_from, payload_slice, Codec, ContentId,
    Limits, PayloadDescriptor, Preamble, HASH_LEN, PREAMBLE_LEN,
};
use crate::model::Model;

use super::open::{HashingReader, Keep, OpenBundle};

/// A verified model with its card and content id.
#[derive(Debug, Clone)]
pub struct Loaded<M> {
    model: CheckedModel<M>,
    card: ModelCard,
    content_id: ContentId,
}

impl<M> Loaded<M> {
    /// A loaded model from its parts (for loaders of other kinds of models,
    /// such as [`Kinds`](crate::Kinds)).
    pub(crate) fn from_parts(model: M, card: ModelCard, content_id: ContentId) -> Self {
        Loaded {
            model: CheckedModel::trusted(model, card.n_features),
            card,
            content_id,
        }
    }

    /// The model, behind checks: its `predict`, `scores` and
    /// `predict_scored` check the rows against the card's features first
    /// and return a `Result` (see [`CheckedModel`]); everything else of the
    /// model is reached through `Deref`, and
    /// [`CheckedModel::get`] gives the model itself.
    pub fn model(&self) -> &CheckedModel<M> {
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
        (self.model.into_inner(), self.card)
    }
}

impl<M: Model> Loaded<M> {
    /// Predicts one output per row, after checking that the rows have as
    /// many columns as the card's features: the check on use that a bare
    /// [`Predictor::predict`](crate::Predictor::predict) cannot make (a linfa model given the wrong width
    /// panics inside ndarray).
    ///
    /// An inherent method, so it is the one called even with
    /// `linfa::prelude::*` (and its `Predict` trait) in scope.
    ///
    /// # Errors
    ///
    /// [`Error::Input`] for rows of the wrong width, or with a NaN or
    /// infinite value when the model does not take them
    /// ([`Predictor::accepts_non_finite`](crate::Predictor::accepts_non_finite)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "testing")] {
    /// use model_persistence_testkit::LinearClassifier;
    /// use model_persistence_core::{from_bytes, to_bytes, Error, InputError, ModelCard};
    ///
    /// let model = LinearClassifier { weights: vec![1.0, -1.0], bias: 0.0 };
    /// let card = ModelCard::builder("doc", &model).n_features(2).build()?;
    /// let loaded = from_bytes::<LinearClassifier>(&to_bytes(&model, &card)?)?;
    /// assert_eq!(loaded.predict(ndarray::array![[2.0, 1.0]].view())?.to_vec(), vec![1]);
    /// assert!(matches!(
    ///     loaded.predict(ndarray::array![[2.0, 1.0, 0.0]].view()),
    ///     Err(Error::Input(InputError::Width { expected: 2, found: 3 }))
    /// ));
    /// # }
    /// # Ok::<(), model_persistence_core::Error>(())
    /// ```
    pub fn predict(&self, rows: ndarray::ArrayView2<'_, f64>) -> Result<ndarray::Array1<M::Output>> {
        Ok(self.model.predict(rows)?)
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
        self.load_opened(self.open_bytes(bytes)?)
    }

    /// Loads a model of type `M` from a bundle file. See
    /// [`load_bytes`](Self::load_bytes) for what is checked.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with the path, or the first failed check.
    ///
    /// The file is refused before it is read if it is not a regular file (a
    /// FIFO, a device, a directory); the magic and header are checked
    /// before the payload is read; a stored payload is read once, hashed as
    /// it arrives, into the buffer it is decoded from; a deflated one is
    /// hashed in a first pass and inflated in a second, so memory holds one
    /// copy of the inflated payload and the model, never the file besides.
    pub fn load<M: Model>(&self, path: impl AsRef<Path>) -> Result<Loaded<M>> {
        self.load_opened(self.open_file(path.as_ref())?)
    }

    /// Opens a bundle file for a load: one open, one read of the preamble
    /// and header, one parse (see [`Opened`]).
    pub(crate) fn open_file(&self, path: &Path) -> Result<Opened<'static>> {
        Ok(Opened::File(self.open(path)?))
    }

    /// Bundle bytes for a load, their header parsed once.
    pub(crate) fn open_bytes<'a>(&self, bytes: &'a [u8]) -> Result<Opened<'a>> {
        self.limits.check_file_len(bytes.len() as u64)?;
        let parsed = parse_header(bytes, &self.limits)?;
        Ok(Opened::Bytes { bytes, parsed })
    }

    /// Loads an opened bundle as `M`: the one road every load takes, typed
    /// or by kind, from a file or from bytes.
    pub(crate) fn load_opened<M: Model>(&self, opened: Opened<'_>) -> Result<Loaded<M>> {
        check_kind::<M>(&opened.card().kind)?;
        let (raw, parsed) = match opened {
            Opened::Bytes { bytes, parsed } => {
                let stored = payload_slice(bytes, &parsed)?;
                if speculate(stored.len() as u64) {
                    return decode_beside_hash(stored, parsed, &self.limits);
                }
                check_payload_hash(&parsed.header.payload, &Sha256::digest(stored))?;
                // A stored payload is borrowed from `bytes`, not copied.
                (inflate(&parsed.header.payload, stored, &self.limits)?, parsed)
            }
            Opened::File(mut open) => {
                let d = open.parsed.header.payload.clone();
                if speculate(d.stored_len) {
                    let stored = open.read_unhashed()?;
                    return decode_beside_hash(&stored, open.parsed, &self.limits);
                }
                let raw = match d.codec {
                    Codec::None => {
                        let (bytes, hash) = open.read_payload(&mut |_, _| {}, Keep::Bytes)?;
                        check_payload_hash(&d, &hash)?;
                        bytes
                    }
                    Codec::Deflate => {
                        let (_, first) = open.read_payload(&mut |_, _| {}, Keep::Nothing)?;
                        check_payload_hash(&d, &first)?;
                        open.rewind()?;
                        let path = open.path.clone();
                        let mut hashing = HashingReader::new((&mut open.file).take(d.stored_len));
                        let raw = inflate_from(&d, &mut hashing, d.stored_len, &self.limits)?;
                        // Drain what the decoder did not need (a valid stream
                        // ends exactly with the payload), then check the bytes
                        // inflated are the bytes hashed: the file did not
                        // change in between.
                        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| Error::io(&path, e))?;
                        check_payload_hash(&d, &hashing.finish())?;
                        raw
                    }
                };
                (std::borrow::Cow::Owned(raw), open.parsed)
            }
        };
        let ParsedHeader {
            mut header, content_id, ..
        } = parsed;
        let model: M = decode_model(&mut header.card, &raw, self.limits.max_depth)?;
        drop(raw);
        validate_model(&model, &header.card)?;
        Ok(Loaded::from_parts(model, header.card, content_id))
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
        let open = self.open_header(path.as_ref())?;
        Ok((open.parsed.header.card, open.parsed.content_id))
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
        let mut open = self.open(path.as_ref())?;
        let (_, hash) = open.read_payload(progress, Keep::Nothing)?;
        check_payload_hash(&open.parsed.header.payload, &hash)?;
        Ok(summary(open.parsed, open.file_len))
    }

    /// Opens a bundle file and reads and checks its preamble and header and
    /// the payload's length, leaving the file at the payload. Refuses what is not a regular file
    /// before reading from it, so a FIFO never blocks and a device is never
    /// read.
    fn open(&self, path: &Path) -> Result<OpenBundle> {
        let open = self.open_header(path)?;
        check_payload_len(&open.parsed.header.payload, open.payload_start, open.file_len)?;
        Ok(open)
    }

    /// [`open`](Self::open) without checking the payload's length: what
    /// reading the card alone needs.
    fn open_header(&self, path: &Path) -> Result<OpenBundle> {
        let (mut file, file_len) = open_regular(path)?;
        self.limits.check_file_len(file_len)?;
        let mut head = vec![0_u8; PREAMBLE_LEN];
        let n = read_up_to(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
        head.truncate(n);
        let preamble = Preamble::parse(&head, &self.limits)?;
        let payload_start = preamble.payload_start();
        // The header region is bounded by the header limit (checked in the
        // preamble) and by the file's real size.
        let region = (payload_start as u64).min(file_len) as usize;
        head.resize(region.max(PREAMBLE_LEN), 0);
        let n = read_up_to(&mut file, &mut head[PREAMBLE_LEN..]).map_err(|e| Error::io(path, e))?;
        head.truncate(PREAMBLE_LEN + n);
        let parsed = parse_header(&head, &self.limits)?;
        Ok(OpenBundle {
            file,
            path: path.to_owned(),
            file_len,
            payload_start: payload_start as u64,
            parsed,
        })
    }
}

/// A bundle whose preamble and header are read, hashed and parsed once,
/// from a file (left at its payload) or from bytes: what a load dispatches
/// on, by type or by the card's kind.
pub(crate) enum Opened<'a> {
    /// An open file.
    File(OpenBundle),
    /// Bytes in memory.
    Bytes {
        /// The whole bundle.
        bytes: &'a [u8],
        /// Its header.
        parsed: ParsedHeader,
    },
}

impl Opened<'_> {
    /// The card from the header.
    pub(crate) fn card(&self) -> &ModelCard {
        match self {
            Opened::File(open) => &open.parsed.header.card,
            Opened::Bytes { parsed, .. } => &parsed.header.card,
        }
    }
}

/// Payloads of this size and more are decoded while a second thread hashes
/// them (below it, a thread costs more than the hash).
const SPECULATE_FROM: u64 = 256 << 10;
/// Payloads of this size and more are hashed as they are read instead.
const SPECULATE_BELOW: u64 = 8 << 20;

fn speculate(stored_len: u64) -> bool {
    (SPECULATE_FROM..SPECULATE_BELOW).contains(&stored_len)
}

/// Inflates, decodes and checks the model while a second thread hashes the
/// stored payload. Nothing decoded is returned before the hash is checked:
/// a payload that does not match its hash is refused as such, whatever the
/// decoding found (decoding is bounded and total on any bytes, hostile ones
/// included, as it must be for bundles whose hash a hostile writer computed).
fn decode_beside_hash<M: Model>(stored: &[u8], parsed: ParsedHeader, limits: &Limits) -> Result<Loaded<M>> {
    let ParsedHeader {
        mut header, content_id, ..
    } = parsed;
    let d = header.payload.clone();
    let (hash, attempt) = std::thread::scope(|s| {
        let hasher = s.spawn(|| Sha256::digest(stored));
        let attempt = (|| -> Result<M> {
            let raw = inflate(&d, stored, limits)?;
            let model: M = decode_model(&mut header.card, &raw, limits.max_depth)?;
            drop(raw);
            validate_model(&model, &header.card)?;
            Ok(model)
        })();
        (hasher.join(), attempt)
    });
    let hash = hash.map_err(|_| Error::Invalid {
        section: "payload",
        reason: "the hashing thread failed".to_owned(),
    })?;
    check_payload_hash(&d, &hash)?;
    Ok(Loaded::from_parts(attempt?, header.card, content_id))
}

/// Refuses a kind that is neither `M`'s nor one of its earlier kinds.
fn check_kind<M: Model>(kind: &str) -> Result<()> {
    if kind == M::KIND || M::EARLIER_KINDS.contains(&kind) {
        return Ok(());
    }
    Err(Error::WrongModelKind {
        expected: M::KIND.to_owned(),
        found: kind.to_owned(),
    })
}

/// Decodes the payload as `M`, converting an earlier kind; the card then
/// names the kind the model now is (the bundle's own header keeps the kind
/// it was written with).
fn decode_model<M: Model>(card: &mut ModelCard, raw: &[u8], max_depth: usize) -> Result<M> {
    if card.kind == M::KIND {
        return decode_exact(raw, max_depth, "payload");
    }
    let model = M::from_earlier(&card.kind, crate::model::Earlier { bytes: raw, max_depth })?;
    tracing::debug!(from = %card.kind, to = M::KIND, "converted a model of an earlier kind");
    card.kind = M::KIND.to_owned();
    Ok(model)
}

/// Opens `path` for reading only if it is a regular file, without blocking
/// on a FIFO; returns the file and its size.
fn open_regular(path: &Path) -> Result<(File, u64)> {
    #[cfg(test)]
    counts::OPENS.with(|n| n.set(n.get() + 1));
    crate::files::open_regular(path).map_err(|e| match e.get_ref().and_then(|i| i.downcast_ref::<NotRegular>()) {
        Some(NotRegular(found)) => Error::NotAFile {
            path: path.to_owned(),
            found,
        },
        None => Error::io(path, e),
    })
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

pub(super) fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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

pub(super) type ParsedHeader = crate::format::ParsedHeader<ModelCard>;

/// Parses and verifies the header region, then checks the card.
fn parse_header(bytes: &[u8], limits: &Limits) -> Result<ParsedHeader> {
    #[cfg(test)]
    counts::HEADER_PARSES.with(|n| n.set(n.get() + 1));
    let parsed = crate::format::parse_header::<ModelCard>(bytes, limits)?;
    parsed.header.card.check()?;
    Ok(parsed)
}

/// What a load did, counted per thread in this crate's tests: how many
/// files it opened and how many headers it parsed.
#[cfg(test)]
pub(crate) mod counts {
    use std::cell::Cell;

    thread_local! {
        pub(crate) static OPENS: Cell<usize> = const { Cell::new(0) };
        pub(crate) static HEADER_PARSES: Cell<usize> = const { Cell::new(0) };
    }

    /// (opens, header parses) during `f`.
    pub(crate) fn during<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
        let (o, p) = (OPENS.with(Cell::get), HEADER_PARSES.with(Cell::get));
        let out = f();
        (out, OPENS.with(Cell::get) - o, HEADER_PARSES.with(Cell::get) - p)
    }
}
