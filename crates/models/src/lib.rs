//! The model engines of model-persistence: what runs a model, apart from
//! the format that stores it.
//!
//! - [`forest`] (feature `linfa` or `onnx`): the flat forest, one tree
//!   engine for every tree model (linfa's random forest; scikit-learn,
//!   XGBoost and LightGBM ensembles from ONNX), with onnxruntime's semantics;
//! - [`onnx`] (feature `onnx`): ONNX graphs run by tract (pure Rust), tree
//!   ensembles lowered onto the flat forest;
//! - [`linfa`] (feature `linfa`): linfa's random forest, flattened.
//!
//! Each module registers its own kinds in a [`Kinds`] table
//! (`register(&mut Kinds)`), as tract's operator modules do; [`kinds`] is
//! the table of every built-in kind this build has, and what a dynamic
//! load (`modelctl serve`, a registry's `load_any`) uses.
//!
//! ```
//! let kinds = model_persistence_models::kinds();
//! # #[cfg(feature = "onnx")]
//! assert!(kinds.knows("onnx.tree_ensemble.v3"));
//! # #[cfg(feature = "linfa")]
//! assert!(kinds.knows("linfa.random_forest.v3"));
//! ```
//!
//! The only `unsafe` is the forest walk's three unchecked reads
//! (`forest/eval.rs`), each with its proof beside it: every index was
//! bounded when the forest was built, and the walk is the hot loop.
//!
//! # Why the engines are a crate of their own
//!
//! The format crate (`model-persistence-core`) is what every crate that
//! moves, lists, verifies or signs a bundle compiles; a registry client
//! never walks a tree. The engines bring rayon, tract and linfa, and code
//! that runs on untrusted rows at full speed. Apart, a crate that only
//! moves bundles builds none of it, and adding a model kind touches one
//! module here, its fixture and the CHANGELOG, never the format.
#![doc(test(attr(deny(warnings))))]

#[cfg(any(feature = "linfa", feature = "onnx"))]
pub mod forest;
#[cfg(feature = "linfa")]
pub mod linfa;
#[cfg(feature = "onnx")]
pub mod onnx;

use model_persistence_core::Kinds;

/// Registers every built-in kind this build has: the core's
/// ([`Kinds::default`]) and the engines' (each module's `register`).
#[allow(unused_variables)] // Without features the engines register nothing.
pub fn register(kinds: &mut Kinds) {
    #[cfg(feature = "linfa")]
    linfa::register(kinds);
    #[cfg(feature = "onnx")]
    onnx::register(kinds);
}

/// The table of every built-in kind this build has.
pub fn kinds() -> Kinds {
    let mut kinds = Kinds::default();
    register(&mut kinds);
    kinds
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
