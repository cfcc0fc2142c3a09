//! Publishing versions (create-if-absent, then the record that makes them
//! visible) and immutable attachments.

use model_persistence_core::{Model, ModelCard, Summary};
use semver::Version;
use time::OffsetDateTime;

use super::records::{Checked, VersionInfo};
use super::{layout, storage_err, to_json, Registry};
use crate::error::{Error, Result};
use crate::name::{AttachmentName, IntoName, ModelName};
use crate::storage::Written;

/// How many times a publish retries after losing a version number to a
/// concurrent publisher.
const MAX_PUBLISH_ATTEMPTS: usize = 1_000;

/// Which part of the version a publish bumps from the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// `x.y.z` → `x+1.0.0`.
    Major,
    /// `x.y.z` → `x.y+1.0`.
    Minor,
    /// `x.y.z` → `x.y.z+1`.
    Patch,
}

/// The version a publish asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// Exactly this version; an error if it exists.
    Exact(Version),
    /// The next version after the latest (1.0.0 for the first).
    Bump(Bump),
}

impl Registry {
    /// Publishes `model` with `card` under the card's name, at the version
    /// `spec` asks for (the card's version is replaced by it, so a card
    /// built for publishing needs none). The bundle is written with
    /// create-if-absent, then its card, then the version record that makes
    /// it visible; a concurrent publisher never overwrites it.
    ///
    /// # Errors
    ///
    /// [`Error::VersionExists`] for an exact version that exists,
    /// [`Error::InvalidName`], [`Error::InvalidBundle`], storage errors.
    pub fn publish_model<M: Model>(&self, model: &M, card: &ModelCard, spec: VersionSpec) -> Result<VersionInfo> {
        let name = ModelName::new(card.name.as_str())?;
        let mut card = card.clone();
        for _ in 0..MAX_PUBLISH_ATTEMPTS {
            let version = match &spec {
                VersionSpec::Exact(v) => v.clone(),
                VersionSpec::Bump(bump) => next_version(self.claimed_versions(&name)?.into_iter().max(), *bump),
            };
            card.version = version.clone();
            let bytes = self
                .writer
                .to_bytes(model, &card)
                .map_err(|source| Error::InvalidBundle { source })?;
            let (summary, stored_card) = self.inspect(&bytes)?;
            if self.trusted.is_some() {
                return Err(Error::Signature {
                    model: name.into(),
                    version,
                    source: model_persistence_core::signing::SignatureError::Unsigned,
                });
            }
            match self.claim_and_commit(&name, &summary, stored_card, &bytes, Checked::Full, None)? {
                Some(info) => return Ok(info),
                None if matches!(spec, VersionSpec::Exact(_)) => {
                    return Err(Error::VersionExists {
                        model: name.into(),
                        version,
                    })
                }
                None => continue,
            }
        }
        Err(Error::TooManyConflicts {
            model: name.into(),
            attempts: MAX_PUBLISH_ATTEMPTS,
        })
    }

    /// Publishes an existing bundle under its card's name and version.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBundle`] if the bytes do not verify,
    /// [`Error::VersionExists`] if the version exists, storage errors.
    ///
    /// A bundle of a kind the registry knows ([`kinds`](Self::kinds)) passes
    /// every load check first (a NaN weight, a broken tree, a probe that
    /// does not reproduce are refused); of an unknown kind, only the hashes
    /// are checked, which the returned record says (`checked`).
    pub fn publish_bundle(&self, bytes: &[u8]) -> Result<VersionInfo> {
        self.publish_signed(bytes, None)
    }

    /// [`publish_bundle`](Self::publish_bundle) with the bundle's detached
    /// model-signing signature, stored beside it (and checked against the
    /// registry's trusted keys when it has a [`trust`](Self::trust) policy,
    /// under which a bundle without a signature is refused).
    ///
    /// # Errors
    ///
    /// Those of `publish_bundle`, and [`Error::Signature`].
    pub fn publish_signed(&self, bytes: &[u8], signature: Option<&[u8]>) -> Result<VersionInfo> {
        let (summary, card) = self.inspect(bytes)?;
        let name = ModelName::new(card.name.as_str())?;
        if let Some(keys) = &self.trusted {
            let refused = |source| Error::Signature {
                model: name.to_string(),
                version: summary.version.clone(),
                source,
            };
            let sig = signature.ok_or_else(|| refused(model_persistence_core::signing::SignatureError::Unsigned))?;
            model_persistence_core::signing::verify(bytes, sig, keys).map_err(refused)?;
        }
        let checked = self.full_check(bytes)?;
        match self.claim_and_commit(&name, &summary, card, bytes, checked, signature)? {
            Some(info) => Ok(info),
            None => Err(Error::VersionExists {
                model: summary.name,
                version: summary.version,
            }),
        }
    }

    /// Every version number claimed under a model, committed or not.
    pub(super) fn claimed_versions(&self, model: &ModelName) -> Result<Vec<Version>> {
        let key = layout::versions(model);
        let names = self.storage.list_children(&key).map_err(storage_err(&key))?;
        Ok(names.iter().filter_map(|n| Version::parse(n).ok()).collect())
    }

    /// Runs every load check on bundle bytes of a known kind.
    pub(super) fn full_check(&self, bytes: &[u8]) -> Result<Checked> {
        let kind = self
            .reader
            .read_card_bytes(bytes)
            .map_err(|source| Error::InvalidBundle { source })?
            .kind;
        if !self.kinds.knows(&kind) {
            tracing::warn!(%kind, "unknown model kind: only the hashes were checked");
            return Ok(Checked::Hashes);
        }
        self.kinds
            .load_bytes(bytes)
            .map_err(|source| Error::InvalidBundle { source })?;
        Ok(Checked::Full)
    }

    /// Verifies bundle bytes (every hash, once) and reads their card.
    fn inspect(&self, bytes: &[u8]) -> Result<(Summary, ModelCard)> {
        let invalid = |source| Error::InvalidBundle { source };
        let summary = self.reader.verify_bytes(bytes).map_err(invalid)?;
        let card = self.reader.read_card_bytes(bytes).map_err(invalid)?;
        Ok((summary, card))
    }

    /// The transaction of a publish (see `docs/registry.md`):
    ///
    /// 1. claim the number: `claim.json` with create-if-absent (a claim
    ///    left by a dead publisher, with no committed record, is taken over
    ///    by compare-and-swap on the claim itself, so one taker wins);
    /// 2. write the bundle and `card.json` (replacing a dead publisher's);
    /// 3. commit: `version.json` with create-if-absent. From here the
    ///    version is listed; before, it is invisible.
    ///
    /// `None` if the number belongs to another (live or committed) publisher.
    fn claim_and_commit(
        &self,
        model: &ModelName,
        summary: &Summary,
        card: ModelCard,
        bytes: &[u8],
        checked: Checked,
        signature: Option<&[u8]>,
    ) -> Result<Option<VersionInfo>> {
        let version = &summary.version;
        if !self.claim(model, version)? {
            return Ok(None);
        }
        self.note_change(model, version, super::index::Change::Publish)?;
        let card_json = card.to_json().map_err(|source| Error::InvalidBundle { source })?;
        self.put_owned(&layout::bundle(model, version), bytes)?;
        self.put_owned(&layout::card(model, version), card_json.as_bytes())?;
        if let Some(sig) = signature {
            self.put_owned(&layout::signature(model, version), sig)?;
        }
        let info = VersionInfo {
            model: model.clone(),
            version: version.clone(),
            content_id: summary.content_id,
            kind: card.kind,
            published_at: OffsetDateTime::now_utc(),
            metrics: card.metrics,
            tags: card.tags,
            notes: card.notes,
            bundle_len: bytes.len() as u64,
            checked,
        };
        let key = layout::record(model, version);
        if self.put_new(&key, &to_json(&key, &info)?)? == Written::PreconditionFailed {
            // Only a publisher that took our claim over (we were taken for
            // dead) can have committed: the number is theirs.
            return Ok(None);
        }
        tracing::info!(%model, %version, content_id = %summary.content_id, "published");
        if let Err(e) = self.compact_if_long(model) {
            // The version is committed; a compaction that failed is retried by the next reader.
            tracing::warn!(%model, error = %e, "could not compact the index");
        }
        Ok(Some(info))
    }

    /// Claims a version number; `false` if it is taken.
    ///
    /// Taken means: committed (a record exists), being published by a live
    /// publisher, or being removed by a live pruner. A claim whose publisher
    /// is gone, or left behind by a pruner that died while removing the
    /// version, is taken over by compare-and-swap on the claim object.
    fn claim(&self, model: &ModelName, version: &Version) -> Result<bool> {
        let key = layout::claim(model, version);
        let mine = self.new_owner();
        let bytes = to_json(&key, &mine)?;
        let retiring = layout::retiring(model, version);
        if self.put_new(&key, &bytes)? == Written::Done {
            // A committed version without a claim (pruned claim, or a
            // registry of an earlier release) is not free.
            if self.exists(&layout::record(model, version))? {
                return Ok(false);
            }
            if let Some((owner, _)) = self.marker(&retiring)? {
                if !self.is_stale(owner.as_ref()) {
                    self.delete(&key)?;
                    return Ok(false);
                }
                self.delete(&retiring)?;
            }
            return Ok(true);
        }
        if self.exists(&layout::record(model, version))? {
            return Ok(false);
        }
        let pruner_died = match self.marker(&retiring)? {
            Some((owner, _)) if self.is_stale(owner.as_ref()) => true,
            Some(_) => return Ok(false), // a live pruner is removing it
            None => false,
        };
        let Some((owner, object)) = self.marker(&key)? else {
            // The claim vanished (a pruner or a repair removed it): claim afresh.
            return self.claim(model, version);
        };
        if !pruner_died && !self.is_stale(owner.as_ref()) {
            return Ok(false);
        }
        // A dead publisher's claim with no committed record, or the claim
        // of a version a dead pruner was removing: take it over.
        let taken = self
            .storage
            .put_if_version(&key, &bytes, Some(&object))
            .map_err(storage_err(&key))?;
        if taken != Written::Done {
            return Ok(false);
        }
        if pruner_died {
            self.delete(&retiring)?;
        }
        tracing::warn!(%model, %version, "took over the claim of a writer that is gone");
        Ok(true)
    }

    /// Stores a JSON attachment with a version (such as its gate report).
    /// Attachments are immutable like versions: a second attach of the same
    /// name is refused.
    ///
    /// # Errors
    ///
    /// [`Error::AttachmentExists`], [`Error::VersionNotFound`],
    /// [`Error::InvalidName`], storage errors.
    pub fn attach(
        &self,
        model: impl IntoName<ModelName>,
        version: &Version,
        name: impl IntoName<AttachmentName>,
        value: &serde_json::Value,
    ) -> Result<()> {
        let (model, name) = (model.into_name()?, name.into_name()?);
        self.version(&model, version)?;
        let key = layout::attachment(&model, version, &name);
        match self.put_new(&key, &to_json(&key, value)?)? {
            Written::Done => Ok(()),
            Written::PreconditionFailed => Err(Error::AttachmentExists {
                model: model.into(),
                version: version.clone(),
                name: name.into(),
            }),
        }
    }

    /// An attachment stored with [`attach`](Self::attach), if any.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors, [`Error::CorruptRecord`].
    pub fn attachment(
        &self,
        model: impl IntoName<ModelName>,
        version: &Version,
        name: impl IntoName<AttachmentName>,
    ) -> Result<Option<serde_json::Value>> {
        let (model, name) = (model.into_name()?, name.into_name()?);
        self.get_json(&layout::attachment(&model, version, &name))
    }

    /// The names of a version's attachments, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn attachments(&self, model: impl IntoName<ModelName>, version: &Version) -> Result<Vec<AttachmentName>> {
        let model = model.into_name()?;
        let key = layout::attachments(&model, version);
        let names = self.storage.list_children(&key).map_err(storage_err(&key))?;
        Ok(names
            .iter()
            .filter_map(|n| n.strip_suffix(".json"))
            .filter_map(|n| AttachmentName::new(n).ok())
            .collect())
    }
}

/// The version after `latest` (1.0.0 if there is none).
pub fn next_version(latest: Option<Version>, bump: Bump) -> Version {
    match latest {
        None => Version::new(1, 0, 0),
        Some(v) => match bump {
            Bump::Major => Version::new(v.major + 1, 0, 0),
            Bump::Minor => Version::new(v.major, v.minor + 1, 0),
            Bump::Patch => Version::new(v.major, v.minor, v.patch + 1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_follow_semver() {
        let v = Some(Version::new(1, 2, 3));
        assert_eq!(next_version(v.clone(), Bump::Major), Version::new(2, 0, 0));
        assert_eq!(next_version(v.clone(), Bump::Minor), Version::new(1, 3, 0));
        assert_eq!(next_version(v, Bump::Patch), Version::new(1, 2, 4));
        assert_eq!(next_version(None, Bump::Patch), Version::new(1, 0, 0));
    }
}
