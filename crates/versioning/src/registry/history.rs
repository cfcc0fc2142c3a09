//! The event history and "which version did an alias point at, at time T".

use semver::Version;
use time::OffsetDateTime;

use super::{layout, storage_err, Registry};
use crate::error::Result;
use crate::event::{Event, EventKind};
use crate::name::{AliasName, IntoName, ModelName};

impl Registry {
    /// Every event of a model, oldest first.
    ///
    /// # Errors
    ///
    /// Storage errors, [`Error::CorruptRecord`](crate::Error::CorruptRecord).
    pub fn history(&self, model: impl IntoName<ModelName>) -> Result<Vec<Event>> {
        let model = model.into_name()?;
        let key = layout::events(&model);
        let names = self.storage.list_children(&key).map_err(storage_err(&key))?;
        let mut events = Vec::with_capacity(names.len());
        for name in names {
            if let Some(event) = self.get_json::<Event>(&format!("{key}/{name}"))? {
                events.push(event);
            }
        }
        events.sort_by_key(|e| e.at);
        Ok(events)
    }

    /// The version `alias` pointed at at time `at`, from the history.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn alias_at(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
        at: OffsetDateTime,
    ) -> Result<Option<Version>> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        let mut target = None;
        for event in self.history(&model)?.into_iter().take_while(|e| e.at <= at) {
            match event.kind {
                EventKind::AliasMoved { alias: a, to, .. } | EventKind::RolledBack { alias: a, to, .. }
                    if a == alias =>
                {
                    target = Some(to)
                }
                _ => {}
            }
        }
        Ok(target)
    }
}
