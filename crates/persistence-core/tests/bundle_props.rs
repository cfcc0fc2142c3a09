//! Property tests: every encoder/decoder pair round-trips.

mod common;

use common::Linear;
use model_persistence_core::{BundleReader, BundleWriter, ModelCard};
use proptest::prelude::*;

fn finite() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL
}

prop_compose! {
    fn model_and_card()(
        weights in prop::collection::vec(finite(), 1..8),
        bias in finite(),
        name in "[a-z][a-z0-9_-]{0,20}",
        (major, minor, patch) in (0_u64..50, 0_u64..50, 0_u64..50),
        metrics in prop::collection::btree_map("[a-z_]{1,10}", finite(), 0..5),
        notes in ".{0,40}",
        tags in prop::collection::vec("[a-z]{1,8}", 0..4),
        rows in 1_usize..20,
        seed in any::<u64>(),
        secs in 0_i64..4_000_000_000,
    ) -> (Linear, ModelCard) {
        let model = Linear { weights, bias };
        let n = model.weights.len();
        let mut rng = model_persistence_testkit::SplitMix64::new(seed);
        let train = ndarray::Array2::from_shape_fn((rows, n), |_| rng.next_normal());
        let mut builder = ModelCard::builder(name, &model).version(semver::Version::new(major, minor, patch))
            .training_data(train.view(), "proptest")
            .metrics(metrics)
            .notes(notes)
            .created_at(time::OffsetDateTime::from_unix_timestamp(secs).expect("in range"));
        for tag in tags {
            builder = builder.tag(tag);
        }
        let card = builder.build().expect("valid card");
        (model, card)
    }
}

proptest! {
    // 128 cases on every run; PROPTEST_CASES=N for a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn bundles_round_trip((model, card) in model_and_card(), level in 0_u8..=9) {
        let bytes = BundleWriter::default().level(level).to_bytes(&model, &card).expect("encodes");
        let loaded = model_persistence_core::from_bytes::<Linear>(&bytes).expect("decodes");
        prop_assert_eq!(loaded.model(), &model);
        prop_assert_eq!(loaded.card(), &card);
        let summary = BundleReader::default().verify_bytes(&bytes).expect("verifies");
        prop_assert_eq!(summary.content_id, loaded.content_id());
        // Deterministic: the same model and card give the same bytes.
        prop_assert_eq!(BundleWriter::default().level(level).to_bytes(&model, &card).expect("encodes"), bytes);
    }

    #[test]
    fn cards_round_trip_through_json_and_msgpack((_model, card) in model_and_card()) {
        let json = card.to_json().expect("to json");
        prop_assert_eq!(&ModelCard::from_json(&json).expect("from json"), &card);
        let packed = rmp_serde::to_vec_named(&card).expect("to msgpack");
        let unpacked: ModelCard = rmp_serde::from_slice(&packed).expect("from msgpack");
        prop_assert_eq!(unpacked, card);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = model_persistence_core::from_bytes::<Linear>(&bytes);
        let _ = BundleReader::default().read_card_bytes(&bytes);
    }
}

#[test]
fn a_card_with_non_finite_values_round_trips_through_json() {
    // Found by `cards_round_trip_through_json_and_msgpack`: huge weights make
    // the probe outputs infinite (or NaN), which JSON cannot write as numbers.
    let model = Linear {
        weights: vec![f64::MAX, f64::MAX],
        bias: f64::MIN,
    };
    let train = ndarray::array![[1.0, 1.0], [-1.0, 2.0]];
    let card = ModelCard::builder("huge", &model)
        .version(semver::Version::new(1, 0, 0))
        .training_data(train.view(), "regression")
        .metric("loss", f64::INFINITY)
        .build()
        .expect("card");
    let expected = &card.probe.as_ref().expect("probe").expected;
    assert!(expected
        .iter()
        .any(|v| matches!(v, model_persistence_core::ProbeValue::Value(x) if !x.is_finite())));
    let json = card.to_json().expect("to json");
    assert!(json.contains("\"inf\""), "{json}");
    let back = ModelCard::from_json(&json).expect("from json");
    assert_eq!(back.probe, card.probe);
    assert_eq!(back.metrics["loss"], f64::INFINITY);
}
