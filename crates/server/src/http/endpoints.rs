//! Health, server and model metadata, metrics, and the protocol's errors.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::protocol::{ErrorBody, RequestError};
use crate::hosting::AppState;

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

pub(super) async fn not_found(headers: axum::http::HeaderMap) -> Response {
    if crate::grpc::is_grpc(&headers) {
        return tonic::Status::unimplemented("no such method: the service is inference.GRPCInferenceService")
            .into_http();
    }
    error(&RequestError::not_found("no such endpoint"))
}

pub(super) async fn method_not_allowed() -> Response {
    error(&RequestError {
        status: 405,
        message: "method not allowed on this endpoint".into(),
    })
}

pub(super) async fn server_metadata() -> Response {
    let meta = crate::service::server_metadata();
    json_value(
        StatusCode::OK,
        &json!({"name": meta.name, "version": meta.version, "extensions": meta.extensions}),
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
    match state.model_ready(name, version) {
        Ok(ready) => {
            let status = if ready { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            json_value(status, &json!({"name": name, "ready": ready}))
        }
        Err(e) => error(&e.into()),
    }
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
    match state.model_metadata(name, version) {
        Ok(meta) => json_response(StatusCode::OK, serde_json::to_vec(&meta).unwrap_or_default()),
        Err(e) => error(&e.into()),
    }
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut body = state.metrics.render(&state.gauges());
    crate::hosting::render_live(&state, &mut body);
    if let Some(tracer) = state.tracer() {
        use std::fmt::Write;
        let _ = writeln!(
            body,
            "# HELP mp_trace_spans_exported_total Spans the OTLP collector took.\n# TYPE mp_trace_spans_exported_total counter\n\
             mp_trace_spans_exported_total {}\n\
             # HELP mp_trace_spans_dropped_total Spans dropped: the queue was full or the collector did not take them.\n\
             # TYPE mp_trace_spans_dropped_total counter\nmp_trace_spans_dropped_total {}",
            tracer.exported.load(std::sync::atomic::Ordering::Relaxed),
            tracer.dropped.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    if let Some(log) = state.payload() {
        use std::fmt::Write;
        let _ = writeln!(
            body,
            "# HELP mp_payload_records_total Payload log records written.\n# TYPE mp_payload_records_total counter\n\
             mp_payload_records_total {}\n\
             # HELP mp_payload_dropped_total Payload log records dropped: the queue was full.\n\
             # TYPE mp_payload_dropped_total counter\nmp_payload_dropped_total {}",
            log.written.load(std::sync::atomic::Ordering::Relaxed),
            log.dropped.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
