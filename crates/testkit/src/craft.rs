//! Bundles assembled by the specification (`docs/format.md`), independent
//! of the crate's own writer: for hostile, crafted and earlier-format files
//! whose every hash is valid.

use std::io::Write;

use model_persistence_core::ModelCard;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The payload descriptor, mirrored from the specification.
#[derive(Serialize)]
pub struct Descriptor {
    /// `none` or `deflate`.
    pub codec: &'static str,
    /// The compression level (0 for `none`).
    pub level: u8,
    /// `msgpack`.
    pub encoding: &'static str,
    /// The payload's length before compression.
    pub raw_len: u64,
    /// The payload's length as stored.
    pub stored_len: u64,
    /// The stored payload's SHA-256, in hex.
    pub sha256: String,
}

#[derive(Serialize)]
struct Header<'a> {
    card: &'a ModelCard,
    payload: Descriptor,
    flags: u64,
}

/// Assembles a bundle by the specification, with a valid header hash.
pub fn assemble(major: u16, card: &ModelCard, payload: Descriptor, stored: &[u8]) -> Vec<u8> {
    let header = rmp_serde::to_vec_named(&Header {
        card,
        payload,
        flags: 0,
    })
    .expect("a card always encodes");
    let mut out = vec![0x89, b'M', b'P', b'B', 0x0D, 0x0A, 0x1A, 0x0A];
    out.extend_from_slice(&major.to_le_bytes());
    out.extend_from_slice(&0_u16.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    let hash = Sha256::digest(&out);
    out.extend_from_slice(&hash);
    out.extend_from_slice(stored);
    out
}

/// A bundle whose payload is `raw` (MessagePack bytes), stored or deflated,
/// with every hash valid.
pub fn craft(card: &ModelCard, raw: &[u8], deflate: bool) -> Vec<u8> {
    let stored = if deflate {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(raw).expect("in-memory write");
        enc.finish().expect("in-memory write")
    } else {
        raw.to_vec()
    };
    let descriptor = Descriptor {
        codec: if deflate { "deflate" } else { "none" },
        level: if deflate { 6 } else { 0 },
        encoding: "msgpack",
        raw_len: raw.len() as u64,
        stored_len: stored.len() as u64,
        sha256: hex::encode(Sha256::digest(&stored)),
    };
    assemble(1, card, descriptor, &stored)
}
