//! Opening a data directory whose log segment holds arbitrary bytes: the
//! store opens (dropping a torn tail) or refuses with a typed error, and
//! never panics. Slower than `wal` (a directory per input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlock_core::storage::DiskStore;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("0000000000000001.wal"), data).expect("write");
    if let Ok(store) = DiskStore::open(dir.path()) {
        let _ = raft::Storage::initial_state(&store);
        let _ = raft::Storage::last_index(&store);
    }
});
