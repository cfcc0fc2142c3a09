//! A/B splits and live outcomes over HTTP: sticky, counted splits, a
//! guardrail's rollback and an A/B test's promotion.

#![allow(clippy::result_large_err)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use model_persistence_server::{AbConfig, ModelConfig, VariantConfig};
use semver::Version;
use serde_json::{json, Value};

use common::*;

#[test]
fn ab_splits_are_sticky_and_counted() {
    let (_dir, reg) = test_registry();
    let a = publish(&reg, "churn", Version::new(1, 0, 0), &linear(1.0, 0.0));
    let b = publish(&reg, "churn", Version::new(2, 0, 0), &linear(2.0, 0.0));
    reg.set_alias("churn", "production", &a).expect("alias");
    reg.set_alias("churn", "candidate", &b).expect("alias");
    let model = ModelConfig {
        name: Some("churn".into()),
        reference: None,
        bundle_dir: None,
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
fn outcomes_reported_by_id_roll_a_worse_version_back() {
    let (_dir, reg) = test_registry();
    let good = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    let bad = publish(&reg, "fraud", Version::new(2, 0, 0), &linear(-1.0, 0.0));
    reg.set_alias("fraud", "production", &good).expect("alias");
    let mut model = ModelConfig::reference("fraud@production");
    model.guardrail = Some(model_persistence_gate::live::Guardrail {
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
    let (_dir, reg) = test_registry();
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
