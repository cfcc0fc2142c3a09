//! Aliases: named pointers to versions, moved by compare-and-swap, each
//! move recorded as an event.

use std::collections::BTreeMap;

use model_persistence_core::ContentId;
use semver::Version;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{layout, storage_err, to_json, unique_suffix, Registry};
use crate::error::{Error, Result};
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

/// The stored alias object: the target and the log of every move. The move
/// and its history are one object written by one compare-and-swap, so a
/// crash can never leave an alias moved without its history (or a history
/// entry for a move that did not happen).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AliasRecord {
    pub(super) version: Version,
    pub(super) content_id: ContentId,
    #[serde(with = "time::serde::rfc3339")]
    pub(super) set_at: OffsetDateTime,
    /// The latest moves of this alias, oldest first: at most [`MAX_MOVES`]
    /// (empty in registries written before the log existed: their moves
    /// are in the event objects).
    #[serde(default)]
    pub(super) moves: Vec<AliasMove>,
    /// The keys of the immutable objects holding the older moves, oldest
    /// first (see [`layout::alias_log`]): the log's segments moved out of
    /// the alias object so that a move reads and writes a bounded object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) archived: Vec<String>,
}

/// The most moves an alias object holds; past it, all but the latest
/// [`KEEP_MOVES`] go to a segment of their own in the same compare-and-swap
/// that makes the next move (the segment is written first, and is part of
/// the log only once the alias object names it).
const MAX_MOVES: usize = 1024;
/// The moves an alias object keeps when it hands the older ones to a segment.
const KEEP_MOVES: usize = 512;

/// One move of an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AliasMove {
    #[serde(with = "time::serde::rfc3339")]
    pub(super) at: OffsetDateTime,
    pub(super) from: Option<Version>,
    pub(super) to: Version,
    pub(super) kind: MoveKind,
    /// Who moved it (absent in logs written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) by: Option<String>,
}

impl Registry {
    /// Every move of an alias, oldest first: its archived segments, then
    /// the moves its object holds (or, for an alias written before the
    /// log, the event objects of earlier releases).
    pub(super) fn all_moves(
        &self,
        model: &ModelName,
        alias: &AliasName,
        record: &AliasRecord,
    ) -> Result<Vec<AliasMove>> {
        if record.moves.is_empty() && record.archived.is_empty() {
            return self.legacy_moves(model, alias);
        }
        let mut moves = Vec::new();
        for key in &record.archived {
            let segment: Vec<AliasMove> = self
                .get_json(key)?
                .ok_or_else(|| Error::MissingObject { key: key.clone() })?;
            moves.extend(segment);
        }
        moves.extend(record.moves.iter().cloned());
        Ok(moves)
    }
}

impl AliasRecord {
    pub(super) fn target(&self) -> AliasTarget {
        AliasTarget {
            version: self.version.clone(),
            content_id: self.content_id,
            set_at: self.set_at,
        }
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum MoveKind {
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
        Ok(self.alias_record(&model, &alias)?.map(|r| r.target()))
    }

    pub(super) fn alias_record(&self, model: &ModelName, alias: &AliasName) -> Result<Option<AliasRecord>> {
        self.get_json::<AliasRecord>(&layout::alias(model, alias))
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

    /// The transaction of an alias move (see `docs/registry.md`):
    ///
    /// 1. pin the target version (`pins/<unique>`), so no prune removes it;
    /// 2. refuse a version a live pruner is retiring (a dead pruner's mark
    ///    is removed); check the version is committed and its bundle verifies;
    /// 3. commit: compare-and-swap the alias object, which holds the target
    ///    and the log of every move, so the move and its history are one write;
    /// 4. remove the pin (a pin left by a crash is stale and ignored).
    fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        version: &Version,
        precondition: Precondition<'_>,
        kind: MoveKind,
    ) -> Result<AliasTarget> {
        let pin = layout::pin(model, version, &unique_suffix());
        let me = self.new_owner();
        self.put_new(&pin, &to_json(&pin, &me)?)?;
        let moved = self.move_pinned(model, alias, version, precondition, kind);
        let unpinned = self.delete(&pin);
        let target = moved?;
        unpinned?;
        Ok(target)
    }

    fn move_pinned(
        &self,
        model: &ModelName,
        alias: &AliasName,
        version: &Version,
        precondition: Precondition<'_>,
        kind: MoveKind,
    ) -> Result<AliasTarget> {
        let retiring = layout::retiring(model, version);
        if let Some((owner, _)) = self.marker(&retiring)? {
            if self.is_stale(owner.as_ref()) {
                self.delete(&retiring)?;
            } else {
                return Err(Error::VersionRetiring {
                    model: model.to_string(),
                    version: version.clone(),
                });
            }
        }
        let info = self.version(model, version)?;
        let bytes = self.verified_bundle(&info)?;
        self.check_signature(&info, &bytes)?;
        if info.checked != super::records::Checked::Full {
            // A version published by a caller that did not know its kind:
            // run the load checks now if this caller does.
            self.full_check(&bytes).map_err(|e| match e {
                Error::InvalidBundle { source } => Error::Bundle {
                    model: model.to_string(),
                    version: version.clone(),
                    source,
                },
                other => other,
            })?;
        }
        let key = layout::alias(model, alias);
        loop {
            let current = self.get_object(&key)?;
            let (record, current_version) = match current {
                Some((bytes, v)) => {
                    let record: AliasRecord =
                        serde_json::from_slice(&bytes).map_err(|source| Error::CorruptRecord {
                            key: key.clone(),
                            source,
                        })?;
                    (Some(record), Some(v))
                }
                None => (None, None),
            };
            let from = record.as_ref().map(|r| r.version.clone());
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
            let now = OffsetDateTime::now_utc();
            let (mut moves, mut archived) = match record {
                Some(r) if r.moves.is_empty() && r.archived.is_empty() => {
                    (self.legacy_moves(model, alias)?, Vec::new())
                }
                Some(r) => (r.moves, r.archived),
                None => (Vec::new(), Vec::new()),
            };
            moves.push(AliasMove {
                at: now,
                from,
                to: version.clone(),
                kind,
                by: Some(self.actor.to_string()),
            });
            let mut segment = None;
            if moves.len() > MAX_MOVES {
                let older: Vec<AliasMove> = moves.drain(..moves.len() - KEEP_MOVES).collect();
                let at = older.first().map_or(now, |m| m.at);
                let segment_key = layout::alias_log(model, alias, at, &unique_suffix());
                self.put_new(&segment_key, &to_json(&segment_key, &older)?)?;
                archived.push(segment_key.clone());
                segment = Some(segment_key);
            }
            let next = AliasRecord {
                version: version.clone(),
                content_id: info.content_id,
                set_at: now,
                moves,
                archived,
            };
            let bytes = to_json(&key, &next)?;
            match self
                .storage
                .put_if_version(&key, &bytes, current_version.as_ref())
                .map_err(storage_err(&key))?
            {
                Written::Done => {
                    tracing::info!(%model, %alias, %version, "alias moved");
                    return Ok(next.target());
                }
                Written::PreconditionFailed => {
                    // No alias object names the segment: it is no part of
                    // the log (one left by a crash is ignored the same way).
                    if let Some(orphan) = segment {
                        let _ = self.delete(&orphan);
                    }
                    continue;
                }
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
        self.roll_back(&model, &alias, None)
    }

    /// [`rollback`](Self::rollback) only if the alias still points at
    /// `expected`: the compare-and-swap [`set_alias_if`](Self::set_alias_if)
    /// gives a promotion. Operators who roll back at once, each having seen
    /// the alias at `expected`, roll it back once: the first wins and the
    /// others get [`Error::AliasConflict`] instead of walking the history
    /// further back.
    ///
    /// # Errors
    ///
    /// [`Error::AliasConflict`] if the alias points elsewhere, and those of
    /// [`rollback`](Self::rollback).
    pub fn rollback_if(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
        expected: &Version,
    ) -> Result<AliasTarget> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        self.roll_back(&model, &alias, Some(expected))
    }

    fn roll_back(&self, model: &ModelName, alias: &AliasName, expected: Option<&Version>) -> Result<AliasTarget> {
        let record = self.alias_record(model, alias)?.ok_or_else(|| Error::AliasNotFound {
            model: model.to_string(),
            alias: alias.to_string(),
        })?;
        if let Some(expected) = expected {
            if &record.version != expected {
                return Err(Error::AliasConflict {
                    model: model.to_string(),
                    alias: alias.to_string(),
                    expected: Some(expected.clone()),
                    found: Some(record.version.clone()),
                });
            }
        }
        let moves = self.all_moves(model, alias, &record)?;
        let mut undo: Vec<Option<Version>> = Vec::new();
        for m in moves {
            match m.kind {
                MoveKind::Set => undo.push(m.from),
                MoveKind::Rollback => {
                    undo.pop();
                }
            }
        }
        let Some(Some(target)) = undo.pop() else {
            return Err(Error::NothingToRollBack {
                model: model.to_string(),
                alias: alias.to_string(),
            });
        };
        self.move_alias(
            model,
            alias,
            &target,
            Precondition::PointsAt(Some(&record.version)),
            MoveKind::Rollback,
        )
    }
}
