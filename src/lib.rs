//! Save, verify, version, gate and hot-swap trained models.
//!
//! This facade re-exports the workspace's crates as modules:
//!
//! | module          | crate                          | what it does                                              |
//! |-----------------|--------------------------------|-----------------------------------------------------------|
//! | [`persistence`] | `model-persistence-core`       | the bundle format, the model card, load with verification |
//! | [`models`]      | `model-persistence-models`     | the engines: flat forest, ONNX (tract), linfa's forest    |
//! | [`versioning`]  | `model-persistence-versioning` | the registry: versions, aliases, history, storage         |
//! | [`gate`]        | `model-persistence-gate`       | thresholds, baseline comparison, significance tests       |
//! | [`serving`]     | `model-persistence-serving`    | the hot-swapping predictor                                |
//!
//! ```
//! use model_persistence::prelude::*;
//!
//! let card_of = |bytes: &[u8]| BundleReader::default().read_card_bytes(bytes);
//! assert!(matches!(card_of(b"not a bundle"), Err(persistence::Error::NotABundle { .. })));
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub use model_persistence_models as models;

/// The bundle: format, card, checks, the [`Model`](persistence::Model)
/// trait and the [`Kinds`](persistence::Kinds) table
/// (`model-persistence-core`).
///
/// The engines moved to [`models`] in 0.2; their old paths here
/// (`persistence::onnx`, `persistence::forest`,
/// `persistence::linfa::RandomForest`) and the test kit
/// (`persistence::synthetic`, feature `testing`) stay as deprecated
/// re-exports for one release.
pub mod persistence {
    pub use model_persistence_core::*;
    #[cfg(any(feature = "linfa", feature = "onnx"))]
    #[doc(hidden)]
    pub use model_persistence_models::forest;
    #[cfg(feature = "onnx")]
    #[doc(hidden)]
    pub use model_persistence_models::onnx;
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub use model_persistence_testkit as synthetic;

    /// linfa's models: the core's adapters, and (deprecated here, moved to
    /// [`models::linfa`](crate::models::linfa)) the random forest.
    #[cfg(feature = "linfa")]
    pub mod linfa {
        pub use model_persistence_core::linfa::*;
        #[doc(hidden)]
        pub use model_persistence_models::linfa::RandomForest;
    }
}
pub use model_persistence_gate as gate;
pub use model_persistence_report as report;
pub use model_persistence_serving as serving;
pub use model_persistence_versioning as versioning;

/// The types most programs need for the whole story, in one import: save
/// and load ([`ModelCard`](prelude::ModelCard), [`Model`](prelude::Model)),
/// publish and promote ([`Registry`](prelude::Registry)), gate
/// ([`Gate`](prelude::Gate), [`Rule`](prelude::Rule)) and serve
/// ([`ModelServer`](prelude::ModelServer)).
pub mod prelude {
    pub use crate::{models, persistence};
    pub use model_persistence_core::{
        BundleReader, BundleWriter, ContentId, Direction, Limits, Loaded, Model, ModelCard, Predictor, ProbeValue,
        StructureError, Version,
    };
    pub use model_persistence_gate::{BaselineRule, Gate, Margin, Metrics, Rule};
    pub use model_persistence_serving::{ModelServer, ReloadPolicy, Source};
    pub use model_persistence_versioning::{Bump, ModelName, ModelRef, Registry, VersionSpec};
}

/// The guides of `docs/`, as documentation: their examples are compiled
/// and run as doctests, so the guides cannot drift from the code.
pub mod guide {
    #[doc = include_str!("../docs/format.md")]
    pub mod format {}
    #[doc = include_str!("../docs/registry.md")]
    pub mod registry {}
    #[doc = include_str!("../docs/gate.md")]
    pub mod gate {}
    #[doc = include_str!("../docs/serving.md")]
    pub mod serving {}
    #[doc = include_str!("../docs/server.md")]
    pub mod server {}
    #[doc = include_str!("../docs/kubernetes.md")]
    pub mod kubernetes {}
    #[doc = include_str!("../docs/security.md")]
    pub mod security {}
    #[doc = include_str!("../docs/performance.md")]
    pub mod performance {}
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The crates.io page's examples, compiled and run as doctests.
#[doc = include_str!("../docs/crate-readme.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;
