//! The registry from async code (feature `async`).
//!
//! [`AsyncRegistry`] runs each operation on tokio's blocking pool, so an
//! async service never blocks a worker on storage I/O, and the object
//! store's runtime is never nested inside the caller's. Every operation of
//! the blocking [`Registry`] is available through [`run`](AsyncRegistry::run);
//! the common ones have their own method.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use model_persistence_core::{AnyModel, Direction, Loadable, Loaded};
use semver::Version;
use time::OffsetDateTime;

use crate::error::Result;
use crate::event::Event;
use crate::name::{AliasName, IntoName, ModelName};
use crate::reference::ModelRef;
use crate::registry::{AliasFollower, AliasTarget, Listing, Registry, VersionInfo, Watch, WatchCursor};

/// A [`Registry`] for async code: the same registry, each call on tokio's
/// blocking pool.
///
/// ```
/// use model_persistence_versioning::{AsyncRegistry, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> model_persistence_versioning::Result<()> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let registry = AsyncRegistry::new(Registry::create(dir.path())?);
/// assert!(registry.models().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncRegistry {
    inner: Registry,
}

impl From<Registry> for AsyncRegistry {
    fn from(inner: Registry) -> Self {
        AsyncRegistry { inner }
    }
}

impl AsyncRegistry {
    /// Wraps a registry (configured with its builder methods first).
    pub fn new(inner: Registry) -> Self {
        AsyncRegistry { inner }
    }

    /// Opens the registry at a path or URL (see [`Registry::open_url`]).
    ///
    /// # Errors
    ///
    /// Those of [`Registry::open_url`].
    pub async fn open_url(url: &str) -> Result<Self> {
        let url = url.to_owned();
        let inner = blocking(move || {
            if url.contains("://") {
                Registry::open_url(&url)
            } else {
                Registry::open(&url)
            }
        })
        .await?;
        Ok(AsyncRegistry { inner })
    }

    /// The blocking registry underneath.
    pub fn blocking(&self) -> &Registry {
        &self.inner
    }

    /// Runs any blocking operation on the blocking pool.
    ///
    /// # Errors
    ///
    /// The operation's.
    pub async fn run<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Registry) -> Result<T> + Send + 'static,
    {
        let registry = self.inner.clone();
        blocking(move || op(&registry)).await
    }

    /// See [`Registry::models`].
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub async fn models(&self) -> Result<Vec<ModelName>> {
        self.run(Registry::models).await
    }

    /// See [`Registry::versions`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::versions`].
    pub async fn versions(&self, model: impl IntoName<ModelName>) -> Result<Vec<VersionInfo>> {
        let model = model.into_name()?;
        self.run(move |r| r.versions(&model)).await
    }

    /// See [`Registry::listing`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::listing`].
    pub async fn listing(&self, model: impl IntoName<ModelName>) -> Result<Listing> {
        let model = model.into_name()?;
        self.run(move |r| r.listing(&model)).await
    }

    /// See [`Registry::resolve`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::resolve`].
    pub async fn resolve(&self, reference: &ModelRef) -> Result<VersionInfo> {
        let reference = reference.clone();
        self.run(move |r| r.resolve(&reference)).await
    }

    /// See [`Registry::alias`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::alias`].
    pub async fn alias(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
    ) -> Result<Option<AliasTarget>> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        self.run(move |r| r.alias(&model, &alias)).await
    }

    /// See [`Registry::set_alias`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::set_alias`].
    pub async fn set_alias(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
        version: &Version,
    ) -> Result<AliasTarget> {
        let (model, alias, version) = (model.into_name()?, alias.into_name()?, version.clone());
        self.run(move |r| r.set_alias(&model, &alias, &version)).await
    }

    /// See [`Registry::publish_bundle`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::publish_bundle`].
    pub async fn publish_bundle(&self, bytes: Vec<u8>) -> Result<VersionInfo> {
        self.run(move |r| r.publish_bundle(&bytes)).await
    }

    /// See [`Registry::load_as`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::load_as`].
    pub async fn load_as<S: Loadable>(&self, reference: &ModelRef) -> Result<Loaded<S>> {
        let reference = reference.clone();
        self.run(move |r| r.load_as::<S>(&reference)).await
    }

    /// See [`Registry::load_any`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::load_any`].
    pub async fn load_any(&self, reference: &ModelRef) -> Result<Loaded<AnyModel>> {
        self.load_as::<AnyModel>(reference).await
    }

    /// See [`Registry::history`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::history`].
    pub async fn history(&self, model: impl IntoName<ModelName>) -> Result<Vec<Event>> {
        let model = model.into_name()?;
        self.run(move |r| r.history(&model)).await
    }

    /// See [`Registry::alias_at`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::alias_at`].
    pub async fn alias_at(
        &self,
        model: impl IntoName<ModelName>,
        alias: impl IntoName<AliasName>,
        at: OffsetDateTime,
    ) -> Result<Option<Version>> {
        let (model, alias) = (model.into_name()?, alias.into_name()?);
        self.run(move |r| r.alias_at(&model, &alias, at)).await
    }

    /// See [`Registry::best`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::best`].
    pub async fn best(
        &self,
        model: impl IntoName<ModelName>,
        metric: &str,
        direction: Direction,
    ) -> Result<Option<VersionInfo>> {
        let (model, metric) = (model.into_name()?, metric.to_owned());
        self.run(move |r| r.best(&model, &metric, direction)).await
    }

    /// See [`Registry::prune`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::prune`].
    pub async fn prune(&self, model: impl IntoName<ModelName>, keep_last: usize) -> Result<Vec<Version>> {
        let model = model.into_name()?;
        self.run(move |r| r.prune(&model, keep_last)).await
    }

    /// Follows an alias; see [`AsyncFollower::check`].
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidName`].
    pub fn follow(&self, model: impl IntoName<ModelName>, alias: impl IntoName<AliasName>) -> Result<AsyncFollower> {
        Ok(AsyncFollower {
            inner: Arc::new(Mutex::new(self.inner.follow(model, alias)?)),
        })
    }

    /// Watches a model from now on; see [`AsyncWatch::next_events`].
    ///
    /// # Errors
    ///
    /// Those of [`Registry::watch`].
    pub async fn watch(&self, model: impl IntoName<ModelName>) -> Result<AsyncWatch> {
        let model = model.into_name()?;
        let watch = self.run(move |r| r.watch(&model)).await?;
        Ok(AsyncWatch {
            inner: Arc::new(Mutex::new(watch)),
            interval: Duration::from_secs(1),
        })
    }

    /// Watches a model from a saved cursor.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidName`].
    pub fn watch_from(&self, model: impl IntoName<ModelName>, cursor: WatchCursor) -> Result<AsyncWatch> {
        Ok(AsyncWatch {
            inner: Arc::new(Mutex::new(self.inner.watch_from(model, cursor)?)),
            interval: Duration::from_secs(1),
        })
    }
}

/// An [`AliasFollower`] for async code.
#[derive(Debug)]
pub struct AsyncFollower {
    inner: Arc<Mutex<AliasFollower>>,
}

impl AsyncFollower {
    /// See [`AliasFollower::check`]: one conditional request.
    ///
    /// # Errors
    ///
    /// Those of [`AliasFollower::check`].
    pub async fn check(&mut self) -> Result<(Option<AliasTarget>, bool)> {
        let follower = Arc::clone(&self.inner);
        blocking(move || lock(&follower).check()).await
    }
}

/// A [`Watch`] for async code.
#[derive(Debug)]
pub struct AsyncWatch {
    inner: Arc<Mutex<Watch>>,
    interval: Duration,
}

impl AsyncWatch {
    /// How long [`next_events`](Self::next_events) sleeps between polls.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Where the watch stands.
    pub fn cursor(&self) -> WatchCursor {
        lock(&self.inner).cursor().clone()
    }

    /// The events since the last poll (see [`Watch::poll`]).
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub async fn poll(&mut self) -> Result<Vec<Event>> {
        let watch = Arc::clone(&self.inner);
        blocking(move || lock(&watch).poll()).await
    }

    /// The next events, waiting (with `tokio::time::sleep`) until there is
    /// at least one.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub async fn next_events(&mut self) -> Result<Vec<Event>> {
        loop {
            let found = self.poll().await?;
            if !found.is_empty() {
                return Ok(found);
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

async fn blocking<T: Send + 'static>(op: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(op).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(crate::Error::Storage {
            key: String::new(),
            source: crate::StorageError::Io(std::io::Error::other(format!("the runtime is shutting down: {e}"))),
        }),
    }
}

/// A poisoned lock only means an earlier call panicked; the state is a
/// follower's or a watch's cursor, which stays consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
