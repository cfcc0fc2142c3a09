//! Following a fleet registry: an alias check is one conditional request;
//! the watch stream delivers every event once, in order, across a restart;
//! the bundle cache downloads a version once per machine and verifies it on
//! every use; the async registry runs inside a tokio runtime.

#![allow(clippy::result_large_err)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{backends, card, model, Linear};
use model_persistence_versioning::{
    AsyncRegistry, BundleCache, EventKind, Fetched, ObjectStorage, ObjectVersion, Registry, Storage, StorageError,
    VersionSpec, WatchCursor, Written,
};
use semver::Version;

fn publish(reg: &Registry, n: u64) -> Version {
    let m = model(n as f64);
    reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Exact(Version::new(1, n, 0)))
        .expect("publish")
        .version
}

/// Storage that counts the requests made through it.
#[derive(Debug)]
struct Counting {
    inner: ObjectStorage,
    requests: AtomicUsize,
    bundle_gets: AtomicUsize,
    record_gets: AtomicUsize,
}

impl Counting {
    fn count_get(&self, key: &str) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if key.ends_with("model.bundle") {
            self.bundle_gets.fetch_add(1, Ordering::SeqCst);
        }
        if key.ends_with("version.json") {
            self.record_gets.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Storage for Counting {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        self.count_get(key);
        self.inner.get(key)
    }
    fn get_at_most(&self, key: &str, cap: u64) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        self.count_get(key);
        self.inner.get_at_most(key, cap)
    }
    fn get_if_changed_at_most(
        &self,
        key: &str,
        known: Option<&ObjectVersion>,
        cap: u64,
    ) -> Result<Fetched, StorageError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.get_if_changed_at_most(key, known, cap)
    }
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Written, StorageError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.put_if_absent(key, bytes)
    }
    fn put_if_version(
        &self,
        key: &str,
        bytes: &[u8],
        expected: Option<&ObjectVersion>,
    ) -> Result<Written, StorageError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.put_if_version(key, bytes, expected)
    }
    fn list_children(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.list_children(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key)
    }
}

fn counting() -> (Arc<Counting>, Registry) {
    let storage = Arc::new(Counting {
        inner: ObjectStorage::in_memory().expect("memory store"),
        requests: AtomicUsize::new(0),
        bundle_gets: AtomicUsize::new(0),
        record_gets: AtomicUsize::new(0),
    });
    (Arc::clone(&storage), Registry::with_storage(storage))
}

#[test]
fn following_an_alias_sees_every_move_on_every_backend() {
    for (backend, reg, _dir) in backends() {
        let (a, b) = (publish(&reg, 1), publish(&reg, 2));
        let mut follower = reg.follow("m", "production").expect("follow");
        assert_eq!(
            follower.check().expect(backend),
            (None, false),
            "{backend}: no alias yet"
        );
        reg.set_alias("m", "production", &a).expect("promote");
        let (target, changed) = follower.check().expect(backend);
        assert!(changed, "{backend}");
        assert_eq!(target.map(|t| t.version), Some(a.clone()));
        let (target, changed) = follower.check().expect(backend);
        assert!(!changed, "{backend}: nothing moved");
        assert_eq!(target.map(|t| t.version), Some(a));
        reg.set_alias("m", "production", &b).expect("promote");
        let (target, changed) = follower.check().expect(backend);
        assert!(changed, "{backend}");
        assert_eq!(target.map(|t| t.version), Some(b));
    }
}

#[test]
fn a_promotion_reads_the_version_record_and_the_bundle_once() {
    let (storage, reg) = counting();
    let v = publish(&reg, 1);
    let (records, bundles) = (
        storage.record_gets.load(Ordering::SeqCst),
        storage.bundle_gets.load(Ordering::SeqCst),
    );
    reg.set_alias("m", "production", &v).expect("promote");
    assert_eq!(
        (
            storage.record_gets.load(Ordering::SeqCst) - records,
            storage.bundle_gets.load(Ordering::SeqCst) - bundles
        ),
        (1, 1),
        "reads of version.json and model.bundle in one promotion"
    );
}

#[test]
fn an_alias_check_is_one_request() {
    let (storage, reg) = counting();
    let v = publish(&reg, 1);
    reg.set_alias("m", "production", &v).expect("promote");
    let mut follower = reg.follow("m", "production").expect("follow");
    follower.check().expect("first check");
    for _ in 0..10 {
        let before = storage.requests.load(Ordering::SeqCst);
        let (_, changed) = follower.check().expect("check");
        assert!(!changed);
        assert_eq!(
            storage.requests.load(Ordering::SeqCst) - before,
            1,
            "one request per check"
        );
    }
}

#[test]
fn the_watch_delivers_every_event_once_in_order_across_a_restart() {
    for (backend, reg, _dir) in backends() {
        let first = publish(&reg, 1);
        let mut watch = reg
            .watch_from("m", WatchCursor::default())
            .expect("watch from the start");
        let mut seen = watch.poll().expect("poll");
        assert_eq!(seen.len(), 1, "{backend}: the history so far");
        assert!(watch.poll().expect("poll").is_empty(), "{backend}: nothing new");
        reg.set_alias("m", "production", &first).expect("promote");
        let second = publish(&reg, 2);
        seen.extend(watch.poll().expect("poll"));
        // The watcher stops here, with its cursor saved as JSON.
        let saved = serde_json::to_string(watch.cursor()).expect("cursor");
        drop(watch);
        reg.set_alias("m", "production", &second).expect("promote");
        let third = publish(&reg, 3);
        reg.set_alias("m", "production", &third).expect("promote");
        reg.prune("m", 1).expect("prune");
        let cursor: WatchCursor = serde_json::from_str(&saved).expect("cursor");
        let mut resumed = reg.watch_from("m", cursor).expect("resume");
        seen.extend(resumed.poll().expect("poll"));
        assert!(resumed.poll().expect("poll").is_empty(), "{backend}: delivered once");

        let history = reg.history("m").expect("history");
        assert_eq!(seen, history, "{backend}: every event once, in the history's order");
        let kinds: Vec<&str> = seen
            .iter()
            .map(|e| match e.kind {
                EventKind::Published { .. } => "published",
                EventKind::AliasMoved { .. } => "moved",
                EventKind::RolledBack { .. } => "rolled back",
                EventKind::Pruned { .. } => "pruned",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "published",
                "moved",
                "published",
                "moved",
                "published",
                "moved",
                "pruned",
                "pruned"
            ],
            "{backend}"
        );
    }
}

#[test]
fn a_watch_started_now_skips_the_past() {
    let (_storage, reg) = counting();
    publish(&reg, 1);
    let mut watch = reg.watch("m").expect("watch");
    assert!(watch.poll().expect("poll").is_empty());
    publish(&reg, 2);
    let events = watch.poll().expect("poll");
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0].kind, EventKind::Published { version, .. } if *version == Version::new(1, 2, 0)));
}

#[test]
fn the_cache_downloads_once_and_verifies_every_use() {
    let cache_dir = tempfile::tempdir().expect("cache dir");
    let (storage, reg) = counting();
    let v = publish(&reg, 1);
    let cache = BundleCache::new(cache_dir.path(), 1 << 20).expect("cache");
    // Two "processes" (registries) sharing one cache directory.
    let first = reg.clone().cache(cache.clone());
    let second = reg.clone().cache(cache.clone());
    let reference = format!("m@{v}").parse().expect("reference");
    let a = first.load::<Linear>(&reference).expect("load");
    let b = second.load::<Linear>(&reference).expect("load");
    assert_eq!(a.content_id(), b.content_id());
    assert_eq!(storage.bundle_gets.load(Ordering::SeqCst), 1, "downloaded once");

    // A damaged cached bundle is refused, evicted and fetched again.
    let cached = cache_dir.path().join(format!("{}.bundle", a.content_id()));
    let mut bytes = std::fs::read(&cached).expect("cached bundle");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cached, bytes).expect("damage");
    let c = second.load::<Linear>(&reference).expect("load after damage");
    assert_eq!(c.content_id(), a.content_id());
    assert_eq!(storage.bundle_gets.load(Ordering::SeqCst), 2, "fetched again once");

    // The bound holds: a cache smaller than two bundles keeps one.
    let w = publish(&reg, 2);
    let len = std::fs::metadata(&cached).expect("cached").len();
    let small = reg
        .clone()
        .cache(BundleCache::new(cache_dir.path(), len + len / 2).expect("cache"));
    small.load::<Linear>(&reference).expect("load");
    small
        .load::<Linear>(&format!("m@{w}").parse().expect("reference"))
        .expect("load");
    assert!(
        cache.used_bytes() <= len + len / 2,
        "{} bytes cached",
        cache.used_bytes()
    );
}

#[test]
fn the_async_registry_runs_inside_a_runtime_on_every_backend() {
    for flavor in ["multi", "current"] {
        let runtime = match flavor {
            "multi" => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
            _ => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        }
        .expect("runtime");
        for (backend, reg, _dir) in backends() {
            runtime.block_on(async {
                let v = publish(&reg, 1); // the blocking API, from inside the runtime
                let reg = AsyncRegistry::new(reg);
                reg.set_alias("m", "production", &v).await.expect(backend);
                let versions = reg.versions("m").await.expect(backend);
                assert_eq!(versions.len(), 1, "{flavor} {backend}");
                let loaded = reg.load_as::<Linear>(&"m@production".parse().expect("ref")).await;
                assert_eq!(loaded.expect(backend).content_id(), versions[0].content_id);
                let mut follower = reg.follow("m", "production").expect("follow");
                assert!(follower.check().await.expect(backend).1);
                let mut watch = reg.watch("m").await.expect(backend);
                let w = reg.run(|r| Ok(publish(r, 2))).await.expect(backend);
                let events = watch.poll().await.expect(backend);
                assert!(
                    matches!(&events[..], [e] if matches!(&e.kind, EventKind::Published { version, .. } if *version == w)),
                    "{flavor} {backend}: {events:?}"
                );
            });
        }
    }
}
