//! Damage stays where it is: one unreadable record, event or card never
//! hides the rest of a model, and `verify` names every damaged object.

mod common;

use common::{card, model, Linear};
use model_persistence_versioning::{Bump, Error, EventKind, Registry, VersionSpec};
use semver::Version;

fn registry_with_three_versions() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    for i in 0..3 {
        let m = model(f64::from(i) + 1.0);
        reg.publish_model(&m, &card("m", &m, &[("f1", 0.5)]), VersionSpec::Bump(Bump::Minor))
            .expect("publish");
    }
    reg.set_alias("m", "production", &Version::new(1, 0, 0)).expect("alias");
    reg.set_alias("m", "production", &Version::new(1, 2, 0)).expect("alias");
    (dir, reg)
}

#[test]
fn an_unreadable_version_record_hides_only_itself() {
    let (dir, reg) = registry_with_three_versions();
    std::fs::write(dir.path().join("m/versions/1.1.0/version.json"), b"{not json").expect("damage");
    let listed: Vec<Version> = reg
        .versions("m")
        .expect("listing works")
        .into_iter()
        .map(|i| i.version)
        .collect();
    assert_eq!(listed, [Version::new(1, 0, 0), Version::new(1, 2, 0)]);
    let listing = reg.listing("m").expect("listing");
    assert_eq!(listing.damaged.len(), 1);
    assert_eq!(listing.damaged[0].version, Version::new(1, 1, 0));
    assert!(
        reg.card("m", &Version::new(1, 2, 0)).is_ok(),
        "show of another version works"
    );
    let report = reg.verify("m").expect("verify runs");
    assert_eq!(report.checked, 2);
    assert_eq!(report.damaged.len(), 1);
    assert!(
        report.damaged[0].key.ends_with("1.1.0/version.json"),
        "{:?}",
        report.damaged[0]
    );
    // repair rebuilds the record from the verified bundle.
    let repaired = reg.repair("m").expect("repair");
    assert_eq!(repaired.actions.len(), 1, "{repaired:?}");
    assert!(reg.verify("m").expect("verify").damaged.is_empty());
    assert_eq!(reg.versions("m").expect("list").len(), 3);
}

#[test]
fn an_unreadable_event_breaks_neither_history_nor_rollback() {
    let (dir, reg) = registry_with_three_versions();
    std::fs::create_dir_all(dir.path().join("m/events")).expect("events folder");
    std::fs::write(
        dir.path().join("m/events/00000000000000000001-bad.json"),
        b"\xff\xfe garbage",
    )
    .expect("damage");
    let history = reg.history("m").expect("history works");
    assert_eq!(history.len(), 5, "{history:?}"); // three publications, two moves
    assert_eq!(
        reg.rollback("m", "production").expect("rollback works").version,
        Version::new(1, 0, 0)
    );
    let report = reg.verify("m").expect("verify");
    assert_eq!(report.damaged.len(), 1);
    assert!(report.damaged[0].key.contains("events/"), "{:?}", report.damaged[0]);
    let repaired = reg.repair("m").expect("repair");
    assert!(repaired.actions.iter().any(|a| a.contains("aside")), "{repaired:?}");
    assert!(reg.verify("m").expect("verify").damaged.is_empty());
}

#[test]
fn verify_checks_the_card_beside_the_bundle_and_the_attachments() {
    let (dir, reg) = registry_with_three_versions();
    reg.attach(
        "m",
        &Version::new(1, 0, 0),
        "gate_report",
        &serde_json::json!({"ok": true}),
    )
    .expect("attach");
    let card_path = dir.path().join("m/versions/1.2.0/card.json");
    let edited = std::fs::read_to_string(&card_path)
        .expect("card")
        .replace("\"f1\": 0.5", "\"f1\": 0.99");
    std::fs::write(&card_path, edited).expect("edit");
    std::fs::write(dir.path().join("m/versions/1.0.0/attachments/gate_report.json"), b"{").expect("damage");
    let report = reg.verify("m").expect("verify");
    let keys: Vec<&str> = report.damaged.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("1.2.0/card.json")), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("gate_report.json")), "{keys:?}");
}

#[test]
fn an_alias_to_a_missing_version_is_reported() {
    let (dir, reg) = registry_with_three_versions();
    std::fs::remove_file(dir.path().join("m/versions/1.2.0/version.json")).expect("remove");
    let report = reg.verify("m").expect("verify");
    assert!(
        report
            .damaged
            .iter()
            .any(|d| matches!(d.error, model_persistence_versioning::Error::DanglingAlias { .. })),
        "{report:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_planted_in_the_registry_is_refused_without_hanging() {
    let (dir, reg) = registry_with_three_versions();
    let record = dir.path().join("m/versions/1.1.0/version.json");
    std::fs::remove_file(&record).expect("remove");
    let made = std::process::Command::new("mkfifo")
        .arg(&record)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Neither listing nor verifying blocks on the FIFO.
    let listed = reg.listing("m").expect("listing works");
    assert_eq!(listed.versions.len(), 2);
    assert_eq!(listed.damaged.len(), 1);
    assert_eq!(reg.verify("m").expect("verify works").damaged.len(), 1);
    assert!(reg.load::<Linear>(&"m@1.2.0".parse().expect("ref")).is_ok());
}

#[cfg(unix)]
#[test]
fn registry_files_are_readable_by_the_group_under_a_usual_umask() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _reg) = registry_with_three_versions();
    // The test process's umask is the usual 022 or 002: group and others keep read.
    for rel in [
        "m/versions/1.0.0/model.bundle",
        "m/versions/1.0.0/version.json",
        "m/aliases/production",
    ] {
        let mode = std::fs::metadata(dir.path().join(rel))
            .expect("file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode & 0o044, 0o044, "{rel}: {mode:o}");
    }
}

/// The log of an alias's moves lives in the alias object: with that object
/// damaged, `history` says the alias's history is unreadable instead of
/// answering with the publications alone.
#[test]
fn a_damaged_alias_makes_history_an_error_not_a_shorter_history() {
    let (dir, reg) = registry_with_three_versions();
    let aliases = dir.path().join("m/aliases");
    let object = std::fs::read_dir(&aliases)
        .expect("aliases folder")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("production"))
        })
        .expect("the production alias object");
    std::fs::write(&object, b"garbage").expect("damage");
    let refused = reg.history("m");
    match &refused {
        Err(Error::AliasHistoryUnreadable { model, alias, .. }) => {
            assert_eq!((model.as_str(), alias.as_str()), ("m", "production"));
        }
        other => panic!("expected AliasHistoryUnreadable, got {other:?}"),
    }
    let message = refused.expect_err("refused").to_string();
    assert!(
        message.contains("m@production") && message.contains("unreadable"),
        "{message}"
    );
}

/// `repair` rewrites a garbage `card.json` from the card inside the
/// version's verified bundle, and `verify` is clean afterwards.
#[test]
fn repair_rebuilds_a_garbage_card_json_from_the_bundle() {
    let (dir, reg) = registry_with_three_versions();
    let card_path = dir.path().join("m/versions/1.1.0/card.json");
    let before = std::fs::read(&card_path).expect("card");
    std::fs::write(&card_path, b"garbage").expect("damage");
    let damaged = reg.verify("m").expect("verify").damaged;
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert!(damaged[0].key.ends_with("1.1.0/card.json"), "{damaged:?}");
    let repaired = reg.repair("m").expect("repair");
    assert!(
        repaired
            .actions
            .iter()
            .any(|a| a.contains("1.1.0") && a.contains("card.json")),
        "{repaired:?}"
    );
    assert!(reg.verify("m").expect("verify").damaged.is_empty());
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&card_path).expect("card")).expect("JSON");
    let before: serde_json::Value = serde_json::from_slice(&before).expect("JSON");
    assert_eq!(after, before, "the card written is the bundle's");
    assert_eq!(
        reg.card("m", &Version::new(1, 1, 0)).expect("card").version,
        Version::new(1, 1, 0)
    );
}

/// Sparse files far over their caps: every read is refused from the file's
/// length, before a byte is read, as a typed error for that object. An 8 GiB
/// marker makes opening fail; a 2 GiB alias object makes that alias (and
/// the history) an error while the listing works; a 2 GiB index snapshot
/// is passed over for the records, and `repair` replaces it.
#[test]
fn objects_over_their_caps_are_typed_errors_read_from_their_length() {
    use model_persistence_versioning::{StorageError, MAX_ALIAS_BYTES, MAX_MARKER_BYTES};
    let sparse = |path: &std::path::Path, len: u64| {
        let _ = std::fs::remove_file(path);
        std::fs::File::create(path)
            .expect("create")
            .set_len(len)
            .expect("sparse");
    };
    let (dir, reg) = registry_with_three_versions();
    reg.versions("m").expect("an index snapshot is written");

    let alias = dir.path().join("m/aliases/production");
    sparse(&alias, 2 << 30);
    match reg.alias("m", "production") {
        Err(Error::Storage {
            source: StorageError::TooLarge { size, cap },
            ..
        }) => assert_eq!((size, cap), (2 << 30, MAX_ALIAS_BYTES)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(reg.history("m"), Err(Error::AliasHistoryUnreadable { .. })));
    assert_eq!(reg.versions("m").expect("listing works").len(), 3);

    let snapshot = dir.path().join("m/index/snapshot.json");
    assert!(snapshot.is_file(), "the index writes its snapshot there");
    sparse(&snapshot, 2 << 30);
    assert_eq!(reg.versions("m").expect("listing from the records").len(), 3);
    let repaired = reg.repair("m").expect("repair");
    assert!(repaired.actions.iter().any(|a| a.contains("index")), "{repaired:?}");
    assert!(std::fs::metadata(&snapshot).expect("rebuilt").len() < 1 << 20);

    let marker = dir.path().join(".registry.json");
    sparse(&marker, 8 << 30);
    match Registry::open(dir.path()) {
        Err(Error::Storage {
            source: StorageError::TooLarge { cap, .. },
            ..
        }) => assert_eq!(cap, MAX_MARKER_BYTES),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// An alias moved 2,600 times: its object stays bounded (the older moves
/// go to immutable segments the object names), while `history` still has
/// every move in order, `alias_at` answers for the first minute, and
/// rollbacks walk back through the archived moves.
#[test]
fn the_move_log_of_a_busy_alias_stays_bounded_and_complete() {
    use model_persistence_versioning::MAX_OBJECT_BYTES;
    let (dir, reg) = registry_with_three_versions();
    let start = time::OffsetDateTime::now_utc();
    let versions = [Version::new(1, 0, 0), Version::new(1, 1, 0), Version::new(1, 2, 0)];
    // The fixture made two moves (1.0.0, then 1.2.0).
    let moves = 2_600;
    for i in 0..moves {
        reg.set_alias("m", "staging", &versions[i % 3]).expect("move");
    }
    let object = std::fs::metadata(dir.path().join("m/aliases/staging"))
        .expect("alias object")
        .len();
    assert!(object < 512 << 10, "the alias object grew to {object} bytes");
    let segments: Vec<_> = std::fs::read_dir(dir.path().join("m/alias-log/staging"))
        .expect("segments")
        .collect();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    for s in &segments {
        assert!(s.as_ref().expect("entry").metadata().expect("meta").len() < MAX_OBJECT_BYTES);
    }
    let history = reg.history("m").expect("history");
    let staged: Vec<String> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AliasMoved { alias, to, .. } if alias.as_str() == "staging" => Some(to.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(staged.len(), moves, "every move is in the history");
    assert!(
        staged
            .iter()
            .enumerate()
            .all(|(i, v)| *v == versions[i % 3].to_string()),
        "in order"
    );
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(
        reg.alias_at("m", "staging", start).expect("alias_at"),
        None,
        "before the first move"
    );
    let first = history
        .iter()
        .find(|e| matches!(&e.kind, EventKind::AliasMoved { alias, .. } if alias.as_str() == "staging"))
        .expect("first move");
    assert_eq!(
        reg.alias_at("m", "staging", first.at).expect("alias_at"),
        Some(versions[0].clone())
    );
    // The last move went to versions[(moves - 1) % 3]; rollbacks undo moves
    // one by one, back into the archived segments.
    for back in 1..=5 {
        let target = reg.rollback("m", "staging").expect("rollback");
        assert_eq!(target.version, versions[(moves - 1 - back) % 3], "rollback {back}");
    }
}

/// A directory or a FIFO planted at the index snapshot or at a claim hides
/// nothing and blocks nothing: listing and verify work, and `repair`
/// replaces the snapshot with a sound one.
#[cfg(unix)]
#[test]
fn a_directory_or_fifo_at_a_snapshot_or_claim_blocks_nothing() {
    let (dir, reg) = registry_with_three_versions();
    reg.versions("m").expect("an index snapshot is written");
    let snapshot = dir.path().join("m/index/snapshot.json");
    let claim = dir.path().join("m/versions/1.1.0/claim.json");
    for fifo in [false, true] {
        for path in [&snapshot, &claim] {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_dir_all(path);
            if fifo {
                let made = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
                assert!(made.success());
            } else {
                std::fs::create_dir_all(path.join("inside")).expect("planted directory");
            }
        }
        assert_eq!(reg.versions("m").expect("listing").len(), 3, "fifo: {fifo}");
        assert!(reg.verify("m").expect("verify").damaged.is_empty(), "fifo: {fifo}");
        reg.repair("m").expect("repair");
        assert!(
            std::fs::metadata(&snapshot).expect("snapshot").is_file(),
            "fifo: {fifo}"
        );
        assert_eq!(reg.versions("m").expect("listing").len(), 3);
    }
}
