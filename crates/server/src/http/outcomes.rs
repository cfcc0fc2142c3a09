//! Live outcomes over HTTP: reported by id at `POST
//! /v2/models/{name}/outcomes` (`{"outcomes": [{"id": "r1", "outcome": 1}]}`),
//! the live metrics at `GET` of the same path. What a report does (the
//! join, the guardrail, the A/B decision) is the hosting's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;

use super::endpoints::{error, json_response};
use super::protocol::RequestError;
use crate::access::Caller;
use crate::hosting::{live_outcomes, report_outcomes, AppState, Outcome, OutcomeLabel};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomesRequest {
    outcomes: Vec<OneOutcome>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneOutcome {
    id: String,
    outcome: Label,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Label {
    Int(i64),
    Bool(bool),
    /// A class's name, for a model whose labels index class names.
    Name(String),
}

/// `POST /v2/models/{name}/outcomes`: `{"outcomes": [{"id": "r1", "outcome": 1}, …]}`.
pub(super) async fn post(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !state.knows(&name) {
        return error(&RequestError::not_found(format!("unknown model {name:?}")));
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            return error(&RequestError {
                status: rejection.status().as_u16(),
                message: rejection.body_text(),
            })
        }
    };
    let request: OutcomesRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(&RequestError::bad(format!(
                "outcomes: {e} (expected {{\"outcomes\": [{{\"id\": \"…\", \"outcome\": 1}}]}})"
            )))
        }
    };
    let outcomes = request
        .outcomes
        .into_iter()
        .map(|o| Outcome {
            id: o.id,
            label: match o.outcome {
                Label::Int(l) => OutcomeLabel::Int(l),
                Label::Bool(b) => OutcomeLabel::Bool(b),
                Label::Name(n) => OutcomeLabel::Name(n),
            },
        })
        .collect();
    // Joining is quick; acting may read and write the registry: off the
    // async workers.
    let by = caller.map(|Extension(Caller(name))| name);
    match tokio::task::spawn_blocking(move || report_outcomes(&state, &name, outcomes, by.as_deref())).await {
        Ok(Ok(answer)) => json_response(StatusCode::OK, serde_json::to_vec(&answer).unwrap_or_default()),
        Ok(Err(e)) => error(&e.into()),
        Err(e) => error(&RequestError::bad(format!("the outcomes were not taken: {e}"))),
    }
}

/// `GET /v2/models/{name}/outcomes`: the live metrics of every version and
/// variant that predicted.
pub(super) async fn get(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match live_outcomes(&state, &name) {
        Ok(body) => json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()),
        Err(e) => error(&e.into()),
    }
}
