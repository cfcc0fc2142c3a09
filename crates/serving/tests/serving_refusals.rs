//! What a server refuses for good: a version whose input schema differs
//! from the served one, and content it has refused once (never re-attempted).

use model_persistence_core::{ModelCard, Version};
use model_persistence_serving::{Error, ModelServer, ReloadPolicy, Source};
use model_persistence_testkit::LinearClassifier;

/// A linear model over `n` features, published to `registry` as `fraud`.
fn publish_linear(registry: &model_persistence_versioning::Registry, n: usize, names: Option<&[&str]>) -> Version {
    let model = LinearClassifier {
        weights: vec![1.0; n],
        bias: 0.0,
    };
    let mut card = ModelCard::builder("fraud", &model).n_features(n);
    if let Some(names) = names {
        card = card.feature_names(names.iter().copied());
    }
    let card = card.build().expect("card");
    registry
        .publish_model(
            &model,
            &card,
            model_persistence_versioning::VersionSpec::Bump(model_persistence_versioning::Bump::Minor),
        )
        .expect("publish")
        .version
}

#[test]
fn a_version_with_another_input_schema_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = model_persistence_versioning::Registry::create(dir.path()).expect("registry");
    let v1 = publish_linear(&reg, 2, Some(&["amount", "age"]));
    reg.set_alias("fraud", "production", &v1).expect("promote");
    let strict = ModelServer::<LinearClassifier>::start(
        Source::registry(reg.clone(), "fraud@production").expect("source"),
        ReloadPolicy::Manual,
    )
    .expect("start");
    let lenient =
        ModelServer::<LinearClassifier>::builder(Source::registry(reg.clone(), "fraud@production").expect("source"))
            .policy(ReloadPolicy::Manual)
            .accept_schema_changes()
            .start()
            .expect("start");
    // Three features instead of two.
    let v2 = publish_linear(&reg, 3, None);
    reg.set_alias("fraud", "production", &v2).expect("promote");
    match strict.reload_if_updated() {
        Err(Error::SchemaChanged { version, .. }) => assert_eq!(version, v2),
        other => panic!("expected a schema refusal, got {other:?}"),
    }
    let status = strict.status();
    assert_eq!(status.version, v1);
    assert!(
        status.last_error.as_deref().is_some_and(|e| e.contains("3 features")),
        "{status:?}"
    );
    assert!(
        strict.predict(ndarray::array![[1.0, 2.0]].view()).is_ok(),
        "old-width requests still served"
    );
    assert!(lenient.reload_if_updated().expect("accepted"));
    assert_eq!(lenient.status().version, v2);
    // Same width, renamed features: refused too.
    let v3 = publish_linear(&reg, 2, Some(&["amount", "country"]));
    reg.set_alias("fraud", "production", &v3).expect("promote");
    assert!(matches!(strict.reload_if_updated(), Err(Error::SchemaChanged { .. })));
    // The same width and names: taken.
    let v4 = publish_linear(&reg, 2, Some(&["amount", "age"]));
    reg.set_alias("fraud", "production", &v4).expect("promote");
    assert!(strict.reload_if_updated().expect("same schema"));
    assert_eq!(strict.status().version, v4);
}

#[test]
fn a_refused_registry_version_is_never_attempted_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = model_persistence_versioning::Registry::create(dir.path()).expect("registry");
    let v1 = publish_linear(&reg, 2, None);
    reg.set_alias("fraud", "production", &v1).expect("promote");
    let server = ModelServer::<LinearClassifier>::start(
        Source::registry(reg.clone(), "fraud@production").expect("source"),
        ReloadPolicy::Manual,
    )
    .expect("start");
    // A version that verifies but fails the load checks: the schema changes.
    let bad = publish_linear(&reg, 5, None);
    reg.set_alias("fraud", "production", &bad).expect("promote");
    assert!(server.reload_if_updated().is_err());
    for _ in 0..5 {
        assert!(!server.reload_if_updated().expect("nothing new to try"));
    }
    assert_eq!(
        server.status().failed_reloads,
        1,
        "the same content was attempted again"
    );
    // A later good version is still taken.
    let v3 = publish_linear(&reg, 2, None);
    reg.set_alias("fraud", "production", &v3).expect("promote");
    assert!(server.reload_if_updated().expect("good"));
    assert_eq!(server.status().version, v3);
}
