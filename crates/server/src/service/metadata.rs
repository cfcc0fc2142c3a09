//! What the protocols say about the server and its models: metadata and
//! readiness, the same over every transport.

use model_persistence_core::{Predictor, ProbeValue};
use serde::{Deserialize, Serialize};

use super::{not_ready, not_served, InferError};
use crate::hosting::{AppState, Route};

/// The server's name, version and protocol extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMetadata {
    /// `model-persistence`.
    pub name: String,
    /// The crate's version.
    pub version: String,
    /// The protocol extensions served.
    pub extensions: Vec<String>,
}

/// The server's metadata.
pub fn server_metadata() -> ServerMetadata {
    ServerMetadata {
        name: "model-persistence".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: Vec::new(),
    }
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

impl AppState {
    /// Whether `name` (at `version`, if given) is loaded and serving.
    ///
    /// # Errors
    ///
    /// [`InferError`] (not found) for an unknown model, or a version its
    /// route does not serve.
    pub fn model_ready(&self, name: &str, version: Option<&str>) -> Result<bool, InferError> {
        let slot = self.slot(name)?;
        Ok(match (slot.route.get(), version) {
            (None, _) => false,
            (Some(route), Some(v)) => {
                route.server_for_version(v).ok_or_else(|| not_served(name, v, route))?;
                true
            }
            (Some(_), None) => true,
        })
    }

    /// A model's metadata: the versions it serves, its platform (the kind),
    /// its input (`[-1, n_features]` numbers) and its outputs (`predict`,
    /// and `predict_proba` where the model has scores).
    ///
    /// # Errors
    ///
    /// [`InferError`]: an unknown model, a version not served, a model not
    /// loaded yet.
    pub fn model_metadata(&self, name: &str, version: Option<&str>) -> Result<ModelMetadata, InferError> {
        let slot = self.slot(name)?;
        let route = slot.route.get().ok_or_else(|| not_ready(name, &slot))?;
        let server = match (version, route) {
            (Some(v), _) => route.server_for_version(v).ok_or_else(|| not_served(name, v, route))?,
            (None, Route::Single(s)) => s,
            (None, Route::Ab { split, .. }) => split
                .variants()
                .next()
                .map(|(_, s)| s)
                .ok_or_else(|| not_ready(name, &slot))?,
        };
        let live = server.live();
        let card = live.card();
        let zeros = ndarray::Array2::<f64>::zeros((1, card.n_features));
        let (first, scores) = live.model().predict_scored(zeros.view());
        let labels = matches!(first.first(), Some(ProbeValue::Label(_)));
        let mut outputs = vec![TensorMetadata {
            name: "predict".into(),
            datatype: match (live.classes().is_some(), labels) {
                (true, true) => "BYTES",
                (false, true) => "INT64",
                _ => "FP64",
            }
            .into(),
            shape: vec![-1],
        }];
        if let Some(scores) = scores {
            outputs.push(TensorMetadata {
                name: "predict_proba".into(),
                datatype: "FP64".into(),
                shape: vec![-1, i64::try_from(scores.ncols()).unwrap_or(-1)],
            });
        }
        Ok(ModelMetadata {
            name: name.to_owned(),
            versions: match version {
                Some(v) => vec![v.to_owned()],
                None => route.served_versions(),
            },
            platform: format!("model-persistence/{}", card.kind),
            inputs: vec![TensorMetadata {
                name: "input".into(),
                datatype: "FP64".into(),
                shape: vec![-1, i64::try_from(card.n_features).unwrap_or(-1)],
            }],
            outputs,
        })
    }
}
