//! Reading a graph's protobuf: parsing, value types and shapes, and the
//! refusal of tensors stored outside the graph.

use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use super::{ml, OnnxError};

pub(super) fn parse(graph: &[u8]) -> std::result::Result<pb::ModelProto, OnnxError> {
    ml::onnx()
        .proto_model_for_read(&mut &graph[..])
        .map_err(|e| OnnxError::Malformed {
            reason: format!("{e:#}"),
        })
}

pub(super) fn elem_type(v: &pb::ValueInfoProto) -> Option<i32> {
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    Some(t.elem_type)
}

pub(super) fn dims(v: &pb::ValueInfoProto) -> Vec<Option<i64>> {
    let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Vec::new();
    };
    t.shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(*v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// ONNX element types by number.
pub(super) fn elem_name(t: i32) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        _ => "other",
    }
}

pub(super) const FLOAT32: i32 = 1;

pub(super) fn check_no_external_data(g: &pb::GraphProto) -> std::result::Result<(), OnnxError> {
    const EXTERNAL: i32 = 1;
    for t in &g.initializer {
        if t.data_location == Some(EXTERNAL) || !t.external_data.is_empty() {
            return Err(OnnxError::ExternalData { tensor: t.name.clone() });
        }
    }
    Ok(())
}
