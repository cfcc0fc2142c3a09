//! The nodes before a graph's trees, run on tract: what they give is the
//! flat forest's input.

use std::collections::HashSet;

use ndarray::ArrayView2;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;
use tract_onnx::tract_hir::internal::{format_err, DimLike};

use super::{lower, split, FlatForest, ForestOutput};

/// A graph's tree ensemble on the flat forest, after the nodes before it
/// (when there are any) on tract.
pub(crate) struct Native {
    pub(crate) forest: FlatForest<f32>,
    /// The nodes before the trees, typed for `[batch, n_features]` float32.
    prefix: Option<Arc<TypedRunnableModel>>,
}

impl Native {
    /// The graph's trees lowered, with the plan of the nodes before them;
    /// `Ok(None)` for a graph that runs wholly on tract (see the module
    /// `trees` for where the line is), `Err` for a hostile tree.
    pub(crate) fn build(proto: &pb::ModelProto, input: &str, n_features: usize) -> Result<Option<Native>, String> {
        let Some(split) = proto.graph.as_ref().and_then(|g| split(g, input)) else {
            return Ok(None);
        };
        if split.prefix.is_empty() {
            return Ok(lower(split.node, n_features)?.map(|forest| Native { forest, prefix: None }));
        }
        let Some((plan, width)) = prefix_plan(proto, split.prefix, &split.node.input[0], input, n_features) else {
            return Ok(None);
        };
        Ok(lower(split.node, width)?.map(|forest| Native {
            forest,
            prefix: Some(plan),
        }))
    }

    /// Whether nodes before the trees run on tract.
    pub(crate) fn has_prefix(&self) -> bool {
        self.prefix.is_some()
    }

    /// The rows through the nodes before the trees, then the trees.
    pub(crate) fn run(&self, rows: ArrayView2<'_, f64>) -> Result<ForestOutput, String> {
        let Some(plan) = &self.prefix else {
            return Ok(self.forest.run_view(rows));
        };
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
        Ok(self.forest.run(&z, rows.nrows()))
    }
}

/// The graph's nodes before the trees as a graph of their own, whose
/// output is the trees' input `to`, typed and optimised by tract, and the
/// width of that output; `None` when tract does not run it or its output
/// is not float32 `[batch, width]` of a known width.
fn prefix_plan(
    proto: &pb::ModelProto,
    prefix: &[pb::NodeProto],
    to: &str,
    input: &str,
    n_features: usize,
) -> Option<(Arc<TypedRunnableModel>, usize)> {
    let mut part = proto.clone();
    let g = part.graph.as_mut()?;
    let used: HashSet<&str> = prefix.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    g.node = prefix.to_vec();
    g.initializer.retain(|t| used.contains(t.name.as_str()));
    g.input.retain(|i| i.name == input || used.contains(i.name.as_str()));
    g.output = vec![pb::ValueInfoProto {
        name: to.to_owned(),
        ..Default::default()
    }];
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
