//! Save, verify, version, gate and hot-swap trained models.
//!
//! This facade re-exports the workspace's crates as modules:
//!
//! | module          | crate              | what it does                                              |
//! |-----------------|--------------------|-----------------------------------------------------------|
//! | [`persistence`] | `persistence-core` | the bundle format, the model card, load with verification |
//! | [`versioning`]  | `versioning`       | the registry: versions, aliases, history, storage         |
//! | [`gate`]        | `gate`             | thresholds, baseline comparison, significance tests       |
//! | [`serving`]     | `serving`          | the hot-swapping predictor                                |
//!
//! ```
//! use model_persistence::prelude::*;
//!
//! let card_of = |bytes: &[u8]| BundleReader::default().read_card_bytes(bytes);
//! assert!(matches!(card_of(b"not a bundle"), Err(persistence::Error::NotABundle { .. })));
//! ```
#![doc(test(attr(deny(warnings))))]

pub use gate;
pub use persistence_core as persistence;
pub use serving;
pub use versioning;

/// The types most programs need, in one import.
pub mod prelude {
    pub use crate::persistence;
    pub use persistence_core::{
        BundleReader, BundleWriter, ContentId, Limits, Loaded, Model, ModelCard, ProbeValue, StructureError, Version,
    };
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
