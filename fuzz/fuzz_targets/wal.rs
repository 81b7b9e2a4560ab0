//! The durable store's record framing and record decoding on arbitrary
//! bytes: a scan always ends (clean, torn or corrupt), and every payload
//! decodes to a record or a typed error. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlock_core::storage::disk::record;

fuzz_target!(|data: &[u8]| {
    let _ = record::scan(data, |_, payload| {
        let _ = record::decode(payload);
    });
    let _ = record::first(data);
    let _ = record::decode(data);
});
