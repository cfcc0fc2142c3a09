//! What a graph may cost before tract sees it: node count, stored tensor
//! sizes, and the tensors tract computes from the graph's own constants
//! while it loads.
//!
//! tract folds every node whose inputs are all constants into a constant
//! when it types and optimises a graph. A `ConstantOfShape` to
//! `[2^14, 2^14]` is a gigabyte from a hundred bytes of file; a `MatMul` of
//! a `[n, 1]` and a `[1, n]` constant is n² values from 2n stored. So the
//! walk below follows which values are constant, works out the size of
//! every node tract would fold (by the operator's shape rule, from the
//! constants' declared dimensions and, for shapes, their values) and holds
//! the total to a multiple of the graph's own size. A folded node whose
//! size it cannot work out is refused, not guessed: only operators that
//! appear on constants in exported models are modelled, and a graph that
//! folds something else is exotic enough to say so.

use std::collections::HashMap;

use tract_onnx::pb;

use super::OnnxError;

/// The most nodes a graph may have: far beyond any exported model (a
/// 300-tree booster is one node; a ResNet-50 about 180).
pub const MAX_GRAPH_NODES: usize = 1_000_000;

/// The most elements of any tensor a graph stores or makes from constant
/// shapes: 2^28, a gigabyte of float32.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 28;

/// The bytes of tensors tract may compute from a graph's constants while it
/// loads, per byte of the graph, on top of [`FOLDED_BYTES_FLOOR`]. Each
/// folded element is counted as 8 bytes, the widest numeric type.
pub const FOLDED_BYTES_PER_GRAPH_BYTE: u64 = 16;

/// The bytes of folded tensors any graph may have, however small: 16 MiB.
pub const FOLDED_BYTES_FLOOR: u64 = 16 << 20;

/// A value as the walk knows it.
#[derive(Clone)]
enum Value {
    /// Depends on the graph's input: computed per request, bounded by it.
    Variable,
    /// Known at load time, of these dimensions (and, for a small int64
    /// tensor, these values).
    Constant { dims: Vec<u64>, ints: Option<Vec<i64>> },
}

type Refusal = std::result::Result<(), OnnxError>;

fn too_large(reason: String) -> OnnxError {
    OnnxError::TooLarge { reason }
}

/// Refuses a shape given as values with a negative dimension or more than
/// [`MAX_TENSOR_ELEMENTS`] elements.
fn check_shape(what: &str, shape: &[i64]) -> Refusal {
    let dims: Option<Vec<u64>> = shape.iter().map(|&d| u64::try_from(d).ok()).collect();
    match dims.as_deref().and_then(elements) {
        Some(n) if n <= MAX_TENSOR_ELEMENTS => Ok(()),
        _ => Err(too_large(format!(
            "{what} has shape {shape:?}, more than {MAX_TENSOR_ELEMENTS} elements"
        ))),
    }
}

fn elements(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
}

struct Walk<'g> {
    values: HashMap<&'g str, Value>,
    nodes: usize,
    folded: u64,
    budget: u64,
}

/// Refuses a graph of more than [`MAX_GRAPH_NODES`] nodes, a tensor (stored,
/// made from a constant shape, or folded from constants) of more than
/// [`MAX_TENSOR_ELEMENTS`] elements, or more folded bytes than
/// [`FOLDED_BYTES_FLOOR`] plus [`FOLDED_BYTES_PER_GRAPH_BYTE`] times
/// `graph_bytes`, before tract sees it. Subgraphs (`If`, `Loop`, `Scan`
/// bodies) count towards the same totals.
pub(super) fn check_bounds(g: &pb::GraphProto, graph_bytes: usize) -> Refusal {
    let mut walk = Walk {
        values: HashMap::new(),
        nodes: 0,
        folded: 0,
        budget: FOLDED_BYTES_FLOOR.saturating_add(FOLDED_BYTES_PER_GRAPH_BYTE.saturating_mul(graph_bytes as u64)),
    };
    walk.graph(g, 0)
}

/// The most values a constant may have for the walk to follow it as a
/// shape (a tensor has few dimensions).
const MAX_SHAPE_VALUES: usize = 64;

/// Subgraphs nested deeper than this are refused (tract recurses on them).
const MAX_SUBGRAPH_DEPTH: usize = 16;

impl<'g> Walk<'g> {
    fn graph(&mut self, g: &'g pb::GraphProto, depth: usize) -> Refusal {
        if depth > MAX_SUBGRAPH_DEPTH {
            return Err(too_large(format!("subgraphs nested deeper than {MAX_SUBGRAPH_DEPTH}")));
        }
        for t in &g.initializer {
            let value = self.tensor(&format!("tensor {:?}", t.name), t)?;
            self.values.insert(&t.name, value);
        }
        for i in &g.input {
            if !g.initializer.iter().any(|t| t.name == i.name) {
                self.values.insert(&i.name, Value::Variable);
            }
        }
        for n in &g.node {
            self.nodes += 1;
            if self.nodes > MAX_GRAPH_NODES {
                return Err(too_large(format!("more than {MAX_GRAPH_NODES} nodes")));
            }
            for a in &n.attribute {
                for sub in a.g.iter().chain(&a.graphs) {
                    // A body's own inputs are per iteration: variable.
                    self.graph(sub, depth + 1)?;
                }
            }
            self.node(n)?;
        }
        Ok(())
    }

    /// A stored tensor's value, refused over [`MAX_TENSOR_ELEMENTS`].
    fn tensor(&self, what: &str, t: &pb::TensorProto) -> std::result::Result<Value, OnnxError> {
        let dims: Option<Vec<u64>> = t.dims.iter().map(|&d| u64::try_from(d).ok()).collect();
        match dims {
            Some(dims) if elements(&dims).is_some_and(|n| n <= MAX_TENSOR_ELEMENTS) => {
                Ok(Value::Constant { ints: int64s(t), dims })
            }
            _ => Err(too_large(format!(
                "{what} has shape {:?}, more than {MAX_TENSOR_ELEMENTS} elements",
                t.dims
            ))),
        }
    }

    fn node(&mut self, n: &'g pb::NodeProto) -> Refusal {
        let what = || format!("{} {:?}", n.op_type, n.name);
        if n.op_type == "Constant" {
            let value = constant_value(n).map(|t| self.tensor(&format!("constant {:?}", n.name), t));
            let value = match value {
                Some(v) => v?,
                None => scalar_constant(n).unwrap_or(Value::Constant {
                    dims: Vec::new(),
                    ints: None,
                }),
            };
            if let Some(out) = n.output.first() {
                self.values.insert(out, value);
            }
            return Ok(());
        }
        let inputs: Vec<Option<&Value>> = n
            .input
            .iter()
            .map(|i| {
                if i.is_empty() {
                    None
                } else {
                    self.values.get(i.as_str())
                }
            })
            .collect();
        // A name the walk has not seen comes from an enclosing graph or is
        // dangling (tract refuses that): either way not folded here.
        let all_constant = !n.input.is_empty()
            && n.input
                .iter()
                .zip(&inputs)
                .all(|(name, v)| name.is_empty() || matches!(v, Some(Value::Constant { .. })));
        // Shapes given as constants to nodes that run per request are still
        // bounded: such a node makes a tensor of that size on every call.
        if let Some(shape) = shape_input(n).and_then(|i| self.ints(i)) {
            check_shape(&what(), &shape)?;
        }
        // Generators given their shape as an attribute (`RandomNormal`,
        // `RandomUniform`) make it on every call.
        if let Some(a) = n.attribute.iter().find(|a| a.name == "shape" && !a.ints.is_empty()) {
            check_shape(&what(), &a.ints)?;
        }
        if !all_constant {
            for out in &n.output {
                self.values.insert(out, Value::Variable);
            }
            return Ok(());
        }
        let dims: Vec<Vec<u64>> = inputs
            .iter()
            .map(|v| match v {
                Some(Value::Constant { dims, .. }) => dims.clone(),
                _ => Vec::new(),
            })
            .collect();
        let Some(out) = self.folded_dims(n, &dims) else {
            return Err(too_large(format!(
                "{} folds constants into a tensor whose size the loader cannot bound",
                what()
            )));
        };
        let count = elements(&out).filter(|&e| e <= MAX_TENSOR_ELEMENTS).ok_or_else(|| {
            too_large(format!(
                "{} folds constants into shape {out:?}, more than {MAX_TENSOR_ELEMENTS} elements",
                what()
            ))
        })?;
        self.folded = self
            .folded
            .saturating_add(count.saturating_mul(8).saturating_mul(n.output.len().max(1) as u64));
        if self.folded > self.budget {
            return Err(too_large(format!(
                "its constants fold into more than {} bytes at load ({FOLDED_BYTES_FLOOR} plus \
                 {FOLDED_BYTES_PER_GRAPH_BYTE} per byte of the graph)",
                self.budget
            )));
        }
        let ints = self.folded_ints(n);
        for o in &n.output {
            self.values.insert(
                o,
                Value::Constant {
                    dims: out.clone(),
                    ints: ints.clone(),
                },
            );
        }
        Ok(())
    }

    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        match self.values.get(name)? {
            Value::Constant { ints, .. } => ints.clone(),
            Value::Variable => None,
        }
    }

    /// The values of the small int64 results that shapes are built from.
    fn folded_ints(&self, n: &pb::NodeProto) -> Option<Vec<i64>> {
        let input = |i: usize| n.input.get(i).and_then(|name| self.ints(name));
        match n.op_type.as_str() {
            "Identity" | "Cast" | "Squeeze" | "Unsqueeze" | "Flatten" | "Reshape" => input(0),
            "Concat" => n
                .input
                .iter()
                .map(|i| self.ints(i))
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat()),
            _ => None,
        }
        // Only shapes are followed: a chain of Concats doubling a vector
        // would otherwise keep every value of it.
        .filter(|v| v.len() <= MAX_SHAPE_VALUES)
    }

    /// The dimensions of what a node with constant inputs of `dims` makes,
    /// by the operator's shape rule; `None` where it cannot be bounded.
    fn folded_dims(&self, n: &pb::NodeProto, dims: &[Vec<u64>]) -> Option<Vec<u64>> {
        let first = dims.first()?;
        let int_input = |i: usize| n.input.get(i).and_then(|name| self.ints(name));
        let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
        match n.op_type.as_str() {
            // Same size as the first input.
            "Identity" | "Cast" | "CastLike" | "Neg" | "Abs" | "Sqrt" | "Exp" | "Log" | "Reciprocal" | "Relu"
            | "Sigmoid" | "Tanh" | "Not" | "Sign" | "Floor" | "Ceil" | "Round" | "Erf" | "Softmax" | "LogSoftmax"
            | "IsNaN" | "IsInf" | "Clip" | "LeakyRelu" | "Elu" | "HardSigmoid" | "Softplus" | "Sin" | "Cos"
            | "DequantizeLinear" | "QuantizeLinear" | "Transpose" | "Dropout" => Some(first.clone()),
            // As many elements as the first input, or fewer.
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Slice" | "ReduceSum" | "ReduceMean" | "ReduceMax"
            | "ReduceMin" | "ReduceProd" | "ArgMax" | "ArgMin" | "Split" => Some(vec![elements(first)?]),
            "Shape" => Some(vec![first.len() as u64]),
            "Size" => Some(Vec::new()),
            "Concat" => {
                let axis = attr("axis").map_or(0, |a| a.i);
                let rank = first.len() as i64;
                let axis = usize::try_from(if axis < 0 { axis + rank } else { axis }).ok()?;
                let mut out = first.clone();
                *out.get_mut(axis)? = dims.iter().try_fold(0u64, |s, d| s.checked_add(*d.get(axis)?))?;
                Some(out)
            }
            "Gather" => {
                let axis = attr("axis").map_or(0, |a| a.i);
                let rank = first.len() as i64;
                let axis = usize::try_from(if axis < 0 { axis + rank } else { axis }).ok()?;
                let mut out = first.get(..axis)?.to_vec();
                out.extend_from_slice(dims.get(1)?);
                out.extend_from_slice(first.get(axis + 1..)?);
                Some(out)
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" | "Equal" | "Less" | "LessOrEqual" | "Greater"
            | "GreaterOrEqual" | "And" | "Or" | "Xor" | "Where" | "Max" | "Min" | "Sum" | "Mean" | "PRelu"
            | "BitShift" => dims.iter().try_fold(Vec::new(), |acc, d| broadcast(&acc, d)),
            "MatMul" => matmul(first, dims.get(1)?),
            "Gemm" => {
                let (a, b) = (first, dims.get(1)?);
                let trans = |name: &str| attr(name).is_some_and(|a| a.i != 0);
                let m = if trans("transA") { a.get(1)? } else { a.first()? };
                let n = if trans("transB") { b.first()? } else { b.get(1)? };
                Some(vec![*m, *n])
            }
            "ConstantOfShape" => int_input(0)?.iter().map(|&d| u64::try_from(d).ok()).collect(),
            "Expand" => {
                let shape: Vec<u64> = int_input(1)?
                    .iter()
                    .map(|&d| u64::try_from(d).ok())
                    .collect::<Option<_>>()?;
                broadcast(first, &shape)
            }
            "Tile" => {
                let repeats = int_input(1)?;
                (repeats.len() == first.len()).then_some(())?;
                first
                    .iter()
                    .zip(repeats)
                    .map(|(&d, r)| d.checked_mul(u64::try_from(r).ok()?))
                    .collect()
            }
            "Range" => {
                let (start, limit, delta) = (int_input(0)?, int_input(1)?, int_input(2)?);
                let (start, limit, delta) = (*start.first()?, *limit.first()?, *delta.first()?);
                (delta != 0).then_some(())?;
                let span = i128::from(limit) - i128::from(start);
                let n = (span + i128::from(delta) - i128::from(delta.signum())) / i128::from(delta);
                Some(vec![u64::try_from(n.max(0)).ok()?])
            }
            _ => None,
        }
    }
}

/// NumPy broadcasting of two shapes; `None` if they do not broadcast.
fn broadcast(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let rank = a.len().max(b.len());
    let at = |s: &[u64], i: usize| if i + s.len() < rank { 1 } else { s[i + s.len() - rank] };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// The shape of `a @ b` by NumPy's rule.
fn matmul(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let (a, b) = (
        if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() },
        if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() },
    );
    let (ra, rb) = (a.len(), b.len());
    (ra >= 2 && rb >= 2).then_some(())?;
    let mut out = broadcast(&a[..ra - 2], &b[..rb - 2])?;
    out.push(a[ra - 2]);
    out.push(b[rb - 1]);
    Some(out)
}

/// The input of a node that gives the shape of what it makes.
fn shape_input(n: &pb::NodeProto) -> Option<&str> {
    match n.op_type.as_str() {
        "ConstantOfShape" => n.input.first(),
        "Expand" => n.input.get(1),
        _ => None,
    }
    .map(String::as_str)
}

/// A `Constant` node's tensor attribute.
fn constant_value(n: &pb::NodeProto) -> Option<&pb::TensorProto> {
    n.attribute.iter().find_map(|a| a.t.as_ref())
}

/// A `Constant` node given by a list or scalar attribute.
fn scalar_constant(n: &pb::NodeProto) -> Option<Value> {
    let a = n.attribute.first()?;
    match a.name.as_str() {
        "value_ints" => Some(Value::Constant {
            dims: vec![a.ints.len() as u64],
            ints: Some(a.ints.clone()),
        }),
        "value_int" => Some(Value::Constant {
            dims: Vec::new(),
            ints: Some(vec![a.i]),
        }),
        "value_floats" => Some(Value::Constant {
            dims: vec![a.floats.len() as u64],
            ints: None,
        }),
        "value_strings" => Some(Value::Constant {
            dims: vec![a.strings.len() as u64],
            ints: None,
        }),
        _ => None,
    }
}

/// An int64 tensor's values, from its typed field or its raw bytes, when it
/// is small enough to be a shape.
fn int64s(t: &pb::TensorProto) -> Option<Vec<i64>> {
    const INT64: i32 = 7;
    if t.data_type != INT64 {
        return None;
    }
    if !t.int64_data.is_empty() {
        return (t.int64_data.len() <= MAX_SHAPE_VALUES).then(|| t.int64_data.clone());
    }
    (t.raw_data.len().is_multiple_of(8) && t.raw_data.len() <= 8 * MAX_SHAPE_VALUES).then(|| {
        t.raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_and_matmul_follow_numpy() {
        assert_eq!(broadcast(&[4, 1], &[1, 5]), Some(vec![4, 5]));
        assert_eq!(broadcast(&[3], &[2, 1]), Some(vec![2, 3]));
        assert_eq!(broadcast(&[3], &[4]), None);
        assert_eq!(matmul(&[8, 1], &[1, 8]), Some(vec![8, 8]));
        assert_eq!(matmul(&[2, 3, 4], &[4, 5]), Some(vec![2, 3, 5]));
        assert_eq!(matmul(&[4], &[4]), Some(vec![1, 1]));
    }
}
