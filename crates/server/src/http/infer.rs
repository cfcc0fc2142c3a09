//! Inference over HTTP: the request's JSON (and, with the binary tensor
//! extension, the bytes after it) decoded into the service's typed tensors
//! once, the service asked, and its answer encoded as the protocol's JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::endpoints::{error, json_response};
use super::protocol::{self, RequestError};
use crate::hosting::AppState;
use crate::service::{self, Datatype, InferError, InputTensor, OutputData, Protocol, INLINE_VALUES};

impl AppState {
    /// Counts an inference request refused before its handler ran (a body
    /// over the limit or too slow, refused while it was read), under its
    /// model as the handler would have: `path` is the request's.
    pub(crate) fn count_refused_infer(&self, path: &str, status: u16) {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let name = match parts.as_slice() {
            ["v2", "models", name, "infer"] | ["v2", "models", name, "versions", _, "infer"] => *name,
            _ => return,
        };
        self.count_refused(
            name,
            Protocol::Rest,
            &RequestError::from_status(status, String::new()).into(),
        );
    }
}

pub(super) async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_common(state, name, None, headers, body).await
}

pub(super) async fn infer_at(
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
    let decoded = match body {
        Ok(body) => {
            let key = state
                .routing_header(&name)
                .and_then(|h| Some((h.clone(), headers.get(&h)?.to_str().ok()?.to_owned())));
            decode(name.clone(), version, &headers, &body, key)
        }
        Err(rejection) => Err(if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            InferError::too_large("the request body is over the server's limit")
        } else {
            InferError::invalid(rejection.body_text())
        }),
    };
    let request = match decoded {
        Ok(r) => r,
        Err(e) => {
            state.count_refused(&name, Protocol::Rest, &e);
            return error(&e.into());
        }
    };
    let answer = if request.values() > INLINE_VALUES {
        let state = Arc::clone(&state);
        match tokio::task::spawn_blocking(move || state.infer(request)).await {
            Ok(answer) => answer,
            Err(e) => Err(InferError::invalid(format!("the request was not completed: {e}"))),
        }
    } else {
        state.infer(request)
    };
    match answer {
        Ok(response) => json_response(
            StatusCode::OK,
            serde_json::to_vec(&encode(response)).unwrap_or_default(),
        ),
        Err(e) => error(&e.into()),
    }
}

/// The service's request from the protocol's: the JSON, and with the binary
/// tensor extension (`Inference-Header-Content-Length`) the bytes of the
/// inputs that name their `binary_data_size`, each tensor decoded once.
fn decode(
    model: String,
    version: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
    routing_key: Option<(String, String)>,
) -> Result<service::InferRequest, InferError> {
    let header_len = headers
        .get("inference-header-content-length")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .filter(|&n| n <= body.len())
                .ok_or_else(|| InferError::invalid("Inference-Header-Content-Length is not a length within the body"))
        })
        .transpose()?;
    let (json_part, mut binary) = match header_len {
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let request: protocol::InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| InferError::invalid(format!("malformed inference request: {e}")))?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let size = input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()));
        let data = match size {
            None => None,
            Some(None) => {
                return Err(InferError::invalid(format!(
                    "input {:?}: binary_data_size is not a size",
                    input.name
                )))
            }
            Some(Some(n)) => {
                if n > binary.len() {
                    return Err(InferError::invalid(format!(
                        "input {:?} claims {n} bytes of binary data; {} are left",
                        input.name,
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(n);
                binary = rest;
                Some(mine)
            }
        };
        inputs.push(tensor(input, data)?);
    }
    let trace = service::traceparent_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    Ok(service::InferRequest {
        protocol: Protocol::Rest,
        model,
        version,
        id: request.id,
        inputs,
        outputs: request.outputs.map(|o| o.into_iter().map(|o| o.name).collect()),
        parameters: request
            .parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k, text)
            })
            .collect(),
        metadata: routing_key.into_iter().collect::<BTreeMap<_, _>>(),
        trace_id: trace.as_ref().map(|t| t.trace_id.clone()),
        parent_span_id: trace.as_ref().map(|t| t.parent_span_id.clone()),
        trace_sampled: trace.map(|t| t.sampled),
    })
}

/// One input tensor of the protocol's JSON as the service's: its elements
/// from its binary data, or from the JSON numbers.
pub(super) fn tensor(input: protocol::InputTensor, binary: Option<&[u8]>) -> Result<InputTensor, InferError> {
    let datatype = Datatype::of_input(&input.name, &input.datatype)?;
    let data = match (binary, &input.data) {
        (Some(bytes), _) => datatype.decode_le(&input.name, bytes)?,
        (None, Some(values)) => protocol::numbers(values, datatype, &input.name)?,
        (None, None) => return Err(InferError::invalid(format!("input {:?} has no data", input.name))),
    };
    InputTensor::new(input.name, datatype, &input.shape, data)
}

/// The service's answer as the protocol's JSON.
fn encode(response: service::InferResponse) -> protocol::InferResponse {
    let mut parameters = serde_json::Map::new();
    parameters.insert("content_id".into(), json!(response.content_id));
    if let Some(v) = response.variant {
        parameters.insert("variant".into(), json!(v));
    }
    protocol::InferResponse {
        model_name: response.model_name,
        model_version: response.model_version,
        id: Some(response.id),
        parameters,
        outputs: response
            .outputs
            .into_iter()
            .map(|o| protocol::OutputTensor {
                datatype: o.data.datatype(),
                name: o.name,
                shape: o.shape,
                data: match o.data {
                    OutputData::Int64(v) => v.into_iter().map(Value::from).collect(),
                    OutputData::Fp64(v) => v.into_iter().map(|x| json!(x)).collect(),
                    OutputData::Bytes(v) => v.into_iter().map(Value::from).collect(),
                },
            })
            .collect(),
    }
}
