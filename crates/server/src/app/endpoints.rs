//! Health, server and model metadata, metrics, and the protocol's errors.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use model_persistence_core::{AnyModel, ProbeValue};
use model_persistence_serving::ModelServer;
use serde_json::{json, Value};

use super::{lock, AppState, Route, Slot};
use crate::protocol::{ErrorBody, ModelMetadata, RequestError, TensorMetadata};

pub(super) fn error(e: &RequestError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::to_vec(&ErrorBody {
        error: e.message.clone(),
    })
    .unwrap_or_default();
    json_response(status, body)
}

pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn json_value(status: StatusCode, value: &Value) -> Response {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

pub(super) async fn not_found() -> Response {
    error(&RequestError::not_found("no such endpoint"))
}

pub(super) async fn method_not_allowed() -> Response {
    error(&RequestError {
        status: 405,
        message: "method not allowed on this endpoint".into(),
    })
}

pub(super) async fn server_metadata() -> Response {
    json_value(
        StatusCode::OK,
        &json!({"name": "model-persistence", "version": env!("CARGO_PKG_VERSION"), "extensions": []}),
    )
}

pub(super) async fn live() -> Response {
    json_value(StatusCode::OK, &json!({"live": true}))
}

pub(super) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.ready();
    let status = if ready { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    json_value(status, &json!({"ready": ready}))
}

pub(super) async fn model_ready(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    ready_of(&state, &name, None)
}

pub(super) async fn model_ready_at(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
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
pub(super) fn server_for_version<'a>(route: &'a Route, version: &str) -> Option<&'a ModelServer<AnyModel>> {
    let matches = |s: &ModelServer<AnyModel>| s.live().card().version.to_string() == version;
    match route {
        Route::Single(s) => matches(s).then_some(s),
        Route::Ab { split, .. } => split.variants().map(|(_, s)| s).find(|s| matches(s)),
    }
}

pub(super) fn served_versions(route: &Route) -> Vec<String> {
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

pub(super) fn not_served(name: &str, version: &str, route: &Route) -> RequestError {
    RequestError::not_found(format!(
        "version {version} of {name:?} is not served (serving {})",
        served_versions(route).join(", ")
    ))
}

pub(super) fn not_ready(name: &str, slot: &Slot) -> RequestError {
    let reason = lock(&slot.load_error).clone().unwrap_or_else(|| "loading".into());
    RequestError::bad(format!("model {name:?} is not ready: {reason}"))
}

pub(super) async fn model_metadata(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    metadata_of(&state, &name, None)
}

pub(super) async fn model_metadata_at(
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
            datatype: match (live.classes().is_some(), labels) {
                (true, true) => "BYTES",
                (false, true) => "INT64",
                _ => "FP64",
            }
            .into(),
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

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut body = state.metrics.render(&state.gauges());
    super::feedback::render(&state, &mut body);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
