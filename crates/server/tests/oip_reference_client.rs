//! The protocol's reference client (`tritonclient[http]` from PyPI, in the
//! project's virtual environment made by `scripts/test.sh`) against a
//! server on 127.0.0.1: health, metadata, inference with binary and JSON
//! tensors, errors.

mod common;

use std::path::PathBuf;

use model_persistence_core::synthetic::LinearClassifier;
use model_persistence_core::{Model, ModelCard};
use model_persistence_server::ModelConfig;
use model_persistence_versioning::VersionSpec;
use semver::Version;
use serde_json::Value;

use common::{config, start, test_registry};

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python");
    let py = std::env::var_os("MP_PYTHON").map_or(venv, PathBuf::from);
    let has_client = std::process::Command::new(&py)
        .args(["-c", "import tritonclient.http"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_client,
        "{} cannot import tritonclient.http: run `bash scripts/test.sh` (it installs tritonclient[http] \
         into target/venv), or set MP_PYTHON to a Python that has it",
        py.display()
    );
    py
}

#[test]
fn the_reference_client_speaks_to_the_server() {
    let py = python();
    let (_dir, reg) = test_registry();
    let model = LinearClassifier {
        weights: vec![1.0, -2.0, 0.5, 0.25],
        bias: 0.1,
    };
    let card = ModelCard::builder("fraud", &model).build().expect("card");
    let v = reg
        .publish_model(&model, &card, VersionSpec::Exact(Version::new(1, 4, 0)))
        .expect("publish")
        .version;
    reg.set_alias("fraud", "production", &v).expect("alias");
    let server = start(config(vec![ModelConfig::reference("fraud@production")]), &reg);
    let addr = server.addr;

    let out = std::process::Command::new(&py)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oip-client.py"))
        .args([addr.to_string(), "fraud".into(), "4".into()])
        .output()
        .expect("python runs");
    drop(server);
    assert!(
        out.status.success(),
        "the client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    assert_eq!(seen["live"], true);
    assert_eq!(seen["ready"], true);
    assert_eq!(seen["model_ready"], true);
    assert_eq!(seen["metadata"]["name"], "fraud");
    assert_eq!(seen["metadata"]["inputs"][0]["shape"], serde_json::json!([-1, 4]));
    assert_eq!(seen["server"]["name"], "model-persistence");

    let rows: Vec<Vec<f64>> = serde_json::from_value(seen["rows"].clone()).expect("rows");
    let rows = ndarray::Array2::from_shape_vec((rows.len(), 4), rows.concat()).expect("matrix");
    let labels: Vec<i64> = model.predict(rows.view()).iter().map(|&l| l as i64).collect();
    let scores = model.scores(rows.view()).expect("scores");
    for how in ["binary", "json"] {
        let answer = &seen[how];
        assert_eq!(answer["version"], "1.4.0", "{how}");
        assert_eq!(answer["id"], "oip-1", "{how}");
        let got: Vec<i64> = serde_json::from_value(answer["labels"].clone()).expect("labels");
        assert_eq!(got, labels, "{how}");
        let proba: Vec<Vec<f64>> = serde_json::from_value(answer["probabilities"].clone()).expect("probabilities");
        for (got, want) in proba.concat().iter().zip(scores.iter()) {
            assert!((got - want).abs() < 1e-12, "{how}: {got} vs {want}");
        }
    }
    assert_eq!(seen["wrong_width"]["status"], "400", "{}", seen["wrong_width"]);
    assert!(seen["unknown_model"] != "accepted", "{}", seen["unknown_model"]);
}
