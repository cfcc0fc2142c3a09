//! The index answers exactly what the primary objects say: after random
//! interleavings of publish, promote, prune and listing (which compacts),
//! after its snapshot is damaged or deleted, and with the journal kept
//! short by compaction. Kills during these operations are in
//! `registry_kills.rs`, which checks the same equality after every kill.

#![allow(clippy::result_large_err)]

mod common;

use common::{backends, card, model};
use model_persistence_testkit::SplitMix64;
use model_persistence_versioning::{Bump, Registry, VersionInfo, VersionSpec};
use semver::Version;

fn versions(infos: &[VersionInfo]) -> Vec<Version> {
    infos.iter().map(|i| i.version.clone()).collect()
}

fn assert_index_matches(reg: &Registry, what: &str) {
    let indexed = reg.listing("m").expect("listing");
    let scanned = reg.listing_from_records("m").expect("scan");
    assert_eq!(
        versions(&indexed.versions),
        versions(&scanned.versions),
        "{what}: the index and the records disagree"
    );
    assert_eq!(indexed.versions, scanned.versions, "{what}: records differ");
}

#[test]
fn random_interleavings_list_what_the_records_say() {
    for (backend, reg, dir) in backends() {
        let mut rng = SplitMix64::new(7);
        let mut published = 0;
        for step in 0..160 {
            let what = format!("{backend} step {step}");
            match rng.next_u64() % 10 {
                0..=4 => {
                    let m = model(step as f64 + 1.0);
                    let metric = rng.next_f64();
                    reg.publish_model(&m, &card("m", &m, &[("f1", metric)]), VersionSpec::Bump(Bump::Patch))
                        .expect("publish");
                    published += 1;
                }
                5 | 6 => {
                    let listed = reg.versions("m").expect("versions");
                    if let Some(info) = listed.get((rng.next_u64() as usize) % listed.len().max(1)) {
                        reg.set_alias("m", "production", &info.version).expect("promote");
                    }
                }
                7 => {
                    reg.prune("m", (rng.next_u64() % 8) as usize).expect("prune");
                }
                _ => {}
            }
            assert_index_matches(&reg, &what);
        }
        assert!(published > 40, "{backend}: the walk published {published}");
        // The best by a metric and the history agree with a scan too.
        let best = reg
            .best("m", "f1", model_persistence_core::Direction::HigherIsBetter)
            .expect("best");
        let scanned = reg.listing_from_records("m").expect("scan").versions;
        let by_scan = scanned
            .iter()
            .max_by(|a, b| a.metrics["f1"].total_cmp(&b.metrics["f1"]))
            .map(|i| i.version.clone());
        assert_eq!(best.map(|b| b.version), by_scan, "{backend}: best");
        // Compaction keeps the journal short on the directory, where it can be counted.
        if let Some(dir) = dir {
            let journal = std::fs::read_dir(dir.path().join("m/index/journal"))
                .map(|it| it.count())
                .unwrap_or(0);
            assert!(journal <= 40, "{backend}: {journal} journal entries after compaction");
        }
    }
}

#[test]
fn a_damaged_or_deleted_snapshot_is_rebuilt_and_never_misleads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    for i in 0..50 {
        let m = model(f64::from(i) + 1.0);
        reg.publish_model(&m, &card("m", &m, &[("f1", 0.5)]), VersionSpec::Bump(Bump::Patch))
            .expect("publish");
        reg.versions("m").expect("listing");
    }
    let snapshot = dir.path().join("m/index/snapshot.json");
    assert!(snapshot.is_file(), "listing wrote the snapshot");

    // A snapshot that parses but lies (a version removed by hand) fails its
    // checksum: the listing falls back to the records.
    let text = std::fs::read_to_string(&snapshot).expect("read");
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
    value["versions"].as_array_mut().expect("versions").remove(3);
    std::fs::write(&snapshot, value.to_string()).expect("tamper");
    assert_index_matches(&reg, "tampered");
    assert_eq!(reg.versions("m").expect("list").len(), 50);

    // Garbage: a listing reads the records (and heals the snapshot);
    // `repair` rebuilds it and says so.
    std::fs::write(&snapshot, b"\x00\x01 not json").expect("damage");
    assert_index_matches(&reg, "garbage");
    std::fs::write(&snapshot, b"\x00\x01 not json").expect("damage");
    let report = reg.repair("m").expect("repair");
    assert!(
        report.actions.iter().any(|a| a.contains("index")),
        "repair says it rebuilt the index: {report:?}"
    );
    assert_index_matches(&reg, "repaired");
    std::fs::remove_file(&snapshot).expect("delete");
    assert_index_matches(&reg, "deleted");
    assert!(snapshot.is_file(), "the next listing rebuilt it");
    std::fs::remove_dir_all(dir.path().join("m/index")).expect("delete the index");
    assert_index_matches(&reg, "index folder deleted");
}

#[test]
fn a_stale_snapshot_is_corrected_by_the_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    for i in 0..5 {
        let m = model(f64::from(i) + 1.0);
        reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Bump(Bump::Minor))
            .expect("publish");
    }
    reg.versions("m").expect("listing writes the snapshot");
    let snapshot = dir.path().join("m/index/snapshot.json");
    let old = std::fs::read(&snapshot).expect("snapshot");
    // Prune two and publish one more, then put the old snapshot back: the
    // journal still names every version that changed.
    reg.prune("m", 3).expect("prune");
    let m = model(9.0);
    reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Bump(Bump::Minor))
        .expect("publish");
    std::fs::write(&snapshot, old).expect("restore the stale snapshot");
    assert_index_matches(&reg, "stale snapshot");
    assert_eq!(
        versions(&reg.versions("m").expect("list")),
        ["1.2.0", "1.3.0", "1.4.0", "1.5.0"].map(|v| Version::parse(v).expect("semver"))
    );
}
