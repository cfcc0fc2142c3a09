//! The inference service below the protocols, called with typed tensors:
//! no HTTP, no JSON. What a gRPC adapter (or any other) builds on: the
//! routing decision by metadata or parameter, typed outputs, and typed
//! refusals a protocol maps to its own statuses.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use model_persistence_server::service::{Datatype, ErrorKind, InferRequest, InputTensor, OutputData};
use model_persistence_server::{AbConfig, AppState, ModelConfig, VariantConfig};
use semver::Version;

use common::{config, linear, publish, test_registry};

fn ready(state: &AppState) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.ready() {
        assert!(Instant::now() < deadline, "not ready: {:?}", state.load_errors());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rows(model: &str, data: Vec<f64>) -> InferRequest {
    let n = data.len() as i64 / 2;
    InferRequest {
        model: model.into(),
        inputs: vec![InputTensor::new("x".into(), Datatype::Fp32, &[n, 2], data).expect("a tensor")],
        ..InferRequest::default()
    }
}

#[test]
fn the_service_answers_typed_tensors_and_refuses_with_typed_errors() {
    let (_dir, reg) = test_registry();
    let v = publish(&reg, "fraud", Version::new(1, 0, 0), &linear(1.0, 0.0));
    reg.set_alias("fraud", "production", &v).expect("alias");
    let state = AppState::start(&config(vec![ModelConfig::reference("fraud@production")]), &reg).expect("starts");
    ready(&state);

    let answer = state.infer(rows("fraud", vec![3.0, 1.0, -3.0, 1.0])).expect("answers");
    assert_eq!(answer.model_version, "1.0.0");
    assert!(!answer.id.is_empty(), "every answer has an id for its outcome");
    assert_eq!(answer.variant, None);
    let predict = &answer.outputs[0];
    assert_eq!((predict.name.as_str(), predict.shape.as_slice()), ("predict", &[2][..]));
    assert_eq!(predict.data, OutputData::Int64(vec![1, 0]));
    let proba = &answer.outputs[1];
    assert_eq!(proba.shape, vec![2, 2]);
    let OutputData::Fp64(p) = &proba.data else {
        panic!("probabilities are FP64: {proba:?}")
    };
    assert!(p[1] > 0.5 && p[3] < 0.5, "{p:?}");

    let only = InferRequest {
        outputs: Some(vec!["predict".into()]),
        id: Some("txn-7".into()),
        ..rows("fraud", vec![3.0, 1.0])
    };
    let answer = state.infer(only).expect("answers");
    assert_eq!(answer.id, "txn-7");
    assert_eq!(answer.outputs.len(), 1);

    for (request, kind, words) in [
        (rows("nobody", vec![1.0, 2.0]), ErrorKind::NotFound, "unknown model"),
        (
            InferRequest {
                version: Some("9.9.9".into()),
                ..rows("fraud", vec![1.0, 2.0])
            },
            ErrorKind::NotFound,
            "not served",
        ),
        (
            InferRequest {
                inputs: vec![InputTensor::new("x".into(), Datatype::Fp64, &[1, 3], vec![1.0; 3]).expect("tensor")],
                ..rows("fraud", vec![])
            },
            ErrorKind::InvalidArgument,
            "takes 2",
        ),
        (
            InferRequest {
                outputs: Some(vec!["explain".into()]),
                ..rows("fraud", vec![1.0, 2.0])
            },
            ErrorKind::InvalidArgument,
            "unknown output",
        ),
        (rows("fraud", vec![f64::NAN, 2.0]), ErrorKind::InvalidArgument, "NaN"),
    ] {
        let e = state.infer(request).expect_err(words);
        assert_eq!(e.kind, kind, "{e}");
        assert!(e.message.contains(words), "{words}: {e}");
    }
    state.stop();
}

#[test]
fn a_model_not_loaded_yet_is_unavailable_with_its_reason() {
    let (_dir, reg) = test_registry();
    let state = AppState::start(&config(vec![ModelConfig::reference("ghost@production")]), &reg).expect("starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.load_errors().is_empty() {
        assert!(Instant::now() < deadline, "no load error recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = state.infer(rows("ghost", vec![1.0, 2.0])).expect_err("not loaded");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("not ready"), "{e}");
    state.stop();
}

#[test]
fn the_ab_key_comes_from_metadata_or_parameters_and_is_sticky() {
    let (_dir, reg) = test_registry();
    let a = publish(&reg, "churn", Version::new(1, 0, 0), &linear(1.0, 0.0));
    let b = publish(&reg, "churn", Version::new(2, 0, 0), &linear(-1.0, 0.0));
    reg.set_alias("churn", "production", &a).expect("alias");
    reg.set_alias("churn", "candidate", &b).expect("alias");
    let split = |key: &str| {
        let mut model = ModelConfig::reference("churn@production");
        model.reference = None;
        model.ab = Some(AbConfig {
            key: key.into(),
            variants: ["a", "b"]
                .into_iter()
                .zip(["churn@production", "churn@candidate"])
                .map(|(name, reference)| VariantConfig {
                    name: name.into(),
                    reference: reference.into(),
                    weight: 50,
                })
                .collect(),
            decide: None,
        });
        model
    };
    fn by_header(r: &mut InferRequest, k: &str) {
        r.metadata.insert("x-user".into(), k.into());
    }
    fn by_parameter(r: &mut InferRequest, k: &str) {
        r.parameters.insert("user".into(), k.into());
    }
    type Put = fn(&mut InferRequest, &str);
    for (key, put) in [
        ("header:X-User", by_header as Put),
        ("parameter:user", by_parameter as Put),
    ] {
        let state = AppState::start(&config(vec![split(key)]), &reg).expect("starts");
        ready(&state);
        let mut seen = BTreeMap::new();
        for user in 0..40 {
            let k = format!("user-{user}");
            let variant_of = |_: ()| {
                let mut r = rows("churn", vec![1.0, 0.0]);
                put(&mut r, &k);
                let answer = state.infer(r).expect("answers");
                let version = answer.model_version.clone();
                (answer.variant.expect("a variant answers"), version)
            };
            let first = variant_of(());
            assert_eq!(variant_of(()), first, "{key}: the same key, the same variant");
            assert_eq!(first.1, if first.0 == "a" { "1.0.0" } else { "2.0.0" });
            *seen.entry(first.0).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 2, "{key}: 40 keys reach both variants: {seen:?}");
        state.stop();
    }
}
