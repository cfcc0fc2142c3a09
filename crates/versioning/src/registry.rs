//! The registry: publish, list, load, compare, aliases, history, prune, verify.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use persistence_core::{BundleReader, BundleWriter, ContentId, Loaded, Model, ModelCard};
use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::name::validate_name;
use crate::storage::{LocalDir, Storage, Written};

/// How many times a publish retries after losing a version number to a
/// concurrent publisher.
const MAX_PUBLISH_ATTEMPTS: usize = 1_000;

/// Whether higher or lower values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is better (accuracy, F1, AUC).
    HigherIsBetter,
    /// Lower is better (log loss, error rate, latency).
    LowerIsBetter,
}

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

/// What the registry records about a published version (read without
/// loading the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The model name.
    pub model: String,
    /// The version.
    pub version: Version,
    /// The bundle's content id.
    pub content_id: ContentId,
    /// The model kind tag.
    pub kind: String,
    /// When it was published.
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// The card's metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The card's tags.
    pub tags: Vec<String>,
    /// The card's notes.
    pub notes: String,
    /// Size of the bundle in bytes.
    pub bundle_len: u64,
}

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

/// A model version reference: `name`, `name@1.2.0` or `name@alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The model name.
    pub model: String,
    /// Which version.
    pub target: Target,
}

/// Which version of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The highest published version.
    Latest,
    /// One version.
    Version(Version),
    /// The version an alias points at.
    Alias(String),
}

impl FromStr for ModelRef {
    type Err = Error;

    /// Parses `name`, `name@1.2.0` or `name@alias`.
    fn from_str(s: &str) -> Result<Self> {
        let (model, target) = match s.split_once('@') {
            None => (s, Target::Latest),
            Some((m, t)) => match Version::parse(t) {
                Ok(v) => (m, Target::Version(v)),
                Err(_) => {
                    validate_name("alias", t)?;
                    (m, Target::Alias(t.to_owned()))
                }
            },
        };
        validate_name("model", model)?;
        Ok(ModelRef {
            model: model.to_owned(),
            target,
        })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::Latest => write!(f, "{}", self.model),
            Target::Version(v) => write!(f, "{}@{v}", self.model),
            Target::Alias(a) => write!(f, "{}@{a}", self.model),
        }
    }
}

/// Two versions compared on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Comparison {
    /// The metric.
    pub metric: String,
    /// The first version.
    pub a: Version,
    /// The second version.
    pub b: Version,
    /// The first version's score.
    pub a_score: f64,
    /// The second version's score.
    pub b_score: f64,
    /// `b_score - a_score`.
    pub absolute: f64,
    /// `(b_score - a_score) / |a_score|`, `None` when `a_score` is 0.
    pub relative: Option<f64>,
}

/// A damaged version found by [`Registry::verify`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Damaged {
    /// The model.
    pub model: String,
    /// The version.
    pub version: Version,
    /// What is wrong.
    pub error: Error,
}

/// What [`Registry::verify`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Versions checked.
    pub checked: usize,
    /// Versions that failed.
    pub damaged: Vec<Damaged>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AliasRecord {
    version: Version,
    content_id: ContentId,
    #[serde(with = "time::serde::rfc3339")]
    set_at: OffsetDateTime,
}

/// A model registry over any [`Storage`].
///
/// ```
/// use versioning::Registry;
///
/// let dir = tempfile::tempdir().expect("temp dir");
/// let registry = Registry::open(dir.path().to_str().expect("utf-8"))?;
/// assert!(registry.models()?.is_empty());
/// # Ok::<(), versioning::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    writer: BundleWriter,
    reader: BundleReader,
}

fn versions_key(model: &str) -> String {
    format!("{model}/versions")
}
fn bundle_key(model: &str, v: &Version) -> String {
    format!("{model}/versions/{v}/model.bundle")
}
fn card_key(model: &str, v: &Version) -> String {
    format!("{model}/versions/{v}/card.json")
}
fn record_key(model: &str, v: &Version) -> String {
    format!("{model}/versions/{v}/version.json")
}
fn attachment_key(model: &str, v: &Version, name: &str) -> String {
    format!("{model}/versions/{v}/{name}.json")
}
fn alias_key(model: &str, alias: &str) -> String {
    format!("{model}/aliases/{alias}")
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    h.update(OffsetDateTime::now_utc().unix_timestamp_nanos().to_le_bytes());
    hex::encode(&h.finalize()[..8])
}

impl Registry {
    /// Opens a registry: a directory path (created if missing), `file://`,
    /// or with the `object-store` feature `s3://bucket/prefix` or `memory://`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`] saying why.
    pub fn open(location: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLocation {
            location: location.to_owned(),
            reason,
        };
        if location.is_empty() {
            return Err(invalid("the location is empty".into()));
        }
        if let Some(path) = location.strip_prefix("file://") {
            return Ok(Self::with_storage(Arc::new(
                LocalDir::open(path).map_err(|e| invalid(e.to_string()))?,
            )));
        }
        if location.contains("://") {
            #[cfg(feature = "object-store")]
            {
                return crate::object::open_url(location)
                    .map(|s| Self::with_storage(Arc::new(s)))
                    .map_err(invalid);
            }
            #[cfg(not(feature = "object-store"))]
            return Err(invalid("URLs need the `object-store` feature".into()));
        }
        Ok(Self::with_storage(Arc::new(
            LocalDir::open(location).map_err(|e| invalid(e.to_string()))?,
        )))
    }

    /// A registry over `storage`.
    pub fn with_storage(storage: Arc<dyn Storage>) -> Self {
        Registry {
            storage,
            writer: BundleWriter::default().card_json(false),
            reader: BundleReader::default(),
        }
    }

    /// The compression level of bundles published with
    /// [`publish_model`](Self::publish_model). Default: 3.
    pub fn level(mut self, level: u8) -> Self {
        self.writer = self.writer.level(level);
        self
    }

    /// The storage backend.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    fn storage_err(key: &str) -> impl FnOnce(crate::error::StorageError) -> Error + '_ {
        move |source| Error::Storage {
            key: key.to_owned(),
            source,
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some((bytes, _)) = self.storage.get(key).map_err(Self::storage_err(key))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::CorruptRecord {
                key: key.to_owned(),
                source,
            })
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Written> {
        self.storage.put_if_absent(key, bytes).map_err(Self::storage_err(key))
    }

    fn record_event(&self, model: &str, kind: EventKind) -> Result<Event> {
        let event = Event {
            at: OffsetDateTime::now_utc(),
            kind,
        };
        let json = serde_json::to_vec(&event).map_err(|source| Error::CorruptRecord {
            key: format!("{model}/events"),
            source,
        })?;
        loop {
            let key = format!(
                "{model}/events/{:020}-{}.json",
                event.at.unix_timestamp_nanos(),
                unique_suffix()
            );
            if self.put_new(&key, &json)? == Written::Done {
                return Ok(event);
            }
        }
    }

    /// Every version number claimed under a model, committed or not.
    fn claimed_versions(&self, model: &str) -> Result<Vec<Version>> {
        let key = versions_key(model);
        let names = self.storage.list_children(&key).map_err(Self::storage_err(&key))?;
        Ok(names.iter().filter_map(|n| Version::parse(n).ok()).collect())
    }

    /// Publishes `model` with `card` under the card's name, at the version
    /// `spec` asks for (the card's version is set to it). The bundle is
    /// written with create-if-absent, then its card, then the version record
    /// that makes it visible; a concurrent publisher never overwrites it.
    ///
    /// # Errors
    ///
    /// [`Error::VersionExists`] for an exact version that exists,
    /// [`Error::InvalidName`], [`Error::InvalidBundle`], storage errors.
    pub fn publish_model<M: Model>(&self, model: &M, card: &ModelCard, spec: VersionSpec) -> Result<VersionInfo> {
        validate_name("model", &card.name)?;
        let name = card.name.clone();
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
            match self.claim_and_commit(&summary, stored_card, &bytes)? {
                Some(info) => return Ok(info),
                None if matches!(spec, VersionSpec::Exact(_)) => {
                    return Err(Error::VersionExists { model: name, version })
                }
                None => continue,
            }
        }
        Err(Error::TooManyConflicts {
            model: name,
            attempts: MAX_PUBLISH_ATTEMPTS,
        })
    }

    /// Publishes an existing bundle under its card's name and version.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBundle`] if the bytes do not verify,
    /// [`Error::VersionExists`] if the version exists, storage errors.
    pub fn publish_bundle(&self, bytes: &[u8]) -> Result<VersionInfo> {
        let (summary, card) = self.inspect(bytes)?;
        validate_name("model", &card.name)?;
        match self.claim_and_commit(&summary, card, bytes)? {
            Some(info) => Ok(info),
            None => Err(Error::VersionExists {
                model: summary.name,
                version: summary.version,
            }),
        }
    }

    /// Verifies bundle bytes (every hash, once) and reads their card.
    fn inspect(&self, bytes: &[u8]) -> Result<(persistence_core::Summary, ModelCard)> {
        let invalid = |source| Error::InvalidBundle { source };
        let summary = self.reader.verify_bytes(bytes).map_err(invalid)?;
        let card = self.reader.read_card_bytes(bytes).map_err(invalid)?;
        Ok((summary, card))
    }

    /// Claims the bundle's version (create-if-absent on the bundle), then
    /// writes the card and the version record. `None` if the version was taken.
    fn claim_and_commit(
        &self,
        summary: &persistence_core::Summary,
        card: ModelCard,
        bytes: &[u8],
    ) -> Result<Option<VersionInfo>> {
        let (model, version) = (summary.name.as_str(), &summary.version);
        if self.put_new(&bundle_key(model, version), bytes)? == Written::PreconditionFailed {
            return Ok(None);
        }
        let card_json = card.to_json().map_err(|source| Error::InvalidBundle { source })?;
        // A leftover card.json of a crashed prune is replaced by the truth.
        let key = card_key(model, version);
        if self.put_new(&key, card_json.as_bytes())? == Written::PreconditionFailed {
            self.storage.delete(&key).map_err(Self::storage_err(&key))?;
            self.put_new(&key, card_json.as_bytes())?;
        }
        let info = VersionInfo {
            model: model.to_owned(),
            version: version.clone(),
            content_id: summary.content_id,
            kind: card.kind,
            published_at: OffsetDateTime::now_utc(),
            metrics: card.metrics,
            tags: card.tags,
            notes: card.notes,
            bundle_len: bytes.len() as u64,
        };
        let record = serde_json::to_vec_pretty(&info).map_err(|source| Error::CorruptRecord {
            key: record_key(model, version),
            source,
        })?;
        self.put_new(&record_key(model, version), &record)?;
        self.record_event(
            model,
            EventKind::Published {
                version: version.clone(),
                content_id: summary.content_id,
            },
        )?;
        tracing::info!(model, %version, content_id = %summary.content_id, "published");
        Ok(Some(info))
    }

    /// Stores a JSON attachment with a version (such as its gate report),
    /// as `<name>.json` beside the bundle. Attachments are immutable too.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], [`Error::InvalidName`], storage errors.
    pub fn attach(&self, model: &str, version: &Version, name: &str, value: &serde_json::Value) -> Result<()> {
        validate_name("attachment", name)?;
        self.version(model, version)?;
        let key = attachment_key(model, version, name);
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::CorruptRecord {
            key: key.clone(),
            source,
        })?;
        self.put_new(&key, &bytes)?;
        Ok(())
    }

    /// An attachment stored with [`attach`](Self::attach), if any.
    ///
    /// # Errors
    ///
    /// Storage errors, [`Error::CorruptRecord`].
    pub fn attachment(&self, model: &str, version: &Version, name: &str) -> Result<Option<serde_json::Value>> {
        validate_name("attachment", name)?;
        self.get_json(&attachment_key(model, version, name))
    }

    /// The names of all models, sorted.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn models(&self) -> Result<Vec<String>> {
        let names = self.storage.list_children("").map_err(Self::storage_err(""))?;
        Ok(names
            .into_iter()
            .filter(|n| validate_name("model", n).is_ok())
            .collect())
    }

    /// Every committed version of a model, in semver order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn versions(&self, model: &str) -> Result<Vec<VersionInfo>> {
        validate_name("model", model)?;
        let mut versions = self.claimed_versions(model)?;
        versions.sort();
        let mut infos = Vec::with_capacity(versions.len());
        for v in versions {
            if let Some(info) = self.get_json::<VersionInfo>(&record_key(model, &v))? {
                infos.push(info);
            }
        }
        Ok(infos)
    }

    /// One committed version's record.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], storage errors.
    pub fn version(&self, model: &str, version: &Version) -> Result<VersionInfo> {
        validate_name("model", model)?;
        self.get_json(&record_key(model, version))?
            .ok_or_else(|| Error::VersionNotFound {
                model: model.to_owned(),
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
            Target::Latest => self
                .versions(model)?
                .pop()
                .ok_or_else(|| Error::ModelNotFound { model: model.clone() }),
            Target::Version(v) => self.version(model, v),
            Target::Alias(a) => {
                let target = self.alias(model, a)?.ok_or_else(|| Error::AliasNotFound {
                    model: model.clone(),
                    alias: a.clone(),
                })?;
                self.version(model, &target.version)
            }
        }
    }

    /// A version's card (from its `card.json`, without the model).
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], storage errors.
    pub fn card(&self, model: &str, version: &Version) -> Result<ModelCard> {
        self.version(model, version)?;
        let key = card_key(model, version);
        self.get_json(&key)?.ok_or_else(|| Error::VersionNotFound {
            model: model.to_owned(),
            version: version.clone(),
        })
    }

    /// A version's bundle bytes, verified against its recorded content id.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], [`Error::Bundle`] if the bytes are damaged.
    pub fn bundle(&self, model: &str, version: &Version) -> Result<Vec<u8>> {
        let (bytes, info) = self.fetch(model, version)?;
        let summary = self.reader.verify_bytes(&bytes).map_err(|source| Error::Bundle {
            model: model.to_owned(),
            version: version.clone(),
            source,
        })?;
        check_content_id(&info, summary.content_id)?;
        Ok(bytes)
    }

    /// The stored bytes of a committed version, unverified.
    fn fetch(&self, model: &str, version: &Version) -> Result<(Vec<u8>, VersionInfo)> {
        let info = self.version(model, version)?;
        let key = bundle_key(model, version);
        let (bytes, _) = self
            .storage
            .get(&key)
            .map_err(Self::storage_err(&key))?
            .ok_or_else(|| Error::VersionNotFound {
                model: model.to_owned(),
                version: version.clone(),
            })?;
        Ok((bytes, info))
    }

    /// Loads the version a reference resolves to as a model of type `M`,
    /// with every check of persistence-core (hashing the bundle once), and
    /// checks that it is the bundle recorded at publication.
    ///
    /// # Errors
    ///
    /// Those of [`resolve`](Self::resolve) and [`Error::Bundle`].
    pub fn load<M: Model>(&self, reference: &ModelRef) -> Result<Loaded<M>> {
        let resolved = self.resolve(reference)?;
        let (bytes, info) = self.fetch(&resolved.model, &resolved.version)?;
        let loaded = self.reader.load_bytes::<M>(&bytes).map_err(|source| Error::Bundle {
            model: info.model.clone(),
            version: info.version.clone(),
            source,
        })?;
        check_content_id(&info, loaded.content_id())?;
        Ok(loaded)
    }

    /// Compares two versions on one metric.
    ///
    /// # Errors
    ///
    /// [`Error::MetricMissing`] if either lacks it, [`Error::VersionNotFound`].
    pub fn compare(&self, model: &str, a: &Version, b: &Version, metric: &str) -> Result<Comparison> {
        let (ia, ib) = (self.version(model, a)?, self.version(model, b)?);
        let score = |info: &VersionInfo| {
            info.metrics.get(metric).copied().ok_or_else(|| Error::MetricMissing {
                model: model.to_owned(),
                version: info.version.clone(),
                metric: metric.to_owned(),
            })
        };
        Ok(comparison(metric, &ia.version, &ib.version, score(&ia)?, score(&ib)?))
    }

    /// Compares two versions on every metric they share, by metric name.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], storage errors.
    pub fn compare_all(&self, model: &str, a: &Version, b: &Version) -> Result<Vec<Comparison>> {
        let (ia, ib) = (self.version(model, a)?, self.version(model, b)?);
        Ok(ia
            .metrics
            .iter()
            .filter_map(|(m, &sa)| ib.metrics.get(m).map(|&sb| comparison(m, a, b, sa, sb)))
            .collect())
    }

    /// The best version by a metric; versions without the metric (or with a
    /// NaN) are skipped, not counted as 0. Ties go to the higher version.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn best(&self, model: &str, metric: &str, direction: Direction) -> Result<Option<VersionInfo>> {
        Ok(best_of(self.versions(model)?, metric, direction))
    }

    /// Where an alias points, if it exists.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors.
    pub fn alias(&self, model: &str, alias: &str) -> Result<Option<AliasTarget>> {
        validate_name("model", model)?;
        validate_name("alias", alias)?;
        Ok(self
            .get_json::<AliasRecord>(&alias_key(model, alias))?
            .map(|r| AliasTarget {
                version: r.version,
                content_id: r.content_id,
                set_at: r.set_at,
            }))
    }

    /// The aliases of a model and their targets.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn aliases(&self, model: &str) -> Result<BTreeMap<String, AliasTarget>> {
        validate_name("model", model)?;
        let key = format!("{model}/aliases");
        let names = self.storage.list_children(&key).map_err(Self::storage_err(&key))?;
        let mut out = BTreeMap::new();
        for name in names.into_iter().filter(|n| validate_name("alias", n).is_ok()) {
            if let Some(t) = self.alias(model, &name)? {
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
    pub fn set_alias(&self, model: &str, alias: &str, version: &Version) -> Result<AliasTarget> {
        self.move_alias(model, alias, version, None, false)
    }

    /// Points `alias` at `version` only if it still points at `expected`
    /// (`None`: only if the alias does not exist): a compare-and-swap.
    ///
    /// # Errors
    ///
    /// [`Error::AliasConflict`] if it moved, and those of [`set_alias`](Self::set_alias).
    pub fn set_alias_if(
        &self,
        model: &str,
        alias: &str,
        version: &Version,
        expected: Option<&Version>,
    ) -> Result<AliasTarget> {
        self.move_alias(model, alias, version, Some(expected), false)
    }

    fn move_alias(
        &self,
        model: &str,
        alias: &str,
        version: &Version,
        expected: Option<Option<&Version>>,
        rollback: bool,
    ) -> Result<AliasTarget> {
        validate_name("alias", alias)?;
        let info = self.version(model, version)?;
        self.bundle(model, version)?;
        let key = alias_key(model, alias);
        loop {
            let current = self.storage.get(&key).map_err(Self::storage_err(&key))?;
            let (current_record, current_version) = match current {
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
            let from = current_record.as_ref().map(|r| r.version.clone());
            if let Some(expected) = expected {
                if from.as_ref() != expected {
                    return Err(Error::AliasConflict {
                        model: model.to_owned(),
                        alias: alias.to_owned(),
                        expected: expected.cloned(),
                        found: from,
                    });
                }
            }
            let record = AliasRecord {
                version: version.clone(),
                content_id: info.content_id,
                set_at: OffsetDateTime::now_utc(),
            };
            let bytes = serde_json::to_vec_pretty(&record).map_err(|source| Error::CorruptRecord {
                key: key.clone(),
                source,
            })?;
            match self
                .storage
                .put_if_version(&key, &bytes, current_version.as_ref())
                .map_err(Self::storage_err(&key))?
            {
                Written::Done => {
                    let kind = match (rollback, from) {
                        (true, Some(from)) => EventKind::RolledBack {
                            alias: alias.to_owned(),
                            from,
                            to: version.clone(),
                        },
                        (_, from) => EventKind::AliasMoved {
                            alias: alias.to_owned(),
                            from,
                            to: version.clone(),
                        },
                    };
                    self.record_event(model, kind)?;
                    return Ok(AliasTarget {
                        version: record.version,
                        content_id: record.content_id,
                        set_at: record.set_at,
                    });
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
    pub fn rollback(&self, model: &str, alias: &str) -> Result<AliasTarget> {
        let current = self.alias(model, alias)?.ok_or_else(|| Error::AliasNotFound {
            model: model.to_owned(),
            alias: alias.to_owned(),
        })?;
        let mut undo: Vec<Option<Version>> = Vec::new();
        for event in self.history(model)? {
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
                model: model.to_owned(),
                alias: alias.to_owned(),
            });
        };
        self.move_alias(model, alias, &target, Some(Some(&current.version)), true)
    }

    /// The version `alias` pointed at at time `at`, from the history.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn alias_at(&self, model: &str, alias: &str, at: OffsetDateTime) -> Result<Option<Version>> {
        validate_name("alias", alias)?;
        let mut target = None;
        for event in self.history(model)?.into_iter().take_while(|e| e.at <= at) {
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

    /// Every event of a model, oldest first.
    ///
    /// # Errors
    ///
    /// Storage errors, [`Error::CorruptRecord`].
    pub fn history(&self, model: &str) -> Result<Vec<Event>> {
        validate_name("model", model)?;
        let key = format!("{model}/events");
        let names = self.storage.list_children(&key).map_err(Self::storage_err(&key))?;
        let mut events = Vec::with_capacity(names.len());
        for name in names {
            if let Some(event) = self.get_json::<Event>(&format!("{key}/{name}"))? {
                events.push(event);
            }
        }
        events.sort_by_key(|e| e.at);
        Ok(events)
    }

    /// Removes all versions but the last `keep_last` and those an alias
    /// points at. Returns the removed versions.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn prune(&self, model: &str, keep_last: usize) -> Result<Vec<Version>> {
        let versions = self.versions(model)?;
        let pinned: Vec<Version> = self.aliases(model)?.into_values().map(|t| t.version).collect();
        let cut = versions.len().saturating_sub(keep_last);
        let mut pruned = Vec::new();
        for info in versions.into_iter().take(cut) {
            if pinned.contains(&info.version) {
                continue;
            }
            let v = &info.version;
            // The record first: the version stops being visible before its bytes go.
            for key in [record_key(model, v), card_key(model, v), bundle_key(model, v)] {
                self.storage.delete(&key).map_err(Self::storage_err(&key))?;
            }
            self.record_event(model, EventKind::Pruned { version: v.clone() })?;
            pruned.push(info.version);
        }
        Ok(pruned)
    }

    /// Checks every committed version's bundle hashes (of one model, or of
    /// all models) and reports the damaged ones.
    ///
    /// # Errors
    ///
    /// Storage errors while listing.
    pub fn verify(&self, model: Option<&str>) -> Result<VerifyReport> {
        let models = match model {
            Some(m) => vec![m.to_owned()],
            None => self.models()?,
        };
        let mut report = VerifyReport::default();
        for m in models {
            for info in self.versions(&m)? {
                report.checked += 1;
                if let Err(error) = self.bundle(&m, &info.version) {
                    report.damaged.push(Damaged {
                        model: m.clone(),
                        version: info.version,
                        error,
                    });
                }
            }
        }
        Ok(report)
    }
}

/// The bundle must be the one recorded when the version was published.
fn check_content_id(info: &VersionInfo, found: ContentId) -> Result<()> {
    if found == info.content_id {
        return Ok(());
    }
    Err(Error::Bundle {
        model: info.model.clone(),
        version: info.version.clone(),
        source: persistence_core::Error::ChecksumMismatch {
            section: persistence_core::Section::Header,
            expected: info.content_id.to_string(),
            found: found.to_string(),
        },
    })
}

fn comparison(metric: &str, a: &Version, b: &Version, a_score: f64, b_score: f64) -> Comparison {
    let absolute = b_score - a_score;
    Comparison {
        metric: metric.to_owned(),
        a: a.clone(),
        b: b.clone(),
        a_score,
        b_score,
        absolute,
        relative: (a_score != 0.0).then(|| absolute / a_score.abs()),
    }
}

/// The best of `versions` by `metric`, skipping those without it.
pub(crate) fn best_of(versions: Vec<VersionInfo>, metric: &str, direction: Direction) -> Option<VersionInfo> {
    versions
        .into_iter()
        .filter_map(|v| v.metrics.get(metric).copied().filter(|s| !s.is_nan()).map(|s| (s, v)))
        .fold(None::<(f64, VersionInfo)>, |best, (score, v)| match best {
            Some((b, _)) if better(b, score, direction) => best,
            _ => Some((score, v)),
        })
        .map(|(_, v)| v)
}

/// Whether `incumbent` strictly beats `challenger`.
fn better(incumbent: f64, challenger: f64, direction: Direction) -> bool {
    match direction {
        Direction::HigherIsBetter => incumbent > challenger,
        Direction::LowerIsBetter => incumbent < challenger,
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

    #[test]
    fn references_parse() {
        let r: ModelRef = "fraud@production".parse().expect("parses");
        assert_eq!(r.target, Target::Alias("production".into()));
        let r: ModelRef = "fraud@1.2.0".parse().expect("parses");
        assert_eq!(r.target, Target::Version(Version::new(1, 2, 0)));
        let r: ModelRef = "fraud".parse().expect("parses");
        assert_eq!(r.target, Target::Latest);
        assert!("../x@prod".parse::<ModelRef>().is_err());
        assert!("fraud@../../etc".parse::<ModelRef>().is_err());
    }
}
