//! The same behaviour on every backend: local directory, in-memory, S3.

mod common;

use common::{backends, card, model, Linear};
use model_persistence_core::Version;
use model_persistence_versioning::{Bump, Direction, Error, EventKind, ModelRef, VersionSpec};

fn v(s: &str) -> Version {
    Version::parse(s).expect("version")
}

#[test]
fn publish_list_card_load_on_every_backend() {
    for (backend, reg, _dir) in backends() {
        let m = model(1.0);
        let info = reg
            .publish_model(
                &m,
                &card("fraud", &m, &[("accuracy", 0.9)]),
                VersionSpec::Exact(v("1.0.0")),
            )
            .expect(backend);
        assert_eq!(info.version, v("1.0.0"), "{backend}");
        for (i, bump) in [Bump::Patch, Bump::Minor, Bump::Major].into_iter().enumerate() {
            let m = model(2.0 + i as f64);
            reg.publish_model(&m, &card("fraud", &m, &[("accuracy", 0.91)]), VersionSpec::Bump(bump))
                .expect(backend);
        }
        let versions: Vec<Version> = reg
            .versions("fraud")
            .expect(backend)
            .into_iter()
            .map(|i| i.version)
            .collect();
        assert_eq!(versions, [v("1.0.0"), v("1.0.1"), v("1.1.0"), v("2.0.0")], "{backend}");
        assert_eq!(reg.models().expect(backend), ["fraud"], "{backend}");
        let card = reg.card("fraud", &v("1.1.0")).expect(backend);
        assert_eq!(card.version, v("1.1.0"), "{backend}");
        let loaded = reg.load::<Linear>(&"fraud@1.0.0".parse().expect("ref")).expect(backend);
        assert_eq!(loaded.model(), &model(1.0), "{backend}");
        let latest = reg.load::<Linear>(&"fraud".parse().expect("ref")).expect(backend);
        assert_eq!(latest.card().version, v("2.0.0"), "{backend}");
    }
}

#[test]
fn an_existing_version_is_never_overwritten() {
    for (backend, reg, _dir) in backends() {
        let (a, b) = (model(1.0), model(9.0));
        reg.publish_model(&a, &card("m", &a, &[]), VersionSpec::Exact(v("1.0.0")))
            .expect(backend);
        match reg.publish_model(&b, &card("m", &b, &[]), VersionSpec::Exact(v("1.0.0"))) {
            Err(Error::VersionExists { version, .. }) => assert_eq!(version, v("1.0.0")),
            other => panic!("{backend}: expected VersionExists, got {other:?}"),
        }
        let loaded = reg.load::<Linear>(&"m@1.0.0".parse().expect("ref")).expect(backend);
        assert_eq!(loaded.model(), &a, "{backend}: the first version was overwritten");
    }
}

#[test]
fn aliases_move_by_compare_and_swap_and_roll_back() {
    for (backend, reg, _dir) in backends() {
        for i in 1..=3 {
            let m = model(f64::from(i));
            reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Bump(Bump::Minor))
                .expect(backend);
        }
        let (v1, v2, v3) = (v("1.0.0"), v("1.1.0"), v("1.2.0"));
        reg.set_alias_if("m", "production", &v1, None).expect(backend);
        let before_v2 = time::OffsetDateTime::now_utc();
        std::thread::sleep(std::time::Duration::from_millis(20));
        reg.set_alias("m", "production", &v2).expect(backend);
        match reg.set_alias_if("m", "production", &v3, Some(&v1)) {
            Err(Error::AliasConflict { expected, found, .. }) => {
                assert_eq!(expected, Some(v1.clone()));
                assert_eq!(found, Some(v2.clone()));
            }
            other => panic!("{backend}: expected a conflict, got {other:?}"),
        }
        reg.set_alias_if("m", "production", &v3, Some(&v2)).expect(backend);
        assert_eq!(
            reg.alias("m", "production").expect(backend).map(|t| t.version),
            Some(v3.clone())
        );
        assert_eq!(reg.rollback("m", "production").expect(backend).version, v2, "{backend}");
        assert_eq!(reg.rollback("m", "production").expect(backend).version, v1, "{backend}");
        assert!(
            matches!(reg.rollback("m", "production"), Err(Error::NothingToRollBack { .. })),
            "{backend}"
        );
        assert_eq!(
            reg.alias_at("m", "production", before_v2).expect(backend),
            Some(v1.clone()),
            "{backend}"
        );
        let resolved = reg
            .resolve(&"m@production".parse::<ModelRef>().expect("ref"))
            .expect(backend);
        assert_eq!(resolved.version, v1, "{backend}");
        let kinds: Vec<&str> = reg
            .history("m")
            .expect(backend)
            .iter()
            .map(|e| match e.kind {
                EventKind::Published { .. } => "published",
                EventKind::AliasMoved { .. } => "moved",
                EventKind::RolledBack { .. } => "rolled_back",
                EventKind::Pruned { .. } => "pruned",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "published",
                "published",
                "published",
                "moved",
                "moved",
                "moved",
                "rolled_back",
                "rolled_back"
            ],
            "{backend}"
        );
        assert!(matches!(
            reg.set_alias("m", "production", &v("9.9.9")),
            Err(Error::VersionNotFound { .. })
        ));
    }
}

#[test]
fn the_seed_scenario_compare_and_best() {
    for (backend, reg, _dir) in backends() {
        for (i, (acc, f1)) in [(0.90, 0.80), (0.95, 0.93), (0.93, 0.88)].into_iter().enumerate() {
            let m = model(i as f64 + 1.0);
            let c = card("fraud_detector", &m, &[("accuracy", acc), ("f1_score", f1)]);
            reg.publish_model(&m, &c, VersionSpec::Exact(Version::new(1 + i as u64, 0, 0)))
                .expect(backend);
        }
        let m = model(7.0);
        reg.publish_model(
            &m,
            &card("fraud_detector", &m, &[("accuracy", 0.99)]),
            VersionSpec::Exact(v("4.0.0")),
        )
        .expect(backend);
        let cmp = reg
            .compare("fraud_detector", &v("1.0.0"), &v("2.0.0"), "accuracy")
            .expect(backend);
        assert!((cmp.absolute - 0.05).abs() < 1e-12, "{backend}: {cmp:?}");
        assert!((cmp.relative.expect("nonzero") - 0.05 / 0.90).abs() < 1e-12);
        let all = reg
            .compare_all("fraud_detector", &v("1.0.0"), &v("2.0.0"))
            .expect(backend);
        assert_eq!(
            all.iter().map(|c| c.metric.as_str()).collect::<Vec<_>>(),
            ["accuracy", "f1_score"]
        );
        // 4.0.0 has no F1: skipped, not counted as 0 (and not as best either).
        let best = reg
            .best("fraud_detector", "f1_score", Direction::HigherIsBetter)
            .expect(backend);
        assert_eq!(best.map(|b| b.version), Some(v("2.0.0")), "{backend}");
        let worst = reg
            .best("fraud_detector", "f1_score", Direction::LowerIsBetter)
            .expect(backend);
        assert_eq!(worst.map(|b| b.version), Some(v("1.0.0")), "{backend}");
        assert!(matches!(
            reg.compare("fraud_detector", &v("1.0.0"), &v("4.0.0"), "f1_score"),
            Err(Error::MetricMissing { .. })
        ));
    }
}

#[test]
fn prune_keeps_the_last_versions_and_alias_targets() {
    for (backend, reg, _dir) in backends() {
        for i in 0..6 {
            let m = model(f64::from(i));
            reg.publish_model(&m, &card("p", &m, &[]), VersionSpec::Bump(Bump::Patch))
                .expect(backend);
        }
        reg.set_alias("p", "production", &v("1.0.1")).expect(backend);
        let pruned = reg.prune("p", 2).expect(backend);
        assert_eq!(pruned, [v("1.0.0"), v("1.0.2"), v("1.0.3")], "{backend}");
        let left: Vec<Version> = reg
            .versions("p")
            .expect(backend)
            .into_iter()
            .map(|i| i.version)
            .collect();
        assert_eq!(left, [v("1.0.1"), v("1.0.4"), v("1.0.5")], "{backend}");
        assert!(
            reg.load::<Linear>(&"p@production".parse().expect("ref")).is_ok(),
            "{backend}"
        );
    }
}

#[test]
fn verify_reports_damaged_bundles() {
    for (backend, reg, _dir) in backends() {
        for i in 0..3 {
            let m = model(f64::from(i));
            reg.publish_model(&m, &card("d", &m, &[]), VersionSpec::Bump(Bump::Patch))
                .expect(backend);
        }
        let key = "d/versions/1.0.1/model.bundle";
        let (mut bytes, _) = reg.storage().get(key).expect(backend).expect("stored");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        reg.storage().delete(key).expect(backend);
        reg.storage().put_if_absent(key, &bytes).expect(backend);
        let report = reg.verify_all().expect(backend);
        assert_eq!(report.checked, 3, "{backend}");
        assert_eq!(report.damaged.len(), 1, "{backend}");
        assert_eq!(report.damaged[0].version, Some(v("1.0.1")));
        // A damaged version can never become an alias target.
        assert!(matches!(
            reg.set_alias("d", "production", &v("1.0.1")),
            Err(Error::Bundle { .. })
        ));
    }
}

#[test]
fn hostile_names_are_refused() {
    for (backend, reg, _dir) in backends() {
        for name in ["../escape", "a/b", "", "/abs", ".hidden"] {
            assert!(
                matches!(reg.versions(name), Err(Error::InvalidName { .. })),
                "{backend}: {name:?}"
            );
            let m = model(1.0);
            let mut c = card("ok", &m, &[]);
            c.name = name.to_owned();
            assert!(
                matches!(
                    reg.publish_model(&m, &c, VersionSpec::Bump(Bump::Patch)),
                    Err(Error::InvalidName { .. })
                ),
                "{backend}: {name:?}"
            );
            assert!(
                matches!(reg.alias("ok", name), Err(Error::InvalidName { .. })),
                "{backend}: {name:?}"
            );
        }
    }
}

#[test]
fn concurrent_compare_and_swap_has_exactly_one_winner_per_round() {
    for (backend, reg, _dir) in backends() {
        for i in 0..5 {
            let m = model(f64::from(i));
            reg.publish_model(&m, &card("c", &m, &[]), VersionSpec::Bump(Bump::Patch))
                .expect(backend);
        }
        let versions: Vec<Version> = reg
            .versions("c")
            .expect(backend)
            .into_iter()
            .map(|i| i.version)
            .collect();
        reg.set_alias("c", "champion", &versions[0]).expect(backend);
        for round in 0..5 {
            let current = reg.alias("c", "champion").expect(backend).expect("set").version;
            // Every contender moves it somewhere else than where it is.
            let others: Vec<Version> = versions.iter().filter(|x| **x != current).cloned().collect();
            let wins: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|t| {
                        let reg = reg.clone();
                        let (current, target) = (current.clone(), others[t].clone());
                        s.spawn(move || reg.set_alias_if("c", "champion", &target, Some(&current)).is_ok())
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| usize::from(h.join().expect("thread")))
                    .sum()
            });
            assert_eq!(wins, 1, "{backend}: round {round} had {wins} winners");
        }
    }
}

#[test]
fn a_valid_bundle_swapped_in_behind_the_registry_is_refused() {
    for (backend, reg, _dir) in backends() {
        let (a, b) = (model(1.0), model(2.0));
        reg.publish_model(&a, &card("s", &a, &[]), VersionSpec::Exact(v("1.0.0")))
            .expect(backend);
        // Someone with write access to the storage replaces the bundle with
        // another, internally valid one: the recorded content id catches it.
        let mut other = card("s", &b, &[]);
        other.version = v("1.0.0");
        let forged = model_persistence_core::to_bytes(&b, &other).expect("encodes");
        let key = "s/versions/1.0.0/model.bundle";
        reg.storage().delete(key).expect(backend);
        reg.storage().put_if_absent(key, &forged).expect(backend);
        match reg.load::<Linear>(&"s@1.0.0".parse().expect("ref")) {
            Err(Error::ContentIdMismatch { expected, found, .. }) => assert_ne!(expected, found, "{backend}"),
            other => panic!("{backend}: expected a content id mismatch, got {other:?}"),
        }
        assert_eq!(reg.verify("s").expect(backend).damaged.len(), 1, "{backend}");
    }
}

#[test]
fn user_names_never_collide_with_the_registrys_own_objects() {
    for (backend, reg, _dir) in backends() {
        let m = model(1.0);
        reg.publish_model(&m, &card("m.lock", &m, &[]), VersionSpec::Exact(v("1.0.0")))
            .expect(backend);
        assert_eq!(reg.models().expect(backend), ["m.lock"], "{backend}");
        reg.set_alias("m.lock", "production.lock", &v("1.0.0")).expect(backend);
        reg.set_alias("m.lock", "production", &v("1.0.0")).expect(backend);
        let aliases: Vec<String> = reg
            .aliases("m.lock")
            .expect(backend)
            .into_keys()
            .map(String::from)
            .collect();
        assert_eq!(aliases, ["production", "production.lock"], "{backend}");
        assert_eq!(reg.versions("m.lock").expect(backend).len(), 1, "{backend}");
    }
}

#[test]
fn attachments_are_immutable_and_any_valid_name_is_stored() {
    for (backend, reg, _dir) in backends() {
        let m = model(1.0);
        reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Exact(v("1.0.0")))
            .expect(backend);
        let first = serde_json::json!({"verdict": "pass"});
        for name in ["gate_report", "version", "card"] {
            reg.attach("m", &v("1.0.0"), name, &first).expect(backend);
            assert_eq!(
                reg.attachment("m", &v("1.0.0"), name).expect(backend),
                Some(first.clone()),
                "{backend}: {name}"
            );
        }
        match reg.attach("m", &v("1.0.0"), "gate_report", &serde_json::json!({"verdict": "fail"})) {
            Err(Error::AttachmentExists { name, .. }) => assert_eq!(name, "gate_report"),
            other => panic!("{backend}: expected AttachmentExists, got {other:?}"),
        }
        assert_eq!(
            reg.attachment("m", &v("1.0.0"), "gate_report").expect(backend),
            Some(first.clone()),
            "{backend}: the first attachment was replaced"
        );
        let names: Vec<String> = reg
            .attachments("m", &v("1.0.0"))
            .expect(backend)
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(names, ["card", "gate_report", "version"], "{backend}");
        // The version's own records are untouched by attachments named like them.
        assert_eq!(reg.version("m", &v("1.0.0")).expect(backend).version, v("1.0.0"));
        assert_eq!(reg.card("m", &v("1.0.0")).expect(backend).name, "m");
    }
}

#[test]
fn the_history_says_who_moved_an_alias() {
    for (backend, reg, _dir) in backends() {
        let m = model(1.0);
        for s in ["1.0.0", "1.1.0"] {
            reg.publish_model(&m, &card("fraud", &m, &[("f1", 0.8)]), VersionSpec::Exact(v(s)))
                .expect(backend);
        }
        let alice = reg.clone().actor("alice@ops");
        let bob = reg.clone().actor("bob@ci");
        alice.set_alias("fraud", "production", &v("1.0.0")).expect(backend);
        bob.set_alias("fraud", "production", &v("1.1.0")).expect(backend);
        alice.rollback("fraud", "production").expect(backend);
        let moves: Vec<(String, Option<String>)> = reg
            .history("fraud")
            .expect(backend)
            .into_iter()
            .filter(|e| !matches!(e.kind, EventKind::Published { .. }) || e.by.is_some())
            .map(|e| (e.kind.to_string(), e.by))
            .collect();
        assert_eq!(
            moves,
            [
                ("production: (new) -> 1.0.0".to_owned(), Some("alice@ops".to_owned())),
                ("production: 1.0.0 -> 1.1.0".to_owned(), Some("bob@ci".to_owned())),
                (
                    "production: rolled back 1.1.0 -> 1.0.0".to_owned(),
                    Some("alice@ops".to_owned())
                ),
            ],
            "{backend}"
        );
    }
}

/// Operators who roll back at once, each having seen production at the same
/// version, roll it back once with `rollback_if`: one wins, the others get
/// a conflict naming where the alias is now, and the history holds one
/// rollback, not a chain of them.
#[test]
fn concurrent_conditional_rollbacks_roll_back_once() {
    for (backend, reg, _dir) in backends() {
        let mut versions = Vec::new();
        for i in 1..=4 {
            let m = model(f64::from(i));
            let info = reg
                .publish_model(&m, &card("m", &m, &[]), VersionSpec::Exact(v(&format!("1.0.{i}"))))
                .expect(backend);
            reg.set_alias("m", "production", &info.version).expect(backend);
            versions.push(info.version);
        }
        let seen = versions[3].clone();
        let barrier = std::sync::Barrier::new(4);
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        reg.rollback_if("m", "production", &seen).map_err(Box::new)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().expect("no panic")).collect()
        });
        let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{backend}: {outcomes:?}");
        assert_eq!(won[0].version, versions[2], "{backend}");
        for lost in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            match &**lost {
                Error::AliasConflict { expected, found, .. } => {
                    assert_eq!(expected.as_ref(), Some(&seen), "{backend}");
                    assert_eq!(found.as_ref(), Some(&versions[2]), "{backend}");
                }
                other => panic!("{backend}: expected a conflict, got {other:?}"),
            }
        }
        assert_eq!(
            reg.alias("m", "production").expect(backend).map(|t| t.version),
            Some(versions[2].clone()),
            "{backend}"
        );
        let rollbacks = reg
            .history("m")
            .expect(backend)
            .iter()
            .filter(|e| matches!(e.kind, EventKind::RolledBack { .. }))
            .count();
        assert_eq!(rollbacks, 1, "{backend}");
        // Without the condition, a rollback applies to the state it reads.
        assert_eq!(
            reg.rollback("m", "production").expect(backend).version,
            versions[1],
            "{backend}"
        );
    }
}
