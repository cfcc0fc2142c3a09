//! The byte layout of a bundle, format 1.
//!
//! One file past 500 lines on purpose: every byte codec of the bundle
//! (preamble, header, payload encoding and compression) is here, so the
//! layout below is read and written in one place.
//!
//! | offset   | size         | content                                                        |
//! |----------|--------------|----------------------------------------------------------------|
//! | 0        | 8            | magic `89 4D 50 42 0D 0A 1A 0A`                                |
//! | 8        | 2            | format major, `u16` little-endian (this reader: 1)              |
//! | 10       | 2            | format minor, `u16` little-endian                              |
//! | 12       | 4            | header length `H`, `u32` little-endian, capped before reading  |
//! | 16       | `H`          | header: MessagePack map `{card, payload, flags}`               |
//! | 16+H     | 32           | SHA-256 of bytes `0..16+H` (the content id)                    |
//! | 48+H     | `stored_len` | payload: the model as MessagePack, deflated or stored; EOF     |
//!
//! The payload descriptor in the header is
//! `{codec: "none"|"deflate", level: 0..=9, encoding: "msgpack", raw_len,
//! stored_len, sha256}` where `sha256` (hex) covers the stored bytes and is
//! checked before inflating. `docs/format.md` is the full specification.
//!
//! This file is a little over 500 lines on purpose: every byte-level
//! encoding and decoding of a bundle (preamble, header, payload codec,
//! hashes, limits) lives here beside the layout table, as one place to
//! audit; file I/O and model validation are in `bundle`.

use std::io::Read as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, LimitKind, Result, Section};

/// The 8 bytes every bundle starts with.
pub const MAGIC: [u8; 8] = [0x89, b'M', b'P', b'B', 0x0D, 0x0A, 0x1A, 0x0A];
/// The format major version this crate writes and reads.
pub const FORMAT_MAJOR: u16 = 1;
/// The format minor version this crate writes.
pub const FORMAT_MINOR: u16 = 1;
/// Length of the fixed preamble (magic, versions, header length).
pub const PREAMBLE_LEN: usize = 16;
/// Length of a SHA-256.
pub const HASH_LEN: usize = 32;
/// The payload encoding of format 1: MessagePack with named fields.
pub const ENCODING_MSGPACK: &str = "msgpack";

/// How the payload bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Codec {
    /// Stored as is (compression level 0).
    None,
    /// Raw deflate (RFC 1951) at levels 1 to 9.
    Deflate,
}

/// The header's description of the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PayloadDescriptor {
    /// How the payload is stored.
    pub codec: Codec,
    /// The compression level it was written with (0 to 9).
    pub level: u8,
    /// How the model is encoded before compression.
    pub encoding: String,
    /// Length of the encoded model before compression.
    pub raw_len: u64,
    /// Length of the payload as stored in the file.
    pub stored_len: u64,
    /// SHA-256 of the stored payload, hex.
    pub sha256: String,
}

/// The header: generic over the card so that this module, which knows only
/// bytes, does not depend on what a card holds (the card module depends on
/// this one for the format version).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Header<C> {
    pub(crate) card: C,
    pub(crate) payload: PayloadDescriptor,
    #[serde(default)]
    pub(crate) flags: u64,
}

/// A bundle's content id: the SHA-256 of its preamble and header.
///
/// It changes whenever the model or the card changes, and the same model and
/// card always give the same id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId([u8; HASH_LEN]);

impl ContentId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0; HASH_LEN];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        Some(ContentId(bytes))
    }
}

impl std::fmt::Display for ContentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for ContentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl Serialize for ContentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ContentId::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// The limits a reader enforces on untrusted bundles.
///
/// The most a load of any built-in kind allocates at its peak, per byte of
/// the bundle's header and inflated payload: 64.
///
/// Every kind's decoded form is bounded by what its file can justify. The
/// densest encodings amplify most: a linfa tree node of ten bytes becomes a
/// boxed node of about ninety, a compact forest's one-byte leaf a walk
/// node (see `forest::WALK_BYTES_PER_STORED_BYTE`),
/// a one-byte card value a JSON value of 32. `onnx.v1` graphs add tract's
/// own working set and the tensors it folds from the graph's constants,
/// at most `onnx::FOLDED_BYTES_FLOOR` beyond this (bounded
/// before tract runs: see `onnx::FOLDED_BYTES_PER_GRAPH_BYTE`). The
/// inflated payload is itself at most [`Limits::max_inflated_len`]. Checked by
/// `tests/bundle_memory.rs` with crafted bundles of every kind, each in the
/// densest encoding its format allows; the measured ratios are in
/// `docs/format.md`.
pub const LOAD_BYTES_PER_FILE_BYTE: u64 = 64;

/// Every length read from a file is checked against these and against the
/// file's real size before anything is allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub(crate) max_header_len: u32,
    pub(crate) max_inflated_len: u64,
    pub(crate) max_file_len: u64,
    pub(crate) max_depth: usize,
}

/// Default cap on the header length: 16 MiB.
pub const DEFAULT_MAX_HEADER_LEN: u32 = 16 << 20;
/// Default cap on the inflated payload: 4 GiB.
pub const DEFAULT_MAX_INFLATED_LEN: u64 = 4 << 30;
/// Default cap on the file length: 4 GiB.
pub const DEFAULT_MAX_FILE_LEN: u64 = 4 << 30;
/// Default cap on MessagePack nesting depth: 128, well below what overflows
/// a 2 MiB thread stack in a debug build.
pub const DEFAULT_MAX_DEPTH: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            max_inflated_len: DEFAULT_MAX_INFLATED_LEN,
            max_file_len: DEFAULT_MAX_FILE_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl Limits {
    /// Largest header accepted. Default: [`DEFAULT_MAX_HEADER_LEN`] (16 MiB).
    pub fn max_header_len(mut self, bytes: u32) -> Self {
        self.max_header_len = bytes;
        self
    }

    /// Largest inflated payload accepted; a payload also never inflates past
    /// its declared length. Default: [`DEFAULT_MAX_INFLATED_LEN`] (4 GiB).
    pub fn max_inflated_len(mut self, bytes: u64) -> Self {
        self.max_inflated_len = bytes;
        self
    }

    /// Largest file accepted. Default: [`DEFAULT_MAX_FILE_LEN`] (4 GiB).
    pub fn max_file_len(mut self, bytes: u64) -> Self {
        self.max_file_len = bytes;
        self
    }

    /// Deepest MessagePack nesting accepted in the header and the payload.
    /// Default: [`DEFAULT_MAX_DEPTH`] (128).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    pub(crate) fn check_file_len(&self, len: u64) -> Result<()> {
        if len > self.max_file_len {
            return Err(Error::LimitExceeded {
                limit: LimitKind::FileLen,
                limit_value: self.max_file_len,
                found: len,
            });
        }
        Ok(())
    }
}

/// The parsed preamble.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preamble {
    pub(crate) major: u16,
    pub(crate) minor: u16,
    pub(crate) header_len: u32,
}

impl Preamble {
    /// Parses and checks the preamble from the first bytes of a file.
    pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<Self> {
        let magic_seen = bytes.get(..MAGIC.len().min(bytes.len())).unwrap_or_default();
        if magic_seen != &MAGIC[..magic_seen.len()] || bytes.is_empty() {
            return Err(Error::NotABundle {
                expected: MAGIC,
                found: magic_seen.to_vec(),
            });
        }
        let Some(preamble) = bytes.get(..PREAMBLE_LEN) else {
            return Err(truncated("preamble", 0, PREAMBLE_LEN as u64, bytes.len() as u64));
        };
        let u16_at = |i: usize| u16::from_le_bytes([preamble[i], preamble[i + 1]]);
        let (major, minor) = (u16_at(8), u16_at(10));
        if major != FORMAT_MAJOR {
            return Err(Error::UnsupportedVersion {
                supported_major: FORMAT_MAJOR,
                found_major: major,
                found_minor: minor,
            });
        }
        let header_len = u32::from_le_bytes([preamble[12], preamble[13], preamble[14], preamble[15]]);
        if header_len > limits.max_header_len {
            return Err(Error::LimitExceeded {
                limit: LimitKind::HeaderLen,
                limit_value: u64::from(limits.max_header_len),
                found: u64::from(header_len),
            });
        }
        Ok(Preamble {
            major,
            minor,
            header_len,
        })
    }

    /// Offset of the header hash, which is also the header's end.
    pub(crate) fn header_end(&self) -> usize {
        PREAMBLE_LEN + self.header_len as usize
    }

    /// Offset of the payload.
    pub(crate) fn payload_start(&self) -> usize {
        self.header_end() + HASH_LEN
    }
}

pub(crate) fn truncated(section: &'static str, offset: u64, needed: u64, available: u64) -> Error {
    Error::Truncated {
        section,
        offset,
        needed,
        available,
    }
}

/// A parsed and verified header: what `read_card` returns, and the start of
/// every load.
#[derive(Debug)]
pub(crate) struct ParsedHeader<C> {
    pub(crate) preamble: Preamble,
    pub(crate) header: Header<C>,
    pub(crate) content_id: ContentId,
}

/// Parses the header region `bytes[..payload_start]` (preamble, header, hash).
///
/// `bytes` must hold at least the preamble, header and header hash.
/// The card is decoded but not checked: that is the caller's, who knows
/// what a card is.
pub(crate) fn parse_header<C: serde::de::DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<ParsedHeader<C>> {
    let preamble = Preamble::parse(bytes, limits)?;
    let header_end = preamble.header_end();
    let available = bytes.len() as u64;
    let Some(header_bytes) = bytes.get(PREAMBLE_LEN..header_end) else {
        return Err(truncated(
            "header",
            PREAMBLE_LEN as u64,
            u64::from(preamble.header_len),
            available.saturating_sub(PREAMBLE_LEN as u64),
        ));
    };
    let Some(stored_hash) = bytes.get(header_end..header_end + HASH_LEN) else {
        return Err(truncated(
            "header hash",
            header_end as u64,
            HASH_LEN as u64,
            available.saturating_sub(header_end as u64),
        ));
    };
    let computed: [u8; HASH_LEN] = Sha256::digest(&bytes[..header_end]).into();
    if computed.as_slice() != stored_hash {
        return Err(Error::ChecksumMismatch {
            section: Section::Header,
            expected: hex::encode(stored_hash),
            found: hex::encode(computed),
        });
    }
    let header: Header<C> = decode_exact(header_bytes, limits.max_depth, "header")?;
    check_descriptor(&header.payload, limits)?;
    Ok(ParsedHeader {
        preamble,
        header,
        content_id: ContentId(computed),
    })
}

fn check_descriptor(d: &PayloadDescriptor, limits: &Limits) -> Result<()> {
    let invalid = |reason: String| Error::Invalid {
        section: "payload descriptor",
        reason,
    };
    if d.encoding != ENCODING_MSGPACK {
        return Err(invalid(format!(
            "unknown encoding `{}`, expected `{ENCODING_MSGPACK}`",
            d.encoding
        )));
    }
    if d.level > 9 {
        return Err(invalid(format!("compression level {} is not in 0..=9", d.level)));
    }
    if d.codec == Codec::None && d.stored_len != d.raw_len {
        return Err(invalid(format!(
            "an uncompressed payload of {} bytes declares {} raw bytes",
            d.stored_len, d.raw_len
        )));
    }
    if d.sha256.len() != 2 * HASH_LEN || hex::decode(&d.sha256).is_err() {
        return Err(invalid("the payload sha256 is not 64 hex digits".into()));
    }
    if d.raw_len > limits.max_inflated_len {
        return Err(Error::LimitExceeded {
            limit: LimitKind::InflatedLen,
            limit_value: limits.max_inflated_len,
            found: d.raw_len,
        });
    }
    Ok(())
}

/// Decodes MessagePack that must fill `bytes` exactly, with a depth limit.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
    section: &'static str,
) -> Result<T> {
    // Borrowed from the buffer: a blob's bytes reach its visitor without a
    // copy in between (a reader-based decoder copies each into a scratch
    // buffer grown step by step).
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(max_depth);
    let value = T::deserialize(&mut de).map_err(|source| match source {
        rmp_serde::decode::Error::DepthLimitExceeded => Error::LimitExceeded {
            limit: LimitKind::Depth,
            limit_value: max_depth as u64,
            found: max_depth as u64 + 1,
        },
        source => Error::Decode { section, source },
    })?;
    let used = crate::msgpack_len::value_len(bytes).ok_or_else(|| Error::Invalid {
        section,
        reason: "the encoded value is malformed".to_owned(),
    })?;
    let rest = bytes.len() - used;
    if rest != 0 {
        return Err(Error::Invalid {
            section,
            reason: format!("{rest} bytes follow the encoded value"),
        });
    }
    Ok(value)
}

/// The bytes of a bundle before its payload (preamble, header, header
/// hash), and the content id. A file is these bytes, then the stored
/// payload: a save writes the two one after the other, never copying the
/// payload into one buffer with the head.
pub(crate) fn assemble_head<C: Serialize>(header: &Header<C>) -> Result<(Vec<u8>, ContentId)> {
    let header_bytes = rmp_serde::to_vec_named(header).map_err(|source| Error::Encode {
        section: "header",
        source,
    })?;
    let header_len = u32::try_from(header_bytes.len()).map_err(|_| Error::LimitExceeded {
        limit: LimitKind::HeaderLen,
        limit_value: u64::from(u32::MAX),
        found: header_bytes.len() as u64,
    })?;
    let mut out = Vec::with_capacity(PREAMBLE_LEN + header_bytes.len() + HASH_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
    out.extend_from_slice(&FORMAT_MINOR.to_le_bytes());
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header_bytes);
    let hash: [u8; HASH_LEN] = Sha256::digest(&out).into();
    out.extend_from_slice(&hash);
    Ok((out, ContentId(hash)))
}

// Encoding and decoding of the payload: the same bytes the table above
// describes, read and written here and nowhere else.

/// Encodes `value` into a buffer of exactly its size: a first pass counts
/// the bytes (cheap: a blob is one write), so a large payload is never
/// copied by a growing buffer, and lands in huge pages.
pub(crate) fn encode_named<T: Serialize + ?Sized>(value: &T, section: &'static str) -> Result<Vec<u8>> {
    let len = encoded_len(value, section)?;
    let mut out = crate::memory::with_capacity(usize::try_from(len).unwrap_or(usize::MAX));
    rmp_serde::encode::write_named(&mut out, value).map_err(|source| Error::Encode { section, source })?;
    Ok(out)
}

/// The length of `value` encoded, counted without writing it.
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T, section: &'static str) -> Result<u64> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    rmp_serde::encode::write_named(&mut count, value).map_err(|source| Error::Encode { section, source })?;
    Ok(count.0 as u64)
}

/// Compresses the encoded model at `level` (0: stored as is). An
/// incompressible payload is stored as is, so a higher level never gives a
/// larger file. The stored bytes are `raw` itself when not deflated (moved,
/// not copied).
pub(crate) fn compress(raw: Vec<u8>, level: u8) -> Result<(Codec, Vec<u8>)> {
    use std::io::Write as _;
    if level == 0 {
        return Ok((Codec::None, raw));
    }
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(raw.len() / 2),
        flate2::Compression::new(u32::from(level)),
    );
    let deflated = enc
        .write_all(&raw)
        .and_then(|()| enc.finish())
        .map_err(|source| Error::Inflate { source })?;
    Ok(if deflated.len() < raw.len() {
        (Codec::Deflate, deflated)
    } else {
        (Codec::None, raw)
    })
}

/// The descriptor of a stored payload whose SHA-256 is `sha256`.
pub(crate) fn descriptor(codec: Codec, level: u8, raw_len: u64, stored_len: u64, sha256: &[u8]) -> PayloadDescriptor {
    PayloadDescriptor {
        codec,
        level,
        encoding: ENCODING_MSGPACK.to_owned(),
        raw_len,
        stored_len,
        sha256: hex::encode(sha256),
    }
}

/// [`compress`], then the descriptor of what is stored.
pub(crate) fn encode_payload(raw: Vec<u8>, level: u8) -> Result<(PayloadDescriptor, Vec<u8>)> {
    let raw_len = raw.len() as u64;
    let (codec, stored) = compress(raw, level)?;
    let d = descriptor(codec, level, raw_len, stored.len() as u64, &Sha256::digest(&stored));
    Ok((d, stored))
}

pub(crate) fn check_payload_len(d: &PayloadDescriptor, payload_start: u64, file_len: u64) -> Result<()> {
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

pub(crate) fn payload_slice<'b, C>(bytes: &'b [u8], parsed: &ParsedHeader<C>) -> Result<&'b [u8]> {
    let start = parsed.preamble.payload_start();
    check_payload_len(&parsed.header.payload, start as u64, bytes.len() as u64)?;
    Ok(&bytes[start..])
}

pub(crate) fn check_payload_hash(d: &PayloadDescriptor, computed: &[u8]) -> Result<()> {
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

pub(crate) fn inflate<'b>(
    d: &PayloadDescriptor,
    stored: &'b [u8],
    limits: &Limits,
) -> Result<std::borrow::Cow<'b, [u8]>> {
    match d.codec {
        Codec::None => Ok(std::borrow::Cow::Borrowed(stored)),
        Codec::Deflate => inflate_from(d, stored, stored.len() as u64, limits).map(std::borrow::Cow::Owned),
    }
}

/// Inflates a deflated payload of `stored_len` bytes read from `reader`,
/// never past the declared (and limited) raw length.
pub(crate) fn inflate_from(
    d: &PayloadDescriptor,
    reader: impl std::io::Read,
    stored_len: u64,
    limits: &Limits,
) -> Result<Vec<u8>> {
    let cap = d.raw_len.min(stored_len.saturating_mul(MAX_DEFLATE_RATIO));
    let mut out = Vec::with_capacity(cap as usize);
    let decoder = flate2::read::DeflateDecoder::new(reader);
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
    Ok(out)
}
