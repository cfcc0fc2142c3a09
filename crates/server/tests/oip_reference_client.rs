//! The protocol's reference client (`tritonclient[http]` from PyPI, in the
//! project's virtual environment made by `scripts/test.sh`) against a
//! server on 127.0.0.1: health, metadata, inference with binary and JSON
//! tensors, errors.

mod common;

use model_persistence_server::ModelConfig;

use common::{check_reference_answer, config, python, reference_registry, run_client, start};

#[test]
fn the_reference_client_speaks_to_the_server() {
    let py = python("tritonclient.http");
    let (_dir, reg) = reference_registry();
    let server = start(config(vec![ModelConfig::reference("fraud@production")]), &reg);
    let seen = run_client(&py, "oip-client.py", server.addr);
    drop(server);
    assert_eq!(seen["live"], true);
    assert_eq!(seen["ready"], true);
    assert_eq!(seen["model_ready"], true);
    assert_eq!(seen["metadata"]["name"], "fraud");
    assert_eq!(seen["metadata"]["inputs"][0]["shape"], serde_json::json!([-1, 4]));
    assert_eq!(seen["server"]["name"], "model-persistence");
    for how in ["binary", "json"] {
        check_reference_answer(&seen["rows"], &seen[how], how);
        assert_eq!(seen[how]["id"], "oip-1", "{how}");
    }
    assert_eq!(seen["wrong_width"]["status"], "400", "{}", seen["wrong_width"]);
    assert!(seen["unknown_model"] != "accepted", "{}", seen["unknown_model"]);
}
