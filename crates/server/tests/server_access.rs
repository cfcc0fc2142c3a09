//! Access control: bearer tokens with scopes on every route, the same
//! rules over gRPC (driven by `tritonclient[grpc]`), outcomes that cannot
//! move production without the scope, the token's name recorded as the
//! actor of the moves its reports cause, and a server that will not listen
//! beyond loopback with no access control unless told to.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use model_persistence_server::{ModelConfig, Scope, ServeConfig, TokenConfig};
use semver::Version;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use common::*;

fn hex_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn token(name: &str, secret: &str, scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: Some(hex_sha256(secret)),
        env: None,
        file: None,
        scopes: scopes.to_vec(),
    }
}

/// reader (read), predictor (infer), reporter (outcomes), root (admin).
fn tokens() -> Vec<TokenConfig> {
    vec![
        token("reader", "read-secret", &[Scope::Read]),
        token("predictor", "infer-secret", &[Scope::Infer]),
        token("reporter", "outcomes-secret", &[Scope::Outcomes]),
        token("root", "admin-secret", &[Scope::Admin]),
    ]
}

fn call(addr: SocketAddr, method: &str, path: &str, secret: Option<&str>, body: &Value) -> (u16, String, Value) {
    let auth = secret.map(|s| format!("Bearer {s}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (status, head, bytes) = http_with_head(addr, method, path, &headers, &body);
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, head, json)
}

#[test]
fn each_route_answers_by_token_and_scope() {
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.token = tokens();
    served.repository_api = true;
    let server = start(served, &reg);
    let addr = server.addr;
    let infer =
        json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [0.1, 0.2, 0.3, 0.4]}]});
    let outcomes = json!({"outcomes": [{"id": "nobody", "outcome": 1}]});
    let null = Value::Null;
    // (method, path, body, the secret of the scope it needs; None: open)
    let routes: Vec<(&str, &str, &Value, Option<&str>)> = vec![
        ("GET", "/v2/health/live", &null, None),
        ("GET", "/v2/health/ready", &null, None),
        ("GET", "/v2/models/fraud/ready", &null, None),
        ("GET", "/v2/models/fraud/versions/1.4.0/ready", &null, None),
        ("GET", "/v2", &null, Some("read-secret")),
        ("GET", "/v2/models/fraud", &null, Some("read-secret")),
        ("GET", "/v2/models/fraud/versions/1.4.0", &null, Some("read-secret")),
        ("GET", "/v2/models/fraud/outcomes", &null, Some("read-secret")),
        ("GET", "/metrics", &null, Some("read-secret")),
        ("GET", "/", &null, Some("read-secret")),
        ("GET", "/models/fraud", &null, Some("read-secret")),
        ("POST", "/v2/models/fraud/infer", &infer, Some("infer-secret")),
        (
            "POST",
            "/v2/models/fraud/versions/1.4.0/infer",
            &infer,
            Some("infer-secret"),
        ),
        ("POST", "/v2/models/fraud/outcomes", &outcomes, Some("outcomes-secret")),
        ("POST", "/v2/repository/index", &null, Some("admin-secret")),
    ];
    let secrets = ["read-secret", "infer-secret", "outcomes-secret"];
    for (method, path, body, needs) in routes {
        let what = format!("{method} {path}");
        let Some(needs) = needs else {
            let (status, _, answer) = call(addr, method, path, None, body);
            assert_eq!(status, 200, "{what} is open: {answer}");
            continue;
        };
        // No token: 401, the challenge, the protocol's error body.
        let (status, head, answer) = call(addr, method, path, None, body);
        assert_eq!(status, 401, "{what} without a token");
        assert!(head.contains("www-authenticate: bearer"), "{what}: {head}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains("token")),
            "{what}: {answer}"
        );
        // A wrong token: 401 saying the token is invalid.
        let (status, head, answer) = call(addr, method, path, Some("guess"), body);
        assert_eq!(status, 401, "{what} with a wrong token");
        assert!(head.contains("error=\"invalid_token\""), "{what}: {head}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
        // Every token of another scope: 403 with the error body.
        for other in secrets.iter().filter(|s| **s != needs) {
            let (status, _, answer) = call(addr, method, path, Some(other), body);
            assert_eq!(status, 403, "{what} with {other}: {answer}");
            assert!(
                answer["error"].as_str().is_some_and(|e| e.contains("scope")),
                "{what}: {answer}"
            );
        }
        // Its own scope, and admin, which includes every scope: answered.
        for secret in [needs, "admin-secret"] {
            let (status, _, answer) = call(addr, method, path, Some(secret), body);
            assert!(status == 200, "{what} with {secret}: {status} {answer}");
        }
    }
    // The repository extension needs admin, whatever else a token has.
    for secret in secrets {
        let (status, _, _) = call(addr, "POST", "/v2/repository/models/fraud/unload", Some(secret), &null);
        assert_eq!(status, 403, "{secret} unloaded a model");
    }
    let (status, metrics) = {
        let (s, _, _) = call(addr, "GET", "/metrics", Some("read-secret"), &null);
        let (_, _, body) = http_with_head(addr, "GET", "/metrics", &[("Authorization", "Bearer read-secret")], b"");
        (s, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(status, 200);
    assert!(
        metric_value(
            &metrics,
            "mp_access_refused_total{protocol=\"rest\",reason=\"unauthenticated\"}"
        ) >= 22
    );
    assert!(
        metric_value(
            &metrics,
            "mp_access_refused_total{protocol=\"rest\",reason=\"forbidden\"}"
        ) >= 22
    );
    assert!(!metrics.contains("secret"), "a token reached the metrics");
}

#[test]
fn open_metrics_opens_only_the_metrics() {
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.token = tokens();
    served.open_metrics = true;
    let server = start(served, &reg);
    assert_eq!(get(server.addr, "/metrics").0, 200);
    assert_eq!(get(server.addr, "/v2").0, 401);
    assert_eq!(get(server.addr, "/v2/models/fraud").0, 401);
}

#[test]
fn grpc_calls_get_unauthenticated_or_permission_denied_as_rest_gets_401_or_403() {
    let py = python("tritonclient.grpc");
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.token = tokens();
    served.repository_api = true;
    let server = start(served, &reg);
    let out = std::process::Command::new(&py)
        .arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oip-access-client.py"))
        .arg(server.addr.to_string())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("json");
    let want = |call: &str, token: &str| -> &str {
        let needs = match call {
            "live" | "ready" | "model_ready" => return "OK",
            "metadata" | "server_metadata" => "read",
            "infer" => "infer",
            _ => "admin",
        };
        match token {
            "none" | "wrong" => "UNAUTHENTICATED",
            t if t == needs || t == "admin" => "OK",
            _ => "PERMISSION_DENIED",
        }
    };
    let calls = seen.as_object().expect("calls");
    assert!(calls.len() >= 7, "{seen}");
    for (call, by_token) in calls {
        for (token, status) in by_token.as_object().expect("tokens") {
            assert_eq!(status, want(call, token), "{call} with the {token} token: {seen}");
        }
    }
}

#[test]
fn an_outcomes_flood_without_the_scope_moves_nothing_and_a_token_that_moves_an_alias_is_its_actor() {
    let (_dir, reg) = test_registry();
    let good = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    let bad = publish(&reg, "fraud", Version::new(2, 0, 0), &linear(-1.0, 0.0));
    reg.set_alias("fraud", "production", &bad).expect("alias");
    reg.set_alias("fraud", "production", &good).expect("alias");
    reg.set_alias("fraud", "production", &bad).expect("alias");
    let mut model = ModelConfig::reference("fraud@production");
    model.guardrail = Some(model_persistence_gate::live::Guardrail {
        min_samples: 20,
        floor: Some(0.7),
        ..Default::default()
    });
    let mut served = config(vec![model]);
    served.token = tokens();
    let server = start(served, &reg);
    let addr = server.addr;
    let history = reg.history("fraud").expect("history").len();
    // Wrong answers, reported without a token, with a wrong one and with
    // tokens of other scopes: refused, and production stays.
    let row = |i: u32| if i.is_multiple_of(2) { [2.0, 1.0] } else { [1.0, 2.0] };
    let truth = |i: u32| i64::from(i.is_multiple_of(2));
    let predict = |i: u32| {
        let mut body = infer_body(&[row(i)]);
        body["id"] = json!(format!("r{i}"));
        let (status, _, answer) = call(addr, "POST", "/v2/models/fraud/infer", Some("infer-secret"), &body);
        assert_eq!(status, 200, "{answer}");
    };
    for i in 0..60 {
        predict(i);
    }
    let report: Vec<Value> = (0..60)
        .map(|i| json!({"id": format!("r{i}"), "outcome": truth(i)}))
        .collect();
    let report = json!({ "outcomes": report });
    for secret in [None, Some("guess"), Some("read-secret"), Some("infer-secret")] {
        for _ in 0..25 {
            let (status, _, _) = call(addr, "POST", "/v2/models/fraud/outcomes", secret, &report);
            assert!(status == 401 || status == 403, "{secret:?}: {status}");
        }
    }
    assert_eq!(
        reg.history("fraud").expect("history").len(),
        history,
        "a refused report moved the alias"
    );
    assert_eq!(
        reg.alias("fraud", "production").expect("alias").expect("set").version,
        bad
    );
    // The reporter's report is taken: the guardrail rolls back, by "reporter".
    let (status, _, answer) = call(
        addr,
        "POST",
        "/v2/models/fraud/outcomes",
        Some("outcomes-secret"),
        &report,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["guardrail"]["rolled_back_to"], "1.0.0", "{answer}");
    let last = reg.history("fraud").expect("history").pop().expect("event");
    assert_eq!(last.by.as_deref(), Some("reporter"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut body = infer_body(&[[2.0, 1.0]]);
        body["id"] = json!("after");
        let (_, _, answer) = call(addr, "POST", "/v2/models/fraud/infer", Some("infer-secret"), &body);
        if answer["model_version"] == "1.0.0" {
            break;
        }
        assert!(Instant::now() < deadline, "the server never followed the rollback");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_access_control_beyond_loopback_unless_told() {
    let open = |listen: &str, insecure_open: bool, tokens: Vec<TokenConfig>| ServeConfig {
        listen: listen.parse().expect("address"),
        insecure_open,
        token: tokens,
        models: vec![ModelConfig::reference("fraud@production")],
        ..ServeConfig::default()
    };
    let err = open("0.0.0.0:0", false, vec![]).validate().expect_err("refused");
    assert!(err.to_string().contains("--insecure-open"), "{err}");
    assert!(err.to_string().contains("--tokens"), "{err}");
    open("0.0.0.0:0", true, vec![]).validate().expect("open on purpose");
    open("0.0.0.0:0", false, tokens()).validate().expect("tokens");
    open("127.0.0.1:0", false, vec![]).validate().expect("loopback");
    open("[::1]:0", false, vec![]).validate().expect("loopback");
    // And the server itself refuses to bind.
    let (_dir, reg) = reference_registry();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let refused = runtime.block_on(model_persistence_server::Server::bind(
        &open("0.0.0.0:0", false, vec![]),
        &reg,
    ));
    assert!(refused.is_err());
}
