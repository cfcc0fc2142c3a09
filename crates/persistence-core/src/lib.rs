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
//! use model_persistence_core::{Model, ModelCard, Predictor, StructureError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Threshold { feature: usize, cut: f64 }
//!
//! impl Predictor for Threshold {
//!     type Output = usize;
//!     fn n_features(&self) -> Option<usize> { None }
//!     fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
//!         rows.rows().into_iter().map(|r| usize::from(r[self.feature] >= self.cut)).collect()
//!     }
//! }
//!
//! impl Model for Threshold {
//!     const KIND: &'static str = "example.threshold.v1";
//!     fn check_structure(&self, n: usize) -> Result<(), StructureError> {
//!         if self.feature < n { Ok(()) } else { Err(StructureError::new("feature out of range")) }
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
//!
//! # Why the design is as it is
//!
//! **Why one file, not a directory of parts?** A model moves between
//! machines, registries and object stores as one object: one file is one
//! atomic rename, one upload, one content id (the header's hash). A
//! directory can be half-copied; a file is whole or refused.
//!
//! **Why a hash of the header and one of the payload, not one of the
//! file?** The card must be readable without the payload (a registry lists
//! thousands of versions by their cards), and trusted when it is: the
//! header hash makes `read_card` as safe as a load at any payload size. The
//! payload hash is checked *before* inflating, so a hostile payload is never
//! decompressed.
//!
//! **Why MessagePack with named fields and a kind tag, not a Rust type
//! name?** `std::any::type_name` changes between compiler versions; the
//! kind (`linfa.decision_tree.v1`) is a promise about a layout, versioned
//! on its own, with earlier layouts converted on load
//! ([`Model::EARLIER_KINDS`]). Named fields let a newer writer add one
//! without breaking an older reader.
//!
//! **Why does a load replay a probe?** Hashes prove the bytes are the bytes
//! written, not that this build computes what the writer's did: a changed
//! dependency, a CPU whose kernels round differently, a model decoded
//! into another type. The card's probe rows are predicted again, and a
//! model that answers differently is refused.
//!
//! **Why is every bound stated?** A bundle is untrusted input. Every length
//! is checked against the file's real size before anything is allocated,
//! and a load's peak memory is bounded by what the file justifies
//! ([`LOAD_BYTES_PER_FILE_BYTE`]): a small file never becomes a large model.
//!
//! **Why two model traits?** What a model does ([`Predictor`]: predict,
//! scores, width, missing-value policy, class names) is what every caller
//! needs, of a typed model, of an [`AnyModel`] loaded by its card's kind, of
//! a server's model; how a model is stored ([`Model`]: kind, layout, checks,
//! earlier layouts) is what only a bundle needs. One trait for each means
//! one name for each method everywhere (a dynamic model answers `predict`
//! as a typed one does).
//!
//! **Why are the engines elsewhere?** This crate is what every crate that
//! moves, lists, verifies or signs a bundle compiles. The tree engine and
//! the ONNX runtime are `model-persistence-models`, which registers their
//! kinds in a [`Kinds`] table; [`Kinds::default`] holds the kinds defined
//! here (linfa's logistic regression and decision tree: an adapter of a
//! foreign type must live beside the trait it implements).
//!
//! **Why does [`Loaded::model`] hand out a [`CheckedModel`]?** The
//! [`Predictor`] trait is what a model type implements, and it trusts its rows
//! (a linfa model indexes them unchecked). The checked wrapper is the road
//! a caller takes, so no input reaches a model unchecked; the trait stays
//! simple to implement.
#![doc(test(attr(deny(warnings))))]

pub mod blob;
mod bundle;
mod card;
mod checked;
mod error;
pub mod files;
mod float;
pub mod format;
mod kinds;
#[cfg(feature = "linfa")]
pub mod linfa;
mod memory;
mod metric;
mod model;
mod msgpack_len;
pub mod signing;

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
pub use kinds::{any_model, AnyModel, DynModel, Kinds, Loadable, Predictions};
pub use metric::Direction;
pub use model::{Earlier, Model, Predictor, ProbeValue, StructureError};
pub use semver::Version;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
