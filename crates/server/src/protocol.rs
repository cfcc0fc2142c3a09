//! The Open Inference Protocol's JSON (KServe v2 REST): requests, responses,
//! metadata and errors, and the conversion of input tensors to rows.
//!
//! Every problem with a request is a [`RequestError`], answered with a 4xx
//! status and the protocol's error body `{"error": "..."}`.

use std::borrow::Cow;

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// The elements of binary data, decoded once from the bytes after the
    /// JSON header into the numbers the model reads.
    #[serde(skip)]
    pub(crate) binary: Option<Vec<f64>>,
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

/// A tensor's name, type and shape, for metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TensorMetadata {
    /// Its name.
    pub name: String,
    /// Its element type.
    pub datatype: String,
    /// Its shape (`-1`: any size).
    pub shape: Vec<i64>,
}

/// Model metadata.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetadata {
    /// The served name.
    pub name: String,
    /// The versions it serves.
    pub versions: Vec<String>,
    /// `model-persistence/<kind>`.
    pub platform: String,
    /// The input.
    pub inputs: Vec<TensorMetadata>,
    /// The outputs.
    pub outputs: Vec<TensorMetadata>,
}

/// The element types the server reads.
const NUMERIC: [&str; 12] = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
];

/// How deep nested `data` arrays may go (a tensor has few dimensions).
const MAX_DEPTH: usize = 8;

/// The rows of a request: one input of shape `[rows, features]` (or
/// `[features]` for one row), or one input per feature of shape `[rows]` or
/// `[rows, 1]`, in request order.
///
/// # Errors
///
/// A [`RequestError`] (400) for anything else.
pub fn rows_of(request: &InferRequest, n_features: usize) -> Result<Array2<f64>, RequestError> {
    let tensors: Vec<(Vec<usize>, Cow<'_, [f64]>)> =
        request.inputs.iter().map(read_tensor).collect::<Result<_, _>>()?;
    match tensors.as_slice() {
        [] => Err(RequestError::bad("the request has no inputs")),
        [(shape, data)] => {
            let (rows, cols) = match shape.as_slice() {
                [cols] => (1, *cols),
                [rows, cols] => (*rows, *cols),
                other => {
                    return Err(RequestError::bad(format!(
                        "input {:?} has shape {other:?}: expected [rows, {n_features}] or [{n_features}]",
                        request.inputs[0].name
                    )))
                }
            };
            if cols != n_features {
                return Err(RequestError::bad(format!(
                    "input {:?} has {cols} features per row: the model takes {n_features}",
                    request.inputs[0].name
                )));
            }
            Array2::from_shape_vec((rows, cols), data.to_vec()).map_err(|e| RequestError::bad(e.to_string()))
        }
        many => {
            if many.len() != n_features {
                return Err(RequestError::bad(format!(
                    "{} inputs given as columns: the model takes {n_features} features",
                    many.len()
                )));
            }
            let rows = many[0].1.len();
            for ((shape, data), input) in many.iter().zip(&request.inputs) {
                let column = matches!(shape.as_slice(), [r] | [r, 1] if *r == rows);
                if !column || data.len() != rows {
                    return Err(RequestError::bad(format!(
                        "input {:?} has shape {shape:?}: as one of several inputs it must be a column [{rows}] or [{rows}, 1]",
                        input.name
                    )));
                }
            }
            Ok(Array2::from_shape_fn((rows, n_features), |(r, c)| many[c].1[r]))
        }
    }
}

/// Reads one tensor: its shape (checked against its data) and its elements,
/// borrowed when they came as binary data.
fn read_tensor(input: &InputTensor) -> Result<(Vec<usize>, Cow<'_, [f64]>), RequestError> {
    let datatype = input.datatype.as_str();
    if datatype == "BYTES" {
        return Err(RequestError::bad(format!(
            "input {:?} is BYTES: the model takes numbers",
            input.name
        )));
    }
    if !NUMERIC.contains(&datatype) {
        return Err(RequestError::bad(format!(
            "input {:?} has unknown datatype {datatype:?}",
            input.name
        )));
    }
    let mut shape = Vec::with_capacity(input.shape.len());
    let mut expected: usize = 1;
    for &d in &input.shape {
        let d = usize::try_from(d)
            .map_err(|_| RequestError::bad(format!("input {:?} has a negative dimension {d}", input.name)))?;
        expected = expected
            .checked_mul(d)
            .ok_or_else(|| RequestError::bad(format!("input {:?} has an impossible shape", input.name)))?;
        shape.push(d);
    }
    let data: Cow<'_, [f64]> = match &input.binary {
        Some(decoded) => Cow::Borrowed(decoded),
        None => {
            let values = input
                .data
                .as_ref()
                .ok_or_else(|| RequestError::bad(format!("input {:?} has no data", input.name)))?;
            let mut data = Vec::new();
            flatten(values, datatype, &input.name, 0, &mut data)?;
            Cow::Owned(data)
        }
    };
    if data.len() != expected {
        return Err(RequestError::bad(format!(
            "input {:?} has shape {:?} ({expected} elements) but {} elements of data",
            input.name,
            input.shape,
            data.len()
        )));
    }
    Ok((shape, data))
}

fn flatten(value: &Value, datatype: &str, name: &str, depth: usize, out: &mut Vec<f64>) -> Result<(), RequestError> {
    match value {
        Value::Array(items) if depth < MAX_DEPTH => {
            out.reserve(items.len());
            for item in items {
                flatten(item, datatype, name, depth + 1, out)?;
            }
            Ok(())
        }
        Value::Array(_) => Err(RequestError::bad(format!("input {name:?}: data nested too deep"))),
        Value::Bool(b) if datatype == "BOOL" => {
            out.push(if *b { 1.0 } else { 0.0 });
            Ok(())
        }
        Value::Number(n) => {
            let integer = datatype.starts_with("INT") || datatype.starts_with("UINT") || datatype == "BOOL";
            if integer && !(n.is_i64() || n.is_u64()) {
                return Err(RequestError::bad(format!(
                    "input {name:?} is {datatype} but holds the non-integer {n}"
                )));
            }
            if datatype.starts_with("UINT") && n.as_i64().is_some_and(|v| v < 0) {
                return Err(RequestError::bad(format!(
                    "input {name:?} is {datatype} but holds the negative {n}"
                )));
            }
            let v = n.as_f64().unwrap_or(f64::NAN);
            out.push(if datatype == "FP32" { f64::from(v as f32) } else { v });
            Ok(())
        }
        // JSON has no NaN: the common encodings are strings, which a model
        // may or may not take (the server's checks decide).
        Value::String(s) if datatype.starts_with("FP") => match s.as_str() {
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
            other => Err(RequestError::bad(format!("input {name:?}: {other:?} is not a number"))),
        },
        other => Err(RequestError::bad(format!(
            "input {name:?} is {datatype} but holds {}",
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
