//! The registry's event history: one immutable object per event.

use semver::Version;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use model_persistence_core::ContentId;

use crate::name::AliasName;

/// Something that happened to a model in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// When it happened (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
    /// Who did it: the registry's actor ([`Registry::actor`](crate::Registry::actor);
    /// `user@host` by default). Absent for publications (the card says who
    /// trained the model) and in events written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A version was published.
    Published {
        /// The version.
        version: Version,
        /// Its bundle's content id.
        content_id: ContentId,
    },
    /// An alias was moved (or created).
    AliasMoved {
        /// The alias.
        alias: AliasName,
        /// The previous target, if any.
        from: Option<Version>,
        /// The new target.
        to: Version,
    },
    /// An alias was rolled back to an earlier target.
    RolledBack {
        /// The alias.
        alias: AliasName,
        /// The target it left.
        from: Version,
        /// The target it returned to.
        to: Version,
    },
    /// A version was removed by pruning.
    Pruned {
        /// The version.
        version: Version,
        /// Its bundle's content id (absent in events written before 0.2).
        #[serde(default)]
        content_id: Option<ContentId>,
        /// When it had been published (absent in events written before 0.2).
        #[serde(default, with = "time::serde::rfc3339::option")]
        published_at: Option<OffsetDateTime>,
    },
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventKind::Published { version, content_id } => write!(f, "published {version} ({})", content_id.short()),
            EventKind::AliasMoved { alias, from: None, to } => write!(f, "{alias}: (new) -> {to}"),
            EventKind::AliasMoved {
                alias,
                from: Some(from),
                to,
            } => write!(f, "{alias}: {from} -> {to}"),
            EventKind::RolledBack { alias, from, to } => write!(f, "{alias}: rolled back {from} -> {to}"),
            EventKind::Pruned { version, .. } => write!(f, "pruned {version}"),
        }
    }
}
