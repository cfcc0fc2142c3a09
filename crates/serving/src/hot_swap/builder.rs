//! Configuring and starting a [`ModelServer`].

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use model_persistence_core::{BundleReader, Loadable};

use super::observe::{spawn_observer, DriftCallback, ObserverState, OBSERVATION_QUEUE};
use super::reload::{spawn_watcher, ReloadPolicy, ReloadState};
use super::{Inner, ModelServer, Served};
use crate::drift::{DriftConfig, DriftReport, DriftWindow};
use crate::error::Result;
use crate::source::Source;

/// Configures and starts a [`ModelServer`].
#[must_use = "a builder does nothing until `start` is called"]
pub struct ServerBuilder<M: Loadable> {
    source: Source,
    policy: ReloadPolicy,
    reader: BundleReader,
    drift: Option<DriftConfig>,
    on_drift: Option<DriftCallback>,
    on_swap: Option<super::SwapCallback>,
    shadow: Option<(ModelServer<M>, f64)>,
    schema: SchemaChanges,
}

/// Whether a new version may take other inputs than the served one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemaChanges {
    Refused,
    Accepted,
}

impl<M: Loadable> std::fmt::Debug for ServerBuilder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("source", &self.source.describe())
            .field("policy", &self.policy)
            .finish()
    }
}

impl<M> ServerBuilder<M>
where
    M: Loadable,
{
    pub(super) fn new(source: Source) -> Self {
        ServerBuilder {
            source,
            policy: ReloadPolicy::EveryRequests(100),
            reader: BundleReader::default(),
            drift: None,
            on_drift: None,
            on_swap: None,
            shadow: None,
            schema: SchemaChanges::Refused,
        }
    }

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

    /// Called (on the thread that reloaded) after each new version is
    /// swapped in, with what was swapped and when the load began and ended:
    /// for traces and audit logs.
    pub fn on_swap(mut self, callback: impl Fn(&super::SwapEvent) + Send + Sync + 'static) -> Self {
        self.on_swap = Some(Box::new(callback));
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

    /// Lets a new version take another input schema (feature count or
    /// feature names) than the served one. Default: such a version is
    /// refused and reported in the status, since every request of the old
    /// width would fail after the swap.
    pub fn accept_schema_changes(mut self) -> Self {
        self.schema = SchemaChanges::Accepted;
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
        let served = Served::new(model, card, content_id);
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
            accept_schema_changes: self.schema == SchemaChanges::Accepted,
            observed,
            on_swap: self.on_swap,
        });
        if inner.policy != ReloadPolicy::Manual {
            spawn_watcher(&inner);
        }
        Ok(ModelServer { inner })
    }
}
