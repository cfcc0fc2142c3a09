//! A hot-swapping model server for Rust services: a new version goes live
//! with zero downtime, and a broken one never goes live at all.
//!
//! The naive server keeps the model in an `RwLock<Arc<M>>`: every prediction
//! takes the read lock, and a reload that takes the write lock makes every
//! request wait while it holds it (and a reader that holds it long starves
//! the reload). Here predictions read the live model through `arc-swap`: no
//! lock, no wait. A watcher detects change by content id (not mtime), loads
//! and fully validates the new version off the request path (every check of
//! persistence-core: hashes, kind, feature count, structure, probe), then
//! swaps it in atomically. A version that fails validation is never served.
//!
//! ```
//! use model_persistence_testkit::LinearClassifier;
//! use model_persistence_core::{ModelCard, Version};
//! use model_persistence_serving::{ModelServer, ReloadPolicy, Source};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let path = dir.path().join("model.bundle");
//! let model = LinearClassifier { weights: vec![1.0, -1.0], bias: 0.0 };
//! let card = ModelCard::builder("demo", &model).version(Version::new(1, 0, 0)).build()?;
//! model_persistence_core::save(&path, &model, &card)?;
//!
//! let server = ModelServer::<LinearClassifier>::start(Source::bundle(&path), ReloadPolicy::Manual)?;
//! let p = server.predict(ndarray::array![[2.0, 1.0], [0.0, 3.0]].view())?;
//! assert_eq!(p.outputs.to_vec(), vec![1, 0]);
//! assert_eq!(p.version, Version::new(1, 0, 0));
//! assert_eq!(server.status().requests_served, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod ab;
mod drift;
mod error;
mod hot_swap;
mod source;

/// Moved to [`model_persistence_gate::live`] (the live gate) in 0.2; this
/// path stays for one release.
#[doc(hidden)]
pub use model_persistence_gate::live as outcomes;

pub use ab::{AbSplit, VariantCount};
pub use drift::{psi, DriftConfig, DriftReport, FeatureDrift};
pub use error::{Error, Result};
pub use hot_swap::{ModelServer, Prediction, ReloadPolicy, Served, ServerBuilder, ShadowStatus, Status, SwapEvent};
pub use source::Source;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
