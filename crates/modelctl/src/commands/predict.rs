//! `modelctl predict`: labels and scores of any known kind of model, from a
//! bundle file or a registry reference, for rows in a CSV file.

use std::path::Path;

use model_persistence::persistence::{AnyModel, Loaded, ProbeValue};
use model_persistence::versioning::ModelRef;
use ndarray::Array2;

use super::registry::Location;
use crate::output::outln;
use crate::output::{json, Failure, Format, Outcome};

/// Rows of numbers from CSV text (RFC 4180, read by the `csv` crate:
/// quoted fields, CRLF line ends and a byte-order mark as Excel writes
/// them), one row a record, a missing value written NaN; a first record
/// with a name in it is a header (its names are checked against the
/// card's feature names when the card has them).
pub(crate) fn read_rows(text: &str, features: &[String], n_features: usize) -> Result<Array2<f64>, Failure> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Failure(format!("record {}: not CSV: {e}", i + 1)))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        records.push(record);
    }
    // A header has a name in it: a record of numbers with an empty field is
    // a row (refused below with the reason), not dropped as a header.
    let has_name = |r: &csv::StringRecord| r.iter().any(|c| !c.is_empty() && c.parse::<f64>().is_err());
    let mut rows_of = records.as_slice();
    if let Some((first, rest)) = records.split_first() {
        if has_name(first) {
            let names: Vec<String> = first.iter().map(str::to_owned).collect();
            if !features.is_empty() && names != features {
                return Err(Failure(format!(
                    "the CSV header names {} columns ({}), the model's features are {}",
                    names.len(),
                    names.join(", "),
                    features.join(", ")
                )));
            }
            rows_of = rest;
        }
    }
    let mut values = Vec::with_capacity(rows_of.len() * n_features);
    for (i, record) in rows_of.iter().enumerate() {
        let row: Option<Vec<f64>> = record.iter().map(|c| c.parse::<f64>().ok()).collect();
        let row = row.ok_or_else(|| {
            let hint = if record.iter().any(str::is_empty) {
                " (an empty field: write a missing value as NaN)"
            } else {
                ""
            };
            let line: Vec<&str> = record.iter().collect();
            Failure(format!("row {}: not all numbers{hint}: {}", i + 1, line.join(",")))
        })?;
        if row.len() != n_features {
            return Err(Failure(format!(
                "row {}: {} values, the model takes {n_features} features",
                i + 1,
                row.len()
            )));
        }
        values.extend(row);
    }
    Array2::from_shape_vec((rows_of.len(), n_features), values).map_err(|e| Failure(e.to_string()))
}

fn load(location: Location<'_>, target: &str) -> Result<Loaded<AnyModel>, Failure> {
    if Path::new(target).is_file() {
        return Ok(model_persistence::models::kinds().load(target)?);
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
                // A classifier's label, or a regressor's value: named so.
                let key = match l {
                    ProbeValue::Label(_) => "label",
                    ProbeValue::Value(_) => "value",
                };
                serde_json::json!({key: label(l), "scores": scores})
            })
            .collect();
        return json(&serde_json::json!({
            "model": card.name, "version": card.version.to_string(), "kind": card.kind, "predictions": out
        }));
    }
    outln!("{} {} ({})", card.name, card.version, card.kind);
    for (i, l) in p.labels.iter().enumerate() {
        let scores = p.scores.as_ref().map_or_else(String::new, |s| {
            let cells: Vec<String> = s.row(i).iter().map(|x| format!("{x:.4}")).collect();
            format!("  scores {}", cells.join(" "))
        });
        match label(l) {
            serde_json::Value::String(name) => outln!("{name}{scores}"),
            other => outln!("{other}{scores}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::read_rows;

    #[test]
    fn quoted_fields_crlf_and_a_byte_order_mark_are_csv() {
        let text = "\u{feff}\"a\",\"b, the second\"\r\n\"1.5\",2\r\n3,\"NaN\"\r\n";
        let rows = read_rows(text, &["a".into(), "b, the second".into()], 2).expect("rows");
        assert_eq!(rows.nrows(), 2);
        assert_eq!(rows[[0, 0]], 1.5);
        assert!(rows[[1, 1]].is_nan());
        // A byte-order mark before numbers: the first row is a row.
        let rows = read_rows("\u{feff}1,2\n3,4\n", &[], 2).expect("rows");
        assert_eq!(rows.nrows(), 2);
    }

    #[test]
    fn rows_take_nan_and_an_empty_field_is_named_in_the_error() {
        let rows = read_rows("a,b\n1,NaN\n2.5,3\n", &["a".into(), "b".into()], 2).expect("rows");
        assert_eq!(rows.shape(), &[2, 2]);
        assert!(rows[[0, 1]].is_nan());
        assert_eq!(rows[[1, 0]], 2.5);
        let err = read_rows("1,\n", &[], 2).expect_err("an empty field").0;
        assert!(
            err.contains("row 1") && err.contains("write a missing value as NaN"),
            "{err}"
        );
        let err = read_rows("1,2\n1,x\n", &[], 2).expect_err("not a number").0;
        assert!(err.contains("row 2: not all numbers: 1,x"), "{err}");
        // A header is a line with a name in it, not any line that fails.
        let rows = read_rows("x,y\n1,2\n", &[], 2).expect("a header, a row");
        assert_eq!(rows.shape(), &[1, 2]);
    }
}
