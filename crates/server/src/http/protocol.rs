//! The Open Inference Protocol's JSON (KServe v2 REST): requests, responses,
//! metadata and errors, and the conversion of input tensors to rows.
//!
//! Every problem with a request is a [`RequestError`], answered with a 4xx
//! status and the protocol's error body `{"error": "..."}`.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::service::{Datatype, ErrorKind, InferError};

/// The protocol's error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
}

/// A request the server refuses, with the HTTP status it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// 400, 404, 405 or 413.
    pub status: u16,
    /// The message of the error body.
    pub message: String,
}

impl RequestError {
    pub(crate) fn from_status(status: u16, message: String) -> Self {
        RequestError { status, message }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        RequestError {
            status: 400,
            message: message.into(),
        }
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        RequestError {
            status: 404,
            message: message.into(),
        }
    }
}

/// The service's refusal as the protocol's: its kind as the HTTP status.
impl From<InferError> for RequestError {
    fn from(e: InferError) -> Self {
        RequestError {
            status: match e.kind {
                ErrorKind::NotFound => 404,
                ErrorKind::TooLarge => 413,
                ErrorKind::Forbidden => 403,
                ErrorKind::Unauthenticated => 401,
                // A model not loaded yet has always been a 400 here (its
                // readiness endpoint says so); gRPC's UNAVAILABLE is
                // retried by clients.
                ErrorKind::InvalidArgument | ErrorKind::Unavailable => 400,
            },
            message: e.message,
        }
    }
}

/// A protocol refusal as the service's kind of error (for the metrics).
impl From<RequestError> for InferError {
    fn from(e: RequestError) -> Self {
        match e.status {
            404 => InferError::not_found(e.message),
            413 => InferError::too_large(e.message),
            403 => InferError::forbidden(e.message),
            401 => InferError::unauthenticated(e.message),
            _ => InferError::invalid(e.message),
        }
    }
}

/// An inference request.
#[derive(Debug, Clone, Deserialize)]
pub struct InferRequest {
    /// An id echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters (the A/B key may be one of them).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<InputTensor>,
    /// The outputs wanted (all when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input tensor.
#[derive(Debug, Clone, Deserialize)]
pub struct InputTensor {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its element type (`FP64`, `FP32`, `INT64`, ...).
    pub datatype: String,
    /// Tensor parameters (ignored).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// The elements in row-major order (flat or nested); absent when they
    /// come as binary data after the JSON header.
    #[serde(default)]
    pub data: Option<Value>,
}

/// An output the client asks for.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestedOutput {
    /// Its name.
    pub name: String,
    /// Output parameters (ignored: outputs are always JSON).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
}

/// An inference response.
#[derive(Debug, Clone, Serialize)]
pub struct InferResponse {
    /// The model's name.
    pub model_name: String,
    /// The version that answered.
    pub model_version: String,
    /// The request's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The bundle's content id and, under A/B, the variant.
    pub parameters: serde_json::Map<String, Value>,
    /// The output tensors.
    pub outputs: Vec<OutputTensor>,
}

/// One output tensor.
#[derive(Debug, Clone, Serialize)]
pub struct OutputTensor {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its element type.
    pub datatype: &'static str,
    /// The elements, row-major.
    pub data: Vec<Value>,
}

pub use crate::service::{ModelMetadata, TensorMetadata};

/// How deep nested `data` arrays may go (a tensor has few dimensions).
const MAX_DEPTH: usize = 8;

/// The rows of a request: one input of shape `[rows, features]` (or
/// `[features]` for one row), or one input per feature of shape `[rows]` or
/// `[rows, 1]`, in request order. The service reads them the same way
/// ([`service::rows_of`](crate::service::rows_of)).
///
/// # Errors
///
/// A [`RequestError`] (400) for anything else.
pub fn rows_of(request: &InferRequest, n_features: usize) -> Result<Array2<f64>, RequestError> {
    let inputs = request
        .inputs
        .iter()
        .map(|i| super::infer::tensor(i.clone(), None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::service::rows_of(inputs, n_features)?)
}

/// The elements of a tensor's JSON `data` (flat or nested, row-major) as
/// the numbers a model reads, each checked against the tensor's type.
pub(crate) fn numbers(values: &Value, datatype: Datatype, name: &str) -> Result<Vec<f64>, InferError> {
    let mut out = Vec::new();
    flatten(values, datatype, name, 0, &mut out)?;
    Ok(out)
}

fn flatten(value: &Value, datatype: Datatype, name: &str, depth: usize, out: &mut Vec<f64>) -> Result<(), InferError> {
    match value {
        Value::Array(items) if depth < MAX_DEPTH => {
            out.reserve(items.len());
            for item in items {
                flatten(item, datatype, name, depth + 1, out)?;
            }
            Ok(())
        }
        Value::Array(_) => Err(InferError::invalid(format!("input {name:?}: data nested too deep"))),
        Value::Bool(b) if datatype == Datatype::Bool => {
            out.push(if *b { 1.0 } else { 0.0 });
            Ok(())
        }
        Value::Number(n) => {
            if datatype.is_integer() && !(n.is_i64() || n.is_u64()) {
                return Err(InferError::invalid(format!(
                    "input {name:?} is {} but holds the non-integer {n}",
                    datatype.name()
                )));
            }
            let unsigned = matches!(
                datatype,
                Datatype::Bool | Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 | Datatype::Uint64
            );
            if unsigned && n.as_i64().is_some_and(|v| v < 0) {
                return Err(InferError::invalid(format!(
                    "input {name:?} is {} but holds the negative {n}",
                    datatype.name()
                )));
            }
            let v = n.as_f64().unwrap_or(f64::NAN);
            out.push(if datatype == Datatype::Fp32 {
                f64::from(v as f32)
            } else {
                v
            });
            Ok(())
        }
        // JSON has no NaN: the common encodings are strings, which a model
        // may or may not take (the server's checks decide).
        Value::String(s) if !datatype.is_integer() => match s.as_str() {
            "NaN" | "nan" => {
                out.push(f64::NAN);
                Ok(())
            }
            "Infinity" | "inf" => {
                out.push(f64::INFINITY);
                Ok(())
            }
            "-Infinity" | "-inf" => {
                out.push(f64::NEG_INFINITY);
                Ok(())
            }
            other => Err(InferError::invalid(format!(
                "input {name:?}: {other:?} is not a number"
            ))),
        },
        other => Err(InferError::invalid(format!(
            "input {name:?} is {} but holds {}",
            datatype.name(),
            kind_of(other)
        ))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> InferRequest {
        serde_json::from_str(json).expect("request")
    }

    #[test]
    fn flat_nested_and_columnar_inputs_give_the_same_rows() {
        let flat = request(r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[1,2,3,4]}]}"#);
        let nested = request(r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}"#);
        let columns = request(
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"INT64","data":[1,3]},
                          {"name":"b","shape":[2,1],"datatype":"FP64","data":[2,4]}]}"#,
        );
        let want = ndarray::array![[1.0, 2.0], [3.0, 4.0]];
        assert_eq!(rows_of(&flat, 2).expect("flat"), want);
        assert_eq!(rows_of(&nested, 2).expect("nested"), want);
        assert_eq!(rows_of(&columns, 2).expect("columns"), want);
        let one = request(r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[5,6]}]}"#);
        assert_eq!(rows_of(&one, 2).expect("one row"), ndarray::array![[5.0, 6.0]]);
    }

    #[test]
    fn bad_tensors_are_400_with_a_reason() {
        for (json, words) in [
            (r#"{"inputs":[]}"#, "no inputs"),
            (
                r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}"#,
                "takes 2",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1]}]}"#,
                "elements of data",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"INT64","data":[1,2.5]}]}"#,
                "non-integer",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"BYTES","data":["a","b"]}]}"#,
                "BYTES",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP99","data":[1,2]}]}"#,
                "unknown datatype",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[-1,2],"datatype":"FP64","data":[1,2]}]}"#,
                "negative",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[4294967296,4294967296,4294967296],"datatype":"FP64","data":[1]}]}"#,
                "impossible",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1,null]}]}"#,
                "null",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1,2,1],"datatype":"FP64","data":[1,2]}]}"#,
                "expected",
            ),
        ] {
            let err = rows_of(&request(json), 2).expect_err(json);
            assert_eq!(err.status, 400);
            assert!(err.message.contains(words), "{json}: {}", err.message);
        }
    }
}
