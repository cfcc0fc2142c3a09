//! The bounds that hold under abuse: requests at once (503 with
//! `Retry-After`, not a queue), a request's deadline, and probes that
//! neither bound refuses.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use model_persistence_server::ModelConfig;
use serde_json::json;

use common::*;

#[test]
fn requests_beyond_the_bound_get_503_with_retry_after_at_once_and_probes_still_answer() {
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.max_requests = 2;
    let server = start(served, &reg);
    let addr = server.addr;
    // Two requests whose bodies are still coming hold both places.
    let hold = |n: usize| {
        let mut s = TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"id\":\"held-{n}\""
        )
        .expect("write");
        s
    };
    let held = [hold(0), hold(1)];
    std::thread::sleep(Duration::from_millis(200));
    let body =
        json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [0.1, 0.2, 0.3, 0.4]}]});
    let started = std::time::Instant::now();
    let (status, head, answer) = http_with_head(
        addr,
        "POST",
        "/v2/models/fraud/infer",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&answer));
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(String::from_utf8_lossy(&answer).contains("\"error\""));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the refusal waited in a queue"
    );
    // The probes are not bounded.
    assert_eq!(get(addr, "/v2/health/ready").0, 200);
    assert_eq!(get(addr, "/v2/models/fraud/ready").0, 200);
    // Once the held requests end, the next is served.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = post_json(addr, "/v2/models/fraud/infer", &body);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(std::time::Instant::now() < deadline, "the places were never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = String::from_utf8_lossy(&get(addr, "/metrics").1).into_owned();
    assert!(metric_value(&metrics, "mp_requests_refused_total") >= 1);
}

#[test]
fn a_request_past_its_deadline_is_answered_503_and_the_server_keeps_serving() {
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.request_timeout_ms = 1;
    let server = start(served, &reg);
    let addr = server.addr;
    // 200,000 rows: handled off the async workers, for far longer than 1 ms.
    let rows = 200_000;
    let data: Vec<f64> = (0..rows * 4).map(|i| f64::from(i % 7) / 7.0).collect();
    let big = json!({"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP64", "data": data}]});
    let (status, answer) = post_json(addr, "/v2/models/fraud/infer", &big);
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("1 ms")), "{answer}");
    assert_eq!(get(addr, "/v2/health/live").0, 200);
    let metrics = String::from_utf8_lossy(&get(addr, "/metrics").1).into_owned();
    assert_eq!(metric_value(&metrics, "mp_requests_timed_out_total"), 1);
}
