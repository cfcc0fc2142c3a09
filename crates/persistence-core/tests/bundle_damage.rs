//! A damaged, truncated, padded or hostile bundle is refused with a typed error.

mod common;

use common::{craft, linear, linear_card, Linear, OtherLinear};
use model_persistence_core::{BundleReader, BundleWriter, Error, LimitKind, Limits, Section};

fn small_bundle() -> Vec<u8> {
    let model = linear();
    BundleWriter::default()
        .to_bytes(&model, &linear_card(&model))
        .expect("encodes")
}

#[test]
fn every_single_bit_flip_is_detected() {
    for level in [0, 3] {
        let bundle = BundleWriter::default()
            .level(level)
            .to_bytes(&linear(), &linear_card(&linear()))
            .expect("encodes");
        assert!(bundle.len() < 4096, "keep the exhaustive test small: {}", bundle.len());
        let mut damaged = bundle.clone();
        for byte in 0..bundle.len() {
            for bit in 0..8 {
                damaged[byte] ^= 1 << bit;
                let result = model_persistence_core::from_bytes::<Linear>(&damaged);
                assert!(
                    result.is_err(),
                    "flip of bit {bit} of byte {byte} (level {level}) went unnoticed"
                );
                let verified = BundleReader::default().verify_bytes(&damaged);
                assert!(verified.is_err(), "verify missed bit {bit} of byte {byte}");
                damaged[byte] ^= 1 << bit;
            }
        }
        assert!(model_persistence_core::from_bytes::<Linear>(&damaged).is_ok());
    }
}

#[test]
fn a_flip_in_the_payload_is_a_payload_checksum_error() {
    let mut bundle = small_bundle();
    let last = bundle.len() - 1;
    bundle[last] ^= 0x10;
    match model_persistence_core::from_bytes::<Linear>(&bundle) {
        Err(Error::ChecksumMismatch {
            section: Section::Payload,
            ..
        }) => {}
        other => panic!("expected a payload checksum mismatch, got {other:?}"),
    }
}

#[test]
fn a_flip_in_the_header_is_a_header_checksum_error() {
    let mut bundle = small_bundle();
    bundle[40] ^= 0x01;
    assert!(matches!(
        model_persistence_core::from_bytes::<Linear>(&bundle),
        Err(Error::ChecksumMismatch {
            section: Section::Header,
            ..
        })
    ));
}

#[test]
fn truncation_at_every_offset_is_a_typed_error() {
    let bundle = small_bundle();
    for len in 0..bundle.len() {
        let cut = &bundle[..len];
        match model_persistence_core::from_bytes::<Linear>(cut) {
            Err(Error::Truncated { .. }) => {}
            Err(Error::NotABundle { .. }) if len == 0 => {}
            other => panic!("truncation to {len} bytes gave {other:?}"),
        }
        assert!(matches!(
            BundleReader::default().verify_bytes(cut),
            Err(Error::Truncated { .. } | Error::NotABundle { .. })
        ));
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bundle = small_bundle();
    let end = bundle.len() as u64;
    bundle.extend_from_slice(b"garbage");
    match model_persistence_core::from_bytes::<Linear>(&bundle) {
        Err(Error::TrailingBytes { end: e, extra: 7 }) => assert_eq!(e, end),
        other => panic!("expected trailing bytes, got {other:?}"),
    }
}

#[test]
fn text_is_not_a_bundle() {
    assert!(matches!(
        model_persistence_core::from_bytes::<Linear>(b"{\"model\": \"pickle\"}"),
        Err(Error::NotABundle { .. })
    ));
}

#[test]
fn a_newer_major_version_is_refused_with_its_own_error() {
    let mut bundle = small_bundle();
    bundle[8] = 2;
    match model_persistence_core::from_bytes::<Linear>(&bundle) {
        Err(Error::UnsupportedVersion {
            found_major: 2,
            supported_major: 1,
            ..
        }) => {}
        other => panic!("expected unsupported version, got {other:?}"),
    }
}

#[test]
fn a_header_length_past_the_limit_is_refused_before_allocating() {
    let mut bundle = small_bundle();
    bundle[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        model_persistence_core::from_bytes::<Linear>(&bundle),
        Err(Error::LimitExceeded {
            limit: LimitKind::HeaderLen,
            ..
        })
    ));
}

#[test]
fn a_deflate_bomb_stops_at_the_declared_length() {
    let model = linear();
    let card = linear_card(&model);
    let zeros = vec![0_u8; 32 << 20];
    let mut bomb = craft(&card, &zeros, true);
    // Re-assemble with a small declared length: the inflater must stop there.
    let stored_start = bomb.len() - {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        std::io::Write::write_all(&mut enc, &zeros).expect("in-memory");
        enc.finish().expect("in-memory").len()
    };
    let stored = bomb.split_off(stored_start);
    let descriptor = common::Descriptor {
        codec: "deflate",
        level: 6,
        encoding: "msgpack",
        raw_len: 1024,
        stored_len: stored.len() as u64,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored)),
    };
    let lying = common::assemble(1, &card, descriptor, &stored);
    match model_persistence_core::from_bytes::<Linear>(&lying) {
        Err(Error::LimitExceeded {
            limit: LimitKind::InflatedLen,
            found,
            ..
        }) => assert_eq!(found, 1025),
        other => panic!("expected the inflated-length limit, got {other:?}"),
    }
    // An honest declaration past the configured limit is refused before inflating.
    let honest = craft(&card, &zeros, true);
    let reader = BundleReader::new(Limits::default().max_inflated_len(1 << 20));
    assert!(matches!(
        reader.load_bytes::<Linear>(&honest),
        Err(Error::LimitExceeded {
            limit: LimitKind::InflatedLen,
            ..
        })
    ));
}

#[test]
fn a_file_past_the_size_limit_is_refused() {
    let bundle = small_bundle();
    let reader = BundleReader::new(Limits::default().max_file_len(100));
    assert!(matches!(
        reader.load_bytes::<Linear>(&bundle),
        Err(Error::LimitExceeded {
            limit: LimitKind::FileLen,
            ..
        })
    ));
}

#[test]
fn loading_as_the_wrong_model_type_is_a_typed_error() {
    match model_persistence_core::from_bytes::<OtherLinear>(&small_bundle()) {
        Err(Error::WrongModelKind { expected, found }) => {
            assert_eq!(expected, "test.other.v1");
            assert_eq!(found, "test.linear.v1");
        }
        other => panic!("expected wrong kind, got {other:?}"),
    }
}

#[test]
fn a_card_that_disagrees_on_the_feature_count_is_a_typed_error() {
    let model = linear();
    let mut card = linear_card(&model);
    card.n_features = 4;
    card.features.clear();
    card.feature_stats.clear();
    card.probe = None;
    let bundle = craft(&card, &rmp_serde::to_vec_named(&model).expect("encodes"), false);
    assert!(matches!(
        model_persistence_core::from_bytes::<Linear>(&bundle),
        Err(Error::FeatureCountMismatch { card: 4, model: 3 })
    ));
}

#[test]
fn a_corrupted_probe_expectation_is_a_typed_error() {
    let model = linear();
    let mut card = linear_card(&model);
    let probe = card.probe.as_mut().expect("the builder made a probe");
    probe.expected[2] = model_persistence_core::ProbeValue::Value(42.0);
    let bundle = craft(&card, &rmp_serde::to_vec_named(&model).expect("encodes"), true);
    match model_persistence_core::from_bytes::<Linear>(&bundle) {
        Err(Error::ProbeMismatch { row: 2, .. }) => {}
        other => panic!("expected a probe mismatch on row 2, got {other:?}"),
    }
}

#[test]
fn a_model_that_fails_its_structural_check_is_refused() {
    let model = linear();
    let card = linear_card(&model);
    let broken = Linear {
        weights: vec![1.0, 2.0],
        bias: 0.0,
    };
    let bundle = craft(&card, &rmp_serde::to_vec_named(&broken).expect("encodes"), false);
    assert!(matches!(
        model_persistence_core::from_bytes::<Linear>(&bundle),
        Err(Error::FeatureCountMismatch { card: 3, model: 2 })
    ));
}

/// A recursive model: nested lists, as deep as the file says.
#[derive(serde::Serialize, serde::Deserialize)]
struct Nested(Vec<Nested>);

impl model_persistence_core::Predictor for Nested {
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        None
    }
    fn predict(&self, rows: ndarray::ArrayView2<'_, f64>) -> ndarray::Array1<f64> {
        ndarray::Array1::zeros(rows.nrows())
    }
}

impl model_persistence_core::Model for Nested {
    const KIND: &'static str = "test.linear.v1";
    fn check_structure(&self, _: usize) -> Result<(), model_persistence_core::StructureError> {
        Ok(())
    }
}

#[test]
fn deep_nesting_is_refused_before_it_can_overflow_the_stack() {
    let model = linear();
    let mut card = linear_card(&model);
    card.probe = None;
    // 100,000 nested one-element arrays: far past any limit.
    let mut raw = vec![0x91_u8; 100_000];
    raw.push(0x90);
    let bundle = craft(&card, &raw, false);
    assert!(matches!(
        model_persistence_core::from_bytes::<Nested>(&bundle),
        Err(Error::LimitExceeded {
            limit: LimitKind::Depth,
            ..
        })
    ));
}

#[test]
fn read_card_never_touches_the_payload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    let model = linear();
    let card = linear_card(&model);
    model_persistence_core::save(&path, &model, &card).expect("saves");
    let mut bytes = std::fs::read(&path).expect("reads");
    let n = bytes.len();
    for b in &mut bytes[n - 8..] {
        *b ^= 0xff;
    }
    bytes.truncate(n - 3);
    std::fs::write(&path, &bytes).expect("writes");
    assert_eq!(
        model_persistence_core::read_card(&path).expect("card from header"),
        card
    );
    assert!(model_persistence_core::verify(&path).is_err());
    assert!(model_persistence_core::load::<Linear>(&path).is_err());
}

#[test]
fn saving_refuses_a_card_of_another_kind() {
    let model = linear();
    let card = linear_card(&model);
    let other = OtherLinear {
        weights: model.weights.clone(),
        bias: 0.0,
    };
    assert!(matches!(
        BundleWriter::default().to_bytes(&other, &card),
        Err(Error::WrongModelKind { .. })
    ));
}

#[test]
fn nesting_within_the_limit_loads() {
    let model = linear();
    let mut card = linear_card(&model);
    card.probe = None;
    let mut raw = vec![0x91_u8; 100];
    raw.push(0x90);
    let bundle = craft(&card, &raw, false);
    assert!(model_persistence_core::from_bytes::<Nested>(&bundle).is_ok());
}
