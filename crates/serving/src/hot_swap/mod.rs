//! The hot-swapping model server.
//!
//! Three concerns, one file each: serving (this file: the live model, the
//! prediction path, the status), [`reload`] (the watcher, the checks before a
//! swap, backoff, rollback) and [`observe`] (drift and the shadow, fed off the
//! request path); [`builder`] configures and starts a server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use arc_swap::{ArcSwap, ArcSwapOption};
use model_persistence_core::{BundleReader, ContentId, Loadable, ModelCard, Version};
use ndarray::{Array1, ArrayView2};
use serde::Serialize;
use time::OffsetDateTime;

use crate::drift::DriftReport;
use crate::error::Result;
use crate::source::Source;

mod builder;
mod observe;
mod reload;

pub use builder::ServerBuilder;
pub use reload::ReloadPolicy;

use observe::{sampled, Observation, ObserverState};
use reload::ReloadState;

/// The model being served, with where it came from.
#[derive(Debug)]
pub struct Served<M> {
    model: M,
    card: ModelCard,
    content_id: ContentId,
    loaded_at: OffsetDateTime,
    /// The names the model's labels index, shared by its predictions.
    classes: Option<Arc<[String]>>,
}

impl<M: Loadable> Served<M> {
    /// A model loaded now.
    fn new(model: M, card: ModelCard, content_id: ContentId) -> Self {
        Served {
            classes: model.class_names().map(Arc::from),
            model,
            card,
            content_id,
            loaded_at: OffsetDateTime::now_utc(),
        }
    }
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
    /// The names its labels index, when they do
    /// ([`Predictor::class_names`](model_persistence_core::Predictor::class_names)).
    pub fn classes(&self) -> Option<Arc<[String]>> {
        self.classes.clone()
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
    /// The model's scores (class probabilities, or raw scores for
    /// regressors), when asked for with [`ModelServer::predict_scored`] and
    /// the model has them.
    pub scores: Option<ndarray::Array2<f64>>,
    /// The names of the classes, when the model's labels are indices into
    /// them ([`Predictor::class_names`](model_persistence_core::Predictor::class_names):
    /// an ONNX graph with string labels).
    pub classes: Option<Arc<[String]>>,
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

struct Inner<M: Loadable> {
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
    accept_schema_changes: bool,
    observed: Arc<Mutex<ObserverState<M>>>,
    on_swap: Option<SwapCallback>,
}

/// What [`ServerBuilder::on_swap`]'s callback is told of a hot swap.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SwapEvent {
    /// The version served before.
    pub from: semver::Version,
    /// The version swapped in.
    pub to: semver::Version,
    /// The content id of the bundle swapped in.
    pub content_id: String,
    /// When its load began.
    pub started: std::time::SystemTime,
    /// When it was swapped in, checked.
    pub finished: std::time::SystemTime,
}

pub(crate) type SwapCallback = Box<dyn Fn(&SwapEvent) + Send + Sync>;

/// A model server: predictions read the live model through `arc-swap` and
/// never take a lock or wait for a reload; new versions are loaded and fully
/// validated off the request path, then swapped in atomically.
///
/// Cloning is cheap and shares the server.
pub struct ModelServer<M: Loadable> {
    inner: Arc<Inner<M>>,
}

impl<M: Loadable> Clone for ModelServer<M> {
    fn clone(&self) -> Self {
        ModelServer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M: Loadable> std::fmt::Debug for ModelServer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = self.inner.live.load();
        f.debug_struct("ModelServer")
            .field("source", &self.inner.source.describe())
            .field("version", &live.card.version)
            .field("content_id", &live.content_id)
            .finish()
    }
}

impl<M: Loadable> Drop for Inner<M> {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        if let Some(t) = self.watcher.get() {
            t.unpark();
        }
    }
}

impl<M> ModelServer<M>
where
    M: Loadable,
{
    /// Configures a server on `source`; [`ServerBuilder::start`] loads it.
    pub fn builder(source: Source) -> ServerBuilder<M> {
        ServerBuilder::new(source)
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
    /// [`Error::Input`](crate::Error::Input) if the rows have the wrong width, or a NaN or
    /// infinite value when the model takes finite values only.
    pub fn predict(&self, rows: ArrayView2<'_, f64>) -> Result<Prediction<M::Output>> {
        let live = self.inner.live.load();
        self.predict_on(&live, rows, false)
    }

    /// Checks `rows`, predicts (with the scores from the same pass when
    /// `scored`), counts the request and hands a sample to the observer.
    fn predict_on(
        &self,
        live: &Arc<Served<M>>,
        rows: ArrayView2<'_, f64>,
        scored: bool,
    ) -> Result<Prediction<M::Output>> {
        let inner = &*self.inner;
        model_persistence_core::check_rows(rows, live.card.n_features, live.model.accepts_non_finite())?;
        let (outputs, scores) = if scored {
            live.model.predict_scored(rows)
        } else {
            (live.model.predict(rows), None)
        };
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
                    served: Arc::clone(live),
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
            scores,
            classes: live.classes.clone(),
        })
    }

    /// [`predict`](Self::predict), with the scores of the same model that
    /// gave the outputs (the model is loaded once for both).
    ///
    /// # Errors
    ///
    /// [`Error::Input`](crate::Error::Input) if the rows have the wrong width or a value the
    /// model does not take.
    pub fn predict_scored(&self, rows: ArrayView2<'_, f64>) -> Result<Prediction<M::Output>> {
        let live = self.inner.live.load();
        self.predict_on(&live, rows, true)
    }

    /// The live model, held for as long as the returned `Arc` lives.
    pub fn live(&self) -> Arc<Served<M>> {
        self.inner.live.load_full()
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
