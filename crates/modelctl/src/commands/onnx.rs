//! `modelctl import-onnx`: an ONNX graph (exported from scikit-learn,
//! PyTorch…) becomes a bundle with its card.

use std::path::Path;

use model_persistence::models::onnx::OnnxModel;
use model_persistence::persistence::{self, ModelCard, Version};

use super::predict::read_rows;
use crate::output::outln;
use crate::output::{Failure, Outcome};

/// What `import-onnx` was asked.
pub(crate) struct Import<'a> {
    pub(crate) graph: &'a Path,
    pub(crate) name: &'a str,
    pub(crate) version: Option<&'a str>,
    pub(crate) metrics: &'a [String],
    pub(crate) train_data: Option<&'a Path>,
    pub(crate) output: Option<&'a Path>,
}

/// `modelctl import-onnx FILE.onnx --name N [--version V] [--metric k=v ...]
/// [--train-data rows.csv] [--output OUT.bundle]`.
pub(crate) fn import(args: &Import<'_>) -> Outcome {
    let graph = std::fs::read(args.graph).map_err(|e| Failure(format!("cannot read {}: {e}", args.graph.display())))?;
    let model = OnnxModel::from_graph(graph)?;
    let (description, width) = (model.describe(), model.input_width());
    // A tree ensemble on the graph's input is stored lowered: loading then
    // parses no ONNX. One with nodes around it that change values (a
    // pipeline's scaling) is stored whole: those nodes run on tract.
    match model.tree_ensemble() {
        Some(trees) => write(args, &trees, "ONNX tree ensemble (flat forest)", description, width),
        None if model.runs_natively() => write(
            args,
            &model,
            "ONNX graph (trees on the flat forest, nodes around them on tract)",
            description,
            width,
        ),
        None => write(args, &model, "ONNX graph", description, width),
    }
}

/// Builds the card and writes the bundle of an imported model.
fn write<M: persistence::Model>(
    args: &Import<'_>,
    model: &M,
    algorithm: &str,
    description: serde_json::Value,
    width: usize,
) -> Outcome {
    let mut card = ModelCard::builder(args.name, model)
        .algorithm(algorithm)
        .extension("onnx", description);
    if let Some(v) = args.version {
        card = card.version(Version::parse(v).map_err(|e| Failure(format!("invalid version {v:?}: {e}")))?);
    }
    for m in args.metrics {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| Failure(format!("--metric {m:?}: write NAME=VALUE")))?;
        let v: f64 = v
            .parse()
            .map_err(|_| Failure(format!("--metric {m:?}: {v:?} is not a number")))?;
        card = card.metric(k, v);
    }
    if let Some(path) = args.train_data {
        let text =
            std::fs::read_to_string(path).map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
        let rows = read_rows(&text, &[], width)?;
        card = card.training_data(rows.view(), path.display().to_string());
    } else {
        card = card.n_features(width);
    }
    let card = card.build()?;
    let default_out = format!("{}.bundle", args.name);
    let out = args.output.unwrap_or(Path::new(&default_out));
    // Without --version the file is for a registry, which versions it.
    let writer = match args.version {
        Some(_) => persistence::BundleWriter::default(),
        None => persistence::BundleWriter::default().unversioned(),
    };
    let saved = writer.save(out, model, &card)?;
    outln!(
        "wrote {} ({} bytes, kind {}, {} features, content id {})",
        out.display(),
        saved.file_len(),
        card.kind,
        card.n_features,
        saved.content_id().short()
    );
    Ok(())
}
