//! `modelctl predict`: labels and scores of any known kind of model, from a
//! bundle file or a registry reference, for rows in a CSV file.

use std::path::Path;

use model_persistence::persistence::{AnyModel, Kinds, Loaded, ProbeValue};
use model_persistence::versioning::ModelRef;
use ndarray::Array2;

use super::registry::Location;
use crate::output::{json, Failure, Format, Outcome};

/// Rows of numbers from CSV text: comma-separated, one row a line; a first
/// line that is not all numbers is a header (its names are checked against
/// the card's feature names when the card has them).
pub(crate) fn read_rows(text: &str, features: &[String], n_features: usize) -> Result<Array2<f64>, Failure> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let parse = |line: &str| -> Option<Vec<f64>> { line.split(',').map(|c| c.trim().parse::<f64>().ok()).collect() };
    if let Some(first) = lines.peek() {
        if parse(first).is_none() {
            let names: Vec<String> = first.split(',').map(|c| c.trim().to_owned()).collect();
            if !features.is_empty() && names != features {
                return Err(Failure(format!(
                    "the CSV header names {} columns ({}), the model's features are {}",
                    names.len(),
                    names.join(", "),
                    features.join(", ")
                )));
            }
            lines.next();
        }
    }
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in lines.enumerate() {
        let row = parse(line).ok_or_else(|| Failure(format!("row {}: not all numbers: {line}", i + 1)))?;
        if row.len() != n_features {
            return Err(Failure(format!(
                "row {}: {} values, the model takes {n_features} features",
                i + 1,
                row.len()
            )));
        }
        values.extend(row);
        rows += 1;
    }
    Array2::from_shape_vec((rows, n_features), values).map_err(|e| Failure(e.to_string()))
}

fn load(location: Location<'_>, target: &str) -> Result<Loaded<AnyModel>, Failure> {
    if Path::new(target).is_file() {
        return Ok(Kinds::default().load(target)?);
    }
    if target.contains('@') || !target.contains('/') {
        let reference: ModelRef = target.parse()?;
        return Ok(location.open()?.load_any(&reference)?);
    }
    Err(Failure(format!(
        "{target} is neither a bundle file nor a MODEL@ALIAS reference"
    )))
}

/// `modelctl predict BUNDLE_OR_MODEL@ALIAS --input rows.csv [--json]`.
pub(crate) fn predict(location: Location<'_>, target: &str, input: &Path, format: Format) -> Outcome {
    let loaded = load(location, target)?;
    let text = std::fs::read_to_string(input).map_err(|e| Failure(format!("cannot read {}: {e}", input.display())))?;
    let card = loaded.card();
    let rows = read_rows(&text, &card.features, card.n_features)?;
    let p = loaded.predict(rows.view())?;
    // A graph with string labels predicts indices into its class names:
    // the name is printed.
    let names = loaded.model().class_names();
    let label = |v: &ProbeValue| match v {
        ProbeValue::Label(l) => names
            .and_then(|n| usize::try_from(*l).ok().and_then(|i| n.get(i)))
            .map_or_else(|| serde_json::json!(l), |name| serde_json::json!(name)),
        ProbeValue::Value(x) => serde_json::json!(x),
    };
    if format == Format::Json {
        let out: Vec<serde_json::Value> = p
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let scores = p.scores.as_ref().map(|s| s.row(i).to_vec());
                serde_json::json!({"output": label(l), "scores": scores})
            })
            .collect();
        return json(&serde_json::json!({
            "model": card.name, "version": card.version.to_string(), "kind": card.kind, "predictions": out
        }));
    }
    println!("{} {} ({})", card.name, card.version, card.kind);
    for (i, l) in p.labels.iter().enumerate() {
        let scores = p.scores.as_ref().map_or_else(String::new, |s| {
            let cells: Vec<String> = s.row(i).iter().map(|x| format!("{x:.4}")).collect();
            format!("  scores {}", cells.join(" "))
        });
        match label(l) {
            serde_json::Value::String(name) => println!("{name}{scores}"),
            other => println!("{other}{scores}"),
        }
    }
    Ok(())
}
