//! The HTTP application: the served models and their loading, and the
//! router. One concept per file: `endpoints` (health, metadata, metrics,
//! protocol errors), `infer` (inference requests, binary tensors, answers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use model_persistence_core::AnyModel;
use model_persistence_serving::outcomes::Feedback;
use model_persistence_serving::{AbSplit, DriftConfig, ModelServer, ReloadPolicy, Source};
use model_persistence_versioning::Registry;

use crate::config::{KeySource, ModelConfig, ServeConfig};
use crate::prometheus::{Metrics, ModelGauges};
use crate::protocol::RequestError;

/// Requests with more values than this are computed on the blocking pool,
/// so a large batch never holds up the async workers.
const INLINE_VALUES: usize = 16_384;
/// The longest wait between attempts to load a model that failed.
const MAX_LOAD_BACKOFF: Duration = Duration::from_secs(30);

/// What a served name routes to.
enum Route {
    Single(ModelServer<AnyModel>),
    Ab {
        split: AbSplit<AnyModel>,
        key: KeySource,
        unkeyed: AtomicU64,
    },
}

/// One served name and, once loaded, its route.
struct Slot {
    name: String,
    config: ModelConfig,
    route: OnceLock<Route>,
    load_error: Mutex<Option<String>>,
    /// Predictions waiting for their outcomes, and the live metrics.
    feedback: Feedback,
    /// Predictions not remembered (an id reused or too long).
    unrecorded: AtomicU64,
    guard: Mutex<feedback::GuardState>,
    decision: Mutex<feedback::AbDecision>,
}

/// The shared state of the application.
pub struct AppState {
    slots: Vec<Slot>,
    registry: Registry,
    /// Ids given to requests that came without one: a per-start prefix and
    /// a counter.
    id_prefix: String,
    next_id: AtomicU64,
    by_name: HashMap<String, usize>,
    pub(crate) metrics: Metrics,
    shutdown: AtomicBool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("models", &self.by_name.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state for `config`, loading every model in the background
    /// (retrying with backoff until it loads and passes its checks).
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a configuration that
    /// does not validate.
    pub fn start(config: &ServeConfig, registry: &Registry) -> crate::Result<Arc<Self>> {
        config.validate()?;
        let mut slots = Vec::new();
        let mut by_name = HashMap::new();
        for m in &config.models {
            let name = m.served_name()?;
            by_name.insert(name.clone(), slots.len());
            slots.push(Slot {
                name,
                config: m.clone(),
                route: OnceLock::new(),
                load_error: Mutex::new(None),
                feedback: Feedback::new(m.outcomes.feedback()),
                unrecorded: AtomicU64::new(0),
                guard: Mutex::default(),
                decision: Mutex::default(),
            });
        }
        let state = Arc::new(AppState {
            slots,
            registry: registry.clone(),
            id_prefix: format!(
                "{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            ),
            next_id: AtomicU64::new(0),
            by_name,
            metrics: Metrics::default(),
            shutdown: AtomicBool::new(false),
        });
        for i in 0..state.slots.len() {
            let (state, registry, config) = (Arc::clone(&state), registry.clone(), config.clone());
            std::thread::Builder::new()
                .name(format!("load-{}", state.slots[i].name))
                .spawn(move || load_until_ready(&state, i, &registry, &config))
                .map_err(crate::Error::Runtime)?;
        }
        Ok(state)
    }

    /// Whether every configured model has loaded and passed its checks.
    pub fn ready(&self) -> bool {
        self.slots.iter().all(|s| s.route.get().is_some())
    }

    /// Stops the loaders that are still retrying.
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// The reason each model that is not loaded yet failed, by name.
    pub fn load_errors(&self) -> Vec<(String, String)> {
        self.slots
            .iter()
            .filter(|s| s.route.get().is_none())
            .filter_map(|s| Some((s.name.clone(), lock(&s.load_error).clone()?)))
            .collect()
    }

    /// An id for a request that came without one.
    fn new_id(&self) -> String {
        format!("{}-{}", self.id_prefix, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn slot(&self, name: &str) -> Result<&Slot, RequestError> {
        self.by_name
            .get(name)
            .map(|&i| &self.slots[i])
            .ok_or_else(|| RequestError::not_found(format!("unknown model {name:?}")))
    }

    fn gauges(&self) -> Vec<ModelGauges> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let servers: Vec<(Option<String>, &ModelServer<AnyModel>)> = match slot.route.get() {
                None => Vec::new(),
                Some(Route::Single(s)) => vec![(None, s)],
                Some(Route::Ab { split, .. }) => split.variants().map(|(n, s)| (Some(n.to_owned()), s)).collect(),
            };
            for (variant, server) in servers {
                let status = server.status();
                out.push(ModelGauges {
                    model: slot.name.clone(),
                    variant,
                    version: Some(status.version.to_string()),
                    content_id: Some(status.content_id.to_string()),
                    swaps: status.reloads,
                    refused: status.failed_reloads,
                    psi: status
                        .drift
                        .map(|d| d.features.into_iter().map(|f| (f.name, f.psi)).collect())
                        .unwrap_or_default(),
                    shadow_disagreement: status.shadow.map(|s| s.disagreement_rate),
                });
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn load_until_ready(state: &AppState, i: usize, registry: &Registry, config: &ServeConfig) {
    let slot = &state.slots[i];
    let mut wait = Duration::from_millis(200);
    while !state.shutdown.load(Ordering::Acquire) {
        match load_route(&slot.config, registry, config) {
            Ok(route) => {
                tracing::info!(model = %slot.name, "loaded and checked; serving");
                let _ = slot.route.set(route);
                *lock(&slot.load_error) = None;
                return;
            }
            Err(e) => {
                tracing::warn!(model = %slot.name, error = %e, retry_in = ?wait, "cannot serve yet");
                *lock(&slot.load_error) = Some(e);
            }
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(MAX_LOAD_BACKOFF);
    }
}

fn start_server(
    reference: &str,
    registry: &Registry,
    config: &ServeConfig,
    shadow: Option<(ModelServer<AnyModel>, f64)>,
) -> Result<ModelServer<AnyModel>, String> {
    let source = Source::registry(registry.clone(), reference).map_err(|e| e.to_string())?;
    let mut builder = ModelServer::<AnyModel>::builder(source)
        .policy(ReloadPolicy::Interval(config.poll()))
        .drift(DriftConfig {
            window: config.drift_window.max(1),
            sample_share: 0.1,
            ..DriftConfig::default()
        });
    if let Some((shadow, share)) = shadow {
        builder = builder.shadow(shadow, share);
    }
    builder
        .start()
        .map_err(|e| format!("{reference}: {}", model_persistence_core::error_chain(&e)))
}

fn load_route(m: &ModelConfig, registry: &Registry, config: &ServeConfig) -> Result<Route, String> {
    let shadow = match &m.shadow {
        Some(s) => Some((start_server(&s.reference, registry, config, None)?, s.share)),
        None => None,
    };
    if let Some(ab) = &m.ab {
        let mut variants = Vec::new();
        for v in &ab.variants {
            variants.push((
                v.name.clone(),
                start_server(&v.reference, registry, config, None)?,
                v.weight,
            ));
        }
        let split = AbSplit::new(variants, 0x5eed).map_err(|e| e.to_string())?;
        return Ok(Route::Ab {
            split,
            key: KeySource::parse(&ab.key).map_err(|e| e.to_string())?,
            unkeyed: AtomicU64::new(0),
        });
    }
    let reference = m.reference.as_deref().ok_or("a model needs a reference")?;
    Ok(Route::Single(start_server(reference, registry, config, shadow)?))
}

/// The router of the Open Inference Protocol's REST endpoints, `/metrics`,
/// the pages for people (`/`, `/models/{name}`), and protocol errors for
/// everything else.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    Router::new()
        .route("/v2", get(endpoints::server_metadata))
        .route("/v2/health/live", get(endpoints::live))
        .route("/v2/health/ready", get(endpoints::ready))
        .route("/v2/models/{name}", get(endpoints::model_metadata))
        .route("/v2/models/{name}/ready", get(endpoints::model_ready))
        .route("/v2/models/{name}/infer", post(infer::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(endpoints::model_metadata_at),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(endpoints::model_ready_at),
        )
        .route("/v2/models/{name}/versions/{version}/infer", post(infer::infer_at))
        .route("/v2/models/{name}/outcomes", post(feedback::post).get(feedback::get))
        .route("/metrics", get(endpoints::metrics))
        .route("/", get(pages::index))
        .route("/models/{name}", get(pages::model))
        .fallback(endpoints::not_found)
        .method_not_allowed_fallback(endpoints::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

mod endpoints;
mod feedback;
mod infer;
mod pages;
