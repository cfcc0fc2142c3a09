//! Aliases: named pointers to versions, moved by compare-and-swap, each
//! move recorded as an event.

use std::collections::BTreeMap;

use model_persistence_core::ContentId;
use semver::Version;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{layout, storage_err, to_json, Registry};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::name::{AliasName, IntoName, ModelName};
use crate::storage::Written;

/// Where an alias points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AliasTarget {
    /// The version.
    pub version: Version,
    /// The bundle's content id.
    pub content_id: ContentId,
    /// When the alias was last moved.
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: OffsetDateTime,
}

/// What a move requires of the alias's current target.
#[derive(Debug, Clone, Copy)]
enum Precondition<'a> {
    /// Nothing: move it wherever it points.
    Any,
    /// It must point at this version (`None`: it must not exist).
    PointsAt(Option<&'a Version>),
}

/// How a move is recorded in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoveKind {
    /// An ordinary move (or creation).
    Set,
    /// A rollback to an earlier target.
    Rollback,
}

impl Registry {
    /// Where an alias points, if it exists.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn alias(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
    ) -> Result<Option<AliasTarget>> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        self.get_json::<AliasTarget>(&layout::alias(&model, &alias))
    }

    /// The aliases of a model and their targets.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn aliases(&self, model: impl IntoName<ModelName>) -> Result<BTreeMap<AliasName, AliasTarget>> {
        let model = model.into_name()?;
        let key = layout::aliases(&model);
        let names = self.storage.list_children(&key).map_err(storage_err(&key))?;
        let mut out = BTreeMap::new();
        for name in names.into_iter().filter_map(|n| AliasName::new(n).ok()) {
            if let Some(t) = self.alias(&model, &name)? {
                out.insert(name, t);
            }
        }
        Ok(out)
    }

    /// Points `alias` at `version`, whatever it pointed at. The version must
    /// exist and its bundle verify.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], [`Error::Bundle`], storage errors.
    pub fn set_alias(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
        version: &Version,
    ) -> Result<AliasTarget> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        self.move_alias(&model, &alias, version, Precondition::Any, MoveKind::Set)
    }

    /// Points `alias` at `version` only if it still points at `expected`
    /// (`None`: only if the alias does not exist): a compare-and-swap.
    ///
    /// # Errors
    ///
    /// [`Error::AliasConflict`] if it moved, and those of [`set_alias`](Self::set_alias).
    pub fn set_alias_if(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
        version: &Version,
        expected: Option<&Version>,
    ) -> Result<AliasTarget> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        self.move_alias(&model, &alias, version, Precondition::PointsAt(expected), MoveKind::Set)
    }

    fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        version: &Version,
        precondition: Precondition<'_>,
        kind: MoveKind,
    ) -> Result<AliasTarget> {
        let info = self.version(model, version)?;
        self.bundle(model, version)?;
        let key = layout::alias(model, alias);
        loop {
            let current = self.storage.get(&key).map_err(storage_err(&key))?;
            let (from, current_version) = match current {
                Some((bytes, v)) => {
                    let record: AliasTarget =
                        serde_json::from_slice(&bytes).map_err(|source| Error::CorruptRecord {
                            key: key.clone(),
                            source,
                        })?;
                    (Some(record.version), Some(v))
                }
                None => (None, None),
            };
            if let Precondition::PointsAt(expected) = precondition {
                if from.as_ref() != expected {
                    return Err(Error::AliasConflict {
                        model: model.to_string(),
                        alias: alias.to_string(),
                        expected: expected.cloned(),
                        found: from,
                    });
                }
            }
            let target = AliasTarget {
                version: version.clone(),
                content_id: info.content_id,
                set_at: OffsetDateTime::now_utc(),
            };
            let bytes = to_json(&key, &target)?;
            match self
                .storage
                .put_if_version(&key, &bytes, current_version.as_ref())
                .map_err(storage_err(&key))?
            {
                Written::Done => {
                    let event = match (kind, from) {
                        (MoveKind::Rollback, Some(from)) => EventKind::RolledBack {
                            alias: alias.clone(),
                            from,
                            to: version.clone(),
                        },
                        (_, from) => EventKind::AliasMoved {
                            alias: alias.clone(),
                            from,
                            to: version.clone(),
                        },
                    };
                    self.record_event(model, event)?;
                    return Ok(target);
                }
                Written::PreconditionFailed => continue,
            }
        }
    }

    /// Moves `alias` back to the target it had before its latest move that
    /// has not been rolled back already; repeated rollbacks walk further back.
    ///
    /// # Errors
    ///
    /// [`Error::NothingToRollBack`], [`Error::AliasConflict`] if the alias
    /// moved meanwhile, [`Error::VersionNotFound`] if the earlier target was pruned.
    pub fn rollback(&self, model: impl IntoName<ModelName>, alias: impl IntoName<AliasName>) -> Result<AliasTarget> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        let current = self.alias(&model, &alias)?.ok_or_else(|| Error::AliasNotFound {
            model: model.to_string(),
            alias: alias.to_string(),
        })?;
        let mut undo: Vec<Option<Version>> = Vec::new();
        for event in self.history(&model)? {
            match event.kind {
                EventKind::AliasMoved { alias: a, from, .. } if a == alias => undo.push(from),
                EventKind::RolledBack { alias: a, .. } if a == alias => {
                    undo.pop();
                }
                _ => {}
            }
        }
        let Some(Some(target)) = undo.pop() else {
            return Err(Error::NothingToRollBack {
                model: model.to_string(),
                alias: alias.to_string(),
            });
        };
        self.move_alias(
            &model,
            &alias,
            &target,
            Precondition::PointsAt(Some(&current.version)),
            MoveKind::Rollback,
        )
    }
}
