//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`):
//! a thin adapter over the inference service, as `http/` is for REST, and
//! served on the same port (the server tells the two apart per request:
//! gRPC is HTTP/2 with `content-type: application/grpc`).
//!
//! A request's tensors arrive typed (`contents`) or as little-endian bytes
//! (`raw_input_contents`) and are decoded once into the service's tensors.
//! The answer's tensors go back as raw bytes (`raw_output_contents`) when
//! the client sent raw inputs or asked for an output with the parameter
//! `binary_data: true`, and typed otherwise. Every refusal is a status a
//! client can act on (`INVALID_ARGUMENT`, `NOT_FOUND`, `UNAVAILABLE`,
//! `RESOURCE_EXHAUSTED`), never `INTERNAL`.

pub(crate) mod codec;

/// The protocol's messages and service, generated from
/// `proto/grpc_predict_v2.proto` at build time.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("inference");
}

use std::collections::BTreeMap;
use std::sync::Arc;

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::infer_parameter::ParameterChoice;
use proto::model_infer_request::InferInputTensor;
use proto::model_infer_response::InferOutputTensor;
use proto::model_metadata_response::TensorMetadata;
use proto::*;
use tonic::{Request, Response, Status};

use crate::hosting::AppState;
use crate::service::{self, Datatype, ErrorKind, InferError, InputTensor, OutputData, Protocol, INLINE_VALUES};

/// `router` with the gRPC service's methods added, over `state`: messages
/// over `body_limit` bytes are refused (`RESOURCE_EXHAUSTED`). The REST
/// router keeps its fallback (a gRPC call to an unknown method is answered
/// `UNIMPLEMENTED` there).
pub(crate) fn add_to(router: axum::Router, state: Arc<AppState>, body_limit: usize) -> axum::Router {
    use tonic::server::NamedService;
    use tower::ServiceExt;
    type Service = GrpcInferenceServiceServer<Grpc>;
    let service = Service::new(Grpc { state })
        .max_decoding_message_size(body_limit)
        .max_encoding_message_size(usize::MAX);
    router.route_service(
        &format!("/{}/{{*method}}", Service::NAME),
        service.map_request(|r: axum::http::Request<axum::body::Body>| r.map(tonic::body::Body::new)),
    )
}

struct Grpc {
    state: Arc<AppState>,
}

/// The service's refusal as the gRPC status of the same meaning.
pub(crate) fn status(e: InferError) -> Status {
    match e.kind {
        ErrorKind::InvalidArgument => Status::invalid_argument(e.message),
        ErrorKind::NotFound => Status::not_found(e.message),
        ErrorKind::Unavailable => Status::unavailable(e.message),
        ErrorKind::TooLarge => Status::resource_exhausted(e.message),
        ErrorKind::Forbidden => Status::permission_denied(e.message),
        ErrorKind::Unauthenticated => Status::unauthenticated(e.message),
    }
}

/// Whether a request is a gRPC call (`content-type: application/grpc`,
/// with or without a `+proto` suffix).
pub(crate) fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Checks a unary call's body before the service reads it: one whole
/// length-prefixed message, uncompressed (a message marked compressed is
/// passed on when the call names its encoding, which tonic answers
/// `UNIMPLEMENTED`), within `limit` bytes. tonic's own framing errors are
/// `INTERNAL`; these are the client's.
///
/// # Errors
///
/// The refusal to answer the call with.
pub(crate) fn check_frame(headers: &axum::http::HeaderMap, body: &[u8], limit: usize) -> Result<(), Status> {
    let Some((&flag, rest)) = body.split_first() else {
        return Err(Status::invalid_argument("the call carries no message"));
    };
    let Some((len, message)) = rest.split_first_chunk::<4>() else {
        return Err(Status::invalid_argument("the message's length prefix is cut short"));
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > limit {
        return Err(Status::resource_exhausted(format!(
            "the message is {len} bytes, over the server's limit of {limit}"
        )));
    }
    if len != message.len() {
        return Err(Status::invalid_argument(format!(
            "the message's prefix says {len} bytes and {} follow: a call carries one whole message",
            message.len()
        )));
    }
    let encoded = headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes() != b"identity");
    match flag {
        0 => Ok(()),
        1 if encoded => Ok(()),
        1 => Err(Status::invalid_argument(
            "a message marked compressed in a call that names no encoding",
        )),
        f => Err(Status::invalid_argument(format!(
            "the message's compression flag is {f}: 0 or 1"
        ))),
    }
}

fn version_of(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.ready(),
        }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let ready = self
            .state
            .model_ready(&r.name, version_of(&r.version))
            .map_err(status)?;
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        let meta = service::server_metadata();
        Ok(Response::new(ServerMetadataResponse {
            name: meta.name,
            version: meta.version,
            extensions: meta.extensions,
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let meta = self
            .state
            .model_metadata(&r.name, version_of(&r.version))
            .map_err(status)?;
        let tensor = |t: service::TensorMetadata| TensorMetadata {
            name: t.name,
            datatype: t.datatype,
            shape: t.shape,
        };
        Ok(Response::new(ModelMetadataResponse {
            name: meta.name,
            versions: meta.versions,
            platform: meta.platform,
            inputs: meta.inputs.into_iter().map(tensor).collect(),
            outputs: meta.outputs.into_iter().map(tensor).collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let entries = self
            .state
            .repository_index(request.into_inner().ready)
            .map_err(status)?;
        Ok(Response::new(RepositoryIndexResponse {
            models: entries
                .into_iter()
                .map(|e| proto::repository_index_response::ModelIndex {
                    name: e.name,
                    version: e.version.unwrap_or_default(),
                    state: e.state.to_owned(),
                    reason: e.reason,
                })
                .collect(),
        }))
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let r = request.into_inner();
        let reference = match r.parameters.get("reference").and_then(|p| p.parameter_choice.as_ref()) {
            None => None,
            Some(proto::model_repository_parameter::ParameterChoice::StringParam(s)) => Some(s.clone()),
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the parameter reference is a string such as NAME@production",
                ))
            }
        };
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || state.load_model(&r.model_name, reference.as_deref()))
            .await
            .unwrap_or_else(|e| Err(InferError::invalid(format!("the load was not completed: {e}"))))
            .map_err(status)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        self.state
            .unload_model(&request.into_inner().model_name)
            .map_err(status)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let (headers, _, message) = request.into_parts();
        let model = message.model_name.clone();
        // Only the header the model's A/B split is keyed by, if any.
        let metadata: BTreeMap<String, String> = self
            .state
            .routing_header(&model)
            .and_then(|h| Some((h.clone(), headers.get(h.as_str())?.to_str().ok()?.to_owned())))
            .into_iter()
            .collect();
        let trace = service::traceparent_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
        let (request, raw) = match decode(message, metadata) {
            Ok((mut request, raw)) => {
                if let Some(t) = trace {
                    request.trace_id = Some(t.trace_id);
                    request.parent_span_id = Some(t.parent_span_id);
                    request.trace_sampled = Some(t.sampled);
                }
                (request, raw)
            }
            Err(e) => {
                self.state.count_refused(&model, Protocol::Grpc, &e);
                return Err(status(e));
            }
        };
        let answer = if request.values() > INLINE_VALUES {
            let state = Arc::clone(&self.state);
            tokio::task::spawn_blocking(move || state.infer(request))
                .await
                .unwrap_or_else(|e| Err(InferError::invalid(format!("the request was not completed: {e}"))))
        } else {
            self.state.infer(request)
        };
        Ok(Response::new(encode(answer.map_err(status)?, raw)))
    }
}

/// The service's request from the protocol's message, and whether the
/// answer goes back as raw bytes.
fn decode(
    message: ModelInferRequest,
    metadata: BTreeMap<String, String>,
) -> Result<(service::InferRequest, bool), InferError> {
    let ModelInferRequest {
        model_name,
        model_version,
        id,
        parameters,
        inputs,
        outputs,
        raw_input_contents,
    } = message;
    let raw_inputs = !raw_input_contents.is_empty();
    if raw_inputs && raw_input_contents.len() != inputs.len() {
        return Err(InferError::invalid(format!(
            "{} raw_input_contents for {} inputs: give one per input, in order",
            raw_input_contents.len(),
            inputs.len()
        )));
    }
    let mut tensors = Vec::with_capacity(inputs.len());
    let mut raw = raw_input_contents.into_iter();
    for input in inputs {
        let bytes = raw.next();
        if bytes.is_some() && input.contents.is_some() {
            return Err(InferError::invalid(format!(
                "input {:?} has contents and raw_input_contents: give one",
                input.name
            )));
        }
        tensors.push(tensor(input, bytes.as_deref())?);
    }
    let raw_outputs = raw_inputs
        || outputs.iter().any(|o| {
            matches!(
                o.parameters
                    .get("binary_data")
                    .and_then(|p| p.parameter_choice.as_ref()),
                Some(ParameterChoice::BoolParam(true))
            )
        });
    let request = service::InferRequest {
        protocol: Protocol::Grpc,
        model: model_name,
        version: version_of(&model_version).map(str::to_owned),
        id: (!id.is_empty()).then_some(id),
        inputs: tensors,
        outputs: (!outputs.is_empty()).then(|| outputs.into_iter().map(|o| o.name).collect()),
        parameters: parameters
            .into_iter()
            .filter_map(|(k, v)| {
                let text = match v.parameter_choice? {
                    ParameterChoice::BoolParam(b) => b.to_string(),
                    ParameterChoice::Int64Param(i) => i.to_string(),
                    ParameterChoice::StringParam(s) => s,
                };
                Some((k, text))
            })
            .collect(),
        metadata,
        trace_id: None,
        parent_span_id: None,
        trace_sampled: None,
    };
    Ok((request, raw_outputs))
}

/// One input tensor: its raw little-endian bytes, or its typed contents in
/// the field of its datatype (values out of the datatype's range refused).
fn tensor(input: InferInputTensor, raw: Option<&[u8]>) -> Result<InputTensor, InferError> {
    let name = input.name;
    let datatype = Datatype::of_input(&name, &input.datatype)?;
    let data = match (raw, input.contents) {
        (Some(bytes), _) => datatype.decode_le(&name, bytes)?,
        (None, None) => return Err(InferError::invalid(format!("input {name:?} has no contents"))),
        (None, Some(c)) => {
            let within = |v: i64, lo: i64, hi: i64| {
                if (lo..=hi).contains(&v) {
                    Ok(v as f64)
                } else {
                    Err(InferError::invalid(format!(
                        "input {name:?} is {} but holds {v}",
                        datatype.name()
                    )))
                }
            };
            match datatype {
                Datatype::Bool => c.bool_contents.into_iter().map(|b| f64::from(u8::from(b))).collect(),
                Datatype::Int8 => c
                    .int_contents
                    .into_iter()
                    .map(|v| within(v.into(), -128, 127))
                    .collect::<Result<_, _>>()?,
                Datatype::Int16 => c
                    .int_contents
                    .into_iter()
                    .map(|v| within(v.into(), i16::MIN.into(), i16::MAX.into()))
                    .collect::<Result<_, _>>()?,
                Datatype::Int32 => c.int_contents.into_iter().map(f64::from).collect(),
                Datatype::Int64 => c.int64_contents.into_iter().map(|v| v as f64).collect(),
                Datatype::Uint8 => c
                    .uint_contents
                    .into_iter()
                    .map(|v| within(v.into(), 0, 255))
                    .collect::<Result<_, _>>()?,
                Datatype::Uint16 => c
                    .uint_contents
                    .into_iter()
                    .map(|v| within(v.into(), 0, u16::MAX.into()))
                    .collect::<Result<_, _>>()?,
                Datatype::Uint32 => c.uint_contents.into_iter().map(f64::from).collect(),
                Datatype::Uint64 => c.uint64_contents.into_iter().map(|v| v as f64).collect(),
                Datatype::Fp32 => c.fp32_contents.into_iter().map(f64::from).collect(),
                Datatype::Fp64 => c.fp64_contents,
                Datatype::Fp16 => {
                    return Err(InferError::invalid(format!(
                        "input {name:?} is FP16, which the protocol carries only in raw_input_contents"
                    )))
                }
            }
        }
    };
    InputTensor::new(name, datatype, &input.shape, data)
}

/// The service's answer as the protocol's message: typed contents, or raw
/// little-endian bytes (`BYTES` elements each as a 4-byte length and its
/// bytes).
fn encode(response: service::InferResponse, raw: bool) -> ModelInferResponse {
    let mut parameters = std::collections::HashMap::new();
    let text = |s: String| InferParameter {
        parameter_choice: Some(ParameterChoice::StringParam(s)),
    };
    parameters.insert("content_id".to_owned(), text(response.content_id));
    if let Some(v) = response.variant {
        parameters.insert("variant".to_owned(), text(v));
    }
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw_output_contents = Vec::new();
    for o in response.outputs {
        let datatype = o.data.datatype().to_owned();
        let shape = o.shape.iter().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect();
        let contents = if raw {
            raw_output_contents.push(match o.data {
                OutputData::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                OutputData::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                OutputData::Bytes(v) => v
                    .iter()
                    .flat_map(|s| {
                        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                        len.to_le_bytes().into_iter().chain(s.bytes())
                    })
                    .collect(),
            });
            None
        } else {
            let mut c = InferTensorContents::default();
            match o.data {
                OutputData::Int64(v) => c.int64_contents = v,
                OutputData::Fp64(v) => c.fp64_contents = v,
                OutputData::Bytes(v) => c.bytes_contents = v.into_iter().map(String::into_bytes).collect(),
            }
            Some(c)
        };
        outputs.push(InferOutputTensor {
            name: o.name,
            datatype,
            shape,
            parameters: std::collections::HashMap::new(),
            contents,
        });
    }
    ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version,
        id: response.id,
        parameters,
        outputs,
        raw_output_contents,
    }
}
