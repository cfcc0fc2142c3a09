//! One function per command, grouped by what they act on.

pub(crate) mod bundle;
pub(crate) mod fetch;
#[cfg(feature = "server")]
pub(crate) mod logs;
#[cfg(feature = "onnx")]
pub(crate) mod onnx;
pub(crate) mod predict;
pub(crate) mod registry;
#[cfg(feature = "server")]
pub(crate) mod serve;
pub(crate) mod signing;
