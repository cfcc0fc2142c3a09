//! Model hosting, below every protocol: the served models ([`AppState`]),
//! each loaded in the background with backoff until it passes its checks,
//! their routes (one model, or an A/B split), and what is remembered of
//! their predictions for live outcomes (`outcomes`: guardrails and A/B
//! decisions). The inference service (`service/`) answers requests from
//! here; the protocols (`http/`) reach it through the service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use model_persistence_core::signing::PublicKey;
use model_persistence_core::AnyModel;
use model_persistence_gate::live::Feedback;
use model_persistence_serving::{AbSplit, DriftConfig, ModelServer, ReloadPolicy, Source};
use model_persistence_versioning::Registry;

use crate::config::{KeySource, ModelConfig, ServeConfig};
use crate::prometheus::{Metrics, ModelGauges};
use crate::service::InferError;

mod outcomes;
mod repository;
pub(crate) use outcomes::{live_outcomes, record, render_live, report_outcomes, Outcome, OutcomeLabel};
pub use repository::RepositoryEntry;
/// The longest wait between attempts to load a model that failed.
const MAX_LOAD_BACKOFF: Duration = Duration::from_secs(30);

/// What a served name routes to.
pub(crate) enum Route {
    Single(ModelServer<AnyModel>),
    Ab {
        split: AbSplit<AnyModel>,
        key: KeySource,
        unkeyed: AtomicU64,
    },
}

/// One served name and, once loaded, its route.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) config: ModelConfig,
    pub(crate) route: OnceLock<Route>,
    load_error: Mutex<Option<String>>,
    /// Predictions waiting for their outcomes, and the live metrics.
    feedback: Feedback,
    /// Predictions not remembered (an id reused or too long).
    unrecorded: AtomicU64,
    guard: Mutex<outcomes::GuardState>,
    decision: Mutex<outcomes::AbDecision>,
    /// Set when the name is unloaded: its loader stops retrying.
    retired: AtomicBool,
}

impl Slot {
    fn new(name: String, config: ModelConfig) -> Self {
        Slot {
            feedback: Feedback::new(config.outcomes.feedback()),
            name,
            config,
            route: OnceLock::new(),
            load_error: Mutex::new(None),
            unrecorded: AtomicU64::new(0),
            guard: Mutex::default(),
            decision: Mutex::default(),
            retired: AtomicBool::new(false),
        }
    }
}

/// The served names, in the order they were configured or loaded. Replaced
/// whole (never edited in place) when the repository API loads or unloads
/// a name, so a request reads one consistent set without a lock.
#[derive(Default)]
pub(crate) struct Slots {
    order: Vec<Arc<Slot>>,
    by_name: HashMap<String, Arc<Slot>>,
}

impl Slots {
    fn of(order: Vec<Arc<Slot>>) -> Self {
        let by_name = order.iter().map(|s| (s.name.clone(), Arc::clone(s))).collect();
        Slots { order, by_name }
    }

    /// The slots, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Slot>> {
        self.order.iter()
    }
}

/// The shared state of the application.
pub struct AppState {
    slots: ArcSwap<Slots>,
    pub(crate) registry: Option<Registry>,
    /// The configuration the server started with (the repository API loads
    /// new names with its settings).
    config: ServeConfig,
    /// Ids given to requests that came without one: a per-start prefix and
    /// a counter.
    id_prefix: String,
    next_id: AtomicU64,
    pub(crate) metrics: Metrics,
    shutdown: AtomicBool,
    /// One repository load or unload at a time.
    repository: Mutex<()>,
    /// Who may call what; `None`: no access control.
    access: Option<crate::access::Access>,
    /// The sampled record of requests and answers, when configured.
    payload: Option<crate::payload::PayloadLog>,
    /// The OTLP exporter, when configured.
    tracer: Option<Arc<crate::trace::Tracer>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.slots.load();
        f.debug_struct("AppState")
            .field("models", &slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
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
    pub fn start<'r>(config: &ServeConfig, registry: impl Into<Option<&'r Registry>>) -> crate::Result<Arc<Self>> {
        let registry: Option<&Registry> = registry.into();
        config.validate()?;
        let client_certs = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        let access = crate::access::Access::new(&config.token, config.open_metrics, client_certs)?;
        let payload = config
            .payload_log
            .as_ref()
            .map(crate::payload::PayloadLog::start)
            .transpose()?;
        let tracer = config
            .otlp_endpoint
            .as_deref()
            .map(|url| crate::trace::Tracer::start(url, &config.otlp_service_name, config.otlp_sample).map(Arc::new))
            .transpose()?;
        let mut slots = Vec::new();
        for m in &config.models {
            slots.push(Arc::new(Slot::new(m.served_name()?, m.clone())));
        }
        let state = Arc::new(AppState {
            slots: ArcSwap::from_pointee(Slots::of(slots)),
            registry: registry.cloned(),
            config: config.clone(),
            id_prefix: format!(
                "{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            ),
            next_id: AtomicU64::new(0),
            metrics: Metrics::default(),
            shutdown: AtomicBool::new(false),
            repository: Mutex::new(()),
            access,
            payload,
            tracer,
        });
        for slot in state.slots.load().iter() {
            let (state, slot) = (Arc::clone(&state), Arc::clone(slot));
            std::thread::Builder::new()
                .name(format!("load-{}", slot.name))
                .spawn(move || load_until_ready(&state, &slot))
                .map_err(crate::Error::Runtime)?;
        }
        Ok(state)
    }

    /// The access rules, when access control is on.
    pub(crate) fn access(&self) -> Option<&crate::access::Access> {
        self.access.as_ref()
    }

    /// The served names now.
    pub(crate) fn slots(&self) -> arc_swap::Guard<Arc<Slots>> {
        self.slots.load()
    }

    /// Whether every served model has loaded and passed its checks.
    pub fn ready(&self) -> bool {
        self.slots.load().iter().all(|s| s.route.get().is_some())
    }

    /// Stops the loaders that are still retrying.
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::Release);
        // What the payload log has queued is written before the server ends.
        if let Some(log) = &self.payload {
            log.close();
        }
        if let Some(tracer) = &self.tracer {
            tracer.close();
        }
    }

    /// The OTLP exporter, when configured.
    pub(crate) fn tracer(&self) -> Option<&Arc<crate::trace::Tracer>> {
        self.tracer.as_ref()
    }

    /// The payload log, when configured.
    pub(crate) fn payload(&self) -> Option<&crate::payload::PayloadLog> {
        self.payload.as_ref()
    }

    /// The reason each model that is not loaded yet failed, by name.
    pub fn load_errors(&self) -> Vec<(String, String)> {
        self.slots
            .load()
            .iter()
            .filter(|s| s.route.get().is_none())
            .filter_map(|s| Some((s.name.clone(), lock(&s.load_error).clone()?)))
            .collect()
    }

    /// An id for a request that came without one.
    /// The header (lower case) whose value is `model`'s A/B key, when its
    /// route splits by one: the one piece of a request's transport metadata
    /// the service reads, so adapters copy only it.
    pub fn routing_header(&self, model: &str) -> Option<String> {
        let slots = self.slots.load();
        let key = &slots.by_name.get(model)?.config.ab.as_ref()?.key;
        match KeySource::parse(key).ok()? {
            KeySource::Header(h) => Some(h.to_ascii_lowercase()),
            KeySource::Parameter(_) => None,
        }
    }

    /// Whether `name` is a configured model.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.slots.load().by_name.contains_key(name)
    }

    pub(crate) fn new_id(&self) -> String {
        format!("{}-{}", self.id_prefix, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn slot(&self, name: &str) -> Result<Arc<Slot>, InferError> {
        self.slots
            .load()
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| InferError::not_found(format!("unknown model {name:?}")))
    }

    pub(crate) fn gauges(&self) -> Vec<ModelGauges> {
        let mut out = Vec::new();
        for slot in self.slots.load().iter() {
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

fn load_until_ready(state: &AppState, slot: &Slot) {
    let mut wait = Duration::from_millis(200);
    while !state.shutdown.load(Ordering::Acquire) && !slot.retired.load(Ordering::Acquire) {
        let started = std::time::SystemTime::now();
        let loaded = load_route(&slot.config, state.registry.as_ref(), &state.config, state.tracer());
        if let Some(tracer) = state.tracer() {
            tracer.record(crate::trace::SpanData {
                trace_id: tracer.trace_id(),
                span_id: tracer.span_id(),
                parent: None,
                name: format!("load {}", slot.name),
                kind: 1,
                start: started,
                end: std::time::SystemTime::now(),
                attributes: vec![("mp.model", crate::trace::Attr::Str(slot.name.clone()))],
                error: loaded.as_ref().err().cloned(),
            });
        }
        match loaded {
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
    registry: Option<&Registry>,
    config: &ServeConfig,
    shadow: Option<(ModelServer<AnyModel>, f64)>,
    tracer: Option<&Arc<crate::trace::Tracer>>,
) -> Result<ModelServer<AnyModel>, String> {
    let registry =
        registry.ok_or_else(|| format!("{reference}: a registry reference needs a registry (--registry)"))?;
    let source = Source::registry(registry.clone(), reference).map_err(|e| e.to_string())?;
    start_source(source, reference, config, shadow, tracer)
}

/// The bundle a directory holds: its `model.bundle`, or else its one
/// `*.bundle` file.
pub(crate) fn bundle_in(dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let named = dir.join("model.bundle");
    if named.is_file() {
        return Ok(named);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let bundles: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "bundle")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && p.is_file()
        })
        .collect();
    match bundles.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "{} holds no bundle (model.bundle or one *.bundle file)",
            dir.display()
        )),
        many => Err(format!(
            "{} holds {} bundles and no model.bundle: name the one to serve model.bundle",
            dir.display(),
            many.len()
        )),
    }
}

/// The public keys of `config.trust`.
fn trusted_keys(config: &ServeConfig) -> Result<Vec<PublicKey>, String> {
    config
        .trust
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            PublicKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

fn start_source(
    source: Source,
    what: &str,
    config: &ServeConfig,
    shadow: Option<(ModelServer<AnyModel>, f64)>,
    tracer: Option<&Arc<crate::trace::Tracer>>,
) -> Result<ModelServer<AnyModel>, String> {
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
    if let Some(tracer) = tracer.cloned() {
        let what = what.to_owned();
        builder = builder.on_swap(move |swap| {
            tracer.record(crate::trace::SpanData {
                trace_id: tracer.trace_id(),
                span_id: tracer.span_id(),
                parent: None,
                name: format!("swap {what}"),
                kind: 1,
                start: swap.started,
                end: swap.finished,
                attributes: vec![
                    ("mp.reference", crate::trace::Attr::Str(what.clone())),
                    ("mp.from_version", crate::trace::Attr::Str(swap.from.to_string())),
                    ("mp.version", crate::trace::Attr::Str(swap.to.to_string())),
                    ("mp.content_id", crate::trace::Attr::Str(swap.content_id.clone())),
                ],
                error: None,
            });
        });
    }
    builder
        .start()
        .map_err(|e| format!("{what}: {}", model_persistence_core::error_chain(&e)))
}

fn load_route(
    m: &ModelConfig,
    registry: Option<&Registry>,
    config: &ServeConfig,
    tracer: Option<&Arc<crate::trace::Tracer>>,
) -> Result<Route, String> {
    if let Some(dir) = &m.bundle_dir {
        let path = bundle_in(dir)?;
        let keys = trusted_keys(config)?;
        let source = if keys.is_empty() {
            Source::bundle(&path)
        } else {
            Source::signed_bundle(&path, keys)
        };
        return Ok(Route::Single(start_source(
            source,
            &path.display().to_string(),
            config,
            None,
            tracer,
        )?));
    }
    let shadow = match &m.shadow {
        Some(s) => Some((start_server(&s.reference, registry, config, None, tracer)?, s.share)),
        None => None,
    };
    if let Some(ab) = &m.ab {
        let mut variants = Vec::new();
        for v in &ab.variants {
            variants.push((
                v.name.clone(),
                start_server(&v.reference, registry, config, None, tracer)?,
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
    Ok(Route::Single(start_server(
        reference, registry, config, shadow, tracer,
    )?))
}

impl Route {
    /// The server of this route that serves `version` now.
    pub(crate) fn server_for_version(&self, version: &str) -> Option<&ModelServer<AnyModel>> {
        let matches = |s: &ModelServer<AnyModel>| s.live().card().version.to_string() == version;
        match self {
            Route::Single(s) => matches(s).then_some(s),
            Route::Ab { split, .. } => split.variants().map(|(_, s)| s).find(|s| matches(s)),
        }
    }

    /// The versions this route serves now.
    pub(crate) fn served_versions(&self) -> Vec<String> {
        let mut versions: Vec<String> = match self {
            Route::Single(s) => vec![s.live().card().version.to_string()],
            Route::Ab { split, .. } => split
                .variants()
                .map(|(_, s)| s.live().card().version.to_string())
                .collect(),
        };
        versions.dedup();
        versions
    }
}

impl Slot {
    /// Why the model has not loaded yet, if it failed a load.
    pub(crate) fn load_error(&self) -> Option<String> {
        lock(&self.load_error).clone()
    }
}
