//! The model repository extension, through the router without a socket:
//! off unless turned on, names loaded and unloaded while serving, and a
//! load that fails its checks leaves what was served untouched.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model_persistence_server::{router, AppState, ModelConfig};
use semver::Version;
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{config, linear, publish, test_registry};

async fn post(state: &Arc<AppState>, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = router(Arc::clone(state), 1 << 20)
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn rows() -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [3.0, 1.0]}]})
}

#[test]
fn names_load_and_unload_while_serving_and_a_failed_load_changes_nothing() {
    let (_dir, reg) = test_registry();
    let v = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v).expect("alias");
    let churn = publish(&reg, "churn", Version::new(2, 0, 0), &linear(-1.0, 0.0));
    reg.set_alias("churn", "production", &churn).expect("alias");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Off by default: 403 and nothing changes.
    let off = AppState::start(&config(vec![ModelConfig::reference("fraud@production")]), &reg).expect("starts");
    runtime.block_on(async {
        let (status, body) = post(&off, "/v2/repository/models/churn/load", json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("--repository-api")),
            "{body}"
        );
    });
    off.stop();

    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.repository_api = true;
    let state = AppState::start(&served, &reg).expect("starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.ready() {
        assert!(Instant::now() < deadline, "not ready: {:?}", state.load_errors());
        std::thread::sleep(Duration::from_millis(10));
    }
    runtime.block_on(async {
        let (status, index) = post(&state, "/v2/repository/index", json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            index,
            json!([{"name": "fraud", "version": "1.0.0", "state": "READY", "reason": ""}])
        );

        // A new name, from its production alias (the default reference).
        let (status, body) = post(&state, "/v2/repository/models/churn/load", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, out) = post(&state, "/v2/models/churn/infer", rows()).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(out["model_version"], "2.0.0");
        assert_eq!(out["outputs"][0]["data"], json!([0]));

        // A load that cannot pass leaves the name as it was.
        let (status, body) = post(
            &state,
            "/v2/repository/models/fraud/load",
            json!({"parameters": {"reference": "fraud@nowhere"}}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("nowhere")), "{body}");
        let (status, out) = post(&state, "/v2/models/fraud/infer", rows()).await;
        assert_eq!(
            (status, &out["model_version"]),
            (StatusCode::OK, &json!("1.0.0")),
            "{out}"
        );

        // Replacing a name with another reference.
        let (status, body) = post(
            &state,
            "/v2/repository/models/fraud/load",
            json!({"parameters": {"reference": "churn@production"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, out) = post(&state, "/v2/models/fraud/infer", rows()).await;
        assert_eq!(out["model_version"], "2.0.0", "{out}");

        let (status, _) = post(&state, "/v2/repository/models/churn/unload", json!({})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = post(&state, "/v2/models/churn/infer", rows()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = post(&state, "/v2/repository/models/churn/unload", json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, index) = post(&state, "/v2/repository/index", json!({"ready": true})).await;
        assert_eq!(index.as_array().map(Vec::len), Some(1), "{index}");
        let (status, _) = post(
            &state,
            "/v2/repository/models/x/load",
            json!({"parameters": {"reference": 7}}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    });
    state.stop();
}
