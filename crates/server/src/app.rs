//! The HTTP application: routes, handlers and the served models.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use model_persistence_core::{AnyModel, ProbeValue};
use model_persistence_serving::{AbSplit, DriftConfig, ModelServer, Prediction, ReloadPolicy, Source};
use model_persistence_versioning::Registry;
use serde_json::{json, Value};

use crate::config::{KeySource, ModelConfig, ServeConfig};
use crate::metrics::{Metrics, ModelGauges, Outcome};
use crate::protocol::{
    rows_of, ErrorBody, InferRequest, InferResponse, ModelMetadata, OutputTensor, RequestError, TensorMetadata,
};

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
}

/// The shared state of the application.
pub struct AppState {
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    metrics: Metrics,
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
    /// A configuration that does not validate.
    pub fn start(config: &ServeConfig, registry: &Registry) -> Result<Arc<Self>, String> {
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
            });
        }
        let state = Arc::new(AppState {
            slots,
            by_name,
            metrics: Metrics::default(),
            shutdown: AtomicBool::new(false),
        });
        for i in 0..state.slots.len() {
            let (state, registry, config) = (Arc::clone(&state), registry.clone(), config.clone());
            std::thread::Builder::new()
                .name(format!("load-{}", state.slots[i].name))
                .spawn(move || load_until_ready(&state, i, &registry, &config))
                .map_err(|e| format!("cannot start a loader thread: {e}"))?;
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
            key: KeySource::parse(&ab.key)?,
            unkeyed: AtomicU64::new(0),
        });
    }
    let reference = m.reference.as_deref().ok_or("a model needs a reference")?;
    Ok(Route::Single(start_server(reference, registry, config, shadow)?))
}

/// The router of the Open Inference Protocol's REST endpoints, `/metrics`,
/// and protocol errors for everything else.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata_at))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready_at))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_at))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

fn error(e: &RequestError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::to_vec(&ErrorBody {
        error: e.message.clone(),
    })
    .unwrap_or_default();
    json_response(status, body)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn json_value(status: StatusCode, value: &Value) -> Response {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

async fn not_found() -> Response {
    error(&RequestError::not_found("no such endpoint"))
}

async fn method_not_allowed() -> Response {
    error(&RequestError {
        status: 405,
        message: "method not allowed on this endpoint".into(),
    })
}

async fn server_metadata() -> Response {
    json_value(
        StatusCode::OK,
        &json!({"name": "model-persistence", "version": env!("CARGO_PKG_VERSION"), "extensions": []}),
    )
}

async fn live() -> Response {
    json_value(StatusCode::OK, &json!({"live": true}))
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.ready();
    let status = if ready { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    json_value(status, &json!({"ready": ready}))
}

async fn model_ready(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    ready_of(&state, &name, None)
}

async fn model_ready_at(State(state): State<Arc<AppState>>, Path((name, version)): Path<(String, String)>) -> Response {
    ready_of(&state, &name, Some(&version))
}

fn ready_of(state: &AppState, name: &str, version: Option<&str>) -> Response {
    let slot = match state.slot(name) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let ready = match (slot.route.get(), version) {
        (None, _) => false,
        (Some(route), Some(v)) => match server_for_version(route, v) {
            Some(_) => true,
            None => return error(&not_served(name, v, route)),
        },
        (Some(_), None) => true,
    };
    let status = if ready { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    json_value(status, &json!({"name": name, "ready": ready}))
}

/// The server of a route that serves `version` now.
fn server_for_version<'a>(route: &'a Route, version: &str) -> Option<&'a ModelServer<AnyModel>> {
    let matches = |s: &ModelServer<AnyModel>| s.live().card().version.to_string() == version;
    match route {
        Route::Single(s) => matches(s).then_some(s),
        Route::Ab { split, .. } => split.variants().map(|(_, s)| s).find(|s| matches(s)),
    }
}

fn served_versions(route: &Route) -> Vec<String> {
    let mut versions: Vec<String> = match route {
        Route::Single(s) => vec![s.live().card().version.to_string()],
        Route::Ab { split, .. } => split
            .variants()
            .map(|(_, s)| s.live().card().version.to_string())
            .collect(),
    };
    versions.dedup();
    versions
}

fn not_served(name: &str, version: &str, route: &Route) -> RequestError {
    RequestError::not_found(format!(
        "version {version} of {name:?} is not served (serving {})",
        served_versions(route).join(", ")
    ))
}

fn not_ready(name: &str, slot: &Slot) -> RequestError {
    let reason = lock(&slot.load_error).clone().unwrap_or_else(|| "loading".into());
    RequestError::bad(format!("model {name:?} is not ready: {reason}"))
}

async fn model_metadata(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    metadata_of(&state, &name, None)
}

async fn model_metadata_at(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    metadata_of(&state, &name, Some(&version))
}

fn metadata_of(state: &AppState, name: &str, version: Option<&str>) -> Response {
    let result = (|| {
        let slot = state.slot(name)?;
        let route = slot.route.get().ok_or_else(|| not_ready(name, slot))?;
        let server = match (version, route) {
            (Some(v), _) => server_for_version(route, v).ok_or_else(|| not_served(name, v, route))?,
            (None, Route::Single(s)) => s,
            (None, Route::Ab { split, .. }) => split
                .variants()
                .next()
                .map(|(_, s)| s)
                .ok_or_else(|| not_ready(name, slot))?,
        };
        let live = server.live();
        let card = live.card();
        let classes = live
            .model()
            .scores(ndarray::Array2::<f64>::zeros((1, card.n_features)).view());
        let labels = matches!(
            live.model()
                .predict_values(ndarray::Array2::<f64>::zeros((1, card.n_features)).view())
                .first(),
            Some(ProbeValue::Label(_))
        );
        let mut outputs = vec![TensorMetadata {
            name: "predict".into(),
            datatype: if labels { "INT64" } else { "FP64" }.into(),
            shape: vec![-1],
        }];
        if let Some(scores) = classes {
            outputs.push(TensorMetadata {
                name: "predict_proba".into(),
                datatype: "FP64".into(),
                shape: vec![-1, i64::try_from(scores.ncols()).unwrap_or(-1)],
            });
        }
        Ok::<_, RequestError>(ModelMetadata {
            name: name.to_owned(),
            versions: match version {
                Some(v) => vec![v.to_owned()],
                None => served_versions(route),
            },
            platform: format!("model-persistence/{}", card.kind),
            inputs: vec![TensorMetadata {
                name: "input".into(),
                datatype: "FP64".into(),
                shape: vec![-1, i64::try_from(card.n_features).unwrap_or(-1)],
            }],
            outputs,
        })
    })();
    match result {
        Ok(meta) => json_response(StatusCode::OK, serde_json::to_vec(&meta).unwrap_or_default()),
        Err(e) => error(&e),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(&state.gauges());
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_common(state, name, None, headers, body).await
}

async fn infer_at(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_common(state, name, Some(version), headers, body).await
}

async fn infer_common(
    state: Arc<AppState>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    // Metrics are labelled by configured names only: names from the URL
    // of unknown models would grow the series without bound.
    let label = if state.by_name.contains_key(&name) {
        name.clone()
    } else {
        "_unknown".to_owned()
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let e = RequestError {
                status: rejection.status().as_u16(),
                message: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "the request body is over the server's limit".into()
                } else {
                    rejection.body_text()
                },
            };
            state.metrics.request(&label, "none", Outcome::of_status(e.status));
            return error(&e);
        }
    };
    let parsed = parse_request(&headers, &body);
    let large = parsed
        .as_ref()
        .map(|r| {
            r.inputs
                .iter()
                .map(|i| {
                    i.shape
                        .iter()
                        .fold(1u64, |n, &d| n.saturating_mul(d.max(0).unsigned_abs()))
                })
                .fold(0u64, u64::saturating_add)
                > INLINE_VALUES as u64
        })
        .unwrap_or(false);
    let work = {
        let state = Arc::clone(&state);
        let name = name.clone();
        move || answer(&state, &name, version.as_deref(), &headers, parsed)
    };
    let result = if large {
        match tokio::task::spawn_blocking(work).await {
            Ok(r) => r,
            Err(e) => Err((RequestError::bad(format!("the request was not completed: {e}")), None)),
        }
    } else {
        work()
    };
    match result {
        Ok((response, version)) => {
            state.metrics.request(&label, &version, Outcome::Ok);
            state.metrics.latency(&label).observe(start.elapsed());
            json_response(StatusCode::OK, serde_json::to_vec(&response).unwrap_or_default())
        }
        Err((e, version)) => {
            state.metrics.request(
                &label,
                version.as_deref().unwrap_or("none"),
                Outcome::of_status(e.status),
            );
            error(&e)
        }
    }
}

/// The JSON of an infer request; with the binary tensor extension
/// (`Inference-Header-Content-Length`), the JSON header and the binary data
/// of the inputs that name their `binary_data_size`.
fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<InferRequest, RequestError> {
    let header_len = headers
        .get("inference-header-content-length")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .filter(|&n| n <= body.len())
                .ok_or_else(|| RequestError::bad("Inference-Header-Content-Length is not a length within the body"))
        })
        .transpose()?;
    let (json_part, mut binary) = match header_len {
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let mut request: InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| RequestError::bad(format!("malformed inference request: {e}")))?;
    for input in &mut request.inputs {
        let size = input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()));
        match size {
            None => {
                if input.data.is_none() {
                    return Err(RequestError::bad(format!("input {:?} has no data", input.name)));
                }
            }
            Some(None) => {
                return Err(RequestError::bad(format!(
                    "input {:?}: binary_data_size is not a size",
                    input.name
                )))
            }
            Some(Some(n)) => {
                if n > binary.len() {
                    return Err(RequestError::bad(format!(
                        "input {:?} claims {n} bytes of binary data; {} are left",
                        input.name,
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(n);
                binary = rest;
                input.data = Some(decode_binary(&input.name, &input.datatype, mine)?);
            }
        }
    }
    Ok(request)
}

fn decode_binary(name: &str, datatype: &str, bytes: &[u8]) -> Result<Value, RequestError> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<Value> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                json!(f(a))
            })
            .collect()
    }
    let width = match datatype {
        "BOOL" | "INT8" | "UINT8" => 1,
        "INT16" | "UINT16" => 2,
        "INT32" | "UINT32" | "FP32" => 4,
        "INT64" | "UINT64" | "FP64" => 8,
        other => {
            return Err(RequestError::bad(format!(
                "input {name:?}: binary {other} data is not supported"
            )))
        }
    };
    if !bytes.len().is_multiple_of(width) {
        return Err(RequestError::bad(format!(
            "input {name:?}: {} bytes is not a whole number of {datatype} elements",
            bytes.len()
        )));
    }
    let values = match datatype {
        "BOOL" | "UINT8" => each::<1>(bytes, |a| f64::from(a[0])),
        "INT8" => each::<1>(bytes, |a| f64::from(i8::from_le_bytes(a))),
        "INT16" => each::<2>(bytes, |a| f64::from(i16::from_le_bytes(a))),
        "UINT16" => each::<2>(bytes, |a| f64::from(u16::from_le_bytes(a))),
        "INT32" => each::<4>(bytes, |a| f64::from(i32::from_le_bytes(a))),
        "UINT32" => each::<4>(bytes, |a| f64::from(u32::from_le_bytes(a))),
        "FP32" => each::<4>(bytes, |a| f64::from(f32::from_le_bytes(a))),
        "INT64" => each::<8>(bytes, |a| i64::from_le_bytes(a) as f64),
        "UINT64" => each::<8>(bytes, |a| u64::from_le_bytes(a) as f64),
        _ => each::<8>(bytes, f64::from_le_bytes),
    };
    // JSON numbers cannot be NaN: json!(NaN) is null, which the reader refuses.
    Ok(Value::Array(values))
}

type Answer = Result<(InferResponse, String), (RequestError, Option<String>)>;

fn answer(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    parsed: Result<InferRequest, RequestError>,
) -> Answer {
    let slot = state.slot(name).map_err(|e| (e, None))?;
    let route = slot.route.get().ok_or_else(|| (not_ready(name, slot), None))?;
    let request = parsed.map_err(|e| (e, None))?;
    let (server, variant) = match (version, route) {
        (Some(v), _) => (
            server_for_version(route, v).ok_or_else(|| (not_served(name, v, route), None))?,
            None,
        ),
        (None, Route::Single(s)) => (s, None),
        (None, Route::Ab { split, key, unkeyed }) => {
            let k = match key {
                KeySource::Header(h) => headers.get(h.as_str()).and_then(|v| v.to_str().ok()).map(str::to_owned),
                KeySource::Parameter(p) => request
                    .parameters
                    .as_ref()
                    .and_then(|ps| ps.get(p))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
            }
            .unwrap_or_else(|| unkeyed.fetch_add(1, Ordering::Relaxed).to_string());
            let chosen = split.assign(&k);
            let server = split
                .variants()
                .find(|(n, _)| *n == chosen)
                .map(|(_, s)| s)
                .ok_or_else(|| (RequestError::bad("no variant"), None))?;
            state.metrics.variant(name, chosen);
            (server, Some(chosen.to_owned()))
        }
    };
    let live = server.live();
    let served_version = live.card().version.to_string();
    let with_version = |e: RequestError| (e, Some(served_version.clone()));
    let rows = rows_of(&request, live.card().n_features).map_err(with_version)?;
    drop(live);
    let wanted = requested_outputs(&request).map_err(with_version)?;
    let prediction = server
        .predict_scored(rows.view())
        .map_err(|e| with_version(RequestError::bad(model_persistence_core::error_chain(&e))))?;
    let version = prediction.version.to_string();
    let response =
        build_response(name, &request, prediction, &wanted, variant).map_err(|e| (e, Some(version.clone())))?;
    Ok((response, version))
}

/// Which outputs the request asks for: (predict, predict_proba).
fn requested_outputs(request: &InferRequest) -> Result<(bool, bool), RequestError> {
    let Some(outputs) = &request.outputs else {
        return Ok((true, true));
    };
    let (mut predict, mut proba) = (false, false);
    for o in outputs {
        match o.name.as_str() {
            "predict" => predict = true,
            "predict_proba" => proba = true,
            other => {
                return Err(RequestError::bad(format!(
                    "unknown output {other:?}: the outputs are \"predict\" and \"predict_proba\""
                )))
            }
        }
    }
    Ok((predict, proba))
}

fn build_response(
    name: &str,
    request: &InferRequest,
    prediction: Prediction<ProbeValue>,
    wanted: &(bool, bool),
    variant: Option<String>,
) -> Result<InferResponse, RequestError> {
    let n = prediction.outputs.len();
    let mut outputs = Vec::with_capacity(2);
    if wanted.0 {
        let labels = prediction.outputs.iter().all(|o| matches!(o, ProbeValue::Label(_)));
        let data = prediction
            .outputs
            .iter()
            .map(|o| match o {
                ProbeValue::Label(l) => json!(l),
                ProbeValue::Value(v) => json!(v),
            })
            .collect();
        outputs.push(OutputTensor {
            name: "predict".into(),
            shape: vec![n],
            datatype: if labels { "INT64" } else { "FP64" },
            data,
        });
    }
    match (&prediction.scores, wanted.1, request.outputs.is_some()) {
        (Some(scores), true, _) => outputs.push(OutputTensor {
            name: "predict_proba".into(),
            shape: vec![scores.nrows(), scores.ncols()],
            datatype: "FP64",
            data: scores.iter().map(|v| json!(v)).collect(),
        }),
        (None, true, true) => {
            return Err(RequestError::bad(format!(
                "{name:?} has no scores: ask for \"predict\" only"
            )))
        }
        _ => {}
    }
    let mut parameters = serde_json::Map::new();
    parameters.insert("content_id".into(), json!(prediction.content_id.to_string()));
    if let Some(v) = variant {
        parameters.insert("variant".into(), json!(v));
    }
    Ok(InferResponse {
        model_name: name.to_owned(),
        model_version: prediction.version.to_string(),
        id: request.id.clone(),
        parameters,
        outputs,
    })
}
