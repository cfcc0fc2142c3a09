//! The index: fast listing at any size, with the primary objects as the truth.
//!
//! Listing a model by reading every `version.json` costs one request per
//! version (on object storage, seconds at ten thousand). The index keeps a
//! compacted **snapshot** of the version records (and a cache of the
//! immutable event objects) and a **journal** of the versions whose state
//! may have changed since:
//!
//! ```text
//! <model>/index/snapshot.json             compare-and-swap: records, cached events, checksum
//! <model>/index/journal/<version>@<unique> one object per change: "look at this version"
//! ```
//!
//! The invariant: for every version, the snapshot holds its current state,
//! or the journal names it. Every writer that changes a version's state
//! (commits a record, deletes one, rewrites a damaged one) first writes a
//! journal entry naming it. A reader lists the journal **first**, then reads
//! the snapshot, then reads the truth (`version.json`) of every version the
//! journal names; so a version is answered from its primary object whenever
//! the snapshot may be stale. Compaction (by any reader, when the journal
//! grows) folds the truths it read into a new snapshot with
//! compare-and-swap on the snapshot it started from, then deletes the
//! entries whose outcome is final (a committed record; a prune whose
//! retiring mark is gone). A snapshot that is missing, damaged (checksum)
//! or of another layout is rebuilt from a full scan; `repair` rebuilds it.
//!
//! So a stale or damaged index costs requests, never a wrong answer. What
//! the index cannot see is damage done to a record after it was indexed
//! (a file overwritten by hand): `verify` reads every primary object.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::read::{DamagedVersion, Listing};
use super::records::VersionInfo;
use super::{layout, storage_err, unique_suffix, Registry};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::name::ModelName;
use crate::storage::{ObjectVersion, Written};

/// The snapshot's layout version.
const SNAPSHOT_LAYOUT: u32 = 1;
/// A reader compacts when the journal names more versions than this (or
/// than a sixty-fourth of the indexed versions, whichever is more: a
/// compaction rewrites the whole snapshot), or when more event objects than
/// this are missing from the cache.
const COMPACT_AFTER: usize = 8;
/// A publisher compacts when the journal holds more entries than this, so
/// the journal stays bounded when nobody lists.
const PUBLISHER_COMPACTS_AFTER: usize = 256;
/// How many records a listing reads at once.
const PARALLEL_READS: usize = 8;

/// What a journal entry says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Change {
    /// A publisher is committing the version.
    Publish,
    /// A pruner is removing the version.
    Prune,
    /// A repair is rewriting the version's damaged record.
    Repair,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    change: Change,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

/// The compacted state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    layout: u32,
    /// SHA-256 of the canonical JSON of `versions` and `events`.
    checksum: String,
    versions: Vec<VersionInfo>,
    /// Event objects by key name (immutable once written).
    events: BTreeMap<String, Event>,
}

impl Snapshot {
    fn digest(versions: &[VersionInfo], events: &BTreeMap<String, Event>) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(versions).unwrap_or_default());
        h.update(serde_json::to_vec(events).unwrap_or_default());
        hex::encode(h.finalize())
    }

    fn new(versions: Vec<VersionInfo>, events: BTreeMap<String, Event>) -> Self {
        Snapshot {
            layout: SNAPSHOT_LAYOUT,
            checksum: Self::digest(&versions, &events),
            versions,
            events,
        }
    }

    fn is_sound(&self, model: &ModelName) -> bool {
        self.layout == SNAPSHOT_LAYOUT
            && self.checksum == Self::digest(&self.versions, &self.events)
            && self.versions.iter().all(|v| &v.model == model)
    }
}

/// The truth about one version, read from its primary objects.
pub(super) enum Truth {
    Committed(VersionInfo),
    Damaged(Error),
    Absent,
}

/// A journal entry as listed: its key and the version it names.
struct Noted {
    key: String,
    version: Version,
}

/// The snapshot as read: `None` when it must be rebuilt from a full scan;
/// the stored object's version either way, for compare-and-swap.
struct Read {
    snapshot: Option<Snapshot>,
    object: Option<ObjectVersion>,
    /// The snapshot object is there but cannot be read (over its cap, not
    /// a regular file): listings scan the records; `repair` replaces it.
    unreadable: bool,
}

impl Registry {
    /// Notes in the journal that `version`'s state is about to change.
    /// Every writer calls it before the change.
    pub(super) fn note_change(&self, model: &ModelName, version: &Version, change: Change) -> Result<()> {
        let entry = Entry {
            change,
            at: OffsetDateTime::now_utc(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(|source| Error::CorruptRecord {
            key: layout::journal(model),
            source,
        })?;
        loop {
            let key = format!("{}/{version}@{}", layout::journal(model), unique_suffix());
            if self.put_new(&key, &bytes)? == Written::Done {
                return Ok(());
            }
        }
    }

    /// The listing through the index (see the module docs).
    pub(super) fn indexed_listing(&self, model: &ModelName) -> Result<Listing> {
        let journal = self.journal(model)?;
        let read = self.read_snapshot(model)?;
        let Some(snapshot) = read.snapshot else {
            // Every record read after the journal was listed: a snapshot
            // of this scan may retire every entry whose outcome is final.
            let listing = self.scan_listing(model)?;
            self.compact(model, read.object.as_ref(), &listing, BTreeMap::new(), &journal)?;
            return Ok(listing);
        };
        let mut versions: BTreeMap<Version, VersionInfo> =
            snapshot.versions.into_iter().map(|i| (i.version.clone(), i)).collect();
        let indexed = versions.len();
        let noted: BTreeSet<Version> = journal.iter().map(|n| n.version.clone()).collect();
        let truths = self.truths(model, &noted)?;
        for v in &noted {
            versions.remove(v);
        }
        let mut listing = self.listing_of_truths(model, truths);
        listing.versions.extend(versions.into_values());
        listing.versions.sort_by(|a, b| a.version.cmp(&b.version));
        if noted.len() > COMPACT_AFTER.max(indexed / 64) {
            let events = snapshot.events;
            self.compact(model, read.object.as_ref(), &listing, events, &journal)?;
        }
        Ok(listing)
    }

    /// Compacts when the journal has grown long: a publisher calls it after
    /// committing, so the journal stays bounded even when nobody lists.
    /// One list request when it is short.
    pub(super) fn compact_if_long(&self, model: &ModelName) -> Result<()> {
        let dir = layout::journal(model);
        if self.storage.list_children(&dir).map_err(storage_err(&dir))?.len() > PUBLISHER_COMPACTS_AFTER {
            self.indexed_listing(model)?;
        }
        Ok(())
    }

    /// The event objects of a model through the snapshot's cache: one list
    /// request, and a read only for the events not cached yet.
    pub(super) fn indexed_events(&self, model: &ModelName) -> Result<(Vec<Event>, Vec<super::history::BadEvent>)> {
        let dir = layout::events(model);
        let names = self.storage.list_children(&dir).map_err(storage_err(&dir))?;
        let read = self.read_snapshot(model)?;
        let cached = read.snapshot.as_ref().map(|s| &s.events);
        let (mut events, mut bad, mut fresh) = (Vec::with_capacity(names.len()), Vec::new(), BTreeMap::new());
        for name in &names {
            if let Some(event) = cached.and_then(|c| c.get(name)) {
                events.push(event.clone());
                continue;
            }
            let key = format!("{dir}/{name}");
            match self.get_json::<Event>(&key) {
                Ok(Some(event)) => {
                    fresh.insert(name.clone(), event.clone());
                    events.push(event);
                }
                Ok(None) => {}
                Err(error) if error.is_damage() => bad.push(super::history::BadEvent { key, error }),
                Err(e) => return Err(e),
            }
        }
        if let Some(snapshot) = read.snapshot {
            if fresh.len() > COMPACT_AFTER {
                // Only the event cache changes: the versions stay as read,
                // under compare-and-swap on the same snapshot.
                let listed: BTreeSet<&String> = names.iter().collect();
                let mut all: BTreeMap<String, Event> = snapshot
                    .events
                    .into_iter()
                    .filter(|(k, _)| listed.contains(k))
                    .collect();
                all.extend(fresh);
                let next = Snapshot::new(snapshot.versions, all);
                self.put_snapshot(model, read.object.as_ref(), &next);
            }
        }
        events.sort_by_key(|e| e.at);
        Ok((events, bad))
    }

    /// Rebuilds the index of a model from a full scan of its primary
    /// objects (what `repair` does); whether it replaced a damaged one.
    pub(super) fn rebuild_index(&self, model: &ModelName) -> Result<bool> {
        let read = self.read_snapshot(model)?;
        let listing = self.scan_listing(model)?;
        if read.unreadable {
            // Nothing can compare-and-swap an object that cannot be read:
            // it goes, and a sound one is written in its place.
            self.delete(&layout::snapshot(model))?;
            return Ok(self.write_snapshot(model, None, &listing));
        }
        // The event cache refills on the next history read.
        let written = self.write_snapshot(model, read.object.as_ref(), &listing);
        Ok(written && read.object.is_some() && read.snapshot.is_none())
    }

    fn journal(&self, model: &ModelName) -> Result<Vec<Noted>> {
        let dir = layout::journal(model);
        let names = self.storage.list_children(&dir).map_err(storage_err(&dir))?;
        Ok(names
            .into_iter()
            .filter_map(|name| {
                let version = Version::parse(name.split_once('@')?.0).ok()?;
                Some(Noted {
                    key: format!("{dir}/{name}"),
                    version,
                })
            })
            .collect())
    }

    fn read_snapshot(&self, model: &ModelName) -> Result<Read> {
        let key = layout::snapshot(model);
        let (bytes, object) = match self.get_object(&key) {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Ok(Read {
                    snapshot: None,
                    object: None,
                    unreadable: false,
                })
            }
            Err(e) if e.is_damage() => {
                tracing::warn!(%model, %key, error = %e, "the index snapshot is unreadable: listing from the primary objects");
                return Ok(Read {
                    snapshot: None,
                    object: None,
                    unreadable: true,
                });
            }
            Err(e) => return Err(e),
        };
        let snapshot = match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) if s.is_sound(model) => Some(s),
            Ok(_) | Err(_) => {
                tracing::warn!(%model, %key, "the index snapshot is damaged: listing from the primary objects");
                None
            }
        };
        Ok(Read {
            snapshot,
            object: Some(object),
            unreadable: false,
        })
    }

    /// A listing of the truths read for some versions.
    pub(super) fn listing_of_truths(&self, model: &ModelName, truths: Vec<(Version, Truth)>) -> Listing {
        let mut listing = Listing::default();
        for (version, truth) in truths {
            match truth {
                Truth::Committed(info) => listing.versions.push(info),
                Truth::Damaged(error) => listing.damaged.push(DamagedVersion {
                    model: model.clone(),
                    version,
                    error,
                }),
                Truth::Absent => {}
            }
        }
        listing.versions.sort_by(|a, b| a.version.cmp(&b.version));
        listing
    }

    /// The truth of each version, read [`PARALLEL_READS`] at a time (on
    /// object storage each read is a round trip).
    pub(super) fn truths(&self, model: &ModelName, versions: &BTreeSet<Version>) -> Result<Vec<(Version, Truth)>> {
        let versions: Vec<&Version> = versions.iter().collect();
        if versions.len() <= 2 {
            return versions
                .into_iter()
                .map(|v| Ok((v.clone(), self.truth(model, v)?)))
                .collect();
        }
        let chunk = versions.len().div_ceil(PARALLEL_READS);
        std::thread::scope(|s| {
            let handles: Vec<_> = versions
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|v| Ok(((*v).clone(), self.truth(model, v)?)))
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(versions.len());
            for h in handles {
                out.extend(h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?);
            }
            Ok(out)
        })
    }

    fn truth(&self, model: &ModelName, v: &Version) -> Result<Truth> {
        let key = layout::record(model, v);
        match self.get_json::<VersionInfo>(&key) {
            Ok(Some(info)) if &info.version == v && &info.model == model => Ok(Truth::Committed(info)),
            Ok(Some(info)) => Ok(Truth::Damaged(Error::MisplacedRecord {
                key,
                found: format!("{} {}", info.model, info.version),
            })),
            Ok(None) => Ok(Truth::Absent),
            Err(error) if error.is_damage() => Ok(Truth::Damaged(error)),
            Err(e) => Err(e),
        }
    }

    /// Writes a snapshot of `listing` (a full scan) over the object read
    /// before it; whether it was written.
    /// Losing the race to another writer of the snapshot is not an error:
    /// theirs is as good.
    fn write_snapshot(&self, model: &ModelName, expected: Option<&ObjectVersion>, listing: &Listing) -> bool {
        let next = Snapshot::new(listing.versions.clone(), BTreeMap::new());
        self.put_snapshot(model, expected, &next)
    }

    fn put_snapshot(&self, model: &ModelName, expected: Option<&ObjectVersion>, next: &Snapshot) -> bool {
        let key = layout::snapshot(model);
        let Ok(bytes) = serde_json::to_vec(next) else {
            return false;
        };
        match self.storage.put_if_version(&key, &bytes, expected) {
            Ok(Written::Done) => true,
            Ok(Written::PreconditionFailed) => false,
            Err(e) => {
                tracing::warn!(%model, error = %e, "could not write the index snapshot");
                false
            }
        }
    }

    /// Folds the truths read for the journal's versions into a new
    /// snapshot, then deletes the entries whose outcome is final.
    fn compact(
        &self,
        model: &ModelName,
        expected: Option<&ObjectVersion>,
        listing: &Listing,
        events: BTreeMap<String, Event>,
        journal: &[Noted],
    ) -> Result<()> {
        // Finality is decided before the snapshot is written, from the
        // objects read in this order: the retiring mark, then the record.
        let mut last_final = Vec::new();
        let committed: BTreeSet<&Version> = listing.versions.iter().map(|i| &i.version).collect();
        let damaged: BTreeSet<&Version> = listing.damaged.iter().map(|d| &d.version).collect();
        let noted: BTreeSet<&Version> = journal.iter().map(|n| &n.version).collect();
        for v in noted {
            if damaged.contains(v) || self.exists(&layout::retiring(model, v))? {
                continue;
            }
            let in_listing = committed.contains(v);
            // Re-read the record after the mark: the state the snapshot
            // records must still hold now.
            let now = self.exists(&layout::record(model, v))?;
            if now != in_listing {
                continue;
            }
            if !now && self.exists(&layout::claim(model, v))? {
                // Being published (or abandoned, until `repair`): not final.
                continue;
            }
            last_final.push(v.clone());
        }
        let next = Snapshot::new(listing.versions.clone(), events);
        if !self.put_snapshot(model, expected, &next) {
            return Ok(());
        }
        for n in journal.iter().filter(|n| last_final.contains(&n.version)) {
            self.delete(&n.key)?;
        }
        Ok(())
    }
}
