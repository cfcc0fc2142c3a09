//! ONNX models, run by tract (pure Rust), behind the `onnx` feature.
//!
//! Almost every model trained in Python (scikit-learn through skl2onnx,
//! PyTorch through `torch.onnx.export`) can leave Python as an ONNX graph.
//! [`OnnxModel`] stores the graph as one binary blob in the bundle, and is
//! a [`Model`] like any other: its card is filled from the graph (inputs,
//! outputs, shapes, element types, opset, producer; [`OnnxModel::describe`]),
//! its structural check has tract type-check and optimise the graph for the
//! card's input width (refusing graphs with external data files and
//! operators tract does not know, with the reason), and loading replays the
//! card's probe.
//!
//! Graphs whose model is a tree ensemble run their trees on the project's
//! flat forest (nodes before and after the trees on tract); tract 0.23.9
//! lacks the `ai.onnx.ml` `Scaler` and `Imputer` of scikit-learn
//! pipelines, which are added to it here as compositions of its own
//! operators.
//!
//! The graph takes one float input of shape `[batch, n_features]`. The first
//! output is the label (integer, for classifiers) or the value (float, for
//! regressors); a second float output of shape `[batch, classes]` holds the
//! class probabilities, as skl2onnx writes them with `zipmap=False`.
//!
//! ```no_run
//! use model_persistence_models::onnx::OnnxModel;
//! use model_persistence_core::ModelCard;
//!
//! let graph = std::fs::read("forest.onnx")?;
//! let model = OnnxModel::from_graph(graph)?;
//! let card = ModelCard::builder("fraud", &model)
//!     .extension("onnx", model.describe())
//!     .probe(ndarray::Array2::zeros((1, model.input_width())).view())
//!     .build()?;
//! model_persistence_core::save("forest.bundle", &model, &card)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::OnceLock;

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;

use model_persistence_core::{Model, Predictor, ProbeValue, StructureError};

mod bounds;
mod error;
mod ml;
mod outputs;
mod proto;
mod trees;
use bounds::check_bounds;
pub use bounds::{FOLDED_BYTES_FLOOR, FOLDED_BYTES_PER_GRAPH_BYTE, MAX_GRAPH_NODES, MAX_TENSOR_ELEMENTS};
pub use error::OnnxError;
use outputs::{failed, Outputs};
use proto::{check_no_external_data, dims, elem_name, elem_type, parse, FLOAT32};
use trees::Native;
pub use trees::{TreeEnsemble, MAX_DEPTH as MAX_TREE_DEPTH, MAX_OUTPUTS as MAX_TREE_OUTPUTS};

/// Registers the ONNX kinds: graphs run by tract (`onnx.v1`) and tree
/// ensembles on the flat forest (`onnx.tree_ensemble.v3`, with their
/// earlier kinds).
pub fn register(kinds: &mut model_persistence_core::Kinds) {
    kinds.register::<OnnxModel>().register::<TreeEnsemble>();
}

/// How far a graph's replayed probe may lie from the recorded one (relative,
/// see [`Model::probe_tolerance`]) when tract computes any of its outputs:
/// tract picks its SIMD kernels per CPU, so a graph saved on one machine
/// gives other last bits on another. Single-precision kernels differ by a
/// few units in the last place, about 1e-7; this admits a hundred times that.
pub const PROBE_TOLERANCE: f64 = 1e-5;

/// The tract version graphs are run with.
pub const TRACT_VERSION: &str = "0.23.9";

type Plan = TypedRunnableModel;

/// A model held as an ONNX graph.
#[derive(Serialize, Deserialize)]
pub struct OnnxModel {
    graph: Blob,
    n_features: usize,
    label_output: usize,
    scores_output: Option<usize>,
    /// The class labels of a tree-ensemble classifier that gives the label
    /// output itself: tract 0.23.9 computes the probabilities of such a node
    /// as onnxruntime does but not its label, so the label is taken as the
    /// class of highest probability (the first on a tie, as onnxruntime).
    #[serde(default)]
    tree_labels: Option<Vec<i64>>,
    /// Whether the graph declares its first output as integers (labels).
    label_is_integer: bool,
    #[serde(skip)]
    plan: OnceLock<std::result::Result<Arc<Plan>, String>>,
    /// Whether the graph takes missing values (see
    /// [`Predictor::accepts_non_finite`]), found on first use.
    #[serde(skip)]
    takes_missing: OnceLock<bool>,
    /// The graph's tree ensemble lowered to a flat forest, with the nodes
    /// around it on tract, when the graph's model is one (see the `trees`
    /// module); built from the graph on first use.
    #[serde(skip)]
    forest: OnceLock<std::result::Result<Option<Arc<Native>>, String>>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("graph_bytes", &self.graph.0.len())
            .field("n_features", &self.n_features)
            .finish()
    }
}

/// Bytes stored as one MessagePack binary, not an array of integers.
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> std::result::Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl OnnxModel {
    /// Reads an ONNX graph and checks its signature and that tract runs it.
    ///
    /// # Errors
    ///
    /// [`OnnxError`] saying what is wrong.
    pub fn from_graph(graph: Vec<u8>) -> std::result::Result<Self, OnnxError> {
        let proto = parse(&graph)?;
        let g = proto.graph.as_ref().ok_or_else(|| OnnxError::Malformed {
            reason: "the model has no graph".into(),
        })?;
        check_no_external_data(g)?;
        check_bounds(g, graph.len())?;
        let initializers: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(OnnxError::Signature {
                reason: format!(
                    "{} inputs; one float input [batch, features] is supported",
                    inputs.len()
                ),
            });
        };
        if elem_type(input) != Some(FLOAT32) {
            return Err(OnnxError::Signature {
                reason: format!(
                    "the input {:?} is {}, not float32",
                    input.name,
                    elem_type(input).map_or("of no tensor type", elem_name)
                ),
            });
        }
        let n_features = match dims(input).as_slice() {
            [_, Some(n)] if *n > 0 => *n as usize,
            other => {
                return Err(OnnxError::Signature {
                    reason: format!("the input shape {other:?} is not [batch, features] with a known width"),
                })
            }
        };
        let scores_output = g
            .output
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, o)| elem_type(o) == Some(FLOAT32) && dims(o).len() == 2)
            .map(|(i, _)| i);
        // The one tree-ensemble classifier of a graph gives its labels
        // (through renames and casts, as converters write them).
        let classifiers: Vec<&pb::NodeProto> = g
            .node
            .iter()
            .filter(|n| n.op_type == "TreeEnsembleClassifier")
            .collect();
        let tree_labels = match classifiers.as_slice() {
            [n] => n
                .attribute
                .iter()
                .find(|a| a.name == "classlabels_int64s")
                .map(|a| a.ints.clone())
                .filter(|l| !l.is_empty()),
            _ => None,
        };
        let model = OnnxModel {
            graph: Blob(graph),
            n_features,
            label_output: 0,
            scores_output,
            tree_labels,
            label_is_integer: g.output.first().and_then(elem_type).is_some_and(|t| matches!(t, 6 | 7)),
            plan: OnceLock::new(),
            takes_missing: OnceLock::new(),
            forest: OnceLock::new(),
        };
        if model.forest().map_err(|reason| OnnxError::Tree { reason })?.is_none() {
            model.plan().map_err(|reason| OnnxError::Unsupported { reason })?;
        }
        Ok(model)
    }

    /// The input width the graph takes.
    pub fn input_width(&self) -> usize {
        self.n_features
    }

    /// The graph's bytes, as exported.
    pub fn graph(&self) -> &[u8] {
        &self.graph.0
    }

    /// What the graph says of itself, for the card's `onnx` extension:
    /// inputs and outputs (name, element type, shape), opset, producer, the
    /// graph's SHA-256.
    pub fn describe(&self) -> serde_json::Value {
        use sha2::Digest;
        let Ok(proto) = parse(&self.graph.0) else {
            return serde_json::Value::Null;
        };
        let io = |v: &pb::ValueInfoProto| {
            serde_json::json!({
                "name": v.name,
                "type": elem_type(v).map_or("none", elem_name),
                "shape": dims(v),
            })
        };
        let g = proto.graph.as_ref();
        let initializers: Vec<&str> = g
            .map(|g| g.initializer.iter().map(|t| t.name.as_str()).collect())
            .unwrap_or_default();
        serde_json::json!({
            "inputs": g.map(|g| g.input.iter().filter(|i| !initializers.contains(&i.name.as_str())).map(io).collect::<Vec<_>>()),
            "outputs": g.map(|g| g.output.iter().map(io).collect::<Vec<_>>()),
            "opset": proto.opset_import.iter().map(|o| serde_json::json!({"domain": o.domain, "version": o.version})).collect::<Vec<_>>(),
            "producer": format!("{} {}", proto.producer_name, proto.producer_version),
            "ir_version": proto.ir_version,
            "sha256": hex::encode(sha2::Sha256::digest(&self.graph.0)),
            "runtime": match self.forest() {
                Ok(Some(n)) => {
                    let mut parts = Vec::new();
                    if n.has_prefix() {
                        parts.push(format!("tract {TRACT_VERSION} before the trees"));
                    }
                    let (trees, nodes) = n.forest.size();
                    parts.push(format!("flat forest ({trees} trees, {nodes} nodes)"));
                    if n.has_suffix() {
                        parts.push(format!("tract {TRACT_VERSION} after the trees"));
                    }
                    parts.join(", then ")
                }
                _ => format!("tract {TRACT_VERSION}"),
            },
        })
    }

    /// The flat forest of a graph whose model is one tree ensemble, with
    /// the nodes around it on tract; built once.
    fn forest(&self) -> std::result::Result<Option<&Native>, String> {
        self.forest
            .get_or_init(|| {
                let proto = parse(&self.graph.0).map_err(|e| e.to_string())?;
                let Some(g) = proto.graph.as_ref() else {
                    return Ok(None);
                };
                let initializers: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
                let Some(input) = g.input.iter().find(|i| !initializers.contains(&i.name.as_str())) else {
                    return Ok(None);
                };
                let native = contained("loading the graph", || {
                    Native::build(&proto, &input.name, self.n_features)
                })?;
                Ok(native.map(Arc::new))
            })
            .as_ref()
            .map(|f| f.as_deref())
            .map_err(Clone::clone)
    }

    /// The graph's tree ensemble in its lowered form, to be stored as
    /// such (see [`TreeEnsemble`]); `None` for a graph that runs on tract,
    /// or with nodes before or after its trees that change values (those
    /// run on tract: the graph is stored whole).
    pub fn tree_ensemble(&self) -> Option<TreeEnsemble> {
        let native = self.forest().ok()??;
        if native.has_prefix() || native.has_suffix() {
            return None;
        }
        Some(TreeEnsemble {
            forest: native.forest.clone(),
            n_features: self.n_features,
        })
    }

    /// Whether the graph's trees run on the project's flat forest rather
    /// than on tract (nodes before the trees, such as scaling or
    /// imputation, and after them run on tract either way).
    pub fn runs_natively(&self) -> bool {
        matches!(self.forest(), Ok(Some(_)))
    }

    /// The runnable plan, built once: parsed, typed for `[batch,
    /// n_features]` float32, optimised.
    fn plan(&self) -> std::result::Result<Arc<Plan>, String> {
        self.plan
            .get_or_init(|| {
                let build = || -> TractResult<Arc<Plan>> {
                    let model = ml::onnx().model_for_read(&mut &self.graph.0[..])?;
                    let batch = model.sym("batch");
                    model
                        .with_input_fact(0, f32::fact(dims!(batch, self.n_features)).into())?
                        .into_optimized()?
                        .into_runnable()
                };
                contained("loading the graph", || build().map_err(|e| format!("{e:#}")))
            })
            .clone()
    }

    fn run(&self, rows: ArrayView2<'_, f64>) -> std::result::Result<TVec<TValue>, String> {
        let plan = self.plan()?;
        // tract has its own ndarray: hand it the values, not our array.
        let data: Vec<f32> = rows.iter().map(|&x| x as f32).collect();
        let input = Tensor::from_shape(&[rows.nrows(), rows.ncols()], &data).map_err(|e| format!("{e:#}"))?;
        contained("running the graph", || {
            plan.run(tvec!(input.into_tvalue())).map_err(|e| format!("{e:#}"))
        })
    }
}

/// Runs tract (third-party code) on an untrusted graph with its panics
/// contained: a graph that makes tract panic while it is read, typed,
/// optimised or run (a flipped bit that breaks tract's own bookkeeping, a
/// shape whose size overflows) is an error naming `what` and tract's
/// message, not a crash of the process or of a watcher thread. Release
/// builds keep `panic = "unwind"` for this.
pub(crate) fn contained<T>(
    what: &str,
    f: impl FnOnce() -> std::result::Result<T, String>,
) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = model_persistence_core::panic_message(payload.as_ref());
        Err(format!("tract failed {what} (it panicked: {message})"))
    })
}

impl Predictor for OnnxModel {
    type Output = ProbeValue;

    fn n_features(&self) -> Option<usize> {
        Some(self.n_features)
    }

    /// A graph with trees (which send missing values where it says) or an
    /// imputer (which replaces them) takes NaN; any other does not.
    fn accepts_non_finite(&self) -> bool {
        *self.takes_missing.get_or_init(|| {
            parse(&self.graph.0).ok().and_then(|p| p.graph).is_some_and(|g| {
                g.node.iter().any(|n| {
                    matches!(
                        n.op_type.as_str(),
                        "TreeEnsembleClassifier" | "TreeEnsembleRegressor" | "TreeEnsemble" | "Imputer"
                    )
                })
            })
        })
    }

    fn class_names(&self) -> Option<&[String]> {
        self.forest().ok()??.forest.class_names()
    }

    /// The first output: labels (integers) or values (floats). A graph that
    /// fails to run gives NaN for every row (and logs why): predictions
    /// never panic.
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<ProbeValue> {
        let predictions = match self.outputs(rows) {
            Ok(Outputs::Forest(out)) => return out.predictions(),
            Ok(Outputs::Graph { values, trees_on_tract }) => self.predictions_of(&values, trees_on_tract),
            Err(e) => Err(e),
        };
        predictions.unwrap_or_else(|why| failed(rows.nrows(), why))
    }

    /// The probabilities output, when the graph has one; one run for both.
    fn predict_scored(&self, rows: ArrayView2<'_, f64>) -> (Array1<ProbeValue>, Option<Array2<f64>>) {
        match self.outputs(rows) {
            Ok(Outputs::Forest(out)) => out.both(rows.nrows()),
            Ok(Outputs::Graph { values, trees_on_tract }) => (
                self.predictions_of(&values, trees_on_tract)
                    .unwrap_or_else(|why| failed(rows.nrows(), why)),
                self.scores_of(&values),
            ),
            Err(why) => (failed(rows.nrows(), why), None),
        }
    }

    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
        match self.outputs(rows).ok()? {
            Outputs::Forest(out) => out.into_scores(rows.nrows()),
            Outputs::Graph { values, .. } => self.scores_of(&values),
        }
    }
}

impl Model for OnnxModel {
    const KIND: &'static str = "onnx.v1";

    /// Exact for a tree ensemble the flat forest runs whole (the project's
    /// own arithmetic, in a fixed order); [`PROBE_TOLERANCE`] for a graph
    /// any of whose outputs tract computes, whose kernels follow the CPU.
    fn probe_tolerance(&self) -> f64 {
        match self.forest() {
            Ok(Some(native)) if native.is_whole() => 0.0,
            _ => PROBE_TOLERANCE,
        }
    }

    fn check_structure(&self, n_features: usize) -> std::result::Result<(), StructureError> {
        if n_features != self.n_features {
            return Err(StructureError::new(format!(
                "the graph takes {} features, the card says {n_features}",
                self.n_features
            )));
        }
        let proto = parse(&self.graph.0).map_err(|e| StructureError::new(e.to_string()))?;
        if let Some(g) = proto.graph.as_ref() {
            check_no_external_data(g).map_err(|e| StructureError::new(e.to_string()))?;
            check_bounds(g, self.graph.0.len()).map_err(|e| StructureError::new(e.to_string()))?;
        }
        match self.forest() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(reason) => return Err(StructureError::new(OnnxError::Tree { reason }.to_string())),
        }
        self.plan()
            .map(|_| ())
            .map_err(|reason| StructureError::new(OnnxError::Unsupported { reason }.to_string()))
    }

    fn dependencies() -> Vec<(&'static str, &'static str)> {
        vec![("tract-onnx", TRACT_VERSION)]
    }
}
