//! The public storage conformance suite, run on every backend this crate ships.

mod common;

use model_persistence_versioning::storage::conformance;
use model_persistence_versioning::{LocalDir, ObjectStorage};

#[test]
fn the_local_directory_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    conformance::run(&LocalDir::create(dir.path()).expect("store"));
}

#[test]
fn the_in_memory_store_conforms() {
    conformance::run(&ObjectStorage::in_memory().expect("runtime"));
}

#[test]
fn the_s3_test_server_conforms() {
    let registry = common::s3();
    conformance::run(registry.storage());
}
