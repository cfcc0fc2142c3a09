//! The model bundle: one verified, self-describing file holding a trained
//! model and its card.
//!
//! Pickle and joblib run code on load and check nothing; a bundle runs no
//! code, checks every byte (SHA-256 over the header and over the payload)
//! and refuses a file that is damaged, hostile or of the wrong model type
//! before the model reaches you. Its card says what the model is, how well
//! it did and what it was trained on, and can be read without touching the
//! model.
//!
//! ```
//! use ndarray::{array, Array1, ArrayView2};
//! use model_persistence_core::{Model, ModelCard, StructureError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Threshold { feature: usize, cut: f64 }
//!
//! impl Model for Threshold {
//!     const KIND: &'static str = "example.threshold.v1";
//!     type Output = usize;
//!     fn n_features(&self) -> Option<usize> { None }
//!     fn check_structure(&self, n: usize) -> Result<(), StructureError> {
//!         if self.feature < n { Ok(()) } else { Err(StructureError::new("feature out of range")) }
//!     }
//!     fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
//!         rows.rows().into_iter().map(|r| usize::from(r[self.feature] >= self.cut)).collect()
//!     }
//! }
//!
//! let model = Threshold { feature: 1, cut: 0.5 };
//! let train = array![[0.0, 0.1], [1.0, 0.9], [0.5, 0.7]];
//! let card = ModelCard::builder("threshold", &model).version(semver::Version::new(1, 0, 0))
//!     .training_data(train.view(), "doc example")
//!     .metric("accuracy", 1.0)
//!     .build()?;
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let path = dir.path().join("threshold.bundle");
//! model_persistence_core::save(&path, &model, &card)?;
//!
//! assert_eq!(model_persistence_core::read_card(&path)?.metrics["accuracy"], 1.0);
//! model_persistence_core::verify(&path)?;
//! let loaded = model_persistence_core::load::<Threshold>(&path)?;
//! assert_eq!(loaded.model().predict(train.view())?.to_vec(), vec![0, 1, 1]);
//! # Ok::<(), model_persistence_core::Error>(())
//! ```
#![doc(test(attr(deny(warnings))))]

pub mod blob;
mod bundle;
mod card;
mod checked;
mod error;
pub mod files;
mod float;
#[cfg(any(feature = "linfa", feature = "onnx"))]
pub mod forest;
pub mod format;
mod kinds;
#[cfg(feature = "linfa")]
pub mod linfa;
mod memory;
mod metric;
mod model;
mod msgpack_len;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod signing;
#[cfg(feature = "testing")]
pub mod synthetic;

pub use bundle::{
    card_json_path, from_bytes, load, read_card, save, to_bytes, verify, write_atomic, BundleReader, BundleWriter,
    Loaded, Saved, Summary, DEFAULT_LEVEL,
};
pub use card::{
    hash_records, CardBuilder, FeatureStats, ModelCard, Probe, TrainingData, CORE_DEPENDENCY, DEFAULT_PROBE_ROWS,
    DRIFT_BINS, FORMAT_DEPENDENCY,
};
pub use checked::CheckedModel;
pub use error::{check_rows, error_chain, panic_message, Error, InputError, LimitKind, Result, Section};
pub use format::{Codec, ContentId, Limits, PayloadDescriptor, LOAD_BYTES_PER_FILE_BYTE};
pub use kinds::{AnyModel, DynModel, Kinds, Loadable, Predictions};
pub use metric::Direction;
pub use model::{Earlier, Model, ProbeValue, StructureError};
pub use semver::Version;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
