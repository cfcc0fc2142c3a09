//! What a graph gives for a batch, and how its outputs are read: the
//! label (or value) output, the probabilities output, tract's tree labels
//! replaced by the class of highest probability.

use ndarray::{Array1, Array2, ArrayView2};
use tract_onnx::prelude::*;

use super::trees::{self, Ran};
use super::{contained, OnnxModel};
use model_persistence_core::ProbeValue;

impl OnnxModel {
    /// What the graph gives for `rows`: the flat forest's output, or the
    /// graph's outputs (tract's, or computed after the trees).
    pub(super) fn outputs(&self, rows: ArrayView2<'_, f64>) -> std::result::Result<Outputs, String> {
        match self.forest() {
            Ok(Some(native)) => Ok(match contained("running the graph", || native.run(rows))? {
                Ran::Forest(out) => Outputs::Forest(out),
                Ran::Graph(values) => Outputs::Graph {
                    values,
                    trees_on_tract: false,
                },
            }),
            _ => Ok(Outputs::Graph {
                values: self.run(rows)?,
                trees_on_tract: true,
            }),
        }
    }

    /// The first output of a graph's outputs: labels (integers) or values.
    pub(super) fn predictions_of(
        &self,
        outputs: &TVec<TValue>,
        trees_on_tract: bool,
    ) -> std::result::Result<Array1<ProbeValue>, String> {
        if let (Some(classes), Some(index), true) = (&self.tree_labels, self.scores_output, trees_on_tract) {
            if let Some(labels) = outputs.get(index).and_then(|p| labels_of_argmax(p, classes)) {
                return Ok(labels);
            }
        }
        let out = outputs.get(self.label_output).ok_or("no output")?;
        if self.label_is_integer {
            let labels = out.cast_to::<i64>().map_err(|e| format!("{e:#}"))?;
            let labels = labels.to_plain_array_view::<i64>().map_err(|e| format!("{e:#}"))?;
            return Ok(labels.iter().map(|&l| ProbeValue::Label(l)).collect());
        }
        let values = out.cast_to::<f64>().map_err(|e| format!("{e:#}"))?;
        let values = values.to_plain_array_view::<f64>().map_err(|e| format!("{e:#}"))?;
        Ok(values.iter().map(|&x| ProbeValue::Value(x)).collect())
    }

    /// The probabilities output of a graph's outputs, when it has one.
    pub(super) fn scores_of(&self, outputs: &TVec<TValue>) -> Option<Array2<f64>> {
        let out = outputs.get(self.scores_output?)?.cast_to::<f64>().ok()?;
        let [n, classes] = out.shape() else {
            return None;
        };
        let values: Vec<f64> = out.to_plain_array_view::<f64>().ok()?.iter().copied().collect();
        Array2::from_shape_vec((*n, *classes), values).ok()
    }
}

/// What a graph gives for a batch.
pub(super) enum Outputs {
    /// The flat forest's, when the graph's outputs are the trees'.
    Forest(trees::ForestOutput),
    /// The graph's outputs; `trees_on_tract` when tract ran the trees too
    /// (its labels are then replaced by the class of highest probability).
    Graph { values: TVec<TValue>, trees_on_tract: bool },
}

/// NaN for every row, for a graph that failed to run (and why, logged).
pub(super) fn failed(n_rows: usize, why: String) -> Array1<ProbeValue> {
    tracing::error!(error = %why, "the ONNX graph failed to run");
    Array1::from_elem(n_rows, ProbeValue::Value(f64::NAN))
}

/// `classes[argmax]` of each row of a `[batch, classes]` probability tensor,
/// the first maximum on a tie.
fn labels_of_argmax(p: &TValue, classes: &[i64]) -> Option<Array1<ProbeValue>> {
    let p = p.cast_to::<f64>().ok()?;
    let [n, c] = p.shape() else {
        return None;
    };
    if *c != classes.len() {
        return None;
    }
    let values: Vec<f64> = p.to_plain_array_view::<f64>().ok()?.iter().copied().collect();
    Some(
        values
            .chunks(*c)
            .take(*n)
            .map(|row| {
                let best = row
                    .iter()
                    .enumerate()
                    .fold(0, |best, (i, &x)| if x > row[best] { i } else { best });
                ProbeValue::Label(classes[best])
            })
            .collect(),
    )
}
