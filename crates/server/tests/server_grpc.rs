//! gRPC beside REST on one port, driven by the protocol's reference clients
//! (`tritonclient[grpc]` and `tritonclient[http]`, in the project's virtual
//! environment made by `scripts/test.sh`): the same answers over both, and
//! hostile calls that each get a status a client can act on, never
//! `INTERNAL`, while the server keeps serving.

mod common;

use model_persistence_server::ModelConfig;
use serde_json::Value;

use common::{check_reference_answer, config, python, reference_registry, run_client, start};

#[test]
fn grpc_and_rest_answer_alike_on_one_port_and_hostile_calls_get_client_statuses() {
    let py = python("tritonclient.grpc");
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.body_limit = 1 << 20;
    served.repository_api = true;
    let server = start(served, &reg);
    let seen = run_client(&py, "oip-grpc-client.py", server.addr);
    let metrics = common::get(server.addr, "/metrics");
    drop(server);
    assert_eq!(
        (&seen["live"], &seen["ready"], &seen["model_ready"]),
        (&Value::Bool(true), &Value::Bool(true), &Value::Bool(true))
    );
    assert_eq!(
        seen["unknown_ready"], "StatusCode.NOT_FOUND",
        "{}",
        seen["unknown_ready"]
    );
    assert_eq!(seen["metadata"]["name"], "fraud");
    assert_eq!(seen["metadata"]["inputs"][0]["shape"], serde_json::json!(["-1", "4"]));
    assert_eq!(
        seen["metadata"]["platform"],
        "model-persistence/synthetic.linear_classifier.v1"
    );
    assert_eq!(seen["server"]["name"], "model-persistence");

    // The same rows over both transports: the same labels, probabilities
    // and version, and each as the model computes them.
    for how in ["grpc", "rest", "after", "reloaded"] {
        check_reference_answer(&seen["rows"], &seen[how], how);
    }
    assert_eq!(seen["grpc"]["id"], "grpc-1");
    assert_eq!(seen["grpc"]["labels"], seen["rest"]["labels"]);
    assert_eq!(seen["grpc"]["probabilities"], seen["rest"]["probabilities"]);
    // Typed inputs get typed outputs.
    assert_eq!(seen["typed"]["raw"], 0, "{}", seen["typed"]);
    assert_eq!(seen["typed"]["datatype"], "INT64");
    assert_eq!(seen["typed"]["labels"].as_array().map(Vec::len), Some(1));

    // The repository extension through the client's calls: unloaded, the
    // name is unknown; loaded again (from fraud@production), it serves.
    assert_eq!(seen["index"][0]["name"], "fraud", "{}", seen["index"]);
    assert_eq!(seen["index"][0]["state"], "READY", "{}", seen["index"]);
    assert_eq!(
        seen["unloaded_ready"], "StatusCode.NOT_FOUND",
        "{}",
        seen["unloaded_ready"]
    );
    assert_eq!(seen["reloaded_ready"], true);

    let hostile = seen["hostile"].as_object().expect("hostile calls");
    assert!(hostile.len() >= 12, "{hostile:?}");
    let want = |what: &str| match what {
        "unknown model" | "unknown version" => "NOT_FOUND",
        "over the limit" => "RESOURCE_EXHAUSTED",
        _ => "INVALID_ARGUMENT",
    };
    for (what, status) in hostile {
        assert_eq!(status, want(what), "{what}: {status}");
    }
    let metrics = String::from_utf8_lossy(&metrics.1).into_owned();
    assert!(
        metrics.contains("protocol=\"grpc\""),
        "gRPC requests are counted under their protocol:\n{metrics}"
    );
}
