//! The `ai.onnx.ml` preprocessing operators tract 0.23.9 does not know,
//! added to its operator register as compositions of operators it has:
//! `Scaler` (what skl2onnx writes for `StandardScaler`, `MinMaxScaler`,
//! `RobustScaler`, `MaxAbsScaler`) and `Imputer` (`SimpleImputer`). With
//! them, a scikit-learn pipeline of imputation and scaling before a model
//! runs on tract, and before a tree ensemble, on tract up to the trees (see
//! the `trees` module).
//!
//! Semantics are onnxruntime's, in float32:
//! - `Scaler`: `y = (x - offset) * scale`, `offset` and `scale` one value
//!   per column or one for all;
//! - `Imputer`: where `x` is `replaced_value_float` (NaN matched as NaN,
//!   the default 0 matched as 0), `imputed_value_floats` of the column (or
//!   the one value for all).

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::cast;
use tract_onnx::tract_core::ops::logic::{comp_eq, Iff};
use tract_onnx::tract_core::ops::math::{is_nan, mul, sub};
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::logic::wire_with_rank_broadcast;

/// tract's ONNX reader with the operators of this module registered.
pub(crate) fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    register(&mut onnx.op_register);
    onnx
}

fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Scaler", scaler);
    reg.insert("Imputer", imputer);
}

fn floats(node: &NodeProto, name: &str) -> Vec<f32> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.floats.clone())
        .unwrap_or_default()
}

fn float(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.f)
}

/// One value per column, or one for all: a `[1, n]` constant.
fn row_constant(values: &[f32]) -> TractResult<Arc<Tensor>> {
    Ok(Tensor::from_shape(&[1, values.len()], values)?.into_arc_tensor())
}

/// One input, one float32 output of its shape.
fn elementwise_to_float<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 1)?;
    s.equals(&outputs[0].datum_type, DatumType::F32)?;
    s.equals(&inputs[0].shape, &outputs[0].shape)?;
    Ok(())
}

#[derive(Debug, Clone)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let (offset, scale) = (floats(node, "offset"), floats(node, "scale"));
    ensure!(
        !offset.is_empty() && !scale.is_empty(),
        "Scaler {:?} needs offset and scale",
        node.name
    );
    Ok((expand(Scaler { offset, scale }), vec![]))
}

/// `x` as float32, of rank 2 with `n` columns where `n` is known, checked
/// against a per-column attribute of `len` values (1 is for all columns).
fn float_rows(prefix: &str, model: &mut TypedModel, x: OutletId, what: &str, len: usize) -> TractResult<OutletId> {
    let fact = model.outlet_fact(x)?.clone();
    ensure!(
        fact.rank() == 2,
        "{what} takes [rows, columns], not rank {}",
        fact.rank()
    );
    if let (Ok(n), true) = (fact.shape[1].to_usize(), len > 1) {
        ensure!(n == len, "{what} has {len} values for {n} columns");
    }
    if fact.datum_type == f32::datum_type() {
        return Ok(x);
    }
    Ok(model.wire_node(format!("{prefix}.to_f32"), cast(f32::datum_type()), &[x])?[0])
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        elementwise_to_float(s, inputs, outputs)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let len = self.offset.len().max(self.scale.len());
        let x = float_rows(prefix, model, inputs[0], "Scaler", len)?;
        let offset = model.add_const(format!("{prefix}.offset"), row_constant(&self.offset)?)?;
        let scale = model.add_const(format!("{prefix}.scale"), row_constant(&self.scale)?)?;
        let centred = wire_with_rank_broadcast(format!("{prefix}.sub"), model, sub(), &[x, offset])?[0];
        wire_with_rank_broadcast(format!("{prefix}.mul"), model, mul(), &[centred, scale])
    }
}

#[derive(Debug, Clone)]
struct Imputer {
    values: Vec<f32>,
    replaced: f32,
}

fn imputer(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let values = floats(node, "imputed_value_floats");
    ensure!(
        !values.is_empty(),
        "Imputer {:?}: only imputed_value_floats is supported",
        node.name
    );
    let replaced = float(node, "replaced_value_float").unwrap_or(0.0);
    Ok((expand(Imputer { values, replaced }), vec![]))
}

impl Expansion for Imputer {
    fn name(&self) -> StaticName {
        "Imputer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        elementwise_to_float(s, inputs, outputs)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let x = float_rows(prefix, model, inputs[0], "Imputer", self.values.len())?;
        let missing = if self.replaced.is_nan() {
            model.wire_node(format!("{prefix}.is_nan"), is_nan(), &[x])?[0]
        } else {
            let replaced = model.add_const(format!("{prefix}.replaced"), rctensor2(&[[self.replaced]]))?;
            wire_with_rank_broadcast(
                format!("{prefix}.is_replaced"),
                model,
                TypedBinOp(comp_eq(), None),
                &[x, replaced],
            )?[0]
        };
        let values = model.add_const(format!("{prefix}.values"), row_constant(&self.values)?)?;
        wire_with_rank_broadcast(format!("{prefix}.select"), model, Iff, &[missing, values, x])
    }
}
