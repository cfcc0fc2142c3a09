//! The Open Inference Protocol over HTTP (KServe v2 REST): a thin adapter
//! over the inference service. One concept per file: `protocol` (the JSON
//! of requests, responses and errors), `infer` (an inference request
//! decoded into the service's typed tensors, JSON or binary, and the answer
//! encoded), `endpoints` (health, metadata, metrics, the protocol's
//! errors), `outcomes` (live outcomes reported and read), `repository` (the
//! model repository extension), `pages` (the HTML model pages).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::hosting::AppState;

mod endpoints;
mod infer;
mod outcomes;
mod pages;
pub mod protocol;
mod repository;

/// The HTTP routes of the protocol, the metrics and the model pages over
/// `state`, refusing bodies over `body_limit` bytes (413).
pub(crate) fn router(state: Arc<AppState>, body_limit: usize) -> Router {
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
        .route("/v2/models/{name}/outcomes", post(outcomes::post).get(outcomes::get))
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{name}/load", post(repository::load))
        .route("/v2/repository/models/{name}/unload", post(repository::unload))
        .route("/metrics", get(endpoints::metrics))
        .route("/", get(pages::index))
        .route("/models/{name}", get(pages::model))
        .fallback(endpoints::not_found)
        .method_not_allowed_fallback(endpoints::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
