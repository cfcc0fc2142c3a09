//! The server's life under load: hot swaps that never fail or mix a request,
//! graceful shutdown, a trust policy keeping unsigned versions out, and the
//! report pages of the served version.

#![allow(clippy::result_large_err)]

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model_persistence_core::{ModelCard, Predictor};
use model_persistence_server::ModelConfig;
use model_persistence_testkit::LinearClassifier;
use model_persistence_versioning::VersionSpec;
use semver::Version;
use serde_json::Value;

use common::*;

#[test]
fn swaps_under_load_never_fail_or_mix_a_request() {
    let (_dir, reg) = test_registry();
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

#[test]
fn shutdown_finishes_requests_in_flight() {
    let (_dir, reg) = test_registry();
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
    let (_dir, open) = test_registry();
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
    let (_dir, reg) = test_registry();
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
