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

/// The most nodes a graph may have: far beyond any exported model (a
/// 300-tree booster is one node; a ResNet-50 about 180).
pub const MAX_GRAPH_NODES: usize = 1_000_000;

/// The most elements of any tensor a graph stores or makes from constant
/// shapes: 2^28, a gigabyte of float32.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 28;

/// Refuses a graph that asks for more than [`MAX_GRAPH_NODES`] nodes or a
/// tensor of more than [`MAX_TENSOR_ELEMENTS`] elements, before tract sees
/// it: stored tensors and `Constant` values by their declared dimensions,
/// and the outputs of `ConstantOfShape` and `Expand` by the constant shape
/// they are given (a `ConstantOfShape` to `[2^30, 2^30]` made tract fail an
/// allocation). Tensor sizes that depend on the input are bounded by the
/// input, which the caller bounds.
pub(super) fn check_bounds(g: &pb::GraphProto) -> std::result::Result<(), OnnxError> {
    let too_large = |reason: String| Err(OnnxError::TooLarge { reason });
    if g.node.len() > MAX_GRAPH_NODES {
        return too_large(format!("{} nodes; at most {MAX_GRAPH_NODES}", g.node.len()));
    }
    let elements = |dims: &[i64]| -> Option<u64> {
        dims.iter()
            .try_fold(1u64, |n, &d| u64::try_from(d).ok().and_then(|d| n.checked_mul(d)))
    };
    let check = |what: &str, dims: &[i64]| match elements(dims) {
        Some(n) if n <= MAX_TENSOR_ELEMENTS => Ok(()),
        _ => too_large(format!(
            "{what} has shape {dims:?}, more than {MAX_TENSOR_ELEMENTS} elements"
        )),
    };
    let mut constants: std::collections::HashMap<&str, &pb::TensorProto> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for t in &g.initializer {
        check(&format!("tensor {:?}", t.name), &t.dims)?;
    }
    for n in &g.node {
        if n.op_type == "Constant" {
            for a in &n.attribute {
                if let (Some(t), Some(out)) = (a.t.as_ref(), n.output.first()) {
                    check(&format!("constant {out:?}"), &t.dims)?;
                    constants.insert(out.as_str(), t);
                }
            }
        }
    }
    for n in &g.node {
        let shape_input = match n.op_type.as_str() {
            "ConstantOfShape" => n.input.first(),
            "Expand" => n.input.get(1),
            _ => None,
        };
        if let Some(shape) = shape_input
            .and_then(|i| constants.get(i.as_str()))
            .and_then(|t| int64s(t))
        {
            check(&format!("{} {:?}", n.op_type, n.name), &shape)?;
        }
    }
    Ok(())
}

/// An int64 tensor's values, from its typed field or its raw bytes.
fn int64s(t: &pb::TensorProto) -> Option<Vec<i64>> {
    const INT64: i32 = 7;
    if t.data_type != INT64 {
        return None;
    }
    if !t.int64_data.is_empty() {
        return Some(t.int64_data.clone());
    }
    (t.raw_data.len().is_multiple_of(8) && t.raw_data.len() <= 8 * 64).then(|| {
        t.raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    })
}
