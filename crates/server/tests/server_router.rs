//! The router called directly, without a socket (as axum's testing example
//! does): what needs no connection is tested here, where a request is a
//! function call. Connection limits, timeouts and swaps under load are in
//! the socket tests.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model_persistence_server::{router, AppState, ModelConfig};
use semver::Version;
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{config, linear, publish, test_registry};

/// Sends one request to a fresh router over `state` and reads the answer.
async fn call(state: &std::sync::Arc<AppState>, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(std::sync::Arc::clone(state), 1 << 20)
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[test]
fn the_router_answers_without_a_socket() {
    let (_dir, reg) = test_registry();
    let v = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v).expect("alias");
    let state = AppState::start(&config(vec![ModelConfig::reference("fraud@production")]), &reg).expect("starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.ready() {
        assert!(Instant::now() < deadline, "not ready: {:?}", state.load_errors());
        std::thread::sleep(Duration::from_millis(10));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
        let post = |uri: &str, body: &Value| {
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request")
        };
        assert_eq!(call(&state, get("/v2/health/ready")).await.0, StatusCode::OK);
        let (status, meta) = call(&state, get("/v2/models/fraud")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(meta["name"], "fraud");
        assert_eq!(meta["inputs"][0]["shape"], json!([-1, 2]));

        let rows = json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [3.0, 1.0]}]});
        let (status, out) = call(&state, post("/v2/models/fraud/infer", &rows)).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(out["outputs"][0]["data"], json!([1]));
        assert_eq!(out["model_version"], "1.0.0");

        // Refusals carry the protocol's error body.
        let narrow = json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [3.0]}]});
        for (uri, body, want) in [
            ("/v2/models/fraud/infer", narrow, StatusCode::BAD_REQUEST),
            ("/v2/models/nobody/infer", rows.clone(), StatusCode::NOT_FOUND),
            (
                "/v2/models/fraud/versions/9.9.9/infer",
                rows.clone(),
                StatusCode::NOT_FOUND,
            ),
        ] {
            let (status, out) = call(&state, post(uri, &body)).await;
            assert_eq!(status, want, "{uri}: {out}");
            assert!(out["error"].as_str().is_some_and(|e| !e.is_empty()), "{uri}: {out}");
        }
        let (status, out) = call(&state, get("/no/such/path")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(out["error"].is_string(), "{out}");
    });
    state.stop();
}
