//! The harness the server tests share: a server on a background runtime
//! on 127.0.0.1 (stopped and joined on drop), raw HTTP requests, registry
//! set-up and the protocol's request bodies.
#![allow(dead_code, unreachable_pub)] // each test file uses its share

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use model_persistence_core::{Model, ModelCard, Predictor};
use model_persistence_server::{ModelConfig, ServeConfig, Server};
use model_persistence_testkit::LinearClassifier;
use model_persistence_versioning::{Registry, VersionSpec};
use semver::Version;
use serde_json::{json, Value};

/// A registry in a fresh directory that loads the test models.
pub fn test_registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(model_persistence_testkit::kinds());
    (dir, reg)
}

pub fn linear(w: f64, b: f64) -> LinearClassifier {
    LinearClassifier {
        weights: vec![w, -w],
        bias: b,
    }
}

pub fn publish(reg: &Registry, name: &str, v: Version, m: &LinearClassifier) -> Version {
    let card = ModelCard::builder(name, m)
        .probe(ndarray::array![[1.0, 2.0], [0.5, -1.0]].view())
        .build()
        .expect("card");
    reg.publish_model(m, &card, VersionSpec::Exact(v))
        .expect("publish")
        .version
}

/// A server on a background runtime; stopped (and joined) on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub thread: Option<std::thread::JoinHandle<Result<(), model_persistence_server::Error>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn start(config: ServeConfig, registry: &Registry) -> Running {
    start_until(config, registry, |addr| get(addr, "/v2/health/ready").0 == 200)
}

/// [`start`], waiting (at most 30 s) until `ready` says the server is
/// (a TLS server is asked over TLS).
pub fn start_until(config: ServeConfig, registry: &Registry, ready: impl Fn(SocketAddr) -> bool) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let registry = registry.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(model_persistence_server::Error::Runtime)?;
        runtime.block_on(async move {
            let server = Server::bind(&config, &registry).await?;
            let _ = addr_tx.send(server.local_addr());
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
        })
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("the server binds");
    let running = Running {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(addr) {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

pub fn config(models: Vec<ModelConfig>) -> ServeConfig {
    ServeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        poll_ms: 10,
        models,
        ..ServeConfig::default()
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    let (status, _, body) = http_with_head(addr, method, path, headers, body);
    (status, body)
}

/// One HTTP/1.1 exchange on a fresh connection: status, the response's
/// head (status line and headers, lower-cased) and body.
pub fn http_with_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // A server may answer (413) before reading a large body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let status_line = String::from_utf8_lossy(&response[..split]);
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let head = status_line.to_ascii_lowercase();
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..end]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[end + 2..end + 2 + n]);
        b = &b[end + 2 + n + 2..];
    }
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    http(addr, "GET", path, &[], b"")
}

pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, bytes) = http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)})),
    )
}

pub fn infer_body(rows: &[[f64; 2]]) -> Value {
    json!({
        "id": "r1",
        "inputs": [{"name": "input", "shape": [rows.len(), 2], "datatype": "FP64",
                    "data": rows.iter().flatten().collect::<Vec<_>>()}]
    })
}

/// A model of a kind no one registered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stranger(pub LinearClassifier);

impl Predictor for Stranger {
    type Output = usize;
    fn n_features(&self) -> Option<usize> {
        self.0.n_features()
    }
    fn predict(&self, rows: ndarray::ArrayView2<'_, f64>) -> ndarray::Array1<usize> {
        self.0.predict(rows)
    }
}

impl Model for Stranger {
    const KIND: &'static str = "test.stranger.v1";
    fn check_structure(&self, n: usize) -> Result<(), model_persistence_core::StructureError> {
        self.0.check_structure(n)
    }
}

pub fn metric_value(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// Sends one row with an id; returns the version that answered and its label.
pub fn predict_one(addr: SocketAddr, id: &str, row: [f64; 2]) -> (String, i64) {
    let mut body = infer_body(&[row]);
    body["id"] = json!(id);
    let (status, out) = post_json(addr, "/v2/models/fraud/infer", &body);
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["id"], id);
    (
        out["model_version"].as_str().expect("version").to_owned(),
        out["outputs"][0]["data"][0].as_i64().expect("label"),
    )
}

/// The Python with the protocol's reference clients: the project's virtual
/// environment (made by `scripts/test.sh`), or `MP_PYTHON`. Fails, saying
/// how to get it, when `module` does not import.
pub fn python(module: &str) -> std::path::PathBuf {
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python");
    let py = std::env::var_os("MP_PYTHON").map_or(venv, std::path::PathBuf::from);
    let has = std::process::Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has,
        "{} cannot import {module}: run `bash scripts/test.sh` (it installs tritonclient[http,grpc] \
         into target/venv), or set MP_PYTHON to a Python that has it",
        py.display()
    );
    py
}

/// The model the reference clients' tests serve as `fraud@production`,
/// version 1.4.0: four features, labels and probabilities.
pub fn reference_model() -> LinearClassifier {
    LinearClassifier {
        weights: vec![1.0, -2.0, 0.5, 0.25],
        bias: 0.1,
    }
}

/// A registry holding [`reference_model`] as `fraud@production` (1.4.0).
pub fn reference_registry() -> (tempfile::TempDir, Registry) {
    let (dir, reg) = test_registry();
    let model = reference_model();
    let card = ModelCard::builder("fraud", &model).build().expect("card");
    let v = reg
        .publish_model(&model, &card, VersionSpec::Exact(Version::new(1, 4, 0)))
        .expect("publish")
        .version;
    reg.set_alias("fraud", "production", &v).expect("alias");
    (dir, reg)
}

/// Runs `scripts/SCRIPT ADDR fraud 4` with `py` and reads the one JSON
/// object it prints.
pub fn run_client(py: &std::path::Path, script: &str, addr: SocketAddr) -> Value {
    let out = std::process::Command::new(py)
        .arg(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts")
                .join(script),
        )
        .args([addr.to_string(), "fraud".into(), "4".into()])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client's JSON")
}

/// Checks that `answer` (labels, probabilities, version) is what
/// [`reference_model`] computes for `rows`.
pub fn check_reference_answer(rows: &Value, answer: &Value, how: &str) {
    let model = reference_model();
    let rows: Vec<Vec<f64>> = serde_json::from_value(rows.clone()).expect("rows");
    let rows = ndarray::Array2::from_shape_vec((rows.len(), 4), rows.concat()).expect("matrix");
    let labels: Vec<i64> = model.predict(rows.view()).iter().map(|&l| l as i64).collect();
    let scores = model.scores(rows.view()).expect("scores");
    assert_eq!(answer["version"], "1.4.0", "{how}");
    let got: Vec<i64> = serde_json::from_value(answer["labels"].clone()).expect("labels");
    assert_eq!(got, labels, "{how}");
    let proba: Vec<Vec<f64>> = serde_json::from_value(answer["probabilities"].clone()).expect("probabilities");
    for (got, want) in proba.concat().iter().zip(scores.iter()) {
        assert!((got - want).abs() < 1e-12, "{how}: {got} vs {want}");
    }
}
