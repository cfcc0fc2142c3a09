//! Loads arbitrary bytes as a bundle of each linfa kind: must never panic,
//! overflow the stack or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_persistence_core::BundleReader;
use model_persistence_models::linfa::RandomForest;

fuzz_target!(|data: &[u8]| {
    let reader = BundleReader::default();
    let _ = reader.load_bytes::<linfa_trees::DecisionTree<f64, usize>>(data);
    let _ = reader.load_bytes::<RandomForest>(data);
    let _ = reader.verify_bytes(data);
});
