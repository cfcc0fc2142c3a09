//! Inference requests: parsing (JSON and binary tensors), routing to a
//! version or an A/B variant, predicting, and the answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use model_persistence_core::ProbeValue;
use model_persistence_serving::Prediction;
use serde_json::json;

use super::endpoints::{error, json_response, not_ready, not_served, server_for_version};
use super::{AppState, Route, INLINE_VALUES};
use crate::config::KeySource;
use crate::prometheus::Outcome;
use crate::protocol::{rows_of, InferRequest, InferResponse, OutputTensor, RequestError};

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
        let label = if self.by_name.contains_key(name) {
            name
        } else {
            "_unknown"
        };
        self.metrics.request(label, "none", Outcome::of_status(status));
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
                input.binary = Some(decode_binary(&input.name, &input.datatype, mine)?);
            }
        }
    }
    Ok(request)
}

/// Binary tensor data as the numbers the model reads, decoded once (no
/// JSON values in between).
fn decode_binary(name: &str, datatype: &str, bytes: &[u8]) -> Result<Vec<f64>, RequestError> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
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
    // NaN and infinities pass as they are: the model's checks decide.
    Ok(match datatype {
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
    })
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
    // Every prediction has an id, under which its outcome is reported.
    let id = request.id.clone().unwrap_or_else(|| state.new_id());
    super::feedback::record(slot, &id, &prediction, variant.as_deref());
    let response =
        build_response(name, &request, id, prediction, &wanted, variant).map_err(|e| (e, Some(version.clone())))?;
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
    id: String,
    prediction: Prediction<ProbeValue>,
    wanted: &(bool, bool),
    variant: Option<String>,
) -> Result<InferResponse, RequestError> {
    let n = prediction.outputs.len();
    let mut outputs = Vec::with_capacity(2);
    if wanted.0 {
        let labels = prediction.outputs.iter().all(|o| matches!(o, ProbeValue::Label(_)));
        // A model whose labels index class names (an ONNX graph with string
        // labels) answers with the names.
        let name_of = |l: i64| {
            let names = prediction.classes.as_deref()?;
            names.get(usize::try_from(l).ok()?)
        };
        let named = labels
            && prediction.classes.is_some()
            && prediction
                .outputs
                .iter()
                .all(|o| matches!(o, ProbeValue::Label(l) if name_of(*l).is_some()));
        let data = prediction
            .outputs
            .iter()
            .map(|o| match o {
                ProbeValue::Label(l) if named => json!(name_of(*l)),
                ProbeValue::Label(l) => json!(l),
                ProbeValue::Value(v) => json!(v),
            })
            .collect();
        outputs.push(OutputTensor {
            name: "predict".into(),
            shape: vec![n],
            datatype: match (named, labels) {
                (true, _) => "BYTES",
                (false, true) => "INT64",
                (false, false) => "FP64",
            },
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
        id: Some(id),
        parameters,
        outputs,
    })
}
