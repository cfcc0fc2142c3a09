//! The inference service below the protocols: [`AppState::infer`] takes a
//! typed [`InferRequest`] and gives a typed [`InferResponse`] or an
//! [`InferError`]. It decides which model answers (a version asked for, the
//! single route, or an A/B variant by the request's key), predicts, and
//! remembers the prediction for its outcome. It knows nothing of HTTP or
//! gRPC: each protocol is a thin adapter that decodes its request into
//! these types once and encodes the answer (`http/` for the REST protocol;
//! a gRPC adapter is another such file).

mod error;
mod metadata;
mod tensor;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use model_persistence_core::{AnyModel, ProbeValue};
use model_persistence_serving::{ModelServer, Prediction};

pub use crate::hosting::RepositoryEntry;
pub use error::{ErrorKind, InferError};
pub use metadata::{server_metadata, ModelMetadata, ServerMetadata, TensorMetadata};
pub use tensor::{rows_of, Datatype, InputTensor, OutputData, OutputTensor};

use crate::config::KeySource;
use crate::hosting::{AppState, Route, Slot};
use crate::prometheus::Outcome;

/// Requests with more input elements than this are answered on the blocking
/// pool, not on the async worker that read them.
pub const INLINE_VALUES: usize = 16_384;

/// The transport a request came by: a label of the metrics, nothing more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// A call from the program itself.
    #[default]
    InProcess,
    /// The Open Inference Protocol over REST.
    Rest,
    /// The Open Inference Protocol over gRPC.
    Grpc,
}

impl Protocol {
    /// The metrics' `protocol` label.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::InProcess => "in_process",
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
        }
    }
}

/// An inference request, whatever protocol it came in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InferRequest {
    /// The transport it came by (the metrics' `protocol` label).
    pub protocol: Protocol,
    /// The served model's name.
    pub model: String,
    /// The version asked for; `None` for the one the route serves.
    pub version: Option<String>,
    /// The request's id, echoed, and the id its outcome is reported under
    /// (the server makes one when absent).
    pub id: Option<String>,
    /// The input tensors.
    pub inputs: Vec<InputTensor>,
    /// The outputs wanted by name (`predict`, `predict_proba`); `None` for
    /// every output the model has.
    pub outputs: Option<Vec<String>>,
    /// The request's parameters, as text (an A/B key may be one of them).
    pub parameters: BTreeMap<String, String>,
    /// The transport's headers or metadata, names in lower case (an A/B key
    /// may be one of them). The adapters copy only the header
    /// [`AppState::routing_header`] names.
    pub metadata: BTreeMap<String, String>,
    /// The W3C trace id of the caller's `traceparent` (32 hex digits), when
    /// it sent one: recorded with the prediction.
    pub trace_id: Option<String>,
    /// The caller's span id of its `traceparent` (16 hex digits): the
    /// parent of the request's span.
    pub parent_span_id: Option<String>,
    /// The caller's decision, in its `traceparent`'s flags, whether this
    /// trace is recorded; `None` without one (the server's sample share
    /// decides).
    pub trace_sampled: Option<bool>,
}

/// The trace id of a W3C `traceparent` value
/// (`VERSION-TRACEID-PARENTID-FLAGS`, lower-case hex), or `None` for a
/// missing or malformed one (an all-zero id is invalid).
pub fn trace_id_of(traceparent: Option<&str>) -> Option<String> {
    traceparent_of(traceparent).map(|t| t.trace_id)
}

/// What a W3C `traceparent` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// The caller's span, 16 hex digits.
    pub parent_span_id: String,
    /// Whether the caller records this trace (the `sampled` flag).
    pub sampled: bool,
}

/// The trace id, parent span id and sampled flag of a W3C `traceparent`
/// value, or `None` for a missing or malformed one.
pub fn traceparent_of(traceparent: Option<&str>) -> Option<TraceParent> {
    let mut parts = traceparent?.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0')
        && (version != "00" || parts.next().is_none());
    let sampled = u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1);
    valid.then(|| TraceParent {
        trace_id: trace.to_owned(),
        parent_span_id: parent.to_owned(),
        sampled,
    })
}

impl InferRequest {
    /// The number of input elements, over every input.
    pub fn values(&self) -> usize {
        self.inputs.iter().map(|i| i.data.len()).fold(0, usize::saturating_add)
    }
}

/// What the service answers.
#[derive(Debug, Clone, PartialEq)]
pub struct InferResponse {
    /// The served model's name.
    pub model_name: String,
    /// The version that answered.
    pub model_version: String,
    /// The request's id, or the one the server gave it.
    pub id: String,
    /// The content id of the bundle that answered.
    pub content_id: String,
    /// Under an A/B test, the variant that answered.
    pub variant: Option<String>,
    /// The output tensors.
    pub outputs: Vec<OutputTensor>,
}

impl AppState {
    /// Answers an inference request: the model (or version, or A/B
    /// variant) that answers, its prediction, and the prediction remembered
    /// under the response's id for its outcome. Counted in the metrics
    /// under the model's name and the version that answered.
    ///
    /// # Errors
    ///
    /// [`InferError`]: an unknown model or version, a model not loaded yet,
    /// inputs the model cannot take.
    pub fn infer(&self, mut request: InferRequest) -> Result<InferResponse, InferError> {
        let start = Instant::now();
        let label = self.metric_label(&request.model).to_owned();
        let protocol = request.protocol.label();
        // Under tracing every request has a trace id (the caller's, or a
        // new one), recorded with its prediction; its spans are recorded
        // when the caller's sampled flag says so, or, without a caller's
        // decision, for the configured share of traces.
        let span = self.tracer().and_then(|tracer| {
            let trace = request
                .trace_id
                .as_deref()
                .and_then(crate::trace::unhex::<16>)
                .unwrap_or_else(|| tracer.trace_id());
            request.trace_id = Some(crate::trace::hex(&trace));
            let recorded = request.trace_sampled.unwrap_or_else(|| tracer.samples(&trace));
            let parent = request.parent_span_id.as_deref().and_then(crate::trace::unhex::<8>);
            recorded.then(|| {
                (
                    trace,
                    tracer.span_id(),
                    parent,
                    std::time::SystemTime::now(),
                    request.protocol,
                )
            })
        });
        let rows = request
            .inputs
            .first()
            .and_then(|i| i.shape.first().copied())
            .unwrap_or(0);
        let trace_id = request.trace_id.clone();
        let mut predicted = None;
        let result = self.answer(request, start, &mut predicted);
        if let (Some(tracer), Some((trace, id, parent, began, protocol))) = (self.tracer(), span) {
            self.trace_request(
                tracer,
                (trace, id, parent, began, protocol),
                &label,
                rows,
                &result,
                predicted,
            );
        }
        match result {
            Ok(response) => {
                self.metrics
                    .request(&label, &response.model_version, protocol, Outcome::Ok);
                let took = start.elapsed();
                self.metrics.latency(&label).observe(took);
                // One structured event per request (RUST_LOG=debug), with
                // the fields of its payload record.
                tracing::debug!(
                    id = %response.id,
                    trace_id = trace_id.as_deref().unwrap_or(""),
                    model = %label,
                    version = %response.model_version,
                    variant = response.variant.as_deref().unwrap_or(""),
                    protocol,
                    latency_us = took.as_micros() as u64,
                    "answered"
                );
                Ok(response)
            }
            Err((e, version)) => {
                tracing::debug!(
                    trace_id = trace_id.as_deref().unwrap_or(""),
                    model = %label,
                    protocol,
                    error = %e,
                    "refused"
                );
                self.metrics.request(
                    &label,
                    version.as_deref().unwrap_or("none"),
                    protocol,
                    Outcome::of_kind(e.kind),
                );
                Err(e)
            }
        }
    }

    /// Counts a request a protocol adapter refused before it reached the
    /// service (a body over the limit, a malformed request), under its
    /// model as [`infer`](Self::infer) would have.
    pub fn count_refused(&self, model: &str, protocol: Protocol, error: &InferError) {
        self.metrics.request(
            self.metric_label(model),
            "none",
            protocol.label(),
            Outcome::of_kind(error.kind),
        );
    }

    /// Metrics are labelled by configured names only: names from requests
    /// for unknown models would grow the series without bound.
    fn metric_label<'a>(&self, model: &'a str) -> &'a str {
        if self.knows(model) {
            model
        } else {
            "_unknown"
        }
    }

    /// The request's span, and its `predict` child when the model ran.
    fn trace_request(
        &self,
        tracer: &crate::trace::Tracer,
        (trace, id, parent, began, protocol): ([u8; 16], [u8; 8], Option<[u8; 8]>, std::time::SystemTime, Protocol),
        model: &str,
        rows: usize,
        result: &Result<InferResponse, (InferError, Option<String>)>,
        predicted: Option<(std::time::SystemTime, std::time::SystemTime)>,
    ) {
        use crate::trace::{Attr, SpanData};
        let (name, route) = match protocol {
            Protocol::Grpc => (
                "inference.GRPCInferenceService/ModelInfer".to_owned(),
                "inference.GRPCInferenceService/ModelInfer",
            ),
            _ => ("POST /v2/models/{name}/infer".to_owned(), "/v2/models/{name}/infer"),
        };
        let mut attributes = vec![
            ("mp.protocol", Attr::Str(protocol.label().into())),
            ("mp.model", Attr::Str(model.into())),
            ("mp.rows", Attr::Int(rows as i64)),
            ("http.route", Attr::Str(route.into())),
        ];
        let error = match result {
            Ok(r) => {
                attributes.push(("mp.version", Attr::Str(r.model_version.clone())));
                attributes.push(("mp.prediction_id", Attr::Str(r.id.clone())));
                attributes.push(("mp.content_id", Attr::Str(r.content_id.clone())));
                if let Some(v) = &r.variant {
                    attributes.push(("mp.variant", Attr::Str(v.clone())));
                }
                attributes.push(("mp.outcome", Attr::Str("ok".into())));
                None
            }
            Err((e, version)) => {
                if let Some(v) = version {
                    attributes.push(("mp.version", Attr::Str(v.clone())));
                }
                attributes.push(("mp.outcome", Attr::Str(Outcome::of_kind(e.kind).label().into())));
                Some(e.message.clone())
            }
        };
        if let Some((start, end)) = predicted {
            tracer.record(SpanData {
                trace_id: trace,
                span_id: tracer.span_id(),
                parent: Some(id),
                name: "predict".into(),
                kind: 1,
                start,
                end,
                attributes: vec![
                    ("mp.model", Attr::Str(model.into())),
                    ("mp.rows", Attr::Int(rows as i64)),
                ],
                error: None,
            });
        }
        tracer.record(SpanData {
            trace_id: trace,
            span_id: id,
            parent,
            name,
            kind: 2,
            start: began,
            end: std::time::SystemTime::now(),
            attributes,
            error,
        });
    }

    fn answer(
        &self,
        request: InferRequest,
        start: Instant,
        predicted: &mut Option<(std::time::SystemTime, std::time::SystemTime)>,
    ) -> Result<InferResponse, (InferError, Option<String>)> {
        let name = request.model.as_str();
        let slot = self.slot(name).map_err(|e| (e, None))?;
        let route = slot.route.get().ok_or_else(|| (not_ready(name, &slot), None))?;
        let (server, variant) = choose(self, &slot, route, &request).map_err(|e| (e, None))?;
        let live = server.live();
        let served_version = live.card().version.to_string();
        let n_features = live.card().n_features;
        let log = self.payload().filter(|log| log.sampled());
        let features = log.map(|_| live.card().features.clone());
        drop(live);
        let with_version = |e: InferError| (e, Some(served_version.clone()));
        let wanted = requested_outputs(request.outputs.as_deref()).map_err(with_version)?;
        let InferRequest {
            id,
            inputs,
            trace_id,
            protocol,
            ..
        } = request;
        let rows = rows_of(inputs, n_features).map_err(with_version)?;
        let began = std::time::SystemTime::now();
        let prediction = server.predict_scored(rows.view());
        *predicted = Some((began, std::time::SystemTime::now()));
        let prediction =
            prediction.map_err(|e| with_version(InferError::invalid(model_persistence_core::error_chain(&e))))?;
        let version = prediction.version.to_string();
        let content_id = prediction.content_id.to_string();
        // Every prediction has an id, under which its outcome is reported.
        let id = id.unwrap_or_else(|| self.new_id());
        crate::hosting::record(&slot, &id, &prediction, variant.as_deref());
        let logged_rows = log.map(|log| log.rows(features.as_deref().unwrap_or_default(), rows.view()));
        let outputs = outputs_of(name, prediction, wanted).map_err(|e| (e, Some(version.clone())))?;
        if let (Some(log), Some(rows)) = (log, logged_rows) {
            log.record(&serde_json::json!({
                "kind": "prediction",
                "at": crate::payload::now(),
                "id": id,
                "trace_id": trace_id,
                "model": name,
                "version": version,
                "variant": variant,
                "content_id": content_id,
                "protocol": protocol.label(),
                "inputs": {"features": features, "rows": rows},
                "outputs": crate::payload::outputs_json(&outputs),
                "latency_us": start.elapsed().as_micros() as u64,
            }));
        }
        Ok(InferResponse {
            model_name: name.to_owned(),
            model_version: version,
            id,
            content_id,
            variant,
            outputs,
        })
    }
}

/// Which server answers: the version asked for, the single route, or the
/// A/B variant the request's key is assigned to (a header or parameter, as
/// configured; requests without one are spread in turn).
fn choose<'a>(
    state: &AppState,
    slot: &Slot,
    route: &'a Route,
    request: &InferRequest,
) -> Result<(&'a ModelServer<AnyModel>, Option<String>), InferError> {
    let name = slot.name.as_str();
    match (request.version.as_deref(), route) {
        (Some(v), _) => Ok((
            route.server_for_version(v).ok_or_else(|| not_served(name, v, route))?,
            None,
        )),
        (None, Route::Single(s)) => Ok((s, None)),
        (None, Route::Ab { split, key, unkeyed }) => {
            let k = match key {
                KeySource::Header(h) => request.metadata.get(&h.to_ascii_lowercase()).cloned(),
                KeySource::Parameter(p) => request.parameters.get(p).cloned(),
            }
            .unwrap_or_else(|| unkeyed.fetch_add(1, Ordering::Relaxed).to_string());
            let chosen = split.assign(&k);
            let server = split
                .variants()
                .find(|(n, _)| *n == chosen)
                .map(|(_, s)| s)
                .ok_or_else(|| InferError::invalid("no variant"))?;
            state.metrics.variant(name, chosen);
            Ok((server, Some(chosen.to_owned())))
        }
    }
}

/// The refusal for a version a route does not serve.
pub(crate) fn not_served(name: &str, version: &str, route: &Route) -> InferError {
    InferError::not_found(format!(
        "version {version} of {name:?} is not served (serving {})",
        route.served_versions().join(", ")
    ))
}

/// The refusal for a model that has not loaded yet, with the reason.
pub(crate) fn not_ready(name: &str, slot: &Slot) -> InferError {
    let reason = slot.load_error().unwrap_or_else(|| "loading".into());
    InferError::unavailable(format!("model {name:?} is not ready: {reason}"))
}

/// Which outputs the request asks for: (predict, predict_proba).
fn requested_outputs(outputs: Option<&[String]>) -> Result<(bool, bool, bool), InferError> {
    let Some(outputs) = outputs else {
        return Ok((true, true, false));
    };
    let (mut predict, mut proba) = (false, false);
    for o in outputs {
        match o.as_str() {
            "predict" => predict = true,
            "predict_proba" => proba = true,
            other => {
                return Err(InferError::invalid(format!(
                    "unknown output {other:?}: the outputs are \"predict\" and \"predict_proba\""
                )))
            }
        }
    }
    Ok((predict, proba, true))
}

/// The output tensors of a prediction: `predict` (labels, class names or
/// values) and `predict_proba` (scores), as asked.
fn outputs_of(
    name: &str,
    prediction: Prediction<ProbeValue>,
    (predict, proba, asked): (bool, bool, bool),
) -> Result<Vec<OutputTensor>, InferError> {
    let n = prediction.outputs.len();
    let mut outputs = Vec::with_capacity(2);
    if predict {
        let labels: Option<Vec<i64>> = prediction
            .outputs
            .iter()
            .map(|o| match o {
                ProbeValue::Label(l) => Some(*l),
                ProbeValue::Value(_) => None,
            })
            .collect();
        let data = match labels {
            // A model whose labels index class names (an ONNX graph with
            // string labels) answers with the names.
            Some(labels) => {
                let names: Option<Vec<String>> = prediction.classes.as_deref().and_then(|names| {
                    labels
                        .iter()
                        .map(|&l| names.get(usize::try_from(l).ok()?).cloned())
                        .collect()
                });
                match names {
                    Some(names) => OutputData::Bytes(names),
                    None => OutputData::Int64(labels),
                }
            }
            None => OutputData::Fp64(
                prediction
                    .outputs
                    .iter()
                    .map(|o| match o {
                        ProbeValue::Value(v) => *v,
                        ProbeValue::Label(l) => *l as f64,
                    })
                    .collect(),
            ),
        };
        outputs.push(OutputTensor {
            name: "predict".into(),
            shape: vec![n],
            data,
        });
    }
    match (prediction.scores, proba, asked) {
        (Some(scores), true, _) => {
            let shape = vec![scores.nrows(), scores.ncols()];
            let data = if scores.is_standard_layout() {
                // Row-major and contiguous: the elements are the buffer's
                // from the offset on, taken without a copy.
                let n = scores.len();
                let (mut buffer, offset) = scores.into_raw_vec_and_offset();
                let offset = offset.unwrap_or(0);
                buffer.truncate(offset + n);
                buffer.drain(..offset);
                buffer
            } else {
                scores.iter().copied().collect()
            };
            outputs.push(OutputTensor {
                name: "predict_proba".into(),
                shape,
                data: OutputData::Fp64(data),
            });
        }
        (None, true, true) => {
            return Err(InferError::invalid(format!(
                "{name:?} has no scores: ask for \"predict\" only"
            )))
        }
        _ => {}
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::trace_id_of;

    #[test]
    fn trace_ids_come_from_valid_traceparents_only() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id_of(Some(&format!("00-{id}-00f067aa0ba902b7-01"))).as_deref(),
            Some(id)
        );
        for bad in [
            None,
            Some(""),
            Some("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad:?}");
        }
        // A later version may append fields.
        assert!(trace_id_of(Some(&format!("01-{id}-00f067aa0ba902b7-01-more"))).is_some());
    }
}
