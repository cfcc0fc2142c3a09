//! Reads the card of arbitrary bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_persistence_core::BundleReader;

fuzz_target!(|data: &[u8]| {
    let _ = BundleReader::default().read_card_bytes(data);
});
