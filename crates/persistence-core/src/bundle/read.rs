//! Reading bundles: verified loads, the card from the header alone, and
//! checksums without decoding.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::validate_model;
use crate::card::ModelCard;
use crate::error::{Error, Result};
use crate::format::{
    check_payload_hash, check_payload_len, decode_exact, inflate, payload_slice, truncated, ContentId, Limits,
    PayloadDescriptor, Preamble, HASH_LEN, PREAMBLE_LEN,
};
use crate::model::Model;

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

impl<M: Model> Loaded<M> {
    /// Predicts one output per row, after checking that the rows have as
    /// many columns as the card's features: the check on use that a bare
    /// [`Model::predict`] cannot make (a linfa model given the wrong width
    /// panics inside ndarray).
    ///
    /// An inherent method, so it is the one called even with
    /// `linfa::prelude::*` (and its `Predict` trait) in scope.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] for rows of the wrong width.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "testing")] {
    /// use model_persistence_core::synthetic::LinearClassifier;
    /// use model_persistence_core::{from_bytes, to_bytes, Error, ModelCard};
    ///
    /// let model = LinearClassifier { weights: vec![1.0, -1.0], bias: 0.0 };
    /// let card = ModelCard::builder("doc", &model).n_features(2).build()?;
    /// let loaded = from_bytes::<LinearClassifier>(&to_bytes(&model, &card)?)?;
    /// assert_eq!(loaded.predict(ndarray::array![[2.0, 1.0]].view())?.to_vec(), vec![1]);
    /// assert!(matches!(
    ///     loaded.predict(ndarray::array![[2.0, 1.0, 0.0]].view()),
    ///     Err(Error::InputWidth { expected: 2, found: 3 })
    /// ));
    /// # }
    /// # Ok::<(), model_persistence_core::Error>(())
    /// ```
    pub fn predict(&self, rows: ndarray::ArrayView2<'_, f64>) -> Result<ndarray::Array1<M::Output>> {
        if rows.ncols() != self.card.n_features {
            return Err(Error::InputWidth {
                expected: self.card.n_features,
                found: rows.ncols(),
            });
        }
        Ok(self.model.predict(rows))
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
