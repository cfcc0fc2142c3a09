//! The records the registry stores about a version, below every file that
//! reads or writes them (publishing, reading, the index, maintenance).

use std::collections::BTreeMap;

use model_persistence_core::{ContentId, Version};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::name::ModelName;

/// What the registry records about a published version (read without
/// loading the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The model name.
    pub model: ModelName,
    /// The version.
    pub version: Version,
    /// The bundle's content id.
    pub content_id: ContentId,
    /// The model kind tag.
    pub kind: String,
    /// When it was published.
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// The card's metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The card's tags.
    pub tags: Vec<String>,
    /// The card's notes.
    pub notes: String,
    /// Size of the bundle in bytes.
    pub bundle_len: u64,
    /// What was checked when the version was published.
    #[serde(default)]
    pub checked: Checked,
}

/// What publishing checked of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Checked {
    /// Every hash only: the publisher did not know the model's kind.
    #[default]
    Hashes,
    /// Every load check: hashes, kind, feature count, structure, probe.
    Full,
}
