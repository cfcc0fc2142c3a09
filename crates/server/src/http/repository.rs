//! The model repository extension over HTTP: `POST /v2/repository/index`,
//! `POST /v2/repository/models/{name}/load` (body, optional:
//! `{"parameters": {"reference": "NAME@ALIAS"}}`; default
//! `NAME@production`) and `.../unload`. What each does is the hosting's
//! (`AppState::load_model`); refused with 403 unless the server runs with
//! `--repository-api`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::endpoints::{error, json_value};
use super::protocol::RequestError;
use crate::hosting::AppState;
use crate::service::RepositoryEntry;

fn entry(e: &RepositoryEntry) -> Value {
    let mut v = json!({"name": e.name, "state": e.state, "reason": e.reason});
    if let Some(version) = &e.version {
        v["version"] = json!(version);
    }
    v
}

#[derive(Deserialize, Default)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

#[derive(Deserialize, Default)]
struct LoadRequest {
    #[serde(default)]
    parameters: Option<serde_json::Map<String, Value>>,
}

/// A body that is empty or the JSON of `T`.
fn body_of<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| RequestError::bad(format!("malformed request: {e}")))
}

pub(super) async fn index(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: IndexRequest = match body_of(&body) {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    match state.repository_index(request.ready) {
        Ok(entries) => json_value(StatusCode::OK, &Value::Array(entries.iter().map(entry).collect())),
        Err(e) => error(&e.into()),
    }
}

pub(super) async fn load(State(state): State<Arc<AppState>>, Path(name): Path<String>, body: Bytes) -> Response {
    let request: LoadRequest = match body_of(&body) {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    let reference = match request.parameters.as_ref().and_then(|p| p.get("reference")) {
        None => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(other) => {
            return error(&RequestError::bad(format!(
                "parameters.reference is {other}: a string such as \"{name}@production\""
            )))
        }
    };
    // A load reads and checks a bundle: off the async workers.
    match tokio::task::spawn_blocking(move || state.load_model(&name, reference.as_deref())).await {
        Ok(Ok(loaded)) => json_value(StatusCode::OK, &entry(&loaded)),
        Ok(Err(e)) => error(&e.into()),
        Err(e) => error(&RequestError::bad(format!("the load was not completed: {e}"))),
    }
}

pub(super) async fn unload(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.unload_model(&name) {
        Ok(()) => json_value(StatusCode::OK, &json!({"name": name, "state": "UNAVAILABLE"})),
        Err(e) => error(&e.into()),
    }
}
