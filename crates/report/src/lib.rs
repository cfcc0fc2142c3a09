//! A model as one page people read at a glance: the card laid out like a
//! passport, every version with its metrics (a table and a chart), the
//! gate's decision stored with each version, the alias timeline with its
//! rollbacks, the training distribution of every feature and, given live
//! statistics from a server, the drift (PSI) with the two histograms side
//! by side.
//!
//! The page is one self-contained HTML file: inline CSS, charts as inline
//! SVG drawn by plotters, no script, no font or image fetched. Every text
//! that comes from a card, a registry or a request (model names, tags,
//! notes, feature names, reasons) is escaped, so markup in it shows as text.
//!
//! ```
//! use model_persistence_testkit::LinearClassifier;
//! use model_persistence_core::ModelCard;
//! use model_persistence_versioning::{Bump, ModelRef, Registry, VersionSpec};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let registry = Registry::create(dir.path())?;
//! let model = LinearClassifier { weights: vec![1.0, -1.0], bias: 0.0 };
//! let card = ModelCard::builder("fraud", &model).n_features(2).metric("f1", 0.8).build()?;
//! registry.publish_model(&model, &card, VersionSpec::Bump(Bump::Patch))?;
//!
//! let report = model_persistence_report::gather(&registry, &"fraud".parse::<ModelRef>()?)?;
//! let html = model_persistence_report::render(&report);
//! assert!(html.starts_with("<!DOCTYPE html>") && html.contains("0.8000"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One concept per file: `gather` (what the page shows, read from the
//! registry), `html` (the page and its escaping), `charts` (the SVG charts).
#![forbid(unsafe_code)]

mod charts;
mod gather;
mod html;

pub use gather::{gather, GateRecord, ModelPage, VersionEntry};

/// The old name of [`ModelPage`] (beside the gate's own `Report`, one name
/// for two things); kept for one release.
#[deprecated(since = "0.2.0", note = "renamed ModelPage")]
pub type Report = ModelPage;
pub use html::{escape, render};

/// Why a report could not be gathered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry refused a read (boxed: the registry's error is large).
    #[error(transparent)]
    Registry(Box<model_persistence_versioning::Error>),
}

impl From<model_persistence_versioning::Error> for Error {
    fn from(e: model_persistence_versioning::Error) -> Self {
        Error::Registry(Box::new(e))
    }
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
