//! The history of a model and "which version did an alias point at, at
//! time T".
//!
//! The history is assembled from the objects that commit each operation, so
//! it can never disagree with the registry's state: a version's publication
//! from its record (`version.json`), an alias's moves from the log inside
//! the alias object (moved by the same compare-and-swap), a pruning from
//! the event the pruner writes before it deletes. Event objects written by
//! earlier releases for publications and moves are still read.

use std::collections::BTreeSet;

use semver::Version;
use time::OffsetDateTime;

use super::alias::{AliasMove, MoveKind};
use super::{layout, storage_err, Registry};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::name::{AliasName, IntoName, ModelName};

/// An event object that could not be read.
#[derive(Debug)]
pub(crate) struct BadEvent {
    pub(crate) key: String,
    pub(crate) error: Error,
}

impl Registry {
    /// Every event of a model, oldest first: publications, alias moves and
    /// rollbacks, prunings. An unreadable event object of an earlier
    /// release is skipped (and reported by [`verify`](Self::verify)); a
    /// damaged alias object is an error, since the log of its moves lives
    /// in it and a history without them would be silently wrong.
    ///
    /// # Errors
    ///
    /// [`Error::AliasHistoryUnreadable`], [`Error::InvalidName`], storage errors.
    pub fn history(&self, model: impl IntoName<ModelName>) -> Result<Vec<Event>> {
        let model = model.into_name()?;
        let records = self.versions(&model)?;
        let (stored, bad) = self.indexed_events(&model)?;
        for b in &bad {
            tracing::warn!(key = %b.key, error = %b.error, "skipping an unreadable event");
        }
        let mut events: Vec<Event> = records
            .iter()
            .map(|info| Event {
                at: info.published_at,
                kind: EventKind::Published {
                    version: info.version.clone(),
                    content_id: info.content_id,
                },
                by: None,
            })
            .collect();
        let live: BTreeSet<&Version> = records.iter().map(|r| &r.version).collect();
        let mut logged_aliases = BTreeSet::new();
        for (name, record) in self.alias_records(&model)? {
            if record.moves.is_empty() && record.archived.is_empty() {
                continue;
            }
            let moves = self
                .all_moves(&model, &name, &record)
                .map_err(|e| Error::AliasHistoryUnreadable {
                    model: model.to_string(),
                    alias: name.to_string(),
                    source: Box::new(e),
                })?;
            logged_aliases.insert(name.clone());
            events.extend(moves.iter().map(|m| move_event(&name, m)));
        }
        let mut published_from_pruning = BTreeSet::new();
        for event in stored {
            match &event.kind {
                EventKind::Published { version, .. } if live.contains(version) => {}
                EventKind::AliasMoved { alias, .. } | EventKind::RolledBack { alias, .. }
                    if logged_aliases.contains(alias) => {}
                EventKind::Pruned {
                    version,
                    content_id,
                    published_at,
                } => {
                    // A prune that did not finish left the version in place.
                    let unfinished = records
                        .iter()
                        .any(|r| &r.version == version && r.published_at <= event.at);
                    if unfinished {
                        continue;
                    }
                    if let (Some(id), Some(at)) = (content_id, published_at) {
                        if published_from_pruning.insert((version.clone(), *at)) {
                            events.push(Event {
                                at: *at,
                                kind: EventKind::Published {
                                    version: version.clone(),
                                    content_id: *id,
                                },
                                by: None,
                            });
                        }
                    }
                    events.push(event);
                }
                _ => events.push(event),
            }
        }
        events.sort_by_key(|e| e.at);
        Ok(events)
    }

    /// The version `alias` pointed at at time `at`, from its move log.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn alias_at(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
        at: OffsetDateTime,
    ) -> Result<Option<Version>> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        let moves = match self.alias_record(&model, &alias)? {
            Some(r) => self.all_moves(&model, &alias, &r)?,
            None => return Ok(None),
        };
        Ok(moves.into_iter().take_while(|m| m.at <= at).last().map(|m| m.to))
    }

    /// Every alias of a model with its stored record; a damaged one is
    /// [`Error::AliasHistoryUnreadable`].
    pub(super) fn alias_records(&self, model: &ModelName) -> Result<Vec<(AliasName, super::alias::AliasRecord)>> {
        let key = layout::aliases(model);
        let names = self.storage.list_children(&key).map_err(storage_err(&key))?;
        let mut out = Vec::new();
        for name in names.into_iter().filter_map(|n| AliasName::new(n).ok()) {
            match self.alias_record(model, &name) {
                Ok(Some(r)) => out.push((name, r)),
                Ok(None) => {}
                Err(e) if e.is_damage() => {
                    return Err(Error::AliasHistoryUnreadable {
                        model: model.to_string(),
                        alias: name.to_string(),
                        source: Box::new(e),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The moves of an alias from the event objects of earlier releases.
    pub(super) fn legacy_moves(&self, model: &ModelName, alias: &AliasName) -> Result<Vec<AliasMove>> {
        let (events, _) = self.event_objects(model)?;
        Ok(events
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::AliasMoved { alias: a, from, to } if &a == alias => Some(AliasMove {
                    at: e.at,
                    from,
                    to,
                    kind: MoveKind::Set,
                    by: e.by,
                }),
                EventKind::RolledBack { alias: a, from, to } if &a == alias => Some(AliasMove {
                    at: e.at,
                    from: Some(from),
                    to,
                    kind: MoveKind::Rollback,
                    by: e.by,
                }),
                _ => None,
            })
            .collect())
    }

    /// The event objects of a model, oldest first, and the unreadable ones.
    pub(crate) fn event_objects(&self, model: &ModelName) -> Result<(Vec<Event>, Vec<BadEvent>)> {
        let key = layout::events(model);
        let names = self.storage.list_children(&key).map_err(storage_err(&key))?;
        let (mut events, mut bad) = (Vec::with_capacity(names.len()), Vec::new());
        for name in names {
            let key = format!("{key}/{name}");
            match self.get_json::<Event>(&key) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(error) if error.is_damage() => bad.push(BadEvent { key, error }),
                Err(e) => return Err(e),
            }
        }
        events.sort_by_key(|e| e.at);
        Ok((events, bad))
    }
}

fn move_event(alias: &AliasName, m: &AliasMove) -> Event {
    let kind = match (m.kind, &m.from) {
        (MoveKind::Rollback, Some(from)) => EventKind::RolledBack {
            alias: alias.clone(),
            from: from.clone(),
            to: m.to.clone(),
        },
        _ => EventKind::AliasMoved {
            alias: alias.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
        },
    };
    Event {
        at: m.at,
        kind,
        by: m.by.clone(),
    }
}
