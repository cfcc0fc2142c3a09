//! The registry: a model's versions, aliases and history over any [`Storage`].
//!
//! One concept per file: [`layout`] (storage keys), [`publish`] (versions and
//! attachments), [`read`] (listing, resolving, loading), [`alias`] (aliases
//! and compare-and-swap), [`history`] (events and alias-at-time),
//! [`compare`] (comparison and best) and [`maintain`] (prune and verify).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use model_persistence_core::signing::{PublicKey, SignatureError};
use model_persistence_core::{BundleReader, BundleWriter, Kinds};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::cache::BundleCache;
use crate::error::{Error, Result, StorageError};
use crate::event::{Event, EventKind};
use crate::name::ModelName;
use crate::owner::Owner;
use crate::storage::local::LocalDir;
use crate::storage::{ObjectVersion, Storage, Written};

mod alias;
mod compare;
mod history;
mod index;
mod layout;
mod maintain;
mod publish;
mod read;
mod records;
mod watch;

pub use alias::AliasTarget;
pub use compare::Comparison;
pub use layout::{MAX_ALIAS_BYTES, MAX_INDEX_BYTES, MAX_MARKER_BYTES, MAX_OBJECT_BYTES};
pub use maintain::{Damaged, RepairReport, VerifyReport};
pub use publish::{next_version, Bump, VersionSpec};
pub use read::{DamagedVersion, Listing};
pub use records::{Checked, VersionInfo};
pub use watch::{event_id, AliasFollower, Watch, WatchCursor, WATCH_LATENESS};

/// A model registry over any [`Storage`].
///
/// Open an existing registry with [`open`](Self::open) (a directory) or
/// [`open_url`](Self::open_url) (`s3://`, `file://`, `memory://`); create
/// one with [`create`](Self::create) or [`create_url`](Self::create_url). A
/// mistyped path is refused instead of silently becoming a new registry.
///
/// ```
/// use model_persistence_versioning::Registry;
///
/// let dir = tempfile::tempdir().expect("temp dir");
/// assert!(Registry::open(dir.path()).is_err());          // not a registry yet
/// let registry = Registry::create(dir.path())?;
/// assert!(registry.models()?.is_empty());
/// let again = Registry::open(dir.path())?;               // now it is
/// assert!(again.models()?.is_empty());
/// # Ok::<(), model_persistence_versioning::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    writer: BundleWriter,
    reader: BundleReader,
    stale_after: Duration,
    kinds: Kinds,
    cache: Option<Arc<BundleCache>>,
    trusted: Option<Arc<[PublicKey]>>,
    actor: Arc<str>,
}

/// Who a registry's changes are recorded as by default: the environment's
/// `MODEL_PERSISTENCE_ACTOR`, else `user@host`.
fn default_actor() -> Arc<str> {
    if let Ok(actor) = std::env::var("MODEL_PERSISTENCE_ACTOR") {
        if !actor.trim().is_empty() {
            return actor.trim().into();
        }
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("{user}@{}", crate::owner::host_name()).into()
}

/// How long a marker of a writer on another machine (a claim, a pin, a
/// retiring mark) is honoured before it is taken as abandoned.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

impl Registry {
    /// Opens the registry in the directory `path`.
    ///
    /// # Errors
    ///
    /// [`Error::RegistryNotFound`] if `path` holds no registry (see
    /// [`create`](Self::create)), [`Error::InvalidLocation`] if it cannot be read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let location = path.display().to_string();
        if !path.is_dir() {
            return Err(Error::RegistryNotFound { location });
        }
        let storage = LocalDir::open(path).map_err(|e| invalid_location(&location, e.to_string()))?;
        Self::with_storage(Arc::new(storage)).require_marker(&location)
    }

    /// Creates a registry in the directory `path` (and the directory if
    /// needed), or opens the one that is there: creating is idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`] if the directory cannot be created,
    /// storage errors writing the marker.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let storage = LocalDir::create(path).map_err(|e| invalid_location(&location, e.to_string()))?;
        Self::with_storage(Arc::new(storage)).write_marker()
    }

    /// Opens the registry at a URL: `file:///path`, or with the
    /// `object-store` feature `s3://bucket/prefix`, `gs://…`, `az://…` or
    /// `memory://` (a memory store lives only in this process, so opening
    /// one creates it), configured from the environment.
    ///
    /// # Errors
    ///
    /// [`Error::RegistryNotFound`] if the location holds no registry,
    /// [`Error::InvalidLocation`] for an unusable URL.
    pub fn open_url(url: &str) -> Result<Self> {
        Self::open_url_opts(url, std::iter::empty::<(&str, &str)>())
    }

    /// [`open_url`](Self::open_url) with store options that override the
    /// environment, as `object_store::parse_url_opts` takes them: an S3
    /// endpoint, a region, a GCS service account, given on a command line
    /// or in a configuration rather than in the environment
    /// (`[("endpoint", "http://127.0.0.1:8333"), ("allow_http", "true")]`).
    ///
    /// # Errors
    ///
    /// As [`open_url`](Self::open_url); an option the store does not know,
    /// or any option for a `file://` URL, is [`Error::InvalidLocation`].
    pub fn open_url_opts<K: Into<String>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let options = collect_options(options);
        if let Some(path) = url.strip_prefix("file://") {
            no_options(url, &options)?;
            return Self::open(path);
        }
        let storage = object_url(url, &options)?;
        if url.starts_with("memory:") {
            return Self::with_storage(storage).write_marker();
        }
        Self::with_storage(storage).require_marker(url)
    }

    /// Creates (or opens, if it exists) the registry at a URL, as
    /// [`open_url`](Self::open_url) reads them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`] for an unusable URL, storage errors.
    pub fn create_url(url: &str) -> Result<Self> {
        Self::create_url_opts(url, std::iter::empty::<(&str, &str)>())
    }

    /// [`create_url`](Self::create_url) with store options, as
    /// [`open_url_opts`](Self::open_url_opts) takes them.
    ///
    /// # Errors
    ///
    /// As [`open_url_opts`](Self::open_url_opts).
    pub fn create_url_opts<K: Into<String>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let options = collect_options(options);
        if let Some(path) = url.strip_prefix("file://") {
            no_options(url, &options)?;
            return Self::create(path);
        }
        Self::with_storage(object_url(url, &options)?).write_marker()
    }

    /// A registry over `storage`, as it is: no marker is checked or written.
    pub fn with_storage(storage: Arc<dyn Storage>) -> Self {
        Registry {
            storage,
            writer: BundleWriter::default().without_card_json(),
            reader: BundleReader::default(),
            stale_after: DEFAULT_STALE_AFTER,
            kinds: model_persistence_models::kinds(),
            cache: None,
            trusted: None,
            actor: default_actor(),
        }
    }

    /// Who this handle's alias moves, rollbacks and prunings are recorded
    /// as in the history (`Event::by`). Default: the environment's
    /// `MODEL_PERSISTENCE_ACTOR`, else `user@host`.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into().into();
        self
    }

    /// The model kinds this registry's caller knows: publishing and
    /// promoting a version of a known kind runs every load check (kind,
    /// feature count, structure, probe), not only the hashes, and
    /// [`load_any`](Self::load_any) loads them. Default: every built-in kind
    /// of this build ([`model_persistence_models::kinds`]).
    pub fn kinds(mut self, kinds: Kinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// How long the marker of a writer on another machine (a publisher's
    /// claim, a promoter's pin, a pruner's retiring mark) is honoured before
    /// the registry takes it as abandoned and recovers. A writer on this
    /// machine whose process is gone is recognised at once. Default: 15
    /// minutes ([`DEFAULT_STALE_AFTER`]).
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    /// Loads through a per-machine [`BundleCache`]: a version's bundle is
    /// downloaded once per machine, then read from the cache (and verified)
    /// by every process that loads it.
    pub fn cache(mut self, cache: BundleCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Requires every version this registry handle publishes, promotes or
    /// loads to be signed by one of `keys` (a detached model-signing
    /// signature, stored beside the bundle): an unsigned or wrongly signed
    /// version is refused with [`Error::Signature`]. Default: no policy
    /// (signatures are stored when given, not required).
    pub fn trust(mut self, keys: Vec<PublicKey>) -> Self {
        self.trusted = Some(keys.into());
        self
    }

    /// Checks a version's signature against the trust policy, if any.
    fn check_signature(&self, info: &VersionInfo, bundle: &[u8]) -> Result<()> {
        let Some(keys) = &self.trusted else {
            return Ok(());
        };
        let refused = |source| Error::Signature {
            model: info.model.to_string(),
            version: info.version.clone(),
            source,
        };
        let key = layout::signature(&info.model, &info.version);
        let (sig, _) = self
            .get_object(&key)?
            .ok_or_else(|| refused(SignatureError::Unsigned))?;
        model_persistence_core::signing::verify(bundle, &sig, keys).map_err(refused)?;
        Ok(())
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

    fn require_marker(self, location: &str) -> Result<Self> {
        let key = layout::MARKER;
        match self.get_object(key)? {
            Some(_) => Ok(self),
            None => Err(Error::RegistryNotFound {
                location: location.to_owned(),
            }),
        }
    }

    fn write_marker(self) -> Result<Self> {
        let key = layout::MARKER;
        let marker = serde_json::json!({ "registry": "model-persistence", "layout": layout::LAYOUT_VERSION });
        self.storage
            .put_if_absent(key, marker.to_string().as_bytes())
            .map_err(storage_err(key))?;
        Ok(self)
    }

    /// The object at `key`, refused over the cap for its kind
    /// ([`layout::cap`]) before it is read.
    fn get_object(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectVersion)>> {
        self.storage
            .get_at_most(key, layout::cap(key))
            .map_err(storage_err(key))
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some((bytes, _)) = self.get_object(key)? else {
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
        self.storage.put_if_absent(key, bytes).map_err(storage_err(key))
    }

    /// Writes `bytes` at `key` whatever is there; only for objects this
    /// writer owns through a claim (the leftovers of a dead publisher).
    fn put_owned(&self, key: &str, bytes: &[u8]) -> Result<()> {
        if self.put_new(key, bytes)? == Written::PreconditionFailed {
            self.delete(key)?;
            if self.put_new(key, bytes)? == Written::PreconditionFailed {
                return Err(Error::Storage {
                    key: key.to_owned(),
                    source: StorageError::Io(std::io::Error::other("another writer wrote an object this writer owns")),
                });
            }
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.storage.delete(key).map_err(storage_err(key))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get_object(key)?.is_some())
    }

    /// A marker object (claim, pin, retiring mark): its owner and version.
    /// An unreadable marker counts as abandoned by an unknown owner.
    fn marker(&self, key: &str) -> Result<Option<(Option<Owner>, ObjectVersion)>> {
        Ok(self
            .get_object(key)?
            .map(|(bytes, v)| (serde_json::from_slice(&bytes).ok(), v)))
    }

    fn is_stale(&self, owner: Option<&Owner>) -> bool {
        owner.is_none_or(|o| o.is_stale(self.stale_after))
    }

    fn new_owner(&self) -> Owner {
        Owner::me(unique_suffix())
    }

    fn record_event(&self, model: &ModelName, kind: EventKind) -> Result<Event> {
        let by = match kind {
            EventKind::Published { .. } => None,
            _ => Some(self.actor.to_string()),
        };
        let event = Event {
            at: OffsetDateTime::now_utc(),
            kind,
            by,
        };
        let json = to_json(&layout::events(model), &event)?;
        loop {
            let key = layout::event(model, &event, &unique_suffix());
            if self.put_new(&key, &json)? == Written::Done {
                return Ok(event);
            }
        }
    }
}

fn invalid_location(location: &str, reason: String) -> Error {
    Error::InvalidLocation {
        location: location.to_owned(),
        reason,
    }
}

fn collect_options<K: Into<String>, V: Into<String>>(
    options: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    options.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

/// A directory takes no store options: refuse them rather than ignore them.
fn no_options(url: &str, options: &[(String, String)]) -> Result<()> {
    match options.first() {
        Some((key, _)) => Err(invalid_location(
            url,
            format!("option {key:?}: a directory takes no options"),
        )),
        None => Ok(()),
    }
}

#[cfg(feature = "object-store")]
fn object_url(url: &str, options: &[(String, String)]) -> Result<Arc<dyn Storage>> {
    match crate::storage::object::open_url_opts(url, options) {
        Ok(storage) => Ok(Arc::new(storage)),
        Err(reason) => Err(invalid_location(url, reason)),
    }
}

#[cfg(not(feature = "object-store"))]
fn object_url(url: &str, _: &[(String, String)]) -> Result<Arc<dyn Storage>> {
    Err(invalid_location(
        url,
        "only file:// without the `object-store` feature".into(),
    ))
}

fn storage_err(key: &str) -> impl FnOnce(StorageError) -> Error + '_ {
    move |source| Error::Storage {
        key: key.to_owned(),
        source,
    }
}

fn to_json<T: serde::Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|source| Error::CorruptRecord {
        key: key.to_owned(),
        source,
    })
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
