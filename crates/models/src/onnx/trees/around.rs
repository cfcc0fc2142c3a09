//! The nodes around a graph's trees, run on tract: those before give the
//! flat forest its input, those after take its outputs.

use std::collections::HashSet;

use ndarray::ArrayView2;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;
use tract_onnx::tract_hir::internal::{format_err, DimLike};

use super::{lower, split, FlatForest, ForestOutput, Split};

type Plan = Arc<TypedRunnableModel>;

/// A graph's tree ensemble on the flat forest, with the nodes before and
/// after it (when there are any) on tract.
pub(crate) struct Native {
    pub(crate) forest: FlatForest<f32>,
    /// The nodes before the trees, typed for `[batch, n_features]` float32.
    prefix: Option<Plan>,
    /// The nodes after the trees, typed for the trees' outputs (a
    /// classifier's labels `[batch]` int64 and probabilities `[batch,
    /// classes]` float32, or a regressor's `[batch, targets]` float32).
    suffix: Option<Plan>,
}

/// What a graph gives for a batch: the forest's output (the graph's
/// outputs are the trees'), or the graph's outputs computed after it.
pub(crate) enum Ran {
    Forest(ForestOutput),
    Graph(TVec<TValue>),
}

impl Native {
    /// Whether the flat forest computes the graph's outputs alone, with no
    /// node before or after it on tract.
    pub(crate) fn is_whole(&self) -> bool {
        self.prefix.is_none() && self.suffix.is_none()
    }

    /// The graph's trees lowered, with the plans of the nodes around them;
    /// `Ok(None)` for a graph that runs wholly on tract (see the module
    /// `trees` for where the line is), `Err` for a hostile tree.
    pub(crate) fn build(proto: &pb::ModelProto, input: &str, n_features: usize) -> Result<Option<Native>, String> {
        let Some(split) = proto.graph.as_ref().and_then(|g| split(g, input)) else {
            return Ok(None);
        };
        let (prefix, width) = if split.prefix.is_empty() {
            (None, n_features)
        } else {
            match prefix_plan(proto, &split, input, n_features) {
                Some((plan, width)) => (Some(plan), width),
                None => return Ok(None),
            }
        };
        let Some(forest) = lower(split.node, width)? else {
            return Ok(None);
        };
        let suffix = if split.suffix.is_empty() {
            None
        } else {
            match suffix_plan(proto, &split, &forest) {
                Some(plan) => Some(plan),
                None => return Ok(None),
            }
        };
        Ok(Some(Native { forest, prefix, suffix }))
    }

    /// Whether nodes before the trees run on tract.
    pub(crate) fn has_prefix(&self) -> bool {
        self.prefix.is_some()
    }

    /// Whether nodes after the trees run on tract.
    pub(crate) fn has_suffix(&self) -> bool {
        self.suffix.is_some()
    }

    /// The rows through the nodes before the trees, the trees, and the
    /// nodes after them.
    pub(crate) fn run(&self, rows: ArrayView2<'_, f64>) -> Result<Ran, String> {
        let out = match &self.prefix {
            None => self.forest.run_view(rows),
            Some(plan) => {
                let z = self.before(plan, rows)?;
                self.forest.run(&z, rows.nrows())
            }
        };
        match &self.suffix {
            None => Ok(Ran::Forest(out)),
            Some(plan) => self.after(plan, out, rows.nrows()).map(Ran::Graph),
        }
    }

    /// What the nodes before the trees give for `rows`, `[rows, width]`.
    fn before(&self, plan: &Plan, rows: ArrayView2<'_, f64>) -> Result<Vec<f64>, String> {
        let data: Vec<f32> = rows.iter().map(|&x| x as f32).collect();
        let run = || -> TractResult<Vec<f64>> {
            let input = Tensor::from_shape(&[rows.nrows(), rows.ncols()], &data)?;
            let out = plan.run(tvec!(input.into_tvalue()))?;
            let z = out
                .first()
                .ok_or_else(|| format_err!("the nodes before the trees gave nothing"))?;
            Ok(z.to_plain_array_view::<f32>()?.iter().map(|&v| f64::from(v)).collect())
        };
        let z = run().map_err(|e| format!("{e:#}"))?;
        let width = self.forest.n_features();
        if z.len() != rows.nrows() * width {
            return Err(format!(
                "the nodes before the trees gave {} values for {} rows of {width}",
                z.len(),
                rows.nrows()
            ));
        }
        Ok(z)
    }

    /// The graph's outputs from the trees' (as onnxruntime gives them:
    /// labels int64, scores float32).
    fn after(&self, plan: &Plan, out: ForestOutput, n_rows: usize) -> Result<TVec<TValue>, String> {
        let run = || -> TractResult<TVec<TValue>> {
            let scores: Vec<f32> = out.scores.iter().map(|&v| v as f32).collect();
            let scores = Tensor::from_shape(&[n_rows, out.width], &scores)?.into_tvalue();
            let inputs = match &out.labels {
                Some(labels) => tvec!(Tensor::from_shape(&[n_rows], labels)?.into_tvalue(), scores),
                None => tvec!(scores),
            };
            plan.run(inputs)
        };
        run().map_err(|e| format!("{e:#}"))
    }
}

/// `graph` reduced to `nodes`, the initializers they read, `inputs` and
/// `outputs`.
fn part(
    proto: &pb::ModelProto,
    nodes: &[pb::NodeProto],
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
) -> pb::ModelProto {
    let mut part = proto.clone();
    if let Some(g) = part.graph.as_mut() {
        let used: HashSet<&str> = nodes.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
        g.node = nodes.to_vec();
        g.initializer.retain(|t| used.contains(t.name.as_str()));
        g.input = inputs;
        g.output = outputs;
    }
    part
}

/// A value by name, of element type `elem` when it is an input (tract
/// needs a graph's inputs typed).
fn value(name: &str, elem: Option<i32>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: elem.map(|elem_type| pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// The graph's nodes before the trees as a graph of their own, whose
/// output is the trees' input, typed and optimised by tract, and the width
/// of that output; `None` when tract does not run it or its output is not
/// float32 `[batch, width]` of a known width.
fn prefix_plan(proto: &pb::ModelProto, split: &Split<'_>, input: &str, n_features: usize) -> Option<(Plan, usize)> {
    let part = part(
        proto,
        split.prefix,
        vec![value(input, Some(FLOAT))],
        vec![value(&split.node.input[0], None)],
    );
    let model = super::super::ml::onnx().model_for_proto_model(&part).ok()?;
    let batch = model.sym("batch");
    let typed = model
        .with_input_fact(0, f32::fact(dims!(batch, n_features)).into())
        .ok()?
        .into_optimized()
        .ok()?;
    let fact = typed.output_fact(0).ok()?;
    if fact.datum_type != f32::datum_type() || fact.rank() != 2 {
        return None;
    }
    let width = fact.shape[1].to_usize().ok()?;
    Some((typed.into_runnable().ok()?, width))
}

/// The graph's nodes after the trees as a graph of their own, whose inputs
/// are the trees' outputs and whose outputs are the graph's, typed and
/// optimised by tract; `None` when tract does not run it.
fn suffix_plan(proto: &pb::ModelProto, split: &Split<'_>, forest: &FlatForest<f32>) -> Option<Plan> {
    let graph = proto.graph.as_ref()?;
    let classifier = split.node.op_type == "TreeEnsembleClassifier";
    let inputs = match split.node.output.as_slice() {
        [labels, scores] if classifier => vec![value(labels, Some(INT64)), value(scores, Some(FLOAT))],
        [values] if !classifier => vec![value(values, Some(FLOAT))],
        _ => return None,
    };
    let part = part(proto, split.suffix, inputs, graph.output.clone());
    let mut model = super::super::ml::onnx().model_for_proto_model(&part).ok()?;
    let batch = model.sym("batch");
    let width = forest.n_outputs();
    let scores = f32::fact(dims!(batch, width));
    model = if classifier {
        model
            .with_input_fact(0, i64::fact(dims!(batch)).into())
            .ok()?
            .with_input_fact(1, scores.into())
            .ok()?
    } else {
        model.with_input_fact(0, scores.into()).ok()?
    };
    model.into_optimized().ok()?.into_runnable().ok()
}
