//! The hot-swapping model server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use model_persistence_core::{error_chain, BundleReader, ContentId, Model, ModelCard, ProbeValue, Version};
use ndarray::{Array1, Array2, ArrayView2};
use serde::Serialize;
use time::OffsetDateTime;

use crate::drift::{DriftConfig, DriftReport, DriftWindow};
use crate::error::{Error, Result};
use crate::source::Source;

/// When the server looks for a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadPolicy {
    /// Only when [`ModelServer::reload_if_updated`] is called.
    Manual,
    /// Every N requests, the request wakes the watcher thread, which checks
    /// off the request path (the seed's default is 100).
    EveryRequests(u64),
    /// Every interval, on the watcher thread.
    Interval(Duration),
}

/// Longest wait between retries after failed reloads.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failed request-triggered reload.
const REQUEST_BACKOFF: Duration = Duration::from_millis(50);
/// Capacity of the queue of observed requests (drift, shadow); when full,
/// observations are dropped rather than making a request wait.
const OBSERVATION_QUEUE: usize = 1024;

/// The model being served, with where it came from.
#[derive(Debug)]
pub struct Served<M> {
    model: M,
    card: ModelCard,
    content_id: ContentId,
    loaded_at: OffsetDateTime,
}

impl<M> Served<M> {
    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }
    /// Its card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }
    /// Its bundle's content id.
    pub fn content_id(&self) -> ContentId {
        self.content_id
    }
    /// When this server loaded it.
    pub fn loaded_at(&self) -> OffsetDateTime {
        self.loaded_at
    }
}

/// A prediction and the version that made it: the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction<O> {
    /// One output per input row.
    pub outputs: Array1<O>,
    /// The content id of the bundle that answered.
    pub content_id: ContentId,
    /// The semantic version that answered.
    pub version: Version,
}

/// The server's state, for people and dashboards.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// Whether a model is loaded (always, once started).
    pub loaded: bool,
    /// The model's name.
    pub model_name: String,
    /// The model kind tag.
    pub model_kind: String,
    /// The served version.
    pub version: Version,
    /// The served bundle's content id.
    pub content_id: ContentId,
    /// Where the model comes from.
    pub source: String,
    /// Requests answered.
    pub requests_served: u64,
    /// When the served version was loaded.
    #[serde(with = "time::serde::rfc3339")]
    pub last_updated: OffsetDateTime,
    /// Successful swaps.
    pub reloads: u64,
    /// Versions refused (failed validation or could not be read).
    pub failed_reloads: u64,
    /// The latest refusal, in words.
    pub last_error: Option<String>,
    /// Observations dropped because the observer was busy.
    pub observations_dropped: u64,
    /// Shadow comparison, if a shadow is configured.
    pub shadow: Option<ShadowStatus>,
    /// The latest drift report, once the window is full.
    pub drift: Option<DriftReport>,
}

/// How the shadow model compares with the served one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowStatus {
    /// The shadow's version.
    pub version: Version,
    /// Rows both predicted.
    pub compared: u64,
    /// Rows where they disagreed.
    pub disagreed: u64,
    /// `disagreed / compared`.
    pub disagreement_rate: f64,
}

type DriftCallback = Box<dyn Fn(&DriftReport) + Send + Sync>;

struct Observation<M> {
    rows: Array2<f64>,
    outputs: Vec<ProbeValue>,
    served: Arc<Served<M>>,
}

struct Inner<M: Model> {
    live: ArcSwap<Served<M>>,
    previous: ArcSwapOption<Served<M>>,
    source: Source,
    reader: BundleReader,
    policy: ReloadPolicy,
    requests: AtomicU64,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
    observations_dropped: AtomicU64,
    // Below: touched by reloads, status and the observer, never by a prediction.
    reload_lock: Mutex<ReloadState>,
    last_error: Mutex<Option<String>>,
    watcher: OnceLock<Thread>,
    shutdown: AtomicBool,
    observer: Option<SyncSender<Observation<M>>>,
    sample_share: f64,
    observed: Arc<Mutex<ObserverState<M>>>,
}

#[derive(Default)]
struct ReloadState {
    failures: u32,
    retry_after: Option<Instant>,
    pinned_away: Option<ContentId>,
}

struct ObserverState<M: Model> {
    drift: Option<(DriftConfig, ContentId, DriftWindow)>,
    latest_drift: Option<DriftReport>,
    drifting: Vec<bool>,
    on_drift: Option<DriftCallback>,
    shadow: Option<ModelServer<M>>,
    compared: u64,
    disagreed: u64,
}

/// A model server: predictions read the live model through `arc-swap` and
/// never take a lock or wait for a reload; new versions are loaded and fully
/// validated off the request path, then swapped in atomically.
///
/// Cloning is cheap and shares the server.
pub struct ModelServer<M: Model> {
    inner: Arc<Inner<M>>,
}

impl<M: Model> Clone for ModelServer<M> {
    fn clone(&self) -> Self {
        ModelServer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M: Model> std::fmt::Debug for ModelServer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = self.inner.live.load();
        f.debug_struct("ModelServer")
            .field("source", &self.inner.source.describe())
            .field("version", &live.card.version)
            .field("content_id", &live.content_id)
            .finish()
    }
}

/// Configures and starts a [`ModelServer`].
#[must_use = "a builder does nothing until `start` is called"]
pub struct ServerBuilder<M: Model> {
    source: Source,
    policy: ReloadPolicy,
    reader: BundleReader,
    drift: Option<DriftConfig>,
    on_drift: Option<DriftCallback>,
    shadow: Option<(ModelServer<M>, f64)>,
}

impl<M: Model> std::fmt::Debug for ServerBuilder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("source", &self.source.describe())
            .field("policy", &self.policy)
            .finish()
    }
}

impl<M> ServerBuilder<M>
where
    M: Model + Send + Sync + 'static,
{
    /// When to look for a new version. Default: `EveryRequests(100)`.
    pub fn policy(mut self, policy: ReloadPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The reader (and its limits) used for loading. Default: the default limits.
    pub fn reader(mut self, reader: BundleReader) -> Self {
        self.reader = reader;
        self
    }

    /// Watches live inputs for drift against the card's training
    /// statistics. Default: off.
    pub fn drift(mut self, config: DriftConfig) -> Self {
        self.drift = Some(config);
        self
    }

    /// Called (on the observer thread) when a feature starts drifting.
    pub fn on_drift(mut self, callback: impl Fn(&DriftReport) + Send + Sync + 'static) -> Self {
        self.on_drift = Some(Box::new(callback));
        self
    }

    /// A shadow model that also predicts on `share` of the requests, off the
    /// request path; its disagreement rate is in the status. Default: none.
    pub fn shadow(mut self, shadow: ModelServer<M>, share: f64) -> Self {
        self.shadow = Some((shadow, share.clamp(0.0, 1.0)));
        self
    }

    /// Loads and validates the model, then starts serving.
    ///
    /// # Errors
    ///
    /// The typed error if the source offers no valid model.
    pub fn start(self) -> Result<ModelServer<M>> {
        let loaded = self.source.load::<M>(&self.reader)?;
        let content_id = loaded.content_id();
        let (model, card) = loaded.into_parts();
        let served = Served {
            model,
            card,
            content_id,
            loaded_at: OffsetDateTime::now_utc(),
        };
        let sample_share = match (&self.drift, &self.shadow) {
            (None, None) => 0.0,
            (d, s) => d.map_or(0.0, |d| d.sample_share).max(s.as_ref().map_or(0.0, |s| s.1)),
        };
        let observed = Arc::new(Mutex::new(ObserverState {
            drift: self
                .drift
                .map(|c| (c, content_id, DriftWindow::new(served.card.feature_stats.clone(), c))),
            latest_drift: None,
            drifting: Vec::new(),
            on_drift: self.on_drift,
            shadow: self.shadow.map(|(s, _)| s),
            compared: 0,
            disagreed: 0,
        }));
        let observer = (sample_share > 0.0).then(|| {
            let (tx, rx) = sync_channel(OBSERVATION_QUEUE);
            spawn_observer(rx, Arc::clone(&observed));
            tx
        });
        let inner = Arc::new(Inner {
            live: ArcSwap::from_pointee(served),
            previous: ArcSwapOption::empty(),
            source: self.source,
            reader: self.reader,
            policy: self.policy,
            requests: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            failed_reloads: AtomicU64::new(0),
            observations_dropped: AtomicU64::new(0),
            reload_lock: Mutex::new(ReloadState::default()),
            last_error: Mutex::new(None),
            watcher: OnceLock::new(),
            shutdown: AtomicBool::new(false),
            observer,
            sample_share,
            observed,
        });
        if inner.policy != ReloadPolicy::Manual {
            spawn_watcher(&inner);
        }
        Ok(ModelServer { inner })
    }
}

fn spawn_watcher<M: Model + Send + Sync + 'static>(inner: &Arc<Inner<M>>) {
    let weak: Weak<Inner<M>> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new()
        .name("model-watcher".into())
        .spawn(move || loop {
            let wait = match weak.upgrade() {
                Some(inner) if !inner.shutdown.load(Ordering::Acquire) => inner.next_wait(),
                _ => return,
            };
            std::thread::park_timeout(wait);
            let Some(inner) = weak.upgrade() else { return };
            if inner.shutdown.load(Ordering::Acquire) {
                return;
            }
            // Errors are recorded in the status; the old version keeps serving.
            let _ = inner.check_and_reload(true);
        });
    match spawned {
        Ok(handle) => {
            let _ = inner.watcher.set(handle.thread().clone());
        }
        Err(e) => tracing::error!(error = %e, "cannot start the model watcher; reloads are manual only"),
    }
}

fn spawn_observer<M: Model + Send + Sync + 'static>(rx: Receiver<Observation<M>>, state: Arc<Mutex<ObserverState<M>>>) {
    let spawned = std::thread::Builder::new()
        .name("model-observer".into())
        .spawn(move || {
            while let Ok(obs) = rx.recv() {
                let Ok(mut state) = state.lock() else { return };
                state.observe(obs);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the observer; drift and shadow are off");
    }
}

impl<M: Model + Send + Sync + 'static> ObserverState<M> {
    fn observe(&mut self, obs: Observation<M>) {
        if let Some((config, id, window)) = &mut self.drift {
            if *id != obs.served.content_id {
                // A new version: its own training statistics, a fresh window.
                *id = obs.served.content_id;
                *window = DriftWindow::new(obs.served.card.feature_stats.clone(), *config);
                self.drifting.clear();
            }
            for row in obs.rows.rows() {
                if let Some(slice) = row.as_slice() {
                    window.push(slice);
                }
            }
            if let Some(report) = window.report() {
                let newly = report
                    .features
                    .iter()
                    .enumerate()
                    .any(|(i, f)| f.drifting && !self.drifting.get(i).copied().unwrap_or(false));
                self.drifting = report.features.iter().map(|f| f.drifting).collect();
                if newly {
                    if let Some(cb) = &self.on_drift {
                        cb(&report);
                    }
                }
                self.latest_drift = Some(report);
            }
        }
        if let Some(shadow) = &self.shadow {
            if let Ok(p) = shadow.predict(obs.rows.view()) {
                self.compared += obs.outputs.len() as u64;
                self.disagreed += p
                    .outputs
                    .iter()
                    .zip(&obs.outputs)
                    .filter(|(s, o)| Into::<ProbeValue>::into((*s).clone()) != **o)
                    .count() as u64;
            }
        }
    }
}

impl<M: Model> Drop for Inner<M> {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        if let Some(t) = self.watcher.get() {
            t.unpark();
        }
    }
}

impl<M: Model> Inner<M> {
    fn next_wait(&self) -> Duration {
        let failures = self.reload_lock.lock().map(|s| s.failures).unwrap_or(0);
        match self.policy {
            ReloadPolicy::Interval(d) if failures > 0 => backoff(d, failures),
            ReloadPolicy::Interval(d) => d,
            // Woken by requests; the timeout only bounds a missed wake-up.
            ReloadPolicy::EveryRequests(_) | ReloadPolicy::Manual => Duration::from_secs(1),
        }
    }

    fn record_failure(&self, state: &mut ReloadState, error: Error) -> Error {
        self.failed_reloads.fetch_add(1, Ordering::Relaxed);
        state.failures = state.failures.saturating_add(1);
        let base = match self.policy {
            ReloadPolicy::Interval(d) => d,
            _ => REQUEST_BACKOFF,
        };
        state.retry_after = Some(Instant::now() + backoff(base, state.failures));
        tracing::warn!(source = %self.source.describe(), error = %error, "new version refused; the old one keeps serving");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error_chain(&error));
        }
        error
    }

    /// Checks the source and swaps in a new, fully validated version.
    fn check_and_reload(&self, respect_backoff: bool) -> Result<bool> {
        let mut state = match self.reload_lock.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if respect_backoff && state.retry_after.is_some_and(|t| Instant::now() < t) {
            return Ok(false);
        }
        let live_id = self.live.load().content_id;
        let offered = match self.source.current_id(&self.reader) {
            Ok(id) => id,
            Err(e) => return Err(self.record_failure(&mut state, e)),
        };
        if offered == live_id || state.pinned_away == Some(offered) {
            return Ok(false);
        }
        let loaded = match self.source.load::<M>(&self.reader) {
            Ok(l) => l,
            Err(e) => return Err(self.record_failure(&mut state, e)),
        };
        if loaded.content_id() == live_id {
            return Ok(false);
        }
        let content_id = loaded.content_id();
        let (model, card) = loaded.into_parts();
        let version = card.version.clone();
        let old = self.live.swap(Arc::new(Served {
            model,
            card,
            content_id,
            loaded_at: OffsetDateTime::now_utc(),
        }));
        self.previous.store(Some(old));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        *state = ReloadState::default();
        tracing::info!(source = %self.source.describe(), %version, %content_id, "swapped in a new version");
        Ok(true)
    }
}

/// `base · 2^(failures − 1)`, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1_u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

impl<M> ModelServer<M>
where
    M: Model + Send + Sync + 'static,
{
    /// Configures a server on `source`; [`ServerBuilder::start`] loads it.
    pub fn builder(source: Source) -> ServerBuilder<M> {
        ServerBuilder {
            source,
            policy: ReloadPolicy::EveryRequests(100),
            reader: BundleReader::default(),
            drift: None,
            on_drift: None,
            shadow: None,
        }
    }

    /// Starts a server on `source` with the given policy and no observers.
    ///
    /// # Errors
    ///
    /// The typed error if the source offers no valid model.
    pub fn start(source: Source, policy: ReloadPolicy) -> Result<Self> {
        Self::builder(source).policy(policy).start()
    }

    /// Predicts one output per row with the live model, and says which
    /// version answered. Never takes a lock, never waits for a reload.
    ///
    /// # Errors
    ///
    /// [`Error::FeatureCount`] if the rows have the wrong width.
    pub fn predict(&self, rows: ArrayView2<'_, f64>) -> Result<Prediction<M::Output>> {
        let inner = &*self.inner;
        let live = inner.live.load();
        if rows.ncols() != live.card.n_features {
            return Err(Error::FeatureCount {
                expected: live.card.n_features,
                found: rows.ncols(),
            });
        }
        let outputs = live.model.predict(rows);
        let n = inner.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if let ReloadPolicy::EveryRequests(every) = inner.policy {
            if every > 0 && n.is_multiple_of(every) {
                if let Some(t) = inner.watcher.get() {
                    t.unpark();
                }
            }
        }
        if let Some(tx) = &inner.observer {
            if sampled(n, inner.sample_share) {
                let obs = Observation {
                    rows: rows.to_owned(),
                    outputs: outputs.iter().map(|o| o.clone().into()).collect(),
                    served: arc_swap::Guard::into_inner(inner.live.load()),
                };
                if let Err(TrySendError::Full(_)) = tx.try_send(obs) {
                    inner.observations_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(Prediction {
            outputs,
            content_id: live.content_id,
            version: live.card.version.clone(),
        })
    }

    /// The live model, held for as long as the returned `Arc` lives.
    pub fn live(&self) -> Arc<Served<M>> {
        self.inner.live.load_full()
    }

    /// Checks the source now, on the caller's thread, and swaps in a new
    /// version if there is one. Returns whether it swapped.
    ///
    /// # Errors
    ///
    /// The refusal, also recorded in the status; the old version keeps serving.
    pub fn reload_if_updated(&self) -> Result<bool> {
        self.inner.check_and_reload(false)
    }

    /// Serves the previously served version again (held in memory), and
    /// ignores the version it replaced until the source offers another.
    ///
    /// # Errors
    ///
    /// [`Error::NothingToRollBack`].
    pub fn rollback(&self) -> Result<Version> {
        let inner = &*self.inner;
        let mut state = match inner.reload_lock.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = inner.previous.swap(None).ok_or(Error::NothingToRollBack)?;
        let version = previous.card.version.clone();
        let current = inner.live.swap(previous);
        state.pinned_away = Some(current.content_id);
        inner.previous.store(Some(current));
        inner.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(version)
    }

    /// Rolls the registry alias this server follows back to its previous
    /// target, then reloads.
    ///
    /// # Errors
    ///
    /// [`Error::NotARegistryAlias`] for other sources, registry errors.
    pub fn rollback_alias(&self) -> Result<Version> {
        let Source::Registry { registry, reference } = &self.inner.source else {
            return Err(Error::NotARegistryAlias {
                source_name: self.inner.source.describe(),
            });
        };
        let model_persistence_versioning::Target::Alias(alias) = &reference.target else {
            return Err(Error::NotARegistryAlias {
                source_name: self.inner.source.describe(),
            });
        };
        let target = registry
            .rollback(&reference.model, alias)
            .map_err(|source| Error::Registry {
                source_name: self.inner.source.describe(),
                source: Box::new(source),
            })?;
        self.inner.check_and_reload(false)?;
        Ok(target.version)
    }

    /// Why the latest refused version was refused, in words, if any.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// The latest drift report, once the window is full.
    pub fn drift(&self) -> Option<DriftReport> {
        self.inner.observed.lock().ok().and_then(|s| s.latest_drift.clone())
    }

    /// The server's state.
    pub fn status(&self) -> Status {
        let inner = &*self.inner;
        let live = inner.live.load();
        let observed = inner.observed.lock().ok();
        let shadow = observed.as_ref().and_then(|o| {
            o.shadow.as_ref().map(|s| ShadowStatus {
                version: s.live().card.version.clone(),
                compared: o.compared,
                disagreed: o.disagreed,
                disagreement_rate: if o.compared == 0 {
                    0.0
                } else {
                    o.disagreed as f64 / o.compared as f64
                },
            })
        });
        Status {
            loaded: true,
            model_name: live.card.name.clone(),
            model_kind: live.card.kind.clone(),
            version: live.card.version.clone(),
            content_id: live.content_id,
            source: inner.source.describe(),
            requests_served: inner.requests.load(Ordering::Relaxed),
            last_updated: live.loaded_at,
            reloads: inner.reloads.load(Ordering::Relaxed),
            failed_reloads: inner.failed_reloads.load(Ordering::Relaxed),
            last_error: self.last_error(),
            observations_dropped: inner.observations_dropped.load(Ordering::Relaxed),
            drift: observed.as_ref().and_then(|o| o.latest_drift.clone()),
            shadow,
        }
    }
}

/// Whether request `n` (1-based) falls in the sampled `share`.
fn sampled(n: u64, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    ((n as f64) * share).floor() != (((n - 1) as f64) * share).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_takes_the_requested_share() {
        let taken = (1..=10_000).filter(|&n| sampled(n, 0.1)).count();
        assert_eq!(taken, 1_000);
        assert!((1..=100).all(|n| sampled(n, 1.0)));
        assert!(!(1..=100).any(|n| sampled(n, 0.0)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 3), Duration::from_millis(400));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
