//! Arbitrary header and payload bytes, assembled into a bundle whose hashes
//! are right: reaches the MessagePack decoders and the model checks that
//! random bytes never get past the header hash to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_persistence_core::BundleReader;
use model_persistence_models::linfa::RandomForest;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (usize::from(split) * rest.len()) / 255;
    let (header, payload) = rest.split_at(cut.min(rest.len()));
    let mut bundle = vec![0x89, b'M', b'P', b'B', 0x0D, 0x0A, 0x1A, 0x0A, 1, 0, 0, 0];
    bundle.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bundle.extend_from_slice(header);
    let hash = Sha256::digest(&bundle);
    bundle.extend_from_slice(&hash);
    bundle.extend_from_slice(payload);
    let reader = BundleReader::default();
    let _ = reader.load_bytes::<linfa_trees::DecisionTree<f64, usize>>(&bundle);
    let _ = reader.load_bytes::<RandomForest>(&bundle);
    let _ = reader.read_card_bytes(&bundle);
});
