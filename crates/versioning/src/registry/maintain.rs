//! Keeping a registry in shape: pruning old versions, verifying every
//! stored object, and repairing what crashed writers left behind. One
//! file over 500 lines: repair runs verify and undoes what prune began, so
//! the three read each other's steps.

use semver::Version;

use super::records::VersionInfo;
use super::{layout, storage_err, to_json, Registry};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::name::{IntoName, ModelName};
use crate::storage::Written;

/// A damaged object found by [`Registry::verify`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Damaged {
    /// The model.
    pub model: ModelName,
    /// The version, when the object belongs to one.
    pub version: Option<Version>,
    /// The storage key of the damaged object.
    pub key: String,
    /// What is wrong.
    pub error: Error,
}

/// What [`Registry::verify`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Versions checked.
    pub checked: usize,
    /// Objects checked (bundles, cards, records, attachments, events, aliases).
    pub objects: usize,
    /// Everything that failed, each object named.
    pub damaged: Vec<Damaged>,
    /// Work that crashed writers left behind, which [`Registry::repair`]
    /// cleans up (claims, pins and retiring marks of writers that are gone).
    pub leftovers: Vec<String>,
}

/// What [`Registry::repair`] did, and what it left for a person to decide.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RepairReport {
    /// Each action taken, in words.
    pub actions: Vec<String>,
    /// Each problem left alone because it needs a decision, in words.
    pub needs_decision: Vec<String>,
}

impl Registry {
    /// Removes all versions but the last `keep_last` and those an alias
    /// points at or a promotion in progress has pinned. Returns the removed
    /// versions.
    ///
    /// The transaction of each removal (see `docs/registry.md`): write the
    /// retiring mark (from then on no promotion can choose the version),
    /// read the pins and aliases (a promotion that pinned the version
    /// earlier, or an alias that points at it, keeps it: the mark is
    /// withdrawn), record the pruning in the history, then delete the
    /// record first (the version stops being listed), the rest after.
    ///
    /// # Errors
    ///
    /// Storage errors; [`Error::CorruptRecord`] if an alias of the model
    /// cannot be read (nothing is removed while a target is unknown).
    pub fn prune(&self, model: impl IntoName<ModelName>, keep_last: usize) -> Result<Vec<Version>> {
        let model = model.into_name()?;
        let versions = self.versions(&model)?;
        let cut = versions.len().saturating_sub(keep_last);
        let mut pruned = Vec::new();
        for info in versions.into_iter().take(cut) {
            if self.retire(&model, &info)? {
                pruned.push(info.version);
            }
        }
        if !pruned.is_empty() {
            self.storage.restore_reserve();
        }
        Ok(pruned)
    }

    /// Runs a small write a removal needs; on a full disk, frees the
    /// storage's reserve (see [`Storage::release_reserve`]) and tries once
    /// more, so that removing data never needs free space the disk lacks.
    fn spending_reserve<T>(&self, write: impl Fn() -> Result<T>) -> Result<T> {
        match write() {
            Err(e) if e.is_out_of_space() && self.storage.release_reserve() => {
                tracing::warn!("the disk is full: the registry's reserve is freed for a removal");
                write()
            }
            other => other,
        }
    }

    /// Removes one version unless it is pinned or aliased; whether it did.
    fn retire(&self, model: &ModelName, info: &VersionInfo) -> Result<bool> {
        let v = &info.version;
        let mark = layout::retiring(model, v);
        let me = self.new_owner();
        let bytes = to_json(&mark, &me)?;
        if self.spending_reserve(|| self.put_new(&mark, &bytes))? == Written::PreconditionFailed {
            match self.marker(&mark)? {
                Some((owner, object)) if self.is_stale(owner.as_ref()) => {
                    let taken = self
                        .storage
                        .put_if_version(&mark, &bytes, Some(&object))
                        .map_err(storage_err(&mark))?;
                    if taken != Written::Done {
                        return Ok(false);
                    }
                }
                Some(_) => return Ok(false), // another pruner is on it
                None => {
                    if self.put_new(&mark, &bytes)? == Written::PreconditionFailed {
                        return Ok(false);
                    }
                }
            }
        }
        let keep = self.has_live_pin(model, v)? || self.alias_targets(model)?.contains(v);
        if keep {
            self.delete(&mark)?;
            return Ok(false);
        }
        self.spending_reserve(|| {
            self.record_event(
                model,
                EventKind::Pruned {
                    version: v.clone(),
                    content_id: Some(info.content_id),
                    published_at: Some(info.published_at),
                },
            )
        })?;
        self.spending_reserve(|| self.note_change(model, v, super::index::Change::Prune))?;
        self.remove_version_objects(model, v)?;
        self.delete(&mark)?;
        tracing::info!(%model, version = %v, "pruned");
        Ok(true)
    }

    /// Deletes a version's objects, the record first.
    fn remove_version_objects(&self, model: &ModelName, v: &Version) -> Result<()> {
        for key in [
            layout::record(model, v),
            layout::card(model, v),
            layout::bundle(model, v),
            layout::signature(model, v),
        ] {
            self.delete(&key)?;
        }
        for dir in [layout::attachments(model, v), layout::pins(model, v)] {
            for name in self.storage.list_children(&dir).map_err(storage_err(&dir))? {
                self.delete(&format!("{dir}/{name}"))?;
            }
        }
        self.delete(&layout::claim(model, v))
    }

    /// Whether a promotion in progress has pinned the version; the pins of
    /// promoters that are gone are removed on the way.
    fn has_live_pin(&self, model: &ModelName, v: &Version) -> Result<bool> {
        let dir = layout::pins(model, v);
        let mut live = false;
        for name in self.storage.list_children(&dir).map_err(storage_err(&dir))? {
            let key = format!("{dir}/{name}");
            match self.marker(&key)? {
                Some((owner, _)) if self.is_stale(owner.as_ref()) => self.delete(&key)?,
                Some(_) => live = true,
                None => {}
            }
        }
        Ok(live)
    }

    /// Where every alias of the model points; an unreadable alias is an
    /// error, since its target is unknown.
    fn alias_targets(&self, model: &ModelName) -> Result<Vec<Version>> {
        let key = layout::aliases(model);
        let mut targets = Vec::new();
        for name in self.storage.list_children(&key).map_err(storage_err(&key))? {
            let Ok(alias) = crate::name::AliasName::new(name) else {
                continue;
            };
            if let Some(r) = self.alias_record(model, &alias)? {
                targets.push(r.version);
            }
        }
        Ok(targets)
    }

    /// Checks every object of every version of one model: the bundle's
    /// hashes and that it is the bundle recorded at publication, the record,
    /// the card beside it (against the bundle's), the attachments; then the
    /// model's events and aliases (each must point at a committed version).
    /// Each damaged object is named; none hides the others.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors while listing.
    pub fn verify(&self, model: impl IntoName<ModelName>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        self.verify_model(&model.into_name()?, &mut report)?;
        Ok(report)
    }

    /// [`verify`](Self::verify) for every model of the registry.
    ///
    /// # Errors
    ///
    /// Storage errors while listing.
    pub fn verify_all(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for m in self.models()? {
            self.verify_model(&m, &mut report)?;
        }
        Ok(report)
    }

    fn verify_model(&self, model: &ModelName, report: &mut VerifyReport) -> Result<()> {
        let damaged = |version: Option<&Version>, key: String, error: Error| Damaged {
            model: model.clone(),
            version: version.cloned(),
            key,
            error,
        };
        let listing = self.scan_listing(model)?;
        for d in listing.damaged {
            report.objects += 1;
            report
                .damaged
                .push(damaged(Some(&d.version), layout::record(model, &d.version), d.error));
        }
        for info in &listing.versions {
            let v = &info.version;
            report.checked += 1;
            report.objects += 2;
            let bundle_card = match self.bundle(model, v) {
                Ok(bytes) => self.reader.read_card_bytes(&bytes).ok(),
                Err(error) => {
                    report.damaged.push(damaged(Some(v), layout::bundle(model, v), error));
                    None
                }
            };
            let card_key = layout::card(model, v);
            report.objects += 1;
            match self.get_json::<model_persistence_core::ModelCard>(&card_key) {
                Ok(Some(card)) if bundle_card.as_ref().is_none_or(|b| *b == card) => {}
                Ok(Some(_)) => report.damaged.push(damaged(
                    Some(v),
                    card_key.clone(),
                    Error::CardMismatch { key: card_key },
                )),
                Ok(None) => report.damaged.push(damaged(
                    Some(v),
                    card_key.clone(),
                    Error::MissingObject { key: card_key },
                )),
                Err(error) => report.damaged.push(damaged(Some(v), card_key, error)),
            }
            for name in self.attachments(model, v)? {
                let key = layout::attachment(model, v, &name);
                report.objects += 1;
                if let Err(error) = self.get_json::<serde_json::Value>(&key) {
                    report.damaged.push(damaged(Some(v), key, error));
                }
            }
        }
        let committed: Vec<&Version> = listing.versions.iter().map(|i| &i.version).collect();
        for v in self.claimed_versions(model)? {
            if committed.contains(&&v) {
                continue;
            }
            if let Some((owner, _)) = self.marker(&layout::claim(model, &v))? {
                if self.is_stale(owner.as_ref()) {
                    report
                        .leftovers
                        .push(format!("{model} {v}: the claim of a publisher that is gone"));
                }
            }
        }
        let (events, bad) = self.event_objects(model)?;
        report.objects += events.len() + bad.len();
        for b in bad {
            report.damaged.push(damaged(None, b.key, b.error));
        }
        let key = layout::aliases(model);
        for name in self.storage.list_children(&key).map_err(storage_err(&key))? {
            let Ok(alias) = crate::name::AliasName::new(name) else {
                continue;
            };
            let key = layout::alias(model, &alias);
            report.objects += 1;
            match self.alias_record(model, &alias) {
                Ok(Some(r)) if !committed.contains(&&r.version) => report.damaged.push(damaged(
                    Some(&r.version),
                    key,
                    Error::DanglingAlias {
                        model: model.to_string(),
                        alias: alias.to_string(),
                        version: r.version.clone(),
                    },
                )),
                Ok(_) => {}
                Err(error) => report.damaged.push(damaged(None, key, error)),
            }
        }
        Ok(())
    }

    /// Cleans up what crashed writers left behind where the right action is
    /// clear, and reports what needs a person's decision:
    ///
    /// - the claim of a publisher that is gone, with no committed record:
    ///   the claim and the objects written under it are removed, so the
    ///   number can be published again;
    /// - pins of promoters that are gone: removed;
    /// - the retiring mark of a pruner that is gone: withdrawn if the
    ///   version is still committed, the removal finished if not;
    /// - a version record that cannot be read while its bundle verifies:
    ///   rebuilt from the bundle;
    /// - an unreadable event object: kept aside under `.quarantine/` and
    ///   removed from the history;
    /// - an alias pointing at a missing version, or unreadable: reported.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn repair(&self, model: impl IntoName<ModelName>) -> Result<RepairReport> {
        let mut report = RepairReport::default();
        self.repair_model(&model.into_name()?, &mut report)?;
        Ok(report)
    }

    /// [`repair`](Self::repair) for every model of the registry.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn repair_all(&self) -> Result<RepairReport> {
        let mut report = RepairReport::default();
        for m in self.models()? {
            self.repair_model(&m, &mut report)?;
        }
        Ok(report)
    }

    fn repair_model(&self, model: &ModelName, report: &mut RepairReport) -> Result<()> {
        let listing = self.scan_listing(model)?;
        let committed: Vec<Version> = listing.versions.iter().map(|i| i.version.clone()).collect();
        for d in listing.damaged {
            self.rebuild_record(model, &d.version, report)?;
        }
        for info in &listing.versions {
            self.rebuild_card(model, &info.version, report)?;
        }
        for v in self.claimed_versions(model)? {
            let is_committed = committed.contains(&v);
            let mark = layout::retiring(model, &v);
            if let Some((owner, _)) = self.marker(&mark)? {
                if self.is_stale(owner.as_ref()) {
                    if is_committed {
                        self.delete(&mark)?;
                        report.actions.push(format!(
                            "{model} {v}: withdrew the retiring mark of a pruner that is gone"
                        ));
                    } else {
                        self.remove_version_objects(model, &v)?;
                        self.delete(&mark)?;
                        report
                            .actions
                            .push(format!("{model} {v}: finished the removal a pruner that is gone began"));
                        continue;
                    }
                }
            }
            let pins = layout::pins(model, &v);
            for name in self.storage.list_children(&pins).map_err(storage_err(&pins))? {
                let key = format!("{pins}/{name}");
                if let Some((owner, _)) = self.marker(&key)? {
                    if self.is_stale(owner.as_ref()) {
                        self.delete(&key)?;
                        report
                            .actions
                            .push(format!("{model} {v}: removed the pin of a promoter that is gone"));
                    }
                }
            }
            if is_committed || self.exists(&layout::record(model, &v))? {
                continue;
            }
            let claim = layout::claim(model, &v);
            let abandoned = match self.marker(&claim)? {
                Some((owner, _)) => self.is_stale(owner.as_ref()),
                // Objects without a claim: a publish of an earlier release
                // killed after its bundle, or a prune killed midway.
                None => true,
            };
            if abandoned && self.has_objects(model, &v)? {
                self.remove_version_objects(model, &v)?;
                report.actions.push(format!(
                    "{model} {v}: removed the unfinished publication of a writer that is gone; the number is free"
                ));
            }
        }
        let (_, bad) = self.event_objects(model)?;
        for b in bad {
            if let Some((bytes, _)) = self.get_object(&b.key)? {
                let aside = format!("{model}/.quarantine/{}", b.key.rsplit('/').next().unwrap_or("event"));
                self.put_new(&aside, &bytes)?;
                self.delete(&b.key)?;
                report.actions.push(format!(
                    "{model}: moved the unreadable event {} aside to {aside}",
                    b.key
                ));
            }
        }
        if self.rebuild_index(model)? {
            report
                .actions
                .push(format!("{model}: rebuilt the damaged index from the primary objects"));
        }
        let mut verify = VerifyReport::default();
        self.verify_model(model, &mut verify)?;
        for d in verify.damaged {
            report
                .needs_decision
                .push(format!("{}: {}", d.key, model_persistence_core::error_chain(&d.error)));
        }
        Ok(())
    }

    /// Whether any object of an uncommitted version is left.
    fn has_objects(&self, model: &ModelName, v: &Version) -> Result<bool> {
        for key in [
            layout::claim(model, v),
            layout::bundle(model, v),
            layout::card(model, v),
        ] {
            if self.exists(&key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Rewrites a version's `card.json` that is unreadable, missing or not
    /// the card inside the bundle, from that card, if the bundle verifies
    /// as this version (the bundle is the truth; `card.json` is a copy for
    /// readers that do not open bundles).
    fn rebuild_card(&self, model: &ModelName, v: &Version, report: &mut RepairReport) -> Result<()> {
        let key = layout::card(model, v);
        let stored = self.get_json::<model_persistence_core::ModelCard>(&key);
        let Ok(bytes) = self.bundle(model, v) else {
            return Ok(()); // a damaged bundle: verify names it, a person decides
        };
        let (Ok(summary), Ok(card)) = (self.reader.verify_bytes(&bytes), self.reader.read_card_bytes(&bytes)) else {
            return Ok(());
        };
        if summary.name != model.as_str() || &summary.version != v || matches!(&stored, Ok(Some(c)) if *c == card) {
            return Ok(());
        }
        let json = card.to_json().map_err(|source| Error::InvalidBundle { source })?;
        self.delete(&key)?;
        self.put_new(&key, json.as_bytes())?;
        report.actions.push(format!(
            "{model} {v}: rewrote card.json from the card inside its verified bundle"
        ));
        Ok(())
    }

    /// Rewrites an unreadable version record from the version's bundle, if
    /// the bundle verifies.
    fn rebuild_record(&self, model: &ModelName, v: &Version, report: &mut RepairReport) -> Result<()> {
        let key = layout::bundle(model, v);
        let Some((bytes, _)) = self.get_object(&key)? else {
            report
                .needs_decision
                .push(format!("{model} {v}: the record is unreadable and there is no bundle"));
            return Ok(());
        };
        let (summary, card) = match (self.reader.verify_bytes(&bytes), self.reader.read_card_bytes(&bytes)) {
            (Ok(s), Ok(c)) if &s.version == v && s.name == model.as_str() => (s, c),
            _ => {
                report.needs_decision.push(format!(
                    "{model} {v}: the record is unreadable and the bundle does not verify as {model} {v}"
                ));
                return Ok(());
            }
        };
        let info = VersionInfo {
            model: model.clone(),
            version: v.clone(),
            content_id: summary.content_id,
            kind: card.kind,
            published_at: card.created_at,
            metrics: card.metrics,
            tags: card.tags,
            notes: card.notes,
            bundle_len: bytes.len() as u64,
            checked: super::records::Checked::Hashes,
        };
        let record = layout::record(model, v);
        self.note_change(model, v, super::index::Change::Repair)?;
        self.delete(&record)?;
        self.put_new(&record, &to_json(&record, &info)?)?;
        report.actions.push(format!(
            "{model} {v}: rebuilt the unreadable version record from its verified bundle"
        ));
        Ok(())
    }
}
