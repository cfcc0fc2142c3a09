//! A/B splits, the shadow model, and drift.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model_persistence_core::{ModelCard, Version};
use model_persistence_serving::{AbSplit, DriftConfig, ModelServer, ReloadPolicy, Source};
use model_persistence_testkit::{LinearClassifier, SplitMix64};
use ndarray::Array2;

fn server(
    dir: &std::path::Path,
    name: &str,
    weights: Vec<f64>,
    train: Option<&Array2<f64>>,
) -> ModelServer<LinearClassifier> {
    let model = LinearClassifier { weights, bias: 0.0 };
    let mut card = ModelCard::builder(name, &model).version(Version::new(1, 0, 0));
    if let Some(t) = train {
        card = card.training_data(t.view(), "test");
    }
    let path = dir.join(format!("{name}.bundle"));
    model_persistence_core::save(&path, &model, &card.build().expect("card")).expect("save");
    ModelServer::builder(Source::bundle(&path))
        .policy(ReloadPolicy::Manual)
        .start()
        .expect("start")
}

#[test]
fn the_ab_split_follows_its_weights_and_is_sticky() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = server(dir.path(), "a", vec![1.0, 0.0], None);
    let b = server(dir.path(), "b", vec![0.0, 1.0], None);
    for (wa, wb) in [(50, 50), (90, 10), (1, 3)] {
        let split =
            AbSplit::new([("a".to_owned(), a.clone(), wa), ("b".to_owned(), b.clone(), wb)], 17).expect("split");
        let row = ndarray::array![[1.0, -1.0]];
        for k in 0..10_000 {
            let key = format!("customer-{k}");
            let (variant, p) = split.predict(&key, row.view()).expect("predict");
            assert_eq!(p.outputs[0], usize::from(variant == "a"));
            assert_eq!(split.assign(&key), variant, "not sticky for {key}");
        }
        let counts = split.counts();
        let share_a = counts[0].served as f64 / 10_000.0;
        let expected = wa as f64 / (wa + wb) as f64;
        assert!((share_a - expected).abs() < 0.02, "weights {wa}/{wb}: share {share_a}");
    }
    assert!(AbSplit::<LinearClassifier>::new([], 0).is_err());
    assert!(AbSplit::new([("a".to_owned(), a, 0)], 0).is_err());
}

#[test]
fn the_shadow_predicts_off_the_hot_path_and_reports_disagreement() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shadow = server(dir.path(), "shadow", vec![1.0, 0.0], None);
    let model = LinearClassifier {
        weights: vec![0.0, 1.0],
        bias: 0.0,
    };
    let path = dir.path().join("primary.bundle");
    let card = ModelCard::builder("primary", &model)
        .version(Version::new(1, 0, 0))
        .build()
        .expect("card");
    model_persistence_core::save(&path, &model, &card).expect("save");
    let primary = ModelServer::builder(Source::bundle(&path))
        .policy(ReloadPolicy::Manual)
        .shadow(shadow, 0.5)
        .start()
        .expect("start");
    let mut rng = SplitMix64::new(3);
    for _ in 0..2_000 {
        let row = ndarray::array![[rng.next_normal(), rng.next_normal()]];
        primary.predict(row.view()).expect("predict");
    }
    // The models agree when both coordinates have the same sign: about half the time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = primary.status();
        let compared = s.shadow.as_ref().map_or(0, |sh| sh.compared);
        if compared + s.observations_dropped >= 1_000 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let shadow = status.shadow.expect("shadow status");
    assert!(shadow.compared >= 500, "{shadow:?}");
    assert!((shadow.disagreement_rate - 0.5).abs() < 0.08, "{shadow:?}");
}

#[test]
fn drift_is_detected_on_a_shifted_feature_and_not_on_the_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = SplitMix64::new(11);
    let train = Array2::from_shape_fn((5_000, 3), |_| rng.next_normal());
    let model = LinearClassifier {
        weights: vec![1.0, 1.0, 1.0],
        bias: 0.0,
    };
    let card = ModelCard::builder("drifty", &model)
        .version(Version::new(1, 0, 0))
        .feature_names(["steady", "shifted", "also_steady"])
        .training_data(train.view(), "test")
        .build()
        .expect("card");
    let path = dir.path().join("drifty.bundle");
    model_persistence_core::save(&path, &model, &card).expect("save");
    let fired = Arc::new(AtomicUsize::new(0));
    let fired_in_callback = Arc::clone(&fired);
    let server = ModelServer::<LinearClassifier>::builder(Source::bundle(&path))
        .policy(ReloadPolicy::Manual)
        .drift(DriftConfig {
            window: 500,
            threshold: 0.2,
            sample_share: 1.0,
        })
        .on_drift(move |report| {
            assert_eq!(report.drifting(), ["shifted"]);
            fired_in_callback.fetch_add(1, Ordering::SeqCst);
        })
        .start()
        .expect("start");
    // Unshifted traffic: no drift.
    for _ in 0..600 {
        let row = ndarray::array![[rng.next_normal(), rng.next_normal(), rng.next_normal()]];
        server.predict(row.view()).expect("predict");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.drift().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let calm = server.drift().expect("a full window");
    assert!(calm.drifting().is_empty(), "{calm:?}");
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    // Feature 1 shifts by one standard deviation.
    for _ in 0..600 {
        let row = ndarray::array![[rng.next_normal(), rng.next_normal() + 1.0, rng.next_normal()]];
        server.predict(row.view()).expect("predict");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while fired.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        fired.load(Ordering::SeqCst),
        1,
        "the callback fires once when the feature starts drifting"
    );
    let report = server.status().drift.expect("drift in the status");
    assert_eq!(report.drifting(), ["shifted"]);
    let psi: Vec<f64> = report.features.iter().map(|f| f.psi).collect();
    assert!(psi[1] > 0.2 && psi[0] < 0.1 && psi[2] < 0.1, "{psi:?}");
}
