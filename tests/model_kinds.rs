//! Any model behind one name: kind-dispatched loading through the registry,
//! a server and an A/B split whose versions are of different algorithms,
//! scores, and publishing that runs every check it can.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use linfa_trees::DecisionTree;
use model_persistence::gate::metrics::evaluate_predictions;
use model_persistence::models::linfa::RandomForest;
use model_persistence::persistence::{self, AnyModel, Error as CoreError, Kinds, ProbeValue};
use model_persistence::prelude::*;
use model_persistence::serving::AbSplit;
use model_persistence::versioning::{Checked, Error as RegError};
use model_persistence_testkit::{fraud_like, LinearClassifier, FRAUD_FEATURES};
use ndarray::{s, Array1, Array2};
use rand::SeedableRng;

fn data() -> (Dataset<f64, usize, ndarray::Ix1>, Array2<f64>, Array1<usize>) {
    let (x, y) = fraud_like(3_000, 0.1, 5);
    let train = Dataset::new(x.slice(s![..2_400, ..]).to_owned(), y.slice(s![..2_400]).to_owned());
    (
        train,
        x.slice(s![2_400.., ..]).to_owned(),
        y.slice(s![2_400..]).to_owned(),
    )
}

fn card_of<M: Model>(model: &M, train: &Dataset<f64, usize, ndarray::Ix1>) -> ModelCard {
    ModelCard::builder("fraud", model)
        .feature_names(FRAUD_FEATURES)
        .training_data(train.records().view(), "fraud_like(3000, 0.1, 5)")
        .build()
        .expect("card")
}

fn forest(train: &Dataset<f64, usize, ndarray::Ix1>) -> RandomForest {
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(3);
    let e = linfa_ensemble::EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(6)), rng)
        .ensemble_size(10)
        .bootstrap_proportion(1.0)
        .feature_proportion(1.0)
        .fit(train)
        .expect("forest");
    RandomForest::new(&e, FRAUD_FEATURES.len()).expect("consistent")
}

#[test]
fn one_alias_moves_from_a_logistic_regression_to_a_forest_and_the_server_follows() {
    let (train, test_x, test_y) = data();
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::create(dir.path()).expect("registry");
    let logistic = LogisticRegression::default()
        .max_iterations(100)
        .fit(&train)
        .expect("fits");
    let v1 = registry
        .publish_model(&logistic, &card_of(&logistic, &train), VersionSpec::Bump(Bump::Minor))
        .expect("publish");
    assert_eq!(v1.checked, Checked::Full);
    registry.set_alias("fraud", "production", &v1.version).expect("promote");
    let server = ModelServer::<AnyModel>::start(
        Source::registry(registry.clone(), "fraud@production").expect("source"),
        ReloadPolicy::Manual,
    )
    .expect("a dynamic server starts");
    let p = server.predict_scored(test_x.view()).expect("predicts");
    assert_eq!(server.status().model_kind, "linfa.logistic_regression.v1");
    let scores = p.scores.as_ref().expect("the logistic regression has probabilities");
    assert!(scores.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-9));
    let typed: Array1<usize> = Predictor::predict(&logistic, test_x.view());
    let labels: Vec<ProbeValue> = typed.iter().map(|&l| l.into()).collect();
    assert_eq!(p.outputs.to_vec(), labels, "the dynamic answers are the typed ones");

    let rf = forest(&train);
    let v2 = registry
        .publish_model(&rf, &card_of(&rf, &train), VersionSpec::Bump(Bump::Minor))
        .expect("publish");
    registry.set_alias("fraud", "production", &v2.version).expect("promote");
    assert!(server.reload_if_updated().expect("swaps to another algorithm"));
    let p = server.predict_scored(test_x.view()).expect("predicts");
    assert_eq!(p.version, v2.version);
    assert_eq!(server.status().model_kind, "linfa.random_forest.v3");
    let expected: Vec<ProbeValue> = rf.predict(test_x.view()).iter().map(|&l| l.into()).collect();
    assert_eq!(p.outputs.to_vec(), expected);

    // The gate evaluates a dynamic model's answers, scores included.
    let loaded = registry
        .load_any(&"fraud@production".parse().expect("ref"))
        .expect("loads");
    let metrics = evaluate_predictions(
        test_y.as_slice().expect("contiguous"),
        &loaded.predict(test_x.view()).expect("ok"),
    );
    for m in ["accuracy", "f1", "roc_auc", "log_loss", "brier_score"] {
        assert!(metrics.get(m).is_some_and(|v| v.is_finite()), "{m}: {metrics:?}");
    }
    assert!(metrics["roc_auc"] > 0.8, "{metrics:?}");
}

#[test]
fn an_ab_split_compares_two_algorithms() {
    let (train, test_x, _) = data();
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::create(dir.path()).expect("registry");
    let logistic = LogisticRegression::default()
        .max_iterations(100)
        .fit(&train)
        .expect("fits");
    let rf = forest(&train);
    let a = registry
        .publish_model(&logistic, &card_of(&logistic, &train), VersionSpec::Bump(Bump::Minor))
        .expect("publish");
    let b = registry
        .publish_model(&rf, &card_of(&rf, &train), VersionSpec::Bump(Bump::Minor))
        .expect("publish");
    registry.set_alias("fraud", "control", &a.version).expect("alias");
    registry.set_alias("fraud", "treatment", &b.version).expect("alias");
    let serve = |r: &str| {
        ModelServer::<AnyModel>::start(
            Source::registry(registry.clone(), r).expect("source"),
            ReloadPolicy::Manual,
        )
        .expect("start")
    };
    let split = AbSplit::new(
        [
            ("control".to_owned(), serve("fraud@control"), 50),
            ("treatment".to_owned(), serve("fraud@treatment"), 50),
        ],
        7,
    )
    .expect("split");
    let mut seen = std::collections::BTreeSet::new();
    for c in 0..200 {
        let (variant, p) = split
            .predict(&format!("customer-{c}"), test_x.slice(s![c..c + 1, ..]))
            .expect("answers");
        seen.insert((variant.to_owned(), p.version));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn unknown_kinds_are_named_and_publishing_checks_what_it_can() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::create(dir.path())
        .expect("registry")
        .kinds(model_persistence_testkit::kinds());
    let model = LinearClassifier {
        weights: vec![1.0, 2.0],
        bias: 0.5,
    };
    let card = ModelCard::builder("lin", &model)
        .n_features(2)
        .probe(ndarray::array![[1.0, 1.0], [-3.0, 0.0]].view())
        .build()
        .expect("card");
    let good = persistence::to_bytes(&model, &card).expect("bytes");
    // A kind nobody registered: the table says which kinds it knows.
    match Kinds::empty().load_bytes(&good) {
        Err(CoreError::UnknownKind { kind, known }) => {
            assert_eq!(kind, "synthetic.linear_classifier.v1");
            assert!(known.is_empty());
        }
        other => panic!("expected UnknownKind, got {other:?}"),
    }
    let only_linfa = registry.clone().kinds(Kinds::empty());
    let info = only_linfa.publish_bundle(&good).expect("published");
    assert_eq!(
        info.checked,
        Checked::Hashes,
        "an unknown kind is published with its hashes checked only"
    );
    // A bundle whose probe does not reproduce, with valid hashes: refused
    // by a registry that knows the kind.
    let mut lying = card.clone();
    lying.version = Version::new(2, 0, 0);
    if let Some(probe) = lying.probe.as_mut() {
        probe.expected[0] = ProbeValue::Label(0);
    }
    let forged = craft_unchecked(&model, &lying);
    match registry.publish_bundle(&forged) {
        Err(RegError::InvalidBundle { source }) => {
            assert!(matches!(source, CoreError::ProbeMismatch { .. }), "{source:?}")
        }
        other => panic!("expected the probe refusal, got {other:?}"),
    }
}

/// Bundle bytes for a card the writer would refuse (the writer checks the
/// probe): the writer's bytes for the honest card, with the header swapped
/// and rehashed.
fn craft_unchecked(model: &LinearClassifier, card: &ModelCard) -> Vec<u8> {
    let mut honest = card.clone();
    if let Some(p) = honest.probe.as_mut() {
        p.expected = Predictor::predict(
            model,
            ndarray::Array2::from_shape_vec((p.rows.len(), 2), p.rows.concat())
                .expect("rows")
                .view(),
        )
        .iter()
        .map(|&l| l.into())
        .collect();
    }
    let bytes = persistence::to_bytes(model, &honest).expect("bytes");
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4")) as usize;
    let mut header: serde_json::Value = rmp_serde::from_slice(&bytes[16..16 + header_len]).expect("header decodes");
    header["card"] = serde_json::to_value(card).expect("card");
    let new_header = rmp_serde::to_vec_named(&header).expect("encode");
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(new_header.len() as u32).to_le_bytes());
    out.extend_from_slice(&new_header);
    use sha2::Digest;
    let hash = sha2::Sha256::digest(&out);
    out.extend_from_slice(&hash);
    out.extend_from_slice(&bytes[16 + header_len + 32..]);
    out
}
