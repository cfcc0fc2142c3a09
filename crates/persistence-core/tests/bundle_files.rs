//! Files that are not what they claim: FIFOs, devices, directories, huge
//! files of junk; and the permissions of what is written.

mod common;

use std::time::{Duration, Instant};

use model_persistence_core::{BundleReader, BundleWriter, Error, ModelCard};

#[cfg(unix)]
#[test]
fn fifos_devices_and_directories_are_refused_before_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("model.bundle");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let reader = BundleReader::default();
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero"), dir.path()] {
        let started = Instant::now();
        let outcomes = [
            reader.load::<common::Linear>(path).err(),
            reader.read_card(path).err(),
            reader.verify(path).err(),
        ];
        for outcome in outcomes {
            match outcome {
                Some(Error::NotAFile { found, .. }) => assert!(!found.is_empty()),
                other => panic!("{}: expected NotAFile, got {other:?}", path.display()),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} took long",
            path.display()
        );
    }
}

#[test]
fn a_huge_file_of_junk_is_refused_from_its_first_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("junk.bundle");
    // 3 GiB, sparse: reading it whole would take seconds and gigabytes.
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(3 << 30).expect("sparse");
    drop(file);
    let started = Instant::now();
    match BundleReader::default().load::<common::Linear>(&path) {
        Err(Error::NotABundle { .. }) => {}
        other => panic!("expected NotABundle, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the loader read far more than the preamble: {:?}",
        started.elapsed()
    );
}

#[cfg(unix)]
#[test]
fn saving_gives_new_files_0666_minus_the_umask_and_keeps_a_replaced_files_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    let model = common::linear();
    model_persistence_core::save(&path, &model, &common::linear_card(&model)).expect("save");
    let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o044,
        0o044,
        "a new bundle is not readable by the group: {mode:o}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    model_persistence_core::save(&path, &model, &common::linear_card(&model)).expect("save again");
    let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "replacing the bundle changed its mode");
}

/// A save writes the payload first (hashed beside the write) and the head
/// before it last: the file must be exactly the bytes `to_bytes` gives, for
/// payloads below and above the size where the hashing moves to a thread.
#[test]
fn a_saved_file_is_exactly_the_encoded_bundle() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (n, level) in [(3_usize, 0_u8), (3, 6), (1_200_000, 0), (1_200_000, 1)] {
        let model = common::Dense {
            weights: (0..n).map(|i| (i as f64).sin()).collect(),
            bias: 0.5,
            ids: (0..n as u32).collect(),
            scale: ndarray::Array2::from_elem((1, n), 0.25),
        };
        let card = ModelCard::builder("dense", &model)
            .version(semver::Version::new(1, 0, 0))
            .build()
            .expect("card");
        for writer in [
            BundleWriter::default().level(level),
            BundleWriter::default().level(level).without_fsync(),
        ] {
            let path = dir.path().join(format!("dense-{n}-{level}.bundle"));
            let saved = writer.save(&path, &model, &card).expect("saves");
            let bytes = std::fs::read(&path).expect("reads");
            assert_eq!(
                bytes,
                writer.to_bytes(&model, &card).expect("encodes"),
                "n {n}, level {level}"
            );
            assert_eq!(saved.file_len(), bytes.len() as u64);
            let loaded = model_persistence_core::load::<common::Dense>(&path).expect("loads");
            assert_eq!(loaded.content_id(), saved.content_id());
            assert_eq!(loaded.model(), &model);
        }
    }
}

/// Payloads from 8 MiB are read on one thread and hashed on another: a
/// flipped byte anywhere in them, or a file cut short, is still refused
/// before the model is decoded.
#[test]
fn a_damaged_large_payload_is_refused_on_the_pipelined_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 800_000; // about 9.6 MB of payload
    let model = common::Dense {
        weights: (0..n).map(|i| i as f64).collect(),
        bias: 0.0,
        ids: (0..n as u32).collect(),
        scale: ndarray::Array2::from_elem((0, n), 1.0),
    };
    let card = ModelCard::builder("large", &model)
        .version(semver::Version::new(1, 0, 0))
        .build()
        .expect("card");
    let path = dir.path().join("large.bundle");
    let saved = BundleWriter::default()
        .level(0)
        .save(&path, &model, &card)
        .expect("saves");
    assert!(saved.raw_len() > 8 << 20, "the payload takes the pipelined path");
    assert_eq!(
        model_persistence_core::load::<common::Dense>(&path)
            .expect("loads")
            .model(),
        &model
    );
    let good = std::fs::read(&path).expect("reads");
    for at in [
        good.len() - saved.raw_len() as usize + 5,
        good.len() / 2,
        good.len() - 1,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&path, &bad).expect("writes");
        match model_persistence_core::load::<common::Dense>(&path) {
            Err(Error::ChecksumMismatch {
                section: model_persistence_core::Section::Payload,
                ..
            }) => {}
            other => panic!("a flip at {at}: expected a payload checksum mismatch, got {other:?}"),
        }
    }
    std::fs::write(&path, &good[..good.len() - 3]).expect("writes");
    assert!(matches!(
        model_persistence_core::load::<common::Dense>(&path),
        Err(Error::Truncated { section: "payload", .. })
    ));
}

/// Payloads from 256 KiB to 8 MiB are decoded while a second thread hashes
/// them: a flipped byte is still refused as a checksum mismatch (never as
/// whatever the decoder made of the damaged bytes), stored or deflated, from
/// a file or from bytes.
#[test]
fn a_damaged_mid_sized_payload_is_refused_as_a_checksum_mismatch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 60_000;
    let mut rng = model_persistence_testkit::SplitMix64::new(5);
    let model = common::Dense {
        weights: (0..n).map(|_| rng.next_normal()).collect(),
        bias: 0.5,
        ids: (0..n as u32).collect(),
        scale: ndarray::Array2::from_elem((0, n), 1.0),
    };
    let card = ModelCard::builder("mid", &model)
        .version(semver::Version::new(1, 0, 0))
        .build()
        .expect("card");
    for level in [0_u8, 1] {
        let path = dir.path().join(format!("mid-{level}.bundle"));
        BundleWriter::default()
            .level(level)
            .save(&path, &model, &card)
            .expect("saves");
        let good = std::fs::read(&path).expect("reads");
        let summary = model_persistence_core::verify(&path).expect("verifies");
        let stored = summary.payload.stored_len;
        assert!(
            (256 << 10..8 << 20).contains(&stored),
            "level {level}: {stored} bytes stored"
        );
        assert_eq!(
            model_persistence_core::load::<common::Dense>(&path)
                .expect("loads")
                .model(),
            &model
        );
        let start = good.len() - stored as usize;
        for at in [start, start + 1, start + 7, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).expect("writes");
            for result in [
                model_persistence_core::load::<common::Dense>(&path),
                model_persistence_core::from_bytes::<common::Dense>(&bad),
            ] {
                match result {
                    Err(Error::ChecksumMismatch {
                        section: model_persistence_core::Section::Payload,
                        ..
                    }) => {}
                    other => {
                        panic!("level {level}, a flip at {at}: expected a payload checksum mismatch, got {other:?}")
                    }
                }
            }
        }
        std::fs::write(&path, &good[..good.len() - 1]).expect("writes");
        assert!(matches!(
            model_persistence_core::load::<common::Dense>(&path),
            Err(Error::Truncated { section: "payload", .. })
        ));
    }
}
