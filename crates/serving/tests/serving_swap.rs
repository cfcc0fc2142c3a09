//! The server's guarantees: loads on start, counts, swaps without dropping,
//! stalling or mixing a request, refuses bad versions, detects change by
//! content id.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model_persistence_core::{BundleWriter, InputError, Model, ModelCard, Predictor, StructureError, Version};
use model_persistence_serving::{Error, ModelServer, ReloadPolicy, Source};
use model_persistence_testkit::LinearClassifier;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

/// A model whose every output is its own id, and which answers NaN if its
/// two fields ever disagree: an answer from a mixture of two versions would show.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tagged {
    id: u64,
    check: u64,
}

impl Predictor for Tagged {
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(2)
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        let v = if self.check == self.id * 7 {
            self.id as f64
        } else {
            f64::NAN
        };
        Array1::from_elem(rows.nrows(), v)
    }
}

impl Model for Tagged {
    const KIND: &'static str = "test.tagged.v1";
    fn check_structure(&self, _: usize) -> Result<(), StructureError> {
        Ok(())
    }
}

fn write_tagged(path: &Path, id: u64) {
    let model = Tagged { id, check: id * 7 };
    let card = ModelCard::builder("tagged", &model)
        .version(Version::new(1, 0, id))
        .probe(ndarray::array![[0.0, 0.0]].view())
        .created_at(time::OffsetDateTime::UNIX_EPOCH)
        .build()
        .expect("card");
    BundleWriter::default()
        .without_card_json()
        .save(path, &model, &card)
        .expect("save");
}

fn wait_for(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

#[test]
fn the_seed_server_loads_counts_picks_up_changes_and_reports_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fraud.bundle");
    write_tagged(&path, 1);
    let server =
        ModelServer::<Tagged>::start(Source::bundle(&path), ReloadPolicy::EveryRequests(5)).expect("loads on start");
    let row = ndarray::array![[0.5, 0.5]];
    for _ in 0..5 {
        assert_eq!(server.predict(row.view()).expect("predicts").outputs[0], 1.0);
    }
    let status = server.status();
    assert!(status.loaded);
    assert_eq!(status.requests_served, 5);
    assert_eq!(status.version, Version::new(1, 0, 1));
    assert_eq!(status.model_kind, "test.tagged.v1");
    write_tagged(&path, 2);
    // Every fifth request wakes the watcher; the swap happens off the request path.
    assert!(wait_for(Duration::from_secs(5), || {
        server.predict(row.view()).expect("predicts");
        server.status().version == Version::new(1, 0, 2)
    }));
    let p = server.predict(row.view()).expect("predicts");
    assert_eq!((p.outputs[0], p.version), (2.0, Version::new(1, 0, 2)));
    let status = server.status();
    assert_eq!(status.reloads, 1);
    assert!(status.requests_served > 5);
    let json = serde_json::to_value(&status).expect("status is serde");
    assert_eq!(json["version"], "1.0.2");
}

#[test]
fn start_without_a_valid_model_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = ModelServer::<Tagged>::start(Source::bundle(dir.path().join("none.bundle")), ReloadPolicy::Manual);
    assert!(matches!(
        missing,
        Err(Error::Load {
            source: model_persistence_core::Error::Io { .. },
            ..
        })
    ));
    let path = dir.path().join("wrong.bundle");
    write_tagged(&path, 1);
    let wrong = ModelServer::<LinearClassifier>::start(Source::bundle(&path), ReloadPolicy::Manual);
    assert!(matches!(
        wrong,
        Err(Error::Load {
            source: model_persistence_core::Error::WrongModelKind { .. },
            ..
        })
    ));
}

#[test]
fn a_request_of_the_wrong_width_is_refused_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    write_tagged(&path, 1);
    let server = ModelServer::<Tagged>::start(Source::bundle(&path), ReloadPolicy::Manual).expect("start");
    assert!(matches!(
        server.predict(ndarray::array![[1.0, 2.0, 3.0]].view()),
        Err(Error::Input(InputError::Width { expected: 2, found: 3 }))
    ));
    assert!(matches!(
        server.predict(ndarray::array![[1.0, f64::NAN], [0.0, 0.0]].view()),
        Err(Error::Input(InputError::NonFinite { row: 0, column: 1, .. }))
    ));
    assert!(matches!(
        server.predict(ndarray::array![[0.0, 0.0], [f64::INFINITY, 0.0]].view()),
        Err(Error::Input(InputError::NonFinite { row: 1, column: 0, .. }))
    ));
}

#[test]
fn hot_swap_under_load_never_drops_stalls_or_mixes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("live.bundle");
    write_tagged(&path, 0);
    let server = ModelServer::<Tagged>::start(Source::bundle(&path), ReloadPolicy::Interval(Duration::from_millis(1)))
        .expect("start");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (server, stop) = (server.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let row = ndarray::array![[0.0, 1.0]];
                let (mut answers, mut errors, mut last) = (0_u64, 0_u64, 0_u64);
                let mut seen = BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    match server.predict(row.view()) {
                        Ok(p) => {
                            let id = p.version.patch;
                            assert_eq!(p.outputs[0], id as f64, "answer from a mixture, or misattributed");
                            assert!(id >= last, "went back from version {last} to {id}");
                            last = id;
                            seen.insert(id);
                            answers += 1;
                        }
                        Err(_) => errors += 1,
                    }
                }
                (answers, errors, seen)
            })
        })
        .collect();
    for id in 1..=200 {
        write_tagged(&path, id);
        let live = wait_for(Duration::from_secs(5), || server.status().version.patch == id);
        assert!(live, "version {id} never went live");
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut versions_seen = BTreeSet::new();
    for r in readers {
        let (answers, errors, seen) = r.join().expect("reader thread");
        assert_eq!(errors, 0, "a request failed during a swap");
        total += answers;
        versions_seen.extend(seen);
    }
    assert_eq!(server.status().reloads, 200);
    assert!(total > 1_000, "readers answered only {total} requests");
    assert!(
        versions_seen.len() > 20,
        "readers saw only {} versions",
        versions_seen.len()
    );
}

#[test]
fn a_corrupt_or_wrong_kind_update_is_refused_and_the_next_good_one_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    write_tagged(&path, 1);
    let server = ModelServer::<Tagged>::start(Source::bundle(&path), ReloadPolicy::Manual).expect("start");
    let row = ndarray::array![[0.0, 0.0]];

    // A half-written file (a writer that does not rename atomically).
    let good = std::fs::read(&path).expect("read");
    write_tagged(&path, 2);
    let newer = std::fs::read(&path).expect("read");
    std::fs::write(&path, &newer[..newer.len() / 2]).expect("write half");
    assert!(server.reload_if_updated().is_err());
    assert_eq!(server.predict(row.view()).expect("old one answers").outputs[0], 1.0);
    // A flipped payload byte.
    let mut flipped = newer.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&path, &flipped).expect("write");
    assert!(server.reload_if_updated().is_err());
    // A bundle of another model kind.
    let other = LinearClassifier {
        weights: vec![1.0, 1.0],
        bias: 0.0,
    };
    let card = ModelCard::builder("other", &other)
        .version(Version::new(9, 0, 0))
        .build()
        .expect("card");
    model_persistence_core::save(&path, &other, &card).expect("save");
    match server.reload_if_updated() {
        Err(Error::Load {
            source: model_persistence_core::Error::WrongModelKind { .. },
            ..
        }) => {}
        other => panic!("expected a wrong-kind refusal, got {other:?}"),
    }
    let status = server.status();
    assert_eq!(status.failed_reloads, 3);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("wrong model kind")),
        "{status:?}"
    );
    assert_eq!(status.version, Version::new(1, 0, 1));
    assert_eq!(server.predict(row.view()).expect("old one answers").outputs[0], 1.0);
    // The next good update is taken.
    std::fs::write(&path, &newer).expect("write");
    assert!(server.reload_if_updated().expect("good update"));
    assert_eq!(server.predict(row.view()).expect("new one answers").outputs[0], 2.0);
    drop(good);
}

#[test]
fn the_watcher_retries_a_refused_version_and_takes_the_next_good_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    write_tagged(&path, 1);
    let server = ModelServer::<Tagged>::start(Source::bundle(&path), ReloadPolicy::Interval(Duration::from_millis(5)))
        .expect("start");
    std::fs::write(&path, b"\x89MPB\r\n\x1a\n garbage").expect("write");
    assert!(
        wait_for(Duration::from_secs(5), || server.status().failed_reloads >= 2),
        "the watcher did not retry"
    );
    assert_eq!(server.status().version.patch, 1);
    write_tagged(&path, 3);
    assert!(
        wait_for(Duration::from_secs(10), || server.status().version.patch == 3),
        "the good version was not taken"
    );
}

#[test]
fn change_is_detected_by_content_not_mtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    write_tagged(&path, 1);
    let server = ModelServer::<Tagged>::start(Source::bundle(&path), ReloadPolicy::Manual).expect("start");
    // Two rewrites within the same second are both seen: pin the file's
    // mtime to one instant, as a coarse-grained file system would.
    let instant = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
    let pin_mtime = || {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(instant))
            .expect("set mtime");
    };
    write_tagged(&path, 2);
    pin_mtime();
    assert!(server.reload_if_updated().expect("reload"));
    write_tagged(&path, 3);
    pin_mtime();
    assert!(server.reload_if_updated().expect("reload"));
    assert_eq!(server.status().version.patch, 3);
    // An identical rewrite (a new file, new mtime, same bytes) causes no reload.
    std::thread::sleep(Duration::from_millis(20));
    write_tagged(&path, 3);
    assert!(!server.reload_if_updated().expect("check"));
    assert_eq!(server.status().reloads, 2);
}

#[test]
fn rollback_serves_the_previous_version_and_stays_there() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bundle");
    write_tagged(&path, 1);
    let server = ModelServer::<Tagged>::start(Source::bundle(&path), ReloadPolicy::Manual).expect("start");
    assert!(matches!(server.rollback(), Err(Error::NothingToRollBack)));
    write_tagged(&path, 2);
    assert!(server.reload_if_updated().expect("reload"));
    assert_eq!(server.rollback().expect("rollback"), Version::new(1, 0, 1));
    // The rolled-back-from version is not reloaded just because the file still holds it.
    assert!(!server.reload_if_updated().expect("check"));
    assert_eq!(server.status().version.patch, 1);
    // A newer version is taken again.
    write_tagged(&path, 3);
    assert!(server.reload_if_updated().expect("reload"));
    assert_eq!(server.status().version.patch, 3);
}

#[test]
fn a_registry_alias_is_served_and_rolled_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = model_persistence_versioning::Registry::create(dir.path()).expect("registry");
    for id in 1..=2 {
        let model = Tagged { id, check: id * 7 };
        let card = ModelCard::builder("fraud", &model).build().expect("card");
        reg.publish_model(
            &model,
            &card,
            model_persistence_versioning::VersionSpec::Exact(Version::new(1, 0, id)),
        )
        .expect("publish");
    }
    reg.set_alias("fraud", "production", &Version::new(1, 0, 1))
        .expect("alias");
    let source = Source::registry(reg.clone(), "fraud@production").expect("source");
    let server = ModelServer::<Tagged>::start(source, ReloadPolicy::Manual).expect("start");
    assert_eq!(server.status().version.patch, 1);
    reg.set_alias("fraud", "production", &Version::new(1, 0, 2))
        .expect("alias");
    assert!(server.reload_if_updated().expect("reload"));
    assert_eq!(
        server
            .predict(ndarray::array![[0.0, 0.0]].view())
            .expect("predict")
            .outputs[0],
        2.0
    );
    assert_eq!(server.rollback_alias().expect("rollback"), Version::new(1, 0, 1));
    assert_eq!(server.status().version.patch, 1);
    assert_eq!(
        reg.alias("fraud", "production").expect("alias").map(|t| t.version),
        Some(Version::new(1, 0, 1))
    );
}

/// A model that is slow to load: its id and a few million weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Heavy {
    id: u64,
    weights: Vec<f64>,
}

impl Predictor for Heavy {
    type Output = f64;
    fn n_features(&self) -> Option<usize> {
        Some(2)
    }
    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<f64> {
        Array1::from_elem(rows.nrows(), self.id as f64)
    }
}

impl Model for Heavy {
    const KIND: &'static str = "test.heavy.v1";
    fn check_structure(&self, _: usize) -> Result<(), StructureError> {
        Ok(())
    }
}

#[test]
fn a_request_that_triggers_a_check_does_not_wait_for_the_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("heavy.bundle");
    let write = |id: u64| {
        let model = Heavy {
            id,
            weights: vec![id as f64; 3_000_000],
        };
        let card = ModelCard::builder("heavy", &model)
            .version(Version::new(1, 0, id))
            .build()
            .expect("card");
        BundleWriter::default()
            .level(0)
            .without_card_json()
            .save(&path, &model, &card)
            .expect("save");
    };
    write(1);
    let server = ModelServer::<Heavy>::start(Source::bundle(&path), ReloadPolicy::EveryRequests(1)).expect("start");
    write(2);
    // This request wakes the watcher, which must now read, hash, decode and
    // validate 24 MB: the request returns on the old version meanwhile.
    let row = ndarray::array![[0.0, 0.0]];
    let p = server.predict(row.view()).expect("predicts");
    assert_eq!(p.version.patch, 1);
    assert_eq!(server.status().version.patch, 1, "the request waited for the load");
    // The swap happens afterwards, off the request path.
    assert!(wait_for(Duration::from_secs(30), || server.status().version.patch == 2));
    assert_eq!(server.predict(row.view()).expect("predicts").outputs[0], 2.0);
}
