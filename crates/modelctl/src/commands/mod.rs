//! One function per command, grouped by what they act on.

pub(crate) mod bundle;
pub(crate) mod predict;
pub(crate) mod registry;
