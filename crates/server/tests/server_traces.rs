//! Traces reach a real OTLP receiver (scripts/otlp-receiver.py, decoding
//! with `opentelemetry-proto`): a request's span carries the caller's trace
//! id and parent span over REST and gRPC, with its model, version, rows and
//! prediction id, and a `predict` child; a load and a swap have spans; the
//! payload log records the same trace id. With the collector gone, requests
//! are still answered and the lost spans are counted.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model_persistence_server::payload::{read, LogFilter};
use model_persistence_server::{ModelConfig, PayloadLogConfig};
use semver::Version;
use serde_json::{json, Value};

use common::*;

struct Receiver {
    child: Child,
    port: u16,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver(py: &Path, out: &Path) -> Receiver {
    let mut child = Command::new(py)
        .arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/otlp-receiver.py"))
        .args([out.to_str().expect("utf-8"), "120"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port from the receiver: {line:?}"));
    Receiver { child, port }
}

fn spans(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// Waits (at most 15 s) until the receiver holds a span that `found` accepts.
fn wait_for(out: &Path, what: &str, found: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = spans(out).into_iter().find(|s| found(s)) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} span reached the receiver: {:?}",
            spans(out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn spans_reach_an_otlp_receiver_with_the_callers_trace_and_a_dead_collector_costs_nothing() {
    let py = python("opentelemetry.proto");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("spans.jsonl");
    let collector = receiver(&py, &out);
    let (_reg_dir, reg) = test_registry();
    let v1 = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v1).expect("alias");
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.otlp_endpoint = Some(format!("http://127.0.0.1:{}", collector.port));
    served.payload_log = Some(PayloadLogConfig::new(dir.path().join("payload"), 1.0));
    let server = start(served, &reg);
    let addr = server.addr;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let body = json!({"id": "traced-1", "inputs": [{"name": "input", "shape": [3, 2], "datatype": "FP64",
                      "data": [1.0, 2.0, 2.0, 1.0, 0.5, 0.5]}]});
    let traceparent = format!("00-{trace}-{parent}-01");
    let (status, _) = http(
        addr,
        "POST",
        "/v2/models/fraud/infer",
        &[("Content-Type", "application/json"), ("traceparent", &traceparent)],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let request = wait_for(&out, "request", |s| s["trace_id"] == trace && s["kind"] == 2);
    assert_eq!(request["parent_span_id"], parent);
    assert_eq!(request["name"], "POST /v2/models/{name}/infer");
    assert_eq!(request["attributes"]["mp.model"], "fraud");
    assert_eq!(request["attributes"]["mp.version"], "1.0.0");
    assert_eq!(request["attributes"]["mp.rows"], 3);
    assert_eq!(request["attributes"]["mp.prediction_id"], "traced-1");
    assert_eq!(request["attributes"]["mp.outcome"], "ok");
    assert_eq!(request["status"], 1);
    assert_eq!(request["service"], "model-persistence");
    let predict = wait_for(&out, "predict", |s| s["trace_id"] == trace && s["name"] == "predict");
    assert_eq!(predict["parent_span_id"], request["span_id"]);
    wait_for(&out, "load", |s| s["name"] == "load fraud" && s["status"] == 1);

    // A request without a traceparent gets a trace of its own, and the
    // payload log records it: the prediction id leads to the trace.
    let (status, _) = post_json(
        addr,
        "/v2/models/fraud/infer",
        &json!({"id": "untraced-1",
        "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}),
    );
    assert_eq!(status, 200);
    let own = wait_for(&out, "untraced", |s| {
        s["attributes"]["mp.prediction_id"] == "untraced-1"
    });
    assert_eq!(own["parent_span_id"], "");
    // A refused request's span says why.
    let (status, _) = post_json(
        addr,
        "/v2/models/fraud/infer",
        &json!({"id": "bad-1",
        "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]}),
    );
    assert_eq!(status, 400);
    let refused = wait_for(&out, "refused", |s| {
        s["kind"] == 2 && s["attributes"]["mp.outcome"] == "bad_request"
    });
    assert_eq!(refused["status"], 2);

    // A swap has a span.
    let v2 = publish(&reg, "fraud", Version::new(2, 0, 0), &linear(2.0, 0.0));
    reg.set_alias("fraud", "production", &v2).expect("alias");
    let swap = wait_for(&out, "swap", |s| {
        s["name"].as_str().is_some_and(|n| n.starts_with("swap"))
    });
    assert_eq!(swap["attributes"]["mp.from_version"], "1.0.0");
    assert_eq!(swap["attributes"]["mp.version"], "2.0.0");

    // The collector goes away: requests are answered as before, and the
    // spans that could not be sent are counted.
    drop(collector);
    let started = Instant::now();
    for i in 0..50 {
        let (status, _) = post_json(
            addr,
            "/v2/models/fraud/infer",
            &json!({"id": format!("after-{i}"),
            "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}),
        );
        assert_eq!(status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "requests waited on the dead collector"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = String::from_utf8_lossy(&get(addr, "/metrics").1).into_owned();
        if metric_value(&metrics, "mp_trace_spans_dropped_total") >= 50 {
            break;
        }
        assert!(Instant::now() < deadline, "lost spans were not counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
    let logged = read(
        &dir.path().join("payload"),
        &LogFilter {
            id: Some("traced-1".into()),
            ..LogFilter::default()
        },
    )
    .expect("payload log");
    assert_eq!(logged.predictions[0]["trace_id"], trace);
    let logged = read(
        &dir.path().join("payload"),
        &LogFilter {
            id: Some("untraced-1".into()),
            ..LogFilter::default()
        },
    )
    .expect("payload log");
    assert_eq!(logged.predictions[0]["trace_id"], own["trace_id"]);
}

#[test]
fn the_callers_sampled_flag_decides_and_the_share_decides_the_rest() {
    let py = python("opentelemetry.proto");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("spans.jsonl");
    let collector = receiver(&py, &out);
    let (_reg_dir, reg) = test_registry();
    let v1 = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v1).expect("alias");
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.otlp_endpoint = Some(format!("http://127.0.0.1:{}", collector.port));
    served.otlp_sample = 0.0;
    let server = start(served, &reg);
    let send = |id: &str, traceparent: Option<String>| {
        let body =
            json!({"id": id, "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]});
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(t) = &traceparent {
            headers.push(("traceparent", t.as_str()));
        }
        assert_eq!(
            http(
                server.addr,
                "POST",
                "/v2/models/fraud/infer",
                &headers,
                body.to_string().as_bytes()
            )
            .0,
            200
        );
    };
    // Not sampled by the caller, and no caller's decision under a share of 0.
    send(
        "declined",
        Some("00-11111111111111111111111111111111-2222222222222222-00".into()),
    );
    send("undecided", None);
    // Sampled by the caller: recorded whatever the share.
    send(
        "chosen",
        Some("00-33333333333333333333333333333333-4444444444444444-01".into()),
    );
    let chosen = wait_for(&out, "chosen", |s| s["attributes"]["mp.prediction_id"] == "chosen");
    assert_eq!(chosen["trace_id"], "33333333333333333333333333333333");
    std::thread::sleep(Duration::from_millis(1500));
    let ids: Vec<Value> = spans(&out)
        .iter()
        .map(|s| s["attributes"]["mp.prediction_id"].clone())
        .collect();
    assert!(!ids.contains(&json!("declined")), "{ids:?}");
    assert!(!ids.contains(&json!("undecided")), "{ids:?}");
}
