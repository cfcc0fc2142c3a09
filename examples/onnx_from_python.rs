//! A scikit-learn forest, exported to ONNX in Python, served behind the same
//! name as a Rust (linfa) forest: imported with its card, gated against the
//! linfa forest on the same held-out rows, published, promoted, hot-swapped
//! in, then A/B-tested against it. Every answer names its version and kind.
//! Last, a scikit-learn pipeline (imputation, scaling, a forest) answers
//! rows with missing values: its preprocessing runs on tract, its trees on
//! the project's flat forest.
//!
//! Run with `cargo run --release --features onnx --example onnx_from_python [-- DIR]`.
//! The ONNX graph and the held-out rows come from `scripts/onnx-fixtures.py`
//! (scikit-learn, skl2onnx and onnxruntime from PyPI; committed under
//! `tests/fixtures/onnx`).

mod common;

use std::path::{Path, PathBuf};

use common::{fraud_split, train_forest, Result};
use model_persistence::gate::metrics::evaluate_predictions;
use model_persistence::gate::{self, Outcome, PublishRequest};
use model_persistence::models::onnx::OnnxModel;
use model_persistence::persistence::{AnyModel, Loaded};
use model_persistence::prelude::*;
use model_persistence::serving::AbSplit;
use model_persistence_testkit::FRAUD_FEATURES;
use ndarray::{s, Array2};

/// What the run did, for the test that runs this example.
#[allow(dead_code)] // Read by tests/examples.rs, not by main.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) onnx_published: bool,
    pub(crate) kinds_served: Vec<String>,
    pub(crate) ab_counts: Vec<(String, u64)>,
    /// Where the pipeline's graph runs, as its card says.
    pub(crate) pipeline_runtime: String,
    /// The pipeline's answers to rows with a missing value.
    pub(crate) pipeline_answers: Vec<String>,
}

/// The held-out rows (and their true classes) the Python side wrote.
fn held_out() -> Result<(Array2<f64>, Vec<usize>, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("random_forest.json"))?)?;
    let rows: Vec<Vec<f64>> = serde_json::from_value(json["rows"].clone())?;
    let truth: Vec<usize> = serde_json::from_value(json["truth"].clone())?;
    let x = Array2::from_shape_vec((rows.len(), FRAUD_FEATURES.len()), rows.concat())?;
    Ok((x, truth, std::fs::read(dir.join("random_forest.onnx"))?))
}

fn metrics_of(loaded: &Loaded<AnyModel>, x: &Array2<f64>, truth: &[usize]) -> Result<Metrics> {
    Ok(evaluate_predictions(truth, &loaded.predict(x.view())?))
}

fn fraud_gate() -> Gate {
    Gate::new([
        Rule::higher_is_better("roc_auc").threshold(0.85),
        Rule::higher_is_better("f1")
            .threshold(0.5)
            .baseline(BaselineRule::MayRegress(Margin::Absolute(0.05))),
    ])
}

pub(crate) fn run(dir: &Path, trees: usize) -> Result<Summary> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let registry = Registry::create(dir)?;
    let (x, truth, graph) = held_out()?;
    let kinds = model_persistence::models::kinds();

    println!("🦀 A Rust forest (linfa, {trees} trees) trained on 10,000 fraud-like transactions...");
    let data = fraud_split(10_000, 42);
    let forest = train_forest(&data, trees, 7)?;
    let card = ModelCard::builder("fraud", &forest)
        .algorithm("random forest (linfa-ensemble)")
        .feature_names(FRAUD_FEATURES)
        .training_data(data.train.records().view(), data.source.clone())
        .build()?;
    let bytes = model_persistence::persistence::to_bytes(&forest, &card)?;
    let linfa_metrics = metrics_of(&kinds.load_bytes(&bytes)?, &x, &truth)?;
    let card = ModelCard::builder("fraud", &forest)
        .algorithm("random forest (linfa-ensemble)")
        .feature_names(FRAUD_FEATURES)
        .training_data(data.train.records().view(), data.source.clone())
        .metrics(linfa_metrics.clone())
        .build()?;
    let outcome = gate::evaluate_and_publish(
        &fraud_gate(),
        &registry,
        PublishRequest::new(&forest, &card, "production"),
    )?;
    let Outcome::Published { version: v1, .. } = outcome else {
        return Err(format!("the linfa forest was refused:\n{}", outcome.report()).into());
    };
    println!("  published fraud {} and promoted it to production", v1.version);

    let server = ModelServer::<AnyModel>::start(
        Source::registry(registry.clone(), "fraud@production")?,
        ReloadPolicy::Manual,
    )?;
    let mut kinds_served = vec![server.status().model_kind];
    let answer = |label: &str| -> Result<()> {
        let p = server.predict_scored(x.slice(s![..3, ..]))?;
        let status = server.status();
        for (i, o) in p.outputs.iter().enumerate() {
            let fraud = p.scores.as_ref().map_or(f64::NAN, |s| s[[i, 1]]);
            println!(
                "  {label} row {i}: {o} (P(fraud) {fraud:.3}) from fraud {} [{}]",
                p.version, status.model_kind
            );
        }
        Ok(())
    };
    answer("serving")?;

    println!("\n🐍 The scikit-learn forest, exported with skl2onnx, imported with its card...");
    let onnx = OnnxModel::from_graph(graph)?;
    let probe_card = ModelCard::builder("fraud", &onnx)
        .extension("onnx", onnx.describe())
        .feature_names(FRAUD_FEATURES)
        .probe(x.slice(s![..5, ..]))
        .build()?;
    let probe_bytes = model_persistence::persistence::to_bytes(&onnx, &probe_card)?;
    let onnx_metrics = metrics_of(&kinds.load_bytes(&probe_bytes)?, &x, &truth)?;
    println!("  graph: {}", onnx.describe()["producer"]);
    for (name, value) in [("linfa", &linfa_metrics), ("onnx", &onnx_metrics)] {
        println!(
            "  {name:<5} on the {} held-out rows: F1 {:.3}, ROC AUC {:.3}, log loss {:.3}",
            truth.len(),
            value["f1"],
            value["roc_auc"],
            value["log_loss"]
        );
    }
    let onnx_card = ModelCard::builder("fraud", &onnx)
        .algorithm("random forest (scikit-learn, via ONNX)")
        .extension("onnx", onnx.describe())
        .feature_names(FRAUD_FEATURES)
        .probe(x.slice(s![..5, ..]))
        .metrics(onnx_metrics.clone())
        .build()?;
    let outcome = gate::evaluate_and_publish(
        &fraud_gate(),
        &registry,
        PublishRequest::new(&onnx, &onnx_card, "production"),
    )?;
    println!(
        "🚦 The gate, against production (the linfa forest):\n{}",
        outcome.report()
    );
    let onnx_published = matches!(outcome, Outcome::Published { .. });
    let v2 = match outcome {
        Outcome::Published { version, .. } => {
            println!("  → published fraud {} and moved production to it", version.version);
            version
        }
        Outcome::Rejected { .. } => {
            let v = registry.publish_model(&onnx, &onnx_card, VersionSpec::Bump(Bump::Minor))?;
            println!(
                "  → refused for production; kept as fraud {} for the A/B test",
                v.version
            );
            v
        }
        _ => return Err("unexpected gate outcome".into()),
    };

    println!("\n🔄 Hot swap: the same server, the same alias, another algorithm");
    if server.reload_if_updated()? {
        kinds_served.push(server.status().model_kind);
        answer("swapped")?;
    } else {
        println!(
            "  production did not move; the server keeps {}",
            server.status().version
        );
    }

    println!(
        "\n🧪 A/B: linfa {} against ONNX {} behind one name",
        v1.version, v2.version
    );
    registry.set_alias("fraud", "control", &v1.version)?;
    registry.set_alias("fraud", "treatment", &v2.version)?;
    let serve = |alias: &str| -> Result<ModelServer<AnyModel>> {
        Ok(ModelServer::start(
            Source::registry(registry.clone(), &format!("fraud@{alias}"))?,
            ReloadPolicy::Manual,
        )?)
    };
    let split = AbSplit::new(
        [
            ("control".to_owned(), serve("control")?, 50),
            ("treatment".to_owned(), serve("treatment")?, 50),
        ],
        11,
    )?;
    for i in 0..x.nrows() {
        let (variant, p) = split.predict(&format!("customer-{i}"), x.slice(s![i..i + 1, ..]))?;
        if i < 4 {
            println!(
                "  customer-{i}: {variant} answered {} with fraud {}",
                p.outputs[0], p.version
            );
        }
    }
    let ab_counts: Vec<(String, u64)> = split.counts().into_iter().map(|v| (v.name, v.served)).collect();
    for (name, n) in &ab_counts {
        println!("  {name}: {n} requests");
    }
    let (pipeline_runtime, pipeline_answers) = pipeline(dir)?;
    Ok(Summary {
        onnx_published,
        kinds_served,
        ab_counts,
        pipeline_runtime,
        pipeline_answers,
    })
}

/// A scikit-learn pipeline (SimpleImputer, StandardScaler, a three-class
/// forest) exported to ONNX, saved with its card and served: rows with a
/// missing value are answered, the imputer filling them in.
fn pipeline(dir: &Path) -> Result<(String, Vec<String>)> {
    println!("\n🧹 A scikit-learn pipeline: imputer, scaler, forest, in one graph");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let model = OnnxModel::from_graph(std::fs::read(fixtures.join("pipeline_imputer_scaler_forest.onnx"))?)?;
    let runtime = model.describe()["runtime"].as_str().unwrap_or_default().to_owned();
    println!("  runs as: {runtime}");
    let card = ModelCard::builder("pipeline", &model)
        .version(Version::new(1, 0, 0))
        .extension("onnx", model.describe())
        .feature_names(FRAUD_FEATURES)
        .build()?;
    let path = dir.join("pipeline.bundle");
    model_persistence::persistence::save(&path, &model, &card)?;
    let server = ModelServer::<AnyModel>::start(Source::bundle(&path), ReloadPolicy::Manual)?;
    let mut rows = Array2::<f64>::zeros((3, FRAUD_FEATURES.len()));
    rows[[0, 3]] = f64::NAN;
    rows[[1, 0]] = f64::NAN;
    rows[[2, 5]] = 4.0;
    let p = server.predict_scored(rows.view())?;
    let answers: Vec<String> = p.outputs.iter().map(ToString::to_string).collect();
    for (i, answer) in answers.iter().enumerate() {
        println!(
            "  row {i} (a value missing: {}): {answer}",
            rows.row(i).iter().any(|v| v.is_nan())
        );
    }
    Ok((runtime, answers))
}

fn main() -> std::process::ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/onnx_from_python"));
    common::exit_on_error(run(&dir, 100))
}
