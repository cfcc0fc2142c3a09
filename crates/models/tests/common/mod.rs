//! Helpers shared by the integration tests, from the test kit: small models
//! and a bundle assembler written from `docs/format.md`, independent of the
//! crate's own.
#![allow(unused_imports)]

pub(crate) use model_persistence_testkit::craft::*;
pub(crate) use model_persistence_testkit::golden::*;
