//! Reading the registry: models, versions, references, cards, bundles and
//! verified loads.

use model_persistence_core::{AnyModel, ContentId, Loadable, Loaded, Model, ModelCard};
use semver::Version;

use super::records::VersionInfo;
use super::{layout, storage_err, Registry};
use crate::error::{Error, Result};
use crate::name::{IntoName, ModelName};
use crate::reference::{ModelRef, Target};

/// What [`Registry::listing`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Listing {
    /// The committed versions, in semver order.
    pub versions: Vec<VersionInfo>,
    /// The versions whose record cannot be read.
    pub damaged: Vec<DamagedVersion>,
}

/// A version whose record cannot be read.
#[derive(Debug)]
#[non_exhaustive]
pub struct DamagedVersion {
    /// The model.
    pub model: ModelName,
    /// The version (from its folder's name).
    pub version: Version,
    /// What is wrong.
    pub error: Error,
}

impl Registry {
    /// The names of all models, sorted.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn models(&self) -> Result<Vec<ModelName>> {
        let names = self.storage.list_children("").map_err(storage_err(""))?;
        Ok(names.into_iter().filter_map(|n| ModelName::new(n).ok()).collect())
    }

    /// Every committed version of a model, in semver order. A version
    /// whose record is unreadable is left out (and named by
    /// [`listing`](Self::listing) and [`verify`](Self::verify)); it never
    /// hides the others.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn versions(&self, model: impl IntoName<ModelName>) -> Result<Vec<VersionInfo>> {
        let listing = self.listing(model)?;
        for d in &listing.damaged {
            tracing::warn!(model = %d.model, version = %d.version, error = %d.error, "unreadable version record");
        }
        Ok(listing.versions)
    }

    /// Every committed version of a model, and every version whose record
    /// is damaged, each named with what is wrong.
    ///
    /// The listing goes through the registry's index (a snapshot and a
    /// journal of changes since, see `docs/registry.md`): a few requests
    /// whatever the number of versions, and the same answer as reading
    /// every record. A record damaged after it was indexed is found by
    /// [`verify`](Self::verify), which reads every object.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn listing(&self, model: impl IntoName<ModelName>) -> Result<Listing> {
        let model = model.into_name()?;
        self.indexed_listing(&model)
    }

    /// The listing read from every version record, without the index: one
    /// request per version. What [`listing`](Self::listing) answers is
    /// always this; use it to check the index, or for an audit.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn listing_from_records(&self, model: impl IntoName<ModelName>) -> Result<Listing> {
        self.scan_listing(&model.into_name()?)
    }

    /// The listing from every version record (no index), read several at
    /// a time.
    pub(super) fn scan_listing(&self, model: &ModelName) -> Result<Listing> {
        let claimed = self.claimed_versions(model)?.into_iter().collect();
        Ok(self.listing_of_truths(model, self.truths(model, &claimed)?))
    }

    /// One committed version's record.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], storage errors.
    pub fn version(&self, model: impl IntoName<ModelName>, version: &Version) -> Result<VersionInfo> {
        let model = model.into_name()?;
        self.get_json(&layout::record(&model, version))?
            .ok_or_else(|| Error::VersionNotFound {
                model: model.into(),
                version: version.clone(),
            })
    }

    /// The version a reference resolves to.
    ///
    /// # Errors
    ///
    /// [`Error::ModelNotFound`], [`Error::VersionNotFound`],
    /// [`Error::AliasNotFound`], storage errors.
    pub fn resolve(&self, reference: &ModelRef) -> Result<VersionInfo> {
        let model = &reference.model;
        match &reference.target {
            Target::Latest => self.versions(model)?.pop().ok_or_else(|| Error::ModelNotFound {
                model: model.to_string(),
            }),
            Target::Version(v) => self.version(model, v),
            Target::Alias(a) => {
                let target = self.alias(model, a)?.ok_or_else(|| Error::AliasNotFound {
                    model: model.to_string(),
                    alias: a.to_string(),
                })?;
                self.version(model, &target.version)
            }
        }
    }

    /// Whether a model has at least one version.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn has_model(&self, model: impl IntoName<ModelName>) -> Result<bool> {
        let model = model.into_name()?;
        Ok(!self.claimed_versions(&model)?.is_empty())
    }

    /// A version's card (from its `card.json`, without the model).
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], storage errors.
    pub fn card(&self, model: impl IntoName<ModelName>, version: &Version) -> Result<ModelCard> {
        let model = model.into_name()?;
        self.version(&model, version)?;
        self.get_json(&layout::card(&model, version))?
            .ok_or_else(|| Error::VersionNotFound {
                model: model.into(),
                version: version.clone(),
            })
    }

    /// A version's signature file, if it was published signed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn signature(&self, model: impl IntoName<ModelName>, version: &Version) -> Result<Option<Vec<u8>>> {
        let key = layout::signature(&model.into_name()?, version);
        Ok(self.get_object(&key)?.map(|(b, _)| b))
    }

    /// A version's bundle bytes, verified against its recorded content id.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], [`Error::Bundle`] if the bytes are damaged,
    /// [`Error::ContentIdMismatch`] if they are another valid bundle.
    pub fn bundle(&self, model: impl IntoName<ModelName>, version: &Version) -> Result<Vec<u8>> {
        let info = self.version(&model.into_name()?, version)?;
        self.verified_bundle(&info)
    }

    /// The verified bytes of the version `info` records (read once by the
    /// caller: a promotion checks the record and the bundle from one read).
    pub(crate) fn verified_bundle(&self, info: &VersionInfo) -> Result<Vec<u8>> {
        let bytes = self.stored_bundle(info)?;
        let summary = self.reader.verify_bytes(&bytes).map_err(|source| Error::Bundle {
            model: info.model.to_string(),
            version: info.version.clone(),
            source,
        })?;
        check_content_id(info, summary.content_id)?;
        Ok(bytes)
    }

    fn stored_bundle(&self, info: &VersionInfo) -> Result<Vec<u8>> {
        let key = layout::bundle(&info.model, &info.version);
        let (bytes, _) = self
            .storage
            .get(&key)
            .map_err(storage_err(&key))?
            .ok_or_else(|| Error::VersionNotFound {
                model: info.model.to_string(),
                version: info.version.clone(),
            })?;
        Ok(bytes)
    }

    /// Loads the version a reference resolves to as a model of type `M`,
    /// with every check of the bundle (hashing it once), and checks that it
    /// is the bundle recorded at publication.
    ///
    /// # Errors
    ///
    /// Those of [`resolve`](Self::resolve) and [`Error::Bundle`].
    pub fn load<M: Model + Send + Sync + 'static>(&self, reference: &ModelRef) -> Result<Loaded<M>> {
        self.load_as::<M>(reference)
    }

    /// Loads the version a reference resolves to as any [`Loadable`]: a
    /// typed model or [`AnyModel`]. With a [`cache`](Self::cache), the
    /// bundle comes from the machine's cache when it is there (verified
    /// like a download), and is stored there after a download.
    ///
    /// # Errors
    ///
    /// Those of [`resolve`](Self::resolve) and [`Error::Bundle`].
    pub fn load_as<S: Loadable>(&self, reference: &ModelRef) -> Result<Loaded<S>> {
        let info = self.resolve(reference)?;
        self.load_version_as(&info)
    }

    /// Loads a resolved version (see [`load_as`](Self::load_as)).
    ///
    /// # Errors
    ///
    /// [`Error::Bundle`], storage errors.
    pub fn load_version_as<S: Loadable>(&self, info: &VersionInfo) -> Result<Loaded<S>> {
        let check = |bytes: &[u8]| -> Result<Loaded<S>> {
            self.check_signature(info, bytes)?;
            let loaded = S::load_bytes(&self.reader, &self.kinds, bytes).map_err(|source| Error::Bundle {
                model: info.model.to_string(),
                version: info.version.clone(),
                source,
            })?;
            check_content_id(info, loaded.content_id())?;
            Ok(loaded)
        };
        let Some(cache) = &self.cache else {
            return check(&self.stored_bundle(info)?);
        };
        let loaded = std::cell::RefCell::new(None);
        cache.get_or_fetch(
            &info.content_id,
            || self.stored_bundle(info),
            |bytes| {
                *loaded.borrow_mut() = Some(check(bytes)?);
                Ok(())
            },
        )?;
        loaded.into_inner().ok_or_else(|| Error::VersionNotFound {
            model: info.model.to_string(),
            version: info.version.clone(),
        })
    }
}

impl Registry {
    /// Loads the version a reference resolves to as a model of whatever
    /// kind its card names, through the registry's [`kinds`](Self::kinds),
    /// with every check of a typed load: the algorithm behind a name can
    /// change between versions.
    ///
    /// # Errors
    ///
    /// Those of [`resolve`](Self::resolve), [`Error::Bundle`] (with
    /// `UnknownKind` for a kind the table does not know).
    pub fn load_any(&self, reference: &ModelRef) -> Result<Loaded<AnyModel>> {
        self.load_as::<AnyModel>(reference)
    }
}

/// The bundle must be the one recorded when the version was published.
fn check_content_id(info: &VersionInfo, found: ContentId) -> Result<()> {
    if found == info.content_id {
        return Ok(());
    }
    Err(Error::ContentIdMismatch {
        model: info.model.to_string(),
        version: info.version.clone(),
        expected: info.content_id,
        found,
    })
}
