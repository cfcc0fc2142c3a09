//! The storage conformance suite: what every [`Storage`] must do for the
//! registry's guarantees to hold, runnable against any backend.
//!
//! Enable the `conformance` feature and call [`run`] from a test of your
//! backend, with an empty store (or a fresh prefix of a shared one). It
//! panics with the name of the first broken rule, like any test assertion.
//!
//! ```
//! # #[cfg(feature = "conformance")] {
//! use model_persistence_versioning::{storage::conformance, LocalDir};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! conformance::run(&LocalDir::create(dir.path()).expect("store"));
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Storage, Written};

/// Runs every rule against `store`.
///
/// # Panics
///
/// On the first rule the store breaks, naming it.
pub fn run(store: &dyn Storage) {
    absent_objects_read_as_none(store);
    create_if_absent_never_overwrites(store);
    compare_and_swap_needs_the_current_version(store);
    a_version_the_store_did_not_make_matches_nothing(store);
    listing_is_one_level_and_sorted(store);
    delete_is_idempotent(store);
    racing_creates_have_one_winner(store);
    racing_swaps_have_one_winner_per_round(store);
}

fn must<T, E: std::fmt::Debug>(rule: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{rule}: storage error {e:?}"),
    }
}

/// `get` of a key never written is `None`, not an error.
pub fn absent_objects_read_as_none(store: &dyn Storage) {
    let rule = "absent objects read as None";
    assert!(must(rule, store.get("conformance/absent/x")).is_none(), "{rule}");
}

/// `put_if_absent` writes once; a second write is refused and the first
/// bytes stay.
pub fn create_if_absent_never_overwrites(store: &dyn Storage) {
    let rule = "create-if-absent never overwrites";
    let key = "conformance/create/x";
    assert_eq!(must(rule, store.put_if_absent(key, b"first")), Written::Done, "{rule}");
    assert_eq!(
        must(rule, store.put_if_absent(key, b"second")),
        Written::PreconditionFailed,
        "{rule}"
    );
    let (bytes, _) = must(rule, store.get(key)).unwrap_or_else(|| panic!("{rule}: the object vanished"));
    assert_eq!(bytes, b"first", "{rule}: the first bytes were overwritten");
}

/// `put_if_version` succeeds only against the object's current version
/// (or its absence, for `None`).
pub fn compare_and_swap_needs_the_current_version(store: &dyn Storage) {
    let rule = "compare-and-swap needs the current version";
    let key = "conformance/cas/x";
    assert_eq!(
        must(rule, store.put_if_version(key, b"a", None)),
        Written::Done,
        "{rule}"
    );
    assert_eq!(
        must(rule, store.put_if_version(key, b"b", None)),
        Written::PreconditionFailed,
        "{rule}: created over an existing object"
    );
    let (_, v1) = must(rule, store.get(key)).unwrap_or_else(|| panic!("{rule}: missing"));
    assert_eq!(
        must(rule, store.put_if_version(key, b"b", Some(&v1))),
        Written::Done,
        "{rule}"
    );
    assert_eq!(
        must(rule, store.put_if_version(key, b"c", Some(&v1))),
        Written::PreconditionFailed,
        "{rule}: a stale version won"
    );
    let (bytes, _) = must(rule, store.get(key)).unwrap_or_else(|| panic!("{rule}: missing"));
    assert_eq!(bytes, b"b", "{rule}");
}

/// A version of another kind, or one never given out, is no object's
/// current version: a compare-and-swap with it fails and leaves the
/// object as it was (it was once read as "no version" and written
/// unconditionally).
pub fn a_version_the_store_did_not_make_matches_nothing(store: &dyn Storage) {
    use super::ObjectVersion;
    let rule = "a version the store did not make matches nothing";
    let key = "conformance/foreign/x";
    assert_eq!(must(rule, store.put_if_absent(key, b"kept")), Written::Done, "{rule}");
    let foreign = [
        ObjectVersion::Token("not-a-version".into()),
        ObjectVersion::Object {
            e_tag: Some("\"not-an-etag\"".into()),
            version: None,
        },
        ObjectVersion::Object {
            e_tag: None,
            version: None,
        },
    ];
    for v in &foreign {
        assert_eq!(
            must(rule, store.put_if_version(key, b"overwritten", Some(v))),
            Written::PreconditionFailed,
            "{rule}: {v:?} won"
        );
        assert!(
            matches!(
                must(rule, store.get_if_changed(key, Some(v))),
                super::Fetched::Changed(..)
            ),
            "{rule}: {v:?} read as unchanged"
        );
    }
    let (bytes, _) = must(rule, store.get(key)).unwrap_or_else(|| panic!("{rule}: missing"));
    assert_eq!(bytes, b"kept", "{rule}");
}

/// `list_children` gives the direct children of a prefix, sorted, and an
/// empty list for an absent prefix.
pub fn listing_is_one_level_and_sorted(store: &dyn Storage) {
    let rule = "listing is one level and sorted";
    for key in ["conformance/list/b", "conformance/list/a/deep/x", "conformance/list/c"] {
        must(rule, store.put_if_absent(key, b"x"));
    }
    assert_eq!(
        must(rule, store.list_children("conformance/list")),
        ["a", "b", "c"],
        "{rule}"
    );
    assert!(must(rule, store.list_children("conformance/none")).is_empty(), "{rule}");
}

/// `delete` removes an object; deleting an absent one is not an error.
pub fn delete_is_idempotent(store: &dyn Storage) {
    let rule = "delete is idempotent";
    let key = "conformance/delete/x";
    must(rule, store.put_if_absent(key, b"x"));
    must(rule, store.delete(key));
    assert!(must(rule, store.get(key)).is_none(), "{rule}: still there");
    must(rule, store.delete(key));
}

/// Eight threads creating the same key: exactly one succeeds.
pub fn racing_creates_have_one_winner(store: &dyn Storage) {
    let rule = "racing creates have one winner";
    for round in 0..5 {
        let key = format!("conformance/race-create/{round}");
        let wins = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let (key, wins) = (&key, &wins);
                s.spawn(move || {
                    if must(rule, store.put_if_absent(key, &[t])) == Written::Done {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1, "{rule}: round {round}");
    }
}

/// Eight threads swapping from the same version: exactly one succeeds.
pub fn racing_swaps_have_one_winner_per_round(store: &dyn Storage) {
    let rule = "racing swaps have one winner per round";
    let key = "conformance/race-cas/x";
    must(rule, store.put_if_version(key, b"start", None));
    for round in 0..5 {
        let (_, version) = must(rule, store.get(key)).unwrap_or_else(|| panic!("{rule}: missing"));
        let wins = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let (version, wins) = (&version, &wins);
                s.spawn(move || {
                    let bytes = [round, t];
                    if must(rule, store.put_if_version(key, &bytes, Some(version))) == Written::Done {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1, "{rule}: round {round}");
    }
}
