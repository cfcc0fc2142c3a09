//! The payload log: at 100% sampling under 16 clients every prediction is
//! recorded, with its trace id, version and redacted inputs; outcomes are
//! joined back by id; a queue too small drops and counts rather than
//! blocking; files rotate within their bound.

mod common;

use std::path::Path;

use model_persistence_server::payload::{read, LogFilter};
use model_persistence_server::{ModelConfig, PayloadLogConfig};
use serde_json::{json, Value};

use common::*;

fn infer(addr: std::net::SocketAddr, id: &str, trace: Option<&str>) -> u16 {
    let body = json!({"id": id, "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64",
                       "data": [0.1, 0.2, 0.3, 0.4, 1.0, -1.0, 0.5, 0.0]}]});
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = trace {
        headers.push(("traceparent", t));
    }
    http(
        addr,
        "POST",
        "/v2/models/fraud/infer",
        &headers,
        body.to_string().as_bytes(),
    )
    .0
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count())
}

#[test]
fn every_prediction_is_recorded_at_full_sampling_under_16_clients_and_outcomes_join() {
    let dir = tempfile::tempdir().expect("dir");
    let (_reg_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    let mut log = PayloadLogConfig::new(dir.path(), 1.0);
    // The reference model's features are unnamed: the card names none.
    log.redact = vec!["f0".into()];
    served.payload_log = Some(log);
    let server = start(served, &reg);
    let addr = server.addr;
    let per_client = 40;
    std::thread::scope(|s| {
        for c in 0..16 {
            s.spawn(move || {
                for i in 0..per_client {
                    let trace = format!("00-{:032x}-00f067aa0ba902b7-01", c * 1000 + i + 1);
                    assert_eq!(infer(addr, &format!("c{c}-{i}"), Some(&trace)), 200);
                }
            });
        }
    });
    let (status, answer) = post_json(
        addr,
        "/v2/models/fraud/outcomes",
        &json!({"outcomes": [{"id": "c3-7/0", "outcome": 1}, {"id": "c3-7/1", "outcome": 0}]}),
    );
    assert_eq!(status, 200, "{answer}");
    let metrics = String::from_utf8_lossy(&get(addr, "/metrics").1).into_owned();
    drop(server); // stops the server: the queue is written out
    assert_eq!(metric_value(&metrics, "mp_payload_dropped_total"), 0);

    let found = read(dir.path(), &LogFilter::default()).expect("read");
    assert_eq!(found.predictions.len(), 16 * per_client as usize, "records were lost");
    assert_eq!(found.skipped, 0);
    let one = read(
        dir.path(),
        &LogFilter {
            id: Some("c3-7".into()),
            ..LogFilter::default()
        },
    )
    .expect("read");
    let [p] = one.predictions.as_slice() else {
        panic!("{:?}", one.predictions)
    };
    assert_eq!(p["model"], "fraud");
    assert_eq!(p["version"], "1.4.0");
    assert_eq!(p["trace_id"], format!("{:032x}", 3 * 1000 + 7 + 1));
    assert_eq!(p["protocol"], "rest");
    assert_eq!(
        p["inputs"]["rows"],
        json!([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 0.0]])
    );
    assert_eq!(p["outputs"]["predict"]["shape"], json!([2]));
    assert!(p["latency_us"].as_u64().is_some());
    assert_eq!(p["outcomes"], json!({"c3-7/0": 1, "c3-7/1": 0}));
    let other = read(
        dir.path(),
        &LogFilter {
            version: Some("9.9.9".into()),
            ..LogFilter::default()
        },
    )
    .expect("read");
    assert!(other.predictions.is_empty());
}

#[test]
fn named_features_are_redacted_or_hashed_a_full_queue_drops_and_counts_and_files_stay_bounded() {
    let dir = tempfile::tempdir().expect("dir");
    let (_reg_dir, reg) = test_registry();
    // The test models' cards name no features either; name two here.
    let model = linear(1.0, 0.0);
    let mut card = model_persistence_core::ModelCard::builder("fraud", &model)
        .build()
        .expect("card");
    card.features = vec!["ssn".into(), "email".into()];
    let v = reg
        .publish_model(
            &model,
            &card,
            model_persistence_versioning::VersionSpec::Exact(semver::Version::new(1, 0, 0)),
        )
        .expect("publish")
        .version;
    reg.set_alias("fraud", "production", &v).expect("alias");
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    let mut log = PayloadLogConfig::new(dir.path(), 1.0);
    log.redact = vec!["ssn".into()];
    log.hash = vec!["email".into()];
    log.max_file_bytes = 2_000;
    log.max_files = 3;
    log.queue = 1;
    served.payload_log = Some(log);
    let server = start(served, &reg);
    let addr = server.addr;
    let total = 400;
    std::thread::scope(|s| {
        for c in 0..8 {
            s.spawn(move || {
                for i in 0..total / 8 {
                    let body = json!({"id": format!("r{c}-{i}"), "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [123.0, 7.5]}]});
                    let (status, _) = post_json(addr, "/v2/models/fraud/infer", &body);
                    assert_eq!(status, 200);
                }
            });
        }
    });
    // Every record is written or counted as dropped (the writer may still
    // be writing the last ones it took).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = String::from_utf8_lossy(&get(addr, "/metrics").1).into_owned();
        let written = metric_value(&metrics, "mp_payload_records_total");
        let dropped = metric_value(&metrics, "mp_payload_dropped_total");
        if written + dropped == total as u64 {
            break;
        }
        assert!(
            written + dropped < total as u64,
            "written {written} + dropped {dropped}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "written {written} + dropped {dropped}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(server);
    assert!(files(dir.path()) <= 3, "{} files kept", files(dir.path()));
    let found = read(dir.path(), &LogFilter::default()).expect("read");
    assert!(!found.predictions.is_empty());
    for p in &found.predictions {
        let row: &Value = &p["inputs"]["rows"][0];
        assert_eq!(row[0], Value::Null, "ssn was written: {p}");
        let hashed = row[1].as_str().expect("email hashed");
        assert!(hashed.starts_with("sha256:") && !hashed.contains("7.5"), "{hashed}");
        assert_eq!(p["inputs"]["features"], json!(["ssn", "email"]));
    }
    // The same value hashes the same way: joinable, not readable.
    let first = &found.predictions[0]["inputs"]["rows"][0][1];
    assert!(found.predictions.iter().all(|p| &p["inputs"]["rows"][0][1] == first));
}
