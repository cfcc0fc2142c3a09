//! Helpers shared by the integration tests: small models and a bundle
//! assembler written from `docs/format.md`, independent of the crate's own.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::Write;

use model_persistence_core::{Model, ModelCard, StructureError};
use ndarray::{array, Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `w·x + b` for each row.
pub fn affine(rows: ArrayView2<'_, f64>, weights: &[f64], bias: f64) -> Array1<f64> {
    rows.rows()
        .into_iter()
        .map(|r| r.iter().zip(weights).map(|(x, w)| x * w).sum::<f64>() + bias)
        .collect()
}

/// `y = w·x + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Model for Linear {
    const KIND: &'static str = "test.linear.v1";
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }
    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        if self.weights.len() != n_features {
            return Err(StructureError::new("weight count differs from feature count"));
        }
        Ok(())
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        affine(rows, &self.weights, self.bias)
    }
}

/// A model of another kind with the same serialised shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherLinear {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Model for OtherLinear {
    const KIND: &'static str = "test.other.v1";
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }
    fn check_structure(&self, _: usize) -> Result<(), StructureError> {
        Ok(())
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        Array1::zeros(rows.nrows())
    }
}

pub fn linear() -> Linear {
    Linear {
        weights: vec![0.5, -1.25, 2.0],
        bias: 0.125,
    }
}

pub fn training() -> Array2<f64> {
    array![
        [1.0, 2.0, 3.0],
        [0.5, 0.25, -1.0],
        [-2.0, 4.0, 0.0],
        [3.0, 3.0, 3.0],
        [0.0, 0.0, 1.0],
        [7.0, -1.0, 2.0]
    ]
}

pub fn fixed_time() -> time::OffsetDateTime {
    time::macros::datetime!(2026-01-02 03:04:05 UTC)
}

pub fn linear_card(model: &Linear) -> ModelCard {
    ModelCard::builder("linear", model)
        .version(semver::Version::new(1, 2, 3))
        .feature_names(["a", "b", "c"])
        .metric("mse", 0.25)
        .training_data(training().view(), "tests/common")
        .created_at(fixed_time())
        .notes("a small model for tests")
        .tag("test")
        .build()
        .expect("valid card")
}

/// The payload descriptor, mirrored from the specification.
#[derive(Serialize)]
pub struct Descriptor {
    pub codec: &'static str,
    pub level: u8,
    pub encoding: &'static str,
    pub raw_len: u64,
    pub stored_len: u64,
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
    .expect("encodable header");
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

/// `y = w·x + b` with its numbers as blobs (format 1.1): kind
/// `test.dense.v2`, reading `test.linear.v1` bundles as its earlier kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    #[serde(with = "model_persistence_core::blob")]
    pub weights: Vec<f64>,
    pub bias: f64,
    #[serde(with = "model_persistence_core::blob")]
    pub ids: Vec<u32>,
    #[serde(with = "model_persistence_core::blob::array")]
    pub scale: Array2<f32>,
}

impl Dense {
    pub fn from_linear(l: &Linear) -> Dense {
        Dense {
            weights: l.weights.clone(),
            bias: l.bias,
            ids: (0..l.weights.len() as u32).collect(),
            scale: Array2::from_elem((2, l.weights.len()), 0.5),
        }
    }
}

impl Model for Dense {
    const KIND: &'static str = "test.dense.v2";
    const EARLIER_KINDS: &'static [&'static str] = &["test.linear.v1"];
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(self.weights.len())
    }
    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        if self.weights.len() != n_features || self.ids.len() != n_features || self.scale.ncols() != n_features {
            return Err(StructureError::new("column counts differ from the feature count"));
        }
        Ok(())
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        affine(rows, &self.weights, self.bias)
    }
    fn from_earlier(_: &str, payload: model_persistence_core::Earlier<'_>) -> model_persistence_core::Result<Self> {
        Ok(Dense::from_linear(&payload.decode::<Linear>()?))
    }
}
