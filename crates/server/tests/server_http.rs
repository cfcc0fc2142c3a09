//! The server over real HTTP on 127.0.0.1 (a port the OS picks): the
//! protocol's endpoints, every kind of bad request answered with a 4xx and
//! the error body, hot swaps under load with bad versions refused, A/B
//! stickiness, metrics, graceful shutdown, the report pages, and live
//! outcomes (a guardrail's rollback, an A/B test's promotion).
//!
//! One file over 500 lines, on purpose: every test here drives the server
//! through the same small HTTP harness (start, raw requests, stop), which
//! belongs with them.

#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model_persistence_core::synthetic::{self, LinearClassifier};
use model_persistence_core::{Model, ModelCard};
use model_persistence_server::{AbConfig, ModelConfig, ServeConfig, Server, VariantConfig};
use model_persistence_versioning::{Registry, VersionSpec};
use semver::Version;
use serde_json::{json, Value};

fn linear(w: f64, b: f64) -> LinearClassifier {
    LinearClassifier {
        weights: vec![w, -w],
        bias: b,
    }
}

fn publish(reg: &Registry, name: &str, v: Version, m: &LinearClassifier) -> Version {
    let card = ModelCard::builder(name, m)
        .probe(ndarray::array![[1.0, 2.0], [0.5, -1.0]].view())
        .build()
        .expect("card");
    reg.publish_model(m, &card, VersionSpec::Exact(v))
        .expect("publish")
        .version
}

/// A server on a background runtime; stopped (and joined) on drop.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), model_persistence_server::Error>>>,
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

fn start(config: ServeConfig, registry: &Registry) -> Running {
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
    while get(addr, "/v2/health/ready").0 != 200 {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

fn config(models: Vec<ModelConfig>) -> ServeConfig {
    ServeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        poll_ms: 10,
        models,
        ..ServeConfig::default()
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status and body.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
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
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
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

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    http(addr, "GET", path, &[], b"")
}

fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
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

fn infer_body(rows: &[[f64; 2]]) -> Value {
    json!({
        "id": "r1",
        "inputs": [{"name": "input", "shape": [rows.len(), 2], "datatype": "FP64",
                    "data": rows.iter().flatten().collect::<Vec<_>>()}]
    })
}

#[test]
fn endpoints_answer_the_protocol() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
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
    let mut raw = header.clone().into_bytes();
    raw.extend_from_slice(&3.0f32.to_le_bytes());
    raw.extend_from_slice(&1.0f32.to_le_bytes());
    let len = header.len().to_string();
    let (status, bytes) = http(
        addr,
        "POST",
        "/v2/models/fraud/infer",
        &[
            ("Inference-Header-Content-Length", &len),
            ("Content-Type", "application/octet-stream"),
        ],
        &raw,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let out: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(out["outputs"][0]["data"], json!([1]));
}

#[test]
fn bad_requests_get_a_4xx_and_the_error_body() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
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
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
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

#[test]
fn swaps_under_load_never_fail_or_mix_a_request() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
    // Each good version has its own weights: its outputs identify it.
    let mut expected: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let row = ndarray::array![[0.3, 0.7]];
    let mut good = Vec::new();
    for i in 0..10u64 {
        let m = linear(0.5 + i as f64, 0.1 * i as f64);
        let v = publish(&reg, "fraud", Version::new(1, i, 0), &m);
        expected.insert(
            v.to_string(),
            m.scores(row.view()).expect("scores").iter().copied().collect(),
        );
        good.push(v);
    }
    // Bad versions the registry accepts but the server must refuse: one
    // of a kind the server does not know, and one that takes three
    // features instead of two (every request of the old width would fail).
    let stranger = Stranger(linear(9.0, 0.0));
    let stranger_card = ModelCard::builder("fraud", &stranger).build().expect("card");
    let damaged = reg
        .publish_model(&stranger, &stranger_card, VersionSpec::Exact(Version::new(2, 0, 0)))
        .expect("publish")
        .version;
    let wide = LinearClassifier {
        weights: vec![1.0, 1.0, 1.0],
        bias: 0.0,
    };
    let wide_card = ModelCard::builder("fraud", &wide).build().expect("card");
    let wide_v = reg
        .publish_model(&wide, &wide_card, VersionSpec::Exact(Version::new(3, 0, 0)))
        .expect("publish")
        .version;
    reg.set_alias("fraud", "production", &good[0]).expect("alias");
    let server = start(config(vec![ModelConfig::reference("fraud@production")]), &reg);
    let addr = server.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (stop, failures, answered, expected) = (
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&answered),
                expected.clone(),
            );
            std::thread::spawn(move || {
                let body = infer_body(&[[0.3, 0.7]]);
                while !stop.load(Ordering::Relaxed) {
                    let (status, out) = post_json(addr, "/v2/models/fraud/infer", &body);
                    let version = out["model_version"].as_str().unwrap_or("").to_owned();
                    let got: Vec<f64> = out["outputs"][1]["data"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_f64).collect())
                        .unwrap_or_default();
                    let ok = status == 200
                        && expected.get(&version).is_some_and(|want| {
                            want.iter().zip(&got).all(|(w, g)| (w - g).abs() < 1e-12) && got.len() == 2
                        });
                    if !ok {
                        failures.lock().expect("lock").push(format!("{status} {out}"));
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // 100 alias moves: good versions, with a bad one every fifth move.
    for i in 0..100 {
        let target = match i % 5 {
            3 => damaged.clone(),
            4 => wide_v.clone(),
            _ => good[i % good.len()].clone(),
        };
        reg.set_alias("fraud", "production", &target).expect("move");
        std::thread::sleep(Duration::from_millis(30));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let failures = failures.lock().expect("lock");
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        answered.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    assert!(answered.load(Ordering::Relaxed) > 200, "the clients were busy");
    let (_, metrics) = get(addr, "/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    let swaps: u64 = metric_value(&metrics, "mp_swaps_total{model=\"fraud\"}");
    let refused: u64 = metric_value(&metrics, "mp_refused_versions_total{model=\"fraud\"}");
    assert!(swaps >= 20, "swaps: {swaps}\n{metrics}");
    assert!(refused >= 2, "both bad versions refused: {refused}\n{metrics}");
    assert!(
        metrics.contains("mp_request_duration_seconds_bucket{model=\"fraud\",le=\"+Inf\"}"),
        "{metrics}"
    );
}

/// A model of a kind no one registered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Stranger(LinearClassifier);

impl Model for Stranger {
    const KIND: &'static str = "test.stranger.v1";
    type Output = usize;
    fn n_features(&self) -> Option<usize> {
        self.0.n_features()
    }
    fn check_structure(&self, n: usize) -> Result<(), model_persistence_core::StructureError> {
        self.0.check_structure(n)
    }
    fn predict(&self, rows: ndarray::ArrayView2<'_, f64>) -> ndarray::Array1<usize> {
        self.0.predict(rows)
    }
}

fn metric_value(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[test]
fn ab_splits_are_sticky_and_counted() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
    let a = publish(&reg, "churn", Version::new(1, 0, 0), &linear(1.0, 0.0));
    let b = publish(&reg, "churn", Version::new(2, 0, 0), &linear(2.0, 0.0));
    reg.set_alias("churn", "production", &a).expect("alias");
    reg.set_alias("churn", "candidate", &b).expect("alias");
    let model = ModelConfig {
        name: Some("churn".into()),
        reference: None,
        ab: Some(AbConfig {
            key: "header:x-user".into(),
            variants: vec![
                VariantConfig {
                    name: "a".into(),
                    reference: "churn@production".into(),
                    weight: 50,
                },
                VariantConfig {
                    name: "b".into(),
                    reference: "churn@candidate".into(),
                    weight: 50,
                },
            ],
            decide: None,
        }),
        shadow: None,
        outcomes: Default::default(),
        guardrail: None,
    };
    let server = start(config(vec![model]), &reg);
    let addr = server.addr;
    let body = infer_body(&[[1.0, 0.5]]).to_string();
    let mut by_user = BTreeMap::new();
    for user in 0..40 {
        let user = format!("user-{user}");
        for _ in 0..3 {
            let (status, bytes) = http(
                addr,
                "POST",
                "/v2/models/churn/infer",
                &[("x-user", &user)],
                body.as_bytes(),
            );
            assert_eq!(status, 200);
            let out: Value = serde_json::from_slice(&bytes).expect("json");
            let variant = out["parameters"]["variant"].as_str().expect("variant").to_owned();
            let version = out["model_version"].as_str().expect("version").to_owned();
            assert_eq!(version, if variant == "a" { "1.0.0" } else { "2.0.0" });
            let first = by_user.entry(user.clone()).or_insert_with(|| variant.clone());
            assert_eq!(*first, variant, "{user} stays on one variant");
        }
    }
    let on_a = by_user.values().filter(|v| *v == "a").count();
    assert!((5..=35).contains(&on_a), "both variants get users: {on_a} of 40 on a");
    let (_, metrics) = get(addr, "/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    let a_count = metric_value(&metrics, "mp_variant_requests_total{model=\"churn\",variant=\"a\"}");
    let b_count = metric_value(&metrics, "mp_variant_requests_total{model=\"churn\",variant=\"b\"}");
    assert_eq!(a_count + b_count, 120);
    assert_eq!(a_count, 3 * on_a as u64);
    assert_eq!(get(addr, "/v2/models/churn/versions/2.0.0/ready").0, 200);
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
    let v = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v).expect("alias");
    let mut server = start(config(vec![ModelConfig::reference("fraud@production")]), &reg);
    let addr = server.addr;
    // A large batch, so the request is still being answered when the stop comes.
    let rows: Vec<[f64; 2]> = (0..200_000).map(|i| [f64::from(i % 7), 1.0]).collect();
    let body = infer_body(&rows).to_string();
    let client = std::thread::spawn(move || http(addr, "POST", "/v2/models/fraud/infer", &[], body.as_bytes()));
    std::thread::sleep(Duration::from_millis(50));
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    let (status, bytes) = client.join().expect("client");
    assert_eq!(
        status,
        200,
        "{}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
    );
    let out: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(out["outputs"][0]["data"].as_array().map(Vec::len), Some(200_000));
    server
        .thread
        .take()
        .expect("thread")
        .join()
        .expect("join")
        .expect("clean exit");
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[test]
fn a_trust_policy_keeps_unsigned_versions_out_of_service() {
    use model_persistence_core::signing::{sign, SigningKey};
    let dir = tempfile::tempdir().expect("dir");
    let open = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
    let key = SigningKey::generate();
    let strict = open.clone().trust(vec![key.public_key()]);
    let signed = |v: Version, m: &LinearClassifier| {
        let mut card = ModelCard::builder("fraud", m).build().expect("card");
        card.version = v;
        let bytes = model_persistence_core::BundleWriter::default()
            .to_bytes(m, &card)
            .expect("bundle");
        let sig = sign(&bytes, "fraud.bundle", &key).expect("sign");
        strict.publish_signed(&bytes, Some(&sig)).expect("publish").version
    };
    let v1 = signed(Version::new(1, 0, 0), &linear(1.0, 0.0));
    open.set_alias("fraud", "production", &v1).expect("alias");
    let server = start(config(vec![ModelConfig::reference("fraud@production")]), &strict);
    let addr = server.addr;
    // An unsigned version, promoted by someone without the policy.
    let v2 = publish(&open, "fraud", Version::new(2, 0, 0), &linear(2.0, 0.0));
    open.set_alias("fraud", "production", &v2).expect("alias");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = get(addr, "/metrics");
        if String::from_utf8_lossy(&metrics).contains("mp_refused_versions_total{model=\"fraud\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the unsigned version was never refused");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, out) = post_json(addr, "/v2/models/fraud/infer", &infer_body(&[[1.0, 2.0]]));
    assert_eq!((status, out["model_version"].as_str()), (200, Some("1.0.0")), "{out}");
    // A signed version is swapped in.
    let v3 = signed(Version::new(3, 0, 0), &linear(3.0, 0.0));
    open.set_alias("fraud", "production", &v3).expect("alias");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out) = post_json(addr, "/v2/models/fraud/infer", &infer_body(&[[1.0, 2.0]]));
        if out["model_version"] == "3.0.0" {
            break;
        }
        assert!(Instant::now() < deadline, "the signed version was never served");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_report_page_shows_the_served_version_and_its_live_drift() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
    let m = linear(1.0, 0.0);
    let training = ndarray::Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 3) % 20) as f64 / 10.0);
    for v in [Version::new(1, 0, 0), Version::new(1, 1, 0)] {
        let card = ModelCard::builder("fraud", &m)
            .metric("f1", if v.minor == 0 { 0.81 } else { 0.86 })
            .training_data(training.view(), "report test")
            .build()
            .expect("card");
        reg.publish_model(&m, &card, VersionSpec::Exact(v)).expect("publish");
    }
    reg.set_alias("fraud", "production", &Version::new(1, 0, 0))
        .expect("alias");
    let mut cfg = config(vec![ModelConfig::reference("fraud@production")]);
    cfg.drift_window = 5;
    let server = start(cfg, &reg);
    let addr = server.addr;

    let (status, index) = get(addr, "/");
    assert_eq!(status, 200);
    let index = String::from_utf8(index).expect("utf-8");
    assert!(index.contains("href=\"/models/fraud\""), "{index}");

    // Live rows far outside the training range: once the drift window has
    // filled, the page shows the PSI beside the histograms.
    let rows: Vec<[f64; 2]> = (0..20).map(|i| [50.0 + f64::from(i), -50.0]).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (status, _) = post_json(addr, "/v2/models/fraud/infer", &infer_body(&rows));
        assert_eq!(status, 200);
        let (status, page) = get(addr, "/models/fraud");
        assert_eq!(status, 200);
        let page = String::from_utf8(page).expect("utf-8");
        if page.contains("PSI") || Instant::now() > deadline {
            break page;
        }
    };
    assert!(page.contains("fraud 1.0.0"), "the card of the version served");
    assert!(page.contains("0.8600"), "every version's metrics");
    assert!(page.contains("Live window: 5 rows"), "the live drift");
    assert!(page.contains("<svg"), "the charts");
    assert!(!page.contains("<script"));

    let (status, body) = get(addr, "/models/nobody");
    assert_eq!(status, 404);
    assert!(String::from_utf8(body).expect("utf-8").contains("no model named"));
}

/// Sends one row with an id; returns the version that answered and its label.
fn predict_one(addr: SocketAddr, id: &str, row: [f64; 2]) -> (String, i64) {
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

#[test]
fn outcomes_reported_by_id_roll_a_worse_version_back() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
    let good = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    let bad = publish(&reg, "fraud", Version::new(2, 0, 0), &linear(-1.0, 0.0));
    reg.set_alias("fraud", "production", &good).expect("alias");
    let mut model = ModelConfig::reference("fraud@production");
    model.guardrail = Some(model_persistence_serving::outcomes::Guardrail {
        min_samples: 40,
        floor: Some(0.7),
        ..Default::default()
    });
    let server = start(config(vec![model]), &reg);
    let addr = server.addr;
    // The truth: 1 when the first feature is the larger.
    let truth = |i: u32| i64::from(i.is_multiple_of(2));
    let row = |i: u32| if i.is_multiple_of(2) { [2.0, 1.0] } else { [1.0, 2.0] };
    let report = |ids: Vec<(String, i64)>| {
        let outcomes: Vec<Value> = ids.into_iter().map(|(id, o)| json!({"id": id, "outcome": o})).collect();
        post_json(addr, "/v2/models/fraud/outcomes", &json!({ "outcomes": outcomes }))
    };
    let mut sent = Vec::new();
    for i in 0..60 {
        let (version, _) = predict_one(addr, &format!("a{i}"), row(i));
        assert_eq!(version, "1.0.0");
        sent.push((format!("a{i}"), truth(i)));
    }
    let (status, answer) = report(sent);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["matched"], 60);
    assert_eq!(answer["guardrail"]["verdict"]["verdict"], "healthy");

    // 2.0.0 goes to production: the server follows it.
    reg.set_alias("fraud", "production", &bad).expect("alias");
    let deadline = Instant::now() + Duration::from_secs(10);
    while predict_one(addr, "probe", [2.0, 1.0]).0 != "2.0.0" {
        assert!(Instant::now() < deadline, "the server never served 2.0.0");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rolled_back = None;
    for i in 0..60 {
        let id = format!("b{i}");
        predict_one(addr, &id, row(i));
        let (status, answer) = report(vec![(id, truth(i))]);
        assert_eq!(status, 200, "{answer}");
        if let Some(to) = answer["guardrail"]["rolled_back_to"].as_str() {
            rolled_back = Some((i, to.to_owned()));
            break;
        }
    }
    let (after, to) = rolled_back.expect("the guardrail rolled production back");
    assert_eq!(to, "1.0.0");
    assert!(after + 1 >= 40, "not before min_samples outcomes ({after})");
    assert_eq!(
        reg.alias("fraud", "production").expect("alias").expect("set").version,
        good
    );
    let last = reg.history("fraud").expect("history").pop().expect("event");
    assert_eq!(last.by.as_deref(), Some("guardrail"));
    assert!(reg
        .attachment("fraud", &bad, "guardrail")
        .expect("reads")
        .is_some_and(|e| e["verdict"]["verdict"] == "breach"));

    // The live metrics, per version, in the status and in /metrics.
    let (status, live) = get(addr, "/v2/models/fraud/outcomes");
    assert_eq!(status, 200);
    let live: Value = serde_json::from_slice(&live).expect("json");
    let v1 = live["live"]
        .as_array()
        .expect("arms")
        .iter()
        .find(|m| m["arm"]["version"] == "1.0.0")
        .expect("1.0.0");
    assert_eq!(
        (v1["outcomes"].as_u64(), v1["accuracy"].as_f64()),
        (Some(60), Some(1.0))
    );
    let metrics = String::from_utf8(get(addr, "/metrics").1).expect("utf-8");
    assert!(
        metrics.contains("mp_live_accuracy{model=\"fraud\",version=\"1.0.0\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mp_live_outcomes_total{model=\"fraud\",version=\"2.0.0\"}"));

    // Bad reports: a 4xx and the error body, never a 5xx.
    for (path, body, want) in [
        ("/v2/models/fraud/outcomes", json!({"outcomes": [{"id": "x"}]}), 400),
        (
            "/v2/models/fraud/outcomes",
            json!({"outcomes": [{"id": "x", "outcome": "yes"}]}),
            400,
        ),
        ("/v2/models/fraud/outcomes", json!([1, 2]), 400),
        ("/v2/models/nobody/outcomes", json!({"outcomes": []}), 404),
    ] {
        let (status, answer) = post_json(addr, path, &body);
        assert_eq!(status, want, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (status, answer) = report(vec![("never-predicted".into(), 1), ("a0".into(), 1)]);
    assert_eq!(status, 200);
    assert_eq!(answer["unknown"], json!(["never-predicted"]));
    assert_eq!(answer["already_reported"], json!(["a0"]));
}

#[test]
fn an_ab_test_fed_outcomes_over_http_promotes_the_better_variant() {
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
    let wrong = publish(&reg, "churn", Version::new(1, 0, 0), &linear(-1.0, 0.0));
    let right = publish(&reg, "churn", Version::new(2, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("churn", "production", &wrong).expect("alias");
    reg.set_alias("churn", "candidate", &right).expect("alias");
    let variant = |name: &str, reference: &str| VariantConfig {
        name: name.into(),
        reference: reference.into(),
        weight: 50,
    };
    let mut model = ModelConfig::reference("unused");
    model.name = Some("churn".into());
    model.reference = None;
    model.ab = Some(AbConfig {
        key: "header:x-user".into(),
        variants: vec![variant("a", "churn@production"), variant("b", "churn@candidate")],
        decide: Some(model_persistence_server::DecideConfig {
            alias: "production".into(),
            test: Default::default(),
        }),
    });
    let server = start(config(vec![model]), &reg);
    let addr = server.addr;
    let mut promoted = None;
    let mut pending = Vec::new();
    for i in 0..2_000_u32 {
        let row = if i % 3 == 0 { [2.0, 1.0] } else { [1.0, 2.0] };
        let mut body = infer_body(&[row]);
        body["id"] = json!(format!("q{i}"));
        let user = format!("user-{}", i % 97);
        let (status, bytes) = http(
            addr,
            "POST",
            "/v2/models/churn/infer",
            &[("x-user", &user)],
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200);
        let _: Value = serde_json::from_slice(&bytes).expect("json");
        pending.push(json!({"id": format!("q{i}"), "outcome": i64::from(i % 3 == 0)}));
        if pending.len() == 25 {
            let (status, answer) = post_json(
                addr,
                "/v2/models/churn/outcomes",
                &json!({ "outcomes": std::mem::take(&mut pending) }),
            );
            assert_eq!(status, 200, "{answer}");
            if let Some(v) = answer["ab_test"]["promoted"].as_str() {
                promoted = Some((i, v.to_owned(), answer["ab_test"]["state"].clone()));
                break;
            }
        }
    }
    let (after, version, state) = promoted.expect("the A/B test decided and promoted");
    assert_eq!(version, "2.0.0");
    assert_eq!(state["winner"], "b");
    assert!(state["test"]["p_value"].as_f64().expect("p") <= 0.05);
    assert!(after >= 200, "not before each arm had its minimum samples ({after})");
    assert_eq!(
        reg.alias("churn", "production").expect("alias").expect("set").version,
        right
    );
    let last = reg.history("churn").expect("history").pop().expect("event");
    assert_eq!(last.by.as_deref(), Some("ab-test"));
    assert!(reg.attachment("churn", &right, "ab_decision").expect("reads").is_some());
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
    let graph = model_persistence_core::onnx::OnnxModel::from_graph(graph).expect("graph");
    let trees = graph.tree_ensemble().expect("lowered");
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::create(dir.path())
        .expect("registry")
        .kinds(synthetic::kinds());
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
