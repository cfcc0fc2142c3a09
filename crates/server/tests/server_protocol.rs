//! The server over real HTTP on 127.0.0.1: the protocol's endpoints, every
//! kind of bad request answered with a 4xx and the error body, readiness,
//! and class names.

#![allow(clippy::result_large_err)]

mod common;

use std::time::{Duration, Instant};

use model_persistence_core::{ModelCard, Predictor};
use model_persistence_server::{ModelConfig, Server};
use model_persistence_versioning::VersionSpec;
use semver::Version;
use serde_json::{json, Value};

use common::*;

#[test]
fn endpoints_answer_the_protocol() {
    let (_dir, reg) = test_registry();
    let v = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v).expect("alias");
    let server = start(config(vec![ModelConfig::reference("fraud@production")]), &reg);
    let addr = server.addr;

    assert_eq!(get(addr, "/v2/health/live").0, 200);
    let (status, body) = get(addr, "/v2");
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(meta["name"], "model-persistence");

    let (status, body) = get(addr, "/v2/models/fraud");
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(meta["versions"], json!(["1.0.0"]));
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 2]));
    assert_eq!(meta["inputs"][0]["datatype"], "FP64");
    assert_eq!(meta["outputs"][0]["name"], "predict");
    assert_eq!(meta["outputs"][1]["shape"], json!([-1, 2]));
    assert_eq!(get(addr, "/v2/models/fraud/ready").0, 200);
    assert_eq!(get(addr, "/v2/models/fraud/versions/1.0.0/ready").0, 200);

    let (status, out) = post_json(addr, "/v2/models/fraud/infer", &infer_body(&[[3.0, 1.0], [1.0, 3.0]]));
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model_name"], "fraud");
    assert_eq!(out["model_version"], "1.0.0");
    assert_eq!(out["id"], "r1");
    assert_eq!(out["outputs"][0]["name"], "predict");
    assert_eq!(out["outputs"][0]["datatype"], "INT64");
    assert_eq!(out["outputs"][0]["data"], json!([1, 0]));
    let proba = out["outputs"][1]["data"].as_array().expect("probabilities");
    let want = linear(1.0, 0.0)
        .scores(ndarray::array![[3.0, 1.0], [1.0, 3.0]].view())
        .expect("scores");
    for (got, want) in proba.iter().zip(want.iter()) {
        assert!((got.as_f64().expect("number") - want).abs() < 1e-12);
    }
    // The versioned route, and only the predict output when asked.
    let mut body = infer_body(&[[3.0, 1.0]]);
    body["outputs"] = json!([{"name": "predict"}]);
    let (status, out) = post_json(addr, "/v2/models/fraud/versions/1.0.0/infer", &body);
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["outputs"].as_array().map(Vec::len), Some(1));

    // Binary tensor data (the reference client's default).
    let header = json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 8}}]})
    .to_string();
    let post_binary = |values: [f32; 2]| {
        let mut raw = header.clone().into_bytes();
        values.iter().for_each(|v| raw.extend_from_slice(&v.to_le_bytes()));
        let len = header.len().to_string();
        http(
            addr,
            "POST",
            "/v2/models/fraud/infer",
            &[
                ("Inference-Header-Content-Length", &len),
                ("Content-Type", "application/octet-stream"),
            ],
            &raw,
        )
    };
    let (status, bytes) = post_binary([3.0, 1.0]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let out: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(out["outputs"][0]["data"], json!([1]));

    // A NaN in binary data reaches the model's own policy, decoded as the
    // number it is: this linear model takes finite values only, so 400
    // naming the value, not a JSON error.
    let (status, bytes) = post_binary([f32::NAN, 1.0]);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&bytes));
    let out: Value = serde_json::from_slice(&bytes).expect("json");
    assert!(out["error"].as_str().is_some_and(|e| e.contains("finite")), "{out}");
}

#[test]
fn bad_requests_get_a_4xx_and_the_error_body() {
    let (_dir, reg) = test_registry();
    let v = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v).expect("alias");
    let mut cfg = config(vec![ModelConfig::reference("fraud@production")]);
    cfg.body_limit = 64 * 1024;
    let server = start(cfg, &reg);
    let addr = server.addr;
    let infer = "/v2/models/fraud/infer";
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("malformed JSON", infer, b"{\"inputs\": [".to_vec(), 400),
        ("not an object", infer, b"[1,2,3]".to_vec(), 400),
        (
            "wrong datatype",
            infer,
            json!({"inputs":[{"name":"x","shape":[1,2],"datatype":"BYTES","data":["a","b"]}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "wrong width",
            infer,
            json!({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "shape and data differ",
            infer,
            json!({"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[1,2,3]}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "NaN",
            infer,
            json!({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":["NaN", 1]}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "huge shape",
            infer,
            json!({"inputs":[{"name":"x","shape":[1_000_000_000_000u64, 2],"datatype":"FP64","data":[1,2]}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "unknown output",
            infer,
            json!({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1,2]}],"outputs":[{"name":"nope"}]})
                .to_string()
                .into_bytes(),
            400,
        ),
        ("body over the limit", infer, vec![b' '; 100 * 1024], 413),
        (
            "unknown model",
            "/v2/models/nope/infer",
            infer_body(&[[1.0, 2.0]]).to_string().into_bytes(),
            404,
        ),
        (
            "unknown version",
            "/v2/models/fraud/versions/9.9.9/infer",
            infer_body(&[[1.0, 2.0]]).to_string().into_bytes(),
            404,
        ),
        ("unknown endpoint", "/v2/nothing", b"{}".to_vec(), 404),
    ];
    for (what, path, body, want) in cases {
        let (status, bytes) = http(addr, "POST", path, &[("Content-Type", "application/json")], &body);
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&bytes));
        let err: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{what}: not JSON: {bytes:?}"));
        assert!(err["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {err}");
    }
    let (status, bytes) = get(addr, infer);
    assert_eq!(status, 405, "GET on infer");
    assert!(serde_json::from_slice::<Value>(&bytes).expect("json")["error"].is_string());
    assert_eq!(get(addr, "/v2/models/nope").0, 404);
    assert_eq!(get(addr, "/v2/models/nope/ready").0, 404);
    // Still serving after all that.
    assert_eq!(post_json(addr, infer, &infer_body(&[[1.0, 2.0]])).0, 200);
    let (_, metrics) = get(addr, "/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("mp_request_errors_total{model=\"fraud\",outcome=\"bad_request\"} 8"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mp_request_errors_total{model=\"fraud\",outcome=\"too_large\"} 1"),
        "{metrics}"
    );
}

#[test]
fn not_ready_until_every_model_loads() {
    let (_dir, reg) = test_registry();
    let v = publish(&reg, "a", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("a", "production", &v).expect("alias");
    let cfg = config(vec![
        ModelConfig::reference("a@production"),
        ModelConfig::reference("b@production"),
    ]);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let reg2 = reg.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let server = Server::bind(&cfg, &reg2).await.expect("bind");
            addr_tx.send(server.local_addr()).expect("send");
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
        })
    });
    let addr = addr_rx.recv().expect("addr");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(addr, "/v2/health/live").0, 200);
    assert_eq!(get(addr, "/v2/health/ready").0, 400, "b has no version yet");
    assert_eq!(get(addr, "/v2/models/b/ready").0, 400);
    let (status, err) = post_json(addr, "/v2/models/b/infer", &infer_body(&[[1.0, 2.0]]));
    assert_eq!(status, 400);
    assert!(err["error"].as_str().expect("error").contains("not ready"), "{err}");
    assert_eq!(post_json(addr, "/v2/models/a/infer", &infer_body(&[[1.0, 2.0]])).0, 200);
    let w = publish(&reg, "b", Version::new(1, 0, 0), &linear(2.0, 0.0));
    reg.set_alias("b", "production", &w).expect("alias");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(addr, "/v2/health/ready").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(post_json(addr, "/v2/models/b/infer", &infer_body(&[[1.0, 2.0]])).0, 200);
    let _ = tx.send(());
    thread.join().expect("join").expect("served");
}

/// A model whose labels index class names (a scikit-learn forest trained
/// on string labels, through ONNX) answers with the names as a BYTES
/// tensor, as onnxruntime and MLServer do, and takes outcomes by name.
#[test]
fn class_names_answer_for_the_labels_and_outcomes_take_them() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let graph = std::fs::read(fixtures.join("random_forest_string_labels.onnx")).expect("the fixture");
    let fixture: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("random_forest_string_labels.json")).expect("json"))
            .expect("json");
    let graph = model_persistence_models::onnx::OnnxModel::from_graph(graph).expect("graph");
    let trees = graph.tree_ensemble().expect("lowered");
    let (_dir, reg) = test_registry();
    let card = ModelCard::builder("named", &trees).build().expect("card");
    let v = reg
        .publish_model(&trees, &card, VersionSpec::Exact(Version::new(1, 0, 0)))
        .expect("publish")
        .version;
    reg.set_alias("named", "production", &v).expect("alias");
    let server = start(config(vec![ModelConfig::reference("named@production")]), &reg);
    let addr = server.addr;

    let (status, meta) = get(addr, "/v2/models/named");
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_slice(&meta).expect("json");
    assert_eq!(meta["outputs"][0]["datatype"], "BYTES", "{meta}");

    // Rows without missing values (JSON numbers), and their labels.
    let rows: Vec<(Vec<f64>, String)> = fixture["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .zip(fixture["labels"].as_array().expect("labels"))
        .filter_map(|(r, l)| {
            let row: Option<Vec<f64>> = r.as_array()?.iter().map(Value::as_f64).collect();
            Some((row?, l.as_str()?.to_owned()))
        })
        .take(20)
        .collect();
    let width = rows[0].0.len();
    let body = json!({
        "id": "n1",
        "inputs": [{
            "name": "x", "shape": [rows.len(), width], "datatype": "FP64",
            "data": rows.iter().flat_map(|(r, _)| r.clone()).collect::<Vec<f64>>(),
        }],
    });
    let (status, out) = post_json(addr, "/v2/models/named/infer", &body);
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["outputs"][0]["datatype"], "BYTES");
    let want: Vec<&str> = rows.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(out["outputs"][0]["data"], json!(want), "onnxruntime's labels");
    assert_eq!(out["outputs"][1]["shape"], json!([rows.len(), 3]));

    let outcome = |o: Value| {
        post_json(
            addr,
            "/v2/models/named/outcomes",
            &json!({"outcomes": [{"id": "n1/0", "outcome": o}]}),
        )
    };
    let (status, answer) = outcome(json!("not a class"));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .expect("error")
            .contains("not one of the classes"),
        "{answer}"
    );
    let (status, answer) = outcome(json!(want[0]));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["matched"], 1, "{answer}");
}
