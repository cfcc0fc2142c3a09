//! Following a registry cheaply: an alias with one conditional request per
//! check, and a model's events as a stream that resumes where it stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::alias::AliasRecord;
use super::{layout, storage_err, AliasTarget, Registry};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::name::{AliasName, IntoName, ModelName};
use crate::storage::{Fetched, ObjectVersion};

/// How late an event may be recorded with a time before one already
/// delivered (a publisher stamps its record just before committing it; two
/// machines' clocks differ): a [`Watch`] looks this far back.
pub const WATCH_LATENESS: Duration = Duration::from_secs(10 * 60);

/// Follows one alias: each [`check`](Self::check) costs one conditional
/// request (`If-None-Match` on object storage), which carries the alias
/// object only when it moved.
#[derive(Debug)]
pub struct AliasFollower {
    registry: Registry,
    model: ModelName,
    alias: AliasName,
    known: Option<(ObjectVersion, AliasTarget)>,
}

impl AliasFollower {
    /// Where the alias points now, and whether that changed since the last
    /// check (the first check is a change). `None` while the alias does
    /// not exist.
    ///
    /// # Errors
    ///
    /// Storage errors, [`Error::CorruptRecord`] for an unreadable alias.
    pub fn check(&mut self) -> Result<(Option<AliasTarget>, bool)> {
        let key = layout::alias(&self.model, &self.alias);
        let known = self.known.as_ref().map(|(v, _)| v);
        match self
            .registry
            .storage
            .get_if_changed_at_most(&key, known, layout::cap(&key))
            .map_err(storage_err(&key))?
        {
            Fetched::Unchanged => Ok((self.known.as_ref().map(|(_, t)| t.clone()), false)),
            Fetched::Absent => {
                let changed = self.known.take().is_some();
                Ok((None, changed))
            }
            Fetched::Changed(bytes, version) => {
                let record: AliasRecord =
                    serde_json::from_slice(&bytes).map_err(|source| Error::CorruptRecord { key, source })?;
                let target = record.target();
                let changed = self.known.as_ref().is_none_or(|(_, t)| t != &target);
                self.known = Some((version, target.clone()));
                Ok((Some(target), changed))
            }
        }
    }

    /// The model.
    pub fn model(&self) -> &ModelName {
        &self.model
    }

    /// The alias.
    pub fn alias(&self) -> &AliasName {
        &self.alias
    }
}

/// Where a [`Watch`] stands: every event at or before `horizon` and every
/// event in `seen` was delivered. Serializable, so a watcher that restarts
/// resumes exactly where it stopped (see `modelctl watch --cursor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCursor {
    /// Everything up to this time was delivered (`None`: nothing yet).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub horizon: Option<OffsetDateTime>,
    /// The ids of the events delivered after the horizon.
    #[serde(default)]
    pub seen: BTreeSet<String>,
}

/// A model's events as they happen: published, alias moved or rolled back,
/// pruned. Each event is delivered once, in the order of the history, also
/// across a restart from a saved [`cursor`](Self::cursor).
///
/// An idle poll costs two list requests and one conditional request per
/// alias; the history is read only when one of them saw a change.
#[derive(Debug)]
pub struct Watch {
    registry: Registry,
    model: ModelName,
    cursor: WatchCursor,
    signal: Option<Signal>,
    /// Events found by the last poll and not yet handed out.
    pending: std::collections::VecDeque<Event>,
    interval: Duration,
}

/// What an idle poll compares.
#[derive(Debug, PartialEq)]
struct Signal {
    journal: Vec<String>,
    events: Vec<String>,
    aliases: BTreeMap<String, ObjectVersion>,
}

impl Registry {
    /// Follows `model@alias` with one conditional request per check.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`].
    pub fn follow(&self, model: impl IntoName<ModelName>, alias: impl IntoName<AliasName>) -> Result<AliasFollower> {
        Ok(AliasFollower {
            registry: self.clone(),
            model: model.into_name()?,
            alias: alias.into_name()?,
            known: None,
        })
    }

    /// Watches a model from now on: only events after this call are
    /// delivered.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn watch(&self, model: impl IntoName<ModelName>) -> Result<Watch> {
        let model = model.into_name()?;
        let mut cursor = WatchCursor::default();
        for event in self.history(&model)? {
            cursor.deliver(&event);
        }
        self.watch_from(model, cursor)
    }

    /// Watches a model from a saved cursor (`WatchCursor::default()`: from
    /// the first event of its history).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`].
    pub fn watch_from(&self, model: impl IntoName<ModelName>, cursor: WatchCursor) -> Result<Watch> {
        Ok(Watch {
            registry: self.clone(),
            model: model.into_name()?,
            cursor,
            signal: None,
            pending: std::collections::VecDeque::new(),
            interval: Duration::from_secs(1),
        })
    }
}

/// A stable id of an event: the hash of its JSON.
pub fn event_id(event: &Event) -> String {
    let json = serde_json::to_vec(event).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..12])
}

impl WatchCursor {
    /// Whether `event` is still to be delivered.
    pub fn is_new(&self, event: &Event) -> bool {
        self.horizon.is_none_or(|h| event.at > h) && !self.seen.contains(&event_id(event))
    }

    /// Records `event` as delivered, and moves the horizon to
    /// [`WATCH_LATENESS`] before it (forgetting the ids behind it).
    pub fn deliver(&mut self, event: &Event) {
        self.seen.insert(event_id(event));
        let behind = event.at - WATCH_LATENESS;
        if self.horizon.is_none_or(|h| behind > h) {
            self.horizon = Some(behind);
        }
    }

    /// Forgets the ids of events at or before the horizon; `history` gives
    /// their times.
    fn trim(&mut self, history: &[Event]) {
        let Some(h) = self.horizon else { return };
        let live: BTreeSet<String> = history.iter().filter(|e| e.at > h).map(event_id).collect();
        self.seen.retain(|id| live.contains(id));
    }
}

impl Watch {
    /// How long [`next_event`](Self::next_event) sleeps between polls.
    /// Default: one second.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Where the watch stands; save it to resume after a restart.
    pub fn cursor(&self) -> &WatchCursor {
        &self.cursor
    }

    /// The model watched.
    pub fn model(&self) -> &ModelName {
        &self.model
    }

    /// The events that happened since the last poll, oldest first, each
    /// marked delivered in the cursor. Empty when nothing happened.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn poll(&mut self) -> Result<Vec<Event>> {
        let signal = self.signal()?;
        if self.signal.as_ref() == Some(&signal) && self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let history = self.registry.history(&self.model)?;
        let fresh: Vec<Event> = history.iter().filter(|e| self.cursor.is_new(e)).cloned().collect();
        for e in &fresh {
            self.cursor.deliver(e);
        }
        self.cursor.trim(&history);
        self.signal = Some(signal);
        let mut out: Vec<Event> = self.pending.drain(..).collect();
        out.extend(fresh);
        Ok(out)
    }

    /// The next event, waiting for it (polling every
    /// [`interval`](Self::interval)).
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn next_event(&mut self) -> Result<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            let found = self.poll()?;
            if found.is_empty() {
                std::thread::sleep(self.interval);
            }
            self.pending.extend(found);
        }
    }

    fn signal(&self) -> Result<Signal> {
        let storage = &self.registry.storage;
        let list = |key: String| storage.list_children(&key).map_err(storage_err(&key));
        let journal = list(layout::journal(&self.model))?;
        let events = list(layout::events(&self.model))?;
        let mut aliases = BTreeMap::new();
        for name in list(layout::aliases(&self.model))? {
            let key = format!("{}/{name}", layout::aliases(&self.model));
            let known = self.signal.as_ref().and_then(|s| s.aliases.get(&name));
            let version = match storage
                .get_if_changed_at_most(&key, known, layout::cap(&key))
                .map_err(storage_err(&key))?
            {
                Fetched::Unchanged => known.cloned(),
                Fetched::Absent => None,
                Fetched::Changed(_, v) => Some(v),
            };
            if let Some(v) = version {
                aliases.insert(name, v);
            }
        }
        Ok(Signal {
            journal,
            events,
            aliases,
        })
    }
}
